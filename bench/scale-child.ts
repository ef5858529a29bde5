// The child process of bench/scale.ts: one size, in a fresh process, so that its peak RSS is its
// own. It loads the same modules as the real sidecar process (src/cli.ts's imports, listed below;
// cli.ts itself cannot be imported, it runs on import) and nothing the bench would add but
// bench/nginx-kit.ts (execa and node built-ins, both loaded by the sidecar anyway). See
// bench/scale.ts for what is measured.
//
//   node bench/scale-child.ts --size N --cert FILE --out FILE --samples S
//   node bench/scale-child.ts --baseline        # RSS with the sidecar's modules loaded, nothing else
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { collectGarbage } from '../src/sync/gc.ts';
// The sidecar's module graph in directory mode, as src/cli.ts imports it statically (cluster
// mode's modules, src/sources/kubernetes.ts and src/cluster/status.ts, are imported by cli.ts only
// when it runs without --watch-dir).
import '../src/config.ts';
import '../src/dev/echo.ts';
import '../src/ops/metrics.ts';
import '../src/nginx/process.ts';
import '../src/commands/render.ts';
import '../src/commands/run.ts';
import '../src/commands/demo.ts';
import '../src/sync/sidecar.ts';
import '../src/sources/directory.ts';
import '../src/ops/http.ts';
import '../src/sync/translate-options.ts';
import { Applier } from '../src/nginx/apply.ts';
import { CertStore, certDirFor, generateSelfSignedCertificate } from '../src/nginx/cert-store.ts';
import { nginxBinary } from '../src/dev/local-nginx.ts';
import { createMemoryLogger } from '../src/ops/log.ts';
import type { RoutingModel } from '../src/model.ts';
import { nginxVersion } from '../src/nginx/process.ts';
import { Renderer } from '../src/nginx/render.ts';
import { translate, type TranslateOptions } from '../src/translate/index.ts';
import { TLS_EVERY, ingress, snapshotOf } from './scale-objects.ts';
import {
  freePort,
  ms,
  nginxMemory,
  startOwnNginx,
  stopAllNginx,
  timedReload,
  timeNginxTest,
  waitDrained,
  type NginxMemory,
  type OwnNginx,
} from './nginx-kit.ts';

// One for the run, as the sidecar holds one: it reuses the text of servers that did not change.
const renderer = new Renderer();

const { values: flags } = parseArgs({
  options: {
    size: { type: 'string' },
    samples: { type: 'string' },
    cert: { type: 'string' },
    out: { type: 'string' },
    // What the sidecar does after each pass (src/sync/sidecar.ts): a full garbage collection.
    'gc-between-passes': { type: 'boolean', default: false },
    baseline: { type: 'boolean' },
  },
  strict: true,
});
const SAMPLES = Number(flags.samples ?? 5);

export interface ChildResult {
  size: number;
  files: number;
  configBytes: number;
  servers: number;
  upstreams: number;
  certificates: number;
  rejections: number;
  fullCold: { translate: number; render: number };
  full: Array<{ translate: number; render: number; total: number }>;
  firstApply: { total: number; toHup: number; hupToVerified: number };
  nginxTest: number[];
  reload: Array<{ firstNewWorker: number; verified: number }>;
  oneChange: Array<{
    translate: number;
    render: number;
    certWrite: number;
    applyToHup: number;
    toHup: number;
    hupToVerified: number;
    total: number;
  }>;
  noop: Array<{ translateRender: number; total: number }>;
  nginxMemoryAfterFirstApply: NginxMemory;
  nginxMemoryEnd: NginxMemory;
  sidecar: {
    rssBaselineKb: number;
    rssAfterSnapshotKb: number;
    maxRssKb: number;
    heapUsedEndKb: number;
    phases: PhaseMemory[];
  };
}

/** The process's memory after each step: where the peak RSS is reached. */
export interface PhaseMemory {
  phase: string;
  maxRssKb: number;
  rssKb: number;
  heapUsedKb: number;
  heapTotalKb: number;
  externalKb: number;
}

