// enable-cors and cors-* through a real nginx, against what ingress-nginx's template
// (rootfs/etc/nginx/template/nginx.tmpl, "CORS") sends: for an allowed Origin (or with "*", for
// every request) it sets, in this order,
//   Access-Control-Allow-Origin: $http_origin (with "*": *)
//   Access-Control-Allow-Credentials: true          (only when cors-allow-credentials is true)
//   Access-Control-Allow-Methods: <cors-allow-methods as written>
//   Access-Control-Allow-Headers: <cors-allow-headers as written>
//   Access-Control-Expose-Headers: <as written>     (only when set)
//   Access-Control-Max-Age: <cors-max-age>
// replacing the backend's own, and answers an OPTIONS request itself with 204. Any other request
// is not touched: the backend answers it, with its own headers. The expected strings below are
// those of that template with ingress-nginx's defaults (internal/ingress/annotations/cors/main.go).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { backendYaml, ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const P = 'nginx.ingress.kubernetes.io/';

interface Answer {
  status: number;
  body: string;
  /** The Access-Control-* headers as sent, in order, names lower-cased: one entry per header line. */
  cors: Array<[string, string]>;
  /** Content-Type and Content-Length, when sent. */
  entity: Array<string | undefined>;
}

function request(port: number, host: string, method: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/api',
        method,
        headers: { ...headers, Host: host },
        agent: false,
        timeout: 5000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const cors: Array<[string, string]> = [];
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
            const name = res.rawHeaders[i]!.toLowerCase();
            if (name.startsWith('access-control-')) cors.push([name, res.rawHeaders[i + 1]!]);
          }
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            cors,
            entity: [res.headers['content-type'], res.headers['content-length']],
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${host} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The backend's own CORS headers: ingress-nginx leaves them alone unless it sets the same name. */
const BACKEND_CORS: Array<[string, string]> = [
  ['access-control-allow-origin', 'https://backend.test'],
  ['access-control-allow-credentials', 'false'],
  ['access-control-allow-methods', 'BACKEND'],
  ['access-control-max-age', '1'],
];

async function startBackend(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, Object.fromEntries(BACKEND_CORS));
    res.end(`backend ${req.method}\n`);
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

