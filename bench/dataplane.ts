// Data plane: requests through the sidecar's generated configuration against a hand-written
// minimal configuration for the same routes, with wrk, plain HTTP and TLS.
//
//   node_modules/.bin/node bench/dataplane.ts [--reps 7] [--duration 5] [--threads 2]
//     [--connections 32] [--logs off,on] [--ablations] [--arms A,B] [--protocols http,https]
//     [--pin] [--json FILE]
//
// Three nginx processes on loopback, each started from the same main config (bench/nginx-kit.ts,
// modelled on src/dev/local-nginx.ts, worker_processes 1):
// - backend: `return 200 "ok\n"` (nginx itself, so the backend is not the bottleneck);
// - generated: the files the sidecar renders (translate + renderModel + CertStore, as a pass does)
//   for 20 Ingresses, each one host with Prefix `/` and `/api` to its own Service, whose one
//   endpoint is the backend. Hosts 0-9 are plain; hosts 10-19 have TLS from their own Secret (one
//   RSA 2048 certificate for `localhost` and `*.dp.test`, made with openssl). wrk sends the URL's
//   host as SNI, so the TLS host measured is `localhost` (/etc/hosts: 127.0.0.1);
// - minimal: what a person would write for the same routes: 20 `upstream { server …; keepalive
//   32; }`, one server per host with the same three locations (`/api/`, `= /api`, `/`) and
//   proxy_pass, HTTP/1.1 with `Connection ""` and the client's Host header, default servers that
//   answer 404, the same certificate file for the TLS hosts. No other header, variable or map.
//
// --logs: `off` renders without the access log (--access-log off) and the minimal config has none;
// `on` renders with the default JSON access log (/dev/stdout, which a daemonized nginx has on
// /dev/null) and gives the minimal config `access_log /dev/stdout combined` in each server.
//
// --ablations adds arms made from the generated files with one feature taken out, to show what
// each costs: `no-set` (without the `set $ingress_sidecar_*` lines, which only feed the access
// log), `no-extra-headers` (without the X-Real-IP, X-Forwarded-* and Upgrade proxy_set_header
// lines), `no-redirect-if` (without the `if ($scheme = http) { return 308 … }` in the locations of
// TLS hosts), `none-of-the-three` and `proxy-buffering-default` (without `proxy_buffering off`
// and the buffer and body size lines: nginx's defaults), with the access log off;
// with it on, `log-combined` (nginx's `combined` format instead of the JSON one) and
// `log-buffered` (the JSON log with `buffer=64k flush=1s`). --arms a,b,... picks arms instead,
// including `no-http2-listen` (`listen … ssl` without `http2`) and `no-ssl-protocols` (without the
// ssl_protocols line); --protocols http or https runs one protocol only. Ablation arms run in
// the same reps as the others, in rotating order.
//
// A/A control, always: `generated-again`, the same generated files served by a second nginx. Its
// distance from `generated` is the noise of the measurement in that run.
//
// --pin: every proxy nginx's worker runs on CPU 1 (worker_cpu_affinity), the backend's worker and
// wrk on CPU 0 (taskset), so that the proxy under test has a CPU to itself. Off by default: when
// other sessions load the machine, a pinned worker cannot move away from them and the runs get
// noisier.
//
// Each rep runs, for each protocol and log setting, one wrk run against each config, generated
// and minimal in alternating order (generated first on even reps, minimal first on odd), the other
// arms rotating before or after them. One warm-up run per config and protocol is discarded. wrk: `-t2 -c32 -d5s`, a Lua done() that reports exact
// counters and percentiles (µs); URL `/api/items`, Host header `h3.dp.test` (plain) or
// https://localhost (TLS).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { V1EndpointSlice, V1Ingress, V1Secret, V1Service } from '@kubernetes/client-node';
import { CertStore, certDirFor, generateSelfSignedCertificate } from '../src/nginx/cert-store.ts';
import { nginxBinary } from '../src/dev/local-nginx.ts';
import { nginxVersion } from '../src/nginx/process.ts';
import { renderModel } from '../src/nginx/render.ts';
import type { Snapshot } from '../src/sources/snapshot.ts';
import { translate } from '../src/translate/index.ts';
import { machine, median, parseIntFlag, round, table } from './lib.ts';
import {
  freePort,
  runWrk,
  selfSignedCert,
  socketErrors,
  startOwnNginx,
  stopAllNginx,
  wrkAvailable,
  type OwnNginx,
  type WrkResult,
} from './nginx-kit.ts';

