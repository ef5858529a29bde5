import { deepStrictEqual } from 'node:assert/strict';
import { backendService, ingress, path, rule, snapshot } from '../../helpers/builders.ts';
import { model, routes, server } from './common.ts';

describe('translate: paths become nginx locations', () => {
  const backends = [backendService('a'), backendService('b')];

  it('Prefix /foo covers /foo and the /foo/ subtree, never /foobar; a trailing slash is ignored', () => {
    for (const p of ['/foo', '/foo/']) {
      const m = model(snapshot({ ingresses: [ingress('i', [rule('x.test', path(p, 'Prefix', 'a'))])], backends }));
      deepStrictEqual(routes(server(m, 'x.test')), ['/foo/ -> default_a_80', '= /foo -> default_a_80', '/ -> 404']);
    }
  });

  it('Exact matches only the path itself, trailing slash significant', () => {
    const m = model(snapshot({ ingresses: [ingress('i', [rule('x.test', path('/foo/', 'Exact', 'a'))])], backends }));
    // `= /foo` pins /foo to what it would match anyway, instead of nginx's 301 to /foo/.
    deepStrictEqual(routes(server(m, 'x.test')), ['= /foo/ -> default_a_80', '= /foo -> 404', '/ -> 404']);
  });

  it('ImplementationSpecific behaves as Prefix; an empty path means /', () => {
    const m = model(
      snapshot({
        ingresses: [
          ingress('i', [
            rule('x.test', path('/api', 'ImplementationSpecific', 'a'), {
              service: 'b',
              port: 80,
              pathType: 'ImplementationSpecific',
            }),
          ]),
        ],
        backends,
      }),
    );
    deepStrictEqual(routes(server(m, 'x.test')), [
      '/api/ -> default_a_80',
      '= /api -> default_a_80',
      '/ -> default_b_80',
    ]);
  });

  it('Exact wins over Prefix for the same path, in whichever order and Ingress they are listed', () => {
    const prefix = path('/foo', 'Prefix', 'a');
    const exact = path('/foo', 'Exact', 'b');
    for (const order of [
      [prefix, exact],
      [exact, prefix],
    ]) {
      const m = model(snapshot({ ingresses: [ingress('i', [rule('x.test', ...order)])], backends }));
      deepStrictEqual(routes(server(m, 'x.test')), ['/foo/ -> default_a_80', '= /foo -> default_b_80', '/ -> 404']);
      deepStrictEqual(m.rejections, []);
    }
    const split = model(
      snapshot({
        ingresses: [
          ingress('p', [rule('x.test', prefix)], { age: 1 }),
          ingress('e', [rule('x.test', exact)], { age: 2 }),
        ],
        backends,
      }),
    );
    deepStrictEqual(routes(server(split, 'x.test')), ['/foo/ -> default_a_80', '= /foo -> default_b_80', '/ -> 404']);
  });

  it('orders locations longest first, then exact before prefix, independent of list order', () => {
    const ps = [path('/', 'Prefix', 'a'), path('/aaa', 'Prefix', 'b'), path('/aaa/bbb', 'Exact', 'a')];
    const a = routes(
      server(model(snapshot({ ingresses: [ingress('i', [rule('x.test', ...ps)])], backends })), 'x.test'),
    );
    const b = routes(
      server(model(snapshot({ ingresses: [ingress('i', [rule('x.test', ...ps.reverse())])], backends })), 'x.test'),
    );
    deepStrictEqual(a, [
      '= /aaa/bbb -> default_a_80',
      '/aaa/ -> default_b_80',
      '= /aaa -> default_b_80',
      '/ -> default_a_80',
    ]);
    deepStrictEqual(b, a);
  });

  it('decodes percent-escapes, since nginx matches the decoded URI', () => {
    const m = model(snapshot({ ingresses: [ingress('i', [rule('x.test', path('/a%20b', 'Exact', 'a'))])], backends }));
    deepStrictEqual(routes(server(m, 'x.test'))[0], '= /a b -> default_a_80');
  });

  it('rules without a host go to the default server; unknown paths there answer 404', () => {
    const m = model(snapshot({ ingresses: [ingress('i', [rule(undefined, path('/api', 'Prefix', 'a'))])], backends }));
    deepStrictEqual(m.servers, []);
    deepStrictEqual(routes(server(m, null)), ['/api/ -> default_a_80', '= /api -> default_a_80', '/ -> 404']);
  });
});

describe('translate: hosts', () => {
  const backends = [backendService('a')];

  it('an exact host is its own server_name; a wildcard matches exactly one label by regex', () => {
    const m = model(
      snapshot({
        ingresses: [
          ingress('i', [rule('foo.bar.com', path('/', 'Prefix', 'a')), rule('*.foo.com', path('/', 'Prefix', 'a'))]),
        ],
        backends,
      }),
    );
    deepStrictEqual(
      m.servers.map((s) => [s.host, s.serverName, s.file]),
      [
        ['*.foo.com', '~^[^.]+\\.foo\\.com$', 'ingress-sidecar-server-_wildcard_.foo.com.conf'],
        ['foo.bar.com', 'foo.bar.com', 'ingress-sidecar-server-foo.bar.com.conf'],
      ],
    );
  });

  // Ingresses of another namespace on the same host: spec/unit/translate/tenancy.spec.ts.
  it('merges several Ingresses of one namespace for one host into one server', () => {
    const m = model(
      snapshot({
        ingresses: [
          ingress('one', [rule('x.test', path('/one', 'Exact', 'a'))]),
          ingress('two', [rule('x.test', path('/two', 'Exact', 'b'))]),
        ],
        backends: [backendService('a'), backendService('b', '10.0.0.2')],
      }),
    );
    deepStrictEqual(
      m.servers.map((s) => s.ingresses),
      [['default/one', 'default/two']],
    );
    deepStrictEqual(routes(server(m, 'x.test')), ['= /one -> default_a_80', '= /two -> default_b_80', '/ -> 404']);
  });

  it('sizes server_names_hash for long host names', () => {
    const long = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.example.com`;
    const m = model(snapshot({ ingresses: [ingress('i', [rule(long, path('/', 'Prefix', 'a'))])], backends }));
    deepStrictEqual(m.serverNamesHash.bucketSize, 256);
  });
});
