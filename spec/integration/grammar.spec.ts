// What we render, nginx accepts: each value grammar refuses what nginx itself refuses (with a
// reason, so that nginx never sees it), and what a grammar accepts passes a real `nginx -t` of
// every nginx version we support (Debian's 1.22 and the 1.30 build users run).
import assert from 'node:assert/strict';
import type { V1Ingress } from '@kubernetes/client-node';
import { ANNOTATION_PREFIX, parseAnnotations, parseRegexPath } from '../../src/annotations/index.ts';
import { renderModel } from '../../src/nginx/render.ts';
import { translate } from '../../src/translate/index.ts';
import { upstreamAddress } from '../../src/grammar.ts';
import { parseNginx } from '../../src/nginx/tokenizer.ts';
import { backendService, ingress, path as p, rule, service, slice, snapshot } from '../helpers/builders.ts';
import {
  assertReferencesDefined,
  optionsFor,
  nginxBuilds,
  nginxTest,
  undefinedReferences,
  type NginxBuild,
} from '../helpers/nginx-check.ts';

const A = (name: string) => `${ANNOTATION_PREFIX}${name}`;
const { builds, missing } = nginxBuilds();

/** Translate, render, check references, and nginx -t with every build; the model for more checks. */
async function acceptedByEveryNginx(ingresses: V1Ingress[], extra: Parameters<typeof snapshot>[0] = {}) {
  assert.ok(builds.length > 0, `no nginx to check with: ${missing.join('; ')}`);
  let last: ReturnType<typeof translate> | null = null;
  for (const build of builds) {
    const m = translate(snapshot({ ...extra, ingresses }), optionsFor(build));
    const files = renderModel(m);
    assertReferencesDefined(files);
    const r = await nginxTest(build.binary, files, m.certificates);
    assert.ok(r.ok, `nginx ${build.version} -t refused the rendered files:\n${r.output}`);
    last = m;
  }
  return last!;
}

