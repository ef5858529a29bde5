// Test helpers around a real nginx and plain HTTP clients. Tests must stop() every nginx they
// start in an after/afterEach hook.
import http from 'node:http';
import net from 'node:net';
import { nginxBinary } from '../../src/dev/local-nginx.ts';
import { nginxVersion } from '../../src/nginx/process.ts';
import { parseNginxVersion, versionAtLeast } from '../../src/nginx/version.ts';

export { nginxBinary, startNginx, type RunningNginx } from '../../src/dev/local-nginx.ts';

/**
 * For the before() hook of tests that need nginx >= `min` (`what` says for what): the nginx under
 * test (nginxBinary(), as spec/helpers/nginx-under-test.ts sets it) and its version; on an older
 * one, prints why and skips them (npm test runs the integration tier on 1.30.4 as well).
 */
export async function nginxAtLeast(
  ctx: Pick<Mocha.Context, 'skip'>,
  min: string,
  what: string,
): Promise<{ binary: string; version: string }> {
  const binary = nginxBinary();
  const version = await nginxVersion(binary);
  const have = version === null ? null : parseNginxVersion(version);
  const want = parseNginxVersion(min);
  if (!want) throw new Error(`nginxAtLeast: ${JSON.stringify(min)} is not a version`);
  if (have === null || !versionAtLeast(have, want)) {
    console.log(`      (skipped: ${what} needs nginx >= ${min}; this run's is ${version ?? 'unknown'}, ${binary})`);
    ctx.skip();
  }
  return { binary, version: version! };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function httpGet(
  port: number,
  host: string,
  urlPath: string,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        method: 'GET',
        headers: { ...headers, Host: host },
        agent: false,
        timeout: 3000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET http://127.0.0.1:${port}${urlPath} (Host: ${host}) timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Which echo backend answers for `host` on / (its name), else the status (0: no answer). */
export async function whoAnswers(port: number, host: string): Promise<string> {
  const r = await httpGet(port, host, '/').catch(() => ({ status: 0, body: '' }));
  if (r.status !== 200) return String(r.status);
  try {
    return (JSON.parse(r.body) as { service: string }).service;
  } catch {
    return '200 without an echo body';
  }
}
