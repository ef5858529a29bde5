// translate: spec.tls, the default certificate, and the redirect annotations.
import { deepStrictEqual, equal, match, ok, throws } from 'node:assert/strict';
import type { V1Ingress, V1Secret } from '@kubernetes/client-node';
import type { RoutingModel } from '../../../src/model.ts';
import { renderModel } from '../../../src/nginx/render.ts';
import { certificateFromPem } from '../../../src/translate/certificates.ts';
import { translate, type TranslateOptions } from '../../../src/translate/index.ts';
import { makeCert, tlsSecret, type TestCert } from '../../helpers/certs.ts';
import { backendService, ingress, path, rule, snapshot } from '../../helpers/builders.ts';
import { server } from './common.ts';

const CERT_DIR = '/etc/nginx/conf.d/ingress-sidecar-certs';
const DAY = 86400_000;

describe('translate: TLS', function () {
  this.timeout(30_000);
  let generated: TestCert;
  let shop: TestCert;
  let shop2: TestCert;
  let wild: TestCert;
  let fallback: TestCert;
  let now: Date;
  let opts: TranslateOptions;
  const backends = [backendService('web')];

  before(() => {
    generated = makeCert({ cn: 'generated default' });
    shop = makeCert({ dns: ['shop.test', 'api.shop.test'] });
    shop2 = makeCert({ dns: ['shop.test'], days: 60 });
    wild = makeCert({ dns: ['*.apps.test'] });
    fallback = makeCert({ dns: ['*.example.com'] });
    now = new Date();
    opts = {
      ingressClass: 'nginx',
      httpPort: 80,
      ipv6: false,
      now,
      tls: { httpsPort: 443, certDir: CERT_DIR, defaultCertificate: { pem: generated.pem } },
    };
  });

  const fileOf = (c: TestCert) => {
    return certificateFromPem(c.crt, c.key).file;
  };
  const pathOf = (c: TestCert) => `${CERT_DIR}/${fileOf(c)}`;
  /** What a host without TLS answers HTTPS with: the default certificate, no Ingress's. */
  const noTls = () => ({ certPath: pathOf(generated), secret: null, ingress: null });
  const run = (ingresses: V1Ingress[], secrets: V1Secret[], o: Partial<TranslateOptions> = {}): RoutingModel => {
    const m = translate(snapshot({ ingresses, backends, secrets }), { ...opts, ...o });
    renderModel(m); // always renders
    return m;
  };
  const reasons = (m: RoutingModel) => m.rejections.map((r) => `${r.ingress} ${r.severity}: ${r.reason}`);
  const shopIngress = (extra: Parameters<typeof ingress>[2] = {}, name = 'shop') =>
    ingress(
      name,
      [rule('shop.test', path('/', 'Prefix', 'web'), path('/.well-known/acme-challenge/tok', 'Exact', 'web'))],
      { tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }], ...extra },
    );

  it("gives a host rule without paths its spec.tls: the rule makes the host's server (its defaultBackend answers)", () => {
    const m = run(
      [
        ingress('shop', [rule('shop.test')], {
          defaultBackend: { service: 'web', port: 80 },
          tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }],
        }),
      ],
      [tlsSecret('shop-tls', shop.crt, shop.key)],
    );
    deepStrictEqual(server(m, 'shop.test').tls, {
      certPath: pathOf(shop),
      secret: 'default/shop-tls',
      ingress: 'default/shop',
    });
    ok(server(m, 'shop.test').locations.every((l) => l.sslRedirect));
  });

  it('serves a spec.tls host with its Secret, and the default server with the generated certificate', () => {
    const m = run(
      [shopIngress(), ingress('plain', [rule('plain.test', path('/', 'Prefix', 'web'))])],
      [tlsSecret('shop-tls', shop.crt, shop.key)],
    );
    deepStrictEqual(m.rejections, []);
    deepStrictEqual(server(m, 'shop.test').tls, {
      certPath: pathOf(shop),
      secret: 'default/shop-tls',
      ingress: 'default/shop',
    });
    deepStrictEqual(server(m, null).tls, { certPath: pathOf(generated), secret: null, ingress: null });
    deepStrictEqual(server(m, 'plain.test').tls, noTls());
    deepStrictEqual(
      m.certificates.map((c) => c.file),
      [fileOf(shop), fileOf(generated)].sort(),
    );
    ok(m.certificates.every((c) => c.pem.includes('PRIVATE KEY') && !JSON.stringify(c).includes('PRIVATE')));
    deepStrictEqual(m.https, { port: 443, redirectPort: 443, http2: 'listen' });
  });

  it('serves a host without spec.tls on the HTTPS port too, with the default certificate and no redirect (as ingress-nginx)', () => {
    const m = run(
      [shopIngress(), ingress('plain', [rule('plain.test', path('/', 'Prefix', 'web'))])],
      [tlsSecret('shop-tls', shop.crt, shop.key)],
    );
    deepStrictEqual(m.rejections, []);
    const plain = server(m, 'plain.test');
    deepStrictEqual(plain.tls, noTls());
    ok(plain.locations.every((l) => !l.sslRedirect));
    const conf = renderModel(m).get(plain.file)!;
    match(conf, /\n    listen 80;\n    listen 443 ssl http2;\n    server_name plain\.test;\n/);
    match(conf, /# TLS certificate: the default, generated self-signed\n/);
    match(
      conf,
      new RegExp(`\n    ssl_certificate ${pathOf(generated)};\n    ssl_certificate_key ${pathOf(generated)};\n`),
    );
    ok(!conf.includes('return 308'), conf);
    // With TLS off, no server listens on an HTTPS port.
    const off = translate(
      snapshot({ ingresses: [ingress('plain', [rule('plain.test', path('/', 'Prefix', 'web'))])], backends }),
      { ...opts, tls: undefined },
    );
    ok([off.defaultServer, ...off.servers].every((x) => x.tls === null));
    ok([...renderModel(off).values()].every((text) => !/\bssl\b/.test(text)));
  });

  it('redirects plain HTTP on TLS hosts, except ACME challenges and where ssl-redirect is "false"', () => {
    const m = run(
      [
        shopIngress(),
        ingress('noredirect', [rule('shop.test', path('/open', 'Prefix', 'web'))], {
          annotations: { 'nginx.ingress.kubernetes.io/ssl-redirect': 'false' },
        }),
        ingress('forced', [rule('plain.test', path('/', 'Prefix', 'web'))], {
          annotations: { 'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true' },
        }),
        ingress('plain', [
          rule('plain.test', path('/p', 'Prefix', 'web')),
          rule('other.test', path('/', 'Prefix', 'web')),
        ]),
      ],
      [tlsSecret('shop-tls', shop.crt, shop.key)],
    );
    deepStrictEqual(m.rejections, []);
    const redirects = (host: string) =>
      server(m, host).locations.map((l) => `${l.match === 'exact' ? '= ' : ''}${l.path} ${l.sslRedirect}`);
    deepStrictEqual(redirects('shop.test'), [
      '= /.well-known/acme-challenge/tok false',
      '/open/ false',
      '= /open false',
      '/ true',
    ]);
    deepStrictEqual(redirects('plain.test'), ['/p/ false', '= /p false', '/ true']);
    deepStrictEqual(redirects('other.test'), ['/ false']);
    ok(server(m, null).locations.every((l) => !l.sslRedirect));
    const conf = renderModel(m).get(server(m, 'shop.test').file)!;
    match(
      conf,
      /location \/ \{\n(?:.*\n){3}        if \(\$scheme = http\) \{\n            return 308 "https:\/\/\$host\$ingress_sidecar_redirect_uri";\n        \}\n        proxy_pass/,
    );
  });

  it('puts the client-facing HTTPS port into redirects and X-Forwarded-Port', () => {
    const m = run([shopIngress()], [tlsSecret('shop-tls', shop.crt, shop.key)], {
      tls: { ...opts.tls!, httpsPort: 8443, httpsRedirectPort: 4443 },
    });
    const files = renderModel(m);
    match(files.get(server(m, 'shop.test').file)!, /listen 8443 ssl http2;/);
    match(files.get(server(m, 'shop.test').file)!, /return 308 "https:\/\/\$host:4443\$ingress_sidecar_redirect_uri";/);
    match(files.get('ingress-sidecar-00-main.conf')!, /https   4443;/);
  });

  it('rejects an Ingress whose redirect annotations are not booleans; accepts what ingress-nginx accepts', () => {
    const m = run(
      [
        shopIngress({ annotations: { 'nginx.ingress.kubernetes.io/ssl-redirect': 'yes; return 200' } }, 'a'),
        ingress('b', [rule('b.test', path('/', 'Prefix', 'web'))], {
          annotations: { 'nginx.ingress.kubernetes.io/force-ssl-redirect': 'True' },
        }),
      ],
      [tlsSecret('shop-tls', shop.crt, shop.key)],
    );
    deepStrictEqual(reasons(m), [
      'default/a rejected: not served: annotation nginx.ingress.kubernetes.io/ssl-redirect must be "true" or "false", not "yes; return 200"; its paths answer 503 until this is fixed',
    ]);
    // Fails closed: 503, not a plain-HTTP answer that skipped the redirect it asked about.
    for (const l of server(m, 'shop.test').locations)
      deepStrictEqual([l.action.kind, l.sslRedirect], ['unavailable', false]);
    equal(server(m, 'b.test').locations[0]?.sslRedirect, true);
  });

  const fallbacks: Array<[string, () => V1Secret[], Partial<TranslateOptions>, RegExp]> = [
    [
      'missing',
      () => [],
      {},
      /^TLS for shop.test: Secret default\/shop-tls not found \(only Secrets of type kubernetes.io\/tls are read\); shop.test is served over HTTPS with the default certificate$/,
    ],
    [
      'not a TLS Secret',
      () => [tlsSecret('shop-tls', shop.crt, shop.key, { type: 'Opaque' })],
      {},
      /Secret default\/shop-tls: its type is "Opaque", not kubernetes.io\/tls/,
    ],
    [
      'malformed',
      () => [tlsSecret('shop-tls', 'junk', shop.key)],
      {},
      /Secret default\/shop-tls: tls.crt holds no PEM block/,
    ],
    [
      'expired',
      () => [tlsSecret('shop-tls', shop.crt, shop.key)],
      { now: new Date(Date.now() + 45 * DAY) },
      /Secret default\/shop-tls: the certificate expired at/,
    ],
    [
      'not yet valid',
      () => [tlsSecret('shop-tls', shop.crt, shop.key)],
      { now: new Date(Date.now() - 2 * DAY) },
      /Secret default\/shop-tls: the certificate is not valid before/,
    ],
    [
      'for other hosts',
      () => [tlsSecret('shop-tls', wild.crt, wild.key)],
      {},
      /Secret default\/shop-tls: the certificate is not valid for shop.test \(its DNS names: \*\.apps\.test\)/,
    ],
  ];
  for (const [what, secrets, o, reason] of fallbacks) {
    it(`serves a TLS host whose Secret is ${what} with the default certificate, and says why`, () => {
      const m = run([shopIngress()], secrets(), o);
      equal(m.rejections.length, 1);
      equal(m.rejections[0]?.severity, 'partial');
      match(m.rejections[0]?.reason ?? '', reason);
      deepStrictEqual(server(m, 'shop.test').tls, {
        certPath: pathOf(generated),
        secret: null,
        ingress: 'default/shop',
      });
      equal(server(m, 'shop.test').locations.find((l) => l.path === '/')?.sslRedirect, true);
      deepStrictEqual(m.served, ['default/shop']);
    });
  }

  it('translates again when a refused certificate becomes valid, and when one in use expires', () => {
    const early = new Date(Date.now() - 2 * DAY);
    const m = run([shopIngress()], [tlsSecret('shop-tls', shop.crt, shop.key)], { now: early });
    const notBefore = certificateFromPem(shop.crt, shop.key);
    equal(m.tlsRecheckAt, notBefore.notBefore.toISOString());
    const live = run([shopIngress()], [tlsSecret('shop-tls', shop.crt, shop.key)]);
    equal(live.tlsRecheckAt, new Date(notBefore.notAfter.getTime() + 1000).toISOString());
  });

  it('ignores spec.tls hosts that no rule of the Ingress serves, quietly', () => {
    const ing = ingress('shop', [rule('shop.test', path('/', 'Prefix', 'web'))], {
      tls: [{ hosts: ['shop.test', 'elsewhere.test'], secretName: 'shop-tls' }],
    });
    const m = run(
      [ing, ingress('else', [rule('elsewhere.test', path('/', 'Prefix', 'web'))])],
      [tlsSecret('shop-tls', shop.crt, shop.key)],
    );
    deepStrictEqual(m.rejections, []);
    deepStrictEqual(server(m, 'elsewhere.test').tls, noTls());
  });

  it('applies a spec.tls entry without hosts to every host of the Ingress its certificate covers', () => {
    const ing = ingress(
      'multi',
      [
        rule('shop.test', path('/', 'Prefix', 'web')),
        rule('api.shop.test', path('/', 'Prefix', 'web')),
        rule('plain.test', path('/', 'Prefix', 'web')),
      ],
      {
        tls: [{ secretName: 'shop-tls' }],
      },
    );
    const m = run([ing], [tlsSecret('shop-tls', shop.crt, shop.key)]);
    deepStrictEqual(m.rejections, []);
    equal(server(m, 'shop.test').tls?.certPath, pathOf(shop));
    equal(server(m, 'api.shop.test').tls?.certPath, pathOf(shop));
    deepStrictEqual(server(m, 'plain.test').tls, noTls());
    const none = run([ingress('n', [rule('plain.test', path('/', 'Prefix', 'web'))], { tls: [{}] })], []);
    deepStrictEqual(reasons(none), [
      'default/n partial: spec.tls[0] names no hosts and no secretName: it has no effect',
    ]);
    const missing = run(
      [ingress('n', [rule('plain.test', path('/', 'Prefix', 'web'))], { tls: [{ secretName: 'gone' }] })],
      [],
    );
    match(
      reasons(missing)[0] ?? '',
      /spec.tls\[0\] names no hosts, and Secret default\/gone not found .*: no host gets TLS from it/,
    );
  });

  it('uses the default certificate, quietly, for hosts listed without a secretName', () => {
    const m = run(
      [ingress('d', [rule('shop.test', path('/', 'Prefix', 'web'))], { tls: [{ hosts: ['shop.test'] }] })],
      [],
    );
    deepStrictEqual(m.rejections, []);
    deepStrictEqual(server(m, 'shop.test').tls, { certPath: pathOf(generated), secret: null, ingress: 'default/d' });
  });

  it('matches a wildcard Ingress host with a wildcard certificate', () => {
    const m = run(
      [
        ingress('w', [rule('*.apps.test', path('/', 'Prefix', 'web'))], {
          tls: [{ hosts: ['*.apps.test'], secretName: 'wild' }],
        }),
      ],
      [tlsSecret('wild', wild.crt, wild.key)],
    );
    deepStrictEqual(m.rejections, []);
    equal(server(m, '*.apps.test').tls?.certPath, pathOf(wild));
  });

  it("lets an exact host under a TLS wildcard answer HTTPS itself (an exact host wins), with the wildcard's certificate and its redirect", () => {
    const m = run(
      [
        ingress('w', [rule('*.apps.test', path('/', 'Prefix', 'web'))], {
          tls: [{ hosts: ['*.apps.test'], secretName: 'wild' }],
        }),
        ingress('x', [
          rule('x.apps.test', path('/', 'Prefix', 'web')),
          rule('x.other.test', path('/', 'Prefix', 'web')),
        ]),
      ],
      [tlsSecret('wild', wild.crt, wild.key)],
    );
    deepStrictEqual(m.rejections, []);
    deepStrictEqual(server(m, 'x.apps.test').tls, { certPath: pathOf(wild), secret: 'default/wild', ingress: null });
    // ingress-nginx finds the wildcard's certificate for x.apps.test, so ssl-redirect applies.
    equal(server(m, 'x.apps.test').locations[0]?.sslRedirect, true);
    deepStrictEqual(server(m, 'x.other.test').tls, noTls());
    equal(server(m, 'x.other.test').locations[0]?.sslRedirect, false);
  });

  it('lets the oldest Ingress with a usable certificate decide a shared host, and reports the others', () => {
    const older = shopIngress({ age: 1 }, 'older');
    const newer = shopIngress({ age: 2, tls: [{ hosts: ['shop.test'], secretName: 'shop2' }] }, 'newer');
    const m = run(
      [newer, older],
      [tlsSecret('shop-tls', shop.crt, shop.key), tlsSecret('shop2', shop2.crt, shop2.key)],
    );
    equal(server(m, 'shop.test').tls?.certPath, pathOf(shop));
    deepStrictEqual(
      reasons(m).filter((r) => r.includes('TLS')),
      [
        'default/newer partial: TLS for shop.test: Secret default/shop2 is not used; shop.test is served with Secret default/shop-tls from the older Ingress default/older',
      ],
    );
    const broken = run([newer, older], [tlsSecret('shop2', shop2.crt, shop2.key)]);
    equal(server(broken, 'shop.test').tls?.certPath, pathOf(shop2));
    deepStrictEqual(
      reasons(broken).filter((r) => r.includes('TLS')),
      [
        'default/older partial: TLS for shop.test: Secret default/shop-tls not found (only Secrets of type kubernetes.io/tls are read); shop.test is served over HTTPS with Secret default/shop2',
      ],
    );
  });

  it('reports invalid spec.tls hosts and secretNames without rejecting the Ingress', () => {
    const ing = ingress('bad', [rule('shop.test', path('/', 'Prefix', 'web'))], {
      tls: [{ hosts: ['shop.test', 'x;}'], secretName: '../etc;' }],
    });
    const m = run([ing], []);
    deepStrictEqual(m.served, ['default/bad']);
    deepStrictEqual(reasons(m), [
      'default/bad partial: spec.tls[0].hosts[1] is ignored: host "x;}": must be a lowercase RFC 1123 DNS name (a-z, 0-9, "-", ".")',
      'default/bad partial: TLS for shop.test: spec.tls[0].secretName: Secret name "../etc;" is not a valid Kubernetes name; shop.test is served over HTTPS with the default certificate',
    ]);
    equal(server(m, 'shop.test').tls?.certPath, pathOf(generated));
  });

  it('names a new file when the Secret changes (rotation), and lists each file once', () => {
    const two = ingress('two', [rule('api.shop.test', path('/', 'Prefix', 'web'))], {
      tls: [{ hosts: ['api.shop.test'], secretName: 'shop-tls' }],
    });
    const before = run([shopIngress(), two], [tlsSecret('shop-tls', shop.crt, shop.key)]);
    equal(before.certificates.length, 2);
    const after = run([shopIngress()], [tlsSecret('shop-tls', shop2.crt, shop2.key)]);
    equal(server(after, 'shop.test').tls?.certPath, pathOf(shop2));
    ok(pathOf(shop2) !== pathOf(shop));
  });

  it('uses --default-ssl-certificate when its Secret is usable, else the generated one with a warning', () => {
    const secrets = [tlsSecret('fallback', fallback.crt, fallback.key, { namespace: 'ingress' })];
    const m = run([shopIngress()], secrets, { tls: { ...opts.tls!, defaultSslCertificate: 'ingress/fallback' } });
    deepStrictEqual(server(m, null).tls, { certPath: pathOf(fallback), secret: 'ingress/fallback', ingress: null });
    // A host whose Secret is missing gets it too.
    deepStrictEqual(server(m, 'shop.test').tls, {
      certPath: pathOf(fallback),
      secret: 'ingress/fallback',
      ingress: 'default/shop',
    });
    deepStrictEqual(m.warnings, []);
    const missing = run([], [], { tls: { ...opts.tls!, defaultSslCertificate: 'ingress/nope' } });
    deepStrictEqual(missing.warnings, [
      '--default-ssl-certificate: Secret ingress/nope not found (only Secrets of type kubernetes.io/tls are read); the generated self-signed certificate is used instead',
    ]);
    equal(server(missing, null).tls?.certPath, pathOf(generated));
    const expired = run([], secrets, {
      now: new Date(Date.now() + 60 * DAY),
      tls: { ...opts.tls!, defaultSslCertificate: 'ingress/fallback' },
    });
    match(
      expired.warnings[0] ?? '',
      /^--default-ssl-certificate: Secret ingress\/fallback: the certificate expired at .*; the generated self-signed certificate is used instead$/,
    );
    const malformed = run([], [], { tls: { ...opts.tls!, defaultSslCertificate: 'no-slash' } });
    deepStrictEqual(malformed.warnings, [
      '--default-ssl-certificate "no-slash" is not NAMESPACE/NAME of a Secret; the generated self-signed certificate is used instead',
    ]);
  });

  it('counts a certificate nginx refused as unusable: its hosts get the default certificate', () => {
    const refused = new Map([[fileOf(shop), 'SSL_CTX_set0_chain() failed (ca md too weak)']]);
    const m = run([shopIngress()], [tlsSecret('shop-tls', shop.crt, shop.key)], {
      tls: { ...opts.tls!, refusedCertificates: refused },
    });
    equal(server(m, 'shop.test').tls?.certPath, pathOf(generated));
    deepStrictEqual(reasons(m), [
      'default/shop partial: TLS for shop.test: Secret default/shop-tls: nginx refused its certificate: SSL_CTX_set0_chain() failed (ca md too weak); shop.test is served over HTTPS with the default certificate',
    ]);
    ok(!m.certificates.some((c) => c.file === fileOf(shop)));
  });

  it('writes HTTP/2 as nginx of the given version wants it', () => {
    const conf = (v?: string) => {
      const m = run(
        [shopIngress()],
        [tlsSecret('shop-tls', shop.crt, shop.key)],
        v === undefined ? {} : { nginxVersion: v },
      );
      return { m, text: renderModel(m).get(server(m, 'shop.test').file)! };
    };
    match(conf().text, /listen 443 ssl http2;/);
    match(conf('1.25.0').text, /listen 443 ssl http2;/);
    const modern = conf('1.25.1').text;
    match(modern, /listen 443 ssl;\n/);
    match(modern, /\n    http2 on;\n/);
    match(conf('nginx/1.27.4').text, /http2 on;/);
    deepStrictEqual(conf('banana').m.warnings, [
      'nginx version "banana" is not understood; HTTP/2 uses the "listen ... http2" syntax of nginx before 1.25.1',
    ]);
  });

  it('needs the time when TLS is on, and an unusable generated certificate is a programming error', () => {
    throws(() => translate(snapshot({}), { ...opts, now: undefined }), /options.now/);
    throws(
      () => translate(snapshot({}), { ...opts, tls: { ...opts.tls!, defaultCertificate: { pem: 'nope' } } }),
      /defaultCertificate is unusable/,
    );
  });
});