/** nginx -t of one hand-written location: whether nginx compiles `regex` as our template writes it. */
async function nginxCompilesRegex(build: NginxBuild, regex: string): Promise<{ ok: boolean; output: string }> {
  const token = `"^${regex.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  return nginxTest(
    build.binary,
    new Map([['x.conf', `server {\n    listen 127.0.0.1:1;\n    location ~* ${token} { return 200; }\n}\n`]]),
  );
}

const denied = (m: ReturnType<typeof translate>, key: string) =>
  m.rejections.filter((r) => r.ingress === key).map((r) => r.reason);

describe('grammars match what nginx parses', function () {
  this.timeout(120_000);
  before(function () {
    for (const why of missing) console.log(`      (${why}: that nginx is not checked)`);
  });

  describe('endpoint addresses', () => {
    // Every form Node's isIP accepts, including the ones nginx's ngx_inet6_addr refuses as written.
    const v6 = [
      '1:2:3:4:5:6:7::',
      '::2:3:4:5:6:7:8',
      '1::',
      '::',
      '::1',
      'FE80::1',
      '2001:DB8:0:0:1:0:0:1',
      '::ffff:10.0.0.1',
      '64:ff9b::192.0.2.33',
      '1:2:3:4:5:6:1.2.3.4',
      '0001:0002::0003',
    ];

    it('renders every IPv6 address Node accepts in a form nginx parses', async () => {
      const m = await acceptedByEveryNginx([ingress('v6', [rule('v6.test', p('/', 'Prefix', 'web'))])], {
        services: [service('web', [{ port: 80 }])],
        endpointSlices: [slice('web', { port: 8080 }, v6, { addressType: 'IPv6' })],
      });
      assert.equal(m.upstreams[0]!.servers.length, v6.length);
      for (const ip of v6) assert.match(upstreamAddress(ip, 8080) ?? '', /^\[[0-9a-f:]+\]:8080$/, ip);
      assert.equal(upstreamAddress('1:2:3:4:5:6:7::', 80), '[1:2:3:4:5:6:7:0]:80');
      assert.equal(upstreamAddress('FE80::1', 80), '[fe80::1]:80');
    });
  });

  describe('custom-http-errors', () => {
    it('refuses 499, which error_page refuses, with the reason; every other accepted code passes nginx -t', async () => {
      assert.throws(
        () => parseAnnotations({ [A('custom-http-errors')]: '404,499' }, { namespace: 'default', tlsEnabled: true }),
        /499.*error_page/,
      );
      const codes = [];
      for (let c = 400; c <= 599; c++) if (c !== 499) codes.push(c);
      const ings = [
        ingress('errors', [rule('e.test', p('/', 'Prefix', 'web'))], {
          annotations: { [A('custom-http-errors')]: codes.join(','), [A('default-backend')]: 'errors' },
        }),
        ingress('bad', [rule('bad.test', p('/', 'Prefix', 'web'))], {
          annotations: { [A('custom-http-errors')]: '499', [A('default-backend')]: 'errors' },
        }),
      ];
      const m = await acceptedByEveryNginx(ings, {
        backends: [backendService('web'), backendService('errors', '10.0.0.2')],
      });
      assert.match(
        denied(m, 'default/bad').join('\n'),
        /custom-http-errors: "499" is not a status nginx's error_page accepts/,
      );
    });
  });

  describe('nginx token length (4095 bytes)', () => {
    const origins = (n: number) =>
      Array.from(
        { length: n },
        (_, i) => `https://app-${String(i).padStart(3, '0')}.${'x'.repeat(40)}.example.com`,
      ).join(',');

    it('refuses a cors-allow-origin list whose map pattern is too long, with the reason; one that fits passes nginx -t', async () => {
      const cors = (list: string) => ({ [A('enable-cors')]: 'true', [A('cors-allow-origin')]: list });
      assert.throws(
        () => parseAnnotations(cors(origins(80)), { namespace: 'default', tlsEnabled: true }),
        /cors-allow-origin.*too long.*4096 bytes/,
      );
      const m = await acceptedByEveryNginx(
        [
          ingress('fits', [rule('fits.test', p('/', 'Prefix', 'web'))], { annotations: cors(origins(40)) }),
          ingress('long', [rule('long.test', p('/', 'Prefix', 'web'))], { annotations: cors(origins(80)) }),
        ],
        { backends: [backendService('web')] },
      );
      assert.deepEqual(denied(m, 'default/fits'), []);
      assert.match(denied(m, 'default/long').join('\n'), /too long/);
    });

    it('renders the longest value of every grammar as tokens nginx reads (the tokenizer and nginx -t agree)', async () => {
      const long = (unit: string, max: number) => unit.repeat(Math.floor(max / unit.length));
      const annotations: Array<Record<string, string>> = [
        { 'permanent-redirect': `https://e.test/${long('$request_uri', 2048 - 15)}` },
        { 'temporal-redirect': `https://e.test/${long('%22', 2048 - 15)}` },
        { 'rewrite-target': `/${long('a.', 1023)}` },
        { 'app-root': `/${long("'", 1023)}` },
        { 'x-forwarded-prefix': `/${long('~', 1023)}` },
        { 'upstream-hash-by': long('$uri', 512) },
        { affinity: 'cookie', 'session-cookie-path': `/${long("'", 1023)}`, 'session-cookie-name': long('c', 64) },
        {
          'auth-type': 'basic',
          'auth-secret': 'users',
          'auth-secret-type': 'auth-map',
          'auth-realm': long("a '!#%", 200),
        },
        {
          'enable-cors': 'true',
          'cors-allow-methods': Array.from({ length: 120 }, (_, i) => `M${'E'.repeat(i % 30)}`).join(','),
        },
        { 'allowlist-source-range': Array.from({ length: 256 }, (_, i) => `10.${i}.0.0/16`).join(',') },
      ];
      const ings = annotations.map((a, i) =>
        ingress(
          `long${i}`,
          [rule(`long${i}.test`, p('/', 'Prefix', 'web'), p(`/${long('%3B', 2040)}`, 'Exact', 'web'))],
          { annotations: Object.fromEntries(Object.entries(a).map(([k, v]) => [A(k), v])) },
        ),
      );
      ings.push(
        ingress('canary-long', [rule('long0.test', p('/', 'Prefix', 'api'))], {
          annotations: {
            [A('canary')]: 'true',
            [A('canary-by-header')]: 'X-C',
            [A('canary-by-header-value')]: long('.', 256),
          },
        }),
      );
      ings.push(
        ingress('regex-long', [rule('regex-long.test', p(`/${long('\\.', 1023)}`, 'ImplementationSpecific', 'web'))], {
          annotations: { [A('rewrite-target')]: '/' },
        }),
      );
      const users = {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'users', namespace: 'default' },
        data: { alice: Buffer.from('{PLAIN}x').toString('base64') },
      };
      const m = await acceptedByEveryNginx(ings, {
        backends: [backendService('web'), backendService('api', '10.0.0.4')],
        secrets: [users],
      });
      assert.deepEqual(
        m.rejections.filter((r) => r.severity === 'rejected' || /denied|answer 503|too long/.test(r.reason)),
        [],
      );
      for (const [name, text] of renderModel(m)) assert.doesNotThrow(() => parseNginx(text), name);
    });
  });

  describe('regex paths, as PCRE2 compiles them', () => {
    // Refused by PCRE2 (nginx -t), accepted by JavaScript's RegExp.
    const pcreRefuses = ['/[\\d-z]', '/[a-\\d]', '/x[\\w-.]', '/[\\B]', '/((ab){80}){80}', '/(((a){20}){20}){20}'];
    // Read alike by both; each must compile in nginx.
    const accepted = [
      '/api/v[0-9]+/(.*)',
      '/(foo|bar)/?(.*)',
      '/[\\d.-]+',
      '/[-\\w]+',
      '/[\\w-]+',
      '/[a-z\\d]{2,4}',
      '/x{3}',
      '/(ab){1000}',
      '/((ab){50}){50}',
      '/[a-c-e]',
      '/\\{\\}',
      '/a\\b',
      '/[^/]+/(.*)$',
    ];

    it('refuses, with the reason, what PCRE2 refuses although JavaScript compiles it', async () => {
      for (const r of pcreRefuses) {
        new RegExp(r);
        assert.throws(() => parseRegexPath(r), /PCRE2/, r);
        for (const build of builds)
          assert.equal(
            (await nginxCompilesRegex(build, r)).ok,
            false,
            `nginx ${build.version} accepts ${r}: the grammar need not refuse it`,
          );
      }
    });

    it('accepts regexes both read alike, and nginx compiles them all', async () => {
      for (const r of accepted) assert.equal(parseRegexPath(r), r);
      const ings = accepted.map((r, i) =>
        ingress(`re${i}`, [rule(`re${i}.test`, p(r, 'ImplementationSpecific', 'web'))], {
          annotations: { [A('use-regex')]: 'true' },
        }),
      );
      const m = await acceptedByEveryNginx(ings, { backends: [backendService('web')] });
      assert.deepEqual(m.rejections, []);
    });
  });

  describe('internal references', () => {
    it('defines the affinity key of a default backend with affinity that only custom-http-errors uses', async () => {
      // The Ingress with only a defaultBackend and affinity is the default backend, but a hostless
      // "/" rule of another Ingress takes every unmatched request: no location sets its cookie, yet
      // the third Ingress's error pages proxy to its upstream, which hashes on the affinity key.
      const ings = [
        ingress('sticky-default', [], {
          age: 1,
          defaultBackend: { service: 'fallback', port: 80 },
          annotations: { [A('affinity')]: 'cookie' },
        }),
        ingress('hostless', [rule(undefined, p('/', 'Prefix', 'web'))], { age: 2 }),
        ingress('errors', [rule('e.test', p('/', 'Prefix', 'web'))], {
          age: 3,
          annotations: { [A('custom-http-errors')]: '503' },
        }),
      ];
      const snap = { backends: [backendService('web'), backendService('fallback', '10.0.0.3')] };
      const m = translate(snapshot({ ...snap, ingresses: ings }), optionsFor(null));
      assert.deepEqual(undefinedReferences(renderModel(m)), []);
      assert.equal(m.affinityKeys.length, 1);
      await acceptedByEveryNginx(ings, snap);
    });
  });
});
