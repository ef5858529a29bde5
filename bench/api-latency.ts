// Apply-to-routable latency through the Kubernetes API source: how long after a client starts
// creating a Service, its Endpoints and an Ingress in a real API server does nginx route the
// Ingress's host, compared side by side with the bare cost of the same change made by hand
// (write a server block, SIGHUP the master) on the same nginx.
//
//   node_modules/.bin/node bench/api-latency.ts [--runs 21] [--warmup 1] [--debounce-ms 100]
//     [--max-delay-ms 1000] [--poll-ms 2] [--timeout-ms 10000] [--json FILE]
//
// Needs root (the backend lives in a network namespace: the API server refuses loopback
// addresses in Endpoints), etcd and the kube-apiserver that scripts/kube-apiserver/build.sh
// builds (spec/helpers/apiserver.ts). On this machine only: the API server, etcd and nginx listen
// on 127.0.0.1; the backend is at 10.213.64.x in a namespace of this host.
//
// The stack: kube-apiserver 1.20 + etcd (startApiServer), manifests/ applied (RBAC), a real nginx
// with one worker (src/dev/local-nginx.ts), an echo backend in a network namespace, and the sidecar
// in-process with the KubernetesSource as the ServiceAccount (sidecar kubeconfig), production's
// debounce (100 ms) and ceiling (1000 ms). The API server 1.20 serves no discovery.k8s.io/v1, so
// the source reads core/v1 Endpoints, as it would on such a cluster.
//
// A sidecar trial POSTs a Service, its Endpoints and an Ingress for a new host (one after the
// other, over one keep-alive HTTPS connection with the admin token, as a controller or kubectl
// would send them) and polls nginx (worker thread, every 2 ms) until the host answers from the
// echo backend. A bare trial writes an equivalent server block into an include directory of the
// same nginx and SIGHUPs the master itself (as bench/latency.ts does). Each round runs one of
// each, alternating which goes first; trials never overlap (each waits until nginx's old workers
// are gone), and a sidecar trial starts only once the sidecar's last pass started more than a
// ceiling ago (the reconciler starts passes at most once per ceiling: see bench/churn.ts), so
// each trial is an isolated change. Medians and differences are within this run only.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startNginx, type RunningNginx } from '../src/dev/local-nginx.ts';
import { Sidecar } from '../src/sync/sidecar.ts';
import { KubernetesSource } from '../src/sources/kubernetes.ts';
import { applyManifests, startApiServer, type ApiServer } from '../spec/helpers/apiserver.ts';
import { freePort } from '../spec/helpers/nginx.ts';
import { startNetnsBackend, type NetnsBackend } from '../spec/helpers/netns.ts';
import {
  afterCeiling,
  bareServerBlock,
  benchHup,
  benchLogger,
  benchSidecar,
  countLoggedHups,
  hookKill,
  hups,
  includeBareDir,
  machine,
  machineLine,
  median,
  now,
  pairedDiffs,
  parseIntFlag,
  Poller,
  roundedTrials,
  round,
  SERVICE,
  signed,
  startTrial,
  summary,
  table,
  targetCells,
  TimedSource,
  waitQuietNginx,
  type LogEntry,
} from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    warmup: { type: 'string' },
    'debounce-ms': { type: 'string' },
    'max-delay-ms': { type: 'string' },
    'poll-ms': { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});

const RUNS = parseIntFlag(flags.runs, '--runs', 21, 1);
const WARMUP = parseIntFlag(flags.warmup, '--warmup', 1, 0);
const DEBOUNCE_MS = parseIntFlag(flags['debounce-ms'], '--debounce-ms', 100);
const MAX_DELAY_MS = parseIntFlag(flags['max-delay-ms'], '--max-delay-ms', 1000);
const POLL_MS = parseIntFlag(flags['poll-ms'], '--poll-ms', 2, 1);
const TIMEOUT_MS = parseIntFlag(flags['timeout-ms'], '--timeout-ms', 10_000, 100);
const NAMESPACE = 'bench';
const GAP_MS = 50;

// ---------------------------------------------------------------------------------------------
// A minimal API client: the admin token over one keep-alive connection, the test CA verified.

interface Api {
  request(method: string, urlPath: string, body?: unknown): Promise<{ status: number; body: string }>;
  close(): void;
}

