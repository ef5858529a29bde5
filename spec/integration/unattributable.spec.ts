// nginx refuses a config without naming a line that belongs to one Ingress (an unknown variable
// in a snippet): the sidecar finds the Ingresses to blame by checking subsets with `nginx -t`,
// sets them aside with nginx's message, and serves the rest. A real nginx and echo backends.
import assert from 'node:assert/strict';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const SNIPPET = 'nginx.ingress.kubernetes.io/configuration-snippet';
/**
 * Linkerd's documented snippet, with variables nobody defines (ingress-nginx's own, $service_name,
 * $namespace and $service_port, are defined by the sidecar).
 */
const LINKERD = 'proxy_set_header l5d-dst-override $svc_name.$svc_namespace.svc.cluster.local:80;';

function good(name: string, backend: string): string {
  return ingressYaml(name, [{ host: `${name}.test`, paths: [['/', 'Prefix', backend]] }]);
}

function withSnippet(name: string, snippet: string): string {
  return ingressYaml(name, [{ host: `${name}.test`, paths: [['/', 'Prefix', 'web']] }], {
    annotations: { [SNIPPET]: snippet },
  });
}

function rejectedLog(stack: Stack, ingress: string): Record<string, unknown> | undefined {
  return stack.logs.find((l) => l.message === 'Ingress rejected' && l.ingress === ingress);
}

describe('an nginx refusal that names no Ingress (bisection)', function () {
  this.timeout(60_000);
  let stack: Stack | undefined;

  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it("sets aside the one Ingress with an unknown variable, with nginx's message, and serves the others", async () => {
    stack = await startStack({
      backends: ['web', 'api'],
      allowSnippets: true,
      files: {
        'a.yaml': good('alpha', 'web'),
        'b.yaml': good('bravo', 'api'),
        'c.yaml': good('charlie', 'web'),
        'd.yaml': good('delta', 'api'),
        'e.yaml': good('echo', 'web'),
        'linkerd.yaml': withSnippet('linkerd', LINKERD),
      },
    });
    for (const [host, backend] of [
      ['alpha', 'web'],
      ['bravo', 'api'],
      ['charlie', 'web'],
      ['delta', 'api'],
      ['echo', 'web'],
    ]) {
      assert.equal(await stack.eventually(`${host}.test`, '/', backend!), backend, host);
    }
    assert.equal(
      await stack.who('linkerd.test', '/'),
      '503',
      'the culprit is not served: its paths answer 503 (fail closed)',
    );
    const reported = rejectedLog(stack, 'default/linkerd');
    assert.match(String(reported?.reason), /^nginx rejected its configuration: unknown "svc_name" variable/);
    assert.deepEqual(
      stack.logs.filter((l) => l.message === 'Ingress rejected').map((l) => l.ingress),
      ['default/linkerd'],
      'no good Ingress is blamed',
    );
    const found = stack.logs.find((l) => l.message === 'found the Ingresses nginx refuses');
    assert.deepEqual(found?.ingresses, ['default/linkerd']);
    // 1 check without Ingresses, then log2(6) steps and one check of the rest.
    assert.ok(typeof found?.checks === 'number' && found.checks <= 6, `checks: ${String(found?.checks)}`);

    // Fixed, it is served again on the next pass.
    await stack.write('linkerd.yaml', withSnippet('linkerd', 'proxy_set_header l5d-dst-override $host;'));
    assert.equal(await stack.eventually('linkerd.test', '/', 'web'), 'web');
    assert.equal(await stack.who('alpha.test', '/'), 'web');
  });

  it('finds three independent culprits at once among good Ingresses, in few checks', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 12; i++) files[`good-${i}.yaml`] = good(`good${i}`, i % 2 ? 'api' : 'web');
    files['x1.yaml'] = withSnippet('bad-linkerd', LINKERD);
    files['x2.yaml'] = withSnippet('bad-tenant', 'proxy_set_header X-Tenant $tenant_id;');
    files['x3.yaml'] = withSnippet('bad-header', 'add_header X-Region $region_name always;');
    stack = await startStack({ backends: ['web', 'api'], allowSnippets: true, files });
    for (let i = 0; i < 12; i++)
      assert.equal(
        await stack.eventually(`good${i}.test`, '/', i % 2 ? 'api' : 'web'),
        i % 2 ? 'api' : 'web',
        `good${i}`,
      );
    for (const [name, variable] of [
      ['bad-linkerd', 'svc_name'],
      ['bad-tenant', 'tenant_id'],
      ['bad-header', 'region_name'],
    ]) {
      assert.equal(await stack.who(`${name}.test`, '/'), '503', name);
      assert.match(
        String(rejectedLog(stack, `default/${name}`)?.reason),
        new RegExp(`unknown "${variable}" variable`),
        name,
      );
    }
    const found = stack.logs.find((l) => l.message === 'found the Ingresses nginx refuses');
    assert.deepEqual([...(found?.ingresses as string[])].sort(), [
      'default/bad-header',
      'default/bad-linkerd',
      'default/bad-tenant',
    ]);
    // k = 3 among n = 15: at most 1 + 3 (ceil(log2 15) + 1) = 16 runs of nginx -t, far below 15 one by one plus retries.
    assert.ok(typeof found?.checks === 'number' && found.checks <= 16, `checks: ${String(found?.checks)}`);
    assert.equal(stack.logs.filter((l) => l.message === 'Ingress rejected').length, 3);
  });

  it('keeps the last good config when nginx refuses it even without any Ingress', async () => {
    stack = await startStack({ backends: ['web'], allowSnippets: true, files: { 'a.yaml': good('alpha', 'web') } });
    assert.equal(await stack.eventually('alpha.test', '/', 'web'), 'web');
    // A foreign file that clashes with ours: no Ingress is to blame, so none is set aside.
    const { writeFile } = await import('node:fs/promises');
    await writeFile(`${stack.confDir}/zz-user.conf`, 'server_names_hash_bucket_size 128;\n');
    await stack.write('b.yaml', good('bravo', 'web'));
    const deadline = Date.now() + 8000;
    const refused = () =>
      stack!.logs.find((l) => l.message === 'nginx rejected the configuration; the last good one stays live');
    while (Date.now() < deadline && !refused()) await new Promise((r) => setTimeout(r, 50));
    assert.match(String(refused()?.withoutIngresses), /not in any Ingress/);
    assert.equal(stack.logs.filter((l) => l.message === 'Ingress rejected').length, 0);
    assert.equal(await stack.who('alpha.test', '/'), 'web', 'the last good config keeps serving');
    assert.equal(await stack.who('bravo.test', '/'), '404');
  });
});
