// Cookie affinity by mode through a real nginx. affinity-mode persistent on nginx with the sticky
// cookie (>= 1.29.6, the 1.30 build users run), endpoints answered by the sidecar's DNS responder:
// a new client gets the cookie with ingress-nginx's attributes, the cookie pins its endpoint,
// endpoints that come and go leave other sessions where they are (with no reload), and a session
// whose endpoint went gets a new one and a cookie naming it. On nginx before 1.29.6 (Debian's
// 1.22) such an Ingress is not served. balanced (the default) and upstream-hash-by pin in dns mode
// too: nginx's consistent hash needs their endpoints in the files.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEcho, type EchoReply, type EchoServer } from '../../src/dev/echo.ts';
import { STICKY_COOKIE_SINCE } from '../../src/annotations/balancing.ts';
import { parseNginxVersion, versionAtLeast } from '../../src/nginx/version.ts';
import type { HttpAnswer } from '../helpers/nginx.ts';
import { nginxBuilds } from '../helpers/nginx-check.ts';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';
const builds = nginxBuilds().builds;
const sticky = builds.find((b) => versionAtLeast(parseNginxVersion(b.version)!, [...STICKY_COOKIE_SINCE]));
const older = builds.find((b) => !versionAtLeast(parseNginxVersion(b.version)!, [...STICKY_COOKIE_SINCE]));

