// nginx.ingress.kubernetes.io annotations: parsing (values -> typed settings, or a rejection with
// a reason), and translation (per-Ingress scope, regex paths and their precedence, derived zones,
// maps and files). What a client sees is in spec/integration/annotations.spec.ts.
import { deepStrictEqual, equal, match, ok, throws } from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { UNIMPLEMENTED, classify } from '../../src/annotations/classes.ts';
import * as ann from '../../src/annotations/index.ts';
import { htpasswd } from '../../src/annotations/settings.ts';
import { locationLabel, type Location, type RoutingModel } from '../../src/model.ts';
import { renderModel } from '../../src/nginx/render.ts';
import { translate, type TranslateOptions } from '../../src/translate/index.ts';
import { InvalidValue } from '../../src/grammar.ts';
import { backendService, ingress, path, rule, snapshot } from '../helpers/builders.ts';
import { makeCert } from '../helpers/certs.ts';

const P = ann.ANNOTATION_PREFIX;
const parse = (a: Record<string, unknown>, tlsEnabled = true) =>
  ann.parseAnnotations(a, { namespace: 'default', tlsEnabled });
const one = (name: string, value: string) => parse({ [`${P}${name}`]: value }).annotations;
const refused = (name: string, value: string, reason: RegExp) =>
  throws(
    () => parse({ [`${P}${name}`]: value }),
    (err: unknown) => err instanceof InvalidValue && reason.test(err.message),
    `${name}: ${JSON.stringify(value)}`,
  );

