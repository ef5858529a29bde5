import { deepStrictEqual } from 'node:assert/strict';
import { backendService, ingress, path, rule, snapshot } from '../../helpers/builders.ts';
import { model, routes, server } from './common.ts';

describe('translate: conflicting Ingresses', () => {
  const backends = [backendService('old'), backendService('new')];

  it('gives a contested path to the oldest Ingress and reports the loser, whatever the list order', () => {
    const older = ingress('zz-older', [rule('x.test', path('/api', 'Prefix', 'old'))], { age: 1 });
    const newer = ingress(
      'aa-newer',
      [rule('x.test', path('/api', 'ImplementationSpecific', 'new'), path('/web', 'Exact', 'new'))],
      { age: 2 },
    );
    for (const ingresses of [
      [older, newer],
      [newer, older],
    ]) {
      const m = model(snapshot({ ingresses, backends }));
      deepStrictEqual(routes(server(m, 'x.test')), [
        '/api/ -> default_old_80',
        '= /api -> default_old_80',
        '= /web -> default_new_80',
        '/ -> 404',
      ]);
      deepStrictEqual(m.rejections, [
        {
          ingress: 'default/aa-newer',
          severity: 'partial',
          reason:
            'path /api (ImplementationSpecific) on host x.test is already served by the older Ingress default/zz-older',
        },
      ]);
    }
  });

  it("Prefix /foo/bar and /foo/bar/ both serve: /foo/bar itself to the first, everything below to the second (ingress-nginx's Path Priority)", () => {
    for (const [a, b] of [
      [1, 2],
      [2, 1],
    ]) {
      const bare = ingress('bare', [rule('x.test', path('/foo/bar', 'Prefix', 'old'))], { age: a });
      const slashed = ingress('slashed', [rule('x.test', path('/foo/bar/', 'Prefix', 'new'))], { age: b });
      const m = model(snapshot({ ingresses: [bare, slashed], backends }));
      deepStrictEqual(routes(server(m, 'x.test')), [
        '/foo/bar/ -> default_new_80',
        '= /foo/bar -> default_old_80',
        '/ -> 404',
      ]);
      deepStrictEqual([m.rejections, m.served], [[], ['default/bare', 'default/slashed']]);
    }
    // In one Ingress, and beside an Exact /foo/bar (Exact wins the path itself).
    const one = ingress('one', [
      rule(
        'x.test',
        path('/foo/bar', 'Prefix', 'old'),
        path('/foo/bar/', 'Prefix', 'new'),
        path('/foo/bar', 'Exact', 'web'),
      ),
    ]);
    const m = model(snapshot({ ingresses: [one], backends: [...backends, backendService('web')] }));
    deepStrictEqual(routes(server(m, 'x.test')), [
      '/foo/bar/ -> default_new_80',
      '= /foo/bar -> default_web_80',
      '/ -> 404',
    ]);
  });

  it('reports a path listed twice in one Ingress with another backend (nginx serves one route)', () => {
    const twice = ingress('twice', [
      rule(
        'x.test',
        path('/a', 'Prefix', 'old'),
        path('/a', 'Prefix', 'new'),
        path('/b', 'Exact', 'old'),
        path('/b', 'Exact', 'old'),
      ),
    ]);
    const m = model(snapshot({ ingresses: [twice], backends }));
    deepStrictEqual(routes(server(m, 'x.test')), [
      '/a/ -> default_old_80',
      '= /a -> default_old_80',
      '= /b -> default_old_80',
      '/ -> 404',
    ]);
    deepStrictEqual(
      m.rejections.map((r) => r.reason),
      [
        'path /a (Prefix) on host x.test is not used: this Ingress already lists /a (Prefix) there, which nginx serves as the same route, to Service default/old:80',
      ],
    );
  });

  it("reports a newer Ingress's defaultBackend that an older one's replaces on a shared host", () => {
    const older = ingress('older', [rule('x.test', path('/a', 'Exact', 'old'))], {
      age: 1,
      defaultBackend: { service: 'old', port: 80 },
    });
    const newer = ingress('newer', [rule('x.test', path('/b', 'Exact', 'new'))], {
      age: 2,
      defaultBackend: { service: 'new', port: 80 },
    });
    const m = model(snapshot({ ingresses: [newer, older], backends }));
    deepStrictEqual(routes(server(m, 'x.test')), [
      '= /a -> default_old_80',
      '= /b -> default_new_80',
      '/ -> default_old_80',
    ]);
    deepStrictEqual(
      m.rejections.map((r) => [r.ingress, r.reason]),
      [
        [
          'default/newer',
          "defaultBackend is not used for host x.test: the older Ingress default/older has rules for it, and its defaultBackend answers the host's unmatched paths",
        ],
      ],
    );
  });

  it('breaks a tie in age by namespace/name', () => {
    const a = ingress('a', [rule('x.test', path('/', 'Prefix', 'old'))], { age: 5 });
    const b = ingress('b', [rule('x.test', path('/', 'Prefix', 'new'))], { age: 5 });
    deepStrictEqual(routes(server(model(snapshot({ ingresses: [b, a], backends })), 'x.test')), [
      '/ -> default_old_80',
    ]);
  });

  it('an Ingress with only a defaultBackend catches every unknown host, not the unmatched paths of named hosts', () => {
    const catchAll = ingress('catch-all', [], { defaultBackend: { service: 'old', port: 80 } });
    const web = ingress('web', [rule('x.test', path('/api', 'Prefix', 'new'))]);
    const m = model(snapshot({ ingresses: [catchAll, web], backends }));
    deepStrictEqual(routes(server(m, null)), ['/ -> default_old_80']);
    // ingress-nginx: x.test's server is web's, whose "/" is the default backend (404), not catch-all's.
    deepStrictEqual(routes(server(m, 'x.test')), ['/api/ -> default_new_80', '= /api -> default_new_80', '/ -> 404']);
    deepStrictEqual(m.served, ['default/catch-all', 'default/web']);
  });

  it("a host's unmatched paths go to its own Ingress's defaultBackend before the global one", () => {
    const globalDefault = ingress('global', [], { defaultBackend: { service: 'old', port: 80 }, age: 1 });
    const own = ingress('own', [rule('x.test', path('/api', 'Exact', 'old'))], {
      defaultBackend: { service: 'new', port: 'http' },
      age: 2,
    });
    const m = model(snapshot({ ingresses: [own, globalDefault], backends }));
    deepStrictEqual(routes(server(m, 'x.test')), ['= /api -> default_old_80', '/ -> default_new_80']);
    deepStrictEqual(routes(server(m, null)), ['/ -> default_old_80']);
  });

  it('reports a second defaultBackend-only Ingress as unused', () => {
    const first = ingress('first', [], { defaultBackend: { service: 'old', port: 80 }, age: 1 });
    const second = ingress('second', [], { defaultBackend: { service: 'new', port: 80 }, age: 2 });
    const m = model(snapshot({ ingresses: [second, first], backends }));
    deepStrictEqual(routes(server(m, null)), ['/ -> default_old_80']);
    deepStrictEqual(
      m.rejections.map((r) => [r.ingress, r.severity]),
      [['default/second', 'partial']],
    );
  });
});
