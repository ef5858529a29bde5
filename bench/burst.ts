// Burst coalescing: write many Ingress files into the watched directory as fast as possible and
// count how many times nginx is reloaded for them, and how long until every new host routes.
//
//   node_modules/.bin/node bench/burst.ts [--runs 5] [--sizes 100,1000] [--debounce-ms 100]
//     [--max-delay-ms 1000] [--concurrency 64] [--timeout-ms 120000] [--json FILE]
//
// Each run starts a fresh stack (real nginx, echo backend, in-process sidecar) so that runs do not
// inherit each other's files; sizes alternate in order from run to run. Reloads are counted three
// ways: the sidecar's stats.reloads, the SIGHUPs the sidecar sent (process.kill wrapped), and
// nginx's own "signal 1 (SIGHUP) received" lines in its error log (notice level).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance as perf } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import {
  countLoggedHups,
  hookKill,
  hups,
  ingressYaml,
  installCleanup,
  machine,
  machineLine,
  median,
  now,
  parseIntFlag,
  Poller,
  round,
  startStack,
  table,
  waitQuietNginx,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    sizes: { type: 'string' },
    'debounce-ms': { type: 'string' },
    'max-delay-ms': { type: 'string' },
    concurrency: { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});

const RUNS = parseIntFlag(flags.runs, '--runs', 5, 1);
const SIZES = (flags.sizes ?? '100,1000').split(',').map((s) => parseIntFlag(s.trim(), '--sizes', 0, 1));
const DEBOUNCE_MS = parseIntFlag(flags['debounce-ms'], '--debounce-ms', 100);
const MAX_DELAY_MS = parseIntFlag(flags['max-delay-ms'], '--max-delay-ms', 1000);
/** Writes in flight at once while writing the burst. */
const CONCURRENCY = parseIntFlag(flags.concurrency, '--concurrency', 64, 1);
const TIMEOUT_MS = parseIntFlag(flags['timeout-ms'], '--timeout-ms', 120_000, 1000);
const SENTINEL_POLL_MS = 5;

interface BurstRun {
  size: number;
  run: number;
  /** first write start -> last write done */
  writing: number;
  /** first write -> first correct answer of the first, middle and last written host */
  sentinels: number[];
  /** first write -> the last host to answer correctly did (all hosts swept) */
  allRoutable: number;
  sweepRequests: number;
  sweepRounds: number;
  reloads: number;
  sidecarHups: number;
  nginxLoggedHups: number;
  syncs: number;
  /** each SIGHUP, ms after the first write */
  hupTimes: number[];
  /** for each SIGHUP, ms since its pass started (translate, render, stage, nginx -t, swap) */
  prepareMs: number[];
  /** when the sweep of all hosts started (after the sentinels answered) */
  sweepStarted: number;
  /** the sidecar's logged pass durations ('nginx reloaded' ms) */
  passMs: number[];
  /** source change notifications, and when the first and last came (ms after the first write) */
  changes: number;
  /** time the main thread (sidecar, source, bench bookkeeping) was busy from the burst to the end of the run */
  mainThreadBusyMs: number;
  firstChange: number;
  lastChange: number;
}

