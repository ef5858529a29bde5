// TLS through a real nginx: what an HTTPS client sees (certificate by SNI, HTTP/2, the backend),
// what a plain-HTTP client sees (308 to HTTPS), and what lands on disk (0600 files, removed
// when unused), driven by Secrets and Ingresses written to the watched directory.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import type { EchoReply } from '../../src/dev/echo.ts';
import { makeCert, tlsSecretYaml, type TestCert } from '../helpers/certs.ts';
import { ingressYaml, startStack, type Stack, type StackTls } from '../helpers/sidecar.ts';

interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** SHA-256 fingerprint of the certificate nginx presented. */
  cert: string;
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

/** GET over HTTPS (HTTP/1.1) to 127.0.0.1 with the given SNI name; the certificate is not verified here but returned. */
function httpsGet(port: number, servername: string, urlPath = '/', host = servername): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername,
        path: urlPath,
        headers: { Host: host },
        rejectUnauthorized: false,
        agent: false,
        timeout: 3000,
      },
      (res) => {
        const cert = (res.socket as tls.TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            cert,
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET https://${servername}:${port}${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Polls (bounded) until `check` passes on an HTTPS answer; returns the last answer. */
async function eventuallyHttps(
  stack: Stack,
  servername: string,
  check: (a: HttpsAnswer) => boolean,
  urlPath = '/',
): Promise<HttpsAnswer> {
  const deadline = Date.now() + 8000;
  let last: HttpsAnswer | null = null;
  for (let settled = false; ;) {
    while (Date.now() < deadline) {
      last = await httpsGet(stack.https!.port, servername, urlPath).catch((err: Error) => ({
        status: 0,
        headers: {},
        body: err.message,
        cert: '',
      }));
      if (check(last)) break;
      await sleep(25);
    }
    // Old workers may still answer for ~100 ms after a reload: ask again once the sidecar is idle.
    if (!last || !check(last) || settled) return last!;
    await stack.sidecar.idle();
    settled = true;
  }
}

const service = (a: { status: number; body: string }) =>
  a.status === 200 ? (JSON.parse(a.body) as EchoReply).service : String(a.status);

describe('TLS through a real nginx', function () {
  this.timeout(90_000);
  let shop: TestCert;
  let shopRotated: TestCert;
  let api: TestCert;
  let fallback: TestCert;
  let stack: Stack | undefined;

  before(() => {
    shop = makeCert({ dns: ['shop.test'] });
    shopRotated = makeCert({ dns: ['shop.test'], days: 90 });
    api = makeCert({ dns: ['api.test'] });
    fallback = makeCert({ dns: ['*.fallback.test'] });
  });
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  const start = async (files: Record<string, string>, tlsOpts: StackTls = {}) => {
    stack = await startStack({ backends: ['alpha', 'beta'], files, tls: tlsOpts });
    return stack;
  };
  const shopFiles = () => ({
    'shop-secret.yaml': tlsSecretYaml('shop-tls', shop),
    'api-secret.yaml': tlsSecretYaml('api-tls', api),
    'shop.yaml': ingressYaml('shop', [{ host: 'shop.test', paths: [['/', 'Prefix', 'alpha']] }], {
      tls: [{ hosts: ['shop.test'], secretName: 'shop-tls' }],
    }),
    'api.yaml': ingressYaml('api', [{ host: 'api.test', paths: [['/', 'Prefix', 'beta']] }], {
      tls: [{ hosts: ['api.test'], secretName: 'api-tls' }],
    }),
  });

  it('serves each SNI name its own certificate, the backend over HTTP/2, and unknown names the default certificate and a 404', async () => {
    const s = await start(shopFiles());
    const port = s.https!.port;

    const viaShop = await httpsGet(port, 'shop.test');
    assert.equal(service(viaShop), 'alpha');
    assert.equal(viaShop.cert, fingerprint(shop.crt));
    const echo = JSON.parse(viaShop.body) as EchoReply;
    assert.equal(echo.headers['x-forwarded-proto'], 'https');
    assert.equal(echo.headers['x-forwarded-port'], String(port));

    const viaApi = await httpsGet(port, 'api.test');
    assert.equal(service(viaApi), 'beta');
    assert.equal(viaApi.cert, fingerprint(api.crt));

    const unknown = await httpsGet(port, 'nobody.test');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.cert, fingerprint(s.https!.defaultPem));

    // ALPN offers h2, and the certificate verifies against the Secret's certificate for its name.
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'shop.test',
      ALPNProtocols: ['h2', 'http/1.1'],
      ca: shop.crt,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      assert.equal(socket.alpnProtocol, 'h2');
      assert.equal(socket.authorized, true, String(socket.authorizationError));
    } finally {
      socket.destroy();
    }
    const client = http2.connect(`https://127.0.0.1:${port}`, { servername: 'shop.test', ca: shop.crt });
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = client.request({ ':path': '/h2', ':authority': 'shop.test' });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      assert.equal(service(answer), 'alpha');
      assert.equal((JSON.parse(answer.body) as EchoReply).url, '/h2');
    } finally {
      client.close();
    }
  });

  it('redirects plain HTTP with 308 to HTTPS, unless ssl-redirect is "false"; force-ssl-redirect redirects a host without TLS', async () => {
    const s = await start({
      ...shopFiles(),
      'open.yaml': ingressYaml('open', [{ host: 'shop.test', paths: [['/open', 'Prefix', 'beta']] }], {
        annotations: { 'nginx.ingress.kubernetes.io/ssl-redirect': 'false' },
      }),
      'forced.yaml': ingressYaml('forced', [{ host: 'forced.test', paths: [['/', 'Prefix', 'beta']] }], {
        annotations: { 'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true' },
      }),
      'plain.yaml': ingressYaml('plain', [{ host: 'plain.test', paths: [['/', 'Prefix', 'beta']] }]),
    });
    const port = s.https!.port;
    const redirect = await s.get('shop.test', '/cart?item=1');
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, `https://shop.test:${port}/cart?item=1`);
    assert.equal(await s.who('shop.test', '/open/x'), 'beta');
    const forced = await s.get('forced.test', '/x');
    assert.equal(forced.status, 308);
    assert.equal(forced.headers.location, `https://forced.test:${port}/x`);
    assert.equal(await s.who('plain.test', '/'), 'beta');
    // The redirect target answers: forced.test has no certificate of its own, so the default one.
    const followed = await httpsGet(port, 'forced.test', '/x');
    assert.equal(service(followed), 'beta', 'forced.test answers HTTPS itself, as in ingress-nginx');
    assert.equal(followed.cert, fingerprint(s.https!.defaultPem));
  });

  it('answers HTTPS for a host without spec.tls with its own backend and the default certificate, as ingress-nginx does', async () => {
    const apps = makeCert({ dns: ['*.apps.test'] });
    const s = await start(
      {
        ...shopFiles(),
        'plain.yaml': ingressYaml('plain', [{ host: 'plain.test', paths: [['/', 'Prefix', 'beta']] }]),
        'apps-secret.yaml': tlsSecretYaml('apps-tls', apps),
        'apps.yaml': ingressYaml('apps', [{ host: '*.apps.test', paths: [['/', 'Prefix', 'alpha']] }], {
          tls: [{ hosts: ['*.apps.test'], secretName: 'apps-tls' }],
        }),
        'exact.yaml': ingressYaml('exact', [{ host: 'x.apps.test', paths: [['/', 'Prefix', 'beta']] }]),
      },
      { defaultSslCertificate: 'ingress/fallback' },
    );
    const port = s.https!.port;
    // As `curl -k --resolve plain.test:PORT:127.0.0.1 https://plain.test:PORT/a` asks it.
    const viaHttps = await httpsGet(port, 'plain.test', '/a?q=1');
    assert.equal(service(viaHttps), 'beta', "plain.test's own route answers over HTTPS");
    assert.equal(viaHttps.cert, fingerprint(s.https!.defaultPem), 'with the generated default certificate');
    const echo = JSON.parse(viaHttps.body) as EchoReply;
    assert.equal(echo.url, '/a?q=1');
    assert.equal(echo.headers['x-forwarded-proto'], 'https');
    assert.equal(await httpsGet(port, 'plain.test', '/a', 'PLAIN.test').then(service), 'beta');
    // Plain HTTP on it is not redirected: ingress-nginx's ssl-redirect needs a certificate for the host.
    const viaHttp = await s.get('plain.test', '/a');
    assert.equal(viaHttp.status, 200);
    assert.equal(viaHttp.headers.location, undefined);
    // Unknown names still reach the default server (a 404, the default certificate).
    const unknown = await httpsGet(port, 'nobody.test');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.cert, fingerprint(s.https!.defaultPem));
    // An exact host under a TLS wildcard: its own route, the wildcard's certificate, and (as in
    // ingress-nginx, whose certificate lookup finds the wildcard's for it) HTTP is redirected.
    const exact = await httpsGet(port, 'x.apps.test');
    assert.equal(service(exact), 'beta');
    assert.equal(exact.cert, fingerprint(apps.crt));
    const exactHttp = await s.get('x.apps.test', '/y/');
    assert.equal(exactHttp.status, 308);
    assert.equal(exactHttp.headers.location, `https://x.apps.test:${port}/y`);
    assert.equal((await httpsGet(port, 'y.apps.test')).cert, fingerprint(apps.crt));

    // With --default-ssl-certificate, that certificate is what a host without TLS gets.
    await s.write('fallback.yaml', tlsSecretYaml('fallback', fallback, 'ingress'));
    const custom = await eventuallyHttps(s, 'plain.test', (a) => a.cert === fingerprint(fallback.crt));
    assert.equal(custom.cert, fingerprint(fallback.crt));
    assert.equal(service(custom), 'beta');
    assert.equal((await httpsGet(port, 'shop.test')).cert, fingerprint(shop.crt), 'TLS hosts keep their own');
  });

  it('writes the redirect with the port clients use, leaving out 443', async () => {
    const s = await start(shopFiles(), { httpsRedirectPort: 443 });
    const redirect = await s.get('shop.test', '/a');
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.location, 'https://shop.test/a');
    const echo = JSON.parse((await httpsGet(s.https!.port, 'shop.test')).body) as EchoReply;
    assert.equal(echo.headers['x-forwarded-port'], '443');
  });

  it('serves a host whose Secret is missing with the default certificate and logs why, then its own once the Secret appears', async () => {
    const files = shopFiles();
    delete (files as Partial<typeof files>)['shop-secret.yaml'];
    const s = await start(files);
    const answer = await httpsGet(s.https!.port, 'shop.test');
    assert.equal(service(answer), 'alpha');
    assert.equal(answer.cert, fingerprint(s.https!.defaultPem));
    const warn = s.logs.find((l) => l.message === 'Ingress partly rejected' && l.ingress === 'default/shop');
    assert.ok(warn, 'the missing Secret is logged');
    assert.match(
      String(warn.reason),
      /TLS for shop.test: Secret default\/shop-tls not found .*served over HTTPS with the default certificate/,
    );
    assert.equal(warn.level, 'warn');

    await s.write('shop-secret.yaml', tlsSecretYaml('shop-tls', shop));
    assert.equal(
      (await eventuallyHttps(s, 'shop.test', (a) => a.cert === fingerprint(shop.crt))).cert,
      fingerprint(shop.crt),
    );
    assert.ok(s.logs.some((l) => l.message === 'Ingress problem resolved' && l.ingress === 'default/shop'));
  });

  it('serves the rotated certificate when the Secret changes, keeps files 0600 in a 0710 directory, and removes unused ones', async () => {
    const s = await start(shopFiles());
    const certDir = s.https!.certDir;
    const pemFiles = async () => (await readdir(certDir)).filter((f) => /^[0-9a-f]{32}\.pem$/.test(f)).sort();
    assert.equal((await stat(certDir)).mode & 0o777, 0o710);
    const before = await pemFiles();
    assert.equal(before.length, 3, `default, shop and api certificates: ${before.join(', ')}`);
    for (const f of before) assert.equal((await stat(path.join(certDir, f))).mode & 0o777, 0o600, f);

    await s.write('shop-secret.yaml', tlsSecretYaml('shop-tls', shopRotated));
    assert.equal(
      (await eventuallyHttps(s, 'shop.test', (a) => a.cert === fingerprint(shopRotated.crt))).cert,
      fingerprint(shopRotated.crt),
    );
    await s.sidecar.idle();
    const after = await pemFiles();
    assert.equal(after.length, 3);
    assert.equal(after.filter((f) => !before.includes(f)).length, 1, 'one new file for the rotated certificate');
    assert.equal(before.filter((f) => !after.includes(f)).length, 1, 'the old certificate file is gone');
    const reload = s.logs.find(
      (l) =>
        l.message === 'nginx reloaded' &&
        (l.tlsChanged as string[] | undefined)?.some((t) => t.startsWith('shop.test: Secret default/shop-tls')),
    );
    assert.ok(reload, 'the reload line says the certificate of shop.test changed');

    // No Ingress names api-tls any more: its file goes; the default certificate's stays.
    await s.remove('api.yaml');
    assert.equal(await s.eventually('api.test', '/', '404'), '404');
    await s.sidecar.idle();
    assert.equal((await pemFiles()).length, 2);

    // Key material never reaches the log.
    const logged = JSON.stringify(s.logs);
    for (const c of [shop, shopRotated, api]) {
      const keyLine = c.key.split('\n')[1]!;
      assert.ok(!logged.includes(keyLine) && !logged.includes(Buffer.from(c.key).toString('base64').slice(0, 40)));
    }
  });

  it('uses --default-ssl-certificate for unknown names, and for hosts whose Secret is unusable', async () => {
    const s = await start(
      {
        'fallback.yaml': tlsSecretYaml('fallback', fallback, 'ingress'),
        'shop.yaml': ingressYaml('shop', [{ host: 'shop.test', paths: [['/', 'Prefix', 'alpha']] }], {
          tls: [{ hosts: ['shop.test'], secretName: 'nope' }],
        }),
      },
      { defaultSslCertificate: 'ingress/fallback' },
    );
    assert.equal((await httpsGet(s.https!.port, 'x.fallback.test')).cert, fingerprint(fallback.crt));
    assert.equal((await httpsGet(s.https!.port, 'shop.test')).cert, fingerprint(fallback.crt));
    await s.remove('fallback.yaml');
    const generated = await eventuallyHttps(s, 'x.fallback.test', (a) => a.cert === fingerprint(s.https!.defaultPem));
    assert.equal(generated.cert, fingerprint(s.https!.defaultPem));
    assert.ok(
      s.logs.some(
        (l) =>
          l.message === 'configuration problem' &&
          /--default-ssl-certificate: Secret ingress\/fallback not found/.test(String(l.reason)),
      ),
    );
  });

  it("gives a host the default certificate when nginx refuses its Secret's chain, and keeps serving the others", async () => {
    // Parses fine here; OpenSSL's security level refuses the SHA-1 signature in the chain.
    const root = makeCert({ cn: 'Root', isCa: true, key: 'rsa' });
    const weakCa = makeCert({ cn: 'Weak intermediate', isCa: true, key: 'rsa', ca: root, sha1: true });
    const weak = makeCert({ dns: ['weak.test'], ca: weakCa });
    const s = await start({
      ...shopFiles(),
      'weak.yaml':
        tlsSecretYaml('weak-tls', weak) +
        '---\n' +
        ingressYaml('weak', [{ host: 'weak.test', paths: [['/', 'Prefix', 'beta']] }], {
          tls: [{ hosts: ['weak.test'], secretName: 'weak-tls' }],
        }),
    });
    const answer = await httpsGet(s.https!.port, 'weak.test');
    assert.equal(service(answer), 'beta');
    assert.equal(answer.cert, fingerprint(s.https!.defaultPem));
    assert.equal((await httpsGet(s.https!.port, 'shop.test')).cert, fingerprint(shop.crt));
    assert.ok(
      s.logs.some(
        (l) =>
          l.message === 'nginx refused a certificate; the hosts that use it get the default certificate' &&
          /ca md too weak/.test(String(l.nginx)),
      ),
    );
    const warn = s.logs.find((l) => l.message === 'Ingress partly rejected' && l.ingress === 'default/weak');
    assert.match(
      String(warn?.reason),
      /^TLS for weak.test: Secret default\/weak-tls: nginx refused its certificate: .*ca md too weak.*; weak.test is served over HTTPS with the default certificate$/,
    );
  });

  it('falls back to the default certificate on its own when the certificate in use expires', async () => {
    // The sidecar's clock is set 3 s before the certificate's end: the recheck timer must fire.
    const notAfter = new X509Certificate(shop.crt).validToDate.getTime();
    const s = await start(shopFiles(), { clockOffsetMs: notAfter - Date.now() - 3000 });
    assert.equal((await httpsGet(s.https!.port, 'shop.test')).cert, fingerprint(shop.crt));
    const expired = await eventuallyHttps(s, 'shop.test', (a) => a.cert === fingerprint(s.https!.defaultPem));
    assert.equal(expired.cert, fingerprint(s.https!.defaultPem));
    assert.ok(
      s.logs.some(
        (l) => l.message === 'Ingress partly rejected' && /the certificate expired at/.test(String(l.reason)),
      ),
    );
  });
});
