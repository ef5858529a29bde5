// Reloads under load: the sidecar reloads nginx 100 times while wrk keeps 64 keepalive
// connections busy, and WebSockets stay open across the reloads.
//
//   node_modules/.bin/node bench/reload-under-load.ts [--reloads 100] [--connections 64]
//     [--threads 2] [--worker-shutdown-timeout 10] [--websockets 4] [--no-bare]
//     [--keepalive-timeout 65] [--json FILE]
//
// On loopback:
// - a backend nginx answering `return 200 "ok\n"` (Service `fast`), and the Node echo backend
//   (src/dev/echo.ts, in-process; it echoes the bytes of an upgraded connection: Service `echo`);
// - the proxy nginx, from the bench's own main config (bench/nginx-kit.ts, modelled on
//   src/dev/local-nginx.ts) with `worker_shutdown_timeout` set, 1 worker, including the conf dir;
// - the sidecar in-process (src/sync/sidecar.ts with the directory source, default debounce 100 ms and
//   max delay 1000 ms, the default JSON access log to /dev/stdout, which is /dev/null here);
//   Ingress `fast` (host fast.test, `/` -> fast) and Ingress `ws` (host ws.test, `/` -> echo).
//
// wrk runs `-t2 -c64` against http://fast.test/ for the whole test, with a Lua script that counts
// every response outside 2xx (wrk itself only counts >= 400) and reports socket errors. Then, 100
// times: rewrite fast.yaml with one more path (`/v<k>`, so the server file of the host under load
// changes) and wait until the sidecar has reloaded nginx (its own verification: new workers
// only). wrk is stopped (SIGINT) 1 s after the last reload.
//
// WebSockets: before reloads 1, 26, 51 and 76 (--websockets 4), a raw HTTP/1.1 upgrade to ws.test
// through nginx; each sends a line every 250 ms and checks that the same bytes come back. An
// old worker keeps its upgraded connections until worker_shutdown_timeout after it was told to
// quit, so each WebSocket should survive every reload until worker_shutdown_timeout after the
// first reload that follows its opening, and then be closed by nginx. Reported: reloads survived,
// echoes that failed while open, when it closed relative to that first reload.
//
// Control, in the same run (--no-bare skips it): a second wrk run during which the bench itself
// sends as many SIGHUPs, with no configuration change, at the pace the sidecar's reloads came,
// each waited for the same way. Failed requests per reload are compared side by side.
// --keepalive-timeout 0 turns client keepalive off in the proxy nginx (a diagnostic: then no
// connection is ever idle when an old worker quits).
//
// nginx memory (master + workers, RSS and PSS from /proc) is read before the reloads (after a
// 2 s warm-up under load), after every reload (the peak is reported), and after the 100 reloads
// once every old worker has exited (worker_shutdown_timeout + 2 s later).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import winston from 'winston';
import { startEcho, type EchoServer } from '../src/dev/echo.ts';
import { nginxBinary } from '../src/dev/local-nginx.ts';
import { Sidecar } from '../src/sync/sidecar.ts';
import { DirectorySource } from '../src/sources/directory.ts';
import { backendYaml, ingressYaml } from '../spec/helpers/sidecar.ts';
import {
  benchHup,
  countLoggedHups,
  hookKill,
  hups,
  machine,
  median,
  now,
  parseIntFlag,
  percentile,
  round,
  table,
} from './lib.ts';
import {
  freePort,
  ms,
  nginxMemory,
  nginxWorkers,
  runWrk,
  socketErrors,
  startOwnNginx,
  stopAllNginx,
  waitDrained,
  wrkAvailable,
  type NginxMemory,
  type OwnNginx,
} from './nginx-kit.ts';

