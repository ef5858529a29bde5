// The annotations that choose endpoints and backends, through a real nginx: load-balance,
// upstream-hash-by, affinity cookie, canary, service-upstream, mirror-target, custom-http-errors
// and default-backend. Services with two endpoints are two echo servers on one port at 127.0.0.2
// and 127.0.0.3; what a client sees is who answered.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEcho, type EchoReply, type EchoServer } from '../../src/dev/echo.ts';
import { freePort, type HttpAnswer } from '../helpers/nginx.ts';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';
/**
 * mirror-target refuses loopback addresses (the pod itself), so the mirror listens on this
 * machine's first non-loopback IPv4 address.
 */
const MIRROR_HOST =
  Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.'))?.address ?? '';

/** A Service whose endpoints are `ips` on `port`; `clusterIP` when given. */
function serviceYaml(name: string, port: number, ips: string[], clusterIP?: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: default}
spec:
${clusterIP ? `  clusterIP: ${clusterIP}\n` : ''}  ports: [{name: http, port: ${port}, targetPort: ${port}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${name}-1, namespace: default, labels: {kubernetes.io/service-name: ${name}}}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints: [${ips.map((ip) => `{addresses: ["${ip}"]}`).join(', ')}]
`;
}

/** A backend that answers with the status its path names (/status/404) and otherwise 200, recording requests. */
async function startRecorder(
  host: string,
  name: string,
): Promise<{
  port: number;
  seen: Array<{ url: string; headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}> {
  const seen: Array<{ url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      // As ingress-nginx's custom error backends do: answer with the code nginx says it replaces.
      const m = /^\/status\/(\d{3})/.exec(req.url ?? '');
      const status = req.headers['x-code'] ? Number(req.headers['x-code']) : m ? Number(m[1]) : 200;
      res.writeHead(status, { 'content-type': 'application/json', 'x-echo-service': name });
      res.end(JSON.stringify({ service: name, url: req.url, code: req.headers['x-code'] ?? null, status }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('routing annotations through a real nginx', function () {
  this.timeout(120_000);
  let stack: Stack;
  let port = 0;
  const echoes: EchoServer[] = [];
  let canaryEcho: EchoServer;
  let clusterEcho: EchoServer;
  let mirror: Awaited<ReturnType<typeof startRecorder>>;
  let app: Awaited<ReturnType<typeof startRecorder>>;
  let errors: Awaited<ReturnType<typeof startRecorder>>;
  let n = 0;

  before(async () => {
    port = await freePort();
    // Two endpoints of "pool", one port: who answered tells them apart.
    echoes.push(
      await startEcho('pool-a', { host: '127.0.0.2', port }),
      await startEcho('pool-b', { host: '127.0.0.3', port }),
    );
    canaryEcho = await startEcho('canary', { host: '127.0.0.4', port });
    clusterEcho = await startEcho('cluster-ip', { host: '127.0.0.5', port });
    if (MIRROR_HOST === '') throw new Error('the mirror-target test needs a non-loopback IPv4 address on this machine');
    mirror = await startRecorder(MIRROR_HOST, 'mirror');
    app = await startRecorder('127.0.0.7', 'app');
    errors = await startRecorder('127.0.0.8', 'errors');
    stack = await startStack({
      backends: [],
      files: {
        'services.yaml': [
          serviceYaml('pool', port, ['127.0.0.2', '127.0.0.3']),
          serviceYaml('pool-canary', port, ['127.0.0.4']),
          // service-upstream sends to the cluster IP, never to the endpoints.
          serviceYaml('svc-ip', port, ['127.0.0.2', '127.0.0.3'], '127.0.0.5'),
          serviceYaml('app', app.port, ['127.0.0.7']),
          serviceYaml('errors', errors.port, ['127.0.0.8']),
          serviceYaml('empty', 80, []),
        ].join('---\n'),
      },
    });
  });
  after(async () => {
    await stack?.stop();
    for (const e of [...echoes, canaryEcho, clusterEcho]) await e?.close();
    for (const r of [mirror, app, errors]) await r?.close();
  });

  const get = (host: string, urlPath: string, headers: Record<string, string> = {}) =>
    stack.get(host, urlPath, headers);
  const who = (a: HttpAnswer) => (a.status === 200 ? (JSON.parse(a.body) as EchoReply).service : `status ${a.status}`);

  /** Writes manifests and waits (bounded) until `check` passes for a request to host/path. */
  async function apply(
    yaml: string,
    host: string,
    urlPath: string,
    check: (a: HttpAnswer) => boolean,
    headers: Record<string, string> = {},
  ): Promise<void> {
    await stack.write(`ing-${n++}.yaml`, yaml);
    const deadline = Date.now() + 8000;
    let last: HttpAnswer = { status: 0, headers: {}, body: '' };
    while (Date.now() < deadline) {
      last = await get(host, urlPath, headers).catch((err: Error) => ({ status: 0, headers: {}, body: err.message }));
      if (check(last)) break;
      await sleep(25);
    }
    assert.ok(check(last), `${host}${urlPath}: last answer ${last.status} ${last.body.slice(0, 200)}`);
    // Old workers may answer for a moment after a reload.
    await stack.sidecar.idle();
    await sleep(150);
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

  /** Who answered each of `count` requests, counted. */
  async function tally(count: number, request: (i: number) => Promise<HttpAnswer>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < count; i++) {
      const w = who(await request(i));
      out.set(w, (out.get(w) ?? 0) + 1);
    }
    return out;
  }

  it('load-balance: round_robin (the default) and ewma (least_conn) both use every endpoint', async () => {
    await apply(ingress('rr', 'rr.test', [['/', 'Prefix', 'pool']], {}), 'rr.test', '/', (a) => a.status === 200);
    const rr = await tally(20, () => get('rr.test', '/'));
    assert.deepEqual([...rr.keys()].sort(), ['pool-a', 'pool-b'], JSON.stringify([...rr]));
    await apply(
      ingress('ewma', 'ewma.test', [['/', 'Prefix', 'pool']], { 'load-balance': 'ewma' }),
      'ewma.test',
      '/',
      (a) => a.status === 200,
    );
    const ewma = await tally(20, () => get('ewma.test', '/'));
    assert.deepEqual([...ewma.keys()].sort(), ['pool-a', 'pool-b'], JSON.stringify([...ewma]));
  });

  it('upstream-hash-by: one key always reaches one endpoint; many keys reach both', async () => {
    await apply(
      ingress('hash', 'hash.test', [['/', 'Prefix', 'pool']], { 'upstream-hash-by': '$arg_user' }),
      'hash.test',
      '/?user=x',
      (a) => a.status === 200,
    );
    for (const user of ['alice', 'bob', 'carol']) {
      const t = await tally(8, () => get('hash.test', `/?user=${user}`));
      assert.equal(t.size, 1, `user ${user} went to ${JSON.stringify([...t])}`);
    }
    const spread = await tally(40, (i) => get('hash.test', `/?user=u${i}`));
    assert.deepEqual([...spread.keys()].sort(), ['pool-a', 'pool-b'], JSON.stringify([...spread]));
  });

  it('affinity cookie: the first answer sets the cookie, and requests with it stay on one endpoint', async () => {
    await apply(
      ingress('sticky', 'sticky.test', [['/app', 'Prefix', 'pool']], {
        affinity: 'cookie',
        'session-cookie-name': 'ROUTE',
        'session-cookie-max-age': '600',
      }),
      'sticky.test',
      '/app',
      (a) => a.status === 200 && String(a.headers['set-cookie'] ?? '').includes('ROUTE='),
    );
    const seenEndpoints = new Set<string>();
    for (let client = 0; client < 6; client++) {
      const first = await get('sticky.test', '/app/x');
      const cookie = String(first.headers['set-cookie'] ?? '');
      assert.match(cookie, /^ROUTE=[0-9a-f]{32}; Path=\/app; Max-Age=600; HttpOnly$/);
      const value = cookie.split(';')[0]!;
      // The first request was routed by the same key the cookie now carries.
      const t = await tally(6, () => get('sticky.test', '/app/x', { cookie: value }));
      assert.deepEqual([...t.keys()], [who(first)], `client ${client}: ${JSON.stringify([...t])}`);
      const again = await get('sticky.test', '/app/x', { cookie: value });
      assert.equal(again.headers['set-cookie'], undefined, 'a request with the cookie gets no new one');
      seenEndpoints.add(who(first));
    }
    // Different clients are spread (6 random keys all on one of two endpoints: 1 in 32).
    const more = await tally(20, (i) => get('sticky.test', '/app/x', { cookie: `ROUTE=client${i}` }));
    assert.deepEqual([...new Set([...seenEndpoints, ...more.keys()])].sort(), ['pool-a', 'pool-b']);
  });

  it('canary by header and by cookie: "always" and "never" decide, others fall through to the weight', async () => {
    await apply(
      ingress('main', 'canary.test', [['/', 'Prefix', 'pool']], {}),
      'canary.test',
      '/',
      (a) => a.status === 200,
    );
    await apply(
      ingress('main-canary', 'canary.test', [['/', 'Prefix', 'pool-canary']], {
        canary: 'true',
        'canary-by-header': 'X-Canary',
        'canary-by-cookie': 'use_canary',
      }),
      'canary.test',
      '/',
      (a) => who(a) === 'canary',
      { 'X-Canary': 'always' },
    );
    assert.equal(who(await get('canary.test', '/', { 'X-Canary': 'always' })), 'canary');
    assert.notEqual(
      who(await get('canary.test', '/', { 'X-Canary': 'never', cookie: 'use_canary=always' })),
      'canary',
      'the header decides before the cookie',
    );
    assert.equal(who(await get('canary.test', '/', { cookie: 'use_canary=always' })), 'canary');
    assert.notEqual(who(await get('canary.test', '/', { cookie: 'use_canary=never' })), 'canary');
    // Weight 0 (not set): no request without header or cookie reaches the canary.
    const plain = await tally(20, () => get('canary.test', '/'));
    assert.equal(plain.get('canary'), undefined, JSON.stringify([...plain]));
  });

  it('canary-by-header-value: only that exact value goes to the canary', async () => {
    await apply(
      ingress('v-main', 'version.test', [['/', 'Prefix', 'pool']], {}),
      'version.test',
      '/',
      (a) => a.status === 200,
    );
    await apply(
      ingress('v-canary', 'version.test', [['/', 'Prefix', 'pool-canary']], {
        canary: 'true',
        'canary-by-header': 'X-Version',
        'canary-by-header-value': 'v2.1',
      }),
      'version.test',
      '/',
      (a) => who(a) === 'canary',
      { 'X-Version': 'v2.1' },
    );
    for (const v of ['V2.1', 'v2x1', 'v2.1.0', 'always'])
      assert.notEqual(who(await get('version.test', '/', { 'X-Version': v })), 'canary', v);
  });

  it('canary-weight: about that share of requests goes to the canary', async () => {
    await apply(
      ingress('w-main', 'weight.test', [['/', 'Prefix', 'pool']], {}),
      'weight.test',
      '/',
      (a) => a.status === 200,
    );
    await apply(
      ingress('w-canary', 'weight.test', [['/', 'Prefix', 'pool-canary']], { canary: 'true', 'canary-weight': '30' }),
      'weight.test',
      '/',
      (a) => who(a) === 'canary',
    );
    const total = 400;
    const t = await tally(total, () => get('weight.test', '/'));
    const share = (t.get('canary') ?? 0) / total;
    // Binomial(400, 0.3): the standard deviation is 2.3 points; 0.2-0.4 is over 4 of them.
    assert.ok(share > 0.2 && share < 0.4, `canary share ${share} (${JSON.stringify([...t])})`);
  });

  it('service-upstream: requests go to the Service cluster IP, not to its endpoints', async () => {
    await apply(
      ingress('svc', 'svcip.test', [['/', 'Prefix', 'svc-ip']], { 'service-upstream': 'true' }),
      'svcip.test',
      '/',
      (a) => a.status === 200,
    );
    const t = await tally(6, () => get('svcip.test', '/'));
    assert.deepEqual([...t.keys()], ['cluster-ip']);
  });

  it("mirror-target: a copy of each request (path, Host, body) goes to the target; the client gets the backend's answer", async () => {
    const target = `http://${MIRROR_HOST}:${mirror.port}/copy$request_uri`;
    await apply(
      ingress('mirrored', 'mirror.test', [['/', 'Prefix', 'app']], { 'mirror-target': target }),
      'mirror.test',
      '/first',
      (a) => a.status === 200,
    );
    const before = mirror.seen.length;
    const answer = await new Promise<HttpAnswer>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: stack.port,
          path: '/orders?id=7',
          method: 'POST',
          headers: { Host: 'mirror.test', 'content-type': 'text/plain' },
          agent: false,
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers as HttpAnswer['headers'], body }),
          );
        },
      );
      req.on('error', reject);
      req.end('order-body');
    });
    assert.equal(JSON.parse(answer.body).service, 'app');
    const deadline = Date.now() + 3000;
    while (mirror.seen.length === before && Date.now() < deadline) await sleep(20);
    const copy = mirror.seen.at(-1);
    assert.ok(copy, 'the mirror got no copy');
    assert.equal(copy.url, '/copy/orders?id=7');
    assert.equal(copy.headers.host, `${MIRROR_HOST}:${mirror.port}`);
    assert.equal(copy.headers['x-original-uri'], '/orders?id=7');
    assert.equal(copy.body, 'order-body');
  });

  it('custom-http-errors with default-backend: the error service answers the listed codes, told which; others pass', async () => {
    await apply(
      ingress(
        'errs',
        'errors.test',
        [
          ['/', 'Prefix', 'app'],
          ['/down', 'Prefix', 'empty'],
        ],
        { 'custom-http-errors': '404,503', 'default-backend': 'errors' },
      ),
      'errors.test',
      '/status/404',
      (a) => a.status === 404 && a.body.startsWith('{"service":"errors"'),
    );
    const replaced = await get('errors.test', '/status/404');
    const body = JSON.parse(replaced.body);
    assert.deepEqual([replaced.status, body.service, body.code, body.url], [404, 'errors', '404', '/status/404']);
    const last = errors.seen.at(-1)!;
    assert.equal(last.headers['x-namespace'], 'default');
    assert.equal(last.headers['x-ingress-name'], 'errs');
    assert.equal(last.headers['x-service-name'], 'app');
    assert.equal(last.headers['x-original-uri'], '/status/404');
    // A code not listed comes from the backend itself.
    const other = await get('errors.test', '/status/500');
    assert.deepEqual([other.status, JSON.parse(other.body).service], [500, 'app']);
    // default-backend: a path whose Service has no endpoints is served by it instead of a 503.
    const down = await get('errors.test', '/down/x');
    assert.deepEqual([down.status, JSON.parse(down.body).service], [200, 'errors']);
  });

  it('custom-http-errors without any default backend is reported and changes nothing', async () => {
    await apply(
      ingress('errs-alone', 'errors-alone.test', [['/', 'Prefix', 'app']], { 'custom-http-errors': '404' }),
      'errors-alone.test',
      '/status/200',
      (a) => a.status === 200,
    );
    const answer = await get('errors-alone.test', '/status/404');
    assert.deepEqual([answer.status, JSON.parse(answer.body).service], [404, 'app']);
    assert.ok(
      stack.sidecar
        .model()
        ?.rejections.some(
          (r) => r.ingress === 'default/errs-alone' && /custom-http-errors has no effect/.test(r.reason),
        ),
      JSON.stringify(stack.sidecar.model()?.rejections),
    );
  });
});

