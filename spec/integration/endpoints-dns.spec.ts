// The whole sidecar in dns mode on the nginx users run (>= 1.27.3): an endpoint change (moved,
// scaled to 0 and back, not ready) reaches nginx as new DNS answers with no render, no `nginx -t`
// and no reload; an Ingress change still reloads; a sidecar killed with SIGKILL leaves nginx
// serving its last endpoints, and the restarted one answers the same.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import { workerPids } from '../../src/nginx/process.ts';
import { parseNginxVersion, versionAtLeast } from '../../src/nginx/version.ts';
import { nginxBuilds } from '../helpers/nginx-check.ts';
import { freePort, httpGet, startNginx, whoAnswers, type RunningNginx } from '../helpers/nginx.ts';
import { ingressYaml, startStack, type Stack } from '../helpers/sidecar.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/ingress-sidecar');

const build = nginxBuilds().builds.find((b) => {
  const v = parseNginxVersion(b.version);
  return v !== null && versionAtLeast(v, [1, 27, 3]);
});

/** Service `app` (port 80, targetPort "http") and one EndpointSlice of `ready` echo ports (and not-ready ones). */
function appYaml(ready: number[], notReady: number[] = []): string {
  const slices = [...ready.map((p) => [p, true] as const), ...notReady.map((p) => [p, false] as const)].map(
    ([port, isReady], i) => `---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: app-${i}, namespace: default, labels: {kubernetes.io/service-name: app}}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: ${isReady}}}]
`,
  );
  return `apiVersion: v1
kind: Service
metadata: {name: app, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: http}]
${slices.join('')}`;
}

/** The rendered files, by name: they must not change on an endpoint change. */
async function confFiles(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const f of (await readdir(dir)).filter((n) => n.endsWith('.conf')).sort())
    out.set(f, await readFile(path.join(dir, f), 'utf8'));
  return out;
}

/** Polls (bounded) until `host` on `port` answers `expected`; the last answer. */
async function until(port: number, host: string, expected: string, timeoutMs = 8000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await whoAnswers(port, host);
    if (last === expected) return last;
    await sleep(100);
  }
  return last;
}

