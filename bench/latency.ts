// Apply-to-routable latency: how long after a manifest lands in the watched directory does nginx
// route its host, compared side by side with the bare cost of the same change made by hand
// (write a server block, SIGHUP the master) on the same nginx.
//
//   node_modules/.bin/node bench/latency.ts [--runs 21] [--warmup 1] [--debounce-ms 100]
//     [--max-delay-ms 1000] [--fast-debounce-ms 0] [--fast-max-delay-ms 0] [--no-fast]
//     [--poll-ms 2] [--tail-ms 300] [--timeout-ms 10000] [--json FILE]
//
// Two stacks run at once, each a real nginx + echo backend + in-process sidecar: one with the
// given (default) settings, one with the "fast" settings (debounce 0, ceiling 0) so the
// debounce's share is visible. Each round runs, for each stack, one sidecar trial and one bare
// trial against that stack's nginx, in alternating order. Medians and differences are taken
// within the run, never against figures from another run.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  afterCeiling,
  bareServerBlock,
  benchHup,
  countLoggedHups,
  hookKill,
  hups,
  ingressYaml,
  installCleanup,
  machine,
  machineLine,
  median,
  now,
  pairedDiffs,
  parseIntFlag,
  percentile,
  Poller,
  roundedTrials,
  round,
  signed,
  startStack,
  startTrial,
  summary,
  table,
  targetCells,
  waitQuietNginx,
  type BenchStack,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    warmup: { type: 'string' },
    'debounce-ms': { type: 'string' },
    'max-delay-ms': { type: 'string' },
    'fast-debounce-ms': { type: 'string' },
    'fast-max-delay-ms': { type: 'string' },
    'no-fast': { type: 'boolean', default: false },
    'poll-ms': { type: 'string' },
    'timeout-ms': { type: 'string' },
    'tail-ms': { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});

const RUNS = parseIntFlag(flags.runs, '--runs', 21, 1);
const WARMUP = parseIntFlag(flags.warmup, '--warmup', 1, 0);
const POLL_MS = parseIntFlag(flags['poll-ms'], '--poll-ms', 2, 1);
const TIMEOUT_MS = parseIntFlag(flags['timeout-ms'], '--timeout-ms', 10_000, 100);
/** How long to keep polling after the first correct answer, looking for answers from old workers. */
const TAIL_MS = parseIntFlag(flags['tail-ms'], '--tail-ms', 300, 0);
const CONFIGS = [
  {
    label: 'default',
    debounceMs: parseIntFlag(flags['debounce-ms'], '--debounce-ms', 100),
    maxDelayMs: parseIntFlag(flags['max-delay-ms'], '--max-delay-ms', 1000),
  },
  ...(flags['no-fast']
    ? []
    : [
        {
          label: 'fast',
          debounceMs: parseIntFlag(flags['fast-debounce-ms'], '--fast-debounce-ms', 0),
          maxDelayMs: parseIntFlag(flags['fast-max-delay-ms'], '--fast-max-delay-ms', 0),
        },
      ]),
];
/** Pause after a trial's nginx is quiet, so the next trial does not start inside its tail. */
const GAP_MS = 50;

interface SidecarTrial {
  kind: 'sidecar';
  round: number;
  host: string;
  /** write start -> first correct answer */
  total: number;
  /** write start -> source reports the change (chokidar, awaitWriteFinish, read + parse) */
  watch: number;
  /** change reported -> pass starts (debounce, timers) */
  wait: number;
  /** pass starts -> SIGHUP (translate, render, nginx -t, swap) */
  prepare: number;
  /** SIGHUP -> first correct answer */
  nginx: number;
  /** write start -> the sidecar's reload verified (new workers only) */
  verified: number;
  /** the sync pass's own duration as logged ('nginx reloaded' ms) */
  passMs: number;
  tries: number;
  /** wrong (old-worker) answers after the first correct one, and the last one's time from the write (0: none) */
  wrongAfter: number;
  lastWrong: number;
  reloads: number;
  syncs: number;
}

interface BareTrial {
  kind: 'bare';
  round: number;
  host: string;
  total: number;
  /** write start -> SIGHUP sent */
  write: number;
  nginx: number;
  /** write start -> the live workers are all new (what the sidecar's verification waits for) */
  quiet: number;
  tries: number;
  wrongAfter: number;
  lastWrong: number;
}

