// Scale: the sidecar's work and nginx's costs at 100, 1,000 and 10,000 Ingresses.
//
//   node_modules/.bin/node bench/scale.ts [--sizes 100,1000,10000] [--samples 5] [--runs 3]
//     [--gc-between-passes] [--json FILE]
//
// --runs R runs every size R times (a fresh child each, sizes in alternating order) and pools
// the samples. Before the sizes, three tiny children measure where the sidecar's RSS goes before
// it holds any object: node alone, node + @kubernetes/client-node, and the sidecar's modules.
//
// Each Ingress has one host (`app-<i>.scale.test`) and two Prefix paths (`/` and `/api`) to its
// own Service (one port, an EndpointSlice with two ready endpoints). Every tenth Ingress has TLS
// for its host with its own kubernetes.io/tls Secret; all those Secrets hold the same real
// certificate (RSA 2048, `*.scale.test`, self-signed with openssl). TLS options are built as
// src/sync/translate-options.ts builds them for `run` (a generated self-signed default certificate,
// certDirFor(confDir)), with the default JSON access log (/dev/stdout) and the nginx version
// from `nginx -v`.
//
// Each size runs in a fresh child process (bench/scale-child.ts, which loads exactly the modules
// the real sidecar process loads), so that its peak RSS (process.resourceUsage().maxRSS) is its
// own. In the child, in this order:
//   1. full translate + render of the whole snapshot, `--samples` times (the first also shown
//      on its own: a cold start);
//   2. a real nginx (the bench's own main config, 1 worker) with an empty conf dir; the first
//      apply (CertStore.write + Applier.apply: nginx -t, swap, SIGHUP, verify);
//   3. `nginx -t` of the live configuration, `--samples` times;
//   4. reloads driven by the bench (SIGHUP -> first new worker, -> only new workers live),
//      `--samples` times, each after the previous generation has drained;
//   5. one changed Ingress, `--samples` times (each a different, non-TLS one: its `/api` path
//      renamed), through the sidecar's own pass in order: translate, render, CertStore.write,
//      Applier.apply. "Sidecar work" is the time from the start of the pass to the SIGHUP (taken
//      by wrapping process.kill); the Applier then waits for the new workers;
//   6. a pass with nothing changed (what an unrelated event costs), `--samples` times;
//   7. nginx memory (master + workers, from /proc/<pid>/smaps_rollup) after the first apply and at
//      the end, each time after old workers have drained.
// Loops are bounded; nginx is stopped in finally.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { machine, median, parseIntFlag, round, table } from './lib.ts';
import { ms, selfSignedCert } from './nginx-kit.ts';
import type { ChildResult } from './scale-child.ts';

const { values: flags } = parseArgs({
  options: {
    sizes: { type: 'string' },
    samples: { type: 'string' },
    runs: { type: 'string' },
    json: { type: 'string' },
    // Each child collects garbage after every pass, as src/sync/sidecar.ts does (collectGarbage()).
    'gc-between-passes': { type: 'boolean', default: false },
  },
  strict: true,
});
const SAMPLES = parseIntFlag(flags.samples, '--samples', 5, 1);
const RUNS = parseIntFlag(flags.runs, '--runs', 3, 1);
const SIZES = (flags.sizes ?? '100,1000,10000').split(',').map((s) => parseIntFlag(s, '--sizes', 0, 10));
/** The child for one size is killed after this long. */
const CHILD_TIMEOUT_MS = 30 * 60_000;
const CHILD = path.join(import.meta.dirname, 'scale-child.ts');

// ---------------------------------------------------------------------------------------------
// The parent: one child per size (and run), then the tables.

