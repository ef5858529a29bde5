// Property test: random *valid* Ingress sets (hosts shared between Ingresses, paths of every type,
// every implemented annotation with values its grammar accepts, canaries, TLS, default backends)
// translate to models whose rendered files every nginx version we support accepts, and whose
// internal references are all defined. Fixed seed, bounded: MODELS models per nginx version, each
// one `nginx -t` of several Ingresses.
import assert from 'node:assert/strict';
import type { V1Ingress, V1Secret } from '@kubernetes/client-node';
import { ANNOTATION_PREFIX, hasStickyCookie } from '../../src/annotations/index.ts';
import { renderModel } from '../../src/nginx/render.ts';
import { translate } from '../../src/translate/index.ts';
import { ingress, service, slice, snapshot } from '../helpers/builders.ts';
import { makeCert, tlsSecret } from '../helpers/certs.ts';
import { parseNginx } from '../../src/nginx/tokenizer.ts';
import { nginxBuilds, nginxTest, optionsFor, undefinedReferences } from '../helpers/nginx-check.ts';
import { mulberry32 } from '../helpers/prng.ts';

// Reproduce or widen a run: GRAMMAR_SEED=<seed> GRAMMAR_MODELS=<n> (the seed is in each failure).
const MODELS = Number(process.env.GRAMMAR_MODELS ?? 30);
const SEED = Number(process.env.GRAMMAR_SEED ?? 0x15_2026) >>> 0;
const A = (name: string) => `${ANNOTATION_PREFIX}${name}`;

/** mulberry32: a small PRNG, so that a failure names a seed that reproduces it. */
function prng(seed: number) {
  const next = mulberry32(seed);
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number) => next() < p;
  return { int, pick, chance };
}
type Rand = ReturnType<typeof prng>;

const HOSTS = ['a.test', 'b.test', 'x.b.test', '*.w.test', 'c.test'];
const LITERAL_PATHS = [
  '/',
  '/api',
  '/api/',
  '/api/v1',
  '/a%20b',
  '/caf%C3%A9',
  '/x.y~z',
  "/it's",
  '/(p)',
  `/${'long'.repeat(200)}`,
  '/%22q%22',
];
const REGEX_PATHS = [
  '/api/v[0-9]+/(.*)',
  '/(foo|bar)/?(.*)',
  '/[\\d.-]+',
  '/[-\\w]+/x{2,3}',
  '/(ab){1000}',
  '/[^/]+/(.*)$',
  '/.*',
];
const SERVICES = ['web', 'api', 'errors', 'grpc'];

