// Endpoint churn: a steady stream of endpoint changes (by default one every 100 ms for 20 s) and
// how many nginx reloads it costs. The reconciler coalesces changes (debounce) but never holds
// one longer than its ceiling (--max-delay-ms, 1 s by default), so a steady stream should cost
// about one reload per ceiling: at most duration / ceiling + 1.
//
//   node_modules/.bin/node bench/churn.ts [--runs 5] [--duration-s 20] [--interval-ms 100]
//     [--backends 4] [--debounce-ms 100] [--max-delay-ms 1000] [--json FILE]
//
// Each run starts a fresh stack (lib.ts: a real nginx, the sidecar in-process with the directory
// source) plus --backends echo backends on loopback (c0, c1, ...). One Ingress (churn.test) routes
// to Service `churn`, whose EndpointSlice lives alone in churn-endpoints.yaml. The bench rewrites
// that file every --interval-ms (on a fixed schedule, no drift): write k points the slice at
// backend k mod --backends (the last write at one more backend that no other write used), so
// every write changes the endpoint set. Meanwhile the poller thread
// asks churn.test every 20 ms which backend answers. After the last write the bench waits for the
// sidecar to go idle and nginx to retire its old workers, then checks that 20 requests in a row
// are answered by the last written backend.
//
// Reloads are counted three ways that must agree: the sidecar's stats.reloads, the SIGHUPs it
// sent (process.kill wrapped), and "signal 1 (SIGHUP) received" in nginx's error log.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startEcho, type EchoServer } from '../src/dev/echo.ts';
import { whoAnswers } from '../spec/helpers/nginx.ts';
import {
  countLoggedHups,
  hookKill,
  hups,
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
  type BenchStack,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    'duration-s': { type: 'string' },
    'interval-ms': { type: 'string' },
    backends: { type: 'string' },
    'debounce-ms': { type: 'string' },
    'max-delay-ms': { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});

const RUNS = parseIntFlag(flags.runs, '--runs', 5, 1);
const DURATION_MS = parseIntFlag(flags['duration-s'], '--duration-s', 20, 1) * 1000;
const INTERVAL_MS = parseIntFlag(flags['interval-ms'], '--interval-ms', 100, 1);
const BACKENDS = parseIntFlag(flags.backends, '--backends', 4, 2);
const DEBOUNCE_MS = parseIntFlag(flags['debounce-ms'], '--debounce-ms', 100);
const MAX_DELAY_MS = parseIntFlag(flags['max-delay-ms'], '--max-delay-ms', 1000);
const HOST = 'churn.test';
const RECORD_EVERY_MS = 20;
/** The target: a reload per ceiling, plus the last one. */
const BOUND = Math.floor(DURATION_MS / Math.max(1, MAX_DELAY_MS)) + 1;

const serviceYaml = `apiVersion: v1
kind: Service
metadata: {name: churn, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: churn, namespace: default}
spec:
  ingressClassName: nginx
  rules:
  - host: ${HOST}
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: churn, port: {name: http}}}}
`;

const sliceYaml = (port: number, generation: number) => `# generation ${generation}
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: churn-1
  namespace: default
  labels: {kubernetes.io/service-name: churn}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints: [{addresses: ["127.0.0.1"], conditions: {ready: true}}]
`;

interface Run {
  run: number;
  writes: number;
  /** source onChange calls during the churn */
  changes: number;
  syncs: number;
  reloads: number;
  sidecarHups: number;
  nginxLogged: number;
  /** ms between successive reloads (SIGHUPs) during the churn */
  reloadGaps: number[];
  /** last write -> the sidecar idle (its last reload verified) */
  lastWriteToIdle: number;
  /** last write -> the poller first saw the last backend answer, for good */
  lastWriteToRouted: number;
  finalBackend: string;
  expected: string;
  finalOk: boolean;
  /** answers the poller got during the churn, by backend or status */
  answers: Record<string, number>;
  requests: number;
  /** writes the bench made later than scheduled by more than one interval (a sign of a starved loop) */
  lateWrites: number;
}