describe('annotations: parsing', () => {
  it('leaves everything unset without annotations', () => {
    deepStrictEqual(parse({}), { annotations: { ...ann.NO_ANNOTATIONS }, notes: [] });
  });

  it('proxy-body-size and proxy-buffer-size: nginx sizes, as ingress-nginx accepts them', () => {
    deepStrictEqual(one('proxy-body-size', '8m').bodySize, { text: '8m', bytes: 8 * 1024 * 1024 });
    deepStrictEqual(one('proxy-body-size', '0').bodySize, { text: '0', bytes: 0 });
    deepStrictEqual(one('proxy-body-size', '10K').bodySize?.text, '10k');
    deepStrictEqual(one('proxy-body-size', '1G').bodySize?.text, '1g');
    deepStrictEqual(one('proxy-body-size', '100b').bodySize?.text, '100', 'nginx has no "b" suffix');
    deepStrictEqual(one('proxy-body-size', ' 2m ').bodySize?.text, '2m');
    deepStrictEqual(one('proxy-buffer-size', '16k').bufferSize, { text: '16k', bytes: 16384 });
    for (const bad of ['8mb', '-1', '1.5m', '8m;', 'm', '1t', '99999999999999'])
      refused('proxy-body-size', bad, /proxy-body-size: .* (is not a size|is too large)/);
    refused('proxy-buffer-size', '0', /is smaller than 1 byte/);
    refused('proxy-buffer-size', '2m', /is larger than 1024k/);
  });

  it('proxy timeouts: whole seconds from 1', () => {
    const a = parse({
      [`${P}proxy-connect-timeout`]: '10',
      [`${P}proxy-send-timeout`]: '30s',
      [`${P}proxy-read-timeout`]: '3600',
    }).annotations;
    deepStrictEqual([a.connectTimeout, a.sendTimeout, a.readTimeout], [10, 30, 3600]);
    for (const bad of ['0', '1m', '1.5', '-5', '5 s', '99999999'])
      refused('proxy-read-timeout', bad, /is not a number of seconds from 1 to 2147483/);
  });

  it('proxy-buffering: on or off', () => {
    deepStrictEqual([one('proxy-buffering', 'on').buffering, one('proxy-buffering', 'OFF').buffering], [true, false]);
    refused('proxy-buffering', 'true', /must be "on" or "off"/);
  });

  it('rewrite-target: text and capture groups, and it implies use-regex', () => {
    const a = one('rewrite-target', '/api/$1/${2}x');
    deepStrictEqual(a.rewriteTarget, [{ text: '/api/' }, { capture: 1 }, { text: '/' }, { capture: 2 }, { text: 'x' }]);
    equal(a.useRegex, true);
    deepStrictEqual(one('rewrite-target', '$1').rewriteTarget, [{ capture: 1 }]);
    for (const bad of ['/$host', '/$0', '/${10}', '/a?b=1', '/a b', 'api', '/$', '/a;b', '/a"'])
      refused('rewrite-target', bad, /rewrite-target: .* (may contain only|must start with)/);
  });

  it('rewrite-target: an absolute http(s) URL (nginx answers it with a 302), its host checked', () => {
    deepStrictEqual(one('rewrite-target', 'https://bar.example.org/$1').rewriteTarget, [
      { text: 'https://bar.example.org/' },
      { capture: 1 },
    ]);
    deepStrictEqual(one('rewrite-target', 'http://Bar.Example.org:8080').rewriteTarget, [
      { text: 'http://Bar.Example.org:8080' },
    ]);
    deepStrictEqual(one('rewrite-target', 'https://10.0.0.1/a/${2}').rewriteTarget, [
      { text: 'https://10.0.0.1/a/' },
      { capture: 2 },
    ]);
    deepStrictEqual(one('rewrite-target', 'https://[2001:db8::1]:8443/$1').rewriteTarget, [
      { text: 'https://[2001:db8::1]:8443/' },
      { capture: 1 },
    ]);
    equal(one('rewrite-target', 'https://bar.example.org/$1').useRegex, true);
    for (const bad of ['https://', 'https:///x', 'https://a b/', 'https://a.test@evil.test/', 'ftp://a.test/'])
      refused('rewrite-target', bad, /rewrite-target: .* (must be http|must start with|must name|may contain only)/);
    // A capture right after the host could make it another host.
    refused('rewrite-target', 'https://bar.example.org$1', /must have "\/" between the host and a capture/);
    refused('rewrite-target', 'https://$1/x', /must be http\(s\):\/\/HOST/);
    refused('rewrite-target', 'https://a..b/', /must name a DNS host/);
    refused('rewrite-target', 'https://2852039166/', /must name a DNS host/);
    refused('rewrite-target', 'https://[::1%eth0]/', /must be http|must name a DNS host/);
    refused('rewrite-target', 'https://a.test:0/', /port outside 1-65535/);
    refused('rewrite-target', 'https://a.test:99999/', /port outside 1-65535/);
    refused('rewrite-target', 'https://a.test/?x', /may contain only/);
    // nginx redirects only for a lowercase scheme; "HTTPS://" would become the URI itself.
    refused('rewrite-target', 'HTTPS://a.test/$1', /must write its scheme in lowercase/);
  });

  it('use-regex is a boolean', () => {
    equal(one('use-regex', 'true').useRegex, true);
    refused('use-regex', 'yes', /must be "true" or "false"/);
  });

  it('app-root and x-forwarded-prefix: paths; app-root may use the redirect variables', () => {
    equal(one('app-root', '/app1').appRoot, '/app1');
    equal(one('app-root', '/app?x=1&y=%20').appRoot, '/app?x=1&y=%20');
    // As ingress-nginx users write it: the variables are canonicalised to ${name}.
    equal(one('app-root', '/login$is_args$args').appRoot, '/login${is_args}${args}');
    equal(one('app-root', '/a${scheme}b?h=$host&u=$request_uri').appRoot, '/a${scheme}b?h=${host}&u=${request_uri}');
    for (const bad of ['app', '//evil.test/x', '/a b', '/%zz', 'https://x.test/'])
      refused('app-root', bad, /app-root: .* (must be an absolute path|may contain only)/);
    refused('app-root', '/a$uri', /uses \$uri; only \$request_uri, \$host, \$scheme, \$args, \$is_args may appear/);
    refused('app-root', '/a$http_x', /uses \$http_x/);
    refused('app-root', '/a$1', /uses \$1/);
    refused('app-root', '/a$', /has a "\$" that does not start one of the variables/);
    refused('app-root', '/a${args', /has a "\$" that does not start/);
    equal(one('x-forwarded-prefix', '/api').xForwardedPrefix, '/api');
    for (const bad of ['/a$host', '/a b', '/a"', '/a;']) refused('x-forwarded-prefix', bad, /may contain only letters/);
  });

  it('permanent-redirect and temporal-redirect: absolute URLs, a few safe variables, redirect codes', () => {
    deepStrictEqual(one('permanent-redirect', 'https://new.test${request_uri}').redirect, {
      code: 301,
      url: [{ text: 'https://new.test' }, { variable: 'request_uri' }],
    });
    deepStrictEqual(one('permanent-redirect', 'https://new.test$request_uri').redirect?.url, [
      { text: 'https://new.test' },
      { variable: 'request_uri' },
    ]);
    deepStrictEqual(
      parse({ [`${P}permanent-redirect`]: 'http://a.test/', [`${P}permanent-redirect-code`]: '308' }).annotations
        .redirect?.code,
      308,
    );
    deepStrictEqual(one('temporal-redirect', 'https://b.test/x?y=1#z').redirect, {
      code: 302,
      url: [{ text: 'https://b.test/x?y=1#z' }],
    });
    deepStrictEqual(
      parse({ [`${P}temporal-redirect`]: 'http://a.test/', [`${P}temporal-redirect-code`]: '307' }).annotations.redirect
        ?.code,
      307,
    );
    // temporal-redirect wins, as in ingress-nginx; the other is reported.
    const both = parse({ [`${P}temporal-redirect`]: 'http://t.test/', [`${P}permanent-redirect`]: 'http://p.test/' });
    deepStrictEqual(both.annotations.redirect, { code: 302, url: [{ text: 'http://t.test/' }] });
    deepStrictEqual(both.notes, [
      `annotation ${P}permanent-redirect has no effect: ${P}temporal-redirect takes precedence, as in ingress-nginx`,
    ]);
    refused('permanent-redirect', 'https://x.test$uri', /uses \$uri; only \$request_uri/);
    refused('permanent-redirect', 'https://x.test/$http_x', /uses \$http_x/);
    refused('permanent-redirect', '/relative', /must be an absolute http/);
    refused('permanent-redirect', 'javascript:alert(1)', /must be an absolute http/);
    refused('permanent-redirect', 'https://x.test/a b', /may contain only URL characters/);
    refused('permanent-redirect', 'https://x.test/"', /may contain only URL characters/);
    for (const bad of ['300', '304', '305', '306']) {
      throws(
        () => parse({ [`${P}permanent-redirect`]: 'http://a.test/', [`${P}permanent-redirect-code`]: bad }),
        /is not a redirect status nginx sends a Location with: 301, 302, 303, 307 or 308/,
      );
    }
    for (const bad of ['3o1', '301.5', 'moved'])
      throws(
        () => parse({ [`${P}permanent-redirect`]: 'http://a.test/', [`${P}permanent-redirect-code`]: bad }),
        /is not a whole number/,
      );
    // Outside ingress-nginx's range (300-308 permanent, 300-307 temporal) its default code is used, noted.
    for (const [code, used] of [
      ['200', 301],
      ['404', 301],
      ['309', 301],
    ] as const) {
      const p = parse({ [`${P}permanent-redirect`]: 'http://a.test/', [`${P}permanent-redirect-code`]: code });
      equal(p.annotations.redirect?.code, used);
      deepStrictEqual(p.notes, [
        `annotation ${P}permanent-redirect-code has no effect: "${code}" is outside 300-308, so 301 is used, as in ingress-nginx`,
      ]);
    }
    const t308 = parse({ [`${P}temporal-redirect`]: 'http://a.test/', [`${P}temporal-redirect-code`]: '308' });
    equal(t308.annotations.redirect?.code, 302);
    deepStrictEqual(t308.notes, [
      `annotation ${P}temporal-redirect-code has no effect: "308" is outside 300-307, so 302 is used, as in ingress-nginx`,
    ]);
  });

  it('allowlist, whitelist and denylist source ranges: CIDRs normalised to their network', () => {
    deepStrictEqual(one('allowlist-source-range', '10.0.0.7/8, 192.168.1.1,2001:db8::1/32').allow, [
      '10.0.0.0/8',
      '192.168.1.1/32',
      '2001:db8:0:0:0:0:0:0/32',
    ]);
    deepStrictEqual(one('whitelist-source-range', '127.0.0.1').allow, ['127.0.0.1/32']);
    deepStrictEqual(one('denylist-source-range', '::ffff:10.1.2.3/120, ::1').deny, [
      '0:0:0:0:0:ffff:a01:200/120',
      '0:0:0:0:0:0:0:1/128',
    ]);
    deepStrictEqual(one('allowlist-source-range', '0.0.0.0/0').allow, ['0.0.0.0/0']);
    const both = parse({ [`${P}allowlist-source-range`]: '10.0.0.0/8', [`${P}whitelist-source-range`]: '11.0.0.0/8' });
    deepStrictEqual(both.annotations.allow, ['10.0.0.0/8']);
    match(
      both.notes[0] ?? '',
      /whitelist-source-range has no effect: .*allowlist-source-range, its newer name, is set too and wins/,
    );
    for (const name of ['allowlist-source-range', 'denylist-source-range']) {
      for (const bad of ['10.0.0.0/33', '10.0.0', 'fe80::1%eth0', '10.0.0.1/8/8', 'all', ',', '10.0.0.01'])
        refused(name, bad, /(is not an IP address or CIDR range|prefix length|names nothing)/);
    }
  });

  it('CORS: ingress-nginx defaults; values kept as written, in its grammars', () => {
    deepStrictEqual(one('enable-cors', 'true').cors, {
      origins: null,
      methods: 'GET, PUT, POST, DELETE, PATCH, OPTIONS',
      headers:
        'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization',
      exposeHeaders: null,
      credentials: true,
      maxAge: '1728000',
    });
    const c = parse({
      [`${P}enable-cors`]: 'true',
      [`${P}cors-allow-origin`]: ' https://a.test,, http://*.B.test:8080, null, capacitor://localhost, ',
      [`${P}cors-allow-methods`]: ' get,POST ',
      [`${P}cors-allow-headers`]: 'X-A, X_B',
      [`${P}cors-expose-headers`]: '*',
      [`${P}cors-allow-credentials`]: 'false',
      [`${P}cors-max-age`]: '+060',
    }).annotations.cors;
    deepStrictEqual(c, {
      origins: [
        { scheme: 'https', host: 'a.test', wildcard: false, port: null },
        { scheme: 'http', host: 'b.test', wildcard: true, port: '8080' },
        { null: true },
        { scheme: 'capacitor', host: 'localhost', wildcard: false, port: null },
      ],
      methods: 'get,POST',
      headers: 'X-A, X_B',
      exposeHeaders: '*',
      credentials: false,
      maxAge: '60',
    });
    // What ingress-nginx's regexes accept is sent as written.
    const value = (name: string, v: string) =>
      (
        parse({ [`${P}enable-cors`]: 'true', [`${P}${name}`]: v }).annotations.cors as unknown as Record<
          string,
          unknown
        >
      )[name === 'cors-allow-methods' ? 'methods' : name === 'cors-allow-headers' ? 'headers' : 'exposeHeaders'];
    for (const v of ['GET,POST,PUT', 'GET, POST', 'GET POST', 'GET,POST,', 'get'])
      equal(value('cors-allow-methods', v), v);
    for (const v of ['X-A,X-B', 'X-A X-B', ',X-A,,', 'x_a , - , 9']) equal(value('cors-allow-headers', v), v);
    for (const v of ['X-A, X-B', '*', 'X-A*', 'X-A X-B,']) equal(value('cors-expose-headers', v), v);
    equal(parse({ [`${P}enable-cors`]: 'true', [`${P}cors-max-age`]: '-1' }).annotations.cors?.maxAge, '-1');
    equal(
      parse({ [`${P}enable-cors`]: 'true', [`${P}cors-allow-origin`]: 'a.test, https://a.test, *' }).annotations.cors
        ?.origins,
      null,
      '"*" anywhere means any origin',
    );
    const cors = (name: string, value: string, reason: RegExp) =>
      throws(
        () => parse({ [`${P}enable-cors`]: 'true', [`${P}${name}`]: value }),
        (e: unknown) => e instanceof InvalidValue && reason.test(e.message),
        value,
      );
    for (const bad of ['a.test', '*.a.test:8080', 'NULL'])
      cors('cors-allow-origin', bad, /has no scheme: ingress-nginx skips/);
    for (const bad of [
      'HTTPS://a.test',
      'https://a.test/path',
      'https://a_b.test',
      'https://*.*.a.test',
      "https://a.test'",
      'https://a.test:port',
    ])
      cors('cors-allow-origin', bad, /is not an origin/);
    for (const bad of ['GET;', 'GET,,POST', 'GET,  POST', 'GET,\tPOST', 'GET\nPOST', 'GET, $x', 'G3T'])
      cors('cors-allow-methods', bad, /is not a list of HTTP methods/);
    for (const bad of ['X-A$', 'X-A;', 'X-A\tX-B', '"X"', 'X.A'])
      cors('cors-allow-headers', bad, /is not a list of header names/);
    for (const bad of ['X-A,,X-B', 'X-A;', 'X.A'])
      cors('cors-expose-headers', bad, /is not a list of header names or "\*"/);
    for (const bad of ['1.5', '60s', '9223372036854775808', 'x']) cors('cors-max-age', bad, /is not a whole number/);
    // Without enable-cors the others do nothing, and say so.
    deepStrictEqual(parse({ [`${P}cors-allow-origin`]: 'https://a.test' }).notes, [
      `annotation ${P}cors-allow-origin has no effect: ${P}enable-cors is not "true"`,
    ]);
  });

  it('limits: whole numbers; 0 means no limit', () => {
    const a = parse({
      [`${P}limit-rps`]: '5',
      [`${P}limit-rpm`]: '300',
      [`${P}limit-burst-multiplier`]: '2',
      [`${P}limit-connections`]: '10',
    }).annotations;
    deepStrictEqual([a.limitRps, a.limitRpm, a.limitBurstMultiplier, a.limitConnections], [5, 300, 2, 10]);
    deepStrictEqual([one('limit-rps', '0').limitRps, one('limit-connections', '0').limitConnections], [null, null]);
    refused('limit-connections', '65536', /from 0 to 65535/);
    refused('limit-rps', '1.5', /is not a whole number/);
    refused('limit-burst-multiplier', '0', /from 1 to 1000/);
  });

  it('auth: basic with a Secret of the Ingress namespace, an optional type and realm', () => {
    deepStrictEqual(parse({ [`${P}auth-type`]: 'basic', [`${P}auth-secret`]: 'users' }).annotations.auth, {
      secret: 'default/users',
      secretType: 'auth-file',
      realm: 'Authentication Required',
    });
    deepStrictEqual(
      parse({
        [`${P}auth-type`]: 'basic',
        [`${P}auth-secret`]: 'default/users',
        [`${P}auth-secret-type`]: 'auth-map',
        [`${P}auth-realm`]: 'Staff (only)!',
      }).annotations.auth,
      { secret: 'default/users', secretType: 'auth-map', realm: 'Staff (only)!' },
    );
    const auth = (extra: Record<string, string>, reason: RegExp) =>
      throws(
        () =>
          parse({
            [`${P}auth-type`]: 'basic',
            [`${P}auth-secret`]: 'users',
            ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`${P}${k}`, v])),
          }),
        reason,
      );
    auth(
      { 'auth-secret': 'other/users' },
      /names a Secret in another namespace; only the Ingress's own \(default\) is read/,
    );
    auth({ 'auth-secret': 'a/b/c' }, /is not NAME or NAMESPACE\/NAME/);
    auth({ 'auth-secret': 'Users' }, /is not NAME or NAMESPACE\/NAME of a Secret/);
    auth({ 'auth-type': 'digest' }, /stock nginx has no digest authentication/);
    auth({ 'auth-type': 'Basic' }, /must be "basic"/);
    auth({ 'auth-realm': 'off' }, /and not "off"/);
    auth({ 'auth-realm': 'a"b' }, /auth-realm/);
    auth({ 'auth-realm': 'cost $5' }, /auth-realm/);
    auth({ 'auth-secret-type': 'auth-url' }, /must be "auth-file" or "auth-map"/);
    throws(() => parse({ [`${P}auth-type`]: 'basic' }), /auth-type is "basic" but .*auth-secret is not set/);
  });

  it('backend-protocol: HTTP, HTTPS, GRPC, GRPCS in any case', () => {
    deepStrictEqual(
      ['http', 'HTTPS', 'grpc', 'GrpcS'].map((v) => one('backend-protocol', v).backendProtocol),
      ['HTTP', 'HTTPS', 'GRPC', 'GRPCS'],
    );
    refused('backend-protocol', 'FCGI', /is not supported: use HTTP, HTTPS, GRPC or GRPCS/);
    refused('backend-protocol', 'AUTO_HTTP', /is not supported/);
    refused('backend-protocol', 'h2c', /must be HTTP, HTTPS, GRPC or GRPCS/);
  });

  it('reports unknown annotations, refuses snippets, and refuses values that are not strings or empty', () => {
    const r = parse({
      [`${P}configuration-snippet`]: 'return 200;',
      [`${P}server-snippet`]: 'x',
      [`${P}auth-url`]: 'http://auth.test/',
      [`${P}enable-access-log`]: 'false',
      'other.io/x': 'y',
    });
    deepStrictEqual(r.notes, [
      `annotation ${P}enable-access-log is not supported and has no effect: access logging follows --access-log`,
    ]);
    deepStrictEqual(r.annotations.denied, [
      `annotation ${P}auth-url is not implemented and must not be ignored: external authentication (auth_request) is not implemented: served without it, requests would reach the backend unauthenticated`,
      `annotation ${P}configuration-snippet is not implemented and must not be ignored: snippets are off (--allow-snippet-annotations): the nginx configuration it carries (often access control or headers) would not apply`,
      `annotation ${P}server-snippet is not implemented and must not be ignored: snippets are off (--allow-snippet-annotations): the nginx configuration it carries (often access control or headers) would not apply`,
    ]);
    deepStrictEqual(parse({ [`${P}x\ny`]: 'v' }).notes, [`annotation ${P}x\\ny is not supported and has no effect`]);
    // A must-not-ignore annotation that asks only for ingress-nginx's default changes nothing.
    deepStrictEqual(parse({ [`${P}ssl-passthrough`]: 'false' }).annotations.denied, []);
    deepStrictEqual(parse({ [`${P}ssl-passthrough`]: 'False' }).notes, [
      `annotation ${P}ssl-passthrough is not supported and has no effect: its value asks for ingress-nginx's default`,
    ]);
    equal(parse({ [`${P}ssl-passthrough`]: 'true' }).annotations.denied.length, 1);
    throws(() => parse({ [`${P}proxy-body-size`]: 8 }), /must be a string, not a number/);
    throws(() => parse({ [`${P}proxy-body-size`]: '' }), /must not be empty/);
    deepStrictEqual(parse({ [`${P}ssl-redirect`]: 'false' }, false).notes, [
      `annotation ${P}ssl-redirect has no effect: TLS is not enabled in this sidecar`,
    ]);
  });
});