function apiClient(api: ApiServer): Api {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(api.caFile) });
  return {
    request(method, urlPath, body) {
      return new Promise((resolve, reject) => {
        const data = body === undefined ? undefined : JSON.stringify(body);
        const req = https.request(
          `${api.url}${urlPath}`,
          {
            method,
            agent,
            timeout: 10_000,
            headers: {
              authorization: `Bearer ${api.adminToken}`,
              accept: 'application/json',
              ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}),
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
            res.on('error', reject);
          },
        );
        req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
        req.on('error', reject);
        req.end(data);
      });
    },
    close: () => agent.destroy(),
  };
}

async function create(client: Api, urlPath: string, obj: unknown): Promise<void> {
  const r = await client.request('POST', urlPath, obj);
  if (r.status !== 201) throw new Error(`POST ${urlPath}: ${r.status} ${r.body.slice(0, 300)}`);
}

// ---------------------------------------------------------------------------------------------

interface SidecarTrial {
  kind: 'sidecar';
  round: number;
  host: string;
  /** first POST starts -> first correct answer */
  total: number;
  /** first POST starts -> the Ingress POST returned (three writes to the API) */
  stored: number;
  /** Ingress stored -> the last change the source reported before the pass (watch delivery) */
  watch: number;
  /** that change -> the pass starts (debounce) */
  wait: number;
  /** pass starts -> SIGHUP (translate, render, nginx -t, swap) */
  prepare: number;
  /** SIGHUP -> first correct answer */
  nginx: number;
  /** the sync pass's duration as logged */
  passMs: number;
  reloads: number;
  syncs: number;
  changes: number;
}

interface BareTrial {
  kind: 'bare';
  round: number;
  host: string;
  total: number;
  nginx: number;
}

interface Stack {
  api: ApiServer;
  client: Api;
  backend: NetnsBackend;
  nginx: RunningNginx;
  sidecar: Sidecar;
  source: TimedSource;
  logs: LogEntry[];
  port: number;
  bareDir: string;
}

async function sidecarTrial(s: Stack, poller: Poller, round: number): Promise<SidecarTrial> {
  // An isolated change (not the rate limit): after the ceiling of the last pass.
  await afterCeiling(s.source, MAX_DELAY_MS);
  const name = `lat-${round}`;
  const host = `${name}.api-latency.test`;
  const probe = { port: s.port, host, pollMs: POLL_MS, timeoutMs: TIMEOUT_MS, tailMs: 0 };
  const { master, before, routable } = await startTrial(s.nginx, poller, probe, 'its Ingress existed');
  const marks = {
    changes: s.source.changes.length,
    snaps: s.source.snapshots.length,
    hups: hups.length,
    logs: s.logs.length,
  };
  const stats0 = { ...s.sidecar.stats };

  const t0 = now();
  await create(s.client, `/api/v1/namespaces/${NAMESPACE}/services`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NAMESPACE },
    spec: { ports: [{ name: 'http', port: 80, targetPort: s.backend.port }] },
  });
  await create(s.client, `/api/v1/namespaces/${NAMESPACE}/endpoints`, {
    apiVersion: 'v1',
    kind: 'Endpoints',
    metadata: { name, namespace: NAMESPACE },
    subsets: [{ addresses: [{ ip: s.backend.ip }], ports: [{ name: 'http', port: s.backend.port }] }],
  });
  await create(s.client, `/apis/networking.k8s.io/v1/namespaces/${NAMESPACE}/ingresses`, {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      ingressClassName: 'nginx',
      rules: [
        {
          host,
          http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name, port: { name: 'http' } } } }] },
        },
      ],
    },
  });
  const stored = now();
  const r = await routable();
  await s.sidecar.idle();
  if (!(await waitQuietNginx(master, before))) throw new Error('nginx did not settle after the sidecar reload');

  const hup = hups.slice(marks.hups).find((h) => h.by === 'sidecar' && h.pid === master)?.at ?? NaN;
  const snap = [...s.source.snapshots.slice(marks.snaps)].reverse().find((t) => t <= hup) ?? NaN;
  const change = [...s.source.changes.slice(marks.changes)].reverse().find((t) => t <= snap) ?? NaN;
  const reloadLog = s.logs.slice(marks.logs).find((l) => l.message === 'nginx reloaded' && typeof l['ms'] === 'number');
  return {
    kind: 'sidecar',
    round,
    host,
    total: r.at - t0,
    stored: stored - t0,
    watch: change - stored,
    wait: snap - change,
    prepare: hup - snap,
    nginx: r.at - hup,
    passMs: typeof reloadLog?.['ms'] === 'number' ? reloadLog['ms'] : NaN,
    reloads: s.sidecar.stats.reloads - stats0.reloads,
    syncs: s.sidecar.stats.syncs - stats0.syncs,
    changes: s.source.changes.length - marks.changes,
  };
}