const phases: PhaseMemory[] = [];
function mark(phase: string): void {
  if (flags['gc-between-passes']) collectGarbage();
  const m = process.memoryUsage();
  phases.push({
    phase,
    maxRssKb: process.resourceUsage().maxRSS,
    rssKb: Math.round(m.rss / 1024),
    heapUsedKb: Math.round(m.heapUsed / 1024),
    heapTotalKb: Math.round(m.heapTotal / 1024),
    externalKb: Math.round((m.external + m.arrayBuffers) / 1024),
  });
}

// ---------------------------------------------------------------------------------------------
// The child: one size.

/** performance.now() of the last SIGHUP sent from this process. */
let lastHup = NaN;
function hookHup(): void {
  const real = process.kill.bind(process);
  process.kill = ((pid: number, signal?: string | number) => {
    if (signal === 'SIGHUP' || signal === 1) lastHup = performance.now();
    return real(pid, signal);
  }) as typeof process.kill;
}

async function child(n: number, certFile: string, out: string): Promise<void> {
  const rssBaselineKb = Math.round(process.memoryUsage().rss / 1024);
  const certText = JSON.parse(await readFile(certFile, 'utf8')) as { crt: string; key: string };
  let snap = snapshotOf(n, certText);
  const rssAfterSnapshotKb = Math.round(process.memoryUsage().rss / 1024);
  mark('objects built');
  hookHup();

  const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-scale-'));
  const confDir = path.join(work, 'conf.d');
  await mkdir(confDir);
  let nginx: OwnNginx | null = null;
  try {
    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const version = await nginxVersion(nginxBinary());
    const base: Omit<TranslateOptions, 'now'> = {
      ingressClass: 'nginx',
      httpPort,
      ipv6: false,
      accessLog: '/dev/stdout',
      ...(version ? { nginxVersion: version } : {}),
      tls: {
        httpsPort,
        httpsRedirectPort: httpsPort,
        certDir: certDirFor(confDir),
        defaultCertificate: await generateSelfSignedCertificate(),
      },
    };
    const opts = (): TranslateOptions => ({ ...base, now: new Date() });

    // 1. Full translate + render.
    const full: ChildResult['full'] = [];
    let fullCold = { translate: 0, render: 0 };
    let files = new Map<string, string>();
    let model: RoutingModel | null = null;
    for (let s = 0; s <= SAMPLES; s++) {
      const t0 = performance.now();
      model = translate(snap, opts());
      const t1 = performance.now();
      files = renderer.render(model).files;
      const t2 = performance.now();
      if (s === 0) fullCold = { translate: t1 - t0, render: t2 - t1 };
      else full.push({ translate: t1 - t0, render: t2 - t1, total: t2 - t0 });
      mark(`full translate + render ${s + 1}`);
    }
    if (!model) throw new Error('no model');
    const configBytes = [...files.values()].reduce((a, f) => a + Buffer.byteLength(f), 0);
    const rejections = model.rejections.length;
    if (model.servers.length !== n)
      throw new Error(
        `expected ${n} servers, got ${model.servers.length}: ${JSON.stringify(model.rejections.slice(0, 3))}`,
      );
    if (rejections > 0) throw new Error(`unexpected rejections: ${JSON.stringify(model.rejections.slice(0, 3))}`);

    // 2. nginx and the first apply.
    nginx = await startOwnNginx({ confDir });
    const logger = createMemoryLogger().logger;
    const applier = new Applier({
      confDir,
      nginxBinary: nginxBinary(),
      pidFile: nginx.pidFile,
      reloadTimeoutMs: 120_000,
      logger,
      stateDir: work,
    });
    const certStore = new CertStore({ dir: certDirFor(confDir) });
    let t0 = performance.now();
    model = translate(snap, opts());
    files = renderer.render(model).files;
    await certStore.write(model.certificates);
    lastHup = NaN;
    const first = await applier.apply(files);
    const firstEnd = performance.now();
    if (!first.reloaded) throw new Error('the first apply did not reload nginx');
    const firstApply = { total: firstEnd - t0, toHup: lastHup - t0, hupToVerified: firstEnd - lastHup };
    await waitDrained(nginx.master, 60_000);
    const nginxMemoryAfterFirstApply = await nginxMemory(nginx.master);
    mark('first apply');

    // 3. nginx -t.
    const nginxTest: number[] = [];
    for (let s = 0; s < SAMPLES; s++) nginxTest.push(await timeNginxTest(nginx));

    // 4. Reloads driven by the bench.
    const reload: ChildResult['reload'] = [];
    for (let s = 0; s < SAMPLES; s++) {
      await waitDrained(nginx.master, 60_000);
      reload.push(await timedReload(nginx.master, { timeoutMs: 120_000 }));
    }
    await waitDrained(nginx.master, 60_000);

    // 5. One changed Ingress per pass.
    const oneChange: ChildResult['oneChange'] = [];
    for (let s = 0; s < SAMPLES; s++) {
      let i = (1 + s * 7919) % n;
      if (i % TLS_EVERY === 0) i = (i + 1) % n;
      const ingresses = snap.ingresses.slice();
      ingresses[i] = ingress(i, `/api-v${s + 1}`);
      snap = { ...snap, ingresses };
      await waitDrained(nginx.master, 60_000);
      lastHup = NaN;
      t0 = performance.now();
      model = translate(snap, opts());
      const t1 = performance.now();
      files = renderer.render(model).files;
      const t2 = performance.now();
      await certStore.write(model.certificates);
      const t3 = performance.now();
      const r = await applier.apply(files);
      const t4 = performance.now();
      if (!r.reloaded || r.files?.length !== 1)
        throw new Error(`one change: expected one file and a reload, got ${JSON.stringify(r)}`);
      oneChange.push({
        translate: t1 - t0,
        render: t2 - t1,
        certWrite: t3 - t2,
        applyToHup: lastHup - t3,
        toHup: lastHup - t0,
        hupToVerified: t4 - lastHup,
        total: t4 - t0,
      });
      mark(`one change ${s + 1}`);
    }

    // 6. Nothing changed.
    const noop: ChildResult['noop'] = [];
    for (let s = 0; s < SAMPLES; s++) {
      t0 = performance.now();
      model = translate(snap, opts());
      files = renderer.render(model).files;
      const t1 = performance.now();
      await certStore.write(model.certificates);
      const r = await applier.apply(files);
      if (r.changed || r.reloaded) throw new Error('a pass with nothing changed changed something');
      noop.push({ translateRender: t1 - t0, total: ms(t0) });
      mark(`nothing changed ${s + 1}`);
    }

    await waitDrained(nginx.master, 60_000);
    const nginxMemoryEnd = await nginxMemory(nginx.master);
    const result: ChildResult = {
      size: n,
      files: files.size,
      configBytes,
      servers: model.servers.length,
      upstreams: model.upstreams.length,
      certificates: model.certificates.length,
      rejections,
      fullCold,
      full,
      firstApply,
      nginxTest,
      reload,
      oneChange,
      noop,
      nginxMemoryAfterFirstApply,
      nginxMemoryEnd,
      sidecar: {
        rssBaselineKb,
        rssAfterSnapshotKb,
        maxRssKb: process.resourceUsage().maxRSS,
        heapUsedEndKb: Math.round(process.memoryUsage().heapUsed / 1024),
        phases,
      },
    };
    await writeFile(out, JSON.stringify(result));
  } finally {
    await nginx?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

const onSignal = (signal: NodeJS.Signals) => {
  console.error(`\n${signal}: stopping nginx`);
  void stopAllNginx().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
if (flags.baseline) {
  process.stdout.write(
    JSON.stringify({ rssKb: Math.round(process.memoryUsage().rss / 1024), maxRssKb: process.resourceUsage().maxRSS }) +
      '\n',
  );
} else {
  const n = Number(flags.size);
  if (!Number.isInteger(n) || n < 1 || !flags.cert || !flags.out)
    throw new Error('usage: scale-child.ts --size N --cert FILE --out FILE [--samples S]');
  await child(n, flags.cert, flags.out);
}
