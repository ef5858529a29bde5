// Shared parts of bench/scale.ts, bench/dataplane.ts and bench/reload-under-load.ts: an nginx
// started by src/dev/local-nginx.ts with the settings those benchmarks need (worker_shutdown_timeout,
// a fixed http{} body, a fast stop), the memory and workers of an nginx read from /proc, a
// self-signed certificate made with openssl, and wrk with a Lua script that reports exact figures
// as JSON.
//
// Traffic goes to 127.0.0.1 only. Every process started here is stopped by stop() (callers use
// try/finally) and, for nginx, also by stopAllNginx() from a SIGINT/SIGTERM handler.
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { nginxBinary, startNginx, type NginxOptions, type RunningNginx } from '../src/dev/local-nginx.ts';
import { childPids, nginxWorkers } from '../src/dev/nginx-workers.ts';

export { nginxWorkers } from '../src/dev/nginx-workers.ts';

export const ms = (t0: number): number => performance.now() - t0;

// ---------------------------------------------------------------------------------------------
// nginx

/** A local nginx that stopAllNginx() also stops. */
export type OwnNginx = RunningNginx;

export type OwnNginxOptions = Omit<NginxOptions, 'pidFile' | 'fastStop' | 'startTimeoutMs'>;

const running = new Set<OwnNginx>();

/** SIGTERM on stop (fast shutdown; draining workers go too), then SIGKILL what is left. */
export async function startOwnNginx(opts: OwnNginxOptions): Promise<OwnNginx> {
  const nginx = await startNginx({ ...opts, fastStop: true, startTimeoutMs: 60_000 });
  const self: OwnNginx = {
    ...nginx,
    stop() {
      running.delete(self);
      return nginx.stop();
    },
  };
  running.add(self);
  return self;
}

export async function stopAllNginx(): Promise<void> {
  await Promise.all([...running].map((n) => n.stop().catch(() => undefined)));
}

/** `nginx -t` of a running nginx's own main config (what a reload parses), in ms. */
export async function timeNginxTest(n: OwnNginx): Promise<number> {
  const t0 = performance.now();
  const r = await execa(nginxBinary(), ['-t', '-q', '-p', n.prefix + '/', '-c', n.conf, '-e', 'stderr'], {
    reject: false,
    all: true,
    stdout: 'ignore',
    timeout: 120_000,
  });
  const t = ms(t0);
  if (r.exitCode !== 0) throw new Error(`nginx -t failed: ${r.all ?? r.shortMessage}`);
  return t;
}

export interface NginxMemory {
  /** master + every child (workers, cache processes), old workers still draining included. */
  processes: number;
  /** Sum of VmRSS: counts pages the workers share with the master once per process. */
  rssKb: number;
  /** Sum of Pss (proportional set size): shared pages split between the sharers. */
  pssKb: number;
  masterRssKb: number;
}

export async function nginxMemory(master: number): Promise<NginxMemory> {
  const pids = [master, ...(await childPids(master))];
  let rssKb = 0;
  let pssKb = 0;
  let masterRssKb = 0;
  let processes = 0;
  for (const pid of pids) {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'latin1').catch(() => '');
    const rss = Number(/^Rss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? NaN);
    const pss = Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? NaN);
    if (!Number.isFinite(rss)) continue;
    processes++;
    rssKb += rss;
    pssKb += Number.isFinite(pss) ? pss : 0;
    if (pid === master) masterRssKb = rss;
  }
  return { processes, rssKb, pssKb, masterRssKb };
}

/**
 * SIGHUP the master and time, polling /proc every `pollMs`: the first new live worker, and the
 * moment every live worker is new and no old worker is live (what the sidecar's verification
 * waits for). The old workers may still be draining after that.
 */
export async function timedReload(
  master: number,
  opts: { pollMs?: number; timeoutMs?: number } = {},
): Promise<{ firstNewWorker: number; verified: number }> {
  const { pollMs = 2, timeoutMs = 60_000 } = opts;
  const before = new Set((await nginxWorkers(master)).live);
  const t0 = performance.now();
  process.kill(master, 'SIGHUP');
  let firstNewWorker = NaN;
  for (let i = 0; i < Math.ceil(timeoutMs / pollMs) + 1 && ms(t0) < timeoutMs; i++) {
    const { live } = await nginxWorkers(master);
    const fresh = live.filter((p) => !before.has(p));
    if (fresh.length > 0 && Number.isNaN(firstNewWorker)) firstNewWorker = ms(t0);
    if (fresh.length > 0 && fresh.length === live.length) return { firstNewWorker, verified: ms(t0) };
    await sleep(pollMs);
  }
  throw new Error(`nginx ${master} did not replace its workers within ${timeoutMs} ms of SIGHUP`);
}

