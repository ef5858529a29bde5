// A pass over many Ingresses does not hold the event loop from start to end: the status server
// (health checks), the source's watch and every other callback get turns while it translates and
// renders, and what it puts in place is exactly what an uninterrupted pass would.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { V1Ingress } from '@kubernetes/client-node';
import { startEcho, type EchoServer } from '../../src/dev/echo.ts';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Metrics } from '../../src/ops/metrics.ts';
import { diffModels } from '../../src/sync/model-diff.ts';
import * as render from '../../src/nginx/render.ts';
import { Sidecar, type SidecarOptions } from '../../src/sync/sidecar.ts';
import type { Snapshot } from '../../src/sources/snapshot.ts';
import { DirectorySource } from '../../src/sources/directory.ts';
import { startStatusServer, type StatusServer } from '../../src/ops/http.ts';
import * as translation from '../../src/translate/index.ts';
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
    const docs = Array.from({ length: HOSTS }, (_, i) => ingressYaml(`app-${i}`, [{ host: `app-${i}.test`, paths: [['/', 'Prefix', 'alpha'], ['/api/', 'Exact', 'alpha']] }]));
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
    status = await startStatusServer('127.0.0.1:0', { healthy: () => s.healthy(), ready: () => s.ready(), model: () => s.model() }, s.metrics);
    statusPort = status.port;
    await s.start();
    for (let i = 0; i < 50 && !events.some((e) => e.startsWith('healthz')); i++) await new Promise((r) => setTimeout(r, 20));
    const answered = events.findIndex((e) => e.startsWith('healthz answered'));
    assert.ok(answered !== -1, `no answer to /healthz: ${events.join(', ')}`);
    assert.ok(answered < events.indexOf('rendered'), `/healthz waited for the whole translate and render: ${events.join(', ')}`);
    // What the pass put in place is whole: every host routes, the Exact /api/ too.
    for (const i of [0, HOSTS >> 1, HOSTS - 1]) {
      const r = await httpGet(port, `app-${i}.test`, '/api/');
      assert.equal(r.status, 200, `app-${i}.test /api/`);
      assert.equal((await httpGet(port, `app-${i}.test`, '/api')).status, 200, `app-${i}.test /api (pinned to the Prefix /)`);
    }
  });

  it('gives the same model, files and reload summary in steps as in one go', async () => {
    const backend = { service: { name: 'svc', port: { name: 'http' } } };
    const ingresses: V1Ingress[] = Array.from({ length: 40 }, (_, i) => ({
      metadata: { name: `app-${i}`, namespace: `ns-${i % 3}`, creationTimestamp: new Date(Date.UTC(2026, 0, 1) + i * 1000) },
      spec: {
        ingressClassName: 'nginx',
        rules: [
          { host: `app-${i % 25}.test`, http: { paths: [{ path: '/', pathType: 'Prefix', backend }, { path: `/p${i}/`, pathType: 'Exact', backend }, { path: `/p${i}`, pathType: 'Prefix', backend }] } },
          { http: { paths: [{ path: `/shared-${i}/x/`, pathType: 'Exact', backend }] } },
        ],
      },
    }));
    const services = [0, 1, 2].map((n) => ({ metadata: { name: 'svc', namespace: `ns-${n}` }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] } }));
    const endpointSlices = [0, 1, 2].map((n) => ({
      metadata: { name: 'svc-1', namespace: `ns-${n}`, labels: { 'kubernetes.io/service-name': 'svc' } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: [`10.0.0.${n + 1}`], conditions: { ready: true } }],
    }));
    const snap = { ingresses, ingressClasses: [], services, endpointSlices, endpoints: [], secrets: [] } as unknown as Snapshot;
    const options = { ingressClass: 'nginx', httpPort: 8080, ipv6: false };
    const api = translation as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const r = render as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    const diff = (await import('../../src/sync/model-diff.ts')) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    assert.equal(typeof api.translateAsync, 'function', 'translate in steps (translateAsync)');
    const whole = translation.translate(snap, options);
    // Counts turns of the event loop: an immediate that schedules itself runs once per turn.
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    try {
      const stepped = await api.translateAsync!(snap, options, 0);
      assert.deepEqual(stepped, whole);
      assert.deepEqual(await r.renderModelAsync!(stepped, 0), render.renderModel(whole));
      assert.deepEqual(await diff.diffModelsAsync!(null, stepped, 0), diffModels(null, whole));
    } finally {
      counting = false;
    }
    assert.ok(turns > 10, `other callbacks ran while the steps ran (${turns} turns)`);
  });
});