/** Service `pool` (port 80, targetPort "http"): one EndpointSlice per echo port, all on 127.0.0.1. */
function poolYaml(ports: number[]): string {
  const slices = ports.map(
    (port, i) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: pool-${i}, namespace: default, labels: {kubernetes.io/service-name: pool}}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints: [{addresses: ["127.0.0.1"]}]
`,
  );
  return `apiVersion: v1
kind: Service
metadata: {name: pool, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: http}]
${slices.join('')}`;
}

const sessionsYaml = ingressYaml('sessions', [{ host: 'sticky.test', paths: [['/app', 'Prefix', 'pool']] }], {
  annotations: {
    [`${P}affinity`]: 'cookie',
    [`${P}affinity-mode`]: 'persistent',
    [`${P}session-cookie-name`]: 'ROUTE',
    [`${P}session-cookie-max-age`]: '600',
    [`${P}session-cookie-samesite`]: 'Lax',
  },
});

/** The one Set-Cookie of an answer: `NAME=VALUE` and its attributes, names lowercased (as browsers read them). */
function setCookie(a: HttpAnswer): { pair: string; value: string; attributes: Map<string, string> } {
  const raw = a.headers['set-cookie'];
  assert.ok(Array.isArray(raw) && raw.length === 1, `one Set-Cookie, got ${JSON.stringify(raw)}`);
  const [pair = '', ...rest] = raw[0]!.split(';').map((s) => s.trim());
  const attributes = new Map(
    rest.map((s) => {
      const i = s.indexOf('=');
      return i < 0 ? [s.toLowerCase(), ''] : [s.slice(0, i).toLowerCase(), s.slice(i + 1)];
    }),
  );
  return { pair, value: pair.slice(pair.indexOf('=') + 1), attributes };
}

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

describe('cookie affinity by mode and nginx version', function () {
  this.timeout(120_000);

  describe(`on nginx >= ${STICKY_COOKIE_SINCE.join('.')}, endpoints by DNS`, () => {
    let stack: Stack;
    const echoes = new Map<string, EchoServer>();
    const who = (a: HttpAnswer) => (a.status === 200 ? (JSON.parse(a.body) as EchoReply).service : String(a.status));
    const portOf = (name: string) => echoes.get(name)!.port;
    /** Polls (bounded) until requests with `cookie` reach `expected`; the last answer. */
    const until = async (expected: (a: HttpAnswer) => boolean, headers: Record<string, string> = {}) => {
      let last: HttpAnswer | null = null;
      for (let i = 0; i < 100; i++) {
        last = await stack.get('sticky.test', '/app/x', headers);
        if (expected(last)) return last;
        await sleep(100);
      }
      return last!;
    };

    before(async function () {
      if (!sticky) {
        console.log(
          `      (skipped: no nginx >= ${STICKY_COOKIE_SINCE.join('.')} here; ../shared/nginx/build.sh builds one)`,
        );
        this.skip();
      }
      for (const name of ['a', 'b', 'c']) echoes.set(name, await startEcho(name));
      stack = await startStack({
        backends: [],
        endpointsMode: 'auto',
        nginx: sticky,
        files: { 'pool.yaml': poolYaml([portOf('a'), portOf('b')]), 'ing.yaml': sessionsYaml },
      });
    });

    after(async () => {
      await stack?.stop();
      for (const e of echoes.values()) await e.close();
    });

    it('gives a new client the cookie ingress-nginx sets, naming the endpoint that answered', async () => {
      const first = await until((a) => a.status === 200);
      assert.equal(first.status, 200, first.body);
      const upstreams = stack.sidecar.model()!.upstreams;
      assert.ok(
        upstreams.some((u) => u.balance.kind === 'sticky' && u.dynamic),
        'a sticky upstream on DNS',
      );
      const c = setCookie(first);
      assert.match(c.pair, /^ROUTE=[0-9a-f]{32}$/);
      assert.equal(c.value, md5(`127.0.0.1:${portOf(who(first))}`), 'the value is the MD5 of the endpoint address');
      assert.equal(c.attributes.get('path'), '/app');
      assert.equal(c.attributes.get('max-age'), '600');
      assert.ok(c.attributes.has('httponly'), 'HttpOnly');
      assert.equal(c.attributes.get('samesite')?.toLowerCase(), 'lax');
      assert.ok(!c.attributes.has('secure'), 'not Secure unless asked (or SameSite=None)');
      assert.ok(!c.attributes.has('domain'), 'a host-only cookie');
      // Expires says the same moment as Max-Age (for browsers without Max-Age).
      const expires = Date.parse(c.attributes.get('expires') ?? '');
      assert.ok(Math.abs(expires - (Date.now() + 600_000)) < 60_000, `expires ${c.attributes.get('expires')}`);
    });

    it('pins requests with the cookie to its endpoint; clients without one are spread', async () => {
      const seen = new Set<string>();
      for (let client = 0; client < 4; client++) {
        const first = await stack.get('sticky.test', '/app/x');
        const pair = setCookie(first).pair;
        seen.add(who(first));
        for (let i = 0; i < 6; i++) {
          const again = await stack.get('sticky.test', '/app/x', { cookie: pair });
          assert.equal(who(again), who(first), `client ${client}, request ${i}`);
          // nginx sends the cookie with every answer (ingress-nginx only when it sets a new one).
          assert.equal(setCookie(again).pair, pair);
        }
      }
      assert.deepEqual([...seen].sort(), ['a', 'b'], 'new clients go round robin');
    });

    it('keeps sessions on their endpoints while others come and go, with no reload; a lost endpoint gives a new cookie', async () => {
      const cookieFor = async (name: string) => {
        const a = await until((x) => who(x) === name);
        assert.equal(who(a), name);
        return setCookie(a).pair;
      };
      const toA = await cookieFor('a');
      const toB = await cookieFor('b');
      await stack.sidecar.idle();
      const reloads = stack.sidecar.stats.reloads;

      // Scale up: c joins. Sessions do not move (balanced would move about a third of them).
      await stack.write('pool.yaml', poolYaml([portOf('a'), portOf('b'), portOf('c')]));
      assert.equal(who(await until((x) => who(x) === 'c')), 'c', 'new clients reach the new endpoint');
      for (let i = 0; i < 10; i++) {
        assert.equal(who(await stack.get('sticky.test', '/app/x', { cookie: toA })), 'a');
        assert.equal(who(await stack.get('sticky.test', '/app/x', { cookie: toB })), 'b');
      }

      // a goes: its session moves, with a cookie for where it went; b's stays.
      await stack.write('pool.yaml', poolYaml([portOf('b'), portOf('c')]));
      const moved = await until((x) => who(x) !== 'a', { cookie: toA });
      assert.ok(['b', 'c'].includes(who(moved)), who(moved));
      const next = setCookie(moved).pair;
      assert.equal(next, `ROUTE=${md5(`127.0.0.1:${portOf(who(moved))}`)}`);
      for (let i = 0; i < 6; i++) {
        assert.equal(who(await stack.get('sticky.test', '/app/x', { cookie: next })), who(moved));
        assert.equal(who(await stack.get('sticky.test', '/app/x', { cookie: toB })), 'b');
      }
      await stack.sidecar.idle();
      assert.equal(stack.sidecar.stats.reloads, reloads, 'endpoint changes reloaded nothing');
    });
  });

  describe('balanced and upstream-hash-by with endpoints by DNS (nginx >= 1.27.3)', () => {
    let stack: Stack;
    const echoes: EchoServer[] = [];
    const who = (a: HttpAnswer) => (a.status === 200 ? (JSON.parse(a.body) as EchoReply).service : String(a.status));

    before(async function () {
      if (!sticky) {
        console.log('      (skipped: no nginx 1.30 here; ../shared/nginx/build.sh builds one)');
        this.skip();
      }
      for (const name of ['a', 'b']) echoes.push(await startEcho(name));
      stack = await startStack({
        backends: [],
        endpointsMode: 'auto',
        nginx: sticky,
        files: {
          'pool.yaml': poolYaml(echoes.map((e) => e.port)),
          'balanced.yaml': ingressYaml('balanced', [{ host: 'balanced.test', paths: [['/', 'Prefix', 'pool']] }], {
            annotations: { [`${P}affinity`]: 'cookie' },
          }),
          'hash.yaml': ingressYaml('hash', [{ host: 'hash.test', paths: [['/', 'Prefix', 'pool']] }], {
            annotations: { [`${P}upstream-hash-by`]: '$arg_user' },
          }),
        },
      });
      await stack.eventually('balanced.test', '/', 'a');
    });

    after(async () => {
      await stack?.stop();
      for (const e of echoes) await e.close();
    });

    it('keeps one cookie, and one hash key, on one endpoint', async () => {
      for (const key of ['k1', 'k2', 'k3', 'k4']) {
        const cookie = new Set<string>();
        const hash = new Set<string>();
        for (let i = 0; i < 6; i++) {
          cookie.add(who(await stack.get('balanced.test', '/', { cookie: `INGRESSCOOKIE=${key}` })));
          hash.add(who(await stack.get('hash.test', `/?user=${key}`)));
        }
        assert.equal(cookie.size, 1, `cookie ${key}: ${[...cookie].join(', ')}`);
        assert.equal(hash.size, 1, `user ${key}: ${[...hash].join(', ')}`);
      }
      const files = await readFile(`${stack.confDir}/ingress-sidecar-upstreams.conf`, 'utf8');
      assert.doesNotMatch(files, /consistent;\n[^}]*resolve;/, 'no consistent hash over a resolved name');
    });
  });

  describe(`on nginx before ${STICKY_COOKIE_SINCE.join('.')}`, () => {
    let stack: Stack | undefined;

    after(async () => {
      await stack?.stop();
    });

    it('does not serve the Ingress (503) and says why', async function () {
      if (!older) {
        console.log('      (skipped: no nginx older than the sticky cookie here; Debian: apt-get install nginx-light)');
        this.skip();
      }
      const echo = await startEcho('a');
      try {
        stack = await startStack({
          backends: [],
          nginx: older!,
          files: { 'pool.yaml': poolYaml([echo.port]), 'ing.yaml': sessionsYaml },
        });
        assert.equal(await stack.eventually('sticky.test', '/app/x', '503'), '503');
        const reasons = stack.sidecar.model()!.rejections.map((r) => r.reason);
        assert.ok(
          reasons.some((r) => /affinity-mode: "persistent" needs nginx 1\.29\.6 or later/.test(r)),
          JSON.stringify(reasons),
        );
      } finally {
        await echo.close();
      }
    });
  });
});
