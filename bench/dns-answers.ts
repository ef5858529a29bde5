// The DNS server's cost: what nginx asks at steady state, and the CPU it takes to answer.
//
//   node_modules/.bin/node bench/dns-answers.ts [--upstreams 100,1000,10000] [--targets 2,5]
//     [--windows 3] [--window-s 10] [--warmup-s 60] [--zone auto] [--micro-queries 200000] [--json FILE]
//
// Part 1 (in-process, no sockets): microseconds per Responder.respond() for the questions nginx
// asks (an SRV answer cached, the same after replace() changed its host, a truncated UDP answer,
// an address), and the time replace() takes for every upstream at once.
//
// Part 2 (a real nginx >= 1.27.3, one worker): --upstreams upstreams, each `server <host>
// service=http resolve` in one shared zone of --zone, each with --targets endpoints on loopback
// addresses (nginx never connects: no requests are sent). 2 endpoints fit a UDP answer; 5 do not,
// so nginx asks each SRV twice (UDP, truncated, then TCP). The DNS server runs in this process,
// which does nothing else while measuring. After --warmup-s (nginx's first resolutions: it asks for
// every upstream at once; the answers' TTL jitter spreads the refreshes out), --windows windows of
// --window-s each: queries per second by type and transport (from the server's own metrics), this
// process's CPU per 1,000 queries (less its idle floor), nginx's worker CPU, UDP receive-buffer
// drops on the machine, and what nginx logged at error level during the windows.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import dnsPacket from 'dns-packet';
import { EndpointAnswers, type EndpointTarget } from '../src/dns/answers.ts';
import { addressHost, serviceHost, serviceQueryName, srvService } from '../src/dns/names.ts';
import { Responder } from '../src/dns/responder.ts';
import { DnsServer } from '../src/dns/server.ts';
import { workerPids } from '../src/nginx/process.ts';
import { createLogger } from '../src/ops/log.ts';
import { Metrics } from '../src/ops/metrics.ts';
import { nginxBuilds } from '../spec/helpers/nginx-check.ts';
import { machine, machineLine, median, parseIntFlag, procCpuMs, round, table } from './lib.ts';
import { startOwnNginx, stopAllNginx, type OwnNginx } from './nginx-kit.ts';

const { values: flags } = parseArgs({
  options: {
    upstreams: { type: 'string' },
    targets: { type: 'string' },
    windows: { type: 'string' },
    'window-s': { type: 'string' },
    'warmup-s': { type: 'string' },
    zone: { type: 'string' },
    'micro-queries': { type: 'string' },
    json: { type: 'string' },
  },
});
const list = (v: string | undefined, fallback: number[]) =>
  v === undefined ? fallback : v.split(',').map((x) => parseIntFlag(x, 'list item', 0, 1));
const UPSTREAMS = list(flags.upstreams, [100, 1000, 10000]);
const TARGETS = list(flags.targets, [2, 5]);
const WINDOWS = parseIntFlag(flags.windows, '--windows', 3, 1);
const WINDOW_S = parseIntFlag(flags['window-s'], '--window-s', 10, 1);
const WARMUP_S = parseIntFlag(flags['warmup-s'], '--warmup-s', 60, 0);
const MICRO = parseIntFlag(flags['micro-queries'], '--micro-queries', 200_000, 1000);
const ZONE = flags.zone ?? 'auto';
if (ZONE !== 'auto' && !/^\d+[km]$/.test(ZONE)) throw new Error('--zone must be auto or like 4m or 512k');
/**
 * `auto`: 2 KiB per peer (endpoints + the upstream's own), at least 4m. Measured on 1.30.4 at
 * 10,000 upstreams x 2 endpoints: 28m ran out ("cannot add new server ... memory exhausted"), 32m did not.
 */
const zoneFor = (upstreams: number, targets: number) =>
  ZONE === 'auto' ? `${Math.max(4, Math.ceil((upstreams * (targets + 1) * 2) / 1024))}m` : ZONE;