describe('reload-free endpoints (dns mode, the whole sidecar)', function () {
  this.timeout(120_000);

  before(function () {
    if (!build) {
      console.log('      (skipped: no nginx >= 1.27.3 here; dns mode needs `server ... resolve`)');
      this.skip();
    }
  });

  describe('in process', () => {
    let stack: Stack;
    let a: EchoServer;
    let b: EchoServer;

    beforeEach(async () => {
      a = await startEcho('a');
      b = await startEcho('b');
      stack = await startStack({
        backends: [],
        endpointsMode: 'auto',
        nginx: build!,
        files: {
          'app.yaml': appYaml([a.port]),
          'ing.yaml': ingressYaml('app', [{ host: 'app.test', paths: [['/', 'Prefix', 'app']] }]),
        },
      });
    });

    afterEach(async () => {
      await stack.stop();
      await a.close();
      await b.close();
    });

    it('moves, empties (503) and refills a Service without a render, a check or a reload', async () => {
      assert.equal(await until(stack.port, 'app.test', 'a'), 'a');
      const files = await confFiles(stack.confDir);
      assert.match(files.get('ingress-sidecar-upstreams.conf')!, /service=http resolve;/);
      const reloads = stack.sidecar.stats.reloads;
      const workers = await workerPids(await stack.nginx.masterPid());

      const steps: Array<[string, string, string]> = [
        ['moved to b', appYaml([b.port]), 'b'],
        ['scaled to 0', appYaml([]), '503'],
        ['back to a', appYaml([a.port]), 'a'],
        ['a not ready, b ready', appYaml([b.port], [a.port]), 'b'],
      ];
      for (const [what, yaml, expected] of steps) {
        await stack.write('app.yaml', yaml);
        assert.equal(await until(stack.port, 'app.test', expected), expected, what);
      }
      await stack.sidecar.idle();
      assert.equal(stack.sidecar.stats.reloads, reloads, 'no reload');
      assert.deepEqual(await confFiles(stack.confDir), files, 'no file changed');
      assert.deepEqual(await workerPids(await stack.nginx.masterPid()), workers, 'the same workers serve');
      assert.ok(
        stack.logs.some((l) => l['message'] === 'endpoints changed; answered by DNS, no reload'),
        'the log says which path the change took',
      );
      // /routes shows the endpoints nginx is told, not those of the last render.
      const routes = stack.sidecar.model()!.upstreams.find((u) => u.service === 'default/app:80')!;
      assert.deepEqual(
        routes.servers.map((s) => s.address),
        [`127.0.0.1:${b.port}`],
      );
    });

    it('still renders and reloads for an Ingress change', async () => {
      assert.equal(await until(stack.port, 'app.test', 'a'), 'a');
      const reloads = stack.sidecar.stats.reloads;
      await stack.write('ing2.yaml', ingressYaml('two', [{ host: 'two.test', paths: [['/', 'Prefix', 'app']] }]));
      assert.equal(await until(stack.port, 'two.test', 'a'), 'a');
      await stack.sidecar.idle();
      assert.equal(stack.sidecar.stats.reloads, reloads + 1);
    });
  });

  describe('a sidecar killed with SIGKILL', () => {
    let work: string;
    let nginx: RunningNginx | undefined;
    let a: EchoServer;
    let b: EchoServer;
    let children: ResultPromise[] = [];

    afterEach(async () => {
      for (const c of children) c.kill('SIGKILL');
      children = [];
      await nginx?.stop();
      await a?.close();
      await b?.close();
      await rm(work, { recursive: true, force: true });
    });

    it('leaves nginx serving its last endpoints for 60 s; the restarted sidecar answers the same, then the new', async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'endpoints-dns-'));
      const watchDir = path.join(work, 'manifests');
      const confDir = path.join(work, 'conf.d');
      await mkdir(watchDir);
      await mkdir(confDir);
      a = await startEcho('a');
      b = await startEcho('b');
      await writeFile(path.join(watchDir, 'app.yaml'), appYaml([a.port]));
      await writeFile(
        path.join(watchDir, 'ing.yaml'),
        ingressYaml('app', [{ host: 'app.test', paths: [['/', 'Prefix', 'app']] }]),
      );
      nginx = await startNginx({ confDir, binary: build!.binary });
      const port = await freePort();
      const statusPort = await freePort();
      const args = [
        'run',
        '--watch-dir',
        watchDir,
        '--conf-dir',
        confDir,
        '--nginx-pid-file',
        nginx.pidFile,
        '--nginx-binary',
        build!.binary,
        '--http-port',
        String(port),
        '--https-port',
        '0',
        '--no-ipv6',
        '--access-log',
        'off',
        '--listen',
        `127.0.0.1:${statusPort}`,
        '--dns-port',
        String(await freePort()),
        '--unavailable-port',
        String(await freePort()),
      ];
      const start = () => {
        const c = execa(BIN, args, { reject: false, all: true });
        children.push(c);
        return c;
      };
      const first = start();
      assert.equal(await until(port, 'app.test', 'a', 20_000), 'a', 'served by the first sidecar');
      // Killed once its reload is verified and recorded (killed before, a restart reloads once more to be sure).
      for (
        let i = 0;
        i < 100 && (await httpGet(statusPort, '127.0.0.1', '/readyz').catch(() => null))?.status !== 200;
        i++
      )
        await sleep(100);
      const signals = (await nginx.errorLog()).split('signal 1 (SIGHUP)').length;

      first.kill('SIGKILL');
      await first;
      // 60 s without a responder: nginx keeps asking, gets no answer, and keeps its peers.
      const failures: string[] = [];
      const until60 = Date.now() + 60_000;
      for (let i = 0; i < 200 && Date.now() < until60; i++) {
        const who = await whoAnswers(port, 'app.test');
        if (who !== 'a') failures.push(who);
        await sleep(500);
      }
      assert.deepEqual(failures, [], 'every request served by a while the sidecar was dead');

      void start();
      // The restarted sidecar reads the same objects, renders the same files (no reload) and
      // answers the same; then an endpoint change is answered again.
      await sleep(3000);
      assert.equal(await whoAnswers(port, 'app.test'), 'a');
      await writeFile(path.join(watchDir, 'app.yaml'), appYaml([b.port]));
      assert.equal(await until(port, 'app.test', 'b', 10_000), 'b', 'the restarted sidecar answers changes');
      assert.equal(
        (await nginx.errorLog()).split('signal 1 (SIGHUP)').length,
        signals,
        'no reload: neither the restart nor the endpoint change',
      );
    });
  });
});
