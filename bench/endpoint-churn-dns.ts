// Endpoint churn in both endpoint modes: a steady stream of endpoint changes (by default one every
// 100 ms for 20 s), what it costs in nginx reloads, and how soon after the last change nginx
// routes to the last set only. dns mode (the sidecar's DNS responder) against reload mode
// (endpoints in the files) on the same nginx build, side by side in one run.
//
//   node_modules/.bin/node bench/endpoint-churn-dns.ts [--runs 5] [--duration-s 20] [--interval-ms 100]
//     [--modes dns,reload] [--debounce-ms 100] [--max-delay-ms 1000] [--seed 1] [--json FILE]
//
// Each trial starts a fresh stack (bench/lib.ts startStack: nginx >= 1.27.3, 1.30.4 from
// ../shared/nginx/build.sh, 1 worker; the sidecar in-process with the directory source and
// --endpoints-mode dns or reload) and 6 echo backends (src/dev/echo.ts) on loopback addresses
// 127.0.2.1-6 and one port, as pods are. One Ingress (churn.test) routes to Service `churn`, whose
// EndpointSlice is alone in churn-endpoints.yaml. The bench rewrites that file every --interval-ms
// on a fixed schedule: write k holds two ready endpoints, c(k mod 4) and c(k+1 mod 4), so every
// write changes the set; the last holds c4 and c5, which no other write used. The first write
// comes 0.5-2.5 s (at random, from --seed) after the route first answered, which is just after
// nginx's first resolution: so the last one falls anywhere in nginx's 1-2 s re-resolving, not at
// the same moment of it in every trial. A worker thread
// asks churn.test every 20 ms which backend answers, from before the first write until 5 s after
// the last. Measured per trial: nginx reloads (SIGHUPs in its error log), the sidecar's passes and
// DNS answer updates, and the time from the last write to the first answer after which every
// answer came from c4 or c5 ("last set served"). Then 20 requests in a row must reach c4 or c5.
// Trials alternate the modes' order run by run. It runs in a network namespace of its own
// (bench/lib.ts isolateNetwork).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startEcho, type EchoServer } from '../src/dev/echo.ts';
import type { Metrics } from '../src/ops/metrics.ts';
import { whoAnswers } from '../spec/helpers/nginx.ts';
import { mulberry32 } from '../spec/helpers/prng.ts';
import { freePort } from './nginx-kit.ts';
import {
  countLoggedHups,
  dnsQueryCounts,
  installCleanup,
  isolateNetwork,
  loadAverage,
  machine,
  machineLine,
  median,
  now,
  parseIntFlag,
  Poller,
  reloadFreeNginx,
  round,
  startStack,
  table,
  type EndpointsFlag,
} from './lib.ts';
import type { NginxBuild } from '../spec/helpers/nginx-check.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    'duration-s': { type: 'string' },
    'interval-ms': { type: 'string' },
    modes: { type: 'string' },
    'debounce-ms': { type: 'string' },
    'max-delay-ms': { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});
const RUNS = parseIntFlag(flags.runs, '--runs', 5, 1);
const DURATION_MS = parseIntFlag(flags['duration-s'], '--duration-s', 20, 1) * 1000;
const INTERVAL_MS = parseIntFlag(flags['interval-ms'], '--interval-ms', 100, 1);
const DEBOUNCE_MS = parseIntFlag(flags['debounce-ms'], '--debounce-ms', 100);
const MAX_DELAY_MS = parseIntFlag(flags['max-delay-ms'], '--max-delay-ms', 1000);
const MODES = (flags.modes ?? 'dns,reload').split(',').map((m) => {
  if (m !== 'dns' && m !== 'reload') throw new Error(`--modes: dns or reload, not ${m}`);
  return m as Extract<EndpointsFlag, 'dns' | 'reload'>;
});
const random = mulberry32(parseIntFlag(flags.seed, '--seed', 1));
const HOST = 'churn.test';
const ROTATING = 4;
const FINAL = ['c4', 'c5'];
const RECORD_EVERY_MS = 20;
/** How long the poller goes on asking after the last write. */
const AFTER_MS = 5000;
/** The target: the last set served within this long of the last write. */
const TARGET_MS = 2000;

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

const ipOf = (i: number) => `127.0.2.${i + 1}`;
const sliceYaml = (members: number[], port: number, generation: number) => `# generation ${generation}
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: churn-1
  namespace: default
  labels: {kubernetes.io/service-name: churn}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints:
${members.map((i) => `- {addresses: ["${ipOf(i)}"], conditions: {ready: true}}`).join('\n')}
`;

