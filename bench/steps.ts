// Single steps of the pipeline, timed in isolation (no poller, no reconciler):
//
//   node_modules/.bin/node bench/steps.ts [--samples 25] [--files 1000] [--passes 15]
//     [--root DIR] [--json FILE]
//
// - watcher: write -> DirectorySource onChange, for a new file and for a rewrite of an existing
//   one; next to it, in the same run, a bare chokidar watcher with the awaitWriteFinish setting the
//   source used before (stability 50 ms, polls every 10 ms), write -> its event.
// - workers: workerPids() of a live nginx master; next to it, alternating, a full /proc scan
//   (scanWorkers() below, what workerPids did before, kept here as the baseline only).
// - apply: an Applier with N server files (real nginx -t, no master to signal, so no reload):
//   the first apply, then passes that each change one file.
//
// --root DIR loads src/ from another checkout of this repository (e.g. an older commit unpacked
// with `git archive COMMIT | tar -x -C DIR` and `node_modules` linked in), so the same steps can
// be run against the code before a change, back to back with the current code.
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import chokidar from 'chokidar';
import { machine, median, parseIntFlag, percentile, round, table } from './lib.ts';
import type { Applier as ApplierClass } from '../src/nginx/apply.ts';
import type { DirectorySource as DirectorySourceClass } from '../src/sources/directory.ts';
import type { workerPids as workerPidsFn } from '../src/nginx/process.ts';
import type { createMemoryLogger as createMemoryLoggerFn } from '../src/ops/log.ts';
import type { startNginx as startNginxFn } from '../src/dev/local-nginx.ts';

const { values: flags } = parseArgs({
  options: {
    samples: { type: 'string' },
    files: { type: 'string' },
    passes: { type: 'string' },
    root: { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});
const SAMPLES = parseIntFlag(flags.samples, '--samples', 25, 3);
const FILES = parseIntFlag(flags.files, '--files', 1000, 1);
const PASSES = parseIntFlag(flags.passes, '--passes', 15, 1);
const ROOT = path.resolve(flags.root ?? path.join(import.meta.dirname, '..'));

const { DirectorySource } = (await import(path.join(ROOT, 'src/sources/directory.ts'))) as {
  DirectorySource: typeof DirectorySourceClass;
};
const { workerPids } = (await import(path.join(ROOT, 'src/nginx/process.ts'))) as { workerPids: typeof workerPidsFn };
const { Applier } = (await import(path.join(ROOT, 'src/nginx/apply.ts'))) as { Applier: typeof ApplierClass };
const { createMemoryLogger } = (await import(path.join(ROOT, 'src/ops/log.ts'))) as {
  createMemoryLogger: typeof createMemoryLoggerFn;
};
// The nginx started for the workers step is the same whatever --root says.
const { startNginx, nginxBinary } = (await import('../src/dev/local-nginx.ts')) as {
  startNginx: typeof startNginxFn;
  nginxBinary: () => string;
};

const ms = (t0: number) => performance.now() - t0;
const stats = (xs: number[]) => ({
  n: xs.length,
  median: round(median(xs), 2),
  p90: round(percentile(xs, 90), 2),
  min: round(Math.min(...xs), 2),
});

const ingress = (name: string) =>
  `apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ${name}\nspec:\n  rules:\n  - host: ${name}.example\n`;

/** write -> onChange of a DirectorySource, for new files and for rewrites of one file. */
async function watcherStep(work: string): Promise<{ newFile: number[]; rewrite: number[] }> {
  const dir = path.join(work, 'watch');
  await mkdir(dir);
  let changes = 0;
  let at = 0;
  const source = new DirectorySource({ dir, logger: createMemoryLogger().logger });
  await source.start(() => {
    changes++;
    at = performance.now();
  });
  const out = { newFile: [] as number[], rewrite: [] as number[] };
  try {
    for (let i = 0; i < SAMPLES * 2; i++) {
      const kind = i % 2 === 0 ? 'newFile' : 'rewrite';
      const before = changes;
      const t0 = performance.now();
      await writeFile(path.join(dir, kind === 'newFile' ? `new-${i}.yaml` : 'same.yaml'), ingress(`h${i}`));
      while (changes === before && ms(t0) < 5000) await sleep(0.2);
      out[kind].push(at - t0);
      // Past every throttle window and trailing re-read of the previous sample.
      await sleep(200);
    }
  } finally {
    await source.stop();
  }
  return out;
}

/** The same writes seen by chokidar alone with the former awaitWriteFinish option. */
async function awaitWriteFinishStep(work: string): Promise<{ newFile: number[]; rewrite: number[] }> {
  const dir = path.join(work, 'awf');
  await mkdir(dir);
  const watcher = chokidar.watch(dir, {
    ignoreInitial: true,
    atomic: true,
    awaitWriteFinish: { stabilityThreshold: 50, pollInterval: 10 },
  });
  let events = 0;
  let at = 0;
  const seen = () => {
    events++;
    at = performance.now();
  };
  watcher.on('add', seen).on('change', seen);
  await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  const out = { newFile: [] as number[], rewrite: [] as number[] };
  try {
    for (let i = 0; i < SAMPLES * 2; i++) {
      const kind = i % 2 === 0 ? 'newFile' : 'rewrite';
      const before = events;
      const t0 = performance.now();
      await writeFile(path.join(dir, kind === 'newFile' ? `new-${i}.yaml` : 'same.yaml'), ingress(`h${i}`));
      while (events === before && ms(t0) < 5000) await sleep(0.2);
      out[kind].push(at - t0);
      await sleep(200);
    }
  } finally {
    await watcher.close();
  }
  return out;
}

/** The baseline: a master's live workers by a scan of every process in /proc (parent and title of each). */
async function scanWorkers(master: number): Promise<number[]> {
  const live: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'latin1').catch(() => '');
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== master) continue;
    const title = (await readFile(`/proc/${name}/cmdline`, 'latin1').catch(() => '')).replace(/\0/g, ' ');
    if (title.startsWith('nginx: worker process') && !title.includes('shutting down')) live.push(Number(name));
  }
  return live;
}