async function oneRun(runIndex: number, poller: Poller): Promise<Run> {
  const stack: BenchStack = await startStack({ debounceMs: DEBOUNCE_MS, maxDelayMs: MAX_DELAY_MS, bare: false });
  const backends: EchoServer[] = [];
  try {
    // c0 .. c(BACKENDS-1) take turns; c(BACKENDS) is the last write's alone.
    for (let i = 0; i <= BACKENDS; i++) backends.push(await startEcho(`c${i}`));
    const sliceFile = path.join(stack.watchDir, 'churn-endpoints.yaml');
    await writeFile(sliceFile, sliceYaml(backends[0]!.port, 0));
    await writeFile(path.join(stack.watchDir, 'churn-service.yaml'), serviceYaml);
    // Routable on c0 first, and nginx quiet.
    const ready = Date.now() + 10_000;
    for (let i = 0; i < 1000 && Date.now() < ready; i++) {
      if ((await who(stack.port)) === 'c0') break;
      await sleep(20);
    }
    // The first right answer can come from the new worker while the old one still accepts (nginx
    // retires it ~100 ms later): ask again once the sidecar's reload is verified.
    await stack.sidecar.idle();
    const first = await who(stack.port);
    if (first !== 'c0') throw new Error(`churn.test did not route to c0 within 10 s (answers ${first})`);
    const master = await stack.nginx.masterPid();
    await waitQuietNginx(master, new Set());
    await sleep(300);

    const marks = {
      reloads: stack.sidecar.stats.reloads,
      syncs: stack.sidecar.stats.syncs,
      changes: stack.source.changes.length,
      hups: hups.length,
      logged: countLoggedHups(await stack.nginx.errorLog()),
    };
    const writes = Math.floor(DURATION_MS / INTERVAL_MS);
    const recording = poller.record(stack.port, HOST, RECORD_EVERY_MS, DURATION_MS + MAX_DELAY_MS + 2000);
    const t0 = now();
    let lateWrites = 0;
    let lastWriteAt = t0;
    for (let k = 1; k <= writes; k++) {
      const due = t0 + k * INTERVAL_MS;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      else if (-wait > INTERVAL_MS) lateWrites++;
      lastWriteAt = now();
      // The last write goes to a backend no earlier write used, so that when nginx starts
      // routing to it is unambiguous.
      const target = k === writes ? BACKENDS : k % BACKENDS;
      await writeFile(sliceFile, sliceYaml(backends[target]!.port, k));
    }
    const expected = `c${BACKENDS}`;
    // The last change is seen within ~5 ms, then waits at most the ceiling, then one pass.
    const idleBy = Date.now() + MAX_DELAY_MS + 15_000;
    await Promise.race([stack.sidecar.idle(), sleep(Math.max(0, idleBy - Date.now()))]);
    // The sidecar's re-reads of a changed file (60 and 110 ms later) find nothing new, but wait them out.
    await sleep(200);
    await stack.sidecar.idle();
    const idleAt = now();
    const masterNow = await stack.nginx.masterPid();
    // No old worker left draining (the live ones may be from the last reload: `before` is empty).
    await waitQuietNginx(masterNow, new Set());
    const rec = await recording;

    const finalAnswers: string[] = [];
    for (let i = 0; i < 20; i++) finalAnswers.push(await who(stack.port));
    const lastTransition = rec.transitions[rec.transitions.length - 1];
    const sent = hups.slice(marks.hups).filter((h) => h.by === 'sidecar' && h.pid === masterNow);
    const gaps = sent.slice(1).map((h, i) => h.at - sent[i]!.at);
    return {
      run: runIndex,
      writes,
      changes: stack.source.changes.length - marks.changes,
      syncs: stack.sidecar.stats.syncs - marks.syncs,
      reloads: stack.sidecar.stats.reloads - marks.reloads,
      sidecarHups: sent.length,
      nginxLogged: countLoggedHups(await stack.nginx.errorLog()) - marks.logged,
      reloadGaps: gaps,
      lastWriteToIdle: idleAt - lastWriteAt,
      lastWriteToRouted: lastTransition && lastTransition.answer === expected ? lastTransition.at - lastWriteAt : NaN,
      finalBackend: [...new Set(finalAnswers)].join(','),
      expected,
      finalOk: finalAnswers.every((a) => a === expected),
      answers: rec.answers,
      requests: rec.requests,
      lateWrites,
    };
  } finally {
    await stack.stop();
    await Promise.all(backends.map((b) => b.close()));
  }

  /** Which backend answers for churn.test, else the status. */
  function who(port: number): Promise<string> {
    return whoAnswers(port, HOST);
  }
}

