// Canaries: a canary Ingress takes a share (by header, cookie or weight) of the requests of paths
// that other Ingresses serve; it claims nothing of its own.

import { CANARY_ANNOTATIONS, SUPPORTED_ANNOTATIONS, type CanaryConfig } from '../annotations/index.ts';
import { digest } from '../annotations/settings.ts';
import type { CanarySelector, Location } from '../model.ts';
import { Backends, variantOf } from './backends.ts';
import type { HostClaims } from './hosts.ts';
import { namespaceOf } from './membership.ts';
import { claimKeyOf, type ParsedIngress } from './parse.ts';
import type { Report } from './rejections.ts';

/** canary-weight out of canary-weight-total as a split_clients percentage: two decimals, never rounded to all or nothing. */
export function canaryPercent(c: CanaryConfig): number {
  if (c.weight <= 0) return 0;
  if (c.weight >= c.total) return 100;
  return Math.min(99.99, Math.max(0.01, Math.round((c.weight / c.total) * 10000) / 100));
}

export class Canaries {
  /** Canary Ingresses, oldest first: they split the traffic of paths other Ingresses serve. */
  private readonly ingresses: ParsedIngress[] = [];
  private readonly selectors = new Map<string, CanarySelector>();
  /** Canary Ingresses that take a share of some path: they count as served (status, Events). */
  readonly attached = new Set<string>();

  private readonly claims: HostClaims;
  private readonly backends: Backends;
  private readonly report: Report;
  /** --allow-cross-namespace-canary */
  private readonly allowCrossNamespace: boolean;

  constructor(claims: HostClaims, backends: Backends, report: Report, allowCrossNamespace: boolean) {
    this.claims = claims;
    this.backends = backends;
    this.report = report;
    this.allowCrossNamespace = allowCrossNamespace;
  }

  /** A canary Ingress (given oldest first); `given` is its annotations as written. */
  add(parsed: ParsedIngress, given: Record<string, string>): void {
    const key = parsed.key;
    this.ingresses.push(parsed);
    for (const name of Object.keys(given).sort()) {
      if (SUPPORTED_ANNOTATIONS.has(name) && !CANARY_ANNOTATIONS.has(name)) {
        this.report(
          key,
          'partial',
          `annotation ${name} has no effect on a canary Ingress: the settings of the Ingress it splits traffic with apply`,
        );
      }
    }
    if (parsed.defaultBackend) this.report(key, 'partial', 'defaultBackend of a canary Ingress is not used');
  }

  /** Attaches every canary to the claims it splits, once every other Ingress has claimed its paths. */
  attachAll(byKey: ReadonlyMap<string, ParsedIngress>): void {
    for (const c of this.ingresses) this.attach(c, byKey);
  }

  /** The selectors that locations use, sorted by variable. */
  usedBy(locations: Location[]): CanarySelector[] {
    return [...new Set(locations.flatMap((l) => (l.action.kind === 'proxy' && l.action.via ? [l.action.via] : [])))]
      .sort()
      .map((v) => this.selectors.get(v)!);
  }

  private attach(c: ParsedIngress, byKey: ReadonlyMap<string, ParsedIngress>): void {
    const report = this.report;
    const config = c.annotations.canary!;
    for (const rule of c.rules) {
      const where = rule.host ? `host ${rule.host.host}` : 'rules without a host';
      const routes = rule.host ? this.claims.hosts.get(rule.host.host) : this.claims.catchAll;
      for (const p of rule.paths) {
        const what = `canary path ${p.rawPath} (${p.pathType}) on ${where}`;
        const claim = routes?.claims.get(claimKeyOf(p));
        if (!claim) {
          report(
            c.key,
            'partial',
            `${what}: no other Ingress of the class serves it, and a canary only takes a share of a served path's requests`,
          );
          continue;
        }
        if (!this.allowCrossNamespace && namespaceOf(claim.ingress) !== namespaceOf(c.key)) {
          report(
            c.key,
            'partial',
            `${what}: the Ingress it would split, ${claim.ingress}, is in another namespace; a canary splits only the traffic of its own namespace (--allow-cross-namespace-canary allows more)`,
          );
          continue;
        }
        if (claim.canary !== undefined) {
          if (claim.canary !== c.key)
            report(c.key, 'partial', `${what}: the older canary Ingress ${claim.canary} already splits its requests`);
          continue;
        }
        const main = claim.resolved.action;
        if (main.kind !== 'proxy') {
          report(
            c.key,
            'partial',
            `${what}: the backend of ${claim.ingress} cannot serve, so there is nothing to split`,
          );
          continue;
        }
        // The canary's upstream is built like the main one (protocol, balancing): one location
        // proxies to either. Its endpoints stay in the files (a reload when they change): with none,
        // the split is dropped and all requests go to the main backend, as in ingress-nginx.
        const variant = { ...variantOf(byKey.get(claim.ingress)!.annotations), staticEndpoints: true };
        const r = this.backends.resolve(p.backend, variant, (reason) => report(c.key, 'partial', reason));
        if (r.action.kind !== 'proxy') {
          report(
            c.key,
            'partial',
            `${what}: its backend cannot serve (${'reason' in r.action ? r.action.reason : 'no backend'}); all requests go to ${claim.ingress}`,
          );
          continue;
        }
        claim.canary = c.key;
        claim.canaryService = r.service;
        this.attached.add(c.key);
        const weight = canaryPercent(config);
        if (config.header === null && config.cookie === null && (weight === 0 || weight === 100)) {
          // Nothing decides per request: all requests go to one of them.
          if (weight === 100)
            claim.resolved = { ...claim.resolved, action: { kind: 'proxy', upstream: r.action.upstream } };
          continue;
        }
        const selector: Omit<CanarySelector, 'variable'> = {
          main: main.upstream,
          canary: r.action.upstream,
          ingress: c.key,
          mainIngress: claim.ingress,
          header: config.header
            ? { source: `http_${config.header.name.toLowerCase().replaceAll('-', '_')}`, value: config.header.value }
            : null,
          cookie: config.cookie === null ? null : `cookie_${config.cookie}`,
          weight,
        };
        const variable = `isc_canary_${digest(JSON.stringify(selector), 12)}`;
        this.selectors.set(variable, { variable, ...selector });
        claim.resolved = { ...claim.resolved, action: { kind: 'proxy', upstream: main.upstream, via: variable } };
      }
    }
  }
}