const { values: flags } = parseArgs({
  options: {
    reps: { type: 'string' },
    duration: { type: 'string' },
    threads: { type: 'string' },
    connections: { type: 'string' },
    logs: { type: 'string' },
    ablations: { type: 'boolean' },
    arms: { type: 'string' },
    protocols: { type: 'string' },
    pin: { type: 'boolean' },
    json: { type: 'string' },
  },
  strict: true,
});
const REPS = parseIntFlag(flags.reps, '--reps', 7, 1);
const DURATION = parseIntFlag(flags.duration, '--duration', 5, 1);
const THREADS = parseIntFlag(flags.threads, '--threads', 2, 1);
const CONNECTIONS = parseIntFlag(flags.connections, '--connections', 32, 1);
const LOGS = (flags.logs ?? 'off,on').split(',').map((l) => {
  if (l !== 'off' && l !== 'on') throw new Error(`--logs takes off and/or on, not ${l}`);
  return l;
});
const HOSTS = 20;
const TLS_FROM = 10;
const host = (i: number) => (i === TLS_FROM ? 'localhost' : `h${i}.dp.test`);
const PLAIN_HOST = host(3);
const TLS_HOST = host(TLS_FROM);
const PATH = '/api/items';

type Proto = 'http' | 'https';
type Arm =
  | 'generated'
  | 'minimal'
  | 'generated-again'
  | 'no-set'
  | 'no-extra-headers'
  | 'no-redirect-if'
  | 'none-of-the-three'
  | 'proxy-buffering-default'
  | 'no-http2-listen'
  | 'no-ssl-protocols'
  | 'log-combined'
  | 'log-buffered';
/** The arms run for a log setting: the ablations that make sense with it (see --ablations). */
const ALL_ARMS: readonly Arm[] = [
  'generated',
  'minimal',
  'generated-again',
  'no-set',
  'no-extra-headers',
  'no-redirect-if',
  'none-of-the-three',
  'proxy-buffering-default',
  'no-http2-listen',
  'no-ssl-protocols',
  'log-combined',
  'log-buffered',
];
const CHOSEN_ARMS = flags.arms?.split(',').map((a) => {
  if (!(ALL_ARMS as readonly string[]).includes(a)) throw new Error(`unknown arm ${a}; known: ${ALL_ARMS.join(', ')}`);
  return a as Arm;
});
const PROTOCOLS = (flags.protocols ?? 'http,https').split(',').map((p) => {
  if (p !== 'http' && p !== 'https') throw new Error(`--protocols takes http and/or https, not ${p}`);
  return p;
});
function armsFor(log: string): Arm[] {
  const base: Arm[] = ['generated', 'minimal', 'generated-again'];
  if (CHOSEN_ARMS) return [...base, ...CHOSEN_ARMS.filter((a) => !base.includes(a))];
  if (!flags.ablations) return base;
  return [
    ...base,
    ...(log === 'off'
      ? (['no-set', 'no-extra-headers', 'no-redirect-if', 'none-of-the-three', 'proxy-buffering-default'] as const)
      : (['log-combined', 'log-buffered'] as const)),
  ];
}
/** --pin: every proxy nginx's worker on CPU 1, the backend's and wrk on CPU 0. */
const PIN = flags.pin === true && os.availableParallelism() >= 2;

/** The generated files with a feature taken out (see --ablations). */
function ablate(arm: Arm, content: string): string {
  let out = content;
  const all = arm === 'none-of-the-three';
  if (arm === 'no-set' || all) out = out.replace(/^ {8}set \$ingress_sidecar_\w+ .*\n/gm, '');
  if (arm === 'no-extra-headers' || all)
    out = out.replace(/^ {4}proxy_set_header (X-Real-IP|X-Forwarded-\w+|Upgrade) .*\n/gm, '');
  if (arm === 'no-redirect-if' || all) out = out.replace(/^ {8}if \(\$scheme = http\) \{\n.*\n {8}\}\n/gm, '');
  if (arm === 'proxy-buffering-default')
    out = out.replace(/^ {4}(proxy_buffering|proxy_buffer_size|proxy_buffers|client_max_body_size) .*\n/gm, '');
  if (arm === 'no-http2-listen') out = out.replace(/^( {4}listen \S+ ssl) http2/gm, '$1');
  if (arm === 'no-ssl-protocols') out = out.replace(/^ {4}ssl_protocols .*\n/gm, '');
  if (arm === 'log-combined') out = out.replace(/^( {4}access_log \S+) ingress_sidecar;$/gm, '$1 combined;');
  if (arm === 'log-buffered') out = out.replace(/^( {4}access_log \S+ ingress_sidecar);$/gm, '$1 buffer=64k flush=1s;');
  return out;
}