const host = (i: number) => serviceHost('bench', `s${i}`, 80);
/** Distinct loopback addresses: nginx is never asked to connect to them. */
const ip = (n: number) => `127.${1 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
function endpoints(upstreams: number, targets: number): Map<string, EndpointTarget[]> {
  const map = new Map<string, EndpointTarget[]>();
  for (let i = 0; i < upstreams; i++)
    map.set(
      host(i),
      Array.from({ length: targets }, (_, j) => ({ ip: ip(i * targets + j), port: 8080 })),
    );
  return map;
}

// ---------------------------------------------------------------------------------------------
// Part 1: the responder alone.

function micro(): Array<Record<string, string | number>> {
  const rows: Array<Record<string, string | number>> = [];
  const upstreams = 10_000;
  const answers = new EndpointAnswers({ unavailablePort: 20000 });
  const map = endpoints(upstreams, 3);
  let t = performance.now();
  answers.replace(map);
  rows.push({
    case: `replace(): ${upstreams} upstreams x 3 endpoints, all new`,
    us: round((performance.now() - t) * 1000, 0),
  });
  map.set(host(0), [{ ip: ip(999_999), port: 8080 }]);
  t = performance.now();
  answers.replace(map);
  rows.push({ case: `replace(): the same with one upstream changed`, us: round((performance.now() - t) * 1000, 0) });

  const query = (name: string, type: dnsPacket.RecordType) =>
    dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] });
  /** Microseconds per call of `respond` over `msgs` in turn; `between` runs before each pass, untimed. */
  const timeIt = (label: string, msgs: Buffer[], respond: (m: Buffer) => unknown, between?: () => void) => {
    for (let i = 0; i < 2000; i++) respond(msgs[i % msgs.length]!); // warm the JIT
    let elapsed = 0;
    for (let done = 0; done < MICRO; done += msgs.length) {
      between?.();
      const start = performance.now();
      for (const m of msgs) respond(m);
      elapsed += performance.now() - start;
    }
    const calls = Math.ceil(MICRO / msgs.length) * msgs.length;
    rows.push({ case: label, us: round((elapsed * 1000) / calls, 2) });
  };
  const srv = Array.from({ length: 1000 }, (_, i) => query(serviceQueryName(host(i), false), 'SRV'));
  const cachedUdp = new Responder(answers);
  const cachedTcp = new Responder(answers);
  timeIt('dns-packet decode only (the floor)', srv, (m) => dnsPacket.decode(m));
  timeIt('SRV, 3 endpoints, UDP, cached', srv, (m) => cachedUdp.respond(m, 'udp'));
  timeIt('SRV, 3 endpoints, TCP, cached', srv, (m) => cachedTcp.respond(m, 'tcp'));
  // A fresh cache before each pass: every answer is encoded, as after replace() changed its host.
  let fresh = new Responder(answers);
  timeIt(
    'SRV, 3 endpoints, UDP, not cached (encoded)',
    srv,
    (m) => fresh.respond(m, 'udp'),
    () => (fresh = new Responder(answers)),
  );
  answers.replace(endpoints(upstreams, 10));
  const tenUdp = new Responder(answers);
  const tenTcp = new Responder(answers);
  timeIt('SRV, 10 endpoints, UDP (truncated), cached', srv, (m) => tenUdp.respond(m, 'udp'));
  timeIt('SRV, 10 endpoints, TCP, cached', srv, (m) => tenTcp.respond(m, 'tcp'));
  const addrs = Array.from({ length: 1000 }, (_, i) => query(addressHost(ip(i)), 'A'));
  timeIt('A of an address name (never cached)', addrs, (m) => tenUdp.respond(m, 'udp'));
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Part 2: nginx asking.

interface Window {
  qps: number;
  srvUdp: number;
  srvTcp: number;
  address: number;
  other: number;
  /** Less the idle floor of this process. */
  cpuMsPer1000: number;
  nginxCpuPct: number;
  serverCpuPct: number;
  udpDrops: number;
}

async function queryCounts(metrics: Metrics): Promise<Record<string, number>> {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === 'ingress_sidecar_dns_queries_total');
  const out: Record<string, number> = {};
  for (const v of (m?.values ?? []) as Array<{ value: number; labels: Record<string, string> }>)
    out[`${v.labels.type} ${v.labels.transport}`] = (out[`${v.labels.type} ${v.labels.transport}`] ?? 0) + v.value;
  return out;
}

async function withNginx(
  binary: string,
  upstreams: number,
  targets: number,
  idleMsPerS: number,
): Promise<{ windows: Window[]; errors: string; warmupDrops: number; warmupQueries: number }> {
  const answers = new EndpointAnswers({ unavailablePort: 20000 });
  answers.replace(endpoints(upstreams, targets));
  const metrics = new Metrics();
  const dns = new DnsServer({ host: '127.0.0.1', port: 0, answers, metrics, logger: createLogger({ silent: true }) });
  await dns.start();
  let nginx: OwnNginx | null = null;
  try {
    const blocks = Array.from(
      { length: upstreams },
      (_, i) =>
        `upstream u${i} {\n    zone isc_endpoints ${zoneFor(upstreams, targets)};\n    server ${host(i)} service=${srvService(false)} resolve;\n}`,
    );
    nginx = await startOwnNginx({
      binary,
      http: `resolver 127.0.0.1:${dns.port};\n${blocks.join('\n')}\n`,
      errorLevel: 'error',
    });
    const drops0 = udpDrops();
    const [worker] = [...(await workerPids(nginx.master))];
    await sleep(WARMUP_S * 1000);
    const warmupDrops = udpDrops() - drops0;
    const warmupQueries = Object.values(await queryCounts(metrics)).reduce((a, b) => a + b, 0);
    const logBefore = (await nginx.errorLog()).length;
    const windows: Window[] = [];
    for (let w = 0; w < WINDOWS; w++) {
      const before = await queryCounts(metrics);
      const drops = udpDrops();
      const cpu0 = process.cpuUsage();
      const nginx0 = worker ? procCpuMs(worker) : 0;
      const t0 = performance.now();
      await sleep(WINDOW_S * 1000);
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const nginxMs = worker ? procCpuMs(worker) - nginx0 : 0;
      const after = await queryCounts(metrics);
      const delta = (key: string) => (after[key] ?? 0) - (before[key] ?? 0);
      const total = Object.keys(after).reduce((n, k) => n + delta(k), 0);
      const address = delta('A udp') + delta('AAAA udp') + delta('A tcp') + delta('AAAA tcp');
      const cpuMs = (cpu.user + cpu.system) / 1000;
      windows.push({
        qps: total / seconds,
        srvUdp: delta('SRV udp') / seconds,
        srvTcp: delta('SRV tcp') / seconds,
        address: address / seconds,
        other: (total - delta('SRV udp') - delta('SRV tcp') - address) / seconds,
        cpuMsPer1000: total > 0 ? ((cpuMs - idleMsPerS * seconds) * 1000) / total : 0,
        serverCpuPct: cpuMs / 10 / seconds,
        nginxCpuPct: nginxMs / 10 / seconds,
        udpDrops: udpDrops() - drops,
      });
    }
    // Only what nginx logged during the windows (the warm-up's drops are counted apart).
    const errorLines = (await nginx.errorLog())
      .slice(logBefore)
      .split('\n')
      .filter((l) => /\[(error|crit|alert|emerg)\]/.test(l));
    const kinds = [
      ...new Set(
        errorLines.map((l) =>
          l
            .replace(/^.*?\[(error|crit|alert|emerg)\] \d+#\d+: (\*\d+ )?/, '$1: ')
            .replace(/[0-9a-z-]+\.(ip4|bench)\.endpoints\S*/g, 'NAME'),
        ),
      ),
    ]
      .slice(0, 3)
      .join(' | ');
    const errors = errorLines.length ? `${errorLines.length} lines: ${kinds}` : '';
    return { windows, errors, warmupDrops, warmupQueries };
  } finally {
    await nginx?.stop();
    await dns.stop();
  }
}

/** This process's CPU per second with nothing to answer (the floor the windows include). */
async function idleCpuMsPerS(): Promise<number> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(WINDOW_S * 1000);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / 1000 / ((performance.now() - t0) / 1000);
}

/** UDP receive-buffer drops on this machine (all sockets: nginx's and the server's), /proc/net/snmp. */
function udpDrops(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('Udp:'));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values?.[names?.indexOf('RcvbufErrors') ?? -1] ?? NaN);
}

async function main(): Promise<void> {
  const stop = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping nginx`);
    void stopAllNginx().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const info = machine();
  console.log(machineLine(info));
  console.log(`\nPart 1: Responder.respond() in-process, ${MICRO} queries per case (1,000 distinct questions)\n`);
  const microRows = micro();
  console.log(
    table(
      ['case', 'us'],
      microRows.map((r) => [r.case!, r.us!]),
    ),
  );

  const build = nginxBuilds().builds.find((b) => {
    const [major, minor, patch] = b.version.split('.').map(Number) as [number, number, number];
    return major > 1 || minor > 27 || (minor === 27 && patch >= 3);
  });
  const results: Array<Record<string, unknown>> = [];
  if (!build) {
    console.log('\nPart 2 skipped: no nginx >= 1.27.3 (../shared/nginx/build.sh could not build 1.30.4)');
  } else {
    console.log(
      `\nPart 2: nginx ${build.version} (1 worker) asking, zone ${ZONE === 'auto' ? '2 KiB per peer, at least 4m' : ZONE}; medians of ${WINDOWS} windows of ${WINDOW_S} s after ${WARMUP_S} s\n`,
    );
    const idle = await idleCpuMsPerS();
    console.log(`  this process idle: ${round(idle, 2)} ms CPU per second (subtracted below)`);
    const rows: Array<Array<string | number>> = [];
    for (const targets of TARGETS) {
      for (const upstreams of UPSTREAMS) {
        const measured = await withNginx(build.binary, upstreams, targets, idle).catch((err: Error) => err);
        if (measured instanceof Error) {
          const why = /\[(?:crit|emerg)\] [^\n]*/.exec(measured.message)?.[0] ?? measured.message.slice(0, 200);
          console.log(`  ${upstreams} upstreams x ${targets} endpoints: nginx did not start: ${why}`);
          rows.push([
            upstreams,
            targets,
            zoneFor(upstreams, targets),
            ...Array<string>(9).fill('-'),
            `did not start: ${why}`,
          ]);
          results.push({ upstreams, targets, error: why });
          continue;
        }
        const { windows, errors, warmupDrops, warmupQueries } = measured;
        const med = (f: (w: Window) => number) => round(median(windows.map(f)), 1);
        const row = {
          upstreams,
          targets,
          qps: med((w) => w.qps),
          srvUdp: med((w) => w.srvUdp),
          srvTcp: med((w) => w.srvTcp),
          address: med((w) => w.address),
          cpuMsPer1000: round(median(windows.map((w) => w.cpuMsPer1000)), 2),
          serverCpuPct: med((w) => w.serverCpuPct),
          nginxCpuPct: med((w) => w.nginxCpuPct),
          udpDrops: med((w) => w.udpDrops),
          warmupQueries,
          warmupDrops,
          errors,
        };
        results.push({ ...row, windows });
        rows.push([
          upstreams,
          targets,
          zoneFor(upstreams, targets),
          row.qps,
          row.srvUdp,
          row.srvTcp,
          row.address,
          row.cpuMsPer1000,
          `${row.serverCpuPct}%`,
          `${row.nginxCpuPct}%`,
          row.udpDrops,
          `${warmupQueries} / ${warmupDrops}`,
          errors || '-',
        ]);
        console.log(`  ${upstreams} upstreams x ${targets} endpoints: ${row.qps} queries/s`);
      }
    }
    console.log(
      '\n' +
        table(
          [
            'upstreams',
            'endpoints each',
            'zone',
            'queries/s',
            'SRV/s UDP',
            'SRV/s TCP',
            'A+AAAA/s',
            'server CPU ms per 1,000 queries',
            'server CPU',
            'nginx worker CPU',
            'UDP drops',
            'warm-up queries / UDP drops',
            'nginx errors',
          ],
          rows,
        ),
    );
  }
  if (flags.json)
    await writeFile(flags.json, JSON.stringify({ machine: info, micro: microRows, nginx: results }, null, 2));
}

await main();