describe('annotations: parsing the routing annotations', () => {
  const many = (a: Record<string, string>) =>
    parse(Object.fromEntries(Object.entries(a).map(([k, v]) => [`${P}${k}`, v])));

  it('load-balance and upstream-hash-by: the values ingress-nginx documents, variables canonicalised', () => {
    equal(one('load-balance', 'ewma').loadBalance, 'ewma');
    refused('load-balance', 'least_conn', /must be "round_robin" or "ewma"/);
    equal(one('upstream-hash-by', '$request_uri').hashBy, '${request_uri}');
    equal(one('upstream-hash-by', '${http_x_user}-$arg_id').hashBy, '${http_x_user}-${arg_id}');
    refused('upstream-hash-by', '$request_body', /uses \$request_body/);
    refused('upstream-hash-by', 'static', /names no variable/);
    refused('upstream-hash-by', '$uri;', /may contain only/);
    deepStrictEqual(many({ 'upstream-hash-by': '$uri', 'load-balance': 'ewma' }).notes, [
      `annotation ${P}load-balance has no effect: ${P}upstream-hash-by takes precedence`,
    ]);
  });

  it('affinity cookie: defaults, attributes, and names nginx can read', () => {
    deepStrictEqual(one('affinity', 'cookie').affinity, {
      mode: 'balanced',
      cookie: 'INGRESSCOOKIE',
      path: null,
      maxAge: null,
      sameSite: null,
      secure: false,
    });
    deepStrictEqual(
      many({
        affinity: 'cookie',
        'session-cookie-name': 'ROUTE',
        'session-cookie-samesite': 'none',
        'session-cookie-max-age': '60',
      }).annotations.affinity,
      {
        mode: 'balanced',
        cookie: 'ROUTE',
        path: null,
        maxAge: 60,
        sameSite: 'None',
        secure: false,
      },
    );
    refused('affinity', 'ip', /must be "cookie"/);
    refused('session-cookie-name', 'my-cookie', /letters, digits and "_"/);
    refused('session-cookie-path', '/a;b', /without ";"/);
    deepStrictEqual(one('session-cookie-name', 'X').affinity, null);
  });

  it('canary: header, value, cookie and weight; weight within its total', () => {
    deepStrictEqual(
      many({
        canary: 'true',
        'canary-by-header': 'X-Canary',
        'canary-by-header-value': 'v2',
        'canary-by-cookie': 'c',
        'canary-weight': '20',
        'canary-weight-total': '1000',
      }).annotations.canary,
      {
        header: { name: 'X-Canary', value: 'v2' },
        cookie: 'c',
        weight: 20,
        total: 1000,
      },
    );
    // ingress-nginx accepts a weight above the total: the canary takes every request left to the weight.
    equal(many({ canary: 'true', 'canary-weight': '101' }).annotations.canary?.weight, 101);
    throws(() => many({ canary: 'true', 'canary-weight': '-1' }), /from 0 to 1000000/);
    refused('canary-by-header', 'X Canary', /header name/);
    refused('canary-by-header-value', 'a b', /may contain only/);
    deepStrictEqual(many({ 'canary-weight': '5' }).notes, [
      `annotation ${P}canary-weight has no effect: ${P}canary is not "true"`,
    ]);
  });

  it('mirror-target, custom-http-errors, default-backend, service-upstream', () => {
    deepStrictEqual(one('mirror-target', 'https://m.example:8443/copy$request_uri').mirror, {
      target: {
        scheme: 'https',
        host: 'm.example',
        port: 8443,
        path: [{ text: '/copy' }, { variable: 'request_uri' }],
      },
      body: true,
    });
    deepStrictEqual(one('mirror-target', 'http://[2001:db8::1]').mirror?.target, {
      scheme: 'http',
      host: '[2001:db8::1]',
      port: 80,
      path: [],
    });
    refused('mirror-target', 'http://169.254.169.254/latest', /link-local/);
    refused('mirror-target', 'http://a.example$host', /may contain only URL characters and the variable \$request_uri/);
    refused('mirror-target', 'ftp://a.example/', /http:\/\/ or https:\/\//);
    deepStrictEqual(one('custom-http-errors', '503, 404,404').customErrors, [404, 503]);
    refused('custom-http-errors', '302', /from 400 to 599/);
    equal(one('default-backend', 'errors').defaultBackend, 'errors');
    refused('default-backend', 'ns/errors', /not the name of a Service/);
    equal(one('service-upstream', 'true').serviceUpstream, true);
  });
});

describe('annotations: regular-expression paths', () => {
  it('accepts what ingress-nginx users write', () => {
    for (const p of [
      '/app(/|$)(.*)',
      '/api/v[0-9]+/.*',
      '/(foo|bar)/\\d{1,3}',
      '/[a-z]+\\.html$',
      '/.*',
      '/a{2}[.]b',
      '/x?',
    ])
      equal(ann.parseRegexPath(p), p);
  });

  it('refuses what nginx would read differently, or not at all', () => {
    const cases: Array<[string, RegExp]> = [
      ['api/(.*)', /must start with "\/"/],
      ['/(?<host>.*)', /must not contain "\(\?"/],
      ['/(?i)a', /must not contain "\(\?"/],
      ['/(?=a)', /must not contain "\(\?"/],
      ['/a\\1', /may escape only/],
      ['/a\\Qb', /may escape only/],
      ['/a\\', /may escape only/],
      ['/[]a', /empty character class/],
      ['/[[:alpha:]]', /POSIX classes/],
      ['/a{2000}', /more than 1000 times/],
      ['/(a', /is not a valid regular expression/],
      ['/a**', /is not a valid regular expression/],
      ['/a b', /may contain only/],
      ['/a"b', /may contain only/],
      ['/a#b', /may contain only/],
      ['/\u00e9', /may contain only/],
    ];
    for (const [p, reason] of cases) throws(() => ann.parseRegexPath(p), reason, p);
  });

  it('escapes literals for PCRE', () => {
    equal(ann.regexLiteral('/a.b+c(d)/e_f-g'), '/a\\.b\\+c\\(d\\)/e_f-g');
    equal(ann.regexLiteral('/é'), '/é');
  });
});

describe('annotations: translation', function () {
  this.timeout(20_000);
  const CERT_DIR = '/etc/nginx/conf.d/ingress-sidecar-certs';
  const backends = [backendService('web'), backendService('api', '10.0.0.2')];
  let opts: TranslateOptions;
  before(() => {
    opts = {
      ingressClass: 'nginx',
      httpPort: 80,
      ipv6: false,
      now: new Date(),
      tls: { httpsPort: 443, certDir: CERT_DIR, defaultCertificate: { pem: makeCert({ cn: 'default' }).pem } },
    };
  });
  const a = (x: Record<string, string>) => Object.fromEntries(Object.entries(x).map(([k, v]) => [`${P}${k}`, v]));
  const run = (
    ingresses: ReturnType<typeof ingress>[],
    secrets: V1Secret[] = [],
    o: Partial<TranslateOptions> = {},
  ): RoutingModel => {
    const m = translate(snapshot({ ingresses, backends, secrets }), { ...opts, ...o });
    renderModel(m);
    return m;
  };
  const host = (m: RoutingModel, h: string) => m.servers.find((s) => s.host === h)!;
  const table = (m: RoutingModel, h: string) =>
    host(m, h).locations.map((l: Location) => `${locationLabel(l)} ${l.ingress}`);
  const authSecret = (name: string, data: Record<string, string>): V1Secret => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'default' },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  });

  it("applies an Ingress's annotations to its own locations only, on a shared host", () => {
    const m = run([
      ingress('a', [rule('shared.test', path('/a', 'Prefix', 'web'))], {
        age: 0,
        annotations: a({ 'proxy-body-size': '8m', 'proxy-read-timeout': '120' }),
      }),
      ingress('b', [rule('shared.test', path('/b', 'Prefix', 'web'))], { age: 1 }),
    ]);
    const byIngress = (key: string) =>
      host(m, 'shared.test')
        .locations.filter((l) => l.ingress === key)
        .map((l) => [l.settings.bodySize, l.settings.readTimeout]);
    deepStrictEqual(byIngress('default/a'), [
      ['8m', 120],
      ['8m', 120],
    ]);
    deepStrictEqual(byIngress('default/b'), [
      [null, null],
      [null, null],
    ]);
    deepStrictEqual(m.rejections, []);
  });

  it('rejects an Ingress whose annotation does not parse, and serves the others; its paths answer 503 (fail closed)', () => {
    const m = run([
      ingress('bad', [rule('shared.test', path('/admin', 'Prefix', 'web'))], {
        age: 1,
        annotations: a({ 'limit-rps': '10; return 200' }),
      }),
      ingress('good', [rule('shared.test', path('/', 'Prefix', 'web'))], { age: 0 }),
    ]);
    deepStrictEqual(m.served, ['default/good']);
    deepStrictEqual(m.rejections, [
      {
        ingress: 'default/bad',
        severity: 'rejected',
        reason: `not served: annotation ${P}limit-rps: "10; return 200" is not a whole number from 0 to 1000000; its paths answer 503 until this is fixed`,
      },
    ]);
    // /admin does not fall through to the other Ingress's "/", which has no rate limit.
    deepStrictEqual(table(m, 'shared.test'), ['/admin/ default/bad', '= /admin default/bad', '/ default/good']);
    deepStrictEqual(
      host(m, 'shared.test')
        .locations.filter((l) => l.ingress === 'default/bad')
        .map((l) => [l.action.kind, l.settings.limitReq]),
      [
        ['unavailable', []],
        ['unavailable', []],
      ],
    );
    // A canary whose value does not parse is rejected whole: it never claims a path of its own.
    const c = run([
      ingress('main', [rule('c.test', path('/', 'Prefix', 'web'))], { age: 0 }),
      ingress('canary', [rule('c.test', path('/new', 'Prefix', 'api'))], {
        age: 1,
        annotations: a({ canary: 'true', 'canary-weight': 'half' }),
      }),
    ]);
    deepStrictEqual([table(c, 'c.test'), c.served], [['/ default/main'], ['default/main']]);
  });

  it("use-regex: ImplementationSpecific paths become case-insensitive regexes; the host's other Prefix paths become exact-meaning regexes, longest first", () => {
    const m = run([
      ingress(
        're',
        [
          rule(
            're.test',
            path('/app(/|$)(.*)', 'ImplementationSpecific', 'web'),
            path('/.*', 'ImplementationSpecific', 'web'),
            path('/lit', 'Prefix', 'web'),
            path('/x', 'Exact', 'web'),
          ),
        ],
        { age: 0, annotations: a({ 'use-regex': 'true' }) },
      ),
      ingress(
        'plain',
        [
          rule(
            're.test',
            path('/app/very/special', 'Prefix', 'api'),
            path('/api', 'Prefix', 'api'),
            path('/', 'Prefix', 'api'),
          ),
        ],
        { age: 1 },
      ),
    ]);
    deepStrictEqual(table(m, 're.test'), [
      '~ ^/app/very/special(?:/|$) default/plain',
      '~* ^(?:/app(/|$)(.*)) default/re',
      '~ ^/api(?:/|$) default/plain',
      '~ ^/lit(?:/|$) default/re',
      '~* ^(?:/.*) default/re',
      '= /x default/re',
      '/ default/plain',
    ]);
    // Without use-regex an ImplementationSpecific path is a Prefix, and nothing is converted.
    const plain = run([
      ingress('p', [rule('p.test', path('/a.b', 'ImplementationSpecific', 'web'), path('/c', 'Prefix', 'web'))]),
    ]);
    deepStrictEqual(table(plain, 'p.test'), [
      '/a.b/ default/p',
      '= /a.b default/p',
      '/c/ default/p',
      '= /c default/p',
      '/ ',
    ]);
  });

  it('rewrite-target: one rewrite per location, from its own path', () => {
    const m = run([
      ingress('rw', [rule('rw.test', path('/app(/|$)(.*)', 'ImplementationSpecific', 'web'))], {
        annotations: a({ 'rewrite-target': '/$2' }),
      }),
      ingress('lit', [rule('rw.test', path('/lit', 'Prefix', 'web'))], {
        annotations: a({ 'rewrite-target': '/new' }),
      }),
    ]);
    deepStrictEqual(
      host(m, 'rw.test').locations.map((l) => [locationLabel(l), l.settings.rewrite]),
      [
        ['~* ^(?:/app(/|$)(.*))', { regex: '(?i)^(?:/app(/|$)(.*))', replacement: '/$2' }],
        ['~ ^/lit(?:/|$)', { regex: '^/lit', replacement: '/new' }],
        ['/', null],
      ],
    );
  });

  it('refuses regex syntax in Exact and Prefix paths with use-regex or rewrite-target, and captures a path cannot produce', () => {
    const refusedWith = (paths: ReturnType<typeof path>[], annotations: Record<string, string>, reason: RegExp) => {
      const m = run([
        ingress('bad', [rule('r.test', ...paths)], { annotations: a(annotations) }),
        ingress('good', [rule('g.test', path('/', 'Prefix', 'web'))]),
      ]);
      deepStrictEqual(m.served, ['default/good']);
      deepStrictEqual(
        m.rejections.map((r) => r.severity),
        ['rejected'],
      );
      match(m.rejections[0]!.reason, reason);
    };
    // ingress-nginx's own e2e pattern, with pathType Prefix: literal here, so refused with the fix.
    refusedWith(
      [path('/foo/bar/(.+)', 'Prefix', 'web')],
      { 'use-regex': 'true', 'rewrite-target': '/new/backend/$1' },
      /looks like a regular expression, but pathType Prefix matches it literally; use pathType: ImplementationSpecific/,
    );
    refusedWith([path('/a|b', 'Exact', 'web')], { 'use-regex': 'true' }, /pathType Exact matches it literally/);
    refusedWith(
      [path('/app(/|$)(.*)', 'ImplementationSpecific', 'web')],
      { 'rewrite-target': '/$3' },
      /rewrite-target uses \$3, but path "\/app\(\/\|\$\)\(\.\*\)" has only 2 capture groups/,
    );
    refusedWith(
      [path('/app', 'Prefix', 'web')],
      { 'rewrite-target': '/$1' },
      /rewrite-target uses \$1, but pathType Prefix path "\/app" has no capture groups; use pathType: ImplementationSpecific/,
    );
    // Without use-regex or rewrite-target the characters stay literal.
    const m = run([ingress('lit', [rule('r.test', path('/a(b)', 'Prefix', 'web'))])]);
    deepStrictEqual([m.served, m.rejections], [['default/lit'], []]);
  });

  it('a regex path is claimed once; the older Ingress keeps it', () => {
    const m = run([
      ingress('old', [rule('c.test', path('/r(.*)', 'ImplementationSpecific', 'web'))], {
        age: 0,
        annotations: a({ 'use-regex': 'true' }),
      }),
      ingress('new', [rule('c.test', path('/r(.*)', 'ImplementationSpecific', 'api'))], {
        age: 1,
        annotations: a({ 'use-regex': 'true' }),
      }),
    ]);
    deepStrictEqual(table(m, 'c.test'), ['~* ^(?:/r(.*)) default/old', '/ ']);
    match(
      m.rejections[0]?.reason ?? '',
      /path \/r\(\.\*\) \(ImplementationSpecific\) on host c\.test is already served by the older Ingress default\/old/,
    );
  });

  it('an Exact /foo/ next to regexes still pins /foo (nginx would redirect it before trying regexes)', () => {
    const m = run([
      ingress(
        'e',
        [
          rule(
            'e.test',
            path('/foo/', 'Exact', 'web'),
            path('/f', 'Prefix', 'api'),
            path('/z(.*)', 'ImplementationSpecific', 'web'),
          ),
        ],
        { annotations: a({ 'use-regex': 'true' }) },
      ),
    ]);
    deepStrictEqual(table(m, 'e.test'), [
      '~* ^(?:/z(.*)) default/e',
      '= /foo/ default/e',
      '= /foo ',
      '~ ^/f(?:/|$) default/e',
      '/ ',
    ]);
    equal(host(m, 'e.test').locations.find((l) => l.path === '/foo')?.action.kind, 'notFound', '/foo is not under /f');
  });

  it('backend-protocol: one upstream per Service port and protocol (keepalive connections never cross protocols)', () => {
    const m = run([
      ingress('h', [rule('p.test', path('/h', 'Prefix', 'web'))]),
      ingress('s', [rule('p.test', path('/s', 'Prefix', 'web'))], { annotations: a({ 'backend-protocol': 'HTTPS' }) }),
      ingress('g', [rule('p.test', path('/g', 'Prefix', 'web'))], { annotations: a({ 'backend-protocol': 'GRPC' }) }),
      ingress('gs', [rule('p.test', path('/gs', 'Prefix', 'web'))], {
        annotations: a({ 'backend-protocol': 'GRPCS' }),
      }),
    ]);
    deepStrictEqual(
      m.upstreams.map((u) => [u.name, u.servers.map((x) => x.address)]),
      [
        ['default_web_80', ['10.0.0.1:8080']],
        ['default_web_80_grpc', ['10.0.0.1:8080']],
        ['default_web_80_grpcs', ['10.0.0.1:8080']],
        ['default_web_80_https', ['10.0.0.1:8080']],
      ],
    );
    const files = renderModel(m);
    const conf = files.get(host(m, 'p.test').file)!;
    match(conf, /location = \/s \{[^}]*proxy_pass https:\/\/[0-9a-f]{8}_default_web_80_https;/);
    match(
      conf,
      /location = \/g \{[^}]*grpc_set_header Host \$ingress_sidecar_host;[^}]*grpc_pass grpc:\/\/[0-9a-f]{8}_default_web_80_grpc;/,
    );
    match(
      conf,
      /location = \/gs \{[^}]*grpc_read_timeout 60s;[^}]*grpc_pass grpcs:\/\/[0-9a-f]{8}_default_web_80_grpcs;/,
    );
  });

  it('limits: one zone per Ingress and kind, names derived from the Ingress, only zones in use', () => {
    const m = run([
      ingress('l1', [rule('l.test', path('/a', 'Prefix', 'web'))], {
        annotations: a({
          'limit-rps': '5',
          'limit-rpm': '100',
          'limit-burst-multiplier': '3',
          'limit-connections': '7',
        }),
      }),
      ingress('l2', [rule('l.test', path('/b', 'Prefix', 'web'))], { annotations: a({ 'limit-rps': '5' }) }),
    ]);
    equal(m.limitReqZones.length, 3);
    ok(m.limitReqZones.every((z) => /^ingress_sidecar_(rps|rpm)_[0-9a-f]{16}$/.test(z.name)));
    deepStrictEqual(m.limitReqZones.map((z) => z.rate).sort(), ['100r/m', '5r/s', '5r/s']);
    const l1 = host(m, 'l.test').locations.find((l) => l.ingress === 'default/l1')!.settings;
    deepStrictEqual(
      l1.limitReq.map((z) => z.burst),
      [15, 300],
    );
    deepStrictEqual([l1.limitConn?.connections, m.limitConnZones], [7, [l1.limitConn?.zone]]);
    // A rejected Ingress leaves no zone behind.
    const rejected = run([
      ingress('l3', [rule('l.test', path('/a', 'Prefix', 'web'))], {
        annotations: a({ 'limit-rps': '5', 'proxy-buffering': 'maybe' }),
      }),
    ]);
    deepStrictEqual(rejected.limitReqZones, []);
  });

  it('CORS: one origin map per distinct list of origins', () => {
    const cors = a({ 'enable-cors': 'true', 'cors-allow-origin': 'https://a.test, https://*.b.test:8443' });
    const m = run([
      ingress('c1', [rule('c.test', path('/1', 'Prefix', 'web'))], { annotations: cors }),
      ingress('c2', [rule('d.test', path('/2', 'Prefix', 'web'))], { annotations: cors }),
      ingress('c3', [rule('d.test', path('/3', 'Prefix', 'web'))], { annotations: a({ 'enable-cors': 'true' }) }),
    ]);
    deepStrictEqual(
      m.corsMaps.map((c) => c.pattern),
      ['^(https://a\\.test|https://[a-z0-9-]+\\.b\\.test:8443)$'],
    );
    ok(/^isc_cors_[0-9a-f]{8}$/.test(m.corsMaps[0]!.variable));
    // One value map per header value, shared by the locations that send it; the origin is echoed.
    deepStrictEqual(m.corsMaps[0]!.values.map((v) => [v.header, v.value]).sort(), [
      ['Access-Control-Allow-Credentials', 'true'],
      ['Access-Control-Allow-Headers', ann.DEFAULT_CORS_HEADERS],
      ['Access-Control-Allow-Methods', ann.DEFAULT_CORS_METHODS],
      ['Access-Control-Allow-Origin', null],
      ['Access-Control-Max-Age', '1728000'],
    ]);
    ok(m.corsMaps[0]!.values.every((v) => /^isc_cv_[0-9a-f]{8}$/.test(v.variable)));
    const c1 = host(m, 'c.test').locations[0]?.settings.cors;
    deepStrictEqual(
      c1?.headers.map((h) => h.name),
      [
        'Access-Control-Allow-Origin',
        'Access-Control-Allow-Credentials',
        'Access-Control-Allow-Methods',
        'Access-Control-Allow-Headers',
        'Access-Control-Max-Age',
      ],
    );
    deepStrictEqual(
      host(m, 'd.test').locations.find((l) => l.ingress === 'default/c2')?.settings.cors?.headers,
      c1?.headers,
    );
    deepStrictEqual(host(m, 'd.test').locations.find((l) => l.ingress === 'default/c3')?.settings.cors?.origin, {
      any: true,
    });
  });

  it('auth: the htpasswd file is a derived private file; an unusable Secret answers 503 and is reported', () => {
    const users = authSecret('users', { auth: '# comment\nalice:$apr1$x$y\r\n\nbob:{PLAIN}pw\n' });
    const m = run(
      [
        ingress('ok', [rule('a.test', path('/', 'Prefix', 'web'))], {
          annotations: a({ 'auth-type': 'basic', 'auth-secret': 'users' }),
        }),
        ingress('missing', [rule('b.test', path('/', 'Prefix', 'web'))], {
          annotations: a({ 'auth-type': 'basic', 'auth-secret': 'nope' }),
        }),
      ],
      [users],
    );
    const auth = host(m, 'a.test').locations[0]!.settings.auth!;
    match(auth.userFile, /^\/etc\/nginx\/conf\.d\/ingress-sidecar-certs\/[0-9a-f]{32}\.pem$/);
    const file = m.certificates.find((c) => auth.userFile.endsWith(c.file))!;
    equal(file.pem, 'alice:$apr1$x$y\nbob:{PLAIN}pw\n');
    ok(!JSON.stringify(m).includes('apr1'), 'password hashes stay out of JSON');
    deepStrictEqual(
      host(m, 'b.test').locations.map((l) => l.action),
      [{ kind: 'unavailable', reason: 'auth-type basic: Secret default/nope not found' }],
    );
    deepStrictEqual(m.rejections, [
      {
        ingress: 'default/missing',
        severity: 'partial',
        reason: 'auth-type basic: Secret default/nope not found; its paths answer 503',
      },
    ]);
    // Without TLS there is no private directory for the file: fail closed.
    const noTls = run(
      [
        ingress('ok', [rule('a.test', path('/', 'Prefix', 'web'))], {
          annotations: a({ 'auth-type': 'basic', 'auth-secret': 'users' }),
        }),
      ],
      [users],
      { tls: undefined },
    );
    equal(host(noTls, 'a.test').locations[0]!.action.kind, 'unavailable');
    deepStrictEqual(noTls.certificates, []);
  });

  it('htpasswd: auth-file lines and auth-map keys; nothing but user:hash lines gets through', () => {
    const s = (data: Record<string, string>) => authSecret('x', data);
    const problem = (f: () => unknown, reason: string) =>
      throws(f, (err: unknown) => err instanceof InvalidValue && err.message === reason, reason);
    deepStrictEqual(htpasswd(s({ auth: 'a:h1\nb:h2' }), 'auth-file'), 'a:h1\nb:h2\n');
    deepStrictEqual(htpasswd(s({ zed: '$apr1$a$b', amy: '{SHA}xyz=' }), 'auth-map'), 'amy:{SHA}xyz=\nzed:$apr1$a$b\n');
    problem(() => htpasswd(s({ other: 'a:b' }), 'auth-file'), 'has no "auth" key (auth-secret-type auth-file)');
    problem(
      () => htpasswd(s({ auth: 'a:b\nnot a line\n' }), 'auth-file'),
      'line 2 of its "auth" key is not USER:PASSWORD-HASH in printable ASCII',
    );
    problem(
      () => htpasswd(s({ auth: 'a:b c' }), 'auth-file'),
      'line 1 of its "auth" key is not USER:PASSWORD-HASH in printable ASCII',
    );
    problem(() => htpasswd(s({ auth: '# only a comment\n' }), 'auth-file'), 'names no user');
    problem(
      () => htpasswd(s({ 'a:b': 'h' }), 'auth-map'),
      'a key or value is not a user name and password hash in printable ASCII (auth-secret-type auth-map)',
    );
    problem(
      () => htpasswd({ ...s({}), data: { auth: '!!!' } }, 'auth-file'),
      'its "auth" key is not base64 of UTF-8 text',
    );
  });

  it("the proxy defaults that gRPC locations restate are the server block's own (server.conf.mustache)", () => {
    const server = readFileSync(new URL('../../nginx/server.conf.mustache', import.meta.url), 'utf8');
    const t = ann.DEFAULT_PROXY_TIMEOUTS;
    const want = {
      proxy_connect_timeout: `${t.connect}s`,
      proxy_send_timeout: `${t.send}s`,
      proxy_read_timeout: `${t.read}s`,
      proxy_buffer_size: ann.DEFAULT_PROXY_BUFFER_SIZE,
    };
    for (const [directive, value] of Object.entries(want))
      match(server, new RegExp(`^    ${directive} ${value};$`, 'm'));
  });

  it('several annotations on one location (spec/golden/annotations puts them all through nginx -t)', () => {
    const m = run([
      ingress('all', [rule('all.test', path('/', 'Prefix', 'web'))], {
        annotations: a({
          'x-forwarded-prefix': '/p',
          'enable-cors': 'true',
          'allowlist-source-range': '10.0.0.0/8',
          'denylist-source-range': '10.1.0.0/16',
          'proxy-buffer-size': '8k',
        }),
      }),
    ]);
    const s = host(m, 'all.test').locations[0]!.settings;
    deepStrictEqual(
      [s.xForwardedPrefix, s.allow, s.deny, s.bufferSize, s.cors?.origin],
      ['/p', ['10.0.0.0/8'], ['10.1.0.0/16'], '8k', { any: true }],
    );
  });
});