function runChild(n: number, certFile: string, out: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = [
      ...process.execArgv,
      CHILD,
      '--size',
      String(n),
      '--cert',
      certFile,
      '--out',
      out,
      '--samples',
      String(SAMPLES),
      ...(flags['gc-between-passes'] ? ['--gc-between-passes'] : []),
    ];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    const timer = setTimeout(() => proc.kill('SIGTERM'), CHILD_TIMEOUT_MS);
    const onSignal = () => proc.kill('SIGTERM');
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (code === 0) resolve();
      else reject(new Error(`size ${n}: child exited with ${code ?? signal}`));
    });
  });
}

/** maxRSS (KB) of a short-lived node process: what a process holds before doing any work. */
function rssOf(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, {
      cwd: path.join(import.meta.dirname, '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(timer);
      const j = /\{.*\}/.exec(out)?.[0];
      if (code !== 0 || !j) reject(new Error(`${args.join(' ')} exited ${code}: ${out}`));
      else resolve((JSON.parse(j) as { maxRssKb: number }).maxRssKb);
    });
  });
}

async function baselines(): Promise<{ node: number; clientNode: number; sidecarModules: number }> {
  const report = 'process.stdout.write(JSON.stringify({ maxRssKb: process.resourceUsage().maxRSS }))';
  const out = { node: [] as number[], clientNode: [] as number[], sidecarModules: [] as number[] };
  for (let i = 0; i < 3; i++) {
    out.node.push(await rssOf(['-e', report]));
    out.clientNode.push(
      await rssOf(['--input-type=module', '-e', `await import('@kubernetes/client-node'); ${report}`]),
    );
    out.sidecarModules.push(await rssOf([...process.execArgv, CHILD, '--baseline']));
  }
  return {
    node: mb(median(out.node)),
    clientNode: mb(median(out.clientNode)),
    sidecarModules: mb(median(out.sidecarModules)),
  };
}

const f1 = (x: number) => round(x, 1);
const med = (xs: number[]) => f1(median(xs));
const mb = (kb: number) => round(kb / 1024, 1);

function summarize(rs: ChildResult[]) {
  const r0 = rs[0]!;
  const pick = <T>(f: (r: ChildResult) => T[]) => rs.flatMap(f);
  return {
    files: r0.files,
    configMb: round(r0.configBytes / 1048576, 2),
    cold: f1(median(rs.map((r) => r.fullCold.translate + r.fullCold.render))),
    translate: med(pick((r) => r.full.map((x) => x.translate))),
    render: med(pick((r) => r.full.map((x) => x.render))),
    full: med(pick((r) => r.full.map((x) => x.total))),
    firstApply: med(rs.map((r) => r.firstApply.total)),
    firstApplyToHup: med(rs.map((r) => r.firstApply.toHup)),
    oneTranslate: med(pick((r) => r.oneChange.map((x) => x.translate))),
    oneRender: med(pick((r) => r.oneChange.map((x) => x.render))),
    oneTR: med(pick((r) => r.oneChange.map((x) => x.translate + x.render))),
    oneCert: med(pick((r) => r.oneChange.map((x) => x.certWrite))),
    oneApplyToHup: med(pick((r) => r.oneChange.map((x) => x.applyToHup))),
    oneToHup: med(pick((r) => r.oneChange.map((x) => x.toHup))),
    oneHupToVerified: med(pick((r) => r.oneChange.map((x) => x.hupToVerified))),
    oneTotal: med(pick((r) => r.oneChange.map((x) => x.total))),
    noopTR: med(pick((r) => r.noop.map((x) => x.translateRender))),
    noop: med(pick((r) => r.noop.map((x) => x.total))),
    nginxT: med(pick((r) => r.nginxTest)),
    reloadFirst: med(pick((r) => r.reload.map((x) => x.firstNewWorker))),
    reloadVerified: med(pick((r) => r.reload.map((x) => x.verified))),
    maxRss: mb(median(rs.map((r) => r.sidecar.maxRssKb))),
    rssBase: mb(median(rs.map((r) => r.sidecar.rssBaselineKb))),
    rssSnap: mb(median(rs.map((r) => r.sidecar.rssAfterSnapshotKb))),
    nginxRss: mb(median(rs.map((r) => r.nginxMemoryEnd.rssKb))),
    nginxPss: mb(median(rs.map((r) => r.nginxMemoryEnd.pssKb))),
    nginxMasterRss: mb(median(rs.map((r) => r.nginxMemoryEnd.masterRssKb))),
    nginxFirstRss: mb(median(rs.map((r) => r.nginxMemoryAfterFirstApply.rssKb))),
    nginxFirstPss: mb(median(rs.map((r) => r.nginxMemoryAfterFirstApply.pssKb))),
    nginxFirstMasterRss: mb(median(rs.map((r) => r.nginxMemoryAfterFirstApply.masterRssKb))),
    nginxProcs: r0.nginxMemoryEnd.processes,
    samples: rs.length * SAMPLES,
  };
}
type Summary = ReturnType<typeof summarize>;