async function sidecarTrial(stack: BenchStack, poller: Poller, round: number, tag: string): Promise<SidecarTrial> {
  // Each trial an isolated change: after the ceiling of the stack's last pass.
  await afterCeiling(stack.source, stack.maxDelayMs);
  const host = `s${tag}-${round}.latency.test`;
  const probe = { port: stack.port, host, pollMs: POLL_MS, timeoutMs: TIMEOUT_MS, tailMs: TAIL_MS };
  const { master, before, routable } = await startTrial(stack.nginx, poller, probe, 'its manifest was written');
  const marks = {
    changes: stack.source.changes.length,
    snaps: stack.source.snapshots.length,
    hups: hups.length,
    logs: stack.logs.length,
  };
  const stats0 = { reloads: stack.sidecar.stats.reloads, syncs: stack.sidecar.stats.syncs };

  const t0 = now();
  await writeFile(
    path.join(stack.watchDir, `latency-${tag}-${round}.yaml`),
    ingressYaml(`latency-${tag}-${round}`, host),
  );
  const r = await routable();
  await stack.sidecar.idle();
  const verifiedAt = now();
  if (!(await waitQuietNginx(master, before))) throw new Error('nginx did not settle after the sidecar reload');

  const change = stack.source.changes[marks.changes] ?? NaN;
  const snap = stack.source.snapshots.slice(marks.snaps).find((t) => t >= change) ?? NaN;
  const hup = hups.slice(marks.hups).find((h) => h.by === 'sidecar' && h.pid === master)?.at ?? NaN;
  // The sidecar's own 'nginx reloaded' (info, with ms); the Applier logs one at debug without ms.
  const reloadLog = stack.logs
    .slice(marks.logs)
    .find((l) => l.message === 'nginx reloaded' && typeof l['ms'] === 'number');
  return {
    kind: 'sidecar',
    round,
    host,
    total: r.at - t0,
    watch: change - t0,
    wait: snap - change,
    prepare: hup - snap,
    nginx: r.at - hup,
    verified: (reloadLog?.at ?? verifiedAt) - t0,
    passMs: typeof reloadLog?.['ms'] === 'number' ? reloadLog['ms'] : NaN,
    tries: r.tries,
    wrongAfter: r.wrongAfter,
    lastWrong: r.lastWrongAt > 0 ? r.lastWrongAt - t0 : 0,
    reloads: stack.sidecar.stats.reloads - stats0.reloads,
    syncs: stack.sidecar.stats.syncs - stats0.syncs,
  };
}

async function bareTrial(stack: BenchStack, poller: Poller, round: number, tag: string): Promise<BareTrial> {
  const host = `b${tag}-${round}.latency.test`;
  const probe = { port: stack.port, host, pollMs: POLL_MS, timeoutMs: TIMEOUT_MS, tailMs: TAIL_MS };
  const { master, before, routable } = await startTrial(stack.nginx, poller, probe, 'its server block was written');

  const t0 = now();
  await writeFile(
    path.join(stack.bareDir!, `bare-${tag}-${round}.conf`),
    bareServerBlock(host, stack.port, stack.echo.port),
  );
  const hupAt = benchHup(master);
  // Watched while the poller runs, the way the sidecar verifies its reloads (every 15 ms, until
  // the live workers are all new), so the two "reload confirmed" columns compare.
  const quiet = waitQuietNginx(master, before, { pollMs: 15, drained: false }).then((ok) => (ok ? now() : NaN));
  const r = await routable();
  const quietAt = await quiet;
  if (Number.isNaN(quietAt)) throw new Error('nginx did not replace its workers after the bare reload');
  if (!(await waitQuietNginx(master, before))) throw new Error('nginx did not settle after the bare reload');
  return {
    kind: 'bare',
    round,
    host,
    total: r.at - t0,
    write: hupAt - t0,
    nginx: r.at - hupAt,
    quiet: quietAt - t0,
    tries: r.tries,
    wrongAfter: r.wrongAfter,
    lastWrong: r.lastWrongAt > 0 ? r.lastWrongAt - t0 : 0,
  };
}