async function bareTrial(s: Stack, poller: Poller, round: number): Promise<BareTrial> {
  const host = `bare-${round}.api-latency.test`;
  const probe = { port: s.port, host, pollMs: POLL_MS, timeoutMs: TIMEOUT_MS, tailMs: 0 };
  const { master, before, routable } = await startTrial(s.nginx, poller, probe, 'its server block was written');
  const t0 = now();
  await writeFile(
    path.join(s.bareDir, `bare-${round}.conf`),
    bareServerBlock(host, s.port, s.backend.port, s.backend.ip),
  );
  const hupAt = benchHup(master);
  const r = await routable();
  if (!(await waitQuietNginx(master, before))) throw new Error('nginx did not settle after the bare reload');
  return { kind: 'bare', round, host, total: r.at - t0, nginx: r.at - hupAt };
}

async function main(): Promise<void> {
  hookKill();
  const info = machine();
  const stops: Array<() => Promise<unknown>> = [];
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse())
      await stop().catch((err: unknown) => console.error('stop failed:', err));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    console.error(`\n${signal}: stopping the sidecar, nginx, the backend and the API server`);
    void stopAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const sidecarTrials: SidecarTrial[] = [];
  const bareTrials: BareTrial[] = [];
  try {
    const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-bench-api-'));
    stops.push(() => rm(work, { recursive: true, force: true }));
    const confDir = path.join(work, 'conf.d');
    const bareDir = path.join(work, 'bare.d');
    await mkdir(confDir);
    await includeBareDir(confDir, bareDir);

    process.stderr.write('starting etcd and kube-apiserver...\n');
    const api = await startApiServer();
    stops.push(() => api.stop());
    await applyManifests(api.adminKubeconfig);
    const client = apiClient(api);
    stops.push(async () => client.close());
    await create(client, '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });

    const backend = await startNetnsBackend(SERVICE);
    stops.push(() => backend.stop());
    const port = await freePort();
    const nginx = await startNginx({ confDir });
    stops.push(() => nginx.stop());

    const { logger, logs } = benchLogger();
    const source = new TimedSource(new KubernetesSource({ kubeconfig: api.sidecarKubeconfig, logger }));
    const sidecar = benchSidecar({
      source,
      confDir,
      port,
      nginx,
      debounceMs: DEBOUNCE_MS,
      maxDelayMs: MAX_DELAY_MS,
      logger,
    });
    stops.push(() => sidecar.stop());
    await sidecar.start();
    await sidecar.idle();
    const poller = Poller.start();
    stops.push(() => poller.stop());

    const stack: Stack = { api, client, backend, nginx, sidecar, source, logs, port, bareDir };
    const loggedBase = countLoggedHups(await nginx.errorLog());
    const hupStart = hups.length;
    const rounds = WARMUP + RUNS;
    const deadline = Date.now() + rounds * 2 * (TIMEOUT_MS + 6000);
    for (let i = 0; i < rounds && Date.now() < deadline; i++) {
      const order = i % 2 === 0 ? (['sidecar', 'bare'] as const) : (['bare', 'sidecar'] as const);
      for (const kind of order) {
        const t = kind === 'sidecar' ? await sidecarTrial(stack, poller, i) : await bareTrial(stack, poller, i);
        await new Promise((r) => setTimeout(r, GAP_MS));
        if (i < WARMUP) continue;
        if (t.kind === 'sidecar') sidecarTrials.push(t);
        else bareTrials.push(t);
      }
      process.stderr.write(`round ${i + 1}/${rounds}${i < WARMUP ? ' (warm-up)' : ''}\n`);
    }
    const master = await nginx.masterPid();
    const sent = hups.slice(hupStart).filter((h) => h.pid === master);
    const hupCheck = {
      sidecar: sent.filter((h) => h.by === 'sidecar').length,
      bench: sent.filter((h) => h.by === 'bench').length,
      nginxLog: countLoggedHups(await nginx.errorLog()) - loggedBase,
    };
    await report(info, sidecarTrials, bareTrials, hupCheck);
  } finally {
    await stopAll();
  }
}

