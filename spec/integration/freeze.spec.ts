// Issue 15's freeze cases, through a real nginx: values nginx refused without naming an Ingress
// (which once froze every tenant's updates) are refused by the grammar with a reason, or rendered
// so that nginx accepts them; the snippet cases (nginx refuses them late) are set aside by
// bisection. Each alone, then all at once: a good Ingress written after them answers, and a change
// to one served before is applied.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';
const prefixed = (a: Record<string, string>) => Object.fromEntries(Object.entries(a).map(([k, v]) => [`${P}${k}`, v]));

/** A Service whose one endpoint is an IPv6 address Node parses and nginx refuses as written. */
const V6_SERVICE = `apiVersion: v1
kind: Service
metadata: {name: v6svc, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v6svc-1, namespace: default, labels: {kubernetes.io/service-name: v6svc}}
addressType: IPv6
ports: [{name: http, port: 8080}]
endpoints: [{addresses: ["1:2:3:4:5:6:7::"]}]
`;

const longOrigins = Array.from({ length: 80 }, (_, i) => `https://app-${i}.${'x'.repeat(40)}.example.com`).join(',');

interface FreezeCase {
  name: string;
  files: Record<string, string>;
  /** Checks on what the case's own Ingresses do once the sidecar settled. */
  check(stack: Stack): Promise<void>;
}

const rejected = (stack: Stack, ingress: string) =>
  stack.logs.filter((l) => l.message === 'Ingress rejected' && l.ingress === ingress).map((l) => String(l.reason));

const CASES: FreezeCase[] = [
  {
    name: 'an EndpointSlice address nginx does not parse as written (1:2:3:4:5:6:7::)',
    files: {
      'v6svc.yaml': V6_SERVICE,
      'v6.yaml': ingressYaml('v6', [{ host: 'v6.test', paths: [['/', 'Prefix', 'v6svc']] }]),
    },
    async check(stack) {
      // Rendered as 1:2:3:4:5:6:7:0, which nginx accepts: the Ingress is served (nothing listens at
      // that address, so its answers are not checked here).
      assert.deepEqual(rejected(stack, 'default/v6'), [], 'served, not set aside');
      assert.ok(stack.sidecar.model()?.served.includes('default/v6'), 'served in the applied model');
      assert.ok(
        stack.sidecar.model()?.upstreams.some((u) => u.servers.some((x) => x.address === '[1:2:3:4:5:6:7:0]:8080')),
        'rendered in a form nginx parses',
      );
    },
  },
  {
    name: 'a cors-allow-origin list over 4,096 bytes',
    files: {
      'cors.yaml': ingressYaml('cors', [{ host: 'cors.test', paths: [['/', 'Prefix', 'web']] }], {
        annotations: prefixed({ 'enable-cors': 'true', 'cors-allow-origin': longOrigins }),
      }),
    },
    async check(stack) {
      assert.equal(await stack.eventually('cors.test', '/', '503'), '503', 'fails closed');
      assert.match(
        rejected(stack, 'default/cors').join('\n'),
        /cors-allow-origin.*too long/,
        'refused by the grammar with the reason, not by nginx',
      );
    },
  },
  {
    name: 'a defaultBackend-only Ingress with affinity, a hostless "/" rule and custom-http-errors',
    files: {
      'sticky.yaml': ingressYaml('sticky-default', [], {
        created: '2026-01-01T00:00:00Z',
        defaultBackend: 'api',
        annotations: prefixed({ affinity: 'cookie' }),
      }),
      'hostless.yaml': ingressYaml('hostless', [{ paths: [['/', 'Prefix', 'web']] }], {
        created: '2026-01-02T00:00:00Z',
      }),
      'errors.yaml': ingressYaml('errors', [{ host: 'errors.test', paths: [['/', 'Prefix', 'web']] }], {
        created: '2026-01-03T00:00:00Z',
        annotations: prefixed({ 'custom-http-errors': '503' }),
      }),
    },
    async check(stack) {
      assert.equal(await stack.eventually('errors.test', '/', 'web'), 'web');
      // As in ingress-nginx, the defaultBackend-only Ingress keeps "/" of the default server (its
      // affinity map is rendered with it) and the hostless "/" is reported unused; the error pages
      // no longer go to a spec.defaultBackend.
      assert.equal(
        await stack.eventually('unknown-host.test', '/', 'api'),
        'api',
        'the defaultBackend-only Ingress answers other hosts',
      );
      for (const i of ['default/sticky-default', 'default/hostless', 'default/errors'])
        assert.deepEqual(rejected(stack, i), [], `${i} is not set aside`);
    },
  },
  {
    name: 'a snippet with an unknown variable',
    files: {
      'unknown.yaml': ingressYaml('unknown-var', [{ host: 'unknown.test', paths: [['/', 'Prefix', 'web']] }], {
        annotations: prefixed({ 'configuration-snippet': 'proxy_set_header X-Tenant $tenant_id;' }),
      }),
    },
    async check(stack) {
      assert.equal(await stack.eventually('unknown.test', '/', '503'), '503', 'set aside: its paths answer 503');
      assert.ok(rejected(stack, 'default/unknown-var').length > 0, 'reported');
    },
  },
  {
    name: 'a snippet nginx refuses late (proxy_buffers 1 4k)',
    files: {
      'buffers.yaml': ingressYaml('buffers', [{ host: 'buffers.test', paths: [['/', 'Prefix', 'web']] }], {
        annotations: prefixed({ 'configuration-snippet': 'proxy_buffers 1 4k;' }),
      }),
    },
    async check(stack) {
      assert.equal(
        await stack.eventually('buffers.test', '/', '503'),
        '503',
        'set aside (or refused): its paths answer 503',
      );
      assert.ok(rejected(stack, 'default/buffers').length > 0, 'reported');
    },
  },
];