/** Valid values for each implemented annotation group (the grammars' own examples and edge values). */
const GROUPS: Array<(r: Rand) => Record<string, string>> = [
  (r) => ({ [A('ssl-redirect')]: r.pick(['true', 'false', 'True', '0']) }),
  (r) => ({
    [A('force-ssl-redirect')]: r.pick(['true', 'false']),
    [A('preserve-trailing-slash')]: r.pick(['true', 'false']),
  }),
  (r) => ({ [A('proxy-body-size')]: r.pick(['0', '8m', '100k', '1g', '512']) }),
  (r) => ({
    [A('proxy-connect-timeout')]: r.pick(['1', '5', '60s']),
    [A('proxy-read-timeout')]: r.pick(['120', '2147483']),
    [A('proxy-send-timeout')]: '30',
  }),
  (r) => ({
    [A('proxy-buffering')]: r.pick(['on', 'off', 'ON']),
    [A('proxy-buffer-size')]: r.pick(['4k', '16k', '1m', '1024']),
  }),
  (r) => ({ [A('x-forwarded-prefix')]: r.pick(['/p', '/a-b_c.d~e:f']) }),
  (r) => ({
    [A('app-root')]: r.pick(['/app', '/app/?x=1&y=%20', '/login$is_args$args', '/a?h=${host}&u=$request_uri']),
  }),
  (r) => ({
    [A('permanent-redirect')]: r.pick([
      'https://example.com$request_uri',
      'http://e.test/a?b=c#d',
      `https://e.test/${'p'.repeat(2000)}`,
    ]),
    [A('permanent-redirect-code')]: r.pick(['301', '308']),
  }),
  (r) => ({
    [A('temporal-redirect')]: 'https://t.test/${host}$is_args$args',
    [A('temporal-redirect-code')]: r.pick(['302', '303', '307']),
  }),
  (r) => ({ [A('allowlist-source-range')]: r.pick(['10.0.0.0/8, ::1', '192.168.1.7/24', '2001:db8::/32,0.0.0.0/0']) }),
  (r) => ({ [A('denylist-source-range')]: r.pick(['192.168.0.0/16', '::ffff:10.0.0.1/128']) }),
  (r) => ({
    [A('enable-cors')]: 'true',
    [A('cors-allow-origin')]: r.pick([
      '*',
      'https://a.test, https://*.b.test:8443',
      Array.from({ length: 40 }, (_, i) => `https://o${i}.${'x'.repeat(50)}.test`).join(','),
    ]),
    [A('cors-allow-methods')]: r.pick(['GET, PUT', 'get,post,options']),
    [A('cors-allow-headers')]: r.pick([
      'X-A,X-B',
      Array.from({ length: 100 }, (_, i) => `X-H${i}-${'h'.repeat(20)}`).join(','),
    ]),
    [A('cors-expose-headers')]: r.pick(['*', 'X-Id']),
    [A('cors-allow-credentials')]: r.pick(['true', 'false']),
    [A('cors-max-age')]: r.pick(['0', '600']),
  }),
  (r) => ({ [A('limit-rps')]: r.pick(['1', '10', '1000000']), [A('limit-burst-multiplier')]: r.pick(['1', '5']) }),
  (r) => ({ [A('limit-rpm')]: r.pick(['60', '600']), [A('limit-connections')]: r.pick(['1', '65535']) }),
  (r) => ({
    [A('auth-type')]: 'basic',
    [A('auth-secret')]: 'users',
    [A('auth-secret-type')]: 'auth-map',
    [A('auth-realm')]: r.pick(['Staff (only)!', 'x']),
  }),
  (r) => ({ [A('backend-protocol')]: r.pick(['HTTP', 'HTTPS', 'GRPC', 'GRPCS', 'https']) }),
  (r) => ({ [A('load-balance')]: r.pick(['round_robin', 'ewma']) }),
  (r) => ({ [A('upstream-hash-by')]: r.pick(['$request_uri', '$http_x_user$remote_addr', 'k-${cookie_id}']) }),
  (r) => ({
    [A('affinity')]: 'cookie',
    [A('session-cookie-name')]: r.pick(['INGRESSCOOKIE', 'route_2']),
    [A('session-cookie-path')]: r.pick(['/', '/app']),
    [A('session-cookie-max-age')]: r.pick(['0', '3600']),
    [A('session-cookie-samesite')]: r.pick(['Strict', 'lax', 'None']),
    [A('session-cookie-secure')]: r.pick(['true', 'false']),
  }),
  // persistent: nginx's sticky cookie on 1.30; on 1.22 the Ingress is not served.
  (r) => ({ [A('affinity')]: 'cookie', [A('affinity-mode')]: r.pick(['balanced', 'persistent']) }),
  () => ({ [A('service-upstream')]: 'true' }),
  (r) => ({
    [A('mirror-target')]: r.pick([
      'http://192.0.2.10/copy$request_uri',
      'https://192.0.2.11:8443',
      'http://[2001:db8::10]:8080/m',
    ]),
    [A('mirror-request-body')]: r.pick(['on', 'off']),
  }),
  (r) => ({
    [A('custom-http-errors')]: r.pick(['404', '404,503', '400,500,502,598,599']),
    ...(r.chance(0.5) ? { [A('default-backend')]: 'errors' } : {}),
  }),
  (r) => ({ [A('default-backend')]: r.pick(['errors', 'web']) }),
  (r) => ({
    [A('rewrite-target')]: r.pick(['/', '/base/', 'https://bar.example.org/', 'http://[2001:db8::1]:8080/x']),
  }),
  () => ({ [A('use-regex')]: 'true' }),
];

