// Host claims: which Ingress serves each path of each host, first come in age order; which
// namespace owns a host; conflicts between Ingresses; and default backends (spec.defaultBackend
// and the default-backend annotation).
//
// spec.defaultBackend as ingress-nginx uses it (internal/ingress/controller/controller.go,
// createServers): the oldest Ingress with a rule for a host makes that host's server, and its
// defaultBackend (if any) answers the host's unmatched paths; the default server (hosts no rule
// names) takes the defaultBackend of the oldest Ingress that has no rules at all, and then keeps its
// "/" even against rules without a host. Otherwise both answer with --default-backend-service, else 404.

import type { V1Ingress } from '@kubernetes/client-node';
import { defaultCookiePath, type IngressAnnotations } from '../annotations/index.ts';
import { parseHost, type ParsedHost } from '../grammar.ts';
import type { Action } from '../model.ts';
import { Backends, describeBackend, sameBackend, variantOf } from './backends.ts';
import { namespaceOf } from './membership.ts';
import { claimKeyOf, list, type BackendRef, type ParsedIngress, type ParsedPath } from './parse.ts';
import type { Report } from './rejections.ts';

export interface Claim {
  ingress: string;
  path: ParsedPath;
  resolved: { action: Action; service: string };
  /** The canary Ingress that splits this path's traffic, once one is attached. */
  canary?: string;
  /** That canary's Service (namespace/name:port), for the rendered comment. */
  canaryService?: string;
}

/** Routes of one host (or of the catch-all, host null), claimed first-come in age order. */
export interface HostRoutes {
  host: ParsedHost | null;
  claims: Map<string, Claim>;
  ingresses: Set<string>;
  /**
   * What answers the unmatched paths: for a host, the defaultBackend of `first` (null: it has none,
   * and --default-backend-service or 404 answers); for the catch-all, that of the oldest Ingress without rules.
   */
  fallback: { ingress: string; resolved: { action: Action; service: string } } | null;
  /** The oldest served Ingress with a rule for this host: it makes the host's server (null: none yet). */
  first: string | null;
  /**
   * The oldest Ingress with a rule for this host: its namespace owns the host, and Ingresses of
   * other namespaces get nothing on it (null: the catch-all, which every namespace shares).
   */
  owner: string | null;
}

/** The routes of every host, claimed by Ingresses given oldest first. */
export class HostClaims {
  readonly hosts = new Map<string, HostRoutes>();
  readonly catchAll: HostRoutes = {
    host: null,
    claims: new Map(),
    ingresses: new Set(),
    fallback: null,
    first: null,
    owner: null,
  };

  private readonly backends: Backends;
  private readonly report: Report;
  private readonly allowCrossNamespaceHosts: boolean;

  constructor(backends: Backends, report: Report, allowCrossNamespaceHosts: boolean) {
    this.backends = backends;
    this.report = report;
    this.allowCrossNamespaceHosts = allowCrossNamespaceHosts;
  }

  /** Whether two Ingresses may share a host (and its default backend): same namespace, or --allow-cross-namespace-hosts. */
  readonly sameTenant = (a: string, b: string) => this.allowCrossNamespaceHosts || namespaceOf(a) === namespaceOf(b);

  /** Hosts with a server (a served Ingress has a rule for them, even one without paths), in the order they were first claimed. */
  live(): HostRoutes[] {
    return [...this.hosts.values()].filter((h) => h.first !== null);
  }

  /**
   * A backend of an Ingress; with a default-backend annotation, that Service answers when the
   * backend cannot. `cookiePath`: where the path it serves sets its affinity cookie (variantOf).
   */
  resolve(key: string, b: BackendRef, a: IngressAnnotations, cookiePath: string): { action: Action; service: string } {
    const r = this.backends.resolve(b, variantOf(a, cookiePath), (reason) => this.report(key, 'partial', reason));
    if (r.action.kind !== 'unavailable' || a.defaultBackend === null) return r;
    const fallback = this.defaultBackendOf(key, a);
    return fallback ? { action: fallback.action, service: fallback.service } : r;
  }

  /** The default-backend annotation's Service, when it can serve; else reported, and null. */
  defaultBackendOf(key: string, a: IngressAnnotations): { action: Action; service: string } | null {
    if (a.defaultBackend === null) return null;
    const namespace = key.split('/')[0]!;
    const ref = this.backends.firstPort(namespace, a.defaultBackend);
    // Only whether it serves matters here: why not is said below.
    const r = ref ? this.backends.resolve(ref, variantOf(a), () => {}) : null;
    if (r?.action.kind === 'proxy') return r;
    this.report(
      key,
      'partial',
      `default-backend: ${r?.action.kind === 'unavailable' ? r.action.reason : `Service ${namespace}/${a.defaultBackend} not found or has no ports`}`,
    );
    return null;
  }

  /** The hosts of an Ingress that did not parse stay its namespace's: a mistake must not hand a host to another namespace. */
  reserve(ing: V1Ingress, key: string): void {
    for (const r of list(ing.spec?.rules)) {
      let h: ParsedHost | null;
      try {
        h = typeof r.host === 'string' && r.host !== '' ? parseHost(r.host) : null;
      } catch {
        h = null;
      }
      if (h && !this.hosts.has(h.host))
        this.hosts.set(h.host, {
          host: h,
          claims: new Map(),
          ingresses: new Set(),
          fallback: null,
          first: null,
          owner: key,
        });
    }
  }

