// From a snapshot to a configuration nginx accepts: translate, render, hand the files to nginx,
// and when nginx refuses them, set aside what it refused and go again. `run` hands the files to
// the Applier (check, swap, reload), `render` to `nginx -t` in a throwaway directory, so both set
// aside the same Ingresses for the same reasons.
//
// Who is to blame: the Ingress whose own lines (render's record: Rendered.ingressAt) hold the
// line nginx names; a certificate file nginx names; else (nginx often names no line: `unknown "x" variable`) the
// Ingresses found by bisection, each check an `nginx -t` of a subset, nothing live touched.
import { createHash } from 'node:crypto';
import type { V1Ingress } from '@kubernetes/client-node';
import { NginxConfigError } from '../nginx/config-test.ts';
import type { Logger } from '../ops/log.ts';
import type { RoutingModel } from '../model.ts';
import type { Renderer } from '../nginx/render.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import { ingressKey } from '../translate/index.ts';

/**
 * An Ingress whose rendered config nginx refused, until it changes. First it is `closed`: it keeps
 * its paths, which answer 503 with nothing of its annotations rendered (so that they do not fall
 * through to another route); if nginx refuses even that (a path nginx cannot compile), it is left
 * out whole.
 */
export interface Quarantined {
  fingerprint: string;
  reason: string;
  closed: boolean;
}

export interface SettleParts<R> {
  /** The model of these objects (the caller's options, its clock, its refused certificates). */
  translate(snap: Snapshot): RoutingModel | Promise<RoutingModel>;
  /** Writes the private files the model names before nginx reads the config. */
  prepare?(model: RoutingModel): Promise<unknown>;
  /** Puts the files in front of nginx; throws NginxConfigError when `nginx -t` refuses them. */
  apply(files: Map<string, string>): Promise<R>;
  /** `nginx -t` of the files only, nothing live touched; throws NginxConfigError. */
  check(files: Map<string, string>): Promise<void>;
  /** By Ingress key; grows with what nginx refuses (the caller releases changed Ingresses). */
  quarantine: Map<string, Quarantined>;
  /** Certificate file name -> nginx's message; grows with what nginx refuses. */
  refusedCertificates: Map<string, string>;
  logger: Logger;
  /** Renders every attempt and check; its cache of unchanged servers carries over between passes. */
  renderer: Renderer;
  /** How long rendering may hold the event loop before it yields (ms; Renderer.renderAsync's default). */
  stepBudgetMs?: number;
  onRender?(seconds: number): void;
  /** Each time nginx refused a whole set (a failed attempt). */
  onRefused?(): void;
}

export interface Settled<R> {
  model: RoutingModel;
  files: Map<string, string>;
  applied: R;
}

/** How many times one pass may set something aside and try again. */
const MAX_ATTEMPTS = 8;
/** Culprits one bisection may find: each costs about log2(n) + 1 runs of `nginx -t`. */
const MAX_BISECT_CULPRITS = 16;
/** Refused certificate files remembered (oldest forgotten first). */
const MAX_REFUSED_CERTIFICATES = 256;

/** Thrown when nothing can be set aside and nginx still refuses: the last good config stays. */
export class UnsettledError extends Error {
  readonly nginxOutput: string;
  /** nginx's complaint alone (NginxConfigError's summary). */
  readonly summary: string;
  constructor(refusal: NginxConfigError) {
    super(`nginx rejected the rendered configuration; the last good one stays in place: ${refusal.nginxOutput.trim()}`);
    this.name = 'UnsettledError';
    this.nginxOutput = refusal.nginxOutput;
    this.summary = refusal.summary;
  }
}