function randomIngress(r: Rand, name: string, age: number, canaryOf: V1Ingress | null): V1Ingress {
  if (canaryOf) {
    // A canary on (some of) the main Ingress's own rules, in its namespace.
    const canary: Record<string, string> = { [A('canary')]: 'true' };
    // The same paths must parse the same way (a regex path needs use-regex here too).
    const mainAnnotations = canaryOf.metadata?.annotations ?? {};
    if (mainAnnotations[A('use-regex')] === 'true' || mainAnnotations[A('rewrite-target')] !== undefined)
      canary[A('use-regex')] = 'true';
    if (r.chance(0.7)) canary[A('canary-weight')] = String(r.pick([0, 1, 50, 99, 100]));
    if (r.chance(0.3)) canary[A('canary-weight-total')] = '1000';
    if (r.chance(0.4)) canary[A('canary-by-header')] = 'X-Canary';
    if (r.chance(0.3)) canary[A('canary-by-header-value')] = r.pick(['yes', 'v1.2+beta']);
    if (r.chance(0.3)) canary[A('canary-by-cookie')] = 'canary_c';
    return {
      ...canaryOf,
      metadata: {
        ...canaryOf.metadata,
        name,
        annotations: canary,
        creationTimestamp: new Date(Date.UTC(2025, 0, 1) + age * 1000),
      },
      spec: {
        ...canaryOf.spec,
        defaultBackend: undefined,
        tls: undefined,
        rules: canaryOf.spec!.rules!.map((rule) => ({
          ...rule,
          http: {
            paths: rule.http!.paths.map((p) => ({ ...p, backend: { service: { name: 'api', port: { number: 80 } } } })),
          },
        })),
      },
    } as V1Ingress;
  }
  const annotations: Record<string, string> = {};
  const groups = r.int(5);
  for (let i = 0; i < groups; i++) Object.assign(annotations, r.pick(GROUPS)(r));
  const regex = annotations[A('use-regex')] === 'true' || annotations[A('rewrite-target')] !== undefined;
  const rules = Array.from({ length: 1 + r.int(3) }, () => {
    const host = r.chance(0.15) ? undefined : r.pick(HOSTS);
    const paths = Array.from({ length: 1 + r.int(4) }, () => {
      const pathType = r.pick(['Exact', 'Prefix', 'ImplementationSpecific'] as const);
      // With use-regex, Exact and Prefix paths must not look like regexes (ingress-nginx's rule).
      const path =
        pathType === 'ImplementationSpecific' && regex
          ? r.pick(REGEX_PATHS)
          : r.pick(regex ? LITERAL_PATHS.filter((x) => !/[()[\]{}*+?|^$\\]/.test(x)) : LITERAL_PATHS);
      const svc = r.pick(SERVICES);
      return {
        path,
        pathType,
        backend: { service: { name: svc, port: svc === 'grpc' ? { name: 'grpc' } : { number: 80 } } },
      };
    });
    return { ...(host ? { host } : {}), http: { paths } };
  });
  // Some Ingresses are only a default backend (spec.rules empty).
  if (r.chance(0.15))
    return ingress(name, [], { age, annotations, defaultBackend: { service: r.pick(['errors', 'web']), port: 80 } });
  const tlsHosts = rules.flatMap((x) => (x.host && r.chance(0.5) ? [x.host] : []));
  return ingress(name, rules as never, {
    age,
    annotations,
    ...(r.chance(0.2) ? { defaultBackend: { service: r.pick(['errors', 'web']), port: 80 } } : {}),
    ...(tlsHosts.length > 0
      ? { tls: [{ hosts: tlsHosts, secretName: r.pick(['site-tls', 'site-tls', 'missing-tls']) }] }
      : {}),
  });
}

