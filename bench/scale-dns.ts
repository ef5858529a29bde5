// Endpoints at scale: 10,000 Ingresses, each its own Service, served by the real sidecar process
// (`src/cli.ts run --watch-dir`), in dns mode (10,000 dynamic upstreams that nginx re-resolves
// from the sidecar's DNS responder) and in reload mode beside it, on the same nginx build.
//
//   node_modules/.bin/node bench/scale-dns.ts [--ingresses 10000] [--changes 7] [--modes dns,reload]
//     [--warmup-s 60] [--windows 3] [--window-s 10] [--json FILE]
//
// The objects are bench/scale.ts's (bench/scale-objects.ts: one host and two paths per Ingress,
// every tenth with TLS from its own Secret, 20 namespaces, two ready endpoints per Service on
// addresses nothing listens on), written as manifests in files of 1,000 Ingresses with their
// Services, EndpointSlices and Secrets. --changes Services spread over the range (not TLS ones)
// instead point at an echo backend `a` on loopback, each slice in a file of its own.
//
// Per mode: nginx >= 1.27.3 (1.30.4 from ../shared/nginx/build.sh, 1 worker) with an empty conf
// dir; the sidecar as its own process, as in a pod (`run --watch-dir ... --endpoints-mode MODE
// --reload-timeout-ms 120000`, JSON logs read from its stderr, /readyz and /metrics on a loopback
// port). Measured:
//   1. spawn -> /readyz (the first pass applied), then -> every probed host answered by `a`;
//   2. after --warmup-s, --windows idle windows of --window-s: the sidecar process's CPU (utime +
//      stime from /proc/PID/stat), nginx's worker CPU, DNS queries/s by type (the sidecar's
//      ingress_sidecar_dns_queries_total), UDP receive-buffer drops (/proc/net/snmp, this
//      network namespace only), and the memory of both (RSS; nginx's PSS: the shared zone);
//   3. --changes endpoint changes, one at a time: rewrite one probed Service's slice to point at
//      echo backend `b`, and poll its host every 20 ms (a worker thread) until `b` answers, then 2 s
//      more counting any answer that is not `b`. Time to served, and the sidecar's own part (its
//      log line "answered by DNS" or "nginx reloaded", timestamped on arrival). Reloads: SIGHUPs
//      in nginx's error log during the changes.
// The benchmark runs in a network namespace of its own (bench/lib.ts isolateNetwork).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startEcho, type EchoServer } from '../src/dev/echo.ts';
import { workerPids } from '../src/nginx/process.ts';
import { httpGet } from '../spec/helpers/nginx.ts';
import type { NginxBuild } from '../spec/helpers/nginx-check.ts';
import { freePortPair } from '../spec/helpers/sidecar.ts';
import {
  countLoggedHups,
  isolateNetwork,
  loadAverage,
  machine,
  machineLine,
  median,
  now,
  parseIntFlag,
  Poller,
  procCpuMs,
  reloadFreeNginx,
  round,
  table,
} from './lib.ts';
import {
  freePort,
  nginxMemory,
  selfSignedCert,
  startOwnNginx,
  stopAllNginx,
  type NginxMemory,
  type OwnNginx,
} from './nginx-kit.ts';
import { TLS_EVERY, snapshotOf } from './scale-objects.ts';

