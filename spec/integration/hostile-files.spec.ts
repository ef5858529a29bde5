// Nothing in a manifest file stops the sidecar, through a real nginx: YAML alias bombs (present
// at start and written while running) and a Service whose clusterIP is not a string are each
// reported, and every other file keeps serving and changing.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

/** An Ingress whose annotations hold a billion-laughs (387 million strings once expanded), in 661 bytes. */
const billionLaughs = (name: string): string =>
  ingressYaml(name, [{ host: `${name}.test`, paths: [['/', 'Prefix', 'alpha']] }]).replace(
    '  namespace: default\n',
    '  namespace: default\n  annotations:\n    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' +
      'bcdefghi'
        .split('')
        .map(
          (c, i) =>
            `    ${c}: &${c} [${Array(9)
              .fill('*' + 'abcdefghi'[i])
              .join(',')}]\n`,
        )
        .join(''),
  );

/** An Ingress whose annotations hold an alias chain 18,000 levels deep once expanded. */
const deepChain = (name: string): string => {
  let anchors = '    a0: &a0 [x]\n';
  for (let i = 1; i < 200; i++) anchors += `    a${i}: &a${i} ${'['.repeat(90)}*a${i - 1}${']'.repeat(90)}\n`;
  return ingressYaml(name, [{ host: `${name}.test`, paths: [['/', 'Prefix', 'alpha']] }]).replace(
    '  namespace: default\n',
    `  namespace: default\n  annotations:\n${anchors}`,
  );
};

describe('hostile manifest files, through a real nginx', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack({
      backends: ['alpha', 'beta'],
      files: {
        'good.yaml': ingressYaml('good', [{ host: 'good.test', paths: [['/', 'Prefix', 'alpha']] }]),
        'lol.yaml': billionLaughs('lol'),
        'deep.yaml': deepChain('deep'),
      },
    });
  });
  after(async () => {
    await stack?.stop();
  });

  const reported = async (file: string, re: RegExp) => {
    const deadline = Date.now() + 5000;
    const find = () =>
      stack.logs.find((l) => l.level === 'error' && String(l.file).endsWith(`/${file}`) && re.test(String(l.message)));
    while (Date.now() < deadline && !find()) await sleep(25);
    assert.ok(
      find(),
      `no error for ${file} matching ${re}: ${JSON.stringify(stack.logs.filter((l) => l.level === 'error')).slice(0, 2000)}`,
    );
  };

  it('starts with alias bombs present, serves the other files, and reports the bombs', async () => {
    assert.equal(await stack.eventually('good.test', '/', 'alpha'), 'alpha');
    assert.equal(await stack.who('lol.test', '/'), '404');
    await reported('lol.yaml', /cannot parse .*lol\.yaml: document at line 1 expands, through YAML aliases, past/);
    await reported(
      'deep.yaml',
      /cannot parse .*deep\.yaml: document at line 1 nests deeper than 100 levels once its YAML aliases are expanded/,
    );
  });

  it('keeps applying changes when bombs are written while running, or a good file turns into one', async () => {
    await stack.write('lol2.yaml', billionLaughs('lol2'));
    await stack.write('deep2.yaml', deepChain('deep2'));
    await stack.write('good.yaml', billionLaughs('good'));
    await stack.write('more.yaml', ingressYaml('more', [{ host: 'more.test', paths: [['/', 'Prefix', 'beta']] }]));
    assert.equal(await stack.eventually('more.test', '/', 'beta'), 'beta');
    await reported('lol2.yaml', /cannot parse .*expands, through YAML aliases/);
    await reported('deep2.yaml', /cannot parse .*nests deeper than 100 levels/);
    await reported('good.yaml', /cannot parse .*expands, through YAML aliases.*keeping its last good objects \(1\)/);
    assert.equal(
      await stack.who('good.test', '/'),
      'alpha',
      'the file that turned into a bomb keeps its last good objects',
    );
  });

  it('serves service-upstream on a Service whose clusterIP is not a string from its endpoints, and keeps applying changes', async () => {
    const alpha = stack.backends.get('alpha')!;
    await stack.write(
      'odd.yaml',
      `apiVersion: v1
kind: Service
metadata: {name: odd, namespace: default}
spec:
  clusterIP: {not: a string}
  ports: [{name: http, port: 80, targetPort: ${alpha.port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: odd-1
  namespace: default
  labels: {kubernetes.io/service-name: odd}
addressType: IPv4
ports: [{name: http, port: ${alpha.port}}]
endpoints: [{addresses: ["127.0.0.1"]}]
---
${ingressYaml('odd', [{ host: 'odd.test', paths: [['/', 'Prefix', 'odd']] }], { annotations: { 'nginx.ingress.kubernetes.io/service-upstream': 'true' } })}`,
    );
    assert.equal(await stack.eventually('odd.test', '/', 'alpha'), 'alpha');
    await stack.write('later.yaml', ingressYaml('later', [{ host: 'later.test', paths: [['/', 'Prefix', 'beta']] }]));
    assert.equal(await stack.eventually('later.test', '/', 'beta'), 'beta');
  });
});
