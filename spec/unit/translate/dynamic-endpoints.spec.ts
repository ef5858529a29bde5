// Reload-free endpoints: in dns mode the files do not depend on which endpoints are ready, so an
// endpoint change rewrites nothing (and cannot reload nginx); what must stay in the files does.
import assert from 'node:assert/strict';
import { renderModel } from '../../../src/nginx/render.ts';
import { translate, type TranslateOptions } from '../../../src/translate/index.ts';
import { answersOf, endpointsModeFor, endpointsSignature, withEndpointsOf } from '../../../src/sync/endpoint-mode.ts';
import { ingress, path, rule, service, slice, snapshot } from '../../helpers/builders.ts';

const DNS: TranslateOptions = {
  ingressClass: 'nginx',
  httpPort: 80,
  ipv6: true,
  nginxVersion: '1.30.4',
  dynamicEndpoints: { resolver: '127.0.0.1:10053', unavailablePort: 10503 },
};

function objects(ready: string[], opts: { annotations?: Record<string, string> } = {}) {
  return snapshot({
    services: [service('web', [{ name: 'http', port: 80 }]), service('fallback', [{ name: 'http', port: 80 }])],
    endpointSlices: [
      slice('web', { name: 'http', port: 8080 }, ready),
      slice('fallback', { name: 'http', port: 8080 }, ['10.9.0.1']),
    ],
    ingresses: [
      ingress('web', [rule('a.example.com', path('/', 'Prefix', 'web', 80))], {
        ...(opts.annotations ? { annotations: opts.annotations } : {}),
      }),
    ],
  });
}

describe('reload-free endpoints (translate and render)', () => {
  it('renders the same files whatever endpoints are ready, none included', () => {
    const sets = [['10.0.0.1'], ['10.0.0.1', '10.0.0.2'], ['10.0.0.3'], []];
    const files = sets.map((ready) => renderModel(translate(objects(ready), DNS)));
    for (const f of files.slice(1)) assert.deepEqual(f, files[0]);
    const upstreams = files[0]!.get('ingress-sidecar-upstreams.conf')!;
    assert.match(upstreams, /server p80\.web\.default\.endpoints\.ingress-sidecar\.internal service=http resolve;/);
    assert.match(upstreams, /^resolver 127\.0\.0\.1:10053;$/m);
    assert.doesNotMatch(upstreams, /10\.0\.0\.\d/);
  });

  it('proxies a Service without ready endpoints (the responder points at the 503 listener)', () => {
    const model = translate(objects([]), DNS);
    const loc = model.servers[0]!.locations.find((l) => l.path === '/')!;
    assert.equal(loc.action.kind, 'proxy');
    assert.deepEqual(answersOf(model), new Map([['p80.web.default.endpoints.ingress-sidecar.internal', []]]));
  });

  it('answers each ready endpoint with its target port; not-ready ones are left out', () => {
    const model = translate(objects(['10.0.0.2', '10.0.0.1', 'fd00::1']), DNS);
    assert.deepEqual(answersOf(model).get('p80.web.default.endpoints.ingress-sidecar.internal'), [
      { ip: '10.0.0.1', port: 8080 },
      { ip: '10.0.0.2', port: 8080 },
      { ip: 'fd00::1', port: 8080 },
    ]);
  });

  it('keeps endpoints in the files where behaviour depends on having none: default-backend', () => {
    const withFallback = (ready: string[]) =>
      renderModel(
        translate(objects(ready, { annotations: { 'nginx.ingress.kubernetes.io/default-backend': 'fallback' } }), DNS),
      );
    // No endpoints: the fallback answers (as in reload mode); with one, the Service itself.
    assert.notDeepEqual(withFallback([]), withFallback(['10.0.0.1']));
    assert.match(withFallback(['10.0.0.1']).get('ingress-sidecar-upstreams.conf')!, /server 10\.0\.0\.1:8080;/);
  });

  it('renders endpoints into the files without dynamicEndpoints (reload mode), and 503 for none', () => {
    const opts = { ...DNS, dynamicEndpoints: undefined };
    delete opts.dynamicEndpoints;
    const model = translate(objects([]), opts);
    assert.equal(model.servers[0]!.locations.find((l) => l.path === '/')!.action.kind, 'unavailable');
    assert.match(
      renderModel(translate(objects(['10.0.0.1']), opts)).get('ingress-sidecar-upstreams.conf')!,
      /server 10\.0\.0\.1:8080;/,
    );
  });

  it('updates a model from another snapshot when only dynamic endpoints changed', () => {
    const snap = objects(['10.0.0.1']);
    const model = translate(snap, DNS);
    const sig = endpointsSignature(snap, model.endpointsInFiles ?? []);
    const next = withEndpointsOf(model, objects(['10.0.0.1', '10.0.0.2']), sig);
    assert.ok(next);
    assert.equal(next.changed.length, 1);
    assert.deepEqual(
      answersOf(next.model)
        .get('p80.web.default.endpoints.ingress-sidecar.internal')!
        .map((t) => t.ip),
      ['10.0.0.1', '10.0.0.2'],
    );
    assert.deepEqual(withEndpointsOf(model, objects(['10.0.0.1']), sig)?.changed, []);
  });

  it('takes a full pass when a Service the files depend on changes, including one that had no endpoints', () => {
    const fallback = { annotations: { 'nginx.ingress.kubernetes.io/default-backend': 'fallback' } };
    for (const [before, after] of [
      [['10.0.0.1'], []],
      // None: the location answers from the fallback and the upstream is not in the model at all;
      // its endpoints coming back must still be seen.
      [[], ['10.0.0.1']],
    ] as const) {
      const snap = objects([...before], fallback);
      const model = translate(snap, DNS);
      assert.ok(model.endpointsInFiles?.includes('default/web'));
      const sig = endpointsSignature(snap, model.endpointsInFiles ?? []);
      assert.equal(withEndpointsOf(model, objects([...after], fallback), sig), null, `${before} -> ${after}`);
    }
  });

  it('keeps a Service with more ready endpoints than one DNS answer carries in the files', () => {
    const many = Array.from({ length: 301 }, (_, i) => `10.1.${i >> 8}.${i & 255}`);
    const upstreams = renderModel(translate(objects(many), DNS)).get('ingress-sidecar-upstreams.conf')!;
    assert.doesNotMatch(upstreams, /service=http resolve/);
    assert.match(upstreams, /server 10\.1\.1\.44:8080;/);
    // Growing past it from a dynamic upstream takes a full pass (which makes it static).
    const snap = objects(['10.0.0.1']);
    const model = translate(snap, DNS);
    assert.equal(withEndpointsOf(model, objects(many), endpointsSignature(snap, model.endpointsInFiles ?? [])), null);
  });

  it('chooses dns only where the serving nginx resolves upstream servers (1.27.3)', () => {
    assert.deepEqual(endpointsModeFor('auto', '1.30.4'), { mode: 'dns' });
    assert.deepEqual(endpointsModeFor('auto', '1.27.3'), { mode: 'dns' });
    assert.deepEqual(endpointsModeFor('auto', '1.27.2'), { mode: 'reload' });
    assert.deepEqual(endpointsModeFor('auto', undefined), { mode: 'reload' });
    assert.deepEqual(endpointsModeFor('reload', '1.30.4'), { mode: 'reload' });
    const forced = endpointsModeFor('dns', '1.22.1');
    assert.equal(forced.mode, 'reload');
    assert.match(forced.warning ?? '', /needs nginx 1\.27\.3 or later.*1\.22\.1/);
  });
});