describe('snippet annotations through a real nginx (--allow-snippet-annotations)', function () {
  this.timeout(60_000);
  let stack: Stack;
  before(async () => {
    stack = await startStack({ backends: ['web'], allowSnippets: true });
  });
  after(async () => {
    await stack?.stop();
  });
  const snippetIngress = (name: string, host: string, snippets: Record<string, string>) =>
    ingressYaml(name, [{ host, paths: [['/', 'Prefix', 'web']] }], {
      annotations: Object.fromEntries(Object.entries(snippets).map(([k, v]) => [`${P}${k}`, v])),
    });

  it('a configuration-snippet and a server-snippet act; one nginx refuses sets only its Ingress aside', async () => {
    await stack.write(
      'good.yaml',
      snippetIngress('good', 'good.test', {
        'configuration-snippet': 'add_header X-Snippet "yes; really }" always;',
        'server-snippet': 'location = /ping { return 200 "pong"; }',
      }),
    );
    await stack.eventually('good.test', '/', 'web');
    const a = await stack.get('good.test', '/');
    assert.equal(a.headers['x-snippet'], 'yes; really }');
    const ping = await stack.get('good.test', '/ping');
    assert.deepEqual([ping.status, ping.body], [200, 'pong']);
    // A value nginx refuses only when it checks the file (one buffer): nginx -t refuses it, and the sidecar sets that Ingress aside (503).
    await stack.write(
      'bad.yaml',
      snippetIngress('bad', 'bad.test', { 'configuration-snippet': 'proxy_buffers 1 4k;' }),
    );
    const deadline = Date.now() + 8000;
    const setAside = () =>
      stack.logs.find((l) => l.ingress === 'default/bad' && /its paths answer 503/.test(String(l.message)));
    while (Date.now() < deadline && !setAside()) await sleep(50);
    assert.match(String(setAside()?.nginx ?? ''), /there must be at least 2 "proxy_buffers"/);
    await stack.sidecar.idle();
    assert.equal((await stack.get('bad.test', '/')).status, 503, 'bad.test is not served');
    assert.equal(await stack.who('good.test', '/'), 'web');
    // A snippet that would escape its block never reaches nginx: the Ingress is rejected by the parser.
    await stack.write(
      'escape.yaml',
      snippetIngress('escape', 'escape.test', { 'configuration-snippet': '} server { listen 1; } location /x {' }),
    );
    const until = Date.now() + 8000;
    while (Date.now() < until && !stack.sidecar.model()?.rejections.some((r) => r.ingress === 'default/escape'))
      await sleep(50);
    assert.match(
      stack.sidecar.model()?.rejections.find((r) => r.ingress === 'default/escape')?.reason ?? '',
      /may not close the location block/,
    );
    // Nor does a directive that is not on the snippet allowlist (sub_filter's module is not in every nginx).
    await stack.write(
      'unlisted.yaml',
      snippetIngress('unlisted', 'unlisted.test', { 'configuration-snippet': 'sub_filter a b;' }),
    );
    const listed = Date.now() + 8000;
    while (Date.now() < listed && !stack.sidecar.model()?.rejections.some((r) => r.ingress === 'default/unlisted'))
      await sleep(50);
    assert.match(
      stack.sidecar.model()?.rejections.find((r) => r.ingress === 'default/unlisted')?.reason ?? '',
      /sub_filter: is not allowed in a snippet; a snippet may use only these directives/,
    );
  });
});