/** Waits (bounded) until the master has live workers and none draining. */
export async function waitDrained(master: number, timeoutMs: number): Promise<boolean> {
  const t0 = performance.now();
  for (let i = 0; i < Math.ceil(timeoutMs / 20) + 1 && ms(t0) < timeoutMs; i++) {
    const w = await nginxWorkers(master);
    if (w.live.length > 0 && w.draining.length === 0) return true;
    await sleep(20);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Ports and certificates

export { freePort } from '../spec/helpers/nginx.ts';

/** A self-signed RSA 2048 certificate for `names` (subjectAltName DNS names), valid 30 days. */
export async function selfSignedCert(names: string[]): Promise<{ crt: string; key: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-bench-cert-'));
  try {
    const r = await execa(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-sha256',
        '-days',
        '30',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'crt.pem'),
        '-subj',
        `/CN=${names[0]}`,
        '-addext',
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
        '-addext',
        'basicConstraints=critical,CA:FALSE',
        '-addext',
        'extendedKeyUsage=serverAuth',
      ],
      { reject: false, stdin: 'ignore', timeout: 60_000, all: true },
    );
    if (r.exitCode !== 0) throw new Error(`openssl failed: ${r.all ?? r.shortMessage}`);
    return {
      crt: await readFile(path.join(dir, 'crt.pem'), 'utf8'),
      key: await readFile(path.join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// wrk

export interface WrkResult {
  requests: number;
  durationS: number;
  rps: number;
  /** latency in ms */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
  /** responses with a status outside 200-299, counted by the script (only with countStatus) */
  non2xx: number | null;
  /** non-2xx responses by status class, e.g. {"3xx": 1} */
  byClass: Record<string, number>;
  raw: string;
}

/**
 * The Lua script: done() prints one JSON line with wrk's exact counters and percentiles (µs).
 * With countStatus, response() counts every status outside 2xx per thread (wrk's own "status"
 * error counts only >= 400); it costs a Lua call per response, so the data-plane runs omit it.
 */
function wrkScript(countStatus: boolean): string {
  return `
local threads = {}
function setup(thread) table.insert(threads, thread) end
${
  countStatus
    ? `function init(args) n3 = 0; n4 = 0; n5 = 0; nother = 0 end
function response(status, headers, body)
  if status >= 200 and status < 300 then return end
  if status >= 300 and status < 400 then n3 = n3 + 1
  elseif status >= 400 and status < 500 then n4 = n4 + 1
  elseif status >= 500 and status < 600 then n5 = n5 + 1
  else nother = nother + 1 end
end`
    : ''
}
function done(summary, latency, requests)
  local n3, n4, n5, no = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    n3 = n3 + (t:get("n3") or 0); n4 = n4 + (t:get("n4") or 0)
    n5 = n5 + (t:get("n5") or 0); no = no + (t:get("nother") or 0)
  end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.3f,"n3":%d,"n4":%d,"n5":%d,"nother":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean, n3, n4, n5, no))
end
`;
}

export interface WrkRun {
  /** resolves when wrk has exited and its report is parsed */
  result: Promise<WrkResult>;
  /** SIGINT: wrk stops, reports and exits */
  interrupt(): void;
}

/**
 * Runs wrk against a 127.0.0.1 URL. `durationS` is wrk's own -d; the process is killed after
 * durationS + 30 s whatever happens. Callers must await `result` (or interrupt() first).
 */
export function runWrk(opts: {
  url: string;
  host?: string;
  threads: number;
  connections: number;
  durationS: number;
  countStatus?: boolean;
  timeoutS?: number;
  scriptDir: string;
  /** run wrk under `taskset -c CPUS` */
  cpus?: string;
}): WrkRun {
  const u = new URL(opts.url);
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost' && u.hostname !== '[::1]')
    throw new Error(`wrk only against loopback, not ${u.hostname}`);
  const script = path.join(opts.scriptDir, `wrk-${opts.countStatus ? 'status' : 'plain'}.lua`);
  const args = [
    `-t${opts.threads}`,
    `-c${opts.connections}`,
    `-d${opts.durationS}s`,
    `--timeout`,
    `${opts.timeoutS ?? 5}s`,
    '-s',
    script,
    ...(opts.host ? ['-H', `Host: ${opts.host}`] : []),
    opts.url,
  ];
  let child: ReturnType<typeof spawn> | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  const result = (async () => {
    await writeFile(script, wrkScript(opts.countStatus ?? false));
    const proc = opts.cpus
      ? spawn('taskset', ['-c', opts.cpus, 'wrk', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    killTimer = setTimeout(() => proc.kill('SIGKILL'), (opts.durationS + 30) * 1000);
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve, reject) => {
      proc.on('error', reject);
      proc.on('close', (c) => resolve(c));
    });
    if (killTimer) clearTimeout(killTimer);
    const line = /^WRKJSON (.*)$/m.exec(out)?.[1];
    if (!line) throw new Error(`wrk exited ${code} without a report:\n${out}\n${err}`);
    const j = JSON.parse(line) as Record<string, number>;
    const n = (k: string) => j[k] ?? 0;
    const non2xx = opts.countStatus ? n('n3') + n('n4') + n('n5') + n('nother') : null;
    const byClass: Record<string, number> = {};
    if (opts.countStatus)
      for (const [k, c] of [
        ['3xx', 'n3'],
        ['4xx', 'n4'],
        ['5xx', 'n5'],
        ['other', 'nother'],
      ] as const)
        if (n(c) > 0) byClass[k] = n(c);
    const durationS = n('duration_us') / 1e6;
    return {
      requests: n('requests'),
      durationS,
      rps: n('requests') / durationS,
      p50: n('p50') / 1000,
      p90: n('p90') / 1000,
      p99: n('p99') / 1000,
      max: n('max') / 1000,
      mean: n('mean') / 1000,
      errors: { connect: n('connect'), read: n('read'), write: n('write'), timeout: n('timeout'), status: n('status') },
      non2xx,
      byClass,
      raw: out,
    } satisfies WrkResult;
  })();
  return {
    result,
    interrupt() {
      child?.kill('SIGINT');
    },
  };
}

export function wrkAvailable(): boolean {
  // wrk -v prints its version and exits 1: only "could it run" matters.
  return spawnSync('wrk', ['-v'], { stdio: 'ignore', timeout: 10_000 }).error === undefined;
}

export function socketErrors(r: Pick<WrkResult, 'errors'>): number {
  return r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout;
}

// ---------------------------------------------------------------------------------------------
// Tiny backends: an nginx per backend, as a pod's own process, counting what it served.

/** A backend nginx answering `200 <name>` on ip:port; its stub_status (at STUB_PATH) counts what it served. */
export interface TinyBackend {
  name: string;
  ip: string;
  port: number;
  nginx: OwnNginx;
  /** Connections accepted and requests served so far, not counting the reads of these figures. */
  served(): Promise<{ connections: number; requests: number }>;
}

const STUB_PATH = '/bench-stub-status';

export async function startTinyBackend(opts: {
  name: string;
  ip: string;
  port: number;
  binary?: string;
}): Promise<TinyBackend> {
  const nginx = await startOwnNginx({
    ...(opts.binary ? { binary: opts.binary } : {}),
    http: [
      'server {',
      `    listen ${opts.ip}:${opts.port};`,
      `    location / {\n        return 200 "${opts.name}\\n";\n    }`,
      `    location = ${STUB_PATH} {\n        stub_status;\n    }`,
      '}',
    ].join('\n'),
  });
  let reads = 0;
  return {
    ...opts,
    nginx,
    async served() {
      // Each read is a connection and a request of its own, counted in what it reads.
      reads++;
      const text = await getText(opts.ip, opts.port, STUB_PATH);
      // "server accepts handled requests\n 16 16 31"
      const m = /accepts handled requests\s+(\d+)\s+\d+\s+(\d+)/.exec(text);
      if (!m) throw new Error(`${opts.name}: no counts in its stub_status: ${text}`);
      return { connections: Number(m[1]) - reads, requests: Number(m[2]) - reads };
    },
  };
}

/** GET http://ip:port/path on a fresh connection, loopback only; the body of a 200. */
function getText(ip: string, port: number, urlPath: string): Promise<string> {
  if (!ip.startsWith('127.')) return Promise.reject(new Error(`loopback only, not ${ip}`));
  return new Promise((resolve, reject) => {
    const req = http.get({ host: ip, port, path: urlPath, agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${res.statusCode}: ${body}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