/** workerPids() against a full /proc scan, alternating, on one live nginx. */
async function workersStep(work: string): Promise<{ workerPids: number[]; scan: number[]; processes: number }> {
  const confDir = path.join(work, 'workers-conf.d');
  await mkdir(confDir);
  const nginx = await startNginx({ confDir });
  const out = { workerPids: [] as number[], scan: [] as number[], processes: 0 };
  try {
    const master = await nginx.masterPid();
    await sleep(200);
    for (let i = 0; i < SAMPLES * 4; i++) {
      let t0 = performance.now();
      const a = await workerPids(master);
      out.workerPids.push(ms(t0));
      t0 = performance.now();
      const b = await scanWorkers(master);
      out.scan.push(ms(t0));
      if (a.size !== b.length) throw new Error(`workerPids found ${a.size} workers, the scan ${b.length}`);
    }
    out.processes = (await readdir('/proc')).filter((n) => /^\d+$/.test(n)).length;
  } finally {
    await nginx.stop();
  }
  return out;
}

/** First apply of FILES server files, then PASSES passes changing one file each. */
async function applyStep(work: string): Promise<{ first: number; oneChanged: number[] }> {
  const confDir = path.join(work, 'apply-conf.d');
  const stateDir = path.join(work, 'apply-state');
  await mkdir(confDir);
  await mkdir(stateDir);
  const applier = new Applier({
    confDir,
    nginxBinary: nginxBinary(),
    pidFile: path.join(work, 'no-master.pid'),
    reloadTimeoutMs: 1000,
    logger: createMemoryLogger().logger,
    stateDir,
  });
  const server = (i: number, body: string) =>
    `server {\n    listen 127.0.0.1:18080;\n    server_name h${i}.example;\n    location / {\n        return 200 "${body}\\n";\n    }\n}\n`;
  const name = (i: number) => `ingress-sidecar-server-h${String(i).padStart(5, '0')}.example.conf`;
  const files = new Map<string, string>();
  for (let i = 0; i < FILES; i++) files.set(name(i), server(i, 'v0'));
  let t0 = performance.now();
  await applier.apply(new Map(files));
  const first = ms(t0);
  const oneChanged: number[] = [];
  for (let p = 1; p <= PASSES; p++) {
    const i = (p * 37) % FILES;
    files.set(name(i), server(i, `v${p}`));
    t0 = performance.now();
    await applier.apply(new Map(files));
    oneChanged.push(ms(t0));
  }
  return { first, oneChanged };
}

const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-steps-'));
try {
  const m = machine();
  const watcher = await watcherStep(work);
  const awf = await awaitWriteFinishStep(work);
  const workers = await workersStep(work);
  const apply = await applyStep(work);

  const rows: Array<Array<string | number>> = [];
  const row = (step: string, xs: number[]) => {
    const s = stats(xs);
    rows.push([step, s.n, s.median, s.p90, s.min]);
  };
  row('write → onChange, new file (DirectorySource)', watcher.newFile);
  row('write → event, new file (chokidar, awaitWriteFinish 50/10)', awf.newFile);
  row('write → onChange, rewrite (DirectorySource)', watcher.rewrite);
  row('write → event, rewrite (chokidar, awaitWriteFinish 50/10)', awf.rewrite);
  row(`workerPids() (${workers.processes} processes in /proc)`, workers.workerPids);
  row('full /proc scan (scanWorkers, the baseline)', workers.scan);
  row(`Applier.apply, ${FILES} files, one changed (nginx -t, no reload)`, apply.oneChanged);
  rows.push([`Applier.apply, first apply of ${FILES} files (nginx -t, no reload)`, 1, round(apply.first), '', '']);

  console.log(`## Steps in isolation (ms)\n`);
  console.log(`src: ${ROOT}; machine: ${m.nproc} CPUs, load ${m.load}, git ${m.git || '-'}, ${m.date}\n`);
  console.log(table(['step', 'n', 'median', 'p90', 'min'], rows));
  if (flags.json) {
    await writeFile(
      flags.json,
      JSON.stringify(
        { benchmark: 'steps', machine: m, root: ROOT, watcher, awaitWriteFinish: awf, workers, apply },
        null,
        2,
      ) + '\n',
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
