// Tenancy through a real nginx: an Ingress of another namespace cannot take a host's traffic,
// neither as a canary nor by adding its own rules for the host.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { backendYaml, ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';
const inNamespace = (namespace: string, yaml: string) =>
  yaml.replaceAll('namespace: default', `namespace: ${namespace}`);

describe('tenancy between namespaces, through a real nginx', function () {
  this.timeout(120_000);
  let stack: Stack;

  before(async () => {
    stack = await startStack({ backends: ['alpha', 'beta'] });
    // The attacker's Service (namespace evil) has beta's echo server as its endpoint.
    await stack.write('evil-backend.yaml', inNamespace('evil', backendYaml('grab', stack.backends.get('beta')!.port)));
    await stack.write(
      'victim.yaml',
      ingressYaml('shop', [{ host: 'hijack.test', paths: [['/', 'Prefix', 'alpha']] }], {
        created: '2026-01-01T00:00:00Z',
      }),
    );
    assert.equal(await stack.eventually('hijack.test', '/', 'alpha'), 'alpha');
  });
  after(async () => {
    await stack?.stop();
  });

  /** Waits (bounded) for a report on `ingress`, then for the sidecar to have applied that pass. */
  const reported = async (ingress: string, re: RegExp) => {
    const deadline = Date.now() + 8000;
    const find = () => stack.logs.find((l) => l.ingress === ingress && re.test(String(l.reason)));
    while (Date.now() < deadline && !find()) await sleep(25);
    assert.ok(
      find(),
      `no report for ${ingress} matching ${re}: ${JSON.stringify(stack.logs.filter((l) => l.ingress === ingress))}`,
    );
    await stack.sidecar.idle();
  };
  const answers = async (n: number) => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(await stack.who('hijack.test', `/page${i}`));
    return [...seen].sort();
  };

  it("a newer canary of another namespace with canary-weight 100 takes none of the host's requests; one of the host's namespace does", async () => {
    const takeover = (namespace: string) =>
      inNamespace(
        namespace,
        ingressYaml(
          'takeover',
          [{ host: 'hijack.test', paths: [['/', 'Prefix', namespace === 'evil' ? 'grab' : 'beta']] }],
          {
            created: '2026-02-01T00:00:00Z',
            annotations: { [`${P}canary`]: 'true', [`${P}canary-weight`]: '100' },
          },
        ),
      );
    await stack.write('takeover.yaml', takeover('evil'));
    await reported('evil/takeover', /the Ingress it would split, default\/shop, is in another namespace/);
    assert.deepEqual(await answers(20), ['alpha']);
    // The same canary in the victim's own namespace does split (here: takes) its traffic.
    await stack.write('takeover.yaml', takeover('default'));
    assert.equal(await stack.eventually('hijack.test', '/', 'beta'), 'beta');
    await stack.remove('takeover.yaml');
    assert.equal(await stack.eventually('hijack.test', '/', 'alpha'), 'alpha');
  });

  it('a newer Ingress of another namespace adds no path and no default backend to the host', async () => {
    await stack.write(
      'grab.yaml',
      inNamespace(
        'evil',
        ingressYaml('grab', [{ host: 'hijack.test', paths: [['/admin', 'Prefix', 'grab']] }], {
          created: '2026-02-01T00:00:00Z',
          defaultBackend: 'grab',
        }),
      ),
    );
    await reported('evil/grab', /rules for host hijack\.test are not used: the host belongs to namespace default/);
    assert.equal(await stack.who('hijack.test', '/admin/x'), 'alpha');
    assert.deepEqual(await answers(5), ['alpha']);
  });
});
