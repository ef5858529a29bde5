// nginx.ingress.kubernetes.io annotations through a real nginx: what a client sees. One stack
// (nginx, echo backends, a "special" backend that is slow, streams, or sends a large header), one
// Ingress per test on its own host, each written to the watched directory and waited for.
import assert from 'node:assert/strict';
import { chmod, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { execaSync } from 'execa';
import type { EchoReply } from '../../src/dev/echo.ts';
import { makeCert, tlsSecretYaml, type TestCert } from '../helpers/certs.ts';
import { backendYaml, ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request to nginx on 127.0.0.1, from `from` (a 127.x address) when given. */
function request(
  port: number,
  host: string,
  urlPath: string,
  opts: {
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    from?: string;
    timeoutMs?: number;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: opts.method ?? 'GET',
        headers: { ...opts.headers, Host: host },
        agent: false,
        timeout: opts.timeoutMs ?? 5000,
        ...(opts.from ? { localAddress: opts.from } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} ${host}${urlPath} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

const echo = (a: Answer) => JSON.parse(a.body) as EchoReply;

function deepEqualPick(actual: object, expected: Record<string, unknown>): void {
  assert.deepEqual(
    Object.fromEntries(Object.keys(expected).map((k) => [k, (actual as Record<string, unknown>)[k]])),
    expected,
  );
}

/** A backend that is slow, streams, or sends a large header, depending on the path. */
async function startSpecial(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    const url = req.url ?? '';
    if (url.startsWith('/slow')) {
      setTimeout(() => res.end('slow\n'), 1800).unref();
    } else if (url.startsWith('/stream')) {
      // With a Content-Length (not chunked), a buffering nginx holds the response until it is whole.
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '13' });
      res.write('first\n');
      setTimeout(() => res.end('second\n'), 1000).unref();
    } else if (url.startsWith('/bigheader')) {
      res.writeHead(200, { 'x-big': 'x'.repeat(6000) });
      res.end('big\n');
    } else if (url.startsWith('/cors')) {
      // A backend with CORS headers of its own: the Ingress's replace them.
      res.writeHead(200, { 'access-control-allow-origin': 'https://backend.test', 'access-control-max-age': '1' });
      res.end('cors\n');
    } else {
      res.end('special\n');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** gRPC-style answers over HTTP/2: the request body echoed, who answered, and grpc-status trailers. */
function grpcHandler(name: string) {
  return (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond(
        {
          ':status': 200,
          'content-type': 'application/grpc',
          'x-backend': name,
          'x-path': String(headers[':path']),
          'x-authority': String(headers[':authority'] ?? headers.host ?? ''),
          'x-forwarded-proto': String(headers['x-forwarded-proto'] ?? ''),
        },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
      stream.end(Buffer.concat(chunks));
    });
  };
}

/** A gRPC-style call over HTTP/2 with TLS to nginx: status, headers, body, trailers. */
function grpcCall(port: number, servername: string, urlPath: string, message: Buffer) {
  return new Promise<{
    status: number;
    headers: http2.IncomingHttpHeaders;
    body: Buffer;
    trailers: http2.IncomingHttpHeaders;
  }>((resolve, reject) => {
    const client = http2.connect(`https://127.0.0.1:${port}`, { servername, rejectUnauthorized: false });
    client.on('error', reject);
    const req = client.request({
      ':method': 'POST',
      ':path': urlPath,
      ':authority': servername,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      client.close();
      resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks), trailers });
    });
    req.on('error', (err) => {
      client.close();
      reject(err);
    });
    req.setTimeout(5000, () => req.close(http2.constants.NGHTTP2_CANCEL));
    req.end(message);
  });
}