describe('freeze cases: a refusal nginx cannot attribute never stops the others (real nginx)', function () {
  this.timeout(180_000);
  let stack: Stack;
  let n = 0;

  before(async () => {
    stack = await startStack({
      backends: ['web', 'api'],
      allowSnippets: true,
      files: { 'steady.yaml': ingressYaml('steady', [{ host: 'steady.test', paths: [['/', 'Prefix', 'web']] }]) },
    });
    assert.equal(await stack.eventually('steady.test', '/', 'web'), 'web');
  });
  after(async () => {
    await stack?.stop();
  });

  /** Writes the bad files, then a new good Ingress and a change to `steady`; both must be applied. */
  async function othersStillApplied(files: Record<string, string>): Promise<void> {
    for (const [file, yaml] of Object.entries(files)) await stack.write(file, yaml);
    // Let the sidecar see the bad objects first: the good change comes after them.
    await sleep(100);
    const fresh = `fresh${n++}`;
    const backend = n % 2 ? 'api' : 'web';
    await stack.write(
      `${fresh}.yaml`,
      ingressYaml(fresh, [{ host: `${fresh}.test`, paths: [['/', 'Prefix', backend]] }]),
    );
    await stack.write(
      'steady.yaml',
      ingressYaml('steady', [{ host: 'steady.test', paths: [['/', 'Prefix', backend]] }]),
    );
    assert.equal(
      await stack.eventually(`${fresh}.test`, '/', backend, 20_000),
      backend,
      'a good Ingress written after the bad ones answers',
    );
    assert.equal(
      await stack.eventually('steady.test', '/', backend, 20_000),
      backend,
      'a change to a served Ingress is applied',
    );
    await stack.sidecar.idle();
  }

  for (const c of CASES) {
    it(`alone: ${c.name}`, async () => {
      await othersStillApplied(c.files);
      await c.check(stack);
      for (const file of Object.keys(c.files)) await stack.remove(file);
      await stack.sidecar.idle();
    });
  }

  it('all at once', async () => {
    await othersStillApplied(Object.assign({}, ...CASES.map((c) => c.files)));
    for (const c of CASES) await c.check(stack);
  });
});
