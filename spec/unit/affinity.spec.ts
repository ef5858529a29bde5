// affinity: cookie by nginx version. balanced (ingress-nginx's default) is a consistent hash of the
// cookie on every nginx; persistent is nginx's sticky cookie (>= 1.29.6), one upstream per cookie
// path, and not served on older nginx. What a client sees: spec/integration/affinity-persistent.spec.ts.
import { deepStrictEqual, doesNotMatch, equal, match, ok, throws } from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import * as ann from '../../src/annotations/index.ts';
import { InvalidValue } from '../../src/grammar.ts';
import type { RoutingModel, Upstream } from '../../src/model.ts';
import { renderModel } from '../../src/nginx/render.ts';
import { translate } from '../../src/translate/index.ts';
import { backendService, ingress, path, rule, snapshot } from '../helpers/builders.ts';

const P = ann.ANNOTATION_PREFIX;
const prefixed = (a: Record<string, string>) => Object.fromEntries(Object.entries(a).map(([k, v]) => [`${P}${k}`, v]));
const parse = (a: Record<string, string>, stickyCookie = true) =>
  ann.parseAnnotations(prefixed(a), { namespace: 'default', tlsEnabled: true, stickyCookie });
const persistent = { affinity: 'cookie', 'affinity-mode': 'persistent' };
const refused = (a: Record<string, string>, reason: RegExp, stickyCookie = true) =>
  throws(
    () => parse(a, stickyCookie),
    (err: unknown) => err instanceof InvalidValue && reason.test(err.message),
    JSON.stringify(a),
  );

const backends = [backendService('app'), backendService('v2', '10.0.0.2'), backendService('errors', '10.0.0.3')];
const run = (ingresses: V1Ingress[], nginxVersion = '1.30.4'): RoutingModel =>
  translate(snapshot({ ingresses, backends }), { ingressClass: 'nginx', httpPort: 80, ipv6: false, nginxVersion });
const sessions = (a: Record<string, string>, ...paths: ReturnType<typeof path>[]) =>
  ingress('sessions', [rule('shop.test', ...paths)], { age: 0, annotations: prefixed(a) });
const sticky = (m: RoutingModel) =>
  m.upstreams.flatMap((u) => (u.balance.kind === 'sticky' ? [[u.service, u.balance.cookie] as const] : []));
const upstreamOf = (m: RoutingModel, p: string): Upstream => {
  const l = m.servers.flatMap((s) => s.locations).find((x) => x.path === p)!;
  ok(l.action.kind === 'proxy', `${p} proxies`);
  return m.upstreams.find((u) => l.action.kind === 'proxy' && u.name === l.action.upstream)!;
};