function snapshot(backendPort: number, cert: { crt: string; key: string }): Snapshot {
  const ingresses: V1Ingress[] = [];
  const services: V1Service[] = [];
  const endpointSlices: V1EndpointSlice[] = [];
  const secrets: V1Secret[] = [];
  for (let i = 0; i < HOSTS; i++) {
    const backend = { service: { name: `svc-${i}`, port: { name: 'http' } } };
    ingresses.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'Ingress',
      metadata: {
        name: `app-${i}`,
        namespace: 'default',
        creationTimestamp: new Date(Date.UTC(2026, 0, 1) + i * 1000),
      },
      spec: {
        ingressClassName: 'nginx',
        ...(i >= TLS_FROM ? { tls: [{ hosts: [host(i)], secretName: `app-${i}-tls` }] } : {}),
        rules: [
          {
            host: host(i),
            http: {
              paths: [
                { path: '/', pathType: 'Prefix', backend },
                { path: '/api', pathType: 'Prefix', backend },
              ],
            },
          },
        ],
      },
    });
    services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: `svc-${i}`, namespace: 'default' },
      spec: { ports: [{ name: 'http', port: 80, targetPort: backendPort }] },
    });
    endpointSlices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `svc-${i}-1`, namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}` } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: backendPort }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    });
    if (i >= TLS_FROM) {
      secrets.push({
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'kubernetes.io/tls',
        metadata: { name: `app-${i}-tls`, namespace: 'default' },
        data: {
          'tls.crt': Buffer.from(cert.crt).toString('base64'),
          'tls.key': Buffer.from(cert.key).toString('base64'),
        },
      });
    }
  }
  return { ingresses, ingressClasses: [], services, endpointSlices, endpoints: [], secrets };
}

function minimalConfig(o: {
  httpPort: number;
  httpsPort: number;
  backendPort: number;
  certFile: string;
  defaultCertFile: string;
  log: boolean;
}): string {
  const log = o.log ? '    access_log /dev/stdout combined;\n' : '';
  const parts = [
    'proxy_http_version 1.1;',
    'proxy_set_header Connection "";',
    'proxy_set_header Host $http_host;',
    '',
    `server {\n    listen ${o.httpPort} default_server;\n    listen ${o.httpsPort} ssl default_server;\n    ssl_certificate ${o.defaultCertFile};\n    ssl_certificate_key ${o.defaultCertFile};\n${log}    return 404;\n}`,
  ];
  for (let i = 0; i < HOSTS; i++) {
    const tls = i >= TLS_FROM;
    const locations = ['/api/', '= /api', '/']
      .map((l) => `    location ${l} {\n        proxy_pass http://svc_${i};\n    }\n`)
      .join('');
    parts.push(`upstream svc_${i} {\n    server 127.0.0.1:${o.backendPort};\n    keepalive 32;\n}`);
    parts.push(
      `server {\n    listen ${tls ? `${o.httpsPort} ssl` : o.httpPort};\n    server_name ${host(i)};\n` +
        (tls ? `    ssl_certificate ${o.certFile};\n    ssl_certificate_key ${o.certFile};\n` : '') +
        log +
        locations +
        '}',
    );
  }
  return parts.join('\n') + '\n';
}