const { values: flags } = parseArgs({
  options: {
    ingresses: { type: 'string' },
    changes: { type: 'string' },
    modes: { type: 'string' },
    'warmup-s': { type: 'string' },
    windows: { type: 'string' },
    'window-s': { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});
const N = parseIntFlag(flags.ingresses, '--ingresses', 10_000, 10);
const CHANGES = parseIntFlag(flags.changes, '--changes', 7, 1);
const WARMUP_S = parseIntFlag(flags['warmup-s'], '--warmup-s', 60, 0);
const WINDOWS = parseIntFlag(flags.windows, '--windows', 3, 1);
const WINDOW_S = parseIntFlag(flags['window-s'], '--window-s', 10, 1);
const MODES = (flags.modes ?? 'dns,reload').split(',').map((m) => {
  if (m !== 'dns' && m !== 'reload') throw new Error(`--modes: dns or reload, not ${m}`);
  return m as 'dns' | 'reload';
});
const CHUNK = 1000;
const CLI = path.join(import.meta.dirname, '../src/cli.ts');
const READY_TIMEOUT_MS = 20 * 60_000;
const POLL_MS = 20;
const TAIL_MS = 2000;
const TARGET_MS = 2000;

const ns = (i: number) => `team-${i % 20}`;
const hostOf = (i: number) => `app-${i}.scale.test`;

/** --changes indices spread over the range, none of them a TLS Ingress (HTTP would redirect). */
function probeIndices(): number[] {
  return Array.from({ length: CHANGES }, (_, k) => {
    let i = Math.floor(((k + 0.5) * N) / CHANGES);
    if (i % TLS_EVERY === 0) i++;
    return i;
  });
}

function probeSlice(i: number, echo: EchoServer): string {
  return JSON.stringify({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: `app-${i}-1`, namespace: ns(i), labels: { 'kubernetes.io/service-name': `app-${i}` } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: echo.port }],
    endpoints: [{ addresses: [echo.host], conditions: { ready: true } }],
  });
}

async function writeManifests(dir: string, cert: { crt: string; key: string }, probes: number[], a: EchoServer) {
  const snap = snapshotOf(N, cert);
  const probeSet = new Set(probes.map((i) => `${ns(i)}/app-${i}-1`));
  const chunks = new Map<number, string[]>();
  const add = (i: number, o: object) => {
    const c = Math.floor(i / CHUNK);
    if (!chunks.has(c)) chunks.set(c, []);
    chunks.get(c)!.push(JSON.stringify(o));
  };
  const index = (name: string) => Number(/^app-(\d+)/.exec(name)![1]);
  for (const o of [...snap.ingresses, ...snap.services, ...snap.secrets]) add(index(o.metadata!.name!), o);
  for (const s of snap.endpointSlices)
    if (!probeSet.has(`${s.metadata!.namespace}/${s.metadata!.name}`)) add(index(s.metadata!.name!), s);
  for (const [c, docs] of chunks)
    await writeFile(path.join(dir, `objects-${String(c).padStart(3, '0')}.yaml`), docs.join('\n---\n') + '\n');
  for (const i of probes) await writeFile(path.join(dir, `probe-${i}.yaml`), probeSlice(i, a) + '\n');
}

// ---------------------------------------------------------------------------------------------
// The sidecar process.

interface SidecarProcess {
  child: ChildProcess;
  status: number;
  /** Its JSON log lines, each with when it arrived here. */
  logs: Array<{ at: number; message: string; [k: string]: unknown }>;
  stderr: () => string;
  stop(): Promise<void>;
}

function startSidecar(args: string[]): SidecarProcess {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', CLI, 'run', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // It logs to stderr (src/ops/log.ts), one JSON object a line.
  const logs: SidecarProcess['logs'] = [];
  let err = '';
  createInterface({ input: child.stderr! }).on('line', (line) => {
    err = (err + line + '\n').slice(-4000);
    try {
      logs.push({ ...(JSON.parse(line) as { message: string }), at: now() });
    } catch {
      logs.push({ at: now(), message: line });
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    child,
    status: Number(args[args.indexOf('--listen') + 1]!.split(':')[1]),
    logs,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killed = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killed);
    },
  };
}

/** Sums of the sidecar's counters by name (and by `type transport` for DNS queries), from /metrics. */
async function scrape(port: number): Promise<{ dns: Record<string, number>; counters: Record<string, number> }> {
  const r = await httpGet(port, '127.0.0.1', '/metrics');
  const dns: Record<string, number> = {};
  const counters: Record<string, number> = {};
  for (const line of r.body.split('\n')) {
    const m = /^(ingress_sidecar_\w+?)(?:\{([^}]*)\})? ([0-9.e+-]+)$/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    counters[m[1]!] = (counters[m[1]!] ?? 0) + value;
    if (m[1] === 'ingress_sidecar_dns_queries_total') {
      const label = (k: string) => new RegExp(`${k}="([^"]*)"`).exec(m[2] ?? '')?.[1] ?? '?';
      const key = `${label('type')} ${label('transport')}`;
      dns[key] = (dns[key] ?? 0) + value;
    }
  }
  return { dns, counters };
}