async function main(): Promise<void> {
  installCleanup();
  hookKill();
  const info = machine();
  const stacks: BenchStack[] = [];
  const poller = Poller.start();
  const results = CONFIGS.map(() => ({ sidecar: [] as SidecarTrial[], bare: [] as BareTrial[] }));
  const loggedBase: number[] = [];
  try {
    for (const c of CONFIGS)
      stacks.push(await startStack({ debounceMs: c.debounceMs, maxDelayMs: c.maxDelayMs, bare: true }));
    for (const s of stacks) loggedBase.push(countLoggedHups(await s.nginx.errorLog()));
    const hupStart = hups.length;
    const rounds = WARMUP + RUNS;
    const deadline = Date.now() + rounds * CONFIGS.length * 2 * (TIMEOUT_MS + 6000);
    for (let round = 0; round < rounds && Date.now() < deadline; round++) {
      for (let ci = 0; ci < CONFIGS.length; ci++) {
        const idx = (round + ci) % CONFIGS.length; // rotate which stack goes first
        const stack = stacks[idx]!;
        const tag = CONFIGS[idx]!.label[0]!;
        const sidecarFirst = (round + idx) % 2 === 0;
        const order = sidecarFirst ? (['sidecar', 'bare'] as const) : (['bare', 'sidecar'] as const);
        for (const kind of order) {
          const t =
            kind === 'sidecar'
              ? await sidecarTrial(stack, poller, round, tag)
              : await bareTrial(stack, poller, round, tag);
          await new Promise((r) => setTimeout(r, GAP_MS));
          if (round < WARMUP) continue;
          if (t.kind === 'sidecar') results[idx]!.sidecar.push(t);
          else results[idx]!.bare.push(t);
        }
      }
      process.stderr.write(`round ${round + 1}/${rounds}${round < WARMUP ? ' (warm-up)' : ''}\n`);
    }

    // Cross-check: SIGHUPs we saw sent vs "signal 1 (SIGHUP) received" lines in each nginx's log.
    const hupCheck = [];
    for (let i = 0; i < stacks.length; i++) {
      const s = stacks[i]!;
      const master = await s.nginx.masterPid();
      const logged = countLoggedHups(await s.nginx.errorLog()) - loggedBase[i]!;
      const sent = hups.slice(hupStart).filter((h) => h.pid === master);
      hupCheck.push({
        config: CONFIGS[i]!.label,
        sidecarHups: sent.filter((h) => h.by === 'sidecar').length,
        benchHups: sent.filter((h) => h.by === 'bench').length,
        nginxLogged: logged,
      });
    }
    await report(info, results, hupCheck);
  } finally {
    for (const s of stacks) await s.stop().catch((err: unknown) => console.error('stop failed:', err));
    await poller.stop();
  }
}