interface Trial {
  mode: 'dns' | 'reload';
  run: number;
  load: string;
  writes: number;
  lateWrites: number;
  reloads: number;
  passes: number;
  /** ingress_sidecar_endpoint_updates_total: passes that changed DNS answers only */
  answerUpdates: number;
  /** DNS queries nginx made during the churn and the AFTER_MS after it, per second */
  dnsQps: number;
  /** last write -> the first answer from which on every answer came from the last set (NaN: never) */
  lastWriteToServed: number;
  /** last write -> the sidecar's pass that took it done (answers replaced; reload verified) */
  lastWriteToSidecar: number;
  /** answers during the churn, by backend or status */
  answers: Record<string, number>;
  requests: number;
  finalOk: boolean;
  final: string;
}

async function updates(metrics: Metrics): Promise<number> {
  const m = (await metrics.registry.getMetricsAsJSON()).find(
    (x) => x.name === 'ingress_sidecar_endpoint_updates_total',
  );
  return ((m?.values ?? []) as Array<{ value: number }>).reduce((n, v) => n + v.value, 0);
}

async function trial(mode: 'dns' | 'reload', run: number, build: NginxBuild, poller: Poller): Promise<Trial> {
  const load = loadAverage();
  const stack = await startStack({
    debounceMs: DEBOUNCE_MS,
    maxDelayMs: MAX_DELAY_MS,
    bare: false,
    build,
    endpointsMode: mode,
  });
  const backends: EchoServer[] = [];
  try {
    const port = await freePort();
    for (let i = 0; i < ROTATING + FINAL.length; i++) backends.push(await startEcho(`c${i}`, { host: ipOf(i), port }));
    const sliceFile = path.join(stack.watchDir, 'churn-endpoints.yaml');
    await writeFile(sliceFile, sliceYaml([0, 1], port, 0));
    await writeFile(path.join(stack.watchDir, 'churn-service.yaml'), serviceYaml);
    const ready = Date.now() + 15_000;
    let first = '';
    for (let i = 0; i < 1000 && Date.now() < ready; i++) {
      first = await whoAnswers(stack.port, HOST);
      if (first === 'c0' || first === 'c1') break;
      await sleep(20);
    }
    if (first !== 'c0' && first !== 'c1') throw new Error(`${HOST} did not route to c0/c1 within 15 s (${first})`);
    await stack.sidecar.idle();
    await sleep(500 + random() * 2000);

    const metrics = stack.sidecar.metrics;
    const marks = {
      reloads: countLoggedHups(await stack.nginx.errorLog()),
      passes: stack.sidecar.stats.syncs,
      updates: await updates(metrics),
      queries: Object.values(await dnsQueryCounts(metrics)).reduce((a, b) => a + b, 0),
    };
    const writes = Math.floor(DURATION_MS / INTERVAL_MS);
    const recording = poller.record(stack.port, HOST, RECORD_EVERY_MS, DURATION_MS + AFTER_MS);
    await sleep(RECORD_EVERY_MS);
    const t0 = now();
    let lateWrites = 0;
    let lastWriteAt = t0;
    for (let k = 1; k <= writes; k++) {
      const wait = t0 + k * INTERVAL_MS - now();
      if (wait > 0) await sleep(wait);
      else if (-wait > INTERVAL_MS) lateWrites++;
      const members = k === writes ? [4, 5] : [k % ROTATING, (k + 1) % ROTATING];
      lastWriteAt = now();
      await writeFile(sliceFile, sliceYaml(members, port, k));
    }
    const rec = await recording;
    const queries = Object.values(await dnsQueryCounts(metrics)).reduce((a, b) => a + b, 0) - marks.queries;
    await stack.sidecar.idle();
    const finalAnswers: string[] = [];
    for (let i = 0; i < 20; i++) finalAnswers.push(await whoAnswers(stack.port, HOST));

    // The last answer outside the final set; the transition after it is when the last set took over.
    const tr = rec.transitions;
    let lastOutside = -1;
    for (let i = tr.length - 1; i >= 0; i--)
      if (!FINAL.includes(tr[i]!.answer)) {
        lastOutside = i;
        break;
      }
    const servedAt = tr[lastOutside + 1]?.at;
    const doneMessage = mode === 'dns' ? 'endpoints changed; answered by DNS, no reload' : 'nginx reloaded';
    const done = stack.logs.find((l) => l.at > lastWriteAt && l.message === doneMessage);
    return {
      mode,
      run,
      load,
      writes,
      lateWrites,
      reloads: countLoggedHups(await stack.nginx.errorLog()) - marks.reloads,
      passes: stack.sidecar.stats.syncs - marks.passes,
      answerUpdates: (await updates(metrics)) - marks.updates,
      dnsQps: queries / ((DURATION_MS + AFTER_MS) / 1000),
      lastWriteToServed: servedAt !== undefined ? servedAt - lastWriteAt : NaN,
      lastWriteToSidecar: done ? done.at - lastWriteAt : NaN,
      answers: rec.answers,
      requests: rec.requests,
      finalOk: finalAnswers.every((a) => FINAL.includes(a)),
      final: [...new Set(finalAnswers)].sort().join(','),
    };
  } finally {
    await stack.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
}

async function main(): Promise<void> {
  await isolateNetwork();
  installCleanup();
  const build = reloadFreeNginx();
  if (!build) throw new Error('no nginx >= 1.27.3: bash ../shared/nginx/build.sh builds 1.30.4');
  const info = machine();
  const poller = Poller.start();
  const trials: Trial[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const mode of run % 2 === 0 ? MODES : [...MODES].reverse()) {
        const t = await trial(mode, run, build, poller);
        trials.push(t);
        process.stderr.write(
          `run ${run + 1}/${RUNS} ${mode}: ${t.reloads} reloads, last set served ${round(t.lastWriteToServed)} ms after the last write, final ${t.final} (load ${t.load})\n`,
        );
      }
    }
  } finally {
    await poller.stop();
  }
  const of = (mode: string) => trials.filter((t) => t.mode === mode);
  const cell = (ts: Trial[], f: (t: Trial) => number) =>
    `${round(median(ts.map(f)))} [${ts.map((t) => round(f(t))).join(', ')}]`;
  const others = (t: Trial) =>
    Object.entries(t.answers)
      .filter(([k]) => !/^c\d$/.test(k))
      .reduce((n, [, v]) => n + v, 0);
  const rows: Array<[string, (t: Trial) => number]> = [
    ['writes', (t) => t.writes],
    ['late writes (> 1 interval behind schedule)', (t) => t.lateWrites],
    ['**nginx reloads** (SIGHUPs in its error log)', (t) => t.reloads],
    ['sidecar passes', (t) => t.passes],
    ['of which DNS answer updates (no render, no reload)', (t) => t.answerUpdates],
    ['DNS queries/s from nginx', (t) => t.dnsQps],
    ['**last write → last set served**, ms', (t) => t.lastWriteToServed],
    [
      'of which: last write → the sidecar done (dns: answers replaced; reload: new workers verified), ms',
      (t) => t.lastWriteToSidecar,
    ],
    ['poller requests', (t) => t.requests],
    ['answers not from a backend (status or error)', others],
  ];
  const modes = MODES.map(of);
  const out = [
    `## Endpoint churn in both modes: an EndpointSlice change every ${INTERVAL_MS} ms for ${DURATION_MS / 1000} s, ${RUNS} runs per mode`,
    '',
    machineLine({ ...info, nginx: build.version }),
    `nginx ${build.version} (${build.binary}), 1 worker; sidecar debounce ${DEBOUNCE_MS} ms, max delay ${MAX_DELAY_MS} ms; poller every ${RECORD_EVERY_MS} ms`,
    `load average at the start of each trial: ${trials.map((t) => `${t.mode} ${t.load}`).join('; ')}`,
    '',
    table(
      ['', ...MODES.map((m) => `${m} mode: median [each run]`)],
      rows.map(([label, f]) => [label, ...modes.map((ts) => cell(ts, f))]),
    ),
    '',
    `Final routing (20 requests once the sidecar was idle): ${trials.map((t) => `${t.mode} ${t.final}${t.finalOk ? '' : ' (WRONG)'}`).join('; ')}.`,
  ];
  const dns = of('dns');
  const reload = of('reload');
  if (dns.length) {
    const maxReloads = Math.max(...dns.map((t) => t.reloads));
    const maxServed = Math.max(...dns.map((t) => t.lastWriteToServed));
    out.push(
      `Target (dns mode: 0 reloads, the last set served within ${TARGET_MS} ms): ${maxReloads === 0 && maxServed <= TARGET_MS && dns.every((t) => t.finalOk) ? '**met** in every run' : `**NOT met** (max ${maxReloads} reloads, last set served after up to ${round(maxServed)} ms)`}.`,
    );
  }
  if (dns.length && reload.length) {
    const r = (f: (t: Trial) => number) => {
      const d = median(dns.map(f));
      return d === 0 ? `${round(median(reload.map(f)))} vs 0` : `${round(median(reload.map(f)) / d, 2)}×`;
    };
    out.push(
      `reload ÷ dns (medians): reloads ${r((t) => t.reloads)}, last write → last set served ${r((t) => t.lastWriteToServed)}.`,
    );
  }
  console.log(out.join('\n'));
  if (flags.json)
    await writeFile(
      flags.json,
      JSON.stringify({ benchmark: 'endpoint-churn-dns', machine: info, build, trials }, null, 2) + '\n',
    );
}

await main();