async function parent(): Promise<void> {
  const m = machine();
  const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-scale-parent-'));
  try {
    const certFile = path.join(work, 'cert.json');
    await writeFile(certFile, JSON.stringify(await selfSignedCert(['*.scale.test'])), { mode: 0o600 });
    const base = await baselines();
    const results = new Map<number, ChildResult[]>();
    for (let r = 0; r < RUNS; r++) {
      for (const n of r % 2 === 0 ? SIZES : [...SIZES].reverse()) {
        const out = path.join(work, `result-${n}-${r}.json`);
        const t0 = performance.now();
        await runChild(n, certFile, out);
        console.error(`size ${n} run ${r + 1}/${RUNS}: ${round(ms(t0) / 1000, 1)} s`);
        const list = results.get(n) ?? [];
        list.push(JSON.parse(await readFile(out, 'utf8')) as ChildResult);
        results.set(n, list);
      }
    }

    const all = (n: number) => results.get(n) ?? [];
    const rows: Array<Array<string | number>> = [];
    const growth: Array<Array<string | number>> = [];
    const summaries = new Map<number, Summary>();
    for (const n of SIZES) {
      const s = summarize(all(n));
      summaries.set(n, s);
      rows.push([
        n.toLocaleString('en'),
        s.files,
        s.configMb,
        s.full,
        `${s.translate} + ${s.render}`,
        s.cold,
        s.oneToHup,
        s.oneTR,
        s.noop,
        s.nginxT,
        `${s.reloadFirst} / ${s.reloadVerified}`,
        s.maxRss,
        `${s.nginxFirstRss} / ${s.nginxFirstPss}`,
        s.firstApply,
      ]);
    }
    for (let i = 1; i < SIZES.length; i++) {
      const a = summaries.get(SIZES[i - 1]!)!;
      const b = summaries.get(SIZES[i]!)!;
      const x = (k: keyof Summary) => `${round(b[k] / a[k], 1)}×`;
      growth.push([
        `${SIZES[i - 1]!.toLocaleString('en')} → ${SIZES[i]!.toLocaleString('en')} (${round(SIZES[i]! / SIZES[i - 1]!, 1)}×)`,
        x('full'),
        x('oneToHup'),
        x('oneTR'),
        x('nginxT'),
        x('reloadVerified'),
        x('maxRss'),
        x('nginxFirstRss'),
        x('nginxFirstPss'),
      ]);
    }
    const detail: Array<Array<string | number>> = SIZES.map((n) => {
      const s = summaries.get(n)!;
      return [
        n.toLocaleString('en'),
        s.oneTranslate,
        s.oneRender,
        s.oneCert,
        s.oneApplyToHup,
        s.oneToHup,
        s.oneHupToVerified,
        s.oneTotal,
        s.noopTR,
        s.noop,
      ];
    });
    const mem: Array<Array<string | number>> = SIZES.map((n) => {
      const s = summaries.get(n)!;
      return [
        n.toLocaleString('en'),
        s.rssBase,
        s.rssSnap,
        s.maxRss,
        s.nginxProcs,
        `${s.nginxFirstMasterRss} / ${s.nginxFirstRss} / ${s.nginxFirstPss}`,
        `${s.nginxMasterRss} / ${s.nginxRss} / ${s.nginxPss}`,
        s.firstApply,
        s.firstApplyToHup,
      ];
    });

    console.log(`## Scale (medians; ms unless stated)\n`);
    console.log(
      `machine: ${m.nproc} CPUs (${m.cpu}), load at start ${m.load}, node ${m.node}, nginx ${m.nginx}, git ${m.git || '-'}, ${m.date}`,
    );
    console.log(`runs per size: ${RUNS} (fresh child each), samples per run: ${SAMPLES}\n`);
    console.log(
      table(
        [
          'Ingresses',
          'files',
          'config MB',
          'full translate+render',
          'translate + render',
          'first (cold)',
          'one change: sidecar work to SIGHUP',
          'one change: translate+render',
          'pass, nothing changed',
          'nginx -t',
          'reload: SIGHUP → first new worker / only new workers',
          'sidecar peak RSS MB',
          'nginx RSS / PSS sum MB (after the first apply)',
          'first apply (incl. reload)',
        ],
        rows,
      ),
    );
    console.log('\nGrowth between sizes (ratio of medians):\n');
    console.log(
      table(
        [
          'Ingresses',
          'full render',
          'one change to SIGHUP',
          'one change translate+render',
          'nginx -t',
          'reload',
          'sidecar peak RSS',
          'nginx RSS',
          'nginx PSS',
        ],
        growth,
      ),
    );
    console.log('\nOne changed Ingress, stage by stage:\n');
    console.log(
      table(
        [
          'Ingresses',
          'translate',
          'render',
          'CertStore.write',
          'Applier.apply to SIGHUP',
          'to SIGHUP (sum)',
          'SIGHUP → verified',
          'whole pass',
          'nothing changed: translate+render',
          'nothing changed: whole pass',
        ],
        detail,
      ),
    );
    console.log('\nMemory (MB) and the first apply:\n');
    console.log(
      `Before any object (maxRSS of a process that only loads modules, median of 3): node alone ${base.node} MB; ` +
        `node + @kubernetes/client-node ${base.clientNode} MB; the sidecar's modules (src/cli.ts's imports, TypeScript stripped) ${base.sidecarModules} MB.\n`,
    );
    console.log(
      table(
        [
          'Ingresses',
          'sidecar RSS at start',
          'RSS with the objects built',
          'sidecar peak RSS',
          'nginx processes',
          'nginx after the first apply: master RSS / RSS sum / PSS sum',
          `nginx at the end (${1 + 2 * SAMPLES} reloads): master RSS / RSS sum / PSS sum`,
          'first apply (ms)',
          'first apply to SIGHUP (ms)',
        ],
        mem,
      ),
    );
    const at = summaries.get(10000);
    if (at) {
      const verdict = (v: number, target: number, unit: string) =>
        v <= target
          ? `met (${v} ${unit}, ${f1(target - v)} ${unit} to spare)`
          : `NOT met (${v} ${unit}, ${f1(v - target)} ${unit} over, ${round(v / target, 1)}× the target)`;
      console.log('\nTargets at 10,000 Ingresses:\n');
      console.log(`- full render within 1 s: ${verdict(at.full, 1000, 'ms')}`);
      console.log(`- one change within 50 ms of sidecar work (to the SIGHUP): ${verdict(at.oneToHup, 50, 'ms')}`);
      console.log(`- peak RSS under 150 MB: ${verdict(at.maxRss, 150, 'MB')}`);
    }
    if (flags.json)
      await writeFile(
        flags.json,
        JSON.stringify(
          {
            benchmark: 'scale',
            machine: m,
            samples: SAMPLES,
            runs: RUNS,
            baselinesMb: base,
            results: Object.fromEntries(results),
          },
          null,
          2,
        ) + '\n',
      );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await parent();