describe('property: random valid models pass nginx -t', function () {
  this.timeout(600_000);
  const { builds, missing } = nginxBuilds();
  const cert = makeCert({ dns: ['a.test', 'b.test', 'x.b.test', '*.w.test', 'c.test'], days: 3650 });
  const secrets: V1Secret[] = [
    tlsSecret('site-tls', cert.crt, cert.key),
    // auth-map: user -> password hash ({PLAIN}, which nginx reads as is).
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'users', namespace: 'default' },
      data: { alice: Buffer.from('{PLAIN}secret').toString('base64') },
    },
  ];
  const services = [
    { ...service('web', [{ port: 80 }]), spec: { ports: [{ port: 80, protocol: 'TCP' }], clusterIP: '10.96.0.10' } },
    { ...service('api', [{ port: 80 }]), spec: { ports: [{ port: 80, protocol: 'TCP' }], clusterIP: 'fd00:96::1' } },
    service('errors', [{ port: 80 }]),
    service('grpc', [{ name: 'grpc', port: 50051 }]),
  ];
  const endpointSlices = [
    slice('web', { port: 8080 }, ['10.0.0.1', '10.0.0.2']),
    slice('api', { port: 8080 }, ['1:2:3:4:5:6:7::', 'fd00::5'], { addressType: 'IPv6' }),
    slice('errors', { port: 8080 }, ['10.0.0.9']),
    slice('grpc', { name: 'grpc', port: 50051 }, ['10.0.0.7']),
  ];

  before(function () {
    for (const why of missing) console.log(`      (${why}: that half is skipped)`);
  });

  it('has an nginx to check with', () => assert.ok(builds.length > 0, missing.join('; ')));

  for (const build of builds) {
    // Seeds as before: SEED for Debian's, SEED + 1 for the newer build (npm test checks each in its own run).
    const index = build.binary === '/usr/sbin/nginx' ? 0 : 1;
    const label = index === 0 ? `Debian nginx ${build.version}` : `nginx ${build.version}`;
    it(`${MODELS} random models, each accepted by ${label} with every internal reference defined`, async function () {
      const r = prng(SEED + index);
      for (let n = 0; n < MODELS; n++) {
        const ingresses: V1Ingress[] = [];
        const count = 3 + r.int(4);
        for (let i = 0; i < count; i++) {
          const main =
            ingresses.length > 0 && r.chance(0.25)
              ? r.pick(
                  ingresses.filter((x) => !x.metadata?.annotations?.[A('canary')] && (x.spec?.rules?.length ?? 0) > 0),
                )
              : null;
          ingresses.push(randomIngress(r, `ing-${n}-${i}`, i, main ?? null));
        }
        const m = translate(snapshot({ ingresses, services, endpointSlices, secrets }), optionsFor(build));
        const what: string = `model ${n} (seed ${SEED + index}) for nginx ${build.version}`;
        // Valid values only: nothing may be refused as invalid (only set aside by ownership rules),
        // except affinity-mode persistent where nginx has no sticky cookie (it fails closed).
        const failsClosed = (x: { reason: string }): boolean =>
          !hasStickyCookie(build.version) && /affinity-mode: "persistent" needs nginx/.test(x.reason);
        const refused: typeof m.rejections = m.rejections.filter(
          (x) =>
            !failsClosed(x) && (x.severity === 'rejected' || /must|invalid|not a|refus|too long|PCRE2/i.test(x.reason)),
        );
        assert.deepEqual(
          refused,
          [],
          `${what}: valid values refused: ${JSON.stringify(refused)}\n${JSON.stringify(
            ingresses.map((x) => [x.metadata?.name, x.metadata?.annotations, x.spec]),
            null,
            1,
          ).slice(0, 4000)}`,
        );
        const files = renderModel(m);
        assert.deepEqual(undefinedReferences(files), [], `${what}: undefined internal references`);
        // nginx's tokenizer rules (token length included), file by file, before nginx itself.
        for (const [name, text] of files) assert.doesNotThrow(() => parseNginx(text), `${what}: ${name}`);
        const t = await nginxTest(build.binary, files, m.certificates);
        assert.ok(
          t.ok,
          `${what}: nginx -t refused:\n${t.output}\nIngresses:\n${JSON.stringify(
            ingresses.map((x) => [x.metadata?.name, x.metadata?.annotations, x.spec]),
            null,
            1,
          ).slice(0, 6000)}`,
        );
      }
    });
  }
});
