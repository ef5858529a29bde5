import { deepStrictEqual } from 'node:assert/strict';
import { backendService, ingress, path, rule, snapshot } from '../helpers/builders.ts';
import { model, routes, server } from './common.ts';

describe('translate: conflicting Ingresses', () => {
  const backends = [backendService('old'), backendService('new')];

  it('gives a contested path to the oldest Ingress and reports the loser, whatever the list order', () => {
    const older = ingress('zz-older', [rule('x.test', path('/api', 'Prefix', 'old'))], { age: 1 });
    const newer = ingress('aa-newer', [rule('x.test', path('/api/', 'Prefix', 'new'), path('/web', 'Exact', 'new'))], { age: 2 });
    for (const ingresses of [[older, newer], [newer, older]]) {
      const m = model(snapshot({ ingresses, backends }));
      deepStrictEqual(routes(server(m, 'x.test')), ['/api/ -> default_old_80', '= /api -> default_old_80', '= /web -> default_new_80', '/ -> 404']);
      deepStrictEqual(m.rejections, [
        { ingress: 'default/aa-newer', severity: 'partial', reason: 'path /api/ (Prefix) on host x.test is already served by the older Ingress default/zz-older' },
      ]);
    }
  });

  it('breaks a tie in age by namespace/name', () => {
    const a = ingress('a', [rule('x.test', path('/', 'Prefix', 'old'))], { age: 5 });
    const b = ingress('b', [rule('x.test', path('/', 'Prefix', 'new'))], { age: 5 });
    deepStrictEqual(routes(server(model(snapshot({ ingresses: [b, a], backends })), 'x.test')), ['/ -> default_old_80']);
  });

  it('an Ingress with only a defaultBackend catches every unknown host and unmatched path', () => {
    const catchAll = ingress('catch-all', [], { defaultBackend: { service: 'old', port: 80 } });
    const web = ingress('web', [rule('x.test', path('/api', 'Prefix', 'new'))]);
    const m = model(snapshot({ ingresses: [catchAll, web], backends }));
    deepStrictEqual(routes(server(m, null)), ['/ -> default_old_80']);
    deepStrictEqual(routes(server(m, 'x.test')), ['/api/ -> default_new_80', '= /api -> default_new_80', '/ -> default_old_80']);
    deepStrictEqual(m.served, ['default/catch-all', 'default/web']);
  });

  it("a host's unmatched paths go to its own Ingress's defaultBackend before the global one", () => {
    const globalDefault = ingress('global', [], { defaultBackend: { service: 'old', port: 80 }, age: 1 });
    const own = ingress('own', [rule('x.test', path('/api', 'Exact', 'old'))], { defaultBackend: { service: 'new', port: 'http' }, age: 2 });
    const m = model(snapshot({ ingresses: [own, globalDefault], backends }));
    deepStrictEqual(routes(server(m, 'x.test')), ['= /api -> default_old_80', '/ -> default_new_80']);
    deepStrictEqual(routes(server(m, null)), ['/ -> default_old_80']);
  });

  it('reports a second defaultBackend-only Ingress as unused', () => {
    const first = ingress('first', [], { defaultBackend: { service: 'old', port: 80 }, age: 1 });
    const second = ingress('second', [], { defaultBackend: { service: 'new', port: 80 }, age: 2 });
    const m = model(snapshot({ ingresses: [second, first], backends }));
    deepStrictEqual(routes(server(m, null)), ['/ -> default_old_80']);
    deepStrictEqual(m.rejections.map((r) => [r.ingress, r.severity]), [['default/second', 'partial']]);
  });
});