const { values: flags } = parseArgs({
  options: {
    reloads: { type: 'string' },
    connections: { type: 'string' },
    threads: { type: 'string' },
    'worker-shutdown-timeout': { type: 'string' },
    websockets: { type: 'string' },
    bare: { type: 'boolean', default: true },
    'keepalive-timeout': { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
  allowNegative: true,
});
const RELOADS = parseIntFlag(flags.reloads, '--reloads', 100, 1);
const CONNECTIONS = parseIntFlag(flags.connections, '--connections', 64, 1);
const THREADS = parseIntFlag(flags.threads, '--threads', 2, 1);
const WST_S = parseIntFlag(flags['worker-shutdown-timeout'], '--worker-shutdown-timeout', 10, 1);
const WEBSOCKETS = parseIntFlag(flags.websockets, '--websockets', 4, 0);
/** --no-bare skips the control phase. */
const BARE = flags.bare !== false;
/** keepalive_timeout of the proxy nginx (65 as in src/dev/local-nginx.ts); 0 turns client keepalive off, as a diagnostic. */
const KEEPALIVE_TIMEOUT = parseIntFlag(flags['keepalive-timeout'], '--keepalive-timeout', 65, 0);
/** Longest wait for one reload, and for the whole run. */
const RELOAD_WAIT_MS = 20_000;
const RUN_LIMIT_MS = 20 * 60_000;
const PING_MS = 250;
const ECHO_TIMEOUT_MS = 2000;

function backends(fastPort: number, echoPort: number): string {
  return `${backendYaml('fast', fastPort)}---\n${backendYaml('echo', echoPort)}`;
}

function ingress(name: string, host: string, service: string, extraPaths: string[]): string {
  return ingressYaml(name, [
    { host, paths: ['/', ...extraPaths].map((p): [string, string, string] => [p, 'Prefix', service]) },
  ]);
}

// ---------------------------------------------------------------------------------------------
// A WebSocket-style upgraded connection through nginx, pinging until it closes.

interface WsReport {
  id: number;
  openedAt: number;
  /** the reload count when it opened */
  openedAfterReload: number;
  closedAt: number | null;
  closedBy: string;
  pingsOk: number;
  /** echoes missing although the connection stayed open at least ECHO_TIMEOUT_MS after the ping */
  pingsFailedWhileOpen: number;
  /** pings in flight when the connection closed */
  pingsLostAtClose: number;
  mismatches: number;
}

class WsClient {
  readonly report: WsReport;
  private socket: net.Socket | null = null;
  private buffer = '';
  private pending = new Map<string, number>();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  private done: Promise<void>;
  private resolveDone: () => void = () => undefined;

  constructor(id: number, openedAfterReload: number) {
    this.report = {
      id,
      openedAt: 0,
      openedAfterReload,
      closedAt: null,
      closedBy: '',
      pingsOk: 0,
      pingsFailedWhileOpen: 0,
      pingsLostAtClose: 0,
      mismatches: 0,
    };
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  async open(port: number): Promise<void> {
    const socket = net.connect({ host: '127.0.0.1', port });
    this.socket = socket;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('WebSocket upgrade: timeout')), 5000);
      let head = '';
      const onData = (d: Buffer) => {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        clearTimeout(t);
        socket.off('data', onData);
        if (!head.startsWith('HTTP/1.1 101'))
          return reject(new Error(`WebSocket upgrade refused: ${head.split('\r\n')[0]}`));
        this.buffer = head.slice(end + 4);
        resolve();
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.write(
        'GET /socket HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    this.report.openedAt = now();
    socket.on('data', (d: Buffer) => this.onData(d.toString('latin1')));
    socket.on('error', (err) => (this.report.closedBy ||= `error: ${err.message}`));
    socket.on('close', () => this.onClose());
    this.timer = setInterval(() => this.ping(), PING_MS);
  }

  private ping(): void {
    const t = now();
    // Pings older than the timeout on a connection still open are failures.
    for (const [line, at] of this.pending) {
      if (t - at > ECHO_TIMEOUT_MS) {
        this.pending.delete(line);
        this.report.pingsFailedWhileOpen++;
      }
    }
    const line = `ping ${this.report.id} ${++this.seq} ${'x'.repeat(32)}\n`;
    this.pending.set(line, t);
    this.socket?.write(line);
  }

  private onData(text: string): void {
    this.buffer += text;
    for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, nl + 1);
      this.buffer = this.buffer.slice(nl + 1);
      if (this.pending.delete(line)) this.report.pingsOk++;
      else this.report.mismatches++;
    }
  }

  private onClose(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.report.closedAt === null) this.report.closedAt = now();
    this.report.closedBy ||= 'closed by the server';
    const t = now();
    for (const at of this.pending.values()) {
      if (t - at > ECHO_TIMEOUT_MS) this.report.pingsFailedWhileOpen++;
      else this.report.pingsLostAtClose++;
    }
    this.pending.clear();
    this.resolveDone();
  }

  closed(): boolean {
    return this.report.closedAt !== null;
  }

  /** Closes it from this side (at the end of the run, if nginx has not). */
  async close(): Promise<void> {
    if (!this.closed()) {
      this.report.closedBy = 'still open at the end; closed by the bench';
      this.report.closedAt = now();
      this.socket?.destroy();
    }
    await Promise.race([this.done, sleep(1000)]);
  }
}

