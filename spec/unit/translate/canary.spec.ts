// Canary Ingresses in the model: which paths they take a share of, and what is reported.
import { deepStrictEqual, equal } from 'node:assert/strict';
import { backendService, ingress, path, rule, snapshot } from '../../helpers/builders.ts';
import { canaryPercent } from '../../../src/translate/canaries.ts';
import { model, server } from './common.ts';

const C = 'nginx.ingress.kubernetes.io/';
const canary = (extra: Record<string, string>) =>
  Object.fromEntries(Object.entries({ canary: 'true', ...extra }).map(([k, v]) => [`${C}${k}`, v]));

describe('translate: canary Ingresses', () => {
  const backends = [
    backendService('web', '10.0.0.1'),
    backendService('web-v2', '10.0.0.2'),
    backendService('web-v3', '10.0.0.3'),
  ];
  const main = ingress('main', [rule('shop.test', path('/', 'Prefix', 'web'), path('/cart', 'Exact', 'web'))], {
    age: 0,
  });

  it("splits the main Ingress's identical paths only; the others are reported", () => {
    const c = ingress(
      'c',
      [
        rule(
          'shop.test',
          path('/', 'Prefix', 'web-v2'),
          path('/cart', 'Prefix', 'web-v2'),
          path('/new', 'Prefix', 'web-v2'),
        ),
      ],
      {
        age: 1,
        annotations: canary({ 'canary-by-header': 'X-Canary', 'proxy-body-size': '8m' }),
      },
    );
    const m = model(snapshot({ ingresses: [main, c], backends }));
    const root = server(m, 'shop.test').locations.find((l) => l.path === '/')!;
    const cart = server(m, 'shop.test').locations.find((l) => l.path === '/cart')!;
    equal(root.action.kind === 'proxy' && root.action.via, m.canaries[0]!.variable);
    deepStrictEqual(cart.action, { kind: 'proxy', upstream: 'default_web_80' }, 'an Exact /cart is not a Prefix /cart');
    deepStrictEqual(
      m.canaries.map((x) => [x.main, x.canary, x.header, x.cookie, x.weight, x.ingress, x.mainIngress]),
      [
        [
          'default_web_80',
          'default_web-v2_80',
          { source: 'http_x_canary', value: null },
          null,
          0,
          'default/c',
          'default/main',
        ],
      ],
    );
    deepStrictEqual(m.served, ['default/c', 'default/main']);
    deepStrictEqual(
      m.rejections.map((r) => r.reason),
      [
        `annotation ${C}proxy-body-size has no effect on a canary Ingress: the settings of the Ingress it splits traffic with apply`,
        "canary path /cart (Prefix) on host shop.test: no other Ingress of the class serves it, and a canary only takes a share of a served path's requests",
        "canary path /new (Prefix) on host shop.test: no other Ingress of the class serves it, and a canary only takes a share of a served path's requests",
      ],
    );
    equal(
      m.upstreams.some((u) => u.name === 'default_web-v2_80'),
      true,
      'the canary upstream is rendered',
    );
  });

  it('a canary that cannot be served as asked (canary-by-header-pattern, not implemented) takes no share; a main Ingress that cannot answers 503 with its canary', () => {
    const c = ingress('c', [rule('shop.test', path('/', 'Prefix', 'web-v2'))], {
      age: 1,
      annotations: canary({ 'canary-by-header': 'X-Canary', 'canary-by-header-pattern': '^v2' }),
    });
    const m = model(snapshot({ ingresses: [main, c], backends }));
    deepStrictEqual(server(m, 'shop.test').locations.find((l) => l.path === '/')!.action, {
      kind: 'proxy',
      upstream: 'default_web_80',
    });
    deepStrictEqual([m.canaries, m.served], [[], ['default/main']]);
    deepStrictEqual(
      m.rejections.map((r) => [r.ingress, r.severity]),
      [['default/c', 'rejected']],
    );
    const locked = ingress('main', [rule('shop.test', path('/', 'Prefix', 'web'))], {
      age: 0,
      annotations: { [`${C}auth-url`]: 'http://auth.test/' },
    });
    const weighted = ingress('w', [rule('shop.test', path('/', 'Prefix', 'web-v2'))], {
      age: 1,
      annotations: canary({ 'canary-weight': '100' }),
    });
    const m2 = model(snapshot({ ingresses: [locked, weighted], backends }));
    equal(
      server(m2, 'shop.test').locations.find((l) => l.path === '/')!.action.kind,
      'unavailable',
      'a canary never opens what its main Ingress keeps closed',
    );
  });

  it('weight 100 without header or cookie sends everything to the canary; the older canary wins', () => {
    const all = ingress('all', [rule('shop.test', path('/', 'Prefix', 'web-v2'))], {
      age: 1,
      annotations: canary({ 'canary-weight': '100' }),
    });
    const late = ingress('late', [rule('shop.test', path('/', 'Prefix', 'web-v3'))], {
      age: 2,
      annotations: canary({ 'canary-weight': '50' }),
    });
    const m = model(snapshot({ ingresses: [main, all, late], backends }));
    deepStrictEqual(server(m, 'shop.test').locations.find((l) => l.path === '/')!.action, {
      kind: 'proxy',
      upstream: 'default_web-v2_80',
    });
    deepStrictEqual(m.canaries, []);
    deepStrictEqual(m.served, ['default/all', 'default/main']);
    deepStrictEqual(
      m.rejections.filter((r) => r.ingress === 'default/late').map((r) => r.reason),
      ['canary path / (Prefix) on host shop.test: the older canary Ingress default/all already splits its requests'],
    );
  });

  it('a canary whose Service cannot serve leaves the main Ingress serving everything', () => {
    const broken = ingress('broken', [rule('shop.test', path('/', 'Prefix', 'missing'))], {
      age: 1,
      annotations: canary({ 'canary-weight': '50' }),
    });
    const m = model(snapshot({ ingresses: [main, broken], backends }));
    deepStrictEqual(server(m, 'shop.test').locations.find((l) => l.path === '/')!.action, {
      kind: 'proxy',
      upstream: 'default_web_80',
    });
    deepStrictEqual(m.served, ['default/main']);
    deepStrictEqual(
      m.rejections.map((r) => r.reason),
      [
        'Service default/missing not found',
        'canary path / (Prefix) on host shop.test: its backend cannot serve (Service default/missing not found); all requests go to default/main',
      ],
    );
  });

  it('weights out of a total become split_clients percentages with two decimals, never 0 or 100 by rounding', () => {
    const share = (weight: string, total: string) => {
      const c = ingress('c', [rule('shop.test', path('/', 'Prefix', 'web-v2'))], {
        age: 1,
        annotations: canary({ 'canary-weight': weight, 'canary-weight-total': total }),
      });
      return model(snapshot({ ingresses: [main, c], backends })).canaries[0]?.weight;
    };
    equal(share('25', '100'), 25);
    equal(share('1', '1000'), 0.1);
    equal(share('1', '1000000'), 0.01);
    equal(share('999999', '1000000'), 99.99);
    equal(share('1', '3'), 33.33);
  });
});

describe('translate: canary weights', () => {
  const weight = (w: number, total = 100) => canaryPercent({ weight: w, total, header: null, cookie: null });

  it('is a percentage with two decimals', () => {
    equal(weight(25), 25);
    equal(weight(1, 3), 33.33);
  });

  it('is never rounded to all or nothing', () => {
    equal(weight(1, 1_000_000), 0.01);
    equal(weight(999_999, 1_000_000), 99.99);
    equal(weight(0), 0);
    equal(weight(100), 100);
    equal(weight(150), 100);
  });
});
