// spec.defaultBackend as ingress-nginx uses it (internal/ingress/controller/controller.go,
// createServers): an Ingress's defaultBackend answers the unmatched paths of the hosts it is the
// oldest Ingress for; only an Ingress without rules answers the hosts no rule names (the default
// server); --default-backend-service, else 404, answers the rest.
import { deepStrictEqual, equal, match } from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import type { RoutingModel } from '../../../src/model.ts';
import { translate, type TranslateOptions } from '../../../src/translate/index.ts';
import { backendService, ingress, path, rule, service, slice, snapshot } from '../../helpers/builders.ts';
import { OPTS, routes, server } from './common.ts';

const backends = [backendService('web'), backendService('dflt', '10.0.0.2'), backendService('edge', '10.0.0.3')];
const run = (ingresses: V1Ingress[], opts: Partial<TranslateOptions> = {}, extra = {}): RoutingModel =>
  translate(snapshot({ ingresses, backends, ...extra }), { ...OPTS, ...opts });
const reasons = (m: RoutingModel) => m.rejections.map((r) => `${r.ingress}: ${r.reason}`);
const dflt = { service: 'dflt', port: 80 };

describe('translate: spec.defaultBackend as ingress-nginx', () => {
  it("rules with hosts plus a defaultBackend: the defaultBackend answers those hosts' unmatched paths, not unknown hosts", () => {
    const shop = ingress('shop', [rule('a.test', path('/api', 'Exact', 'web')), rule('b.test')], {
      defaultBackend: dflt,
    });
    const m = run([shop]);
    deepStrictEqual(routes(server(m, 'a.test')), ['= /api -> default_web_80', '/ -> default_dflt_80']);
    // A rule without paths still makes the host's server, all of it answered by the defaultBackend.
    deepStrictEqual(routes(server(m, 'b.test')), ['/ -> default_dflt_80']);
    deepStrictEqual(routes(server(m, null)), ['/ -> 404']);
    deepStrictEqual(m.served, ['default/shop']);
    deepStrictEqual(reasons(m), ['default/shop: rules[1] has no http paths and serves nothing']);
  });

  it('an Ingress with only a defaultBackend answers unknown hosts; the oldest such Ingress wins', () => {
    const catchAll = ingress('catch-all', [], { defaultBackend: dflt, age: 2 });
    const older = ingress('older', [], { defaultBackend: { service: 'edge', port: 80 }, age: 1 });
    const m = run([catchAll, older]);
    deepStrictEqual(routes(server(m, null)), ['/ -> default_edge_80']);
    deepStrictEqual(reasons(m), [
      'default/catch-all: defaultBackend is not used: the older Ingress default/older already provides the default backend (an Ingress without rules answers hosts no rule names)',
    ]);
  });

  it('rules without a host plus a defaultBackend: the defaultBackend is used nowhere, and said so', () => {
    const hostless = ingress('hostless', [rule(undefined, path('/api', 'Prefix', 'web'))], { defaultBackend: dflt });
    const m = run([hostless]);
    deepStrictEqual(routes(server(m, null)), ['/api/ -> default_web_80', '= /api -> default_web_80', '/ -> 404']);
    deepStrictEqual(reasons(m), [
      'default/hostless: defaultBackend is not used: an Ingress with rules uses it only for the unmatched paths of its own hosts, and these rules have none (as in ingress-nginx, hosts no rule names get the defaultBackend of an Ingress without rules)',
    ]);
    // With a host rule too, the host gets it, and nothing is reported.
    const both = ingress(
      'both',
      [rule(undefined, path('/api', 'Prefix', 'web')), rule('a.test', path('/x', 'Exact', 'web'))],
      { defaultBackend: dflt },
    );
    const m2 = run([both]);
    deepStrictEqual(routes(server(m2, 'a.test')), ['= /x -> default_web_80', '/ -> default_dflt_80']);
    deepStrictEqual(routes(server(m2, null)), ['/api/ -> default_web_80', '= /api -> default_web_80', '/ -> 404']);
    deepStrictEqual(reasons(m2), []);
  });

  it('the oldest Ingress with a rule for a host decides its unmatched paths, even when it has no defaultBackend', () => {
    const older = ingress('older', [rule('a.test', path('/a', 'Exact', 'web'))], { age: 1 });
    const newer = ingress('newer', [rule('a.test', path('/b', 'Exact', 'web'))], { age: 2, defaultBackend: dflt });
    const m = run([newer, older]);
    deepStrictEqual(routes(server(m, 'a.test')), ['= /a -> default_web_80', '= /b -> default_web_80', '/ -> 404']);
    deepStrictEqual(reasons(m), [
      "default/newer: defaultBackend is not used for host a.test: the older Ingress default/older has rules for it, and having no defaultBackend, it leaves the host's unmatched paths to the default backend (404)",
    ]);
    // A path "/" of any Ingress still takes the host's unmatched paths over its defaultBackend.
    const root = ingress('root', [rule('a.test', path('/', 'Prefix', 'edge'))], { age: 3 });
    deepStrictEqual(routes(server(run([newer, root]), 'a.test')), ['= /b -> default_web_80', '/ -> default_edge_80']);
  });

  it('a defaultBackend-only Ingress keeps "/" of the default server against a Prefix "/" without a host, older or newer', () => {
    const catchAll = ingress('catch-all', [], { defaultBackend: dflt, age: 5 });
    const hostless = ingress('hostless', [rule(undefined, path('/', 'Prefix', 'web'), path('/api', 'Exact', 'web'))], {
      age: 1,
    });
    const m = run([hostless, catchAll]);
    deepStrictEqual(routes(server(m, null)), ['= /api -> default_web_80', '/ -> default_dflt_80']);
    deepStrictEqual(reasons(m), [
      'default/hostless: path / (Prefix) on rules without a host is not used: the defaultBackend of Ingress default/catch-all, which has no rules, answers / for hosts no rule names (as in ingress-nginx)',
    ]);
    deepStrictEqual(m.served, ['default/catch-all', 'default/hostless']);
    // An Exact "/" is another route: it stays.
    const exact = ingress('exact', [rule(undefined, path('/', 'Exact', 'web'))], { age: 1 });
    deepStrictEqual(routes(server(run([exact, catchAll]), null)), ['= / -> default_web_80', '/ -> default_dflt_80']);
  });

  it('a defaultBackend-only Ingress of another namespace does not take a Prefix "/" without a host', () => {
    const hostless = ingress('hostless', [rule(undefined, path('/', 'Prefix', 'web'))], { age: 1 });
    const other = ingress('catch-all', [], { defaultBackend: dflt, age: 5, namespace: 'other' });
    const otherDflt = {
      service: service('dflt', [{ name: 'http', port: 80 }], { namespace: 'other' }),
      slice: slice('dflt', { name: 'http', port: 8080 }, ['10.0.0.4'], { namespace: 'other' }),
    };
    const m = run([hostless, other], {}, { backends: [...backends, otherDflt] });
    deepStrictEqual(routes(server(m, null)), ['/ -> default_web_80']);
    match(
      reasons(m).join('\n'),
      /other\/catch-all: defaultBackend is not used for \/: Ingress default\/hostless of namespace default/,
    );
  });

  describe('--default-backend-service', () => {
    const withEdge = { defaultBackendService: 'default/edge' };

    it('answers unknown hosts and the unmatched paths of hosts whose Ingress has no defaultBackend', () => {
      const web = ingress('web', [rule('a.test', path('/api', 'Exact', 'web'))]);
      const own = ingress('own', [rule('b.test', path('/api', 'Exact', 'web'))], { defaultBackend: dflt });
      const m = run([web, own], withEdge);
      deepStrictEqual(routes(server(m, null)), ['/ -> default_edge_80']);
      deepStrictEqual(routes(server(m, 'a.test')), ['= /api -> default_web_80', '/ -> default_edge_80']);
      deepStrictEqual(routes(server(m, 'b.test')), ['= /api -> default_web_80', '/ -> default_dflt_80']);
      deepStrictEqual(m.warnings, []);
      deepStrictEqual(m.served, ['default/own', 'default/web']);
    });

    it('gives way to an Ingress without rules on the default server', () => {
      const catchAll = ingress('catch-all', [], { defaultBackend: dflt });
      deepStrictEqual(routes(server(run([catchAll], withEdge), null)), ['/ -> default_dflt_80']);
    });

    it('a missing Service, or one without ready endpoints, leaves 404 and a warning', () => {
      const m = run([], { defaultBackendService: 'default/nope' });
      deepStrictEqual(routes(server(m, null)), ['/ -> 404']);
      deepStrictEqual(m.warnings, [
        '--default-backend-service: Service "default/nope" not found or has no ports; 404 answers instead',
      ]);
      const idle = run([], { defaultBackendService: 'default/idle' }, { services: [service('idle', [{ port: 80 }])] });
      deepStrictEqual(routes(server(idle, null)), ['/ -> 404']);
      match(idle.warnings[0]!, /^--default-backend-service: .*default\/idle.*; 404 answers instead$/);
    });

    it("answers custom-http-errors without a default-backend annotation; an Ingress's spec.defaultBackend never does", () => {
      const errs = { 'nginx.ingress.kubernetes.io/custom-http-errors': '502' };
      const catchAll = ingress('catch-all', [], { defaultBackend: dflt });
      const web = ingress('web', [rule('a.test', path('/api', 'Exact', 'web'))], {
        annotations: errs,
        defaultBackend: dflt,
      });
      const without = run([catchAll, web]);
      deepStrictEqual(server(without, 'a.test').errorLocations, []);
      match(reasons(without).join('\n'), /custom-http-errors/);
      const withService = run([catchAll, web], withEdge);
      deepStrictEqual(
        server(withService, 'a.test').errorLocations.map((e) => e.upstream),
        ['default_edge_80'],
      );
      equal(
        reasons(withService).some((r) => /custom-http-errors/.test(r)),
        false,
      );
    });
  });
});
