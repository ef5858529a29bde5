// Paths and hosts at scale: translate and render of one host with 20,000 paths, and of one Ingress
// with 5,000 hosts; and the longest event-loop block of a whole sidecar pass at 10,000 Ingresses.
//
//   node_modules/.bin/node bench/paths-scale.ts [--samples 3] [--cases paths,hosts,pass] [--json FILE]
//
// Each case runs in a fresh child process (this file with --case), so that its peak RSS is its own.
//   paths: two Ingresses (same namespace, each its own Service) on host paths.scale.test, 10,000
//          paths each: Exact paths ending in "/" (nginx would answer their bare path with a 301,
//          so translate pins it), Prefix paths, and Prefix + Exact pairs on the same path.
//   hosts: one Ingress with 5,000 hosts (host-<i>.scale.test), each Prefix "/" and Exact "/api".
//   pass:  the 10,000 Ingresses of bench/scale-objects.ts (no TLS) through a real Sidecar pass
//          (translate, render, Applier.apply with a real nginx: nginx -t, swap, SIGHUP, verify),
//          first the full pass, then passes with one Ingress changed. A probe timer (every 1 ms)
//          records the longest gap between its runs during the pass: the longest the event loop
//          was blocked (health, status and the source's watch wait that long).
// translate/render are timed with performance.now() around the sidecar's own functions, after one
// warm-up call; "heap after" is heapUsed after a forced GC with the model and files still held.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { V1HTTPIngressPath, V1Ingress } from '@kubernetes/client-node';
import { machine, median, parseIntFlag, round, table } from './lib.ts';
import { ingress, snapshotOf } from './scale-objects.ts';
import { Renderer } from '../src/nginx/render.ts';
import { translate, type TranslateOptions } from '../src/translate/index.ts';
import type { Snapshot } from '../src/sources/snapshot.ts';

// One for the run, as the sidecar holds one: it reuses the text of servers that did not change.
const renderer = new Renderer();

const { values: flags } = parseArgs({
  options: {
    samples: { type: 'string' },
    cases: { type: 'string' },
    case: { type: 'string' },
    json: { type: 'string' },
  },
  strict: true,
});
const SAMPLES = parseIntFlag(flags.samples, '--samples', 3, 1);
const OPTS: TranslateOptions = { ingressClass: 'nginx', httpPort: 8080, ipv6: false };

