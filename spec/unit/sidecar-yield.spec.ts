// A pass over many Ingresses in steps gives other callbacks turns of the event loop, and what it
// puts in place is exactly what an uninterrupted pass would (the health check answered during a
// real pass is in spec/integration/sidecar-yield.spec.ts).
import assert from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import { diffModels } from '../../src/sync/model-diff.ts';
import * as render from '../../src/nginx/render.ts';
import type { Snapshot } from '../../src/sources/snapshot.ts';
import * as translation from '../../src/translate/index.ts';

describe('sidecar: a pass gives other work turns', function () {
  it('gives the same model, files and reload summary in steps as in one go', async () => {
    const backend = { service: { name: 'svc', port: { name: 'http' } } };
    const ingresses: V1Ingress[] = Array.from({ length: 40 }, (_, i) => ({
      metadata: {
        name: `app-${i}`,
        namespace: `ns-${i % 3}`,
        creationTimestamp: new Date(Date.UTC(2026, 0, 1) + i * 1000),
      },
      spec: {
        ingressClassName: 'nginx',
        rules: [
          {
            host: `app-${i % 25}.test`,
            http: {
              paths: [
                { path: '/', pathType: 'Prefix', backend },
                { path: `/p${i}/`, pathType: 'Exact', backend },
                { path: `/p${i}`, pathType: 'Prefix', backend },
              ],
            },
          },
          { http: { paths: [{ path: `/shared-${i}/x/`, pathType: 'Exact', backend }] } },
        ],
      },
    }));
    const services = [0, 1, 2].map((n) => ({
      metadata: { name: 'svc', namespace: `ns-${n}` },
      spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    }));
    const endpointSlices = [0, 1, 2].map((n) => ({
      metadata: { name: 'svc-1', namespace: `ns-${n}`, labels: { 'kubernetes.io/service-name': 'svc' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: [`10.0.0.${n + 1}`], conditions: { ready: true } }],
    }));
    const snap = {
      ingresses,
      ingressClasses: [],
      services,
      endpointSlices,
      endpoints: [],
      secrets: [],
    } as unknown as Snapshot;
    const options = { ingressClass: 'nginx', httpPort: 8080, ipv6: false };
    const api = translation as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const r = render as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const diff = (await import('../../src/sync/model-diff.ts')) as unknown as Record<
      string,
      (...a: unknown[]) => Promise<unknown>
    >;
    assert.equal(typeof api.translateAsync, 'function', 'translate in steps (translateAsync)');
    const whole = translation.translate(snap, options);
    // Counts turns of the event loop: an immediate that schedules itself runs once per turn.
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    try {
      const stepped = await api.translateAsync!(snap, options, 0);
      assert.deepEqual(stepped, whole);
      assert.deepEqual(await r.renderModelAsync!(stepped, 0), render.renderModel(whole));
      assert.deepEqual(await diff.diffModelsAsync!(null, stepped, 0), diffModels(null, whole));
    } finally {
      counting = false;
    }
    assert.ok(turns > 10, `other callbacks ran while the steps ran (${turns} turns)`);
  });
});