async function report(
  info: Record<string, string>,
  results: Array<{ sidecar: SidecarTrial[]; bare: BareTrial[] }>,
  hupCheck: Array<Record<string, string | number>>,
): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  const diffRows: Array<Array<string | number>> = [];
  const breakdownRows: Array<Array<string | number>> = [];
  const flipRows: Array<Array<string | number>> = [];
  const json: Record<string, unknown>[] = [];
  CONFIGS.forEach((c, i) => {
    const { sidecar, bare } = results[i]!;
    const s = summary(sidecar.map((t) => t.total));
    const b = summary(bare.map((t) => t.total));
    const settings = `debounce ${c.debounceMs} ms, max delay ${c.maxDelayMs} ms`;
    rows.push([`sidecar (${settings})`, s.n, s.median, s.p90, s.p99, s.min]);
    rows.push([`bare: server block + SIGHUP, same nginx`, b.n, b.median, b.p90, b.p99, b.min]);
    // Trials of the same round were measured back to back: pair them.
    const paired = pairedDiffs(sidecar, bare);
    const overBare = s.median - b.median;
    const overBareDebounce = s.median - (b.median + c.debounceMs);
    diffRows.push([
      settings,
      `${round(s.median / b.median)}×`,
      signed(overBare),
      signed(round(median(paired))),
      signed(overBareDebounce),
      ...targetCells(overBareDebounce, s.p99),
    ]);
    const m = (f: (t: SidecarTrial) => number) => round(median(sidecar.map(f)));
    breakdownRows.push([
      settings,
      m((t) => t.watch),
      m((t) => t.wait),
      m((t) => t.prepare),
      m((t) => t.nginx),
      m((t) => t.total),
      m((t) => t.verified),
      m((t) => t.passMs),
    ]);
    breakdownRows.push([
      'bare',
      round(median(bare.map((t) => t.write))),
      '-',
      '-',
      round(median(bare.map((t) => t.nginx))),
      round(median(bare.map((t) => t.total))),
      round(median(bare.map((t) => t.quiet))),
      '-',
    ]);
    const flips = (label: string, ts: Array<SidecarTrial | BareTrial>) => {
      const hit = ts.filter((t) => t.wrongAfter > 0);
      flipRows.push([
        label,
        `${hit.length}/${ts.length}`,
        hit.length ? round(median(hit.map((t) => t.wrongAfter)), 0) : 0,
        hit.length ? round(median(hit.map((t) => t.lastWrong - t.total))) : '-',
        hit.length ? round(Math.max(...hit.map((t) => t.lastWrong - t.total))) : '-',
      ]);
    };
    flips(`sidecar (${settings})`, sidecar);
    flips(`bare (next to ${c.label})`, bare);
    json.push({
      config: c,
      sidecar: s,
      bare: b,
      ratioToBare: round(s.median / b.median, 2),
      sidecarMinusBare: round(overBare),
      pairedMedianDiff: round(median(paired)),
      sidecarMinusBarePlusDebounce: round(overBareDebounce),
      targetMedian: overBareDebounce <= 100,
      targetP99: s.p99 < 1000,
      reloadsPerTrial: [...new Set(sidecar.map((t) => t.reloads))],
      syncsPerTrial: [...new Set(sidecar.map((t) => t.syncs))],
      breakdownMedians: {
        watch: round(median(sidecar.map((t) => t.watch))),
        wait: round(median(sidecar.map((t) => t.wait))),
        prepare: round(median(sidecar.map((t) => t.prepare))),
        nginx: round(median(sidecar.map((t) => t.nginx))),
        verified: round(median(sidecar.map((t) => t.verified))),
        passMs: round(median(sidecar.map((t) => t.passMs))),
        bareWrite: round(median(bare.map((t) => t.write))),
        bareNginx: round(median(bare.map((t) => t.nginx))),
        bareQuiet: round(median(bare.map((t) => t.quiet))),
        sidecarNginxP90: round(
          percentile(
            sidecar.map((t) => t.nginx),
            90,
          ),
        ),
      },
      trials: roundedTrials([...sidecar, ...bare]),
    });
  });

  const n = results[0]?.sidecar.length ?? 0;
  const out = [
    `## Apply-to-routable latency (ms), ${n} trials per row`,
    '',
    machineLine(info),
    `p90/p99 are nearest-rank; with n = ${n} the p99 is the maximum.`,
    '',
    table(['row', 'n', 'median', 'p90', 'p99', 'min'], rows),
    '',
    table(
      [
        'sidecar settings',
        'sidecar ÷ bare (medians)',
        'median − bare',
        'median of paired diffs',
        'median − (bare + debounce)',
        'target: ≤ +100 ms',
        'target: p99 < 1 s',
      ],
      diffRows,
    ),
    '',
    'Medians of the stages (ms from the write, or stage lengths):',
    '',
    table(
      [
        'row',
        'write→change seen',
        'change→pass starts',
        'pass→SIGHUP',
        'SIGHUP→first answer',
        'total',
        'write→reload confirmed (live workers all new)',
        'pass (logged)',
      ],
      breakdownRows,
    ),
    '',
    `Old answers after the first right one (polled every ${POLL_MS} ms for ${TAIL_MS} ms more; old workers keep accepting until the master retires them):`,
    '',
    table(
      [
        'row',
        'trials with an old answer',
        'median old answers (those trials)',
        'median last old answer − first right (ms)',
        'max (ms)',
      ],
      flipRows,
    ),
    '',
    'SIGHUPs during the measured rounds (incl. warm-up): sent by the sidecar, sent by the bench, logged by nginx',
    '',
    table(
      ['stack', 'sidecar', 'bench', 'nginx log'],
      hupCheck.map((h) => [h['config']!, h['sidecarHups']!, h['benchHups']!, h['nginxLogged']!]),
    ),
    '',
  ].join('\n');
  console.log(out);
  const doc = {
    benchmark: 'latency',
    machine: info,
    settings: { runs: RUNS, warmup: WARMUP, pollMs: POLL_MS, tailMs: TAIL_MS, timeoutMs: TIMEOUT_MS },
    rows: json,
    hups: hupCheck,
  };
  console.log('```json');
  console.log(JSON.stringify({ ...doc, rows: json.map(({ trials: _t, ...rest }) => rest) }, null, 2));
  console.log('```');
  if (flags.json) {
    await writeFile(flags.json, JSON.stringify(doc, null, 2) + '\n');
  }
}

await main();
