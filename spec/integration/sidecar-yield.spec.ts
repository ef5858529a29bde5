// A pass over many Ingresses does not hold the event loop from start to end: the status server
// (health checks), the source's watch and every other callback get turns while it translates and
// renders (that the steps put in place exactly what an uninterrupted pass would is in
// spec/unit/sidecar-yield.spec.ts).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Metrics } from '../../src/ops/metrics.ts';
import { Sidecar, type SidecarOptions } from '../../src/sync/sidecar.ts';
import { DirectorySource } from '../../src/sources/directory.ts';
import { startStatusServer, type StatusServer } from '../../src/ops/http.ts';
import { backendYaml, ingressYaml } from '../helpers/sidecar.ts';
import { freePort, httpGet, nginxBinary, startNginx, type RunningNginx } from '../helpers/nginx.ts';

const HOSTS = 150;

/** Records when a pass has translated and rendered (the sidecar reports it right after). */
class RecordingMetrics extends Metrics {
  readonly events: string[];
  constructor(events: string[]) {
    super();
    this.events = events;
  }
  override observeRender(seconds: number): void {
    this.events.push('rendered');
    super.observeRender(seconds);
  }
}

describe('sidecar: a pass gives other work turns', function () {
  this.timeout(60_000);
  let work: string;
  let nginx: RunningNginx | null = null;
  let echo: EchoServer | null = null;
  let status: StatusServer | null = null;
  let sidecar: Sidecar | null = null;
  beforeEach(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'sidecar-yield-'));
  });
  afterEach(async () => {
    await sidecar?.stop();
    await status?.close();
    await nginx?.stop();
    await echo?.close();
    await rm(work, { recursive: true, force: true });
    sidecar = status = nginx = echo = null;
  });

  it('answers a health check while it translates and renders, and serves every host after', async () => {
    const watchDir = path.join(work, 'manifests');
    const confDir = path.join(work, 'conf.d');
    await mkdir(watchDir);
    await mkdir(confDir);
    echo = await startEcho('alpha');
    await writeFile(path.join(watchDir, 'backends.yaml'), backendYaml('alpha', echo.port));
    const docs = Array.from({ length: HOSTS }, (_, i) =>
      ingressYaml(`app-${i}`, [
        {
          host: `app-${i}.test`,
          paths: [
            ['/', 'Prefix', 'alpha'],
            ['/api/', 'Exact', 'alpha'],
          ],
        },
      ]),
    );
    await writeFile(path.join(watchDir, 'apps.yaml'), docs.join('---\n'));
    nginx = await startNginx({ confDir });
    const port = await freePort();
    const events: string[] = [];
    const { logger } = createMemoryLogger();
    let statusPort = 0;
    let asked = false;
    const opts = {
      source: new DirectorySource({ dir: watchDir, logger }),
      translate: { ingressClass: 'nginx', httpPort: port, ipv6: false },
      // Read as each translation starts: the moment to ask for /healthz.
      clock: () => {
        if (!asked && statusPort !== 0) {
          asked = true;
          void httpGet(statusPort, 'status', '/healthz').then(
            (r) => events.push(`healthz answered ${r.status}`),
            (err: Error) => events.push(`healthz failed: ${err.message}`),
          );
        }
        return new Date();
      },
      confDir,
      nginxBinary: nginxBinary(),
      nginxPidFile: nginx.pidFile,
      reloadTimeoutMs: 10_000,
      debounceMs: 20,
      maxDelayMs: 500,
      logger,
      metrics: new RecordingMetrics(events),
      // Yield at every step, so that the test does not depend on how fast this machine is.
      stepBudgetMs: 0,
    };
    const s = new Sidecar(opts as SidecarOptions);
    sidecar = s;
    status = await startStatusServer(
      '127.0.0.1:0',
      { healthy: () => s.healthy(), ready: () => s.ready(), model: () => s.model() },
      s.metrics,
    );
    statusPort = status.port;
    await s.start();
    for (let i = 0; i < 50 && !events.some((e) => e.startsWith('healthz')); i++)
      await new Promise((r) => setTimeout(r, 20));
    const answered = events.findIndex((e) => e.startsWith('healthz answered'));
    assert.ok(answered !== -1, `no answer to /healthz: ${events.join(', ')}`);
    assert.ok(
      answered < events.indexOf('rendered'),
      `/healthz waited for the whole translate and render: ${events.join(', ')}`,
    );
    // What the pass put in place is whole: every host routes, the Exact /api/ too.
    for (const i of [0, HOSTS >> 1, HOSTS - 1]) {
      const r = await httpGet(port, `app-${i}.test`, '/api/');
      assert.equal(r.status, 200, `app-${i}.test /api/`);
      assert.equal(
        (await httpGet(port, `app-${i}.test`, '/api')).status,
        200,
        `app-${i}.test /api (pinned to the Prefix /)`,
      );
    }
  });
});