/** One request with the Host (and SNI) of `hostName`: the status and body nginx returns. */
function probe(proto: Proto, port: number, hostName: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const opts = {
      host: '127.0.0.1',
      port,
      path: PATH,
      headers: { host: hostName },
      timeout: 5000,
      agent: false as const,
    };
    const onRes = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req =
      proto === 'https'
        ? https.get({ ...opts, servername: hostName, rejectUnauthorized: false }, onRes)
        : http.get(opts, onRes);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

interface Sample {
  rep: number;
  proto: Proto;
  log: string;
  arm: Arm;
  order: number;
  result: Omit<WrkResult, 'raw'>;
}

const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-dataplane-'));
const onSignal = (signal: NodeJS.Signals) => {
  console.error(`\n${signal}: stopping nginx`);
  void stopAllNginx().finally(() => process.exit(130));
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
const started: OwnNginx[] = [];
try {
  if (!wrkAvailable()) throw new Error('wrk not found: apt-get install -y wrk');
  const m = machine();
  const cert = await selfSignedCert(['localhost', '*.dp.test']);
  const certFile = path.join(work, 'cert.pem');
  await writeFile(certFile, cert.crt + cert.key, { mode: 0o600 });
  const defaultCert = await generateSelfSignedCertificate();
  const defaultCertFile = path.join(work, 'default.pem');
  await writeFile(defaultCertFile, defaultCert.pem, { mode: 0o600 });

  const backendPort = await freePort();
  const backend = await startOwnNginx({
    ...(PIN ? { cpuAffinity: '01' } : {}),
    http: `server {\n    listen 127.0.0.1:${backendPort};\n    location / {\n        return 200 "ok\\n";\n    }\n}`,
  });
  started.push(backend);
  const version = await nginxVersion(nginxBinary());
  const snap = snapshot(backendPort, cert);

  // One nginx per arm and log setting, all started up front.
  const stacks = new Map<string, Map<Arm, { nginx: OwnNginx; http: number; https: number }>>();
  for (const log of LOGS) {
    const arms = new Map<Arm, { nginx: OwnNginx; http: number; https: number }>();
    stacks.set(log, arms);
    for (const arm of armsFor(log)) {
      const dir = path.join(work, `${arm}-${log}`);
      await mkdir(dir);
      const ports = { http: await freePort(), https: await freePort() };
      if (arm === 'minimal') {
        await writeFile(
          path.join(dir, 'minimal.conf'),
          minimalConfig({
            httpPort: ports.http,
            httpsPort: ports.https,
            backendPort,
            certFile,
            defaultCertFile,
            log: log === 'on',
          }),
        );
      } else {
        const model = translate(snap, {
          ingressClass: 'nginx',
          httpPort: ports.http,
          ipv6: false,
          accessLog: log === 'on' ? '/dev/stdout' : null,
          ...(version ? { nginxVersion: version } : {}),
          now: new Date(),
          tls: {
            httpsPort: ports.https,
            httpsRedirectPort: ports.https,
            certDir: certDirFor(dir),
            defaultCertificate: defaultCert,
          },
        });
        if (model.rejections.length > 0 || model.servers.length !== HOSTS)
          throw new Error(`unexpected model: ${JSON.stringify(model.rejections)}`);
        await new CertStore({ dir: certDirFor(dir) }).write(model.certificates);
        const files = [...renderModel(model)].map(([name, content]) => [name, ablate(arm, content)] as const);
        const all = files.map(([, c]) => c).join('');
        const left = {
          'no-set': /^ {8}set /m,
          'no-extra-headers': /X-Forwarded-For/,
          'no-redirect-if': /if \(\$scheme/,
          'log-combined': /ingress_sidecar;$/m,
          'log-buffered': /ingress_sidecar;$/m,
          'proxy-buffering-default': /proxy_buffering off/,
          'no-http2-listen': / ssl http2/,
          'no-ssl-protocols': /ssl_protocols/,
        } as const;
        for (const [a, re] of Object.entries(left)) {
          if (
            (arm === a ||
              (arm === 'none-of-the-three' && ['no-set', 'no-extra-headers', 'no-redirect-if'].includes(a))) &&
            re.test(all)
          )
            throw new Error(`ablation ${arm}: ${re} still in the files`);
        }
        for (const [name, content] of files) await writeFile(path.join(dir, name), content);
      }
      const nginx = await startOwnNginx({ confDir: dir, ...(PIN ? { cpuAffinity: '10' } : {}) });
      started.push(nginx);
      arms.set(arm, { nginx, ...ports });
    }
  }

  // Both arms must answer the same way before anything is timed.
  for (const [log, arms] of stacks) {
    for (const arm of armsFor(log)) {
      for (const proto of PROTOCOLS) {
        const port = arms.get(arm)![proto];
        const r = await probe(proto, port, proto === 'https' ? TLS_HOST : PLAIN_HOST);
        if (r.status !== 200 || r.body !== 'ok\n')
          throw new Error(`${arm} (logs ${log}) ${proto}: got ${r.status} ${JSON.stringify(r.body.slice(0, 200))}`);
        const unknown = await probe(proto, port, 'unknown.dp.test');
        if (unknown.status !== 404)
          throw new Error(`${arm} (logs ${log}) ${proto}: unknown host got ${unknown.status}`);
      }
    }
  }

  const wrk = async (arm: Arm, proto: Proto, log: string, durationS: number) => {
    const s = stacks.get(log)!.get(arm)!;
    const url = proto === 'https' ? `https://localhost:${s.https}${PATH}` : `http://127.0.0.1:${s.http}${PATH}`;
    return runWrk({
      url,
      ...(proto === 'http' ? { host: PLAIN_HOST } : {}),
      ...(PIN ? { cpus: '0' } : {}),
      threads: THREADS,
      connections: CONNECTIONS,
      durationS,
      scriptDir: work,
    }).result;
  };

  for (const log of LOGS) for (const proto of PROTOCOLS) for (const arm of armsFor(log)) await wrk(arm, proto, log, 1);

  const samples: Sample[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    for (const proto of PROTOCOLS) {
      for (const log of LOGS) {
        // generated and minimal alternate which goes first; ablations rotate after them.
        const pair: Arm[] = rep % 2 === 0 ? ['generated', 'minimal'] : ['minimal', 'generated'];
        const extra = armsFor(log).slice(2);
        const rotated = extra.map((_, k) => extra[(k + rep) % extra.length]!);
        const arms: Arm[] = rep % 2 === 0 ? [...pair, ...rotated] : [...rotated, ...pair];
        for (const [order, arm] of arms.entries()) {
          const { raw: _raw, ...result } = await wrk(arm, proto, log, DURATION);
          samples.push({ rep, proto, log, arm, order, result });
          const errs = socketErrors(result) + result.errors.status;
          console.error(
            `rep ${rep + 1}/${REPS} ${proto} logs ${log} ${arm}: ${round(result.rps, 0)} req/s, p99 ${round(result.p99, 2)} ms${errs ? `, ${errs} errors` : ''}`,
          );
        }
      }
    }
  }

  // Report.
  const rows: Array<Array<string | number>> = [];
  const verdicts: string[] = [];
  for (const proto of PROTOCOLS) {
    for (const log of LOGS) {
      const of = (arm: Arm) => samples.filter((s) => s.proto === proto && s.log === log && s.arm === arm);
      const g = of('generated');
      const mn = of('minimal');
      const rpsRatio = median(g.map((s) => s.result.rps)) / median(mn.map((s) => s.result.rps));
      const p99Ratio = median(g.map((s) => s.result.p99)) / median(mn.map((s) => s.result.p99));
      const pairs = g.map((s) => {
        const other = mn.find((x) => x.rep === s.rep)!;
        return { rps: s.result.rps / other.result.rps, p99: s.result.p99 / other.result.p99 };
      });
      const errors = [...g, ...mn].reduce((a, s) => a + socketErrors(s.result) + s.result.errors.status, 0);
      rows.push([
        proto === 'https' ? 'TLS' : 'plain',
        log,
        round(median(g.map((s) => s.result.rps)), 0),
        round(median(mn.map((s) => s.result.rps)), 0),
        round(rpsRatio, 3),
        round(median(pairs.map((p) => p.rps)), 3),
        round(median(g.map((s) => s.result.p50)), 3),
        round(median(mn.map((s) => s.result.p50)), 3),
        round(median(g.map((s) => s.result.p99)), 3),
        round(median(mn.map((s) => s.result.p99)), 3),
        round(p99Ratio, 3),
        round(median(pairs.map((p) => p.p99)), 3),
        errors,
      ]);
      const rpsOk = rpsRatio >= 0.98;
      const p99Ok = p99Ratio <= 1.05;
      verdicts.push(
        `- ${proto === 'https' ? 'TLS' : 'plain'}, access log ${log}: requests/s ratio ${round(rpsRatio, 3)} (target >= 0.98: ${rpsOk ? `met, ${round(rpsRatio - 0.98, 3)} to spare` : `NOT met by ${round(0.98 - rpsRatio, 3)}`}); ` +
          `p99 ratio ${round(p99Ratio, 3)} (target <= 1.05: ${p99Ok ? `met, ${round(1.05 - p99Ratio, 3)} to spare` : `NOT met by ${round(p99Ratio - 1.05, 3)}`})`,
      );
    }
  }
  console.log(`## Data plane: generated vs minimal config (medians of ${REPS} runs each)\n`);
  console.log(
    `machine: ${m.nproc} CPUs (${m.cpu}), load at start ${m.load}, node ${m.node}, nginx ${m.nginx}, git ${m.git || '-'}, ${m.date}`,
  );
  console.log(
    `wrk -t${THREADS} -c${CONNECTIONS} -d${DURATION}s, ${PATH}; plain: Host ${PLAIN_HOST}; TLS: https://${TLS_HOST} (SNI ${TLS_HOST}); ${PIN ? 'pinned: proxy workers on CPU 1, backend and wrk on CPU 0' : 'not pinned'}\n`,
  );
  console.log(
    table(
      [
        'protocol',
        'access log',
        'generated req/s',
        'minimal req/s',
        'req/s ratio (of medians)',
        'median of paired ratios',
        'generated p50 ms',
        'minimal p50 ms',
        'generated p99 ms',
        'minimal p99 ms',
        'p99 ratio (of medians)',
        'median of paired p99 ratios',
        'errors (socket + status >= 400, all runs)',
      ],
      rows,
    ),
  );
  console.log('\n' + verdicts.join('\n'));
  // The same generated files in a second nginx: what two identical configs differ by in these runs.
  const aa: string[] = [];
  for (const proto of PROTOCOLS) {
    for (const log of LOGS) {
      const of = (arm: Arm) => samples.filter((s) => s.proto === proto && s.log === log && s.arm === arm);
      const g = of('generated');
      const again = of('generated-again');
      const mn = of('minimal');
      const r = median(again.map((s) => s.result.rps)) / median(g.map((s) => s.result.rps));
      const p = median(again.map((s) => s.result.p99)) / median(g.map((s) => s.result.p99));
      const rm = median(again.map((s) => s.result.rps)) / median(mn.map((s) => s.result.rps));
      aa.push(
        `- ${proto === 'https' ? 'TLS' : 'plain'}, access log ${log}: generated-again ÷ generated: req/s ${round(r, 3)}, p99 ${round(p, 3)}; generated-again ÷ minimal: req/s ${round(rm, 3)}`,
      );
    }
  }
  console.log('\nA/A control (the same generated files served by a second nginx, in the same reps):\n' + aa.join('\n'));
  if (flags.ablations || CHOSEN_ARMS) {
    const abl: Array<Array<string | number>> = [];
    for (const proto of PROTOCOLS) {
      for (const log of LOGS) {
        const of = (arm: Arm) => samples.filter((s) => s.proto === proto && s.log === log && s.arm === arm);
        const base = median(of('minimal').map((s) => s.result.rps));
        const baseP99 = median(of('minimal').map((s) => s.result.p99));
        for (const arm of armsFor(log).filter((a) => a !== 'minimal')) {
          const xs = of(arm);
          abl.push([
            proto === 'https' ? 'TLS' : 'plain',
            log,
            arm,
            round(median(xs.map((s) => s.result.rps)), 0),
            round(median(xs.map((s) => s.result.rps)) / base, 3),
            round(median(xs.map((s) => s.result.p99)), 3),
            round(median(xs.map((s) => s.result.p99)) / baseP99, 3),
          ]);
        }
      }
    }
    console.log('\nAblations (each against minimal, same runs):\n');
    console.log(table(['protocol', 'access log', 'arm', 'req/s', 'req/s ÷ minimal', 'p99 ms', 'p99 ÷ minimal'], abl));
  }
  if (flags.json)
    await writeFile(
      flags.json,
      JSON.stringify(
        {
          benchmark: 'dataplane',
          machine: m,
          reps: REPS,
          duration: DURATION,
          threads: THREADS,
          connections: CONNECTIONS,
          samples,
        },
        null,
        2,
      ) + '\n',
    );
} finally {
  for (const n of started.reverse()) await n.stop();
  await rm(work, { recursive: true, force: true });
}