export async function settle<R>(snap: Snapshot, parts: SettleParts<R>): Promise<Settled<R>> {
  const log = parts.logger;
  for (let attempt = 0; ; attempt++) {
    const current = withoutQuarantined(snap, parts.quarantine);
    const renderStart = performance.now();
    // Rendered in slices (renderAsync): at thousands of hosts a whole render would hold the
    // event loop (health, status, watch events) for hundreds of ms.
    const model = await parts.translate(current);
    const rendered = await parts.renderer.renderAsync(model, parts.stepBudgetMs);
    const files = rendered.files;
    parts.onRender?.((performance.now() - renderStart) / 1000);
    // Before the config that names them: `nginx -t` of the staged files opens them.
    await parts.prepare?.(model);
    let err: NginxConfigError;
    try {
      return { model, files, applied: await parts.apply(files) };
    } catch (e) {
      if (!(e instanceof NginxConfigError)) throw e;
      err = e;
    }
    parts.onRefused?.();
    const last = attempt >= MAX_ATTEMPTS;
    const culprit = err.file && err.line ? rendered.ingressAt(err.file, err.line) : null;
    // nginx names no line for a certificate it cannot load, only the file: a Secret's.
    const refused = culprit ? null : refusedCertificateIn(err.nginxOutput, model);
    if (refused && !last) {
      const message = (err.nginxOutput.split('\n').find((l) => l.includes(refused)) ?? err.nginxOutput)
        .replace(/^.*?\[emerg\] [0-9#]+: /, '')
        .trim()
        .slice(0, 500);
      if (parts.refusedCertificates.size >= MAX_REFUSED_CERTIFICATES)
        parts.refusedCertificates.delete(parts.refusedCertificates.keys().next().value!);
      parts.refusedCertificates.set(refused, message);
      log.error('nginx refused a certificate; the hosts that use it get the default certificate', {
        file: refused,
        nginx: message,
      });
      continue;
    }
    if (culprit && !last) {
      setAside(snap, parts, culprit, err, {});
      continue;
    }
    const found = last ? null : await bisectOnce(current, model, err, parts);
    if (found === null) {
      // Nothing to set aside: nginx keeps the last good config and the error stays visible.
      log.error('nginx rejected the configuration; the last good one stays live', {
        nginx: err.nginxOutput.trim(),
        ...(err.file ? { file: err.file, line: err.line } : {}),
        ...(culprit ? { ingress: culprit } : {}),
        ...(last ? {} : { withoutIngresses: 'refused too: the problem is not in any Ingress' }),
      });
      throw new UnsettledError(err);
    }
  }
}

/**
 * nginx refused `current` and named no Ingress: bisect, quarantine each culprit with nginx's own
 * message. null when nginx refuses the config even without any Ingress (nothing to set aside).
 */
async function bisectOnce<R>(
  current: Snapshot,
  model: RoutingModel,
  err: NginxConfigError,
  parts: SettleParts<R>,
): Promise<string[] | null> {
  const log = parts.logger;
  const served = new Set([...model.served, ...closedIngresses(parts.quarantine)]);
  // Only Ingresses that rendered something can be to blame; the rest stay in every subset.
  const candidates = current.ingresses.filter((i) => served.has(ingressKey(i)));
  const others = current.ingresses.filter((i) => !served.has(ingressKey(i)));
  const started = performance.now();
  log.warn('nginx rejected the configuration without naming an Ingress; checking subsets to find which', {
    nginx: err.summary,
    candidates: candidates.length,
  });
  const result = await bisectRefused(candidates, err, async (subset) => {
    const m = await parts.translate({ ...current, ingresses: [...others, ...subset] });
    await parts.prepare?.(m);
    try {
      await parts.check((await parts.renderer.renderAsync(m, parts.stepBudgetMs)).files);
      return null;
    } catch (e) {
      if (e instanceof NginxConfigError) return e;
      throw e;
    }
  });
  const ms = Math.round(performance.now() - started);
  if (result === null) {
    log.info('nginx refuses the configuration even without any Ingress', { checks: 1, ms });
    return null;
  }
  for (const c of result.culprits) setAside(current, parts, c.ingress, c.error, { found: 'by bisection' });
  log.info('found the Ingresses nginx refuses', {
    ingresses: result.culprits.map((c) => c.ingress),
    candidates: candidates.length,
    checks: result.checks,
    complete: result.complete,
    ms,
  });
  return result.culprits.map((c) => c.ingress);
}

export interface BisectResult {
  /** In the order found, each with nginx's refusal of the first subset it made fail. */
  culprits: Array<{ ingress: string; error: NginxConfigError }>;
  /** Runs of `check`. */
  checks: number;
  /** false when it stopped at MAX_BISECT_CULPRITS with the rest still refused. */
  complete: boolean;
}

/**
 * The Ingresses nginx refuses, given that it refuses all of `candidates` (with `refusal`), by
 * bisection over prefixes of them, oldest first: the culprit is the Ingress whose addition makes
 * a prefix that nginx accepts fail. Nothing is assumed about how failures combine: each culprit
 * is proven by two checks (the prefix before it passes, with it fails), and two Ingresses that
 * only fail together blame the newer. After each culprit the rest is checked again, resuming
 * from the prefix known to pass, so k culprits among n cost about 1 + k (log2 n + 1) checks.
 * null when nginx refuses even none of them.
 */
export async function bisectRefused(
  candidates: V1Ingress[],
  refusal: NginxConfigError,
  refuses: (ingresses: V1Ingress[]) => Promise<NginxConfigError | null>,
  maxCulprits = MAX_BISECT_CULPRITS,
): Promise<BisectResult | null> {
  const list = [...candidates].sort(oldestFirst);
  // With no candidate, none is the set nginx already refused.
  if (list.length === 0) return null;
  let checks = 0;
  const test = (n: number) => {
    checks++;
    return refuses(list.slice(0, n));
  };
  if ((await test(0)) !== null) return null;
  const culprits: BisectResult['culprits'] = [];
  let good = 0; // a prefix this long passes
  let bad = list.length; // a prefix this long fails, with badError
  let badError = refusal;
  for (;;) {
    while (bad - good > 1) {
      const mid = Math.floor((good + bad) / 2);
      const e = await test(mid);
      if (e === null) good = mid;
      else [bad, badError] = [mid, e];
    }
    const [culprit] = list.splice(good, 1);
    culprits.push({ ingress: ingressKey(culprit!), error: badError });
    if (list.length === good) return { culprits, checks, complete: true };
    const e = await test(list.length);
    if (e === null) return { culprits, checks, complete: true };
    if (culprits.length >= maxCulprits) return { culprits, checks, complete: false };
    [bad, badError] = [list.length, e];
  }
}

/** Oldest first (creationTimestamp; none counts as newest), then namespace/name, as conflicts are decided. */
function oldestFirst(a: V1Ingress, b: V1Ingress): number {
  const ta = a.metadata?.creationTimestamp ? new Date(a.metadata.creationTimestamp).getTime() : Infinity;
  const tb = b.metadata?.creationTimestamp ? new Date(b.metadata.creationTimestamp).getTime() : Infinity;
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = ingressKey(a);
  const kb = ingressKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** Quarantines an Ingress nginx refused: closed the first time, left out when nginx refuses it closed too. */
function setAside<R>(
  snap: Snapshot,
  parts: SettleParts<R>,
  key: string,
  err: NginxConfigError,
  fields: Record<string, string>,
): void {
  const ing = snap.ingresses.find((i) => ingressKey(i) === key);
  const closed = parts.quarantine.get(key) === undefined;
  parts.logger.error(
    closed
      ? 'nginx rejected the configuration rendered for an Ingress; its paths answer 503 until it changes'
      : 'nginx rejected even the 503s of an Ingress it refused; leaving it out',
    { ingress: key, nginx: err.summary, ...fields },
  );
  // The summary, not the whole output: no timestamps or staging paths in a reason users read.
  parts.quarantine.set(key, {
    fingerprint: ing ? fingerprint(ing) : '',
    reason: `nginx rejected its configuration: ${err.summary}`,
    closed,
  });
}

/** The snapshot translate gets: quarantined Ingresses that are left out whole are not in it. */
export function withoutQuarantined(snap: Snapshot, quarantine: ReadonlyMap<string, Quarantined>): Snapshot {
  if (![...quarantine.values()].some((q) => !q.closed)) return snap;
  return { ...snap, ingresses: snap.ingresses.filter((i) => quarantine.get(ingressKey(i))?.closed !== false) };
}

/** The quarantined Ingresses translate keeps closed (TranslateOptions.closed). */
export function closedIngresses(quarantine: ReadonlyMap<string, Quarantined>): Set<string> {
  return new Set([...quarantine].filter(([, q]) => q.closed).map(([k]) => k));
}

/** Forgets quarantined Ingresses that changed or are gone: they get another chance. */
export function releaseChangedQuarantine(quarantine: Map<string, Quarantined>, ingresses: V1Ingress[]): void {
  for (const [key, q] of quarantine) {
    const ing = ingresses.find((i) => ingressKey(i) === key);
    if (!ing || fingerprint(ing) !== q.fingerprint) quarantine.delete(key);
  }
}

/**
 * The certificate file (a Secret's, not the generated default) that nginx's output names, or null.
 * nginx reports a certificate it cannot load without a line: `cannot load certificate "PATH"`.
 */
export function refusedCertificateIn(output: string, model: RoutingModel): string | null {
  const generated = model.defaultServer.tls?.secret === null ? model.defaultServer.tls.certPath : null;
  for (const c of model.certificates) {
    const used = [model.defaultServer, ...model.servers].find((s) => s.tls?.certPath.endsWith(`/${c.file}`));
    if (!used || used.tls?.certPath === generated) continue;
    if (output.includes(`/${c.file}`)) return c.file;
  }
  return null;
}

function fingerprint(ing: V1Ingress): string {
  return createHash('sha256')
    .update(JSON.stringify([ing.metadata?.annotations ?? {}, ing.metadata?.labels ?? {}, ing.spec ?? {}]))
    .digest('hex');
}
