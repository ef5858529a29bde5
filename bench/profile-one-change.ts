// Where translate + render spend their time for one changed Ingress among N (section 11 of
// docs/benchmarks.md): the scale benchmark's snapshot, two warm-up passes, then --passes passes each with
// one non-TLS Ingress changed, under V8's sampling profiler (200 µs). Prints the top functions by
// inclusive and self time per pass, and the time of the full collection that src/sync/sidecar.ts runs
// after a pass (collectGarbage()).
//
//   node_modules/.bin/node bench/profile-one-change.ts [--size 10000] [--passes 5] [--out FILE.cpuprofile]
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { certDirFor, generateSelfSignedCertificate } from '../src/nginx/cert-store.ts';
import { Renderer } from '../src/nginx/render.ts';
import { collectGarbage } from '../src/sync/gc.ts';
import { translate, type TranslateOptions } from '../src/translate/index.ts';
import { parseIntFlag } from './lib.ts';
import { selfSignedCert } from './nginx-kit.ts';
import { TLS_EVERY, ingress, snapshotOf } from './scale-objects.ts';

// One for the run, as the sidecar holds one: it reuses the text of servers that did not change.
const renderer = new Renderer();

const { values: flags } = parseArgs({
  options: { size: { type: 'string' }, passes: { type: 'string' }, out: { type: 'string' } },
  strict: true,
});
const N = parseIntFlag(flags.size, '--size', 10_000, 10);
const PASSES = parseIntFlag(flags.passes, '--passes', 5, 1);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

const cert = await selfSignedCert(['*.scale.test']);
let snap = snapshotOf(N, cert);
const base: Omit<TranslateOptions, 'now'> = {
  ingressClass: 'nginx',
  httpPort: 8080,
  ipv6: false,
  accessLog: '/dev/stdout',
  tls: {
    httpsPort: 8443,
    httpsRedirectPort: 8443,
    certDir: certDirFor('/nonexistent/conf.d'),
    defaultCertificate: await generateSelfSignedCertificate(),
  },
};
for (let i = 0; i < 2; i++) renderer.render(translate(snap, { ...base, now: new Date() }));

const gcMs: number[] = [];
for (let i = 0; i < 3; i++) {
  renderer.render(translate(snap, { ...base, now: new Date() }));
  const t = performance.now();
  collectGarbage();
  gcMs.push(Math.round(performance.now() - t));
}

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 200 });
await session.post('Profiler.start');
const times: Array<{ translate: number; render: number }> = [];
for (let s = 0; s < PASSES; s++) {
  let i = (1 + s * 7919) % N;
  if (i % TLS_EVERY === 0) i = (i + 1) % N;
  const ingresses = snap.ingresses.slice();
  ingresses[i] = ingress(i, `/api-v${s + 1}`);
  snap = { ...snap, ingresses };
  const t0 = performance.now();
  const model = translate(snap, { ...base, now: new Date() });
  const t1 = performance.now();
  renderer.render(model);
  times.push({ translate: Math.round(t1 - t0), render: Math.round(performance.now() - t1) });
}
const { profile } = (await session.post('Profiler.stop')) as unknown as {
  profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] };
};
session.disconnect();
if (flags.out) await writeFile(flags.out, JSON.stringify(profile));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const key = (n: ProfileNode) =>
  `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(src|node_modules|bench)\//, '$1/')}:${n.callFrame.lineNumber + 1}`;
const self = new Map<string, number>();
const total = new Map<string, number>();
let all = 0;
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0;
  all += dt;
  const n = byId.get(id)!;
  self.set(key(n), (self.get(key(n)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur)!);
    if (!seen.has(k)) total.set(k, (total.get(k) ?? 0) + dt);
    seen.add(k);
  }
});
const top = (m: Map<string, number>, limit: number) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(
      ([k, t]) =>
        `${(t / 1000 / PASSES).toFixed(1).padStart(8)} ms/pass ${((100 * t) / all).toFixed(1).padStart(5)}%  ${k}`,
    )
    .join('\n');
console.log(
  `${N} Ingresses, one changed per pass, ${PASSES} passes (profiler attached): translate / render ms ${JSON.stringify(times)}`,
);
console.log(`collectGarbage() after a full pass: ${gcMs.join(', ')} ms`);
console.log(
  `sampled per pass: ${(all / 1000 / PASSES).toFixed(1)} ms\n\nby inclusive time:\n${top(total, 40)}\n\nby self time:\n${top(self, 25)}`,
);