async function report(
  info: Record<string, string>,
  sidecar: SidecarTrial[],
  bare: BareTrial[],
  hupCheck: Record<string, number>,
): Promise<void> {
  const s = summary(sidecar.map((t) => t.total));
  const b = summary(bare.map((t) => t.total));
  const sStoredToAnswer = summary(sidecar.map((t) => t.total - t.stored));
  const paired = pairedDiffs(sidecar, bare);
  const over = s.median - (b.median + DEBOUNCE_MS);
  const m = (f: (t: SidecarTrial) => number) => round(median(sidecar.map(f)));
  const settings = `debounce ${DEBOUNCE_MS} ms, max delay ${MAX_DELAY_MS} ms`;
  const out = [
    `## Apply-to-routable latency through the API source (ms), ${sidecar.length} trials per row`,
    '',
    machineLine(info),
    `p90/p99 are nearest-rank; with n = ${s.n} the p99 is the maximum.`,
    '',
    table(
      ['row', 'n', 'median', 'p90', 'p99', 'min'],
      [
        [`sidecar via the API (${settings}): first POST → first right answer`, s.n, s.median, s.p90, s.p99, s.min],
        [
          '  of which: Ingress stored → first right answer',
          sStoredToAnswer.n,
          sStoredToAnswer.median,
          sStoredToAnswer.p90,
          sStoredToAnswer.p99,
          sStoredToAnswer.min,
        ],
        ['bare: server block + SIGHUP, same nginx', b.n, b.median, b.p90, b.p99, b.min],
      ],
    ),
    '',
    table(
      [
        'sidecar ÷ bare',
        'median − bare',
        'median of paired diffs',
        'median − (bare + debounce)',
        'target: ≤ +100 ms',
        'target: p99 < 1 s',
      ],
      [
        [
          `${round(s.median / b.median)}×`,
          signed(s.median - b.median),
          signed(median(paired)),
          signed(over),
          ...targetCells(over, s.p99),
        ],
      ],
    ),
    '',
    'Medians of the stages (ms):',
    '',
    table(
      [
        'row',
        '3 POSTs (Service, Endpoints, Ingress)',
        'Ingress stored → last change seen',
        'change → pass starts',
        'pass → SIGHUP',
        'SIGHUP → first right answer',
        'total',
        'pass (logged)',
      ],
      [
        [
          `sidecar (${settings})`,
          m((t) => t.stored),
          m((t) => t.watch),
          m((t) => t.wait),
          m((t) => t.prepare),
          m((t) => t.nginx),
          m((t) => t.total),
          m((t) => t.passMs),
        ],
        [
          'bare (same nginx)',
          '–',
          '–',
          '–',
          '–',
          round(median(bare.map((t) => t.nginx))),
          round(median(bare.map((t) => t.total))),
          '–',
        ],
      ],
    ),
    '',
    `Per trial: reloads ${JSON.stringify([...new Set(sidecar.map((t) => t.reloads))])}, sync passes ${JSON.stringify([...new Set(sidecar.map((t) => t.syncs))])}, source changes reported ${JSON.stringify([...new Set(sidecar.map((t) => t.changes))])}.`,
    `SIGHUPs during the measured rounds (incl. warm-up): sidecar ${hupCheck['sidecar']}, bench ${hupCheck['bench']}, nginx log ${hupCheck['nginxLog']}.`,
    '',
  ].join('\n');
  console.log(out);
  const doc = {
    benchmark: 'api-latency',
    machine: info,
    settings: {
      runs: RUNS,
      warmup: WARMUP,
      debounceMs: DEBOUNCE_MS,
      maxDelayMs: MAX_DELAY_MS,
      pollMs: POLL_MS,
      timeoutMs: TIMEOUT_MS,
    },
    sidecar: s,
    storedToAnswer: sStoredToAnswer,
    bare: b,
    pairedMedianDiff: round(median(paired)),
    medianMinusBarePlusDebounce: round(over),
    hups: hupCheck,
    trials: roundedTrials([...sidecar, ...bare]),
  };
  if (flags.json) await writeFile(flags.json, JSON.stringify(doc, null, 2) + '\n');
}

await main();
