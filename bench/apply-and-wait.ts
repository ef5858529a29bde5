// Apply and wait, as a CI pipeline does: apply an Ingress, wait until its host answers from its
// backend, pause, apply the next. Nothing here waits out a limit of the sidecar: each step starts
// the pause after the previous one went live, whatever the reconciler's state.
//
//   node_modules/.bin/node bench/apply-and-wait.ts [--runs 5] [--steps 10] [--pause-ms 300]
//     [--nginx PATH[,PATH]] [--debounce-ms 100] [--max-delay-ms 1000] [--poll-ms 2]
//     [--timeout-ms 10000] [--json FILE]
//
// For each nginx (default: 1.30.4 from ../shared/nginx/build.sh, which builds it once, and
// Debian's /usr/sbin/nginx; whichever exists): one stack (a real nginx on a loopback port, an
// echo backend, the sidecar in-process watching a manifest directory, with that nginx's binary
// for `nginx -t` and its version for rendering). Each run is two sequences on that stack, in
// alternating order: the sidecar's (write an Ingress into the watched directory) and the bare
// one (write a server block into a directory nginx includes, `nginx -s reload`, as an operator
// would by hand). Each step: write, poll the host until the echo backend answers for it, pause.
// Medians are taken within the run, per nginx.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { startEcho } from '../src/dev/echo.ts';
import { startNginx, type RunningNginx } from '../src/dev/local-nginx.ts';
import { drainingGenerations } from '../src/nginx/draining.ts';
import { nginxVersion } from '../src/nginx/process.ts';
import { DirectorySource } from '../src/sources/directory.ts';
import { Sidecar } from '../src/sync/sidecar.ts';
import { freePort } from '../spec/helpers/nginx.ts';
import { backendYaml } from '../spec/helpers/sidecar.ts';
import {
  bareServerBlock,
  benchLogger,
  hookKill,
  hups,
  includeBareDir,
  ingressYaml,
  machine,
  machineLine,
  median,
  now,
  parseIntFlag,
  Poller,
  round,
  SERVICE,
  signed,
  startTrial,
  summary,
  table,
  TimedSource,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    steps: { type: 'string' },
    'pause-ms': { type: 'string' },
    nginx: { type: 'string' },
    'debounce-ms': { type: 'string' },
    'max-delay-ms': { type: 'string' },
    'poll-ms': { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});
const RUNS = parseIntFlag(flags.runs, '--runs', 5, 1);
const STEPS = parseIntFlag(flags.steps, '--steps', 10, 1);
const PAUSE_MS = parseIntFlag(flags['pause-ms'], '--pause-ms', 300);
const DEBOUNCE_MS = parseIntFlag(flags['debounce-ms'], '--debounce-ms', 100);
const MAX_DELAY_MS = parseIntFlag(flags['max-delay-ms'], '--max-delay-ms', 1000);
const POLL_MS = parseIntFlag(flags['poll-ms'], '--poll-ms', 2, 1);
const TIMEOUT_MS = parseIntFlag(flags['timeout-ms'], '--timeout-ms', 10_000, 100);
/** The target of issue #17 item 3: sidecar median within this of the bare median. */
const TARGET_OVER_BARE_MS = 150;

