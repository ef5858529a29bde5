// A rolling update under load: wrk keeps 64 keepalive connections busy on one host while the
// Service's endpoints are replaced one at a time, in dns mode (the sidecar's DNS responder, no
// reload) and in reload mode (endpoints in the files), on the same nginx build, side by side.
//
//   node_modules/.bin/node bench/rolling-update.ts [--runs 5] [--steps 20] [--replicas 3]
//     [--grace-s 3] [--connections 64] [--threads 2] [--modes dns,reload] [--seed 1] [--json FILE]
//
// On loopback, for each trial (a fresh stack per trial; trials alternate the modes' order run by run):
// - backends: one tiny nginx per backend (bench/nginx-kit.ts startTinyBackend: `return 200`, its
//   own stub_status counting requests), each on its own loopback address (127.0.1.K) and one
//   shared port, as pods are: one IP each, the same container port;
// - the proxy nginx (nginx >= 1.27.3: 1.30.4 from ../shared/nginx/build.sh), 1 worker, including
//   the conf dir; the sidecar in-process (directory source, production's debounce 100 ms and max
//   delay 1000 ms, the default JSON access log to /dev/stdout, which is /dev/null here),
//   --endpoints-mode dns or reload (bench/lib.ts benchEndpoints: as src/cli.ts wires the responder);
// - Ingress roll.test -> Service roll, its one EndpointSlice with --replicas ready endpoints.
//
// wrk `-t2 -c64` on http://roll.test/ for the whole trial, with bench/nginx-kit.ts's Lua script
// counting every response outside 2xx and wrk's socket errors. After 2 s, --steps times: wait
// 0-2 s (at random, from --seed: a new pod is ready at any moment of nginx's 1-2 s re-resolving,
// not just after it took the previous answer); start a new backend; rewrite the slice with it
// added (ready); wait until its stub_status shows traffic through nginx; rewrite the slice
// without the oldest; that backend keeps running --grace-s after the write that removed it (a
// terminating pod), its requests counted meanwhile, then it is stopped (SIGTERM: nginx's fast
// shutdown). wrk stops 1 s after the last backend was stopped.
// Reloads: "signal 1 (SIGHUP) received" in the proxy nginx's error log during the trial.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { DirectorySource } from '../src/sources/directory.ts';
import type { Sidecar } from '../src/sync/sidecar.ts';
import { httpGet } from '../spec/helpers/nginx.ts';
import { mulberry32 } from '../spec/helpers/prng.ts';
import { ingressYaml } from '../spec/helpers/sidecar.ts';
import {
  benchEndpoints,
  benchLogger,
  benchSidecar,
  countLoggedHups,
  isolateNetwork,
  loadAverage,
  machine,
  machineLine,
  median,
  now,
  parseIntFlag,
  reloadFreeNginx,
  round,
  table,
  type EndpointsFlag,
} from './lib.ts';
import {
  freePort,
  runWrk,
  socketErrors,
  startOwnNginx,
  startTinyBackend,
  stopAllNginx,
  wrkAvailable,
  type TinyBackend,
  type WrkResult,
} from './nginx-kit.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    steps: { type: 'string' },
    replicas: { type: 'string' },
    'grace-s': { type: 'string' },
    connections: { type: 'string' },
    threads: { type: 'string' },
    modes: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});
const RUNS = parseIntFlag(flags.runs, '--runs', 5, 1);
const STEPS = parseIntFlag(flags.steps, '--steps', 20, 1);
const REPLICAS = parseIntFlag(flags.replicas, '--replicas', 3, 1);
const GRACE_MS = parseIntFlag(flags['grace-s'], '--grace-s', 3, 0) * 1000;
const CONNECTIONS = parseIntFlag(flags.connections, '--connections', 64, 1);
const THREADS = parseIntFlag(flags.threads, '--threads', 2, 1);
const MODES = (flags.modes ?? 'dns,reload').split(',').map((m) => {
  if (m !== 'dns' && m !== 'reload') throw new Error(`--modes: dns or reload, not ${m}`);
  return m as Extract<EndpointsFlag, 'dns' | 'reload'>;
});
const random = mulberry32(parseIntFlag(flags.seed, '--seed', 1));
/** Each step starts this long, at most, after the previous one (at random). */
const PHASE_MS = 2000;
const HOST = 'roll.test';
/** A new backend must take traffic within this long of the write that added it. */
const TRAFFIC_WAIT_MS = 30_000;
const STUB_POLL_MS = 20;
const RETIRE_POLL_MS = 50;