async function main(): Promise<void> {
  installCleanup();
  hookKill();
  const info = machine();
  const poller = Poller.start();
  const runs: Run[] = [];
  try {
    for (let i = 0; i < RUNS; i++) {
      runs.push(await oneRun(i, poller));
      const r = runs[runs.length - 1]!;
      process.stderr.write(
        `run ${i + 1}/${RUNS}: ${r.reloads} reloads, final ${r.finalBackend} (expected ${r.expected})\n`,
      );
    }
  } finally {
    await poller.stop();
  }
  const med = (f: (r: Run) => number) => round(median(runs.map(f)));
  const list = (f: (r: Run) => number | string) => `[${runs.map(f).join(', ')}]`;
  const allGaps = runs.flatMap((r) => r.reloadGaps);
  const answers: Record<string, number> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.answers)) answers[k] = (answers[k] ?? 0) + v;
  const maxReloads = Math.max(...runs.map((r) => r.reloads));
  const out = [
    `## Endpoint churn: one EndpointSlice change every ${INTERVAL_MS} ms for ${DURATION_MS / 1000} s, ${RUNS} runs`,
    '',
    machineLine(info),
    `sidecar: debounce ${DEBOUNCE_MS} ms, max delay (ceiling) ${MAX_DELAY_MS} ms; bound = floor(${DURATION_MS / 1000} s / ${MAX_DELAY_MS / 1000} s) + 1 = ${BOUND} reloads`,
    '',
    table(
      ['', 'median', 'each run'],
      [
        ['writes', med((r) => r.writes), list((r) => r.writes)],
        ['changes reported by the source', med((r) => r.changes), list((r) => r.changes)],
        ['sync passes', med((r) => r.syncs), list((r) => r.syncs)],
        ['**reloads** (sidecar stats)', med((r) => r.reloads), list((r) => r.reloads)],
        ['SIGHUPs sent by the sidecar', med((r) => r.sidecarHups), list((r) => r.sidecarHups)],
        ['"signal 1 (SIGHUP) received" in nginx log', med((r) => r.nginxLogged), list((r) => r.nginxLogged)],
        [
          'ms between reloads (median of the run)',
          med((r) => median(r.reloadGaps)),
          list((r) => round(median(r.reloadGaps))),
        ],
        [
          'ms between reloads (min of the run)',
          med((r) => Math.min(...r.reloadGaps)),
          list((r) => round(Math.min(...r.reloadGaps))),
        ],
        [
          'last write → sidecar idle (last reload verified), ms',
          med((r) => r.lastWriteToIdle),
          list((r) => round(r.lastWriteToIdle)),
        ],
        [
          'last write → nginx answers from the last backend, ms',
          med((r) => r.lastWriteToRouted),
          list((r) => round(r.lastWriteToRouted)),
        ],
        ['late writes (> 1 interval behind schedule)', med((r) => r.lateWrites), list((r) => r.lateWrites)],
      ],
    ),
    '',
    `Target (reloads ≤ ${BOUND}): ${maxReloads <= BOUND ? `**met** in every run (max ${maxReloads})` : `**NOT met** (max ${maxReloads})`}.`,
    `Final routing (20 requests after the sidecar was idle and nginx quiet): ${runs.every((r) => r.finalOk) ? '**the last written backend in every run**' : '**WRONG in some run**'} ${list((r) => `${r.finalBackend}${r.finalOk ? '' : ` (expected ${r.expected})`}`)}.`,
    `Answers during the churn (poller every ${RECORD_EVERY_MS} ms, all runs): ${Object.entries(answers)
      .sort()
      .map(([k, v]) => `${k} ${v}`)
      .join(
        ', ',
      )}. Reload gaps over all runs: median ${round(median(allGaps))} ms, min ${round(Math.min(...allGaps))} ms.`,
    '',
  ].join('\n');
  console.log(out);
  if (flags.json) {
    await writeFile(
      flags.json,
      JSON.stringify(
        {
          benchmark: 'churn',
          machine: info,
          settings: { RUNS, DURATION_MS, INTERVAL_MS, BACKENDS, DEBOUNCE_MS, MAX_DELAY_MS, BOUND },
          runs,
        },
        null,
        2,
      ) + '\n',
    );
  }
}

await main();
