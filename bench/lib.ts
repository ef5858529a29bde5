// Shared parts of the benchmarks: a whole stack on this machine (a real nginx on a loopback port,
// an echo backend, the sidecar in-process watching a manifest directory), timestamps of what the
// sidecar did, the HTTP poller (a worker thread), and statistics/markdown helpers.
//
// Traffic goes to 127.0.0.1 only. Everything started here is stopped by stop(), and by the
// SIGINT/SIGTERM handler installed by installCleanup().
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import winston from 'winston';
import { startEcho, type EchoServer } from '../src/dev/echo.ts';
import { nginxBinary, startNginx, type RunningNginx } from '../src/dev/local-nginx.ts';
import { nginxWorkers } from '../src/dev/nginx-workers.ts';
import { Sidecar } from '../src/sync/sidecar.ts';
import type { Snapshot, Source } from '../src/sources/snapshot.ts';
import { DirectorySource } from '../src/sources/directory.ts';
import { EndpointAnswers } from '../src/dns/answers.ts';
import { DnsServer } from '../src/dns/server.ts';
import { Metrics } from '../src/ops/metrics.ts';
import { endpointsModeFor } from '../src/sync/endpoint-mode.ts';
import type { SidecarOptions } from '../src/sync/sidecar.ts';
import { freePort } from '../spec/helpers/nginx.ts';
import { nginxBuilds, type NginxBuild } from '../spec/helpers/nginx-check.ts';
import { backendYaml, freePortPair } from '../spec/helpers/sidecar.ts';

/** Epoch milliseconds with sub-millisecond resolution; the poller thread uses the same clock. */
export const now = (): number => performance.timeOrigin + performance.now();

// ---------------------------------------------------------------------------------------------
// SIGHUPs: every process.kill(pid, 'SIGHUP') made in this process, by whom.

export interface Hup {
  pid: number;
  at: number;
  by: 'sidecar' | 'bench';
}

export const hups: Hup[] = [];
const realKill = process.kill.bind(process);
let hooked = false;

/**
 * Wraps process.kill so that each SIGHUP the sidecar sends is timestamped. The bench's own
 * SIGHUPs go through benchHup(). A measuring probe only: the signal is delivered unchanged.
 */
export function hookKill(): void {
  if (hooked) return;
  hooked = true;
  process.kill = ((pid: number, signal?: string | number) => {
    if (signal === 'SIGHUP' || signal === 1) hups.push({ pid, at: now(), by: 'sidecar' });
    return realKill(pid, signal);
  }) as typeof process.kill;
}

export function benchHup(pid: number): number {
  const at = now();
  hups.push({ pid, at, by: 'bench' });
  realKill(pid, 'SIGHUP');
  return at;
}

/** "signal 1 (SIGHUP) received" lines in an nginx error log (notice level). */
export function countLoggedHups(errorLog: string): number {
  return (errorLog.match(/signal 1 \(SIGHUP\) received/g) ?? []).length;
}

// ---------------------------------------------------------------------------------------------
// A source wrapper that timestamps change notifications and snapshot reads.