const serviceYaml = `apiVersion: v1
kind: Service
metadata: {name: roll, namespace: default}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
`;

function sliceYaml(backends: TinyBackend[], port: number): string {
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: roll-1
  namespace: default
  labels: {kubernetes.io/service-name: roll}
addressType: IPv4
ports: [{name: http, port: ${port}}]
endpoints:
${backends.map((b) => `- {addresses: ["${b.ip}"], conditions: {ready: true}}`).join('\n')}
`;
}

/** What a backend served in its life: connections nginx opened to it, and requests. */
interface Served {
  connections: number;
  requests: number;
}

interface Retired extends Served {
  name: string;
  /** requests it served after the write that removed it (stub_status reads excluded) */
  servedAfterRemoval: number;
  /** ms from that write to the last poll that saw a request served; null: none after it */
  lastServedMs: number | null;
}

interface Trial {
  mode: 'dns' | 'reload';
  run: number;
  load: string;
  steps: number;
  wrk: Omit<WrkResult, 'raw'>;
  failed: number;
  reloads: number;
  sidecarReloads: number;
  /** ms from the write that added a backend to its first request through nginx, per step */
  addToTraffic: number[];
  /**
   * ms from that write to the sidecar having done its part, per step: new DNS answers in place
   * (dns: its log's "answered by DNS"), or nginx reloaded and its new workers verified (reload)
   */
  addToSidecarDone: number[];
  retired: Retired[];
  /** every backend's life: the retired ones and those still in the set at the end */
  backends: Served[];
}

/** Waits until `b` serves requests that are not our own stub_status reads; ms after `since`. */
async function firstTraffic(b: TinyBackend, since: number): Promise<number> {
  for (let i = 0; i < TRAFFIC_WAIT_MS / STUB_POLL_MS && now() - since < TRAFFIC_WAIT_MS; i++) {
    if ((await b.served()).requests > 0) return now() - since;
    await sleep(STUB_POLL_MS);
  }
  throw new Error(`${b.name} took no traffic within ${TRAFFIC_WAIT_MS} ms of joining the EndpointSlice`);
}

/** Waits (bounded) until requests through nginx have reached every backend of `set`. */
async function allAnswer(port: number, set: TinyBackend[]): Promise<void> {
  const seen = new Set<string>();
  for (let i = 0; i < 1000 && seen.size < set.length; i++) {
    const r = await httpGet(port, HOST, '/').catch(() => null);
    if (r?.status === 200) seen.add(r.body.trim());
    else await sleep(20);
  }
  if (seen.size < set.length)
    throw new Error(`${HOST}: only ${[...seen].join(', ')} answered of ${set.length} replicas`);
}

/** Counts what a removed backend serves for GRACE_MS after the write that removed it, then stops it. */
async function retire(b: TinyBackend, removedAt: number): Promise<Retired> {
  const atRemoval = await b.served();
  let last = atRemoval;
  let lastServedMs: number | null = null;
  while (now() - removedAt < GRACE_MS) {
    await sleep(Math.min(RETIRE_POLL_MS, Math.max(1, removedAt + GRACE_MS - now())));
    const n = await b.served();
    if (n.requests > last.requests) lastServedMs = now() - removedAt;
    last = n;
  }
  await b.nginx.stop();
  return { name: b.name, ...last, servedAfterRemoval: last.requests - atRemoval.requests, lastServedMs };
}

async function trial(mode: 'dns' | 'reload', run: number, binary: string, version: string): Promise<Trial> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-rolling-'));
  const watchDir = path.join(work, 'manifests');
  const confDir = path.join(work, 'conf.d');
  await mkdir(watchDir);
  await mkdir(confDir);
  const live: TinyBackend[] = [];
  const retiring: Array<Promise<Retired>> = [];
  let sidecar: Sidecar | null = null;
  let stopWrk: (() => Promise<unknown>) | null = null;
  const proxy = await startOwnNginx({ confDir, binary, workerConnections: 4096 });
  try {
    const load = loadAverage();
    const backendPort = await freePort();
    let next = 0;
    const newBackend = () => {
      const k = next++;
      return startTinyBackend({ name: `b${k}`, ip: `127.0.1.${k + 1}`, port: backendPort, binary });
    };
    for (let i = 0; i < REPLICAS; i++) live.push(await newBackend());
    const sliceFile = path.join(watchDir, 'roll-endpoints.yaml');
    await writeFile(sliceFile, sliceYaml(live, backendPort));
    await writeFile(
      path.join(watchDir, 'roll.yaml'),
      serviceYaml + '---\n' + ingressYaml('roll', [{ host: HOST, paths: [['/', 'Prefix', 'roll']] }]),
    );

    const port = await freePort();
    const { logger, logs } = benchLogger();
    const doneMessage = mode === 'dns' ? 'endpoints changed; answered by DNS, no reload' : 'nginx reloaded';
    const endpoints = await benchEndpoints(mode, logger);
    sidecar = benchSidecar({
      source: new DirectorySource({ dir: watchDir, logger }),
      confDir,
      port,
      nginx: proxy,
      debounceMs: 100,
      maxDelayMs: 1000,
      logger,
      build: { binary, version },
      accessLog: '/dev/stdout',
      endpoints,
    });
    await sidecar.start();
    await allAnswer(port, live);
    const reloadsBefore = sidecar.stats.reloads;
    const loggedBefore = countLoggedHups(await proxy.errorLog());

    const wrk = runWrk({
      url: `http://127.0.0.1:${port}/`,
      host: HOST,
      threads: THREADS,
      connections: CONNECTIONS,
      durationS: 3600,
      countStatus: true,
      timeoutS: 5,
      scriptDir: work,
    });
    stopWrk = async () => {
      wrk.interrupt();
      return wrk.result.catch(() => undefined);
    };
    await sleep(2000);
    const addToTraffic: number[] = [];
    const addToSidecarDone: number[] = [];
    for (let s = 1; s <= STEPS; s++) {
      await sleep(random() * PHASE_MS);
      const fresh = await newBackend();
      live.push(fresh);
      const addedAt = now();
      await writeFile(sliceFile, sliceYaml(live, backendPort));
      addToTraffic.push(await firstTraffic(fresh, addedAt));
      const done = logs.find((l) => l.at > addedAt && l.message === doneMessage);
      addToSidecarDone.push(done ? done.at - addedAt : NaN);
      const oldest = live.shift()!;
      const removedAt = now();
      await writeFile(sliceFile, sliceYaml(live, backendPort));
      retiring.push(retire(oldest, removedAt));
    }
    const retired = await Promise.all(retiring);
    retiring.length = 0;
    await sleep(1000);
    wrk.interrupt();
    const result = await wrk.result;
    const backends: Served[] = [...retired];
    for (const b of live) backends.push(await b.served());
    stopWrk = null;
    const { raw: _raw, ...wrkResult } = result;
    const reloads = countLoggedHups(await proxy.errorLog()) - loggedBefore;
    return {
      mode,
      run,
      load,
      steps: STEPS,
      wrk: wrkResult,
      failed: socketErrors(result) + (result.non2xx ?? 0),
      reloads,
      sidecarReloads: sidecar.stats.reloads - reloadsBefore,
      addToTraffic,
      addToSidecarDone,
      retired,
      backends,
    };
  } finally {
    await stopWrk?.();
    await Promise.allSettled(retiring);
    await sidecar?.stop().catch(() => undefined);
    await Promise.all(live.map((b) => b.nginx.stop().catch(() => undefined)));
    await proxy.stop();
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await isolateNetwork();
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping nginx`);
    void stopAllNginx().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  if (!wrkAvailable()) throw new Error('wrk not found: apt-get install -y wrk');
  const build = reloadFreeNginx();
  if (!build) throw new Error('no nginx >= 1.27.3: bash ../shared/nginx/build.sh builds 1.30.4');
  const info = machine();
  const trials: Trial[] = [];
  for (let run = 0; run < RUNS; run++) {
    const order = run % 2 === 0 ? MODES : [...MODES].reverse();
    for (const mode of order) {
      const t = await trial(mode, run, build.binary, build.version);
      trials.push(t);
      console.error(
        `run ${run + 1}/${RUNS} ${mode}: ${t.failed} failed of ${t.wrk.requests}, ${t.reloads} reloads, add -> traffic median ${round(median(t.addToTraffic))} ms (load ${t.load})`,
      );
    }
  }

  const of = (mode: string) => trials.filter((t) => t.mode === mode);
  const med = (ts: Trial[], f: (t: Trial) => number) => round(median(ts.map(f)));
  const each = (ts: Trial[], f: (t: Trial) => number) => `[${ts.map((t) => round(f(t))).join(', ')}]`;
  const cell = (ts: Trial[], f: (t: Trial) => number) => `${med(ts, f)} ${each(ts, f)}`;
  const lastServed = (t: Trial) => Math.max(0, ...t.retired.map((r) => r.lastServedMs ?? 0));
  const afterRemoval = (t: Trial) => t.retired.reduce((n, r) => n + r.servedAfterRemoval, 0);
  const rows: Array<[string, (t: Trial) => number]> = [
    ['**failed requests** (socket errors + non-2xx)', (t) => t.failed],
    ['socket errors (connect + read + write + timeout)', (t) => socketErrors(t.wrk)],
    ['non-2xx', (t) => t.wrk.non2xx ?? 0],
    ['**nginx reloads** (SIGHUPs in its error log)', (t) => t.reloads],
    ['wrk requests', (t) => t.wrk.requests],
    ['requests/s', (t) => t.wrk.rps],
    ['latency p99, ms', (t) => t.wrk.p99],
    ['latency max, ms', (t) => t.wrk.max],
    ['trial length (wrk), s', (t) => t.wrk.durationS],
    ['write adding a backend → its first request, ms (median of the steps)', (t) => median(t.addToTraffic)],
    ['the same, fastest step, ms', (t) => Math.min(...t.addToTraffic)],
    ['the same, slowest step, ms', (t) => Math.max(...t.addToTraffic)],
    [
      'of which: write → the sidecar done (dns: new answers in place; reload: new workers verified), ms (median)',
      (t) => median(t.addToSidecarDone.filter(Number.isFinite)),
    ],
    ['write removing a backend → its last request, ms (the latest of the steps)', lastServed],
    ['requests removed backends served after the write that removed them', afterRemoval],
    [
      'connections nginx opened to the backends per 1,000 requests they served',
      (t) =>
        (1000 * t.backends.reduce((n, b) => n + b.connections, 0)) /
        Math.max(
          1,
          t.backends.reduce((n, b) => n + b.requests, 0),
        ),
    ],
  ];
  const modes = MODES.map(of);
  const out = [
    `## Rolling update under load: ${STEPS} endpoint replacements, ${RUNS} runs per mode`,
    '',
    machineLine({ ...info, nginx: build.version }),
    `proxy and backends: nginx ${build.version} (${build.binary}), 1 worker each; wrk -t${THREADS} -c${CONNECTIONS} (keepalive) http://${HOST}/; ${REPLICAS} replicas, each removed backend kept ${GRACE_MS / 1000} s after the write that removed it; sidecar debounce 100 ms, max delay 1000 ms`,
    `load average at the start of each trial: ${trials.map((t) => `${t.mode} ${t.load}`).join('; ')}`,
    '',
    table(
      ['', ...MODES.map((m) => `${m} mode: median [each run]`)],
      rows.map(([label, f]) => [label, ...modes.map((ts) => cell(ts, f))]),
    ),
    '',
  ];
  const dns = of('dns');
  const reload = of('reload');
  if (dns.length && reload.length) {
    const ratio = (f: (t: Trial) => number) => {
      const d = median(dns.map(f));
      return d === 0 ? `${round(median(reload.map(f)))} vs 0` : `${round(median(reload.map(f)) / d, 2)}×`;
    };
    out.push(
      `reload ÷ dns (medians): failed ${ratio((t) => t.failed)}, reloads ${ratio((t) => t.reloads)}, write → traffic ${ratio((t) => median(t.addToTraffic))}, requests/s ${ratio((t) => t.wrk.rps)}.`,
    );
    const maxFailed = Math.max(...dns.map((t) => t.failed));
    const maxReloads = Math.max(...dns.map((t) => t.reloads));
    out.push(
      `Target (dns mode: 0 failed, 0 reloads): ${maxFailed === 0 && maxReloads === 0 ? '**met** in every run' : `**NOT met** (max ${maxFailed} failed, ${maxReloads} reloads in a run)`}.`,
    );
  }
  console.log(out.join('\n'));
  if (flags.json)
    await writeFile(
      flags.json,
      JSON.stringify({ benchmark: 'rolling-update', machine: info, build, trials }, null, 2) + '\n',
    );
}

try {
  await main();
} finally {
  await stopAllNginx();
}
