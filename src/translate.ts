// Cluster state -> routing model. Pure: no I/O, no clock, no logging, sorted output, so the same
// snapshot always yields the same model (and so the same bytes on disk).
//
// Semantics follow networking.k8s.io/v1 Ingress as the Kubernetes docs state them:
// - hosts are exact or single-label wildcards; an exact host wins over a wildcard;
// - Exact paths match the whole path; Prefix (and ImplementationSpecific) match path elements,
//   a trailing slash ignored; the longest path wins, then Exact over Prefix;
// - rules without a host and the defaultBackend take whatever no host rule matched.

import { createHash } from 'node:crypto';
import type {
  V1EndpointSlice,
  V1Endpoints,
  V1Ingress,
  V1IngressBackend,
  V1IngressClass,
  V1Service,
  V1ServicePort,
} from '@kubernetes/client-node';
import type { Action, Location, Rejection, RoutingModel, Server, Upstream } from './model.ts';
import type { Snapshot } from './snapshot.ts';
import {
  InvalidValue,
  checkObjectName,
  isPortName,
  isPortNumber,
  parseHost,
  parsePath,
  serverNameFor,
  upstreamAddress,
  type ParsedHost,
} from './validate.ts';

export interface TranslateOptions {
  ingressClass: string;
  httpPort: number;
  ipv6: boolean;
  /** JSON access log for our servers; absent or null leaves access logging to nginx.conf. */
  accessLog?: string | null;
}

export const CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';
const NGINX_ANNOTATION_PREFIX = 'nginx.ingress.kubernetes.io/';

export const FILE_PREFIX = 'ingress-sidecar';
// nginx includes conf.d/*.conf in name order, and a log_format must precede its use: the file
// with the http-level definitions (and the default server) sorts first.
export const MAIN_FILE = `${FILE_PREFIX}-00-main.conf`;
export const UPSTREAMS_FILE = `${FILE_PREFIX}-upstreams.conf`;

type PathType = 'Exact' | 'Prefix' | 'ImplementationSpecific';

interface BackendRef {
  namespace: string;
  service: string;
  port: { number: number } | { name: string };
}

interface ParsedPath {
  pathType: PathType;
  rawPath: string;
  /** Exact: the literal. Prefix: without its trailing slash ("/" stays "/"). */
  match: 'exact' | 'prefix';
  path: string;
  backend: BackendRef;
}

interface ParsedIngress {
  key: string;
  rules: Array<{ host: ParsedHost | null; paths: ParsedPath[] }>;
  defaultBackend: BackendRef | null;
  notes: string[];
}

/**
 * The object elements of a list field. The Kubernetes API guarantees field types; manifests read
 * from a directory do not, and one malformed object must not stop the translation of the rest.
 */
function list<T>(value: T[] | undefined | null): T[] {
  return Array.isArray(value) ? value.filter((v): v is T => typeof v === 'object' && v !== null) : [];
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new InvalidValue(`${where} must be a string`);
  return value;
}

/** Whether an Ingress belongs to the class this sidecar serves. */
export function isOurs(ing: V1Ingress, className: string, classes: V1IngressClass[]): boolean {
  const explicit = ing.spec?.ingressClassName ?? ing.metadata?.annotations?.[CLASS_ANNOTATION];
  if (explicit !== undefined && explicit !== '') return explicit === className;
  const cls = classes.find((c) => c.metadata?.name === className);
  return cls?.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true';
}

export function ingressKey(ing: V1Ingress): string {
  return `${ing.metadata?.namespace ?? 'default'}/${ing.metadata?.name ?? ''}`;
}