async function burst(poller: Poller, size: number, run: number): Promise<BurstRun> {
  const stack = await startStack({ debounceMs: DEBOUNCE_MS, maxDelayMs: MAX_DELAY_MS, bare: false });
  try {
    const master = await stack.nginx.masterPid();
    const loggedBase = countLoggedHups(await stack.nginx.errorLog());
    const stats0 = { reloads: stack.sidecar.stats.reloads, syncs: stack.sidecar.stats.syncs };
    const marks = {
      hups: hups.length,
      logs: stack.logs.length,
      changes: stack.source.changes.length,
      snaps: stack.source.snapshots.length,
    };
    const hosts = Array.from({ length: size }, (_, i) => `h${i}.burst${size}-${run}.test`);
    const sentinelIdx = [...new Set([0, Math.floor(size / 2), size - 1])];
    const probes = sentinelIdx.map((i) => poller.probe(stack.port, hosts[i]!, SENTINEL_POLL_MS, TIMEOUT_MS));
    for (const p of probes)
      if ((await p.started) === 'ok') throw new Error('a burst host answered before its file was written');

    // Written from the poller's thread, like an outside writer: the sidecar's own work on the main
    // thread must not slow the writing down, nor the writing the sidecar.
    const files = hosts.map((host, i) => ({
      path: path.join(stack.watchDir, `burst-${i}.yaml`),
      content: ingressYaml(`burst-${i}`, host),
    }));
    const elu0 = perf.eventLoopUtilization();
    const written = await poller.write(files, CONCURRENCY);
    const t0 = written.startedAt;
    const writtenAt = written.doneAt;

    const sentinelResults = await Promise.all(probes.map((p) => p.done));
    for (const r of sentinelResults)
      if (!r.ok) throw new Error(`a sentinel host did not route within ${TIMEOUT_MS} ms (last: ${r.last})`);
    const sweepStartedAt = now();
    const sweep = await poller.sweep(stack.port, hosts, { concurrency: 16, retryMs: 20, timeoutMs: TIMEOUT_MS });
    if (!sweep.ok)
      throw new Error(
        `${sweep.missing.length} of ${size} hosts never answered (e.g. ${sweep.missing.slice(0, 3).join(', ')})`,
      );

    // Let anything still pending run (a late pass would be a reload of this burst too), bounded.
    for (let i = 0; i < 2; i++) {
      await stack.sidecar.idle();
      await sleep(DEBOUNCE_MS + MAX_DELAY_MS + 300);
    }
    await stack.sidecar.idle();
    await waitQuietNginx(master, new Set(), { timeoutMs: 5000 });
    const elu = perf.eventLoopUtilization(elu0);
    const sent = hups.slice(marks.hups).filter((h) => h.pid === master && h.by === 'sidecar');
    const changes = stack.source.changes.slice(marks.changes);
    return {
      size,
      run,
      writing: writtenAt - t0,
      sentinels: sentinelResults.map((r) => r.at - t0),
      allRoutable: sweep.at - t0,
      sweepRequests: sweep.requests,
      sweepRounds: sweep.rounds,
      reloads: stack.sidecar.stats.reloads - stats0.reloads,
      sidecarHups: sent.length,
      nginxLoggedHups: countLoggedHups(await stack.nginx.errorLog()) - loggedBase,
      syncs: stack.sidecar.stats.syncs - stats0.syncs,
      hupTimes: sent.map((h) => round(h.at - t0)),
      // For each SIGHUP: from the start of its pass (the snapshot read just before it).
      prepareMs: sent.map((h) =>
        round(h.at - Math.max(...stack.source.snapshots.slice(marks.snaps).filter((t) => t <= h.at))),
      ),
      sweepStarted: sweepStartedAt - t0,
      passMs: stack.logs
        .slice(marks.logs)
        .filter((l) => l.message === 'nginx reloaded' && typeof l['ms'] === 'number')
        .map((l) => l['ms'] as number),
      changes: changes.length,
      mainThreadBusyMs: elu.active,
      firstChange: (changes[0] ?? NaN) - t0,
      lastChange: (changes.at(-1) ?? NaN) - t0,
    };
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  installCleanup();
  hookKill();
  const info = machine();
  const poller = Poller.start();
  const runs: BurstRun[] = [];
  try {
    for (let r = 0; r < RUNS; r++) {
      const order = r % 2 === 0 ? SIZES : [...SIZES].reverse();
      for (const size of order) {
        const res = await burst(poller, size, r);
        runs.push(res);
        process.stderr.write(
          `run ${r + 1}/${RUNS} size ${size}: reloads ${res.reloads}, all routable ${round(res.allRoutable)} ms, SIGHUPs at ${res.hupTimes.join(', ')} ms\n`,
        );
      }
    }
  } finally {
    await poller.stop();
  }
  await report(info, runs);
}

async function report(info: Record<string, string>, runs: BurstRun[]): Promise<void> {
  const timeRows: Array<Array<string | number>> = [];
  const reloadRows: Array<Array<string | number>> = [];
  const json: Record<string, unknown>[] = [];
  for (const size of SIZES) {
    const rs = runs.filter((r) => r.size === size);
    const m = (f: (r: BurstRun) => number) => round(median(rs.map(f)));
    const reloads = rs.map((r) => r.reloads);
    const logged = rs.map((r) => r.nginxLoggedHups);
    const maxReloads = Math.max(...reloads);
    const target =
      size === 100
        ? maxReloads <= 2
          ? `met (max ${maxReloads})`
          : `NOT met (max ${maxReloads}, ${maxReloads - 2} over)`
        : 'n/a';
    timeRows.push([
      size,
      m((r) => r.writing),
      m((r) => r.firstChange),
      m((r) => r.lastChange),
      m((r) => Math.min(...r.sentinels)),
      m((r) => r.sentinels.at(-1)!),
      m((r) => r.sweepStarted),
      m((r) => r.allRoutable),
      m((r) => Math.max(...r.prepareMs)),
      m((r) => Math.max(...r.passMs)),
      m((r) => r.mainThreadBusyMs),
    ]);
    reloadRows.push([
      size,
      rs.length,
      `${m((r) => r.reloads)} [${reloads.join(', ')}]`,
      `${m((r) => r.sidecarHups)} [${rs.map((r) => r.sidecarHups).join(', ')}]`,
      `${m((r) => r.nginxLoggedHups)} [${logged.join(', ')}]`,
      `${m((r) => r.syncs)} [${rs.map((r) => r.syncs).join(', ')}]`,
      target,
    ]);
    json.push({
      size,
      runs: rs.length,
      medians: {
        writing: m((r) => r.writing),
        firstChange: m((r) => r.firstChange),
        lastChange: m((r) => r.lastChange),
        firstSentinelRoutable: m((r) => Math.min(...r.sentinels)),
        lastWrittenHostRoutable: m((r) => r.sentinels.at(-1)!),
        sweepStarted: m((r) => r.sweepStarted),
        allRoutable: m((r) => r.allRoutable),
        reloads: m((r) => r.reloads),
        sidecarHups: m((r) => r.sidecarHups),
        nginxLoggedHups: m((r) => r.nginxLoggedHups),
        syncs: m((r) => r.syncs),
        longestPrepareMs: m((r) => Math.max(...r.prepareMs)),
        longestPassMs: m((r) => Math.max(...r.passMs)),
        mainThreadBusyMs: m((r) => r.mainThreadBusyMs),
      },
      maxReloads,
      targetAtMost2Reloads: size === 100 ? maxReloads <= 2 : null,
      runsDetail: rs.map((r) =>
        Object.fromEntries(
          Object.entries(r).map(([k, v]) => [
            k,
            typeof v === 'number' ? round(v) : Array.isArray(v) ? v.map((x) => round(x)) : v,
          ]),
        ),
      ),
    });
  }
  const out = [
    `## Burst of manifest files (debounce ${DEBOUNCE_MS} ms, max delay ${MAX_DELAY_MS} ms), ${RUNS} runs per size`,
    '',
    machineLine(info),
    '',
    'Reloads per burst, median [each run]:',
    '',
    table(
      [
        'files',
        'runs',
        'reloads (stats.reloads)',
        'SIGHUPs sent by the sidecar',
        '"signal 1 (SIGHUP)" in nginx log',
        'sync passes',
        'target ≤ 2 reloads',
      ],
      reloadRows,
    ),
    '',
    'Medians, ms from the first write (the first three hosts polled every ' +
      SENTINEL_POLL_MS +
      ' ms: first, middle and last written):',
    '',
    table(
      [
        'files',
        'all written',
        'first change seen',
        'last change seen',
        'first polled host routes',
        'last-written host routes',
        'sweep of all hosts starts',
        'all hosts confirmed',
        'longest pass start→SIGHUP',
        'longest pass (logged)',
        'main thread busy',
      ],
      timeRows,
    ),
    '',
  ].join('\n');
  console.log(out);
  const doc = {
    benchmark: 'burst',
    machine: info,
    settings: { runs: RUNS, sizes: SIZES, debounceMs: DEBOUNCE_MS, maxDelayMs: MAX_DELAY_MS, concurrency: CONCURRENCY },
    sizes: json,
  };
  console.log('```json');
  console.log(JSON.stringify({ ...doc, sizes: json.map(({ runsDetail: _d, ...rest }) => rest) }, null, 2));
  console.log('```');
  if (flags.json) await writeFile(flags.json, JSON.stringify(doc, null, 2) + '\n');
}

await main();