// ---------------------------------------------------------------------------------------------

const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-reload-load-'));
const stops: Array<() => Promise<unknown>> = [];
const stopAll = async () => {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  stops.length = 0;
};
const onSignal = (signal: NodeJS.Signals) => {
  console.error(`\n${signal}: stopping wrk, nginx, backends and the sidecar`);
  void stopAll()
    .then(() => stopAllNginx())
    .finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

try {
  if (!wrkAvailable()) throw new Error('wrk not found: apt-get install -y wrk');
  const m = machine();
  hookKill();
  const watchDir = path.join(work, 'manifests');
  const confDir = path.join(work, 'conf.d');
  await mkdir(watchDir);
  await mkdir(confDir);

  const fastPort = await freePort();
  const fast = await startOwnNginx({
    http: `server {\n    listen 127.0.0.1:${fastPort};\n    location / {\n        return 200 "ok\\n";\n    }\n}`,
  });
  stops.push(() => fast.stop());
  const echo: EchoServer = await startEcho('echo');
  stops.push(() => echo.close());
  const port = await freePort();
  const nginx: OwnNginx = await startOwnNginx({
    confDir,
    workerShutdownTimeout: `${WST_S}s`,
    workerConnections: 4096,
    keepaliveTimeout: KEEPALIVE_TIMEOUT,
  });
  stops.push(() => nginx.stop());

  await writeFile(path.join(watchDir, 'backends.yaml'), backends(fastPort, echo.port));
  await writeFile(path.join(watchDir, 'fast.yaml'), ingress('fast', 'fast.test', 'fast', []));
  await writeFile(path.join(watchDir, 'ws.yaml'), ingress('ws', 'ws.test', 'echo', []));
  const logs: Array<Record<string, unknown>> = [];
  const logger = winston.createLogger({
    level: 'info',
    transports: [new winston.transports.Console({ silent: true })],
  });
  logger.on('data', (info: Record<string, unknown>) => logs.push({ ...info, at: now() }));
  const sidecar = new Sidecar({
    source: new DirectorySource({ dir: watchDir, logger }),
    translate: { ingressClass: 'nginx', httpPort: port, ipv6: false, accessLog: '/dev/stdout' },
    confDir,
    nginxBinary: nginxBinary(),
    nginxPidFile: nginx.pidFile,
    reloadTimeoutMs: 10_000,
    debounceMs: 100,
    maxDelayMs: 1000,
    logger,
  });
  stops.push(() => sidecar.stop());
  await sidecar.start();
  if (sidecar.stats.reloads !== 1)
    throw new Error(`the first sync did not reload nginx (reloads: ${sidecar.stats.reloads})`);
  await waitDrained(nginx.master, 10_000);

  /**
   * wrk for the whole phase; `reload(k)` makes reload k happen and resolves once nginx runs only
   * new workers. Reads nginx's memory under load before the first reload and after each one.
   */
  const underLoad = async (count: number, reload: (k: number) => Promise<void>) => {
    const wrk = runWrk({
      url: `http://127.0.0.1:${port}/`,
      host: 'fast.test',
      threads: THREADS,
      connections: CONNECTIONS,
      durationS: Math.ceil(RUN_LIMIT_MS / 1000),
      countStatus: true,
      timeoutS: 5,
      scriptDir: work,
    });
    const stopWrk = async () => {
      wrk.interrupt();
      await wrk.result.catch(() => undefined);
    };
    stops.push(stopWrk);
    await sleep(2000);
    const memoryBefore = await nginxMemory(nginx.master);
    let peak = memoryBefore;
    let maxWorkers = 0;
    const reloadTimes: number[] = [];
    const t0 = performance.now();
    let done = 0;
    for (let k = 1; k <= count && ms(t0) < RUN_LIMIT_MS; k++) {
      const r0 = performance.now();
      await reload(k);
      reloadTimes.push(ms(r0));
      done = k;
      const mem = await nginxMemory(nginx.master);
      if (mem.rssKb > peak.rssKb) peak = mem;
      const w = await nginxWorkers(nginx.master);
      maxWorkers = Math.max(maxWorkers, w.live.length + w.draining.length);
      if (k % 20 === 0)
        console.error(
          `reload ${k}/${count}: ${round(ms(t0) / 1000, 1)} s, nginx ${mem.processes} processes, ${round(mem.rssKb / 1024, 1)} MB RSS`,
        );
    }
    const endedAt = now();
    await sleep(1000);
    wrk.interrupt();
    const load = await wrk.result;
    stops.splice(stops.indexOf(stopWrk), 1);
    return { done, load, memoryBefore, peak, maxWorkers, reloadTimes, endedAt };
  };

  // Phase 1: the sidecar reloads nginx; WebSockets open along the way.
  const sockets: WsClient[] = [];
  const wsEvery = WEBSOCKETS > 0 ? Math.max(1, Math.floor(RELOADS / WEBSOCKETS)) : Infinity;
  const hupAt: number[] = [];
  const sidecarReload = async (k: number) => {
    if ((k - 1) % wsEvery === 0 && sockets.length < WEBSOCKETS) {
      const ws = new WsClient(sockets.length + 1, k - 1);
      await ws.open(port);
      sockets.push(ws);
    }
    const before: number = sidecar.stats.reloads;
    const hupsBefore = hups.length;
    const w0 = performance.now();
    await writeFile(
      path.join(watchDir, 'fast.yaml'),
      ingress(
        'fast',
        'fast.test',
        'fast',
        Array.from({ length: k }, (_, j) => `/v${j + 1}`),
      ),
    );
    for (let i = 0; i < RELOAD_WAIT_MS / 5 && sidecar.stats.reloads === before && ms(w0) < RELOAD_WAIT_MS; i++)
      await sleep(5);
    if (sidecar.stats.reloads === before)
      throw new Error(`reload ${k}: the sidecar did not reload nginx within ${RELOAD_WAIT_MS} ms`);
    hupAt.push(hups[hupsBefore]?.at ?? NaN);
  };
  const a = await underLoad(RELOADS, sidecarReload);

  // Old workers (and the WebSockets they hold) end at worker_shutdown_timeout.
  const drainStart = performance.now();
  await sleep(WST_S * 1000 + 2000);
  const drained = await waitDrained(nginx.master, 10_000);
  const drainedAfterS = round(ms(drainStart) / 1000, 1);
  const memoryAfter = await nginxMemory(nginx.master);
  for (const ws of sockets) await ws.close();
  const sidecarReloads = sidecar.stats.reloads - 1;
  const sidecarHups = hups.length - 1;
  const loggedAfterA = countLoggedHups(await nginx.errorLog()) - 1;

  // Phase 2 (control): the same number of SIGHUPs sent by the bench with no change at all, at the
  // pace the sidecar's reloads came, each waited for in the same way (new workers only).
  const intervals = hupAt.slice(1).map((t, i) => t - hupAt[i]!);
  const paceMs = intervals.length > 0 ? median(intervals) : 250;
  let lastHup = 0;
  const bareReload = async () => {
    const wait = lastHup + paceMs - now();
    if (wait > 0) await sleep(wait);
    const beforeWorkers = new Set((await nginxWorkers(nginx.master)).live);
    lastHup = benchHup(nginx.master);
    const h0 = performance.now();
    for (let i = 0; i < RELOAD_WAIT_MS / 5 && ms(h0) < RELOAD_WAIT_MS; i++) {
      const { live } = await nginxWorkers(nginx.master);
      if (live.length > 0 && live.every((p) => !beforeWorkers.has(p))) return;
      await sleep(5);
    }
    throw new Error(`bare SIGHUP: nginx did not replace its workers within ${RELOAD_WAIT_MS} ms`);
  };
  const b = BARE ? await underLoad(RELOADS, bareReload) : null;
  if (b) {
    await sleep(WST_S * 1000 + 2000);
    await waitDrained(nginx.master, 10_000);
  }
  const memoryAfterBoth = b ? await nginxMemory(nginx.master) : null;
  const errorLog = await nginx.errorLog();
  const oldWorkersQuit = (errorLog.match(/gracefully shutting down/g) ?? []).length;

  // Report.
  const wsRows = sockets.map((ws) => {
    const r = ws.report;
    const firstHup = hupAt.find((t) => t > r.openedAt) ?? NaN;
    const survived = hupAt.filter((t) => t > r.openedAt && (r.closedAt === null || t < r.closedAt)).length;
    const closedAfter = r.closedAt !== null && Number.isFinite(firstHup) ? (r.closedAt - firstHup) / 1000 : NaN;
    return { ...r, firstHup, survived, closedAfterFirstReloadS: round(closedAfter, 2) };
  });
  const failedOf = (x: typeof a) => socketErrors(x.load) + (x.load.non2xx ?? 0);
  const mbOf = (k: number) => round(k / 1024, 1);
  const memText = (x: NginxMemory) =>
    `${x.processes} processes, RSS ${mbOf(x.rssKb)} MB (master ${mbOf(x.masterRssKb)}), PSS ${mbOf(x.pssKb)} MB`;
  const phaseRows = [a, ...(b ? [b] : [])].map((x, i) => {
    const f = failedOf(x);
    return [
      i === 0
        ? 'sidecar: change fast.yaml, wait for the reload'
        : `control: bare SIGHUP, no change, every ${round(paceMs, 0)} ms`,
      x.done,
      `${x.load.requests} (${round(x.load.rps, 0)} req/s)`,
      `${round(x.load.p50, 2)} / ${round(x.load.p99, 2)} / ${round(x.load.max, 1)}`,
      `**${f}**`,
      `${x.load.errors.connect} / ${x.load.errors.read} / ${x.load.errors.write} / ${x.load.errors.timeout}`,
      `${x.load.non2xx ?? 'n/a'} ${JSON.stringify(x.load.byClass)}`,
      round(f / Math.max(1, x.done), 2),
      `${round(median(x.reloadTimes), 1)} / ${round(percentile(x.reloadTimes, 90), 1)} / ${round(Math.max(...x.reloadTimes), 1)}`,
    ];
  });
  console.log(`## Reloads under load\n`);
  console.log(
    `machine: ${m.nproc} CPUs (${m.cpu}), load at start ${m.load}, node ${m.node}, nginx ${m.nginx}, git ${m.git || '-'}, ${m.date}`,
  );
  console.log(
    `wrk -t${THREADS} -c${CONNECTIONS} (keepalive) http://fast.test/; worker_shutdown_timeout ${WST_S}s; keepalive_timeout ${KEEPALIVE_TIMEOUT}; sidecar debounce 100 ms, max delay 1000 ms\n`,
  );
  console.log(
    table(
      [
        'phase',
        'reloads',
        'wrk requests',
        'latency p50 / p99 / max ms',
        'failed',
        'socket errors connect / read / write / timeout',
        'non-2xx',
        'failed per reload',
        'reload ms median / p90 / max',
      ],
      phaseRows,
    ),
  );
  console.log('');
  console.log(`| | |\n| --- | --- |`);
  console.log(
    `| sidecar reloads (stats / SIGHUPs it sent / "signal 1 (SIGHUP)" in nginx's log), excluding the first sync | ${sidecarReloads} / ${sidecarHups} / ${loggedAfterA} |`,
  );
  console.log(`| nginx memory before the reloads (under load) | ${memText(a.memoryBefore)} |`);
  console.log(
    `| nginx memory, peak during the sidecar's reloads | ${memText(a.peak)}; at most ${a.maxWorkers} workers at once |`,
  );
  console.log(
    `| nginx memory after the sidecar's ${a.done} reloads (old workers gone: ${drained}, ${drainedAfterS} s after the last) | ${memText(memoryAfter)} |`,
  );
  if (memoryAfterBoth)
    console.log(`| nginx memory after ${a.done + (b?.done ?? 0)} reloads in all | ${memText(memoryAfterBoth)} |`);
  console.log(`| old workers told to quit (nginx's "gracefully shutting down"), whole run | ${oldWorkersQuit} |`);
  if (wsRows.length > 0) {
    console.log(
      `\nWebSockets during the sidecar's reloads (a line every ${PING_MS} ms, echoed by the backend through nginx):\n`,
    );
    console.log(
      '| ws | opened before reload | reloads survived | echoes ok | echoes failed while open | lost in flight at close | closed | closed after the first reload that followed it (s) |',
    );
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const w of wsRows) {
      console.log(
        `| ${w.id} | ${w.openedAfterReload + 1} | ${w.survived} | ${w.pingsOk} | ${w.pingsFailedWhileOpen} | ${w.pingsLostAtClose} | ${w.closedBy} | ${w.closedAfterFirstReloadS} (worker_shutdown_timeout ${WST_S} s) |`,
      );
    }
  }
  const fa = failedOf(a);
  console.log(
    `\nTarget: zero failed requests over ${a.done} sidecar reloads: ${fa === 0 ? '**met**' : `**NOT met**: ${fa} failed of ${a.load.requests}`}.`,
  );
  if (b)
    console.log(
      `Control (bare SIGHUPs, same pace, same run): ${failedOf(b)} failed of ${b.load.requests}; failed per reload, sidecar ÷ bare: ${round(fa / Math.max(1, a.done) / Math.max(1e-9, failedOf(b) / Math.max(1, b.done)), 2)}.`,
    );
  if (flags.json) {
    const strip = (x: typeof a | null) => (x ? { ...x, load: { ...x.load, raw: undefined } } : null);
    await writeFile(
      flags.json,
      JSON.stringify(
        {
          benchmark: 'reload-under-load',
          machine: m,
          wst: WST_S,
          keepaliveTimeout: KEEPALIVE_TIMEOUT,
          sidecar: strip(a),
          bare: strip(b),
          paceMs,
          hupAt,
          memoryAfter,
          memoryAfterBoth,
          websockets: wsRows,
          logs: logs.filter((l) => l.message !== 'nginx reloaded'),
        },
        null,
        2,
      ) + '\n',
    );
  }
} finally {
  await stopAll();
  await stopAllNginx();
  await rm(work, { recursive: true, force: true });
}