/** The nginx builds to run: --nginx, else the 1.30.4 build and Debian's, whichever exist. */
function nginxBuilds(): string[] {
  if (flags.nginx) return flags.nginx.split(',').filter(Boolean);
  const found: string[] = [];
  const build = path.join(import.meta.dirname, '../../shared/nginx/build.sh');
  if (existsSync(build)) {
    try {
      process.stderr.write(`nginx 1.30.4: ${build} (builds once, about a minute)\n`);
      const out = execFileSync('bash', [build], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      found.push(out.trim().split('\n').pop()!);
    } catch (err) {
      process.stderr.write(`nginx 1.30.4 not built, skipped: ${String(err)}\n`);
    }
  } else process.stderr.write(`nginx 1.30.4 skipped: no ${build}\n`);
  if (existsSync('/usr/sbin/nginx')) found.push('/usr/sbin/nginx');
  else process.stderr.write("Debian's nginx skipped: no /usr/sbin/nginx\n");
  return found;
}

interface Stack {
  binary: string;
  version: string;
  port: number;
  echoPort: number;
  watchDir: string;
  bareDir: string;
  nginx: RunningNginx;
  sidecar: Sidecar;
  source: TimedSource;
  stop(): Promise<void>;
}

async function startStack(binary: string): Promise<Stack> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-apply-and-wait-'));
  const watchDir = path.join(work, 'manifests');
  const confDir = path.join(work, 'conf.d');
  const bareDir = path.join(work, 'bare.d');
  await mkdir(watchDir);
  await mkdir(confDir);
  const stops: Array<() => Promise<unknown>> = [() => rm(work, { recursive: true, force: true })];
  const stop = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const version = (await nginxVersion(binary)) ?? 'unknown';
    const echo = await startEcho(SERVICE);
    stops.push(() => echo.close());
    await writeFile(path.join(watchDir, 'backends.yaml'), backendYaml(SERVICE, echo.port));
    await includeBareDir(confDir, bareDir);
    const port = await freePort();
    const nginx = await startNginx({ confDir, binary });
    stops.push(() => nginx.stop());
    const { logger } = benchLogger();
    const source = new TimedSource(new DirectorySource({ dir: watchDir, logger }));
    // Production's settings but for the ports and the timers given.
    const sidecar = new Sidecar({
      source,
      translate: { ingressClass: 'nginx', httpPort: port, ipv6: false, nginxVersion: version },
      confDir,
      nginxBinary: binary,
      nginxPidFile: nginx.pidFile,
      reloadTimeoutMs: 5000,
      debounceMs: DEBOUNCE_MS,
      maxDelayMs: MAX_DELAY_MS,
      logger,
    });
    stops.push(() => sidecar.stop());
    await sidecar.start();
    return { binary, version, port, echoPort: echo.port, watchDir, bareDir, nginx, sidecar, source, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface Step {
  kind: 'sidecar' | 'bare';
  run: number;
  step: number;
  /** write start -> first answer from the echo backend for the host */
  total: number;
  /** sidecar: write -> change seen; bare: write -> `nginx -s reload` returned */
  first: number;
  /** sidecar: change seen -> pass starts (debounce and pacing) */
  wait: number;
  /** sidecar: pass starts -> SIGHUP (translate, render, nginx -t, swap) */
  prepare: number;
  /** reloads from this step's write to the next one's (the sidecar's verification ends after the answer) */
  reloads: number;
  /** old worker generations still draining just before the write (what the draining bound sees) */
  draining: number;
}

async function sidecarStep(s: Stack, poller: Poller, run: number, step: number): Promise<Step> {
  const host = `s${run}-${step}.apply.test`;
  const probe = { port: s.port, host, pollMs: POLL_MS, timeoutMs: TIMEOUT_MS, tailMs: 0 };
  const { master, routable } = await startTrial(s.nginx, poller, probe, 'its Ingress was written');
  const marks = { changes: s.source.changes.length, snaps: s.source.snapshots.length, hups: hups.length };
  const draining = await drainingGenerations(master);
  const t0 = now();
  await writeFile(path.join(s.watchDir, `aw-${run}-${step}.yaml`), ingressYaml(`aw-${run}-${step}`, host));
  const r = await routable();
  const change = s.source.changes[marks.changes] ?? NaN;
  const snap = s.source.snapshots.slice(marks.snaps).find((t) => t >= change) ?? NaN;
  const hup = hups.slice(marks.hups).find((h) => h.by === 'sidecar' && h.pid === master)?.at ?? NaN;
  return {
    kind: 'sidecar',
    run,
    step,
    total: r.at - t0,
    first: change - t0,
    wait: snap - change,
    prepare: hup - snap,
    reloads: 0, // counted by sequence()
    draining,
  };
}

async function bareStep(s: Stack, poller: Poller, run: number, step: number): Promise<Step> {
  const host = `b${run}-${step}.apply.test`;
  const probe = { port: s.port, host, pollMs: POLL_MS, timeoutMs: TIMEOUT_MS, tailMs: 0 };
  const { master, routable } = await startTrial(s.nginx, poller, probe, 'its server block was written');
  const draining = await drainingGenerations(master);
  const t0 = now();
  await writeFile(path.join(s.bareDir, `bare-${run}-${step}.conf`), bareServerBlock(host, s.port, s.echoPort));
  const n = s.nginx;
  // What an operator runs: it parses the whole configuration (as the sidecar's nginx -t does),
  // then signals the master named in the pid file.
  await execa(s.binary, ['-p', n.prefix + '/', '-c', n.conf, '-e', n.errorLogPath, '-s', 'reload'], {
    stdin: 'ignore',
    timeout: 30_000,
  });
  const signalled = now();
  const r = await routable();
  const first = signalled - t0;
  return { kind: 'bare', run, step, total: r.at - t0, first, wait: NaN, prepare: NaN, reloads: 1, draining };
}

async function sequence(kind: Step['kind'], s: Stack, poller: Poller, run: number): Promise<Step[]> {
  const steps: Step[] = [];
  for (let step = 0; step < STEPS; step++) {
    const reloads0 = s.sidecar.stats.reloads;
    const t = kind === 'sidecar' ? await sidecarStep(s, poller, run, step) : await bareStep(s, poller, run, step);
    await sleep(PAUSE_MS);
    if (kind === 'sidecar') t.reloads = s.sidecar.stats.reloads - reloads0;
    steps.push(t);
  }
  return steps;
}

async function main(): Promise<void> {
  hookKill();
  const info = machine();
  const builds = nginxBuilds();
  if (builds.length === 0) throw new Error('no nginx to run: pass --nginx PATH');
  const poller = Poller.start();
  const results: Array<{ binary: string; version: string; steps: Step[]; loadAfter: string }> = [];
  let current: Stack | null = null;
  const onSignal = () => void (current?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const binary of builds) {
      current = await startStack(binary);
      const s = current;
      const steps: Step[] = [];
      // A warm-up step of each kind: the first reload of a fresh nginx and the first `nginx -s`.
      await sequence('sidecar', s, poller, -1).then(() => sequence('bare', s, poller, -1));
      for (let run = 0; run < RUNS; run++) {
        const order = run % 2 === 0 ? (['sidecar', 'bare'] as const) : (['bare', 'sidecar'] as const);
        for (const kind of order) steps.push(...(await sequence(kind, s, poller, run)));
        process.stderr.write(`nginx ${s.version}: run ${run + 1}/${RUNS}\n`);
      }
      results.push({ binary, version: s.version, steps, loadAfter: loadAverage() });
      await s.stop();
      current = null;
    }
  } finally {
    await current?.stop();
    await poller.stop();
  }
  report(info, results);
}

function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

function report(
  info: Record<string, string>,
  results: Array<{ binary: string; version: string; steps: Step[]; loadAfter: string }>,
): void {
  const out: string[] = [
    `## Apply and wait: ${RUNS} runs × ${STEPS} steps, ${PAUSE_MS} ms between a step going live and the next write (ms)`,
    '',
    machineLine(info),
    `sidecar: debounce ${DEBOUNCE_MS} ms, max delay ${MAX_DELAY_MS} ms; bare: server block + \`nginx -s reload\`; polled every ${POLL_MS} ms`,
    '',
  ];
  const json: Array<Record<string, unknown>> = [];
  const summaryRows: Array<Array<string | number>> = [];
  for (const res of results) {
    const sc = res.steps.filter((t) => t.kind === 'sidecar');
    const bare = res.steps.filter((t) => t.kind === 'bare');
    const s = summary(sc.map((t) => t.total));
    const b = summary(bare.map((t) => t.total));
    const over = s.median - b.median;
    const verdict =
      over <= TARGET_OVER_BARE_MS
        ? `met (${round(TARGET_OVER_BARE_MS - over)} ms to spare)`
        : `NOT met (${round(over - TARGET_OVER_BARE_MS)} ms over)`;
    summaryRows.push([`${res.version}: sidecar`, s.n, s.median, s.p90, s.max, signed(over), verdict]);
    summaryRows.push([`${res.version}: bare`, b.n, b.median, b.p90, b.max, '', '']);
    const runMedians = (ts: Step[]) =>
      Array.from({ length: RUNS }, (_, r) => round(median(ts.filter((t) => t.run === r).map((t) => t.total))));
    const perStep = Array.from({ length: STEPS }, (_, i) => {
      const at = (ts: Step[]) => round(median(ts.filter((t) => t.step === i).map((t) => t.total)));
      return [i + 1, at(sc), at(bare)];
    });
    const m = (f: (t: Step) => number, ts: Step[]) => round(median(ts.map(f)));
    out.push(
      `### nginx ${res.version} (${res.binary}); load average after: ${res.loadAfter}`,
      '',
      `Run medians, sidecar: ${runMedians(sc).join(', ')}; bare: ${runMedians(bare).join(', ')}.`,
      `Sidecar stages (medians): write → change seen ${m((t) => t.first, sc)}, change → pass starts ${m((t) => t.wait, sc)}, pass → SIGHUP ${m((t) => t.prepare, sc)}; reloads per step ${[...new Set(sc.map((t) => t.reloads))].join('/')}; old generations draining at a write: median ${m((t) => t.draining, sc)}, max ${Math.max(...sc.map((t) => t.draining))} (bare: max ${Math.max(...bare.map((t) => t.draining))}). Bare: write → \`nginx -s reload\` returned ${m((t) => t.first, bare)}.`,
      '',
      table(['step', 'sidecar median', 'bare median'], perStep),
      '',
    );
    json.push({
      nginx: res.version,
      binary: res.binary,
      loadAfter: res.loadAfter,
      sidecar: s,
      bare: b,
      medianOverBare: round(over),
      target: over <= TARGET_OVER_BARE_MS,
      steps: res.steps.map((t) => ({ ...t, total: round(t.total, 2) })),
    });
  }
  out.splice(
    5,
    0,
    table(
      ['row', 'n', 'median', 'p90', 'max', 'median − bare', `target: ≤ bare + ${TARGET_OVER_BARE_MS}`],
      summaryRows,
    ),
    '',
  );
  console.log(out.join('\n'));
  if (flags.json) {
    void writeFile(
      flags.json,
      JSON.stringify(
        { benchmark: 'apply-and-wait', machine: info, settings: { RUNS, STEPS, PAUSE_MS }, results: json },
        null,
        2,
      ) + '\n',
    );
  }
}

await main();