  /**
   * A defaultBackend-only Ingress keeps "/" of the default server (ingress-nginx sets it up before
   * any rule's path, so a Prefix "/" without a host cannot replace it): such claims are reported, not used.
   */
  settleCatchAll(): void {
    const fb = this.catchAll.fallback;
    if (!fb) return;
    for (const [claimKey, c] of this.catchAll.claims) {
      if (c.path.match !== 'prefix' || c.path.path !== '/') continue;
      // Another namespace's Ingress does not take a tenant's route (one namespace per host).
      if (!this.sameTenant(fb.ingress, c.ingress)) {
        this.report(
          fb.ingress,
          'partial',
          `defaultBackend is not used for /: Ingress ${c.ingress} of namespace ${namespaceOf(c.ingress)} answers / on rules without a host`,
        );
        continue;
      }
      this.catchAll.claims.delete(claimKey);
      this.report(
        c.ingress,
        'partial',
        `path ${c.path.rawPath} (${c.path.pathType}) on rules without a host is not used: the defaultBackend of Ingress ${fb.ingress}, which has no rules, answers / for hosts no rule names (as in ingress-nginx)`,
      );
    }
    this.catchAll.ingresses.clear();
    for (const c of this.catchAll.claims.values()) this.catchAll.ingresses.add(c.ingress);
  }

  /** The rules and defaultBackend of an Ingress (not a canary): what older Ingresses hold is reported, not taken. */
  claim(parsed: ParsedIngress): void {
    const key = parsed.key;
    const report = this.report;
    const ownDefault = parsed.defaultBackend
      ? { ingress: key, resolved: this.resolve(key, parsed.defaultBackend, parsed.annotations, '/') }
      : null;
    if (ownDefault && parsed.rules.length === 0) {
      // ingress-nginx: "Ingress defines a backend but no rule", the catch-all; the oldest wins.
      if (!this.catchAll.fallback) this.catchAll.fallback = ownDefault;
      else {
        report(
          key,
          'partial',
          `defaultBackend is not used: the older Ingress ${this.catchAll.fallback.ingress} already provides the default backend (an Ingress without rules answers hosts no rule names)`,
        );
      }
    } else if (ownDefault && !parsed.rules.some((r) => r.host !== null)) {
      report(
        key,
        'partial',
        'defaultBackend is not used: an Ingress with rules uses it only for the unmatched paths of its own hosts, and these rules have none (as in ingress-nginx, hosts no rule names get the defaultBackend of an Ingress without rules)',
      );
    }

    for (const rule of parsed.rules) {
      const hostKey = rule.host?.host ?? '';
      let routes = rule.host ? this.hosts.get(hostKey) : this.catchAll;
      if (!routes) {
        routes = { host: rule.host, claims: new Map(), ingresses: new Set(), fallback: null, first: null, owner: key };
        this.hosts.set(hostKey, routes);
      }
      // One namespace per host, the oldest Ingress's: otherwise a tenant could add paths, a
      // defaultBackend, TLS (and with it redirects) or error pages to another tenant's host.
      if (routes.owner !== null && !this.sameTenant(routes.owner, key)) {
        report(
          key,
          'partial',
          `rules for host ${hostKey} are not used: the host belongs to namespace ${namespaceOf(routes.owner)}, whose Ingress ${routes.owner} is the oldest with rules for it (a host is served by one namespace)`,
        );
        continue;
      }
      if (rule.host && routes.first === null) {
        // This Ingress makes the host's server: its defaultBackend (or none) answers the unmatched paths.
        routes.first = key;
        routes.fallback = ownDefault;
        routes.ingresses.add(key);
      } else if (ownDefault && rule.host && routes.first !== key) {
        report(
          key,
          'partial',
          `defaultBackend is not used for host ${hostKey}: the older Ingress ${routes.first} has rules for it, and ${routes.fallback ? 'its defaultBackend answers' : 'having no defaultBackend, it leaves'} the host's unmatched paths${routes.fallback ? '' : ' to the default backend (404)'}`,
        );
      }
      for (const p of rule.paths) {
        const claimKey = claimKeyOf(p);
        const owner = routes.claims.get(claimKey);
        if (owner) {
          const where = hostKey ? `host ${hostKey}` : 'rules without a host';
          if (owner.ingress !== key) {
            report(
              key,
              'partial',
              `path ${p.rawPath} (${p.pathType}) on ${where} is already served by the older Ingress ${owner.ingress}`,
            );
          } else if (
            owner.path !== p &&
            (owner.path.rawPath !== p.rawPath || !sameBackend(owner.path.backend, p.backend))
          ) {
            report(
              key,
              'partial',
              `path ${p.rawPath} (${p.pathType}) on ${where} is not used: this Ingress already lists ${owner.path.rawPath} (${owner.path.pathType}) there, which nginx serves as the same route, to ${describeBackend(owner.path.backend)}`,
            );
          }
          continue;
        }
        routes.claims.set(claimKey, {
          ingress: key,
          path: p,
          resolved: this.resolve(key, p.backend, parsed.annotations, defaultCookiePath(p)),
        });
        routes.ingresses.add(key);
      }
    }
  }
}
