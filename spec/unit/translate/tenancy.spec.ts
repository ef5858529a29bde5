// Tenancy: what an Ingress of one namespace can do to the hosts and paths of another. A host
// belongs to the namespace of its oldest Ingress; a canary splits only its own namespace's paths.
import { deepStrictEqual, equal, match, ok } from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import type { RoutingModel } from '../../../src/model.ts';
import { renderModel } from '../../../src/nginx/render.ts';
import { translate, type TranslateOptions } from '../../../src/translate/index.ts';
import { makeCert, tlsSecret, type TestCert } from '../../helpers/certs.ts';
import { ingress, path, rule, service, slice, snapshot } from '../../helpers/builders.ts';
import { OPTS, routes, server } from './common.ts';

const C = 'nginx.ingress.kubernetes.io/';
const annotations = (a: Record<string, string>) =>
  Object.fromEntries(Object.entries(a).map(([k, v]) => [`${C}${k}`, v]));

/** A Service with one ready endpoint, in any namespace. */
function backend(namespace: string, name: string, ip: string) {
  return {
    service: service(name, [{ name: 'http', port: 80 }], { namespace }),
    slice: slice(name, { name: 'http', port: 8080 }, [ip], { namespace }),
  };
}

const backends = [
  backend('victim', 'web', '10.0.0.1'),
  backend('victim', 'web-v2', '10.0.0.2'),
  backend('evil', 'grab', '10.0.0.9'),
  backend('evil', 'fallback', '10.0.0.8'),
];
const victim = (extra: { age?: number; opts?: Parameters<typeof ingress>[2] } = {}) =>
  ingress('shop', [rule('shop.test', path('/', 'Prefix', 'web'))], {
    namespace: 'victim',
    age: extra.age ?? 0,
    ...extra.opts,
  });
const run = (ingresses: V1Ingress[], opts: Partial<TranslateOptions> = {}): RoutingModel =>
  translate(snapshot({ ingresses, backends }), { ...OPTS, ...opts });
const reasons = (m: RoutingModel, ingressKey: string) =>
  m.rejections.filter((r) => r.ingress === ingressKey).map((r) => r.reason);