describe('affinity by nginx version', () => {
  it('knows which nginx has the sticky cookie', () => {
    deepStrictEqual(
      ['1.22.1', '1.29.5', '1.29.6', '1.30.4', '1.31.0', 'nginx/1.30.4', 'junk', undefined].map(ann.hasStickyCookie),
      [false, false, true, true, true, true, false, false],
    );
  });

  describe('parsing', () => {
    it('affinity-mode: balanced (the default) or persistent; persistent only where nginx has the sticky cookie', () => {
      equal(parse({ affinity: 'cookie' }).annotations.affinity?.mode, 'balanced');
      equal(parse({ affinity: 'cookie', 'affinity-mode': 'balanced' }).annotations.affinity?.mode, 'balanced');
      equal(parse(persistent).annotations.affinity?.mode, 'persistent');
      equal(parse({ ...persistent, 'affinity-mode': 'Persistent' }).annotations.affinity?.mode, 'persistent');
      deepStrictEqual(parse(persistent).notes, []);
      refused({ affinity: 'cookie', 'affinity-mode': 'sticky' }, /must be "balanced" or "persistent"/);
      refused(persistent, /affinity-mode: "persistent" needs nginx 1\.29\.6 or later/, false);
      // Balanced needs nothing of nginx.
      equal(parse({ affinity: 'cookie', 'affinity-mode': 'balanced' }, false).annotations.affinity?.mode, 'balanced');
      deepStrictEqual(parse({ 'affinity-mode': 'persistent' }, false).notes, [
        `annotation ${P}affinity-mode has no effect: ${P}affinity is not set`,
      ]);
    });

    it('refuses the one Max-Age nginx would send otherwise', () => {
      refused({ ...persistent, 'session-cookie-max-age': '2145916555' }, /reads it as "max"/);
      equal(parse({ ...persistent, 'session-cookie-max-age': '2145916556' }).annotations.affinity?.maxAge, 2145916556);
      equal(
        parse({ affinity: 'cookie', 'session-cookie-max-age': '2145916555' }).annotations.affinity?.maxAge,
        2145916555,
      );
    });

    it('session-cookie-change-on-failure: reported where it is not what happens', () => {
      const notes = (a: Record<string, string>) => parse(a).notes;
      const C = 'session-cookie-change-on-failure';
      deepStrictEqual(notes({ ...persistent, [C]: 'true' }), []);
      deepStrictEqual(notes({ affinity: 'cookie', [C]: 'false' }), []);
      deepStrictEqual(notes({ affinity: 'cookie', [C]: 'true' }), [
        `annotation ${P}${C} has no effect: the affinity cookie is kept when its endpoint fails`,
      ]);
      deepStrictEqual(notes({ ...persistent, [C]: 'false' }), [
        `annotation ${P}${C} has no effect: with ${P}affinity-mode persistent, nginx's sticky cookie moves to the endpoint that answered when its own failed`,
      ]);
    });
  });

  describe('translate and render', () => {
    it('persistent: one sticky upstream per cookie path, with the attributes asked for; no maps, no add_header', () => {
      const m = run([
        sessions(
          {
            ...persistent,
            'session-cookie-name': 'ROUTE',
            'session-cookie-max-age': '600',
            'session-cookie-samesite': 'Lax',
          },
          path('/app', 'Prefix', 'app'),
          path('/api', 'Exact', 'app'),
        ),
      ]);
      deepStrictEqual(m.rejections, []);
      const cookie = { name: 'ROUTE', maxAge: 600, sameSite: 'lax', secure: false };
      deepStrictEqual(
        sticky(m).sort((a, b) => (a[1].path < b[1].path ? -1 : 1)),
        [
          ['default/app:80', { ...cookie, path: '/api' }],
          ['default/app:80', { ...cookie, path: '/app' }],
        ],
      );
      // "= /app" and "/app/" are one Ingress path: one cookie path, one upstream.
      equal(upstreamOf(m, '/app').name, upstreamOf(m, '/app/').name);
      deepStrictEqual([m.affinityKeys, m.affinityCookies], [[], []]);
      ok(m.servers.flatMap((s) => s.locations).every((l) => l.settings.setCookie === null));
      const files = [...renderModel(m).values()].join('\n');
      match(files, /^ {4}sticky cookie ROUTE expires=600 path=\/app httponly samesite=lax;$/m);
      match(files, /^ {4}sticky cookie ROUTE expires=600 path=\/api httponly samesite=lax;$/m);
      doesNotMatch(files, /Set-Cookie|isc_aff|hash /);
    });

    it('persistent: session-cookie-path is one upstream; regex paths use "/"; SameSite=None is Secure', () => {
      const one = run([
        sessions(
          { ...persistent, 'session-cookie-path': '/' },
          path('/a', 'Prefix', 'app'),
          path('/b', 'Prefix', 'app'),
        ),
      ]);
      deepStrictEqual(sticky(one), [
        ['default/app:80', { name: 'INGRESSCOOKIE', path: '/', maxAge: null, sameSite: null, secure: false }],
      ]);
      const regex = run([
        sessions(
          { ...persistent, 'use-regex': 'true', 'session-cookie-samesite': 'None' },
          path('/a/[0-9]+', 'ImplementationSpecific', 'app'),
        ),
      ]);
      deepStrictEqual(sticky(regex), [
        ['default/app:80', { name: 'INGRESSCOOKIE', path: '/', maxAge: null, sameSite: 'none', secure: true }],
      ]);
      match(
        [...renderModel(regex).values()].join('\n'),
        /sticky cookie INGRESSCOOKIE path=\/ httponly secure samesite=none;/,
      );
    });

    it("persistent: a canary's and the error pages' upstreams hash on the cookie instead of setting their own", () => {
      const main = sessions(
        { ...persistent, 'default-backend': 'errors', 'custom-http-errors': '404' },
        path('/', 'Prefix', 'app'),
      );
      const canary = ingress('canary', [rule('shop.test', path('/', 'Prefix', 'v2'))], {
        age: 1,
        annotations: prefixed({ canary: 'true', 'canary-weight': '10' }),
      });
      const m = run([main, canary]);
      deepStrictEqual(
        sticky(m).map(([s, c]) => [s, c.path]),
        [['default/app:80', '/']],
      );
      const key = `$${ann.affinityKeyVariable('INGRESSCOOKIE')}`;
      deepStrictEqual(
        m.upstreams.filter((u) => u.balance.kind === 'hash').map((u) => [u.service, u.balance]),
        [
          ['default/errors:80', { kind: 'hash', key }],
          ['default/v2:80', { kind: 'hash', key }],
        ],
      );
      // The key map they hash on: the cookie (the main upstream's endpoint digest), else a random key.
      deepStrictEqual(m.affinityKeys, [{ variable: key.slice(1), cookie: 'INGRESSCOOKIE' }]);
      deepStrictEqual(m.affinityCookies, [], 'nothing but the sticky upstream sets the cookie');
    });

    it('balanced stays the consistent hash on nginx 1.30 as on 1.22', () => {
      for (const v of ['1.22.1', '1.30.4']) {
        const m = run([sessions({ affinity: 'cookie' }, path('/app', 'Prefix', 'app'))], v);
        deepStrictEqual(sticky(m), [], v);
        equal(upstreamOf(m, '/app').balance.kind, 'hash', v);
        equal(m.affinityCookies.length, 1, v);
      }
    });

    it('with endpoints by DNS: sticky upstreams are reload-free; consistent hashes keep their endpoints in the files', () => {
      const m = translate(
        snapshot({
          ingresses: [
            sessions(persistent, path('/app', 'Prefix', 'app')),
            ingress('balanced', [rule('b.test', path('/', 'Prefix', 'app'))], {
              annotations: prefixed({ affinity: 'cookie' }),
            }),
            ingress('hashed', [rule('h.test', path('/', 'Prefix', 'app'))], {
              annotations: prefixed({ 'upstream-hash-by': '$request_uri' }),
            }),
          ],
          backends,
        }),
        {
          ingressClass: 'nginx',
          httpPort: 80,
          ipv6: false,
          nginxVersion: '1.30.4',
          dynamicEndpoints: { resolver: '127.0.0.1:10053', unavailablePort: 10503 },
        },
      );
      // nginx's consistent hash picks a `server` line; one resolved name is one line for all its peers.
      deepStrictEqual(m.upstreams.map((u) => [u.balance.kind, u.dynamic !== undefined, u.servers.length]).sort(), [
        ['hash', false, 1],
        ['hash', false, 1],
        ['sticky', true, 1],
      ]);
    });

    it('persistent on nginx before 1.29.6: not served (503), and nothing of it rendered', () => {
      const m = run([sessions(persistent, path('/app', 'Prefix', 'app'))], '1.22.1');
      deepStrictEqual(
        m.rejections.map((r) => [r.severity, r.reason]),
        [
          [
            'rejected',
            `not served: annotation ${P}affinity-mode: "persistent" needs nginx 1.29.6 or later (its sticky cookie names the endpoint); on older nginx sessions would move when endpoints change; its paths answer 503 until this is fixed`,
          ],
        ],
      );
      const app = m.servers[0]!.locations.find((l) => l.path === '/app/')!;
      equal(app.action.kind, 'unavailable');
      match(app.action.kind === 'unavailable' ? app.action.reason : '', /needs nginx 1\.29\.6/);
      doesNotMatch([...renderModel(m).values()].join('\n'), /^\s*sticky /m);
    });
  });
});