function svc(name: string) {
  return {
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'team' },
      spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    },
    slice: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-1`, namespace: 'team', labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 8080 }],
      endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
    },
  };
}

function ing(name: string, age: number, rules: NonNullable<V1Ingress['spec']>['rules']): V1Ingress {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name, namespace: 'team', creationTimestamp: new Date(Date.UTC(2026, 0, 1) + age * 1000) },
    spec: { ingressClassName: 'nginx', rules },
  };
}

const backend = (name: string) => ({ service: { name, port: { name: 'http' } } });

/** 20,000 paths on one host, Exact and Prefix mixed, in two Ingresses. */
export function pathsSnapshot(): Snapshot {
  const one = (who: string): V1HTTPIngressPath[] => {
    const out: V1HTTPIngressPath[] = [{ path: `/${who}`, pathType: 'Prefix', backend: backend(who) }];
    for (let i = 0; out.length < 10_000; i++) {
      const p = `/${who}/section-${i % 100}/item-${i}`;
      switch (i % 4) {
        case 0:
          out.push({ path: `${p}/`, pathType: 'Exact', backend: backend(who) });
          break; // pinned bare path
        case 1:
          out.push({ path: p, pathType: 'Prefix', backend: backend(who) });
          break;
        case 2:
          out.push(
            { path: p, pathType: 'Exact', backend: backend(who) },
            { path: p, pathType: 'Prefix', backend: backend(who) },
          );
          break;
        default:
          out.push({ path: `${p}/`, pathType: 'Prefix', backend: backend(who) });
          break;
      }
    }
    return out.slice(0, 10_000);
  };
  const a = svc('a');
  const b = svc('b');
  return {
    ingresses: [
      ing('paths-a', 0, [{ host: 'paths.scale.test', http: { paths: one('a') } }]),
      ing('paths-b', 1, [{ host: 'paths.scale.test', http: { paths: one('b') } }]),
    ],
    ingressClasses: [],
    services: [a.service, b.service],
    endpointSlices: [a.slice, b.slice],
    endpoints: [],
    secrets: [],
  } as Snapshot;
}

/** 5,000 hosts in one Ingress. */
export function hostsSnapshot(): Snapshot {
  const s = svc('h');
  const rules = Array.from({ length: 5000 }, (_, i) => ({
    host: `host-${i}.scale.test`,
    http: {
      paths: [
        { path: '/', pathType: 'Prefix', backend: backend('h') },
        { path: '/api', pathType: 'Exact', backend: backend('h') },
      ],
    },
  }));
  return {
    ingresses: [ing('hosts', 0, rules)],
    ingressClasses: [],
    services: [s.service],
    endpointSlices: [s.slice],
    endpoints: [],
    secrets: [],
  } as Snapshot;
}

interface ModelResult {
  case: string;
  locations: number;
  servers: number;
  configBytes: number;
  translateMs: number[];
  renderMs: number[];
  heapAfterMb: number;
  maxRssMb: number;
}

interface PassResult {
  case: 'pass';
  full: { ms: number; longestBlockMs: number };
  oneChange: Array<{ ms: number; longestBlockMs: number }>;
  maxRssMb: number;
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();

function modelCase(name: string, snap: Snapshot): ModelResult {
  // Warm-up (module caches, JIT), then timed samples; render's per-server memo is dropped by a
  // model of nothing between samples so that every sample renders all servers.
  renderer.render(translate(snap, OPTS));
  const empty = translate(
    { ingresses: [], ingressClasses: [], services: [], endpointSlices: [], endpoints: [], secrets: [] },
    OPTS,
  );
  const translateMs: number[] = [];
  const renderMs: number[] = [];
  let model = null;
  let files = null;
  for (let i = 0; i < SAMPLES; i++) {
    renderer.render(empty);
    // Drop the previous sample's model and files before the GC, so they are not counted.
    model = files = null; // eslint-disable-line no-useless-assignment
    gc();
    let t0 = performance.now();
    model = translate(snap, OPTS);
    translateMs.push(performance.now() - t0);
    t0 = performance.now();
    files = renderer.render(model).files;
    renderMs.push(performance.now() - t0);
  }
  gc();
  const heap = process.memoryUsage().heapUsed;
  return {
    case: name,
    locations: [model!.defaultServer, ...model!.servers].reduce((n, s) => n + s.locations.length, 0),
    servers: model!.servers.length,
    configBytes: [...files!.values()].reduce((n, t) => n + Buffer.byteLength(t), 0),
    translateMs,
    renderMs,
    heapAfterMb: round(heap / 1048576, 1),
    maxRssMb: round(process.resourceUsage().maxRSS / 1024, 1),
  };
}

/** Runs fn while a 1 ms timer measures the longest gap between its runs. */
async function withProbe<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; longestBlockMs: number }> {
  let last = performance.now();
  let longest = 0;
  let stop = false;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (!stop) setTimeout(tick, 1);
  };
  setTimeout(tick, 1);
  const t0 = performance.now();
  try {
    const value = await fn();
    return { value, ms: performance.now() - t0, longestBlockMs: Math.max(longest, performance.now() - last) };
  } finally {
    stop = true;
  }
}

async function passCase(): Promise<PassResult> {
  const { Sidecar } = await import('../src/sync/sidecar.ts');
  const { createMemoryLogger } = await import('../src/ops/log.ts');
  const { nginxBinary } = await import('../src/dev/local-nginx.ts');
  const { startOwnNginx, stopAllNginx, freePort } = await import('./nginx-kit.ts');
  const work = await mkdtemp(path.join(os.tmpdir(), 'ingress-sidecar-paths-scale-'));
  const confDir = path.join(work, 'conf.d');
  await import('node:fs/promises').then((f) => f.mkdir(confDir));
  const n = 10_000;
  let snap = snapshotOf(n, { crt: '', key: '' });
  try {
    const nginx = await startOwnNginx({ confDir });
    const sidecar = new Sidecar({
      source: {
        start: async () => {},
        snapshot: () => ({ ...snap, ingresses: [...snap.ingresses] }),
        stop: async () => {},
      },
      translate: { ingressClass: 'nginx', httpPort: await freePort(), ipv6: false },
      confDir,
      nginxBinary: nginxBinary(),
      nginxPidFile: nginx.pidFile,
      reloadTimeoutMs: 120_000,
      masterCheckMs: 0,
      debounceMs: 0,
      maxDelayMs: 0,
      logger: createMemoryLogger().logger,
    });
    const full = await withProbe(() => sidecar.runOnce());
    const oneChange: PassResult['oneChange'] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const k = 1 + i * 7;
      snap = { ...snap, ingresses: snap.ingresses.map((x, j) => (j === k ? ingress(k, `/changed-${i}`) : x)) };
      const r = await withProbe(() => sidecar.runOnce());
      oneChange.push({ ms: r.ms, longestBlockMs: r.longestBlockMs });
    }
    return {
      case: 'pass',
      full: { ms: full.ms, longestBlockMs: full.longestBlockMs },
      oneChange,
      maxRssMb: round(process.resourceUsage().maxRSS / 1024, 1),
    };
  } finally {
    await stopAllNginx();
    await rm(work, { recursive: true, force: true });
  }
}

function runChild(c: string): Promise<ModelResult | PassResult> {
  return new Promise((resolve, reject) => {
    const args = ['--expose-gc', ...process.execArgv, import.meta.filename, '--case', c, '--samples', String(SAMPLES)];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const timer = setTimeout(() => proc.kill('SIGTERM'), 20 * 60_000);
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`case ${c} exited with ${code}`));
      else resolve(JSON.parse(out.trim().split('\n').pop()!));
    });
  });
}

if (flags.case) {
  const r =
    flags.case === 'paths'
      ? modelCase('paths', pathsSnapshot())
      : flags.case === 'hosts'
        ? modelCase('hosts', hostsSnapshot())
        : await passCase();
  process.stdout.write(JSON.stringify(r) + '\n');
} else {
  const m = machine();
  const cases = (flags.cases ?? 'paths,hosts,pass').split(',');
  const results: Array<ModelResult | PassResult> = [];
  for (const c of cases) {
    const t0 = performance.now();
    results.push(await runChild(c));
    console.error(`${c}: ${round((performance.now() - t0) / 1000, 1)} s`);
  }
  console.log(
    `machine: ${m.nproc} CPUs, load at start ${m.load}, node ${m.node}, nginx ${m.nginx}, git ${m.git || '-'}, ${m.date}; samples ${SAMPLES}\n`,
  );
  const models = results.filter((r): r is ModelResult => r.case !== 'pass');
  if (models.length > 0) {
    console.log(
      table(
        [
          'case',
          'servers',
          'locations',
          'config MB',
          'translate ms (median)',
          'render ms (median)',
          'heap after MB',
          'peak RSS MB',
        ],
        models.map((r) => [
          r.case,
          r.servers,
          r.locations,
          round(r.configBytes / 1048576, 2),
          round(median(r.translateMs)),
          round(median(r.renderMs)),
          r.heapAfterMb,
          r.maxRssMb,
        ]),
      ),
    );
  }
  const pass = results.find((r): r is PassResult => r.case === 'pass');
  if (pass) {
    console.log('\n10,000 Ingresses, whole sidecar pass (translate, render, apply with nginx -t and reload):\n');
    console.log(
      table(
        ['pass', 'ms', 'longest event-loop block ms'],
        [
          ['full (first)', round(pass.full.ms), round(pass.full.longestBlockMs)],
          ...pass.oneChange.map((p, i) => [`one change #${i + 1}`, round(p.ms), round(p.longestBlockMs)]),
        ],
      ),
    );
    console.log(`\npeak RSS ${pass.maxRssMb} MB`);
  }
  if (flags.json)
    await import('node:fs/promises').then((f) =>
      f.writeFile(flags.json!, JSON.stringify({ machine: m, samples: SAMPLES, results }, null, 2) + '\n'),
    );
}