function rssKb(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? NaN);
}

/**
 * Datagrams dropped so far by the sockets of the DNS port (/proc/net/udp's last column): the
 * responder's own (local port) and nginx's resolver sockets (connected to it).
 */
function dnsSocketDrops(dnsPort: number): { responder: number; resolver: number } {
  const out = { responder: 0, resolver: 0 };
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 13) continue;
    const port = (addr: string) => parseInt(addr.split(':')[1] ?? '', 16);
    const drops = Number(f[f.length - 1]);
    if (port(f[1]!) === dnsPort) out.responder += drops;
    else if (port(f[2]!) === dnsPort) out.resolver += drops;
  }
  return out;
}

/** UDP receive-buffer drops in this network namespace (/proc/net/snmp). */
function udpDrops(): number {
  const [names, values] = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'))
    .map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf('RcvbufErrors') ?? -1] ?? NaN);
}

/** nginx's error-level lines in `log`: how many, and the first kinds (names shortened). */
function errorSummary(log: string): string {
  const lines = log.split('\n').filter((l) => /\[(error|crit|alert|emerg)\]/.test(l));
  const kinds = new Set(
    lines.map((l) => l.replace(/^.*?\[(\w+)\] \d+#\d+: (\*\d+ )?/, '$1: ').replace(/\S+\.internal\S*/g, 'NAME')),
  );
  return lines.length ? `${lines.length} lines: ${[...kinds].slice(0, 3).join(' | ')}` : '';
}

// ---------------------------------------------------------------------------------------------

interface Window {
  sidecarCpuPct: number;
  nginxWorkerCpuPct: number;
  qps: number;
  srvUdp: number;
  srvTcp: number;
  address: number;
  udpDrops: number;
}

interface Change {
  index: number;
  servedMs: number;
  /** write -> the sidecar's log line saying it answered (dns) or reloaded (reload) */
  sidecarMs: number;
  /** the pass's own duration, as it logged it */
  passMs: number;
  wrongAfter: number;
}

interface ModeResult {
  mode: 'dns' | 'reload';
  load: string;
  toReadyS: number;
  readyToProbesServedS: number;
  /**
   * From spawn to every probed host served: what the first probe got first, UDP receive-buffer
   * drops and DNS queries answered; drops until the end of the warm-up; nginx's errors until then.
   */
  startup: {
    firstAnswer: string;
    udpDrops: number;
    /** of them, by the responder's socket and by nginx's resolver socket */
    socketDrops: { responder: number; resolver: number };
    queries: number;
    warmupDrops: number;
    nginxErrors: string;
  };
  firstPassMs: number;
  windows: Window[];
  /** The sidecar's RSS when ready, after the warm-up, after the idle windows, after the changes. */
  sidecarRssMb: number[];
  nginx: NginxMemory;
  changes: Change[];
  reloadsDuringChanges: number;
  reloadsDuringWindows: number;
  nginxErrors: string;
}

async function oneMode(
  mode: 'dns' | 'reload',
  build: NginxBuild,
  cert: { crt: string; key: string },
  poller: Poller,
): Promise<ModeResult> {
  const load = loadAverage();
  const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-scale-dns-'));
  const watchDir = path.join(work, 'manifests');
  const confDir = path.join(work, 'conf.d');
  await mkdir(watchDir);
  await mkdir(confDir);
  const a = await startEcho('a');
  const b = await startEcho('b');
  let nginx: OwnNginx | null = null;
  let sidecar: SidecarProcess | null = null;
  try {
    const probes = probeIndices();
    await writeManifests(watchDir, cert, probes, a);
    nginx = await startOwnNginx({ confDir, binary: build.binary });
    const [httpPort, httpsPort, statusPort, dnsPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const drops0 = udpDrops();
    const t0 = now();
    sidecar = startSidecar([
      ...['--watch-dir', watchDir, '--conf-dir', confDir, '--nginx-pid-file', nginx.pidFile],
      ...['--nginx-binary', build.binary, '--http-port', String(httpPort), '--https-port', String(httpsPort)],
      ...['--https-redirect-port', String(httpsPort), '--listen', `127.0.0.1:${statusPort}`, '--no-ipv6'],
      ...['--endpoints-mode', mode, '--dns-port', String(dnsPort), '--unavailable-port', String(await freePortPair())],
      ...['--reload-timeout-ms', '120000', '--log-format', 'json'],
    ]);
    for (let i = 0; i < READY_TIMEOUT_MS / 500; i++) {
      if (sidecar.child.exitCode !== null) throw new Error(`the sidecar exited: ${sidecar.stderr()}`);
      const r = await httpGet(statusPort, '127.0.0.1', '/readyz').catch(() => null);
      if (r?.status === 200) break;
      await sleep(500);
    }
    const readyAt = now();
    const sidecarRssMb = [rssKb(sidecar.child.pid!) / 1024];
    let firstAnswer = '';
    for (const i of probes) {
      const p = poller.probe(httpPort, hostOf(i), 50, 120_000, 0, 'a');
      firstAnswer ||= await p.started;
      const r = await p.done;
      if (!r.ok) throw new Error(`${hostOf(i)} not answered by a within 120 s (${r.last})`);
    }
    const probesAt = now();
    // Logged once the reload's diff is made, which can be after /readyz already says ready.
    const firstPass = sidecar.logs.find((l) => l.message === 'nginx reloaded');
    const startup = {
      firstAnswer,
      udpDrops: udpDrops() - drops0,
      socketDrops: dnsSocketDrops(dnsPort),
      queries: Object.values((await scrape(statusPort)).dns).reduce((a, b) => a + b, 0),
    };
    console.error(
      `${mode}: ready after ${round((readyAt - t0) / 1000)} s, probes served ${round((probesAt - readyAt) / 1000)} s later; warm-up ${WARMUP_S} s`,
    );
    await sleep(Math.max(0, readyAt + WARMUP_S * 1000 - now()));
    const warmupDrops = udpDrops() - drops0;
    sidecarRssMb.push(rssKb(sidecar.child.pid!) / 1024);

    // Idle windows.
    const pid = sidecar.child.pid!;
    const [worker] = [...(await workerPids(nginx.master))];
    const logBefore = (await nginx.errorLog()).length;
    const hupsBefore = countLoggedHups(await nginx.errorLog());
    const windows: Window[] = [];
    for (let w = 0; w < WINDOWS; w++) {
      const before = await scrape(statusPort);
      const [cpu0, ncpu0, drops0, w0] = [procCpuMs(pid), worker ? procCpuMs(worker) : 0, udpDrops(), now()];
      await sleep(WINDOW_S * 1000);
      const [cpu1, ncpu1, drops1, w1] = [procCpuMs(pid), worker ? procCpuMs(worker) : 0, udpDrops(), now()];
      const after = await scrape(statusPort);
      const s = (w1 - w0) / 1000;
      const d = (k: string) => ((after.dns[k] ?? 0) - (before.dns[k] ?? 0)) / s;
      const total = Object.keys(after.dns).reduce((n, k) => n + d(k), 0);
      const address = d('A udp') + d('AAAA udp') + d('A tcp') + d('AAAA tcp');
      windows.push({
        sidecarCpuPct: (cpu1 - cpu0) / 10 / s,
        nginxWorkerCpuPct: (ncpu1 - ncpu0) / 10 / s,
        qps: total,
        srvUdp: d('SRV udp'),
        srvTcp: d('SRV tcp'),
        address,
        udpDrops: drops1 - drops0,
      });
    }
    const reloadsDuringWindows = countLoggedHups(await nginx.errorLog()) - hupsBefore;
    sidecarRssMb.push(rssKb(pid) / 1024);
    const nginxMem = await nginxMemory(nginx.master);

    // Endpoint changes, one at a time.
    const changes: Change[] = [];
    const hupsBeforeChanges = countLoggedHups(await nginx.errorLog());
    const doneMessage = mode === 'dns' ? 'endpoints changed; answered by DNS, no reload' : 'nginx reloaded';
    for (const i of probes) {
      const p = poller.probe(httpPort, hostOf(i), POLL_MS, 120_000, TAIL_MS, 'b');
      if ((await p.started) === 'ok') throw new Error(`${hostOf(i)} answered by b before the change`);
      const writeAt = now();
      await writeFile(path.join(watchDir, `probe-${i}.yaml`), probeSlice(i, b) + '\n');
      const r = await p.done;
      if (!r.ok) throw new Error(`${hostOf(i)}: b did not answer within 120 s of the change (${r.last})`);
      const line = sidecar.logs.find((l) => l.at > writeAt && l.message === doneMessage);
      changes.push({
        index: i,
        servedMs: r.at - writeAt,
        sidecarMs: line ? line.at - writeAt : NaN,
        passMs: typeof line?.ms === 'number' ? line.ms : NaN,
        wrongAfter: r.wrongAfter,
      });
      console.error(`${mode}: change of app-${i}: served after ${round(r.at - writeAt)} ms`);
      await sleep(1000);
    }
    const reloadsDuringChanges = countLoggedHups(await nginx.errorLog()) - hupsBeforeChanges;
    sidecarRssMb.push(rssKb(pid) / 1024);
    const log = await nginx.errorLog();
    return {
      mode,
      load,
      toReadyS: (readyAt - t0) / 1000,
      readyToProbesServedS: (probesAt - readyAt) / 1000,
      startup: { ...startup, warmupDrops, nginxErrors: errorSummary(log.slice(0, logBefore)) },
      firstPassMs: typeof firstPass?.ms === 'number' ? firstPass.ms : NaN,
      windows,
      sidecarRssMb,
      nginx: nginxMem,
      changes,
      reloadsDuringChanges,
      reloadsDuringWindows,
      nginxErrors: errorSummary(log.slice(logBefore)),
    };
  } finally {
    await sidecar?.stop();
    await nginx?.stop();
    await a.close();
    await b.close();
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
  const build = reloadFreeNginx();
  if (!build) throw new Error('no nginx >= 1.27.3: bash ../shared/nginx/build.sh builds 1.30.4');
  const info = machine();
  const cert = await selfSignedCert(['*.scale.test']);
  const poller = Poller.start();
  const results: ModeResult[] = [];
  try {
    for (const mode of MODES) results.push(await oneMode(mode, build, cert, poller));
  } finally {
    await poller.stop();
  }
  const mb = (kb: number) => round(kb / 1024, 0);
  const medW = (r: ModeResult, f: (w: Window) => number) => round(median(r.windows.map(f)));
  const eachW = (r: ModeResult, f: (w: Window) => number) => `[${r.windows.map((w) => round(f(w))).join(', ')}]`;
  const medC = (r: ModeResult, f: (c: Change) => number) => round(median(r.changes.map(f)));
  const eachC = (r: ModeResult, f: (c: Change) => number) => `[${r.changes.map((c) => round(f(c))).join(', ')}]`;
  const rows: Array<[string, (r: ModeResult) => string | number]> = [
    ['load average at the start', (r) => r.load],
    ['spawn → /readyz (first pass applied), s', (r) => round(r.toReadyS)],
    ['the first pass, as logged, ms', (r) => r.firstPassMs],
    ['/readyz → every probed host served, s', (r) => round(r.readyToProbesServedS)],
    ['the first probed host answered first', (r) => r.startup.firstAnswer],
    [
      'DNS queries answered / UDP drops until then; UDP drops until the end of the warm-up',
      (r) => `${r.startup.queries} / ${r.startup.udpDrops}; ${r.startup.warmupDrops}`,
    ],
    [
      "of those drops: by the responder's socket / by nginx's resolver socket",
      (r) => `${r.startup.socketDrops.responder} / ${r.startup.socketDrops.resolver}`,
    ],
    ['nginx errors logged until the end of the warm-up', (r) => r.startup.nginxErrors || '-'],
    [
      `**sidecar CPU, idle**, % of a core (median [each ${WINDOW_S} s window])`,
      (r) => `${medW(r, (w) => w.sidecarCpuPct)} ${eachW(r, (w) => w.sidecarCpuPct)}`,
    ],
    [
      'nginx worker CPU, idle, %',
      (r) => `${medW(r, (w) => w.nginxWorkerCpuPct)} ${eachW(r, (w) => w.nginxWorkerCpuPct)}`,
    ],
    ['**DNS queries/s**', (r) => `${medW(r, (w) => w.qps)} ${eachW(r, (w) => w.qps)}`],
    [
      'of which SRV UDP / SRV TCP / A+AAAA',
      (r) => `${medW(r, (w) => w.srvUdp)} / ${medW(r, (w) => w.srvTcp)} / ${medW(r, (w) => w.address)}`,
    ],
    ['UDP receive-buffer drops per window', (r) => `${medW(r, (w) => w.udpDrops)} ${eachW(r, (w) => w.udpDrops)}`],
    ['reloads during the idle windows', (r) => r.reloadsDuringWindows],
    [
      'sidecar RSS, MB: ready / after the warm-up / after the windows / after the changes',
      (r) => r.sidecarRssMb.map((x) => round(x, 0)).join(' / '),
    ],
    ['nginx RSS / PSS (master + worker), MB', (r) => `${mb(r.nginx.rssKb)} / ${mb(r.nginx.pssKb)}`],
    [
      `**endpoint change → served**, ms (median [each of ${CHANGES}])`,
      (r) => `${medC(r, (c) => c.servedMs)} ${eachC(r, (c) => c.servedMs)}`,
    ],
    [
      'of which: change → the sidecar done (answers in place / reload verified), ms',
      (r) => `${medC(r, (c) => c.sidecarMs)} ${eachC(r, (c) => c.sidecarMs)}`,
    ],
    ['the pass itself, as logged, ms', (r) => `${medC(r, (c) => c.passMs)} ${eachC(r, (c) => c.passMs)}`],
    [
      `answers not from the new backend in the ${TAIL_MS / 1000} s after the first`,
      (r) => r.changes.reduce((n, c) => n + c.wrongAfter, 0),
    ],
    ['**nginx reloads during the changes**', (r) => r.reloadsDuringChanges],
    ['nginx errors logged (windows and changes)', (r) => r.nginxErrors || '-'],
  ];
  const out = [
    `## ${N.toLocaleString('en')} Ingresses: endpoint changes and the DNS responder's cost, ${MODES.join(' and ')} mode`,
    '',
    machineLine({ ...info, nginx: build.version }),
    `nginx ${build.version}, 1 worker; the sidecar as a process (src/cli.ts run --watch-dir); ${N} Ingresses / Services (upstreams), ${Math.ceil(N / TLS_EVERY)} TLS Secrets; ${WINDOWS} idle windows of ${WINDOW_S} s after ${WARMUP_S} s; ${CHANGES} changes`,
    '',
    table(
      ['', ...results.map((r) => `${r.mode} mode`)],
      rows.map(([label, f]) => [label, ...results.map(f)]),
    ),
    '',
  ];
  const dns = results.find((r) => r.mode === 'dns');
  const reload = results.find((r) => r.mode === 'reload');
  if (dns) {
    const served = median(dns.changes.map((c) => c.servedMs));
    out.push(
      `Target (dns mode: an endpoint change served within ${TARGET_MS} ms, 0 reloads): ${served <= TARGET_MS && dns.reloadsDuringChanges === 0 ? '**met**' : '**NOT met**'} (median ${round(served)} ms, max ${round(Math.max(...dns.changes.map((c) => c.servedMs)))} ms, ${dns.reloadsDuringChanges} reloads).`,
    );
  }
  if (dns && reload) {
    const cpu = (r: ModeResult) => median(r.windows.map((w) => w.sidecarCpuPct));
    out.push(
      `The sidecar's CPU for DNS (dns − reload, idle): ${round(cpu(dns) - cpu(reload))}% of a core at ${round(median(dns.windows.map((w) => w.qps)))} queries/s; change → served, reload ÷ dns: ${round(median(reload.changes.map((c) => c.servedMs)) / median(dns.changes.map((c) => c.servedMs)), 2)}×.`,
    );
  }
  console.log(out.join('\n'));
  if (flags.json)
    await writeFile(
      flags.json,
      JSON.stringify({ benchmark: 'scale-dns', machine: info, build, results }, null, 2) + '\n',
    );
}

try {
  await main();
} finally {
  await stopAllNginx();
}