describe('translate: tenancy between namespaces', () => {
  describe('canaries', () => {
    const weighted = (namespace: string, service: string) =>
      ingress('takeover', [rule('shop.test', path('/', 'Prefix', service))], {
        namespace,
        age: 5,
        annotations: annotations({ canary: 'true', 'canary-weight': '100' }),
      });

    it("a canary of another namespace takes none of a host's traffic, and is told why", () => {
      const m = run([victim(), weighted('evil', 'grab')]);
      deepStrictEqual(routes(server(m, 'shop.test')), ['/ -> victim_web_80']);
      deepStrictEqual(m.served, ['victim/shop']);
      deepStrictEqual(reasons(m, 'evil/takeover'), [
        'canary path / (Prefix) on host shop.test: the Ingress it would split, victim/shop, is in another namespace; a canary splits only the traffic of its own namespace (--allow-cross-namespace-canary allows more)',
      ]);
      equal(
        m.upstreams.some((u) => u.name.startsWith('evil_')),
        false,
        "the other namespace's Service gets no upstream",
      );
    });

    it('a canary of the same namespace still attaches; --allow-cross-namespace-canary lets another namespace attach', () => {
      const own = run([victim(), weighted('victim', 'web-v2')]);
      deepStrictEqual(routes(server(own, 'shop.test')), ['/ -> victim_web-v2_80']);
      deepStrictEqual(reasons(own, 'victim/takeover'), []);
      const allowed = run([victim(), weighted('evil', 'grab')], { allowCrossNamespaceCanary: true });
      deepStrictEqual(routes(server(allowed, 'shop.test')), ['/ -> evil_grab_80']);
      deepStrictEqual(allowed.served, ['evil/takeover', 'victim/shop']);
    });

    it('the rendered comment of a split location names both Ingresses and both Services', () => {
      for (const weight of ['100', '30']) {
        const c = ingress('v2', [rule('shop.test', path('/', 'Prefix', 'web-v2'))], {
          namespace: 'victim',
          age: 5,
          annotations: annotations({ canary: 'true', 'canary-weight': weight }),
        });
        const file = renderModel(run([victim(), c])).get('ingress-sidecar-server-shop.test.conf')!;
        ok(
          file.includes(
            '# Prefix / from Ingress victim/shop -> Service victim/web:80, and canary Ingress victim/v2 -> Service victim/web-v2:80\n',
          ),
          `weight ${weight}:\n${file}`,
        );
      }
    });
  });

  describe('hosts', () => {
    it("an Ingress of another namespace adds no path to a host another namespace's older Ingress serves", () => {
      const grab = ingress('grab', [rule('shop.test', path('/admin', 'Prefix', 'grab'), path('/', 'Exact', 'grab'))], {
        namespace: 'evil',
        age: 5,
      });
      const m = run([victim(), grab]);
      deepStrictEqual(routes(server(m, 'shop.test')), ['/ -> victim_web_80']);
      deepStrictEqual(server(m, 'shop.test').ingresses, ['victim/shop']);
      deepStrictEqual(reasons(m, 'evil/grab'), [
        'rules for host shop.test are not used: the host belongs to namespace victim, whose Ingress victim/shop is the oldest with rules for it (a host is served by one namespace)',
      ]);
      deepStrictEqual(m.served, ['victim/shop']);
    });

    it('an Ingress that is rejected whole keeps its hosts from other namespaces (not from its own)', () => {
      const broken = ingress(
        'shop',
        [rule('shop.test', path('/', 'Prefix', 'web'), path('no-slash', 'Prefix', 'web'))],
        { namespace: 'victim', age: 0 },
      );
      const grab = ingress('grab', [rule('shop.test', path('/', 'Prefix', 'grab'))], { namespace: 'evil', age: 5 });
      const m = run([broken, grab]);
      deepStrictEqual(m.servers, []);
      match(
        reasons(m, 'evil/grab').join('\n'),
        /rules for host shop\.test are not used: the host belongs to namespace victim/,
      );
      const sibling = ingress('fix', [rule('shop.test', path('/', 'Prefix', 'web-v2'))], {
        namespace: 'victim',
        age: 6,
      });
      deepStrictEqual(routes(server(run([broken, grab, sibling]), 'shop.test')), ['/ -> victim_web-v2_80']);
    });

    it('--allow-cross-namespace-hosts shares hosts across namespaces as ingress-nginx does; a path still goes to its oldest Ingress', () => {
      const grab = ingress('grab', [rule('shop.test', path('/admin', 'Prefix', 'grab'), path('/', 'Prefix', 'grab'))], {
        namespace: 'evil',
        age: 5,
      });
      const m = run([victim(), grab], { allowCrossNamespaceHosts: true });
      deepStrictEqual(routes(server(m, 'shop.test')), [
        '/admin/ -> evil_grab_80',
        '= /admin -> evil_grab_80',
        '/ -> victim_web_80',
      ]);
      deepStrictEqual(reasons(m, 'evil/grab'), [
        'path / (Prefix) on host shop.test is already served by the older Ingress victim/shop',
      ]);
      deepStrictEqual(m.served, ['evil/grab', 'victim/shop']);
    });

    it('the same Ingress keeps its rules for hosts it does own', () => {
      const grab = ingress(
        'grab',
        [rule('shop.test', path('/admin', 'Prefix', 'grab')), rule('evil.test', path('/', 'Prefix', 'grab'))],
        { namespace: 'evil', age: 5 },
      );
      const m = run([victim(), grab]);
      deepStrictEqual(routes(server(m, 'evil.test')), ['/ -> evil_grab_80']);
      deepStrictEqual(m.served, ['evil/grab', 'victim/shop']);
    });

    it("another namespace's defaultBackend does not answer a host's unmatched paths", () => {
      const api = ingress('shop', [rule('shop.test', path('/api', 'Prefix', 'web'))], { namespace: 'victim', age: 0 });
      // A rule for the victim's host plus a defaultBackend: once the host's fallback, now nothing.
      const grab = ingress('grab', [rule('shop.test', path('/zzz', 'Exact', 'grab'))], {
        namespace: 'evil',
        age: 5,
        defaultBackend: { service: 'fallback', port: 80 },
      });
      const m = run([api, grab]);
      deepStrictEqual(routes(server(m, 'shop.test')), [
        '/api/ -> victim_web_80',
        '= /api -> victim_web_80',
        '/ -> 404',
      ]);
    });

    it("another namespace's global default backend (and its app-root, redirects, error pages) stays off a host", () => {
      const api = ingress('shop', [rule('shop.test', path('/api', 'Prefix', 'web'))], {
        namespace: 'victim',
        age: 5,
        annotations: annotations({ 'custom-http-errors': '502' }),
      });
      const catchAll = ingress('catch', [], {
        namespace: 'evil',
        age: 0,
        defaultBackend: { service: 'fallback', port: 80 },
        annotations: annotations({ 'app-root': '/phish', 'permanent-redirect': 'https://evil.test/' }),
      });
      const m = run([api, catchAll]);
      const s = server(m, 'shop.test');
      deepStrictEqual(routes(s), ['/api/ -> victim_web_80', '= /api -> victim_web_80', '/ -> 404']);
      equal(s.locations.find((l) => l.path === '/')!.settings.redirect, null);
      equal(s.locations.find((l) => l.path === '/')!.settings.appRoot, null);
      deepStrictEqual(s.errorLocations, [], "the victim's error pages do not go to evil/fallback");
      // The default server (hosts no rule names) is the global default's, as before.
      deepStrictEqual(routes(server(m, null)), ['/ -> evil_fallback_80']);
      // Nor within one namespace: as in ingress-nginx, an Ingress without rules answers only hosts no rule names.
      const same = ingress('catch', [], {
        namespace: 'victim',
        age: 0,
        defaultBackend: { service: 'web-v2', port: 80 },
      });
      deepStrictEqual(routes(server(run([api, same]), 'shop.test')), [
        '/api/ -> victim_web_80',
        '= /api -> victim_web_80',
        '/ -> 404',
      ]);
    });
  });

  describe('TLS', function () {
    this.timeout(30_000);
    let generated: TestCert;
    let evilCert: TestCert;
    let tlsOpts: Partial<TranslateOptions>;
    before(() => {
      generated = makeCert({ cn: 'generated default' });
      evilCert = makeCert({ dns: ['shop.test'] });
      tlsOpts = {
        now: new Date(),
        tls: { httpsPort: 443, certDir: '/certs', defaultCertificate: { pem: generated.pem } },
      };
    });
    const runTls = (ingresses: V1Ingress[]) =>
      translate(
        snapshot({
          ingresses,
          backends,
          secrets: [tlsSecret('stolen', evilCert.crt, evilCert.key, { namespace: 'evil' })],
        }),
        { ...OPTS, ...tlsOpts },
      );

    it("another namespace's spec.tls neither gives a host its certificate nor turns on redirects for its paths", () => {
      const grab = ingress('grab', [rule('shop.test', path('/zzz', 'Exact', 'grab'))], {
        namespace: 'evil',
        age: 5,
        tls: [{ hosts: ['shop.test'], secretName: 'stolen' }],
        annotations: annotations({ 'force-ssl-redirect': 'true' }),
      });
      const m = runTls([victim(), grab]);
      const s = server(m, 'shop.test');
      deepStrictEqual(
        s.tls,
        { certPath: `/certs/${m.certificates[0]!.file}`, secret: null, ingress: null },
        'the host has no TLS of its own: HTTPS answers it with the default certificate',
      );
      deepStrictEqual(
        s.locations.map((l) => [l.path, l.sslRedirect]),
        [['/', false]],
      );
      deepStrictEqual(m.certificates.length, 1, 'only the default certificate is written');
    });

    it("when the owner's Secret is unusable, the host gets the default certificate, not another namespace's", () => {
      const own = victim({ opts: { tls: [{ hosts: ['shop.test'], secretName: 'missing' }] } });
      const grab = ingress('grab', [rule('shop.test', path('/zzz', 'Exact', 'grab'))], {
        namespace: 'evil',
        age: 5,
        tls: [{ hosts: ['shop.test'], secretName: 'stolen' }],
      });
      const m = runTls([own, grab]);
      deepStrictEqual(server(m, 'shop.test').tls, {
        certPath: `/certs/${m.certificates[0]!.file}`,
        secret: null,
        ingress: 'victim/shop',
      });
      match(reasons(m, 'victim/shop').join('\n'), /Secret victim\/missing not found/);
    });
  });
});