/** Oldest first, so that an existing route is never taken over by a newer Ingress; then by name. */
function byAge(a: V1Ingress, b: V1Ingress): number {
  const ta = timeOf(a);
  const tb = timeOf(b);
  if (ta !== tb) return ta - tb;
  const ka = ingressKey(a);
  const kb = ingressKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function timeOf(ing: V1Ingress): number {
  const t = ing.metadata?.creationTimestamp;
  const ms = t instanceof Date ? t.getTime() : t ? Date.parse(String(t)) : NaN;
  // Without a timestamp (a hand-written manifest) an Ingress counts as the newest.
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER;
}

function parseBackend(namespace: string, b: V1IngressBackend | undefined, where: string): BackendRef {
  if (!b) throw new InvalidValue(`${where}: backend is missing`);
  if (b.resource) {
    throw new InvalidValue(`${where}: resource backends (${b.resource.kind ?? 'unknown kind'}) are not supported; use a Service backend`);
  }
  const svc = b.service;
  if (!svc) throw new InvalidValue(`${where}: backend.service is missing`);
  const service = checkObjectName('Service', svc.name, 'label1035');
  const num = svc.port?.number;
  const name = svc.port?.name;
  if (num !== undefined && num !== null && name) throw new InvalidValue(`${where}: service port must set number or name, not both`);
  if (num !== undefined && num !== null) {
    if (!isPortNumber(num)) throw new InvalidValue(`${where}: service port number ${JSON.stringify(num)} is not in 1-65535`);
    return { namespace, service, port: { number: num } };
  }
  if (name) {
    if (!isPortName(name)) throw new InvalidValue(`${where}: service port name ${JSON.stringify(name)} is not a valid port name`);
    return { namespace, service, port: { name } };
  }
  throw new InvalidValue(`${where}: service port (number or name) is missing`);
}

function parseIngress(ing: V1Ingress): ParsedIngress {
  const namespace = checkObjectName('namespace', ing.metadata?.namespace ?? 'default', 'label');
  checkObjectName('Ingress', ing.metadata?.name, 'subdomain');
  const key = ingressKey(ing);
  const spec = ing.spec ?? {};
  const notes: string[] = [];
  const rules: ParsedIngress['rules'] = [];
  list(spec.rules).forEach((rule, i) => {
    const host = rule.host === undefined || rule.host === null || rule.host === '' ? null : parseHost(text(rule.host, `rules[${i}].host`));
    const paths: ParsedPath[] = list(rule.http?.paths).map((p, j) => {
      const where = `rules[${i}].http.paths[${j}]`;
      const pathType = p.pathType as string | undefined;
      if (pathType !== 'Exact' && pathType !== 'Prefix' && pathType !== 'ImplementationSpecific') {
        throw new InvalidValue(`${where}: pathType must be Exact, Prefix or ImplementationSpecific, not ${JSON.stringify(pathType ?? '')}`);
      }
      // An empty ImplementationSpecific path means "everything", as an empty Prefix would.
      const given = p.path === undefined || p.path === null ? '' : text(p.path, `${where}.path`);
      const rawPath = given === '' ? (pathType === 'ImplementationSpecific' ? '/' : '') : given;
      if (rawPath === '') throw new InvalidValue(`${where}: path is required for pathType ${pathType}`);
      const decoded = parsePath(rawPath);
      const match = pathType === 'Exact' ? 'exact' : 'prefix';
      const path = match === 'prefix' && decoded.length > 1 ? decoded.replace(/\/+$/, '') : decoded;
      return { pathType, rawPath, match, path, backend: parseBackend(namespace, p.backend, where) };
    });
    if (paths.length === 0) notes.push(`rules[${i}] has no http paths and serves nothing`);
    rules.push({ host, paths });
  });
  const defaultBackend = spec.defaultBackend ? parseBackend(namespace, spec.defaultBackend, 'defaultBackend') : null;
  if (rules.length === 0 && !defaultBackend) throw new InvalidValue('spec has neither rules nor a defaultBackend');
  if (spec.tls?.length) notes.push('spec.tls is not supported yet: its hosts are served over plain HTTP only');
  for (const name of Object.keys(ing.metadata?.annotations ?? {}).sort()) {
    if (name.startsWith(NGINX_ANNOTATION_PREFIX)) notes.push(`annotation ${name} is not supported and has no effect`);
  }
  return { key, rules, defaultBackend, notes };
}

/** Resolves Service backends to upstreams; remembers each upstream once. */
class Backends {
  readonly upstreams = new Map<string, Upstream>();
  private readonly services = new Map<string, V1Service>();
  private readonly slices = new Map<string, V1EndpointSlice[]>();
  private readonly endpoints = new Map<string, V1Endpoints>();

  constructor(snap: Snapshot) {
    for (const s of snap.services) this.services.set(`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name}`, s);
    for (const es of snap.endpointSlices) {
      const svc = es.metadata?.labels?.['kubernetes.io/service-name'];
      if (!svc) continue;
      const k = `${es.metadata?.namespace ?? 'default'}/${svc}`;
      const list = this.slices.get(k) ?? [];
      list.push(es);
      this.slices.set(k, list);
    }
    for (const ep of snap.endpoints) this.endpoints.set(`${ep.metadata?.namespace ?? 'default'}/${ep.metadata?.name}`, ep);
  }

  /** The action for a backend, plus a reason to report when the Ingress refers to something missing. */
  resolve(b: BackendRef): { action: Action; service: string; problem?: string } {
    const portText = 'number' in b.port ? String(b.port.number) : b.port.name;
    const service = `${b.namespace}/${b.service}:${portText}`;
    const unavailable = (reason: string, problem = true) => ({
      action: { kind: 'unavailable', reason } as Action,
      service,
      ...(problem ? { problem: reason } : {}),
    });
    const svc = this.services.get(`${b.namespace}/${b.service}`);
    if (!svc) return unavailable(`Service ${b.namespace}/${b.service} not found`);
    if (svc.spec?.type === 'ExternalName') return unavailable(`Service ${b.namespace}/${b.service} is of type ExternalName, which is not supported`);
    const port = list(svc.spec?.ports).find((p) => ('number' in b.port ? p.port === b.port.number : p.name === b.port.name));
    if (!port) return unavailable(`Service ${b.namespace}/${b.service} has no port ${portText}`);
    // Looked up by name, the number comes from the Service: it names the upstream, so check it.
    if (!isPortNumber(port.port)) return unavailable(`Service ${b.namespace}/${b.service} port ${portText} has an invalid number`);
    const name = `${b.namespace}_${b.service}_${port.port}`;
    let upstream = this.upstreams.get(name);
    if (!upstream) {
      const servers = this.addresses(b.namespace, b.service, port).map((address) => ({ address }));
      upstream = { name, service: `${b.namespace}/${b.service}:${port.port}`, servers };
      this.upstreams.set(name, upstream);
    }
    if (upstream.servers.length === 0) return unavailable(`Service ${b.namespace}/${b.service} has no ready endpoints`, false);
    return { action: { kind: 'proxy', upstream: name }, service };
  }

  /** Ready endpoint addresses for a Service port, deduplicated and sorted. */
  private addresses(namespace: string, service: string, port: V1ServicePort): string[] {
    const out = new Set<string>();
    const portName = port.name ?? '';
    const slices = this.slices.get(`${namespace}/${service}`);
    if (slices) {
      for (const es of slices) {
        const sp = list(es.ports).find((p) => (p.name ?? '') === portName);
        if (!sp || !isPortNumber(sp.port)) continue;
        for (const ep of list(es.endpoints)) {
          // The API says an unset `ready` is to be read as ready.
          if (ep.conditions?.ready === false) continue;
          const ip: unknown = Array.isArray(ep.addresses) ? ep.addresses[0] : undefined;
          const addr = typeof ip === 'string' ? upstreamAddress(ip, sp.port) : null;
          if (addr) out.add(addr);
        }
      }
    } else {
      // core/v1 Endpoints, for clusters or manifests without EndpointSlices.
      for (const subset of list(this.endpoints.get(`${namespace}/${service}`)?.subsets)) {
        const sp = list(subset.ports).find((p) => (p.name ?? '') === portName);
        if (!sp || !isPortNumber(sp.port)) continue;
        for (const a of list(subset.addresses)) {
          const addr = typeof a.ip === 'string' ? upstreamAddress(a.ip, sp.port) : null;
          if (addr) out.add(addr);
        }
      }
    }
    return [...out].sort();
  }
}

interface Claim {
  ingress: string;
  path: ParsedPath;
  resolved: { action: Action; service: string };
}

/** Routes of one host (or of the catch-all, host null), claimed first-come in age order. */
interface HostRoutes {
  host: ParsedHost | null;
  claims: Map<string, Claim>;
  ingresses: Set<string>;
  /** The defaultBackend of the oldest Ingress with rules for this host. */
  fallback: { ingress: string; resolved: { action: Action; service: string } } | null;
}

export function translate(snap: Snapshot, opts: TranslateOptions): RoutingModel {
  const rejections: Rejection[] = [];
  const reported = new Set<string>();
  const report = (ingress: string, severity: Rejection['severity'], reason: string) => {
    const k = `${ingress}\n${severity}\n${reason}`;
    if (reported.has(k)) return;
    reported.add(k);
    rejections.push({ ingress, severity, reason });
  };

  const ours = snap.ingresses.filter((i) => isOurs(i, opts.ingressClass, snap.ingressClasses)).sort(byAge);
  const backends = new Backends(snap);
  const hosts = new Map<string, HostRoutes>();
  const catchAll: HostRoutes = { host: null, claims: new Map(), ingresses: new Set(), fallback: null };
  let globalDefault: HostRoutes['fallback'] = null;

  const resolve = (key: string, b: BackendRef) => {
    const r = backends.resolve(b);
    if (r.problem) report(key, 'partial', r.problem);
    return r;
  };

  for (const ing of ours) {
    const key = ingressKey(ing);
    let parsed: ParsedIngress;
    try {
      parsed = parseIngress(ing);
    } catch (err) {
      // Anything else thrown here is a value of the wrong type (the directory source has no API
      // server to enforce the schema): still this Ingress's problem alone.
      report(key, 'rejected', err instanceof InvalidValue ? err.message : `malformed Ingress: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    for (const note of parsed.notes) report(key, 'partial', note);

    const ownDefault = parsed.defaultBackend ? { ingress: key, resolved: resolve(key, parsed.defaultBackend) } : null;
    if (ownDefault) {
      if (!globalDefault) globalDefault = ownDefault;
      else if (parsed.rules.length === 0) {
        report(key, 'partial', `defaultBackend is not used: the older Ingress ${globalDefault.ingress} already provides the default backend`);
      }
    }

    for (const rule of parsed.rules) {
      const hostKey = rule.host?.host ?? '';
      let routes = rule.host ? hosts.get(hostKey) : catchAll;
      if (!routes) {
        routes = { host: rule.host, claims: new Map(), ingresses: new Set(), fallback: null };
        hosts.set(hostKey, routes);
      }
      if (ownDefault && !routes.fallback && rule.host) routes.fallback = ownDefault;
      for (const p of rule.paths) {
        const claimKey = `${p.match} ${p.path}`;
        const owner = routes.claims.get(claimKey);
        if (owner) {
          if (owner.ingress !== key) {
            report(key, 'partial', `path ${p.rawPath} (${p.pathType}) on ${hostKey ? `host ${hostKey}` : 'rules without a host'} is already served by the older Ingress ${owner.ingress}`);
          }
          continue;
        }
        routes.claims.set(claimKey, { ingress: key, path: p, resolved: resolve(key, p.backend) });
        routes.ingresses.add(key);
      }
    }
  }

  const servers = [...hosts.values()].filter((h) => h.claims.size > 0).map((h) => buildServer(h, globalDefault));
  servers.sort((a, b) => (a.file < b.file ? -1 : 1));
  const defaultServer = buildServer(catchAll, globalDefault);

  const served = new Set<string>([...servers, defaultServer].flatMap((s) => s.locations.map((l) => l.ingress)));
  served.delete('');
  const exactNames = servers.filter((s) => !s.serverName.startsWith('~')).map((s) => s.serverName);
  const used = new Set([...servers, defaultServer].flatMap((s) => s.locations.flatMap((l) => (l.action.kind === 'proxy' ? [l.action.upstream] : []))));

  return {
    httpPort: opts.httpPort,
    ipv6: opts.ipv6,
    accessLog: opts.accessLog ?? null,
    defaultServer,
    servers,
    upstreams: [...backends.upstreams.values()].filter((u) => used.has(u.name)).sort((a, b) => (a.name < b.name ? -1 : 1)),
    serverNamesHash: serverNamesHashSizes(exactNames),
    served: [...served].sort(),
    rejections: rejections.sort((a, b) => (a.ingress < b.ingress ? -1 : a.ingress > b.ingress ? 1 : 0)),
  };
}

function buildServer(h: HostRoutes, globalDefault: HostRoutes['fallback']): Server {
  const locations: Location[] = [];
  const exactTaken = new Set([...h.claims.values()].filter((c) => c.path.match === 'exact').map((c) => c.path.path));
  const push = (match: Location['match'], path: string, c: Claim) =>
    locations.push({
      match,
      path,
      route: { pathType: c.path.pathType, path: c.path.rawPath },
      ingress: c.ingress,
      service: c.resolved.service,
      action: c.resolved.action,
    });
  for (const c of h.claims.values()) {
    const p = c.path.path;
    if (c.path.match === 'exact' || p === '/') {
      push(c.path.match, p, c);
      continue;
    }
    // Prefix /foo matches /foo and /foo/..., never /foobar: an exact location for the path
    // itself (unless an Exact rule owns it: Exact wins) and a prefix location for its subtree.
    if (!exactTaken.has(p)) push('exact', p, c);
    push('prefix', `${p}/`, c);
  }
  if (!locations.some((l) => l.match === 'prefix' && l.path === '/')) {
    // Without a "location /", nginx would serve files from its html root for unmatched paths.
    const fb = h.fallback ?? globalDefault;
    locations.push({
      match: 'prefix',
      path: '/',
      route: { pathType: 'Default', path: '/' },
      ingress: fb?.ingress ?? '',
      service: fb?.resolved.service ?? '',
      action: fb ? fb.resolved.action : { kind: 'notFound' },
    });
  }
  // nginx answers /foo with a 301 to /foo/ when a proxied location is named "/foo/" and none is
  // named "/foo". Ingress says an Exact /foo/ does not match /foo at all: pin /foo to whatever
  // it would match without that redirect (the longest prefix location covering it).
  for (const l of [...locations]) {
    if (l.match !== 'exact' || !l.path.endsWith('/') || l.path === '/') continue;
    const bare = l.path.slice(0, -1);
    if (locations.some((o) => o.match === 'exact' && o.path === bare)) continue;
    const covering = locations
      .filter((o) => o.match === 'prefix' && bare.startsWith(o.path))
      .reduce((a, b) => (b.path.length > a.path.length ? b : a));
    locations.push({ ...covering, match: 'exact', path: bare });
  }
  locations.sort(byPrecedence);
  const host = h.host?.host ?? null;
  return {
    host,
    serverName: h.host ? serverNameFor(h.host) : '_',
    file: host === null ? MAIN_FILE : serverFile(host),
    locations,
    ingresses: [...h.ingresses].sort(),
  };
}

/**
 * A host's file name: readable, and within the 255 bytes a file name may have (a valid host has
 * up to 253 characters): long names keep their start and gain a digest of the whole.
 */
function serverFile(host: string): string {
  const name = host.replace('*', '_wildcard_');
  const short = name.length <= 200 ? name : `${name.slice(0, 180)}-${createHash('sha256').update(host).digest('hex').slice(0, 16)}`;
  return `${FILE_PREFIX}-server-${short}.conf`;
}

/** Longest path first, exact before prefix: the order in which Ingress says rules win. */
function byPrecedence(a: Location, b: Location): number {
  if (a.path.length !== b.path.length) return b.path.length - a.path.length;
  if (a.match !== b.match) return a.match === 'exact' ? -1 : 1;
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * nginx refuses to start when a server name does not fit a hash bucket, and builds a slow hash
 * when the table is too small; size both from the names actually served.
 */
export function serverNamesHashSizes(names: string[]): RoutingModel['serverNamesHash'] {
  const longest = names.reduce((m, n) => Math.max(m, n.length), 0);
  // One element is a pointer plus the name and 2 bytes, pointer-aligned; a bucket also ends in a pointer.
  const need = Math.ceil((longest + 2) / 8) * 8 + 16;
  return { bucketSize: Math.max(64, nextPow2(need)), maxSize: Math.max(1024, nextPow2(names.length) * 8) };
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