describe('CORS headers as ingress-nginx sends them, through a real nginx', function () {
  this.timeout(120_000);
  let stack: Stack;
  let backend: Awaited<ReturnType<typeof startBackend>>;
  let n = 0;

  before(async () => {
    backend = await startBackend();
    stack = await startStack({ backends: [], files: { 'api.yaml': backendYaml('api', backend.port) } });
  });
  after(async () => {
    await stack?.stop();
    await backend?.close();
  });

  const send = (host: string, method: string, headers?: Record<string, string>) =>
    request(stack.port, host, method, headers);

  /** Writes one Ingress for `host` with these annotations and waits until `check` passes. */
  async function apply(host: string, annotations: Record<string, string>, check: (a: Answer) => boolean) {
    await stack.write(
      `ing-${n++}.yaml`,
      ingressYaml(host.split('.')[0]!, [{ host, paths: [['/', 'Prefix', 'api']] }], {
        annotations: Object.fromEntries(Object.entries(annotations).map(([k, v]) => [`${P}${k}`, v])),
      }),
    );
    const deadline = Date.now() + 8000;
    let last: Answer = { status: 0, body: '', cors: [], entity: [] };
    for (let settled = false; ;) {
      while (Date.now() < deadline) {
        last = await send(host, 'GET', { Origin: 'https://app.test' }).catch((e: Error) => ({
          status: 0,
          body: e.message,
          cors: [],
          entity: [],
        }));
        if (check(last)) break;
        await sleep(25);
      }
      if (!check(last) || settled) break;
      await stack.sidecar.idle();
      settled = true;
    }
    assert.ok(check(last), `${host}: last answer ${last.status} ${last.body.slice(0, 200)}`);
  }

  it('the defaults: every request gets "*" and ingress-nginx default strings; every OPTIONS is a 204', async () => {
    await apply('defaults.test', { 'enable-cors': 'true' }, (a) => a.cors[0]?.[1] === '*');
    const expected: Array<[string, string]> = [
      ['access-control-allow-origin', '*'],
      ['access-control-allow-credentials', 'true'],
      ['access-control-allow-methods', 'GET, PUT, POST, DELETE, PATCH, OPTIONS'],
      [
        'access-control-allow-headers',
        'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization',
      ],
      ['access-control-max-age', '1728000'],
    ];
    // A simple request, with or without an Origin: the backend answers, its own headers replaced.
    for (const headers of [{ Origin: 'https://anyone.test' }, {}] as Array<Record<string, string>>) {
      const simple = await send('defaults.test', 'GET', headers);
      assert.deepEqual([simple.status, simple.body, simple.cors], [200, 'backend GET\n', expected]);
    }
    // Any OPTIONS request is a preflight to ingress-nginx: 204 from nginx, no body.
    for (const headers of [{ Origin: 'https://anyone.test', 'Access-Control-Request-Method': 'PUT' }, {}] as Array<
      Record<string, string>
    >) {
      const pre = await send('defaults.test', 'OPTIONS', headers);
      assert.deepEqual([pre.status, pre.body, pre.cors, pre.entity], [204, '', expected, [undefined, undefined]]);
    }
  });

  it('values as written, and "*" anywhere in the list', async () => {
    await apply(
      'written.test',
      {
        'enable-cors': 'true',
        'cors-allow-origin': 'https://a.test, *',
        'cors-allow-methods': 'GET,POST,PUT',
        'cors-allow-headers': 'X-Token,Content-Type , x_b',
        'cors-expose-headers': 'X-Total, X-Page',
        'cors-allow-credentials': 'false',
        'cors-max-age': '+0600',
      },
      (a) => a.cors.some(([k, v]) => k === 'access-control-allow-methods' && v === 'GET,POST,PUT'),
    );
    const pre = await send('written.test', 'OPTIONS', { Origin: 'https://b.test' });
    assert.deepEqual(
      [pre.status, pre.cors],
      [
        204,
        [
          ['access-control-allow-origin', '*'],
          ['access-control-allow-methods', 'GET,POST,PUT'],
          ['access-control-allow-headers', 'X-Token,Content-Type , x_b'],
          ['access-control-expose-headers', 'X-Total, X-Page'],
          ['access-control-max-age', '600'],
        ],
      ],
    );
    // Without cors-allow-credentials, ingress-nginx leaves the backend's own Allow-Credentials
    // (more_set_headers replaces a header in place; here the backend's come first: order aside).
    const simple = await send('written.test', 'GET');
    assert.deepEqual(
      simple.cors.sort(),
      [
        ['access-control-allow-credentials', 'false'],
        ['access-control-allow-origin', '*'],
        ['access-control-allow-methods', 'GET,POST,PUT'],
        ['access-control-allow-headers', 'X-Token,Content-Type , x_b'],
        ['access-control-expose-headers', 'X-Total, X-Page'],
        ['access-control-max-age', '600'],
      ].sort(),
    );
  });

  it("a list of origins: an allowed Origin gets every header (its preflight a 204); any other request is the backend's", async () => {
    await apply(
      'listed.test',
      {
        'enable-cors': 'true',
        'cors-allow-origin': 'https://app.test, https://*.apps.test:8443, capacitor://localhost, null',
        'cors-allow-methods': 'GET, POST',
      },
      (a) => a.cors[0]?.[1] === 'https://app.test',
    );
    const ours = (origin: string): Array<[string, string]> => [
      ['access-control-allow-origin', origin],
      ['access-control-allow-credentials', 'true'],
      ['access-control-allow-methods', 'GET, POST'],
      [
        'access-control-allow-headers',
        'DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization',
      ],
      ['access-control-max-age', '1728000'],
    ];
    // The Origin is echoed as the browser sent it (matched case-insensitively).
    for (const origin of [
      'https://app.test',
      'HTTPS://App.Test',
      'https://x.apps.test:8443',
      'capacitor://localhost',
      'null',
    ]) {
      const pre = await send('listed.test', 'OPTIONS', { Origin: origin, 'Access-Control-Request-Method': 'POST' });
      assert.deepEqual([pre.status, pre.body, pre.cors], [204, '', ours(origin)], `preflight from ${origin}`);
      const simple = await send('listed.test', 'GET', { Origin: origin });
      assert.deepEqual([simple.status, simple.body, simple.cors], [200, 'backend GET\n', ours(origin)], origin);
    }
    // Not allowed, or no Origin: nothing of ours; the backend answers OPTIONS too, with its own headers.
    for (const headers of [
      { Origin: 'https://evil.test' },
      { Origin: 'https://a.b.apps.test:8443' },
      { Origin: 'https://x.apps.test' },
      { Origin: 'http://app.test' },
      {},
    ] as Array<Record<string, string>>) {
      for (const method of ['GET', 'OPTIONS']) {
        const other = await send('listed.test', method, headers);
        assert.deepEqual(
          [other.status, other.body, other.cors],
          [200, `backend ${method}\n`, BACKEND_CORS],
          `${method} ${JSON.stringify(headers)}`,
        );
      }
    }
  });
});