describe('annotations: every one has a class, and docs/annotations.md says which', () => {
  const readme = readFileSync(new URL('../../docs/annotations.md', import.meta.url), 'utf8');
  const between = (from: string, to: string) => {
    const start = readme.indexOf(from);
    const end = readme.indexOf(to, start + from.length);
    ok(start >= 0 && end > start, `docs/annotations.md has "${from}" before "${to}"`);
    return readme.slice(start, end);
  };
  const implemented = between('| Annotation | Values | Default | nginx |', '**Must not be ignored**');
  const mustNot = between('**Must not be ignored**', '**Ignorable**');
  const ignorable = between('**Ignorable**', 'Paths under `/_ingress_sidecar/`');
  const names = (table: string) =>
    new Set(
      [...table.matchAll(/^\| ([^|]+)\|/gm)].flatMap((m) => [...m[1]!.matchAll(/`([a-z0-9-]+)`/g)].map((x) => x[1]!)),
    );

  it('lists the implemented ones in the table, the others under their class, and none twice', () => {
    const [i, m, g] = [names(implemented), names(mustNot), names(ignorable)];
    for (const n of ann.SUPPORTED_ANNOTATIONS)
      ok(i.has(n.slice(P.length)), `${n} is implemented but not in docs/annotations.md's table`);
    for (const [n, e] of Object.entries(UNIMPLEMENTED)) {
      ok(
        (e.class === 'must-not-ignore' ? m : g).has(n),
        `${n} (${e.class}) is not in docs/annotations.md's ${e.class} table`,
      );
      ok(!i.has(n) && !(e.class === 'must-not-ignore' ? g : m).has(n), `${n} is listed under two classes`);
      ok(!ann.SUPPORTED_ANNOTATIONS.has(`${P}${n}`), `${n} is both implemented and not`);
    }
  });

  it('classifies values: the default of a must-not-ignore annotation is ignorable; unknown names are ignorable', () => {
    const c = (name: string, value: string) => classify(`${P}${name}`, value, ann.SUPPORTED_ANNOTATIONS, P).class;
    deepStrictEqual(
      [
        c('auth-url', 'http://a'),
        c('proxy-ssl-verify', 'on'),
        c('proxy-ssl-verify', ' OFF '),
        c('satisfy', 'any'),
        c('satisfy', 'all'),
        c('no-such-thing', 'x'),
        c('rewrite-target', '/'),
        c('toString', 'x'),
      ],
      [
        'must-not-ignore',
        'must-not-ignore',
        'ignorable',
        'must-not-ignore',
        'ignorable',
        'ignorable',
        'implemented',
        'ignorable',
      ],
    );
  });
});