/** The time until the first body byte arrives. */
function firstByteMs(port: number, host: string, urlPath: string): Promise<{ ms: number; status: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, headers: { Host: host }, agent: false, timeout: 5000 },
      (res) => {
        res.once('data', () => {
          resolve({ ms: Date.now() - started, status: res.statusCode ?? 0 });
          res.destroy();
        });
        res.on('error', () => undefined);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe('annotations through a real nginx', function () {
  this.timeout(120_000);
  let stack: Stack;
  let special: { port: number; close(): Promise<void> };
  let n = 0;
  let backendCert: TestCert;
  let grpcHostCert: TestCert;
  const servers: Array<{ close(cb: () => void): void }> = [];
  const ports: Record<string, number> = {};

  before(async () => {
    special = await startSpecial();
    backendCert = makeCert({ dns: ['backend.internal'] });
    grpcHostCert = makeCert({ dns: ['grpc.test'] });
    // An HTTPS backend, a plain-text HTTP/2 (h2c) gRPC backend, and a gRPC backend over TLS.
    const listen = async (name: string, server: http.Server | http2.Http2Server | http2.Http2SecureServer) => {
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      ports[name] = (server.address() as AddressInfo).port;
    };
    await listen(
      'tls-web',
      https.createServer({ key: backendCert.key, cert: backendCert.crt }, (req, res) => {
        req.resume();
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ service: 'tls-web', url: req.url, tls: true, headers: req.headers }));
      }),
    );
    const h2c = http2.createServer();
    h2c.on('stream', grpcHandler('grpc'));
    await listen('grpc', h2c);
    const h2s = http2.createSecureServer({ key: backendCert.key, cert: backendCert.crt });
    h2s.on('stream', grpcHandler('grpcs'));
    await listen('grpcs', h2s);
    // TLS on: htpasswd files (auth-type basic) are written next to the certificates.
    stack = await startStack({
      backends: ['alpha', 'beta'],
      files: {
        'special.yaml': backendYaml('special', special.port),
        'protocols.yaml': ['tls-web', 'grpc', 'grpcs'].map((b) => backendYaml(b, ports[b]!)).join('---\n'),
        'grpc-secret.yaml': tlsSecretYaml('grpc-tls', grpcHostCert),
      },
      tls: {},
    });
  });
  after(async () => {
    await stack?.stop();
    await special?.close();
    for (const s of servers) {
      (s as { closeAllConnections?: () => void }).closeAllConnections?.();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  });

  const get = (host: string, urlPath: string, opts?: Parameters<typeof request>[3]) =>
    request(stack.port, host, urlPath, opts);

  /** Writes one Ingress (own file) and waits until `check` passes for a request (bounded). */
  async function apply(
    yaml: string,
    host: string,
    urlPath: string,
    check: (a: Answer) => boolean,
    opts?: Parameters<typeof request>[3],
  ): Promise<Answer> {
    await stack.write(`ing-${n++}.yaml`, yaml);
    const deadline = Date.now() + 8000;
    let last: Answer = { status: 0, headers: {}, body: '' };
    for (let settled = false; ;) {
      while (Date.now() < deadline) {
        last = await get(host, urlPath, opts).catch((err: Error) => ({ status: 0, headers: {}, body: err.message }));
        if (check(last)) break;
        await sleep(25);
      }
      // Old workers may answer for ~100 ms after a reload: ask again once the sidecar is idle.
      if (!check(last) || settled) break;
      await stack.sidecar.idle();
      settled = true;
    }
    assert.ok(check(last), `${host}${urlPath}: last answer ${last.status} ${last.body.slice(0, 200)}`);
    return last;
  }
  const ingress = (
    name: string,
    host: string,
    paths: Array<[string, string, string]>,
    annotations: Record<string, string>,
  ) =>
    ingressYaml(name, [{ host, paths }], {
      annotations: Object.fromEntries(Object.entries(annotations).map(([k, v]) => [`${P}${k}`, v])),
    });
  const served = (a: Answer) => a.status === 200;

  /**
   * Run as root, this suite's nginx has workers running as "nobody", and they cannot read the
   * sidecar's 0600 files in its 0700 directory (the master reads certificates; workers read
   * htpasswd files, per request). In a pod both run as one UID. Until the next sync rewrites them,
   * open the directory and the htpasswd files up so that this nginx can do its job here.
   */
  async function readableByWorkers(): Promise<void> {
    if (process.getuid?.() !== 0 || !stack.https) return;
    await stack.sidecar.idle();
    // The stack's temp directory (mkdtemp: 0700) and the certificate directory.
    await chmod(path.dirname(stack.confDir), 0o711);
    await chmod(stack.https.certDir, 0o711);
    for (const f of await readdir(stack.https.certDir)) {
      const file = path.join(stack.https.certDir, f);
      if (!(await readFile(file, 'utf8')).includes('-----BEGIN')) await chmod(file, 0o644);
    }
  }

  it('proxy-body-size: 413 over the limit, per Ingress; the default is 1m', async () => {
    await apply(
      ingress('body', 'body.test', [['/', 'Prefix', 'alpha']], { 'proxy-body-size': '1k' }),
      'body.test',
      '/',
      served,
    );
    await apply(
      ingress('body-default', 'body.test', [['/big', 'Prefix', 'beta']], {}),
      'body.test',
      '/big',
      (a) => served(a) && echo(a).service === 'beta',
    );
    const post = (urlPath: string, size: number) =>
      get('body.test', urlPath, {
        method: 'POST',
        body: Buffer.alloc(size, 'a'),
        headers: { 'content-type': 'text/plain' },
      });
    assert.equal((await post('/', 1000)).status, 200);
    assert.equal((await post('/', 2000)).status, 413);
    // The other Ingress on the host keeps the default, 1m. (Bodies over 8k would go to a temp
    // file, which nginx's workers cannot write here when the suite runs as root.)
    assert.equal((await post('/big', 6000)).status, 200);
    assert.equal((await post('/big', 1_100_000)).status, 413);
  });

  it('proxy-read-timeout: 504 when the backend is slower, for that Ingress only', async () => {
    await apply(
      ingress('slow', 'slow.test', [['/slow/short', 'Prefix', 'special']], {
        'proxy-read-timeout': '1',
        'proxy-connect-timeout': '2',
        'proxy-send-timeout': '2',
      }),
      'slow.test',
      '/slow/short',
      (a) => a.status === 504,
    );
    await apply(
      ingress('slow-default', 'slow.test', [['/slow/long', 'Prefix', 'special']], {}),
      'slow.test',
      '/slow/long',
      (a) => a.status === 200,
    );
    const started = Date.now();
    assert.equal((await get('slow.test', '/slow/short')).status, 504);
    const took = Date.now() - started;
    assert.ok(took >= 900 && took < 1700, `504 after ${took} ms, expected about 1 s`);
  });

  it('proxy-buffering: off by default (streams), on holds the response', async () => {
    await apply(
      ingress('stream', 'stream.test', [['/stream/on', 'Prefix', 'special']], { 'proxy-buffering': 'on' }),
      'stream.test',
      '/stream/on',
      served,
    );
    await apply(
      ingress('stream-default', 'stream.test', [['/stream/off', 'Prefix', 'special']], {}),
      'stream.test',
      '/stream/off',
      served,
    );
    const off = await firstByteMs(stack.port, 'stream.test', '/stream/off');
    const on = await firstByteMs(stack.port, 'stream.test', '/stream/on');
    assert.ok(off.ms < 500, `unbuffered first byte after ${off.ms} ms`);
    assert.ok(on.ms >= 800, `buffered first byte after ${on.ms} ms`);
  });

  it('proxy-buffer-size: a 6k response header fails with the 4k default (502) and passes with 16k', async () => {
    await apply(
      ingress('hdr', 'hdr.test', [['/bigheader/16k', 'Prefix', 'special']], { 'proxy-buffer-size': '16k' }),
      'hdr.test',
      '/bigheader/16k',
      served,
    );
    await apply(
      ingress('hdr-default', 'hdr.test', [['/bigheader/4k', 'Prefix', 'special']], {}),
      'hdr.test',
      '/bigheader/4k',
      (a) => a.status === 502,
    );
    const ok = await get('hdr.test', '/bigheader/16k');
    assert.equal(ok.headers['x-big'], 'x'.repeat(6000));
  });

  it('rewrite-target with use-regex capture groups, x-forwarded-prefix, and precedence against Prefix paths', async () => {
    await apply(
      ingress('rw', 'rw.test', [['/app(/|$)(.*)', 'ImplementationSpecific', 'alpha']], {
        'rewrite-target': '/$2',
        'x-forwarded-prefix': '/app',
      }),
      'rw.test',
      '/app/x',
      served,
    );
    // "/.*" has no second group for "/$2" (refused): its own Ingress rewrites everything to "/".
    await apply(
      ingress('rw-all', 'rw.test', [['/.*', 'ImplementationSpecific', 'alpha']], { 'rewrite-target': '/' }),
      'rw.test',
      '/other',
      served,
    );
    await apply(
      ingress(
        'rw-plain',
        'rw.test',
        [
          ['/app/very/special', 'Prefix', 'beta'],
          ['/api', 'Prefix', 'beta'],
        ],
        {},
      ),
      'rw.test',
      '/api',
      (a) => served(a) && echo(a).service === 'beta',
    );

    const viaRegex = echo(await get('rw.test', '/app/one/two?x=1'));
    assert.deepEqual(
      [viaRegex.service, viaRegex.url, viaRegex.headers['x-forwarded-prefix']],
      ['alpha', '/one/two?x=1', '/app'],
    );
    assert.equal(viaRegex.headers['x-forwarded-host'], 'rw.test', 'the other forwarded headers stay');
    // ~* as in ingress-nginx: case-insensitive.
    assert.equal(echo(await get('rw.test', '/APP/one')).url, '/one');
    assert.equal(echo(await get('rw.test', '/app')).url, '/');
    // A Prefix path of another Ingress longer than the regex ("/app/very/special", 17 characters,
    // against "/app(/|$)(.*)", 13) wins over it: longest path first, as ingress-nginx orders them ...
    const special = echo(await get('rw.test', '/app/very/special/x'));
    assert.deepEqual(
      [special.service, special.url, special.headers['x-forwarded-prefix']],
      ['beta', '/app/very/special/x', undefined],
    );
    // ... and keeps Prefix semantics: /app/very/specialx is not under /app/very/special.
    const notUnder = echo(await get('rw.test', '/app/very/specialx'));
    assert.deepEqual([notUnder.service, notUnder.url], ['alpha', '/very/specialx']);
    // A regex shorter than a Prefix path loses to it ("/.*" vs "/api"), and wins elsewhere.
    assert.equal(echo(await get('rw.test', '/api/v1')).service, 'beta');
    const other = echo(await get('rw.test', '/other'));
    assert.deepEqual([other.service, other.url], ['alpha', '/']);
  });

  it('app-root: / answers 302 to the application root; other paths are proxied', async () => {
    const a = await apply(
      ingress('root', 'root.test', [['/', 'Prefix', 'alpha']], { 'app-root': '/app1' }),
      'root.test',
      '/',
      (x) => x.status === 302,
    );
    assert.equal(a.headers.location, `http://root.test/app1`);
    const withPort = await get('root.test:8080', '/');
    assert.equal(withPort.headers.location, 'http://root.test:8080/app1');
    assert.equal(echo(await get('root.test', '/app1')).url, '/app1');
  });

  it('app-root with the variables ingress-nginx users put there: / answers 302, the query string kept', async () => {
    const a = await apply(
      ingress('root-args', 'root-args.test', [['/', 'Prefix', 'alpha']], { 'app-root': '/login$is_args$args' }),
      'root-args.test',
      '/?next=%2Fhome&x=1',
      (x) => x.status === 302,
    );
    // ingress-nginx: `return 302 $scheme://$http_host/login$is_args$args` for a request of "/".
    assert.equal(a.headers.location, 'http://root-args.test/login?next=%2Fhome&x=1');
    assert.equal((await get('root-args.test', '/')).headers.location, 'http://root-args.test/login');
    assert.equal(echo(await get('root-args.test', '/login?x=1')).url, '/login?x=1');
  });

  it('rewrite-target with an absolute URL: nginx answers 302 to it, with the captures and the query string', async () => {
    const a = await apply(
      ingress('rw-abs', 'rw-abs.test', [['/foo(/|$)(.*)', 'ImplementationSpecific', 'alpha']], {
        'rewrite-target': 'https://bar.example.org/$2',
      }),
      'rw-abs.test',
      '/foo/a/b?x=1',
      (x) => x.status === 302,
    );
    // As ingress-nginx's `rewrite "(?i)/foo(/|$)(.*)" https://bar.example.org/$2 break;`: nginx
    // redirects a replacement that starts with https://, and appends the request's arguments.
    assert.equal(a.headers.location, 'https://bar.example.org/a/b?x=1');
    assert.equal((await get('rw-abs.test', '/FOO/c')).headers.location, 'https://bar.example.org/c');
    assert.equal((await get('rw-abs.test', '/foo')).headers.location, 'https://bar.example.org/');
    // A CR/LF the client encodes into the captured path is escaped again, never a header of its own.
    const crlf = await get('rw-abs.test', '/foo/x%0d%0aSet-Cookie:%20a=b');
    assert.equal(crlf.status, 302);
    assert.equal(crlf.headers['set-cookie'], undefined);
    // (".*" stops at the LF, as in ingress-nginx, whose regex this is; the CR is escaped.)
    assert.equal(crlf.headers.location, 'https://bar.example.org/x%0D');

    // A Prefix path rewrites from its literal: the whole URI becomes the target, arguments appended.
    await apply(
      ingress('rw-abs-prefix', 'rw-abs-prefix.test', [['/old', 'Prefix', 'alpha']], {
        'rewrite-target': 'http://[2001:db8::1]:8080/new',
      }),
      'rw-abs-prefix.test',
      '/old/x?y=2',
      (x) => x.status === 302,
    );
    const p = await get('rw-abs-prefix.test', '/old/x?y=2');
    assert.equal(p.headers.location, 'http://[2001:db8::1]:8080/new?y=2');
    assert.equal((await get('rw-abs-prefix.test', '/other')).status, 404);

    // ingress-nginx redirects to HTTPS in Lua, after the location's rewrite: an http:// request
    // gets the target's 302, not a 308 to https://rw-abs-tls.test first.
    const tls = await apply(
      ingress('rw-abs-tls', 'rw-abs-tls.test', [['/foo(/|$)(.*)', 'ImplementationSpecific', 'alpha']], {
        'rewrite-target': 'https://bar.example.org/$2',
        'force-ssl-redirect': 'true',
      }),
      'rw-abs-tls.test',
      '/foo/a',
      (x) => x.status === 302,
    );
    assert.equal(tls.headers.location, 'https://bar.example.org/a');
  });

  it('permanent-redirect (and its code) and temporal-redirect answer with the status and Location', async () => {
    const p = await apply(
      ingress('moved', 'moved.test', [['/', 'Prefix', 'alpha']], {
        'permanent-redirect': 'https://new.test${request_uri}',
      }),
      'moved.test',
      '/a?b=1',
      (x) => x.status === 301,
    );
    assert.equal(p.headers.location, 'https://new.test/a?b=1');
    const c = await apply(
      ingress('moved308', 'moved308.test', [['/', 'Prefix', 'alpha']], {
        'permanent-redirect': 'https://new.test/',
        'permanent-redirect-code': '308',
      }),
      'moved308.test',
      '/x',
      (x) => x.status === 308,
    );
    assert.equal(c.headers.location, 'https://new.test/');
    const t = await apply(
      ingress('temp', 'temp.test', [['/', 'Prefix', 'alpha']], {
        'temporal-redirect': 'https://elsewhere.test/maintenance',
      }),
      'temp.test',
      '/x',
      (x) => x.status === 302,
    );
    assert.equal(t.headers.location, 'https://elsewhere.test/maintenance');
  });

  it('allowlist-source-range and denylist-source-range: 403 from a refused address', async () => {
    await apply(
      ingress('allow', 'allow.test', [['/', 'Prefix', 'alpha']], {
        'allowlist-source-range': '127.0.0.1/32, 10.0.0.0/8',
      }),
      'allow.test',
      '/',
      served,
    );
    assert.equal((await get('allow.test', '/', { from: '127.0.0.2' })).status, 403);
    assert.equal((await get('allow.test', '/', { from: '127.0.0.1' })).status, 200);
    await apply(
      ingress('deny', 'deny.test', [['/', 'Prefix', 'alpha']], { 'denylist-source-range': '127.0.0.3' }),
      'deny.test',
      '/',
      served,
    );
    assert.equal((await get('deny.test', '/', { from: '127.0.0.3' })).status, 403);
    assert.equal((await get('deny.test', '/', { from: '127.0.0.2' })).status, 200);
    // The legacy name works too.
    await apply(
      ingress('white', 'white.test', [['/', 'Prefix', 'alpha']], { 'whitelist-source-range': '127.0.0.4' }),
      'white.test',
      '/',
      (a) => a.status === 403,
    );
    assert.equal((await get('white.test', '/', { from: '127.0.0.4' })).status, 200);
  });

  it('enable-cors with listed origins: nginx answers the preflight with 204 and the headers; others go to the backend', async () => {
    await apply(
      ingress('cors', 'cors.test', [['/', 'Prefix', 'special']], {
        'enable-cors': 'true',
        'cors-allow-origin': 'https://app.test, https://*.apps.test:8443',
        'cors-allow-methods': 'GET, POST',
        'cors-allow-headers': 'X-Token, Content-Type',
        'cors-expose-headers': 'X-Total',
        'cors-allow-credentials': 'false',
        'cors-max-age': '600',
      }),
      'cors.test',
      '/cors',
      served,
    );
    const pre = await get('cors.test', '/cors', {
      method: 'OPTIONS',
      headers: { Origin: 'https://app.test', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://app.test');
    assert.equal(pre.headers['access-control-allow-methods'], 'GET, POST');
    assert.equal(pre.headers['access-control-allow-headers'], 'X-Token, Content-Type');
    assert.equal(pre.headers['access-control-max-age'], '600');
    assert.equal(pre.headers['access-control-allow-credentials'], undefined);
    const wild = await get('cors.test', '/cors', {
      method: 'OPTIONS',
      headers: { Origin: 'https://x.apps.test:8443' },
    });
    assert.deepEqual([wild.status, wild.headers['access-control-allow-origin']], [204, 'https://x.apps.test:8443']);
    // A simple request from an allowed origin: the backend answers, with our headers (not its own).
    const simple = await get('cors.test', '/cors', { headers: { Origin: 'https://app.test' } });
    assert.deepEqual(
      [
        simple.status,
        simple.body,
        simple.headers['access-control-allow-origin'],
        simple.headers['access-control-expose-headers'],
        simple.headers['access-control-max-age'],
      ],
      [200, 'cors\n', 'https://app.test', 'X-Total', '600'],
    );
    // Not allowed: none of ours (the backend's own pass, as in ingress-nginx), and the preflight is
    // the backend's to answer (spec/integration/cors.spec.ts checks every header).
    const other = await get('cors.test', '/cors', { method: 'OPTIONS', headers: { Origin: 'https://evil.test' } });
    assert.deepEqual(
      [other.status, other.body, other.headers['access-control-allow-origin'], other.headers['access-control-max-age']],
      [200, 'cors\n', 'https://backend.test', '1'],
    );
    const deep = await get('cors.test', '/cors', { headers: { Origin: 'https://a.b.apps.test:8443' } });
    assert.equal(deep.headers['access-control-allow-origin'], 'https://backend.test', 'a wildcard covers one label');
  });

  it('enable-cors with the defaults: any origin, ingress-nginx default methods, headers and max age', async () => {
    const pre = await apply(
      ingress('cors-any', 'cors-any.test', [['/', 'Prefix', 'alpha']], { 'enable-cors': 'true' }),
      'cors-any.test',
      '/',
      (a) => a.status === 204,
      { method: 'OPTIONS', headers: { Origin: 'https://anyone.test' } },
    );
    assert.equal(pre.headers['access-control-allow-origin'], '*');
    assert.equal(pre.headers['access-control-allow-credentials'], 'true');
    assert.equal(pre.headers['access-control-allow-methods'], 'GET, PUT, POST, DELETE, PATCH, OPTIONS');
    assert.equal(
      pre.headers['access-control-allow-headers'],
      'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization',
    );
    assert.equal(pre.headers['access-control-max-age'], '1728000');
    const simple = await get('cors-any.test', '/x');
    assert.deepEqual([echo(simple).service, simple.headers['access-control-allow-origin']], ['alpha', '*']);
  });

  it('limit-rps: 503 over the rate (burst = rps x limit-burst-multiplier)', async () => {
    await apply(
      ingress('rps', 'rps.test', [['/', 'Prefix', 'alpha']], { 'limit-rps': '1', 'limit-burst-multiplier': '1' }),
      'rps.test',
      '/',
      served,
    );
    await sleep(2100); // the bucket drains (the polling above spent some of it)
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await get('rps.test', '/')).status);
    assert.deepEqual(statuses.slice(0, 2), [200, 200], `one request plus a burst of one pass: ${statuses.join(',')}`);
    assert.ok(
      statuses.slice(2).every((s) => s === 503),
      `then 503: ${statuses.join(',')}`,
    );
    // Another address has its own bucket.
    assert.equal((await get('rps.test', '/', { from: '127.0.0.5' })).status, 200);
  });

  it('limit-connections: 503 once a client holds the allowed connections', async () => {
    await apply(
      ingress('conn', 'conn.test', [['/', 'Prefix', 'alpha']], { 'limit-connections': '1' }),
      'conn.test',
      '/',
      served,
    );
    // A request whose body never arrives holds its connection (nginx reads the body before proxying).
    const held = http.request({
      host: '127.0.0.1',
      port: stack.port,
      path: '/',
      method: 'POST',
      headers: { Host: 'conn.test', 'Content-Length': '100' },
      agent: false,
    });
    held.on('error', () => undefined);
    held.write('x');
    try {
      let status = 0;
      for (let i = 0; i < 40 && status !== 503; i++) {
        await sleep(25);
        status = (await get('conn.test', '/')).status;
      }
      assert.equal(status, 503);
    } finally {
      held.destroy();
    }
    let after = 0;
    for (let i = 0; i < 40 && after !== 200; i++) {
      await sleep(25);
      after = (await get('conn.test', '/')).status;
    }
    assert.equal(after, 200, 'the slot is free again once the connection is gone');
  });

  it('auth-type basic: 401 without or with wrong credentials, 200 with them; a missing Secret answers 503', async () => {
    const hash = String(execaSync('openssl', ['passwd', '-apr1', 's3cret']).stdout).trim();
    await stack.write(
      'auth-secret.yaml',
      `apiVersion: v1
kind: Secret
metadata: {name: basic-auth, namespace: default}
type: Opaque
data:
  auth: ${Buffer.from(`# users\nalice:${hash}\nbob:{PLAIN}plain\n`).toString('base64')}
`,
    );
    const basic = (user: string, pass: string) => ({
      Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`,
    });
    const denied = await apply(
      ingress('auth', 'auth.test', [['/', 'Prefix', 'alpha']], {
        'auth-type': 'basic',
        'auth-secret': 'basic-auth',
        'auth-realm': 'Staff only',
      }),
      'auth.test',
      '/',
      (a) => a.status === 401,
    );
    assert.equal(denied.headers['www-authenticate'], 'Basic realm="Staff only"');
    await readableByWorkers();
    assert.equal((await get('auth.test', '/', { headers: basic('alice', 'wrong') })).status, 401);
    const ok = await get('auth.test', '/', { headers: basic('alice', 's3cret') });
    assert.deepEqual([ok.status, echo(ok).service], [200, 'alpha']);
    assert.equal((await get('auth.test', '/', { headers: basic('bob', 'plain') })).status, 200);

    await apply(
      ingress('auth-missing', 'auth-missing.test', [['/', 'Prefix', 'alpha']], {
        'auth-type': 'basic',
        'auth-secret': 'nope',
      }),
      'auth-missing.test',
      '/',
      (a) => a.status === 503,
    );
    assert.ok(
      stack.logs.some(
        (l) =>
          l.message === 'Ingress partly rejected' &&
          String(l.reason).includes('auth-type basic: Secret default/nope not found'),
      ),
      'the Ingress is reported',
    );
  });

  it('backend-protocol HTTPS: TLS to the backend; without it the TLS backend cannot be reached', async () => {
    const a = await apply(
      ingress('tls-web', 'tlsweb.test', [['/', 'Prefix', 'tls-web']], { 'backend-protocol': 'HTTPS' }),
      'tlsweb.test',
      '/x?y=1',
      served,
    );
    const reply = JSON.parse(a.body) as { service: string; url: string; tls: boolean; headers: Record<string, string> };
    deepEqualPick(reply, { service: 'tls-web', url: '/x?y=1', tls: true });
    assert.equal(reply.headers.host, 'tlsweb.test');
    await apply(
      ingress('tls-web-plain', 'tlsweb-plain.test', [['/', 'Prefix', 'tls-web']], {}),
      'tlsweb-plain.test',
      '/',
      (x) => x.status === 400 || x.status === 502,
    );
  });

  it("backend-protocol GRPC and GRPCS: HTTP/2 end to end, trailers included, over the host's TLS", async () => {
    const tls = [{ hosts: ['grpc.test'], secretName: 'grpc-tls' }];
    const yaml = (name: string, service: string, protocol: string) =>
      ingressYaml(name, [{ host: 'grpc.test', paths: [[`/${name}.Echo`, 'Prefix', service]] }], {
        tls,
        annotations: { [`${P}backend-protocol`]: protocol, [`${P}proxy-read-timeout`]: '5' },
      });
    await stack.write(`ing-${n++}.yaml`, yaml('plain', 'grpc', 'GRPC'));
    await stack.write(`ing-${n++}.yaml`, yaml('secure', 'grpcs', 'grpcs'));
    // A gRPC message: a 5-byte prefix (compressed flag, length), then the payload.
    const payload = Buffer.from('hello');
    const message = Buffer.concat([Buffer.from([0, 0, 0, 0, payload.length]), payload]);
    for (const [name, backend] of [
      ['plain', 'grpc'],
      ['secure', 'grpcs'],
    ] as const) {
      let r: Awaited<ReturnType<typeof grpcCall>> | null = null;
      const deadline = Date.now() + 8000;
      while (Date.now() < deadline) {
        r = await grpcCall(stack.https!.port, 'grpc.test', `/${name}.Echo/Say`, message).catch(() => null);
        if (r?.headers['x-backend'] === backend) break;
        await sleep(50);
      }
      assert.ok(r, `no answer for ${name}`);
      assert.deepEqual(
        [
          r.status,
          r.headers['content-type'],
          r.headers['x-backend'],
          r.headers['x-path'],
          r.headers['x-authority'],
          r.headers['x-forwarded-proto'],
          r.trailers['grpc-status'],
          r.body.equals(message),
        ],
        [200, 'application/grpc', backend, `/${name}.Echo/Say`, 'grpc.test', 'https', '0', true],
      );
    }
  });

  it('an invalid annotation value rejects the Ingress with a reason (its paths answer 503), and the others keep serving', async () => {
    await stack.write(
      `ing-${n++}.yaml`,
      ingress('bad', 'bad.test', [['/', 'Prefix', 'alpha']], { 'proxy-body-size': '8m; return 200' }),
    );
    const deadline = Date.now() + 8000;
    while (
      Date.now() < deadline &&
      !stack.logs.some((l) => l.message === 'Ingress rejected' && l.ingress === 'default/bad')
    )
      await sleep(25);
    const log = stack.logs.find((l) => l.message === 'Ingress rejected' && l.ingress === 'default/bad');
    assert.match(
      String(log?.reason),
      /annotation nginx\.ingress\.kubernetes\.io\/proxy-body-size: "8m; return 200" is not a size/,
    );
    let status = 0;
    for (const until = Date.now() + 5000; Date.now() < until && status !== 503; await sleep(25))
      status = (await get('bad.test', '/')).status;
    assert.equal(status, 503, 'fails closed');
    assert.equal((await get('body.test', '/', { method: 'POST', body: 'x' })).status, 200);
  });
});