export class TimedSource implements Source {
  readonly changes: number[] = [];
  readonly snapshots: number[] = [];
  private readonly inner: Source;
  constructor(inner: Source) {
    this.inner = inner;
  }
  start(onChange: (field?: keyof Snapshot) => void): Promise<void> {
    // The field passes through: the sidecar answers an endpoint-only change without a render.
    return this.inner.start((field) => {
      this.changes.push(now());
      onChange(field);
    });
  }
  /** Sidecar.sync() reads the snapshot first: this marks the start of a pass. */
  snapshot(): Snapshot {
    this.snapshots.push(now());
    return this.inner.snapshot();
  }
  stop(): Promise<void> {
    return this.inner.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The stack.

export interface LogEntry {
  at: number;
  level: string;
  message: string;
  [k: string]: unknown;
}

export interface BenchStack {
  work: string;
  watchDir: string;
  confDir: string;
  /** Include dir for hand-written server blocks, read by the same nginx (null when not asked for). */
  bareDir: string | null;
  port: number;
  echo: EchoServer;
  nginx: RunningNginx;
  sidecar: Sidecar;
  /** Its DNS responder and metrics, when it runs one (--endpoints-mode dns or auto). */
  endpoints: BenchEndpoints | null;
  source: TimedSource;
  logs: LogEntry[];
  debounceMs: number;
  maxDelayMs: number;
  stop(): Promise<void>;
}

export const SERVICE = 'echo';

/**
 * Production's log level (info), nothing printed; every entry kept with a timestamp, for the
 * benches that read what the sidecar logged (e.g. 'nginx reloaded' with its ms).
 */
export function benchLogger(): { logger: winston.Logger; logs: LogEntry[] } {
  const logs: LogEntry[] = [];
  const logger = winston.createLogger({
    level: 'info',
    transports: [new winston.transports.Console({ silent: true })],
  });
  logger.on('data', (info: Record<string, unknown>) => logs.push({ ...info, at: now() } as LogEntry));
  return { logger, logs };
}

/** The in-process sidecar every latency bench measures: production's settings but for the timers given. */
export function benchSidecar(opts: {
  source: Source;
  confDir: string;
  port: number;
  nginx: RunningNginx;
  debounceMs: number;
  maxDelayMs: number;
  logger: winston.Logger;
  /** The nginx that checks (and its version, rendered for); nginxBinary() on PATH when absent. */
  build?: NginxBuild;
  /** --access-log; none (off) when absent. */
  accessLog?: string;
  /** From benchEndpoints(): reload-free endpoints, as src/cli.ts wires them. */
  endpoints?: BenchEndpoints | null;
}): Sidecar {
  return new Sidecar({
    source: opts.source,
    translate: {
      ingressClass: 'nginx',
      httpPort: opts.port,
      ipv6: false,
      ...(opts.build ? { nginxVersion: opts.build.version } : {}),
      ...(opts.accessLog ? { accessLog: opts.accessLog } : {}),
    },
    confDir: opts.confDir,
    nginxBinary: opts.build?.binary ?? nginxBinary(),
    nginxPidFile: opts.nginx.pidFile,
    reloadTimeoutMs: 5000,
    debounceMs: opts.debounceMs,
    maxDelayMs: opts.maxDelayMs,
    logger: opts.logger,
    ...(opts.endpoints ? { endpoints: opts.endpoints.option, metrics: opts.endpoints.metrics } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// Reload-free endpoints (--endpoints-mode), as src/cli.ts builds them.

export type EndpointsFlag = 'auto' | 'dns' | 'reload';

export interface BenchEndpoints {
  /** The Sidecar's `endpoints` option. */
  option: NonNullable<SidecarOptions['endpoints']>;
  answers: EndpointAnswers;
  server: DnsServer;
  /** Shared by the sidecar and its DNS server, as in cli.ts: ingress_sidecar_dns_queries_total. */
  metrics: Metrics;
  dnsPort: number;
}

/**
 * The responder on a free loopback port (UDP and TCP) and the 503 listeners on two more, for
 * --endpoints-mode `mode`; null for `reload`, where src/cli.ts runs no responder either.
 */
export async function benchEndpoints(mode: EndpointsFlag, logger: winston.Logger): Promise<BenchEndpoints | null> {
  if (mode === 'reload') return null;
  const dnsPort = await freePort();
  const unavailablePort = await freePortPair();
  const metrics = new Metrics();
  const answers = new EndpointAnswers({ unavailablePort });
  const server = new DnsServer({ host: '127.0.0.1', port: dnsPort, answers, logger, metrics });
  return {
    option: { mode, answers, server, resolver: `127.0.0.1:${dnsPort}`, unavailablePort },
    answers,
    server,
    metrics,
    dnsPort,
  };
}

/** The first nginx build that resolves upstream servers at run time (1.30.4 from ../shared), or null. */
export function reloadFreeNginx(): NginxBuild | null {
  return nginxBuilds().builds.find((b) => endpointsModeFor('auto', b.version).mode === 'dns') ?? null;
}

/** DNS queries answered so far (ingress_sidecar_dns_queries_total), by "TYPE transport". */
export async function dnsQueryCounts(metrics: Metrics): Promise<Record<string, number>> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === 'ingress_sidecar_dns_queries_total');
  const out: Record<string, number> = {};
  for (const v of (m?.values ?? []) as Array<{ value: number; labels: Record<string, string> }>) {
    const key = `${v.labels.type} ${v.labels.transport}`;
    out[key] = (out[key] ?? 0) + v.value;
  }
  return out;
}

/** utime + stime of a process so far, in ms (/proc/PID/stat; clock ticks are 100 Hz on Linux). */
export function procCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The 1-, 5- and 15-minute load averages, as /proc/loadavg has them. */
export function loadAverage(): string {
  return os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

/** Makes `bareDir` and includes its *.conf from conf.d, where the bare trials write their server blocks. */
export async function includeBareDir(confDir: string, bareDir: string): Promise<void> {
  await mkdir(bareDir);
  // A file of the user's own in conf.d (the sidecar leaves it alone and tests it along).
  await writeFile(path.join(confDir, 'bench-bare.conf'), `include ${bareDir}/*.conf;\n`);
}

const live = new Set<BenchStack>();

export async function startStack(opts: {
  debounceMs: number;
  maxDelayMs: number;
  bare: boolean;
  /** The nginx to run and check with (rendered for its version); nginxBinary() on PATH when absent. */
  build?: NginxBuild;
  /** --endpoints-mode; absent: no responder (as `reload`). */
  endpointsMode?: EndpointsFlag;
}): Promise<BenchStack> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-bench-'));
  const watchDir = path.join(work, 'manifests');
  const confDir = path.join(work, 'conf.d');
  const bareDir = opts.bare ? path.join(work, 'bare.d') : null;
  await mkdir(watchDir);
  await mkdir(confDir);
  const stops: Array<() => Promise<unknown>> = [() => rm(work, { recursive: true, force: true })];
  const stopAll = async () => {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  };
  try {
    const echo = await startEcho(SERVICE);
    stops.push(() => echo.close());
    await writeFile(path.join(watchDir, 'backends.yaml'), backendYaml(SERVICE, echo.port));
    if (bareDir) await includeBareDir(confDir, bareDir);
    const port = await freePort();
    const nginx = await startNginx({ confDir, ...(opts.build ? { binary: opts.build.binary } : {}) });
    stops.push(() => nginx.stop());

    const { logger, logs } = benchLogger();
    const source = new TimedSource(new DirectorySource({ dir: watchDir, logger }));
    const endpoints = await benchEndpoints(opts.endpointsMode ?? 'reload', logger);
    const sidecar = benchSidecar({
      source,
      confDir,
      port,
      nginx,
      debounceMs: opts.debounceMs,
      maxDelayMs: opts.maxDelayMs,
      logger,
      ...(opts.build ? { build: opts.build } : {}),
      endpoints,
    });
    stops.push(() => sidecar.stop());
    await sidecar.start();
    const stack: BenchStack = {
      work,
      watchDir,
      confDir,
      bareDir,
      port,
      echo,
      nginx,
      sidecar,
      endpoints,
      source,
      logs,
      debounceMs: opts.debounceMs,
      maxDelayMs: opts.maxDelayMs,
      async stop() {
        live.delete(stack);
        await stopAll();
      },
    };
    live.add(stack);
    return stack;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/**
 * Runs this benchmark again in a network namespace of its own (`unshare -n`, its loopback up) and
 * exits with its status; returns at once inside it, when INGRESS_SIDECAR_BENCH_NETNS is set (to
 * anything: `off` runs here), or when that is not possible (not root, no unshare), saying so.
 * Why: under wrk, nginx's connections to its upstreams open and close by the hundreds a second
 * (64 requests at once, `keepalive 32` kept idle), and each leaves a socket in TIME_WAIT for a
 * minute that keeps its local port from being bound: ~25,000 of them fill the ephemeral range,
 * and other sessions on this machine find no free port. A namespace has ports of its own, and
 * its own cap on TIME_WAIT sockets, lowered so that this bench's next trials find ports too
 * (beyond the cap a closed socket skips TIME_WAIT, which guards against stray segments of an old
 * connection: none on loopback).
 */
export async function isolateNetwork(): Promise<void> {
  if (process.env.INGRESS_SIDECAR_BENCH_NETNS !== undefined) return;
  if (process.getuid?.() !== 0 || spawnSync('unshare', ['--version'], { stdio: 'ignore' }).error) {
    console.error("not root or no unshare: running in the machine's own network namespace");
    return;
  }
  const script = process.argv[1]!;
  const child = spawn(
    'unshare',
    [
      '-n',
      '--',
      'sh',
      '-c',
      'ip link set lo up && sysctl -qw net.ipv4.tcp_max_tw_buckets=4096 && exec "$@"',
      'sh',
      process.execPath,
      ...process.execArgv,
      script,
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, INGRESS_SIDECAR_BENCH_NETNS: '1' } },
  );
  // unshare execs the command: a signal to it reaches the benchmark, which stops what it started.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) =>
    child.on('exit', (c, signal) => resolve(c ?? 128 + (signal ? os.constants.signals[signal] : 0))),
  );
  process.exit(code);
}

/** Stops every live stack and the poller on SIGINT/SIGTERM, so nothing outlives an interrupted run. */
export function installCleanup(): void {
  const handler = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping nginx and backends`);
    void Promise.all([...live].map((s) => s.stop()))
      .then(() => Poller.stopAll())
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  // `… | head` closes the pipe early: keep running so that the finally blocks still stop nginx.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

/** One Ingress: host -> / (Prefix) -> the echo Service. */
export function ingressYaml(name: string, host: string): string {
  return `apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ${name}
  namespace: default
spec:
  ingressClassName: nginx
  rules:
  - host: ${host}
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: ${SERVICE}, port: {name: http}}}}
`;
}

/** The hand-written equivalent: one server block proxying / to the echo backend. */
export function bareServerBlock(host: string, port: number, echoPort: number, echoIp = '127.0.0.1'): string {
  return `server {
    listen ${port};
    server_name ${host};
    location / {
        proxy_pass http://${echoIp}:${echoPort};
        proxy_set_header Host $http_host;
    }
}
`;
}

// ---------------------------------------------------------------------------------------------
// nginx workers (src/dev/nginx-workers.ts).

/**
 * Waits (bounded) until the master's live workers are all new (not in `before`): the condition
 * the sidecar's own reload verification waits for. With `drained`, also until no old worker is
 * still draining: the state a reload ends in, so that the next trial starts from a quiet nginx.
 */
export async function waitQuietNginx(
  master: number,
  before: ReadonlySet<number>,
  opts: { pollMs?: number; drained?: boolean; timeoutMs?: number } = {},
): Promise<boolean> {
  const { pollMs = 5, drained = true, timeoutMs = 5000 } = opts;
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < Math.ceil(timeoutMs / pollMs) + 1 && Date.now() < deadline; i++) {
    const { live, draining } = await nginxWorkers(master);
    if (live.length > 0 && (!drained || draining.length === 0) && live.every((p) => !before.has(p))) return true;
    await sleep(pollMs);
  }
  return false;
}

/**
 * The reconciler starts passes at most once per ceiling (max delay): wait until the source's last
 * pass started more than that ago, so that each trial measures an isolated change.
 */
export async function afterCeiling(source: TimedSource, maxDelayMs: number): Promise<void> {
  const last = source.snapshots[source.snapshots.length - 1];
  if (last === undefined) return;
  const wait = last + maxDelayMs + 20 - now();
  if (wait > 0) await new Promise((r) => setTimeout(r, Math.min(wait, maxDelayMs + 20)));
}

/**
 * The start of a latency trial: the master, its live workers before the change, and a probe of
 * `host` already polling (it must not answer yet: `notYet` says what does not exist). routable()
 * waits for the probe's first right answer and throws if none came within timeoutMs.
 */
export async function startTrial(
  nginx: RunningNginx,
  poller: Poller,
  probe: { port: number; host: string; pollMs: number; timeoutMs: number; tailMs: number },
  notYet: string,
): Promise<{ master: number; before: Set<number>; routable: () => Promise<ProbeResult> }> {
  const { port, host, pollMs, timeoutMs, tailMs } = probe;
  const master = await nginx.masterPid();
  const before = new Set((await nginxWorkers(master)).live);
  const p = poller.probe(port, host, pollMs, timeoutMs, tailMs);
  if ((await p.started) === 'ok') throw new Error(`${host} answered before ${notYet}`);
  const routable = async () => {
    const r = await p.done;
    if (!r.ok) throw new Error(`${host} not routable within ${timeoutMs} ms (last answer: ${r.last})`);
    return r;
  };
  return { master, before, routable };
}

// ---------------------------------------------------------------------------------------------
// The poller (worker thread, see poller.ts).

export type PollerRequest =
  | {
      type: 'probe';
      id: number;
      port: number;
      host: string;
      service: string;
      intervalMs: number;
      timeoutMs: number;
      tailMs: number;
    }
  | {
      type: 'sweep';
      id: number;
      port: number;
      hosts: string[];
      service: string;
      concurrency: number;
      retryMs: number;
      timeoutMs: number;
    }
  | { type: 'write'; id: number; files: Array<{ path: string; content: string }>; concurrency: number }
  | { type: 'record'; id: number; port: number; host: string; intervalMs: number; durationMs: number };

export type PollerReply =
  | { type: 'started'; id: number; first: string }
  | {
      type: 'probe';
      id: number;
      ok: boolean;
      /** first correct answer */
      at: number;
      tries: number;
      last: string;
      firstWasOk: boolean;
      /** wrong answers seen in the tailMs after the first correct one, and when the last came */
      wrongAfter: number;
      lastWrongAt: number;
    }
  | { type: 'sweep'; id: number; ok: boolean; at: number; missing: string[]; requests: number; rounds: number }
  | { type: 'write'; id: number; startedAt: number; doneAt: number }
  | {
      type: 'record';
      id: number;
      requests: number;
      /** how many requests got each answer (the echo backend's name, or the status / error) */
      answers: Record<string, number>;
      /** every change of answer from one request to the next, with when it was seen */
      transitions: Array<{ at: number; answer: string }>;
    };

export type ProbeResult = Extract<PollerReply, { type: 'probe' }>;
export type SweepResult = Extract<PollerReply, { type: 'sweep' }>;
export type RecordResult = Extract<PollerReply, { type: 'record' }>;

export class Poller {
  private static all = new Set<Poller>();
  private readonly worker: Worker;
  private nextId = 1;
  private readonly waiters = new Map<string, (r: PollerReply) => void>();

  private constructor() {
    this.worker = new Worker(new URL('./poller.ts', import.meta.url));
    this.worker.on('message', (r: PollerReply) => {
      const key = `${r.type === 'started' ? 'started' : 'done'}:${r.id}`;
      const w = this.waiters.get(key);
      this.waiters.delete(key);
      w?.(r);
    });
    this.worker.on('error', (err) => console.error('poller thread failed:', err));
    Poller.all.add(this);
  }

  static start(): Poller {
    return new Poller();
  }

  static async stopAll(): Promise<void> {
    for (const p of Poller.all) await p.stop();
  }

  private wait<T extends PollerReply>(key: string): Promise<T> {
    return new Promise((resolve) => this.waiters.set(key, resolve as (r: PollerReply) => void));
  }

  /**
   * Starts polling `host` every `intervalMs`; `started` resolves once the first answer is in
   * (so the poller is running before the caller changes anything), `done` with the first correct one
   * after a further tailMs of polling (see poller.ts).
   */
  probe(
    port: number,
    host: string,
    intervalMs: number,
    timeoutMs: number,
    tailMs = 0,
    /** The echo backend whose answer is the right one. */
    service = SERVICE,
  ): { started: Promise<string>; done: Promise<ProbeResult> } {
    const id = this.nextId++;
    const started = this.wait<Extract<PollerReply, { type: 'started' }>>(`started:${id}`).then((r) => r.first);
    const done = this.wait<ProbeResult>(`done:${id}`);
    this.worker.postMessage({
      type: 'probe',
      id,
      port,
      host,
      intervalMs,
      timeoutMs,
      tailMs,
      service,
    } satisfies PollerRequest);
    return { started, done };
  }

  sweep(
    port: number,
    hosts: string[],
    opts: { concurrency: number; retryMs: number; timeoutMs: number },
  ): Promise<SweepResult> {
    const id = this.nextId++;
    const done = this.wait<SweepResult>(`done:${id}`);
    this.worker.postMessage({ type: 'sweep', id, port, hosts, service: SERVICE, ...opts } satisfies PollerRequest);
    return done;
  }

  /** Asks `host` every intervalMs for durationMs and records which backend answered each time. */
  record(port: number, host: string, intervalMs: number, durationMs: number): Promise<RecordResult> {
    const id = this.nextId++;
    const done = this.wait<RecordResult>(`done:${id}`);
    this.worker.postMessage({ type: 'record', id, port, host, intervalMs, durationMs } satisfies PollerRequest);
    return done;
  }

  /** Writes the files from the worker thread; resolves with when it started and finished. */
  write(
    files: Array<{ path: string; content: string }>,
    concurrency: number,
  ): Promise<Extract<PollerReply, { type: 'write' }>> {
    const id = this.nextId++;
    const done = this.wait<Extract<PollerReply, { type: 'write' }>>(`done:${id}`);
    this.worker.postMessage({ type: 'write', id, files, concurrency } satisfies PollerRequest);
    return done;
  }

  async stop(): Promise<void> {
    Poller.all.delete(this);
    await this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------------
// Statistics and output.

/** Nearest-rank percentile: the smallest value with at least p% of the samples at or below it. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function summary(values: number[]): {
  n: number;
  median: number;
  p90: number;
  p99: number;
  min: number;
  max: number;
} {
  return {
    n: values.length,
    median: round(median(values)),
    p90: round(percentile(values, 90)),
    p99: round(percentile(values, 99)),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
  };
}

export function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export function table(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.map(String).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${round(x)}`;
}

/** The line under each report's heading that says where it was measured. */
export function machineLine(info: Record<string, string>): string {
  return `machine: ${info.nproc} CPUs (${info.cpu}), Linux ${info.kernel}, node ${info.node}, nginx ${info.nginx}, git ${info.git}, load average at start ${info.load}, ${info.date}`;
}

/** Sidecar minus bare total of the trials of the same round (measured back to back). */
export function pairedDiffs(
  sidecar: Array<{ round: number; total: number }>,
  bare: Array<{ round: number; total: number }>,
): number[] {
  return sidecar.flatMap((st) => {
    const bt = bare.find((x) => x.round === st.round);
    return bt ? [st.total - bt.total] : [];
  });
}

/** The two latency targets' cells: median at most bare + debounce + 100 ms, and p99 under 1 s. */
export function targetCells(overBareDebounce: number, p99: number): [string, string] {
  return [
    overBareDebounce <= 100
      ? `met (${round(100 - overBareDebounce)} ms to spare)`
      : `NOT met (${round(overBareDebounce - 100)} ms over)`,
    p99 < 1000 ? `met (p99 ${p99} ms)` : `NOT met (p99 ${p99} ms)`,
  ];
}

/** Trials for the JSON file, their numbers to two decimals. */
export function roundedTrials(trials: object[]): Array<Record<string, unknown>> {
  return trials.map((t) =>
    Object.fromEntries(Object.entries(t).map(([k, v]) => [k, typeof v === 'number' ? round(v, 2) : v])),
  );
}

export function machine(): Record<string, string> {
  const run = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    } catch {
      return '';
    }
  };
  // nginx -v writes to stderr and exits 0.
  const nginxStderr = run('sh', ['-c', `"$0" -v 2>&1`, nginxBinary()]);
  const cpu = (() => {
    try {
      return /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    } catch {
      return '';
    }
  })();
  const git = run('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = run('git', ['status', '--porcelain', '--', 'src']);
  return {
    nproc: String(os.availableParallelism()),
    cpu,
    kernel: os.release(),
    node: process.version,
    nginx: nginxStderr.replace(/^nginx version:\s*/, ''),
    git: git + (dirty ? ' (src/ has uncommitted changes)' : ''),
    load: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    date: new Date().toISOString(),
  };
}

export function parseIntFlag(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}
