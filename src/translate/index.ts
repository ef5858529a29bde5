// Cluster state -> routing model. Pure: no I/O, no clock, no logging, sorted output, so the same
// snapshot always yields the same model (and so the same bytes on disk).
//
// Semantics follow networking.k8s.io/v1 Ingress as the Kubernetes docs state them:
// - hosts are exact or single-label wildcards; an exact host wins over a wildcard;
// - Exact paths match the whole path; Prefix (and ImplementationSpecific) match path elements,
//   a trailing slash ignored; the longest path wins, then Exact over Prefix;
// - rules without a host and the defaultBackend take whatever no host rule matched;
// - spec.tls hosts are served over TLS with their Secret's certificate (see planTls);
// - nginx.ingress.kubernetes.io annotations (src/annotations/index.ts) set each location of the Ingress
//   that carries them; with use-regex, ImplementationSpecific paths are regexes (see buildServer).

import { createHash } from 'node:crypto';
import path from 'node:path';
import type {
  V1EndpointSlice,
  V1Endpoints,
  V1Ingress,
  V1IngressBackend,
  V1IngressClass,
  V1Secret,
  V1Service,
  V1ServicePort,
} from '@kubernetes/client-node';
import {
  ANNOTATION_PREFIX,
  CANARY,
  CANARY_ANNOTATIONS,
  FORCE_SSL_REDIRECT_ANNOTATION,
  NO_ANNOTATIONS,
  REWRITE_TARGET,
  SSL_REDIRECT_ANNOTATION,
  SUPPORTED_ANNOTATIONS,
  USE_REGEX,
  parseAnnotations,
  parseRegexPath,
  regexLiteral,
  type CanaryConfig,
  type IngressAnnotations,
} from '../annotations/index.ts';
import { INTERNAL_PATH_PREFIX, LocationSettingsBuilder, affinityKeyVariable, affinityKeysFor, digest, type LocationContext, type SettingsResult } from '../annotations/settings.ts';
import { DEFAULT_LOCATION_SETTINGS } from '../model.ts';
import type { Action, CanarySelector, CertificateFile, Https, Location, Rejection, RoutingModel, Server, ServerTls, Upstream } from '../model.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import { runSteps, runStepsSync } from '../steps.ts';
import { TLS_SECRET_TYPE, certificateFromPem, certificateFromSecret, hostProblem, validityProblem, withPem, type Certificate } from './certificates.ts';
import {
  InvalidValue,
  checkObjectName,
  isPortName,
  isPortNumber,
  parseBoolAnnotation,
  parseHost,
  parsePath,
  serverNameFor,
  upstreamAddress,
  type ParsedHost,
} from '../grammar.ts';
import { nginxValue } from '../nginx/quote.ts';
import { parseNginxVersion, versionAtLeast } from '../nginx/version.ts';
import { describe } from '../errors.ts';

export interface TranslateOptions {
  ingressClass: string;
  httpPort: number;
  ipv6: boolean;
  /** JSON access log for our servers; absent or null leaves access logging to nginx.conf. */
  accessLog?: string | null;
  /** TLS termination; absent: no HTTPS listener, and spec.tls is reported as not enabled. */
  tls?: TlsOptions;
  /**
   * The time certificates must be valid at. Required with `tls` (translate reads no clock; the
   * sidecar passes the time of each pass).
   */
  now?: Date;
  /** The nginx version the config is for (`nginx -v`): it decides the HTTP/2 syntax. Absent: the pre-1.25.1 syntax, which later versions accept with a warning. */
  nginxVersion?: string;
  /**
   * Where private files (htpasswd files of auth-type basic) go when TLS is off; absolute. With
   * TLS they go to tls.certDir, the one directory the sidecar's CertStore writes. Neither: such
   * Ingresses cannot be served (they answer 503).
   */
  privateDir?: string;
  /**
   * --allow-snippet-annotations: configuration-snippet and server-snippet are parsed (src/annotations/snippets.ts)
   * and rendered. Absent or false: they are refused and reported, as everything else unknown.
   */
  allowSnippets?: boolean;
  /**
   * --allow-cross-namespace-canary: a canary Ingress may split the traffic of a main Ingress in
   * another namespace. Absent or false: only in its own namespace (a tenant who may write an
   * Ingress must not take another namespace's requests).
   */
  allowCrossNamespaceCanary?: boolean;
  /**
   * --allow-cross-namespace-hosts: Ingresses of every namespace share a host, as in ingress-nginx
   * (paths still go to the oldest Ingress that claims them). Absent or false: a host is served by
   * one namespace, its oldest Ingress's.
   */
  allowCrossNamespaceHosts?: boolean;
  /** --watch-ingress-without-class: also serve Ingresses that name no class (see isOurs). */
  watchIngressWithoutClass?: boolean;
  /**
   * Ingresses (namespace/name) nginx refused (src/sync/settle.ts): they keep their paths, which answer
   * 503, and nothing of their annotations is rendered. The caller reports why.
   */
  closed?: ReadonlySet<string>;
}

export interface TlsOptions {
  /** The port nginx listens on for HTTPS. */
  httpsPort: number;
  /** The port in HTTP -> HTTPS redirects, as clients see it (443 in front of a pod's 8443). Default 443. */
  httpsRedirectPort?: number;
  /** Absolute directory where the certificate files live (`<confDir>/ingress-sidecar-certs`). */
  certDir: string;
  /** Self-signed certificate and key (PEM), generated once by the caller: the last-resort default. */
  defaultCertificate: { pem: string };
  /** `namespace/name` of a kubernetes.io/tls Secret to use as the default certificate instead. */
  defaultSslCertificate?: string;
  /**
   * Certificate files (by name) that nginx refused to load, with its message: Secrets whose
   * certificate is one of them count as unusable. The sidecar fills it from `nginx -t`.
   */
  refusedCertificates?: ReadonlyMap<string, string>;
}

export const CLASS_ANNOTATION = 'kubernetes.io/ingress.class';
export const DEFAULT_CLASS_ANNOTATION = 'ingressclass.kubernetes.io/is-default-class';
export { ANNOTATION_PREFIX, FORCE_SSL_REDIRECT_ANNOTATION, SSL_REDIRECT_ANNOTATION };
/** Never redirected to HTTPS, as in ingress-nginx (`no-tls-redirect-locations`): ACME HTTP-01 challenges. */
const NO_TLS_REDIRECT_PREFIX = '/.well-known/acme-challenge';
/** The first nginx with the `http2` directive (and the deprecation of `listen ... http2`). */
const HTTP2_DIRECTIVE_SINCE: [number, number, number] = [1, 25, 1];

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
  /**
   * Exact: the literal. Prefix: without its trailing slash ("/" stays "/"). Regex: an
   * ImplementationSpecific path of an Ingress with use-regex, the validated pattern.
   */
  match: 'exact' | 'prefix' | 'regex';
  path: string;
  /**
   * A Prefix path written with a trailing slash ("/foo/"): beside a Prefix "/foo" of the same host
   * it owns the subtree and "/foo" keeps only the path itself, as ingress-nginx serves them.
   */
  slash: boolean;
  backend: BackendRef;
}

/** Two paths claim the same route when this is equal. */
const claimKeyOf = (p: Pick<ParsedPath, 'match' | 'path' | 'slash'>) => `${p.match} ${p.path}${p.slash ? '/' : ''}`;

/** Characters that make a path a regular expression in ingress-nginx (with use-regex, every path is one there). */
const REGEX_SYNTAX = /[*+?()[\]{}|^$\\]/;

/** How many capture groups a (validated, JavaScript-compatible) pattern has. */
function captureGroups(pattern: string): number {
  return new RegExp(`${pattern}|`).exec('')!.length - 1;
}

interface ParsedTls {
  /** Position in spec.tls, for reasons. */
  index: number;
  /** Valid hosts it names; null when it names none (it then covers the hosts its certificate covers). */
  hosts: string[] | null;
  /**
   * The Secret (`namespace/name`), or why secretName is unusable; null when secretName is empty,
   * which asks for the default certificate.
   */
  secret: { key: string } | { problem: string } | null;
}

interface ParsedIngress {
  key: string;
  rules: Array<{ host: ParsedHost | null; paths: ParsedPath[] }>;
  defaultBackend: BackendRef | null;
  tls: ParsedTls[];
  annotations: IngressAnnotations;
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

/**
 * Whether an Ingress belongs to the class this sidecar serves. `withoutClass`
 * (--watch-ingress-without-class) takes every Ingress that names no class, whatever the
 * IngressClasses say, as ingress-nginx's flag of that name does.
 */
export function isOurs(ing: V1Ingress, className: string, classes: V1IngressClass[], withoutClass = false): boolean {
  const explicit = ing.spec?.ingressClassName ?? ing.metadata?.annotations?.[CLASS_ANNOTATION];
  if (explicit !== undefined && explicit !== '') return explicit === className;
  if (withoutClass) return true;
  const cls = classes.find((c) => c.metadata?.name === className);
  return cls?.metadata?.annotations?.[DEFAULT_CLASS_ANNOTATION] === 'true';
}

export function ingressKey(ing: V1Ingress): string {
  return `${ing.metadata?.namespace ?? 'default'}/${ing.metadata?.name ?? ''}`;
}

const namespaceOf = (ingress: string) => ingress.slice(0, ingress.indexOf('/'));
const sameBackend = (a: BackendRef, b: BackendRef) => describeBackend(a) === describeBackend(b);
const describeBackend = (b: BackendRef) => `Service ${b.namespace}/${b.service}:${'number' in b.port ? b.port.number : b.port.name}`;

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
  const ms = t instanceof Date ? t.getTime() : typeof t === 'string' ? Date.parse(t) : NaN;
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

function parseIngress(ing: V1Ingress, tlsEnabled: boolean, allowSnippets: boolean): ParsedIngress {
  const namespace = checkObjectName('namespace', ing.metadata?.namespace ?? 'default', 'label');
  checkObjectName('Ingress', ing.metadata?.name, 'subdomain');
  const key = ingressKey(ing);
  const spec = ing.spec ?? {};
  const given = ing.metadata?.annotations as unknown;
  const raw = (typeof given === 'object' && given !== null ? given : {}) as Record<string, unknown>;
  let parsedAnnotations: ReturnType<typeof parseAnnotations>;
  try {
    parsedAnnotations = parseAnnotations(raw, { namespace, tlsEnabled, allowSnippets });
  } catch (err) {
    // A value that does not parse fails closed, as ingress-nginx's "location denied": the Ingress
    // keeps its paths and they answer 503, so that a request cannot fall through to another route
    // without what it asked for (an allowlist, authentication, a redirect to HTTPS). A canary serves
    // nothing of its own: it is rejected whole.
    if (!(err instanceof InvalidValue) || isCanary(raw)) throw err;
    // Its regex paths stay regexes, so that they claim what they would have served.
    const useRegex = Object.hasOwn(raw, REWRITE_TARGET) || (Object.hasOwn(raw, USE_REGEX) && booleanOr(USE_REGEX, raw[USE_REGEX], false));
    parsedAnnotations = { annotations: { ...NO_ANNOTATIONS, useRegex, denied: [err.message] }, notes: [] };
  }
  const annotations = parsedAnnotations.annotations;
  const notes: string[] = [...parsedAnnotations.notes];
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
      const target = annotations.rewriteTarget;
      const captures = target ? Math.max(0, ...target.map((t) => ('capture' in t ? t.capture : 0))) : 0;
      if (annotations.useRegex && pathType === 'ImplementationSpecific') {
        const pattern = parseRegexPath(rawPath);
        const groups = captureGroups(pattern);
        if (captures > groups) {
          throw new InvalidValue(`${where}: rewrite-target uses $${captures}, but path ${JSON.stringify(rawPath.slice(0, 100))} has ${groups === 0 ? 'no capture group' : `only ${groups} capture group${groups === 1 ? '' : 's'}`}; add the group to the path (for example "/app(/|$)(.*)" with rewrite-target "/$2")`);
        }
        return { pathType, rawPath, match: 'regex' as const, path: pattern, slash: false, backend: parseBackend(namespace, p.backend, where) };
      }
      // With use-regex or rewrite-target, ingress-nginx (>= 1.12, strict path validation) refuses
      // regex syntax in Exact and Prefix paths: here they would be matched literally and answer 404.
      if (annotations.useRegex && REGEX_SYNTAX.test(rawPath)) {
        throw new InvalidValue(`${where}: path ${JSON.stringify(rawPath.slice(0, 100))} looks like a regular expression, but pathType ${pathType} matches it literally; use pathType: ImplementationSpecific for a regular-expression path (this Ingress has ${annotations.rewriteTarget ? 'rewrite-target' : 'use-regex'})`);
      }
      if (captures > 0) {
        throw new InvalidValue(`${where}: rewrite-target uses $${captures}, but pathType ${pathType} path ${JSON.stringify(rawPath.slice(0, 100))} has no capture groups; use pathType: ImplementationSpecific and a path with the group (for example "/app(/|$)(.*)" with rewrite-target "/$2")`);
      }
      const decoded = parsePath(rawPath);
      if (decoded.startsWith(INTERNAL_PATH_PREFIX)) throw new InvalidValue(`${where}: paths under ${INTERNAL_PATH_PREFIX} are reserved for this sidecar's internal locations`);
      const match = pathType === 'Exact' ? ('exact' as const) : ('prefix' as const);
      const path = match === 'prefix' && decoded.length > 1 ? decoded.replace(/\/+$/, '') : decoded;
      return { pathType, rawPath, match, path, slash: match === 'prefix' && path !== decoded && path !== '/', backend: parseBackend(namespace, p.backend, where) };
    });
    if (paths.length === 0) notes.push(`rules[${i}] has no http paths and serves nothing`);
    rules.push({ host, paths });
  });
  const defaultBackend = spec.defaultBackend ? parseBackend(namespace, spec.defaultBackend, 'defaultBackend') : null;
  if (rules.length === 0 && !defaultBackend) throw new InvalidValue('spec has neither rules nor a defaultBackend');
  const tls: ParsedTls[] = [];
  const tlsList = list(spec.tls);
  if (tlsList.length > 0 && !tlsEnabled) notes.push('spec.tls is ignored: TLS is not enabled in this sidecar, so its hosts are served over plain HTTP only');
  if (tlsEnabled) {
    tlsList.forEach((entry, i) => {
      const hosts: string[] = [];
      const named: unknown[] = Array.isArray(entry.hosts) ? entry.hosts : [];
      named.forEach((h, j) => {
        try {
          hosts.push(parseHost(text(h, `spec.tls[${i}].hosts[${j}]`)).host);
        } catch (err) {
          if (!(err instanceof InvalidValue)) throw err;
          notes.push(`spec.tls[${i}].hosts[${j}] is ignored: ${err.message}`);
        }
      });
      let secret: ParsedTls['secret'] = null;
      const secretName: unknown = entry.secretName;
      if (secretName !== undefined && secretName !== null && secretName !== '') {
        try {
          secret = { key: `${namespace}/${checkObjectName('Secret', text(secretName, `spec.tls[${i}].secretName`), 'subdomain')}` };
        } catch (err) {
          if (!(err instanceof InvalidValue)) throw err;
          secret = { problem: `spec.tls[${i}].secretName: ${err.message}` };
        }
      }
      if (named.length > 0 && hosts.length === 0) return;
      tls.push({ index: i, hosts: named.length === 0 ? null : hosts, secret });
    });
  }
  return { key, rules, defaultBackend, tls, annotations, notes };
}

/** Whether annotations ask for a canary (a value that does not parse counts as yes: a canary must never claim paths). */
function isCanary(raw: Record<string, unknown>): boolean {
  return Object.hasOwn(raw, CANARY) && booleanOr(CANARY, raw[CANARY], true);
}

function booleanOr(name: string, value: unknown, fallback: boolean): boolean {
  try {
    return parseBoolAnnotation(name, value);
  } catch {
    return fallback;
  }
}

/**
 * Parsed Ingresses by object: parsing depends on nothing but the object and two options, and
 * snapshots are immutable (the sources replace an object when it changes, never edit it), so an
 * unchanged Ingress is parsed once, not on every pass. A failure is remembered as its reason.
 */
const parsedCache = new WeakMap<V1Ingress, { options: string; result: ParsedIngress | { error: unknown } }>();

function parseIngressCached(ing: V1Ingress, tlsEnabled: boolean, allowSnippets: boolean): ParsedIngress {
  const options = `${tlsEnabled} ${allowSnippets}`;
  let hit = parsedCache.get(ing);
  if (hit?.options !== options) {
    let result: ParsedIngress | { error: unknown };
    try {
      result = parseIngress(ing, tlsEnabled, allowSnippets);
    } catch (error) {
      result = { error };
    }
    hit = { options, result };
    parsedCache.set(ing, hit);
  }
  if ('error' in hit.result) throw hit.result.error;
  return hit.result;
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
      const svc: unknown = es.metadata?.labels?.['kubernetes.io/service-name'];
      // A label is a string to the API, not to a manifest ({toString: 1} cannot even be printed).
      if (typeof svc !== 'string' || !svc) continue;
      const k = `${es.metadata?.namespace ?? 'default'}/${svc}`;
      const list = this.slices.get(k) ?? [];
      list.push(es);
      this.slices.set(k, list);
    }
    for (const ep of snap.endpoints) this.endpoints.set(`${ep.metadata?.namespace ?? 'default'}/${ep.metadata?.name}`, ep);
  }

  /** default-backend: the Service's first port, as ingress-nginx takes it; null when there is no such Service or port. */
  firstPort(namespace: string, service: string): BackendRef | null {
    const port = list(this.services.get(`${namespace}/${service}`)?.spec?.ports)[0];
    return port && isPortNumber(port.port) ? { namespace, service, port: { number: port.port } } : null;
  }

  /** The action for a backend, plus a reason to report when the Ingress refers to something missing. */
  resolve(b: BackendRef, variant: UpstreamVariant): { action: Action; service: string; problem?: string } {
    const protocol = variant.protocol;
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
    // service-upstream: the Service's cluster IP, so kube-proxy picks the endpoint. A headless
    // Service has none: its endpoints are used, and that is said.
    const ip: unknown = svc.spec?.clusterIP;
    const clusterIp = variant.serviceUpstream && typeof ip === 'string' ? upstreamAddress(ip, port.port) : null;
    const serviceUpstreamProblem = variant.serviceUpstream && clusterIp === null ? `service-upstream: Service ${b.namespace}/${b.service} has no cluster IP; its endpoints are used` : undefined;
    const balance = variant.balance;
    const name = [
      `${b.namespace}_${b.service}_${port.port}`,
      protocol === 'HTTP' ? '' : `_${protocol.toLowerCase()}`,
      clusterIp ? '_svc' : '',
      balance.kind === 'least_conn' ? '_ewma' : balance.kind === 'hash' ? `_hash_${digest(balance.key, 8)}` : '',
    ].join('');
    let upstream = this.upstreams.get(name);
    if (!upstream) {
      const servers = (clusterIp ? [clusterIp] : this.addresses(b.namespace, b.service, port)).map((address) => ({ address }));
      upstream = { name, service: `${b.namespace}/${b.service}:${port.port}`, servers, balance };
      this.upstreams.set(name, upstream);
    }
    if (upstream.servers.length === 0) return unavailable(`Service ${b.namespace}/${b.service} has no ready endpoints`, false);
    return { action: { kind: 'proxy', upstream: name }, service, ...(serviceUpstreamProblem ? { problem: serviceUpstreamProblem } : {}) };
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

/** How an Ingress's upstreams are built: one upstream per Service port and variant. */
interface UpstreamVariant {
  protocol: IngressAnnotations['backendProtocol'];
  serviceUpstream: boolean;
  balance: Upstream['balance'];
}

/** ingress-nginx's order: affinity, then upstream-hash-by, then load-balance. */
function variantOf(a: IngressAnnotations): UpstreamVariant {
  const balance: Upstream['balance'] = a.affinity
    ? { kind: 'hash', key: `$${affinityKeyVariable(a.affinity.cookie)}` }
    : a.hashBy !== null
      ? { kind: 'hash', key: a.hashBy }
      : a.loadBalance === 'ewma'
        ? { kind: 'least_conn' }
        : { kind: 'round_robin' };
  return { protocol: a.backendProtocol, serviceUpstream: a.serviceUpstream, balance };
}

interface Claim {
  ingress: string;
  path: ParsedPath;
  resolved: { action: Action; service: string };
  /** The canary Ingress that splits this path's traffic, once one is attached. */
  canary?: string;
  /** That canary's Service (namespace/name:port), for the rendered comment. */
  canaryService?: string;
}

/** canary-weight out of canary-weight-total as a split_clients percentage: two decimals, never rounded to all or nothing. */
function canaryPercent(c: CanaryConfig): number {
  if (c.weight <= 0) return 0;
  if (c.weight >= c.total) return 100;
  return Math.min(99.99, Math.max(0.01, Math.round((c.weight / c.total) * 10000) / 100));
}

/** Routes of one host (or of the catch-all, host null), claimed first-come in age order. */
interface HostRoutes {
  host: ParsedHost | null;
  claims: Map<string, Claim>;
  ingresses: Set<string>;
  /** The defaultBackend of the oldest Ingress with rules for this host. */
  fallback: { ingress: string; resolved: { action: Action; service: string } } | null;
  /**
   * The oldest Ingress with a rule for this host: its namespace owns the host, and Ingresses of
   * other namespaces get nothing on it (null: the catch-all, which every namespace shares).
   */
  owner: string | null;
}

export function translate(snap: Snapshot, opts: TranslateOptions): RoutingModel {
  return runStepsSync(translateSteps(snap, opts));
}

/** translate() that gives the event loop a turn every `budgetMs` (between Ingresses and hosts); the same model. */
export function translateAsync(snap: Snapshot, opts: TranslateOptions, budgetMs?: number): Promise<RoutingModel> {
  return runSteps(translateSteps(snap, opts), budgetMs);
}

function* translateSteps(snap: Snapshot, opts: TranslateOptions): Generator<void, RoutingModel, void> {
  if (opts.tls && !(opts.now instanceof Date && Number.isFinite(opts.now.getTime()))) {
    throw new Error('translate: options.now (a valid Date) is required with options.tls');
  }
  const rejections: Rejection[] = [];
  const reported = new Set<string>();
  const report = (ingress: string, severity: Rejection['severity'], reason: string) => {
    const k = `${ingress}\n${severity}\n${reason}`;
    if (reported.has(k)) return;
    reported.add(k);
    rejections.push({ ingress, severity, reason });
  };

  const ours = snap.ingresses.filter((i) => isOurs(i, opts.ingressClass, snap.ingressClasses, opts.watchIngressWithoutClass)).sort(byAge);
  yield;
  const backends = new Backends(snap);
  const hosts = new Map<string, HostRoutes>();
  const catchAll: HostRoutes = { host: null, claims: new Map(), ingresses: new Set(), fallback: null, owner: null };
  let globalDefault: HostRoutes['fallback'] = null;
  /** Every Ingress that parsed, oldest first. */
  const parsedIngresses: ParsedIngress[] = [];
  /** Ingresses that keep their paths but answer 503 there (annotations.denied). */
  const denied = new Set<string>();
  /** Whether two Ingresses may share a host (and its default backend): same namespace, or --allow-cross-namespace-hosts. */
  const sameTenant = (a: string, b: string) => opts.allowCrossNamespaceHosts === true || namespaceOf(a) === namespaceOf(b);

  /** A backend of an Ingress; with a default-backend annotation, that Service answers when the backend cannot. */
  const resolve = (key: string, b: BackendRef, a: IngressAnnotations) => {
    const r = backends.resolve(b, variantOf(a));
    if (r.problem) report(key, 'partial', r.problem);
    if (r.action.kind !== 'unavailable' || a.defaultBackend === null) return r;
    const fallback = defaultBackendOf(key, a);
    return fallback ? { action: fallback.action, service: fallback.service } : r;
  };
  const defaultBackendOf = (key: string, a: IngressAnnotations) => {
    if (a.defaultBackend === null) return null;
    const namespace = key.split('/')[0]!;
    const ref = backends.firstPort(namespace, a.defaultBackend);
    const r = ref ? backends.resolve(ref, variantOf(a)) : null;
    if (r?.action.kind === 'proxy') return r;
    report(key, 'partial', `default-backend: ${r?.action.kind === 'unavailable' ? r.action.reason : `Service ${namespace}/${a.defaultBackend} not found or has no ports`}`);
    return null;
  };
  /** Canary Ingresses, oldest first: they split the traffic of paths other Ingresses serve. */
  const canaryIngresses: ParsedIngress[] = [];

  for (const ing of ours) {
    yield;
    const key = ingressKey(ing);
    let parsed: ParsedIngress;
    try {
      parsed = parseIngressCached(ing, opts.tls !== undefined, opts.allowSnippets === true);
    } catch (err) {
      // Anything else thrown here is a value of the wrong type (the directory source has no API
      // server to enforce the schema): still this Ingress's problem alone.
      report(key, 'rejected', err instanceof InvalidValue ? err.message : `malformed Ingress: ${describe(err)}`);
      // Its hosts stay its namespace's: a mistake must not hand a host to another namespace.
      if (!isCanary(ing.metadata?.annotations ?? {})) {
        for (const r of list(ing.spec?.rules)) {
          let h: ParsedHost | null = null;
          try {
            h = typeof r.host === 'string' && r.host !== '' ? parseHost(r.host) : null;
          } catch {
            h = null;
          }
          if (h && !hosts.has(h.host)) hosts.set(h.host, { host: h, claims: new Map(), ingresses: new Set(), fallback: null, owner: key });
        }
      }
      continue;
    }
    if (opts.closed?.has(key)) {
      // nginx refused what it rendered (src/sync/settle.ts reports why): a canary takes no share, any
      // other keeps its paths at 503, with nothing of its annotations rendered.
      if (parsed.annotations.canary) continue;
      parsed = { ...parsed, annotations: { ...NO_ANNOTATIONS, useRegex: parsed.annotations.useRegex, denied: ['nginx refused its configuration'] }, notes: [] };
      denied.add(key);
    } else {
      for (const note of parsed.notes) report(key, 'partial', note);
      for (const why of parsed.annotations.denied) {
        report(key, 'rejected', `not served: ${why}; its paths answer 503 until this is fixed`);
        denied.add(key);
      }
    }
    parsedIngresses.push(parsed);
    if (parsed.annotations.canary) {
      // A canary that cannot be served as asked takes no share of anyone's requests.
      if (parsed.annotations.denied.length > 0) continue;
      canaryIngresses.push(parsed);
      const given = ing.metadata?.annotations ?? {};
      for (const name of Object.keys(given).sort()) {
        if (SUPPORTED_ANNOTATIONS.has(name) && !CANARY_ANNOTATIONS.has(name)) {
          report(key, 'partial', `annotation ${name} has no effect on a canary Ingress: the settings of the Ingress it splits traffic with apply`);
        }
      }
      if (parsed.defaultBackend) report(key, 'partial', 'defaultBackend of a canary Ingress is not used');
      continue;
    }

    const ownDefault = parsed.defaultBackend ? { ingress: key, resolved: resolve(key, parsed.defaultBackend, parsed.annotations) } : null;
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
        routes = { host: rule.host, claims: new Map(), ingresses: new Set(), fallback: null, owner: key };
        hosts.set(hostKey, routes);
      }
      // One namespace per host, the oldest Ingress's: otherwise a tenant could add paths, a
      // defaultBackend, TLS (and with it redirects) or error pages to another tenant's host.
      if (routes.owner !== null && !sameTenant(routes.owner, key)) {
        report(key, 'partial', `rules for host ${hostKey} are not used: the host belongs to namespace ${namespaceOf(routes.owner)}, whose Ingress ${routes.owner} is the oldest with rules for it (a host is served by one namespace)`);
        continue;
      }
      if (ownDefault && rule.host) {
        if (!routes.fallback) routes.fallback = ownDefault;
        else if (routes.fallback.ingress !== key) {
          report(key, 'partial', `defaultBackend is not used for host ${hostKey}: the defaultBackend of the older Ingress ${routes.fallback.ingress} answers its unmatched paths`);
        }
      }
      for (const p of rule.paths) {
        const claimKey = claimKeyOf(p);
        const owner = routes.claims.get(claimKey);
        if (owner) {
          const where = hostKey ? `host ${hostKey}` : 'rules without a host';
          if (owner.ingress !== key) {
            report(key, 'partial', `path ${p.rawPath} (${p.pathType}) on ${where} is already served by the older Ingress ${owner.ingress}`);
          } else if (owner.path !== p && (owner.path.rawPath !== p.rawPath || !sameBackend(owner.path.backend, p.backend))) {
            report(key, 'partial', `path ${p.rawPath} (${p.pathType}) on ${where} is not used: this Ingress already lists ${owner.path.rawPath} (${owner.path.pathType}) there, which nginx serves as the same route, to ${describeBackend(owner.path.backend)}`);
          }
          continue;
        }
        routes.claims.set(claimKey, { ingress: key, path: p, resolved: resolve(key, p.backend, parsed.annotations) });
        routes.ingresses.add(key);
      }
    }
  }

  const byKey = new Map(parsedIngresses.map((p) => [p.key, p]));
  const canaries = new Map<string, CanarySelector>();
  /** Canary Ingresses that take a share of some path: they count as served (status, Events). */
  const attachedCanaries = new Set<string>();
  for (const c of canaryIngresses) attachCanary(c);
  function attachCanary(c: ParsedIngress): void {
    const config = c.annotations.canary!;
    for (const rule of c.rules) {
      const where = rule.host ? `host ${rule.host.host}` : 'rules without a host';
      const routes = rule.host ? hosts.get(rule.host.host) : catchAll;
      for (const p of rule.paths) {
        const what = `canary path ${p.rawPath} (${p.pathType}) on ${where}`;
        const claim = routes?.claims.get(claimKeyOf(p));
        if (!claim) {
          report(c.key, 'partial', `${what}: no other Ingress of the class serves it, and a canary only takes a share of a served path's requests`);
          continue;
        }
        if (!opts.allowCrossNamespaceCanary && namespaceOf(claim.ingress) !== namespaceOf(c.key)) {
          report(c.key, 'partial', `${what}: the Ingress it would split, ${claim.ingress}, is in another namespace; a canary splits only the traffic of its own namespace (--allow-cross-namespace-canary allows more)`);
          continue;
        }
        if (claim.canary !== undefined) {
          if (claim.canary !== c.key) report(c.key, 'partial', `${what}: the older canary Ingress ${claim.canary} already splits its requests`);
          continue;
        }
        const main = claim.resolved.action;
        if (main.kind !== 'proxy') {
          report(c.key, 'partial', `${what}: the backend of ${claim.ingress} cannot serve, so there is nothing to split`);
          continue;
        }
        // The canary's upstream is built like the main one (protocol, balancing): one location proxies to either.
        const r = backends.resolve(p.backend, variantOf(byKey.get(claim.ingress)!.annotations));
        if (r.problem) report(c.key, 'partial', r.problem);
        if (r.action.kind !== 'proxy') {
          report(c.key, 'partial', `${what}: its backend cannot serve (${'reason' in r.action ? r.action.reason : 'no backend'}); all requests go to ${claim.ingress}`);
          continue;
        }
        claim.canary = c.key;
        claim.canaryService = r.service;
        attachedCanaries.add(c.key);
        const weight = canaryPercent(config);
        if (config.header === null && config.cookie === null && (weight === 0 || weight === 100)) {
          // Nothing decides per request: all requests go to one of them.
          if (weight === 100) claim.resolved = { ...claim.resolved, action: { kind: 'proxy', upstream: r.action.upstream } };
          continue;
        }
        const selector: Omit<CanarySelector, 'variable'> = {
          main: main.upstream,
          canary: r.action.upstream,
          ingress: c.key,
          mainIngress: claim.ingress,
          header: config.header ? { source: `http_${config.header.name.toLowerCase().replaceAll('-', '_')}`, value: config.header.value } : null,
          cookie: config.cookie === null ? null : `cookie_${config.cookie}`,
          weight,
        };
        const variable = `isc_canary_${digest(JSON.stringify(selector), 12)}`;
        canaries.set(variable, { variable, ...selector });
        claim.resolved = { ...claim.resolved, action: { kind: 'proxy', upstream: main.upstream, via: variable } };
      }
    }
  }

  yield;
  const live = [...hosts.values()].filter((h) => h.claims.size > 0);
  const tls = opts.tls ? planTls(snap.secrets, parsedIngresses, live, opts.tls, opts.now!, opts.nginxVersion, report, sameTenant) : null;
  /** Whether a location answers plain HTTP with a redirect to HTTPS. */
  const redirect = (hostTls: boolean) => (ingress: string, locationPath: string) => {
    // A location that is not served answers 503 on either scheme: no redirect to a dead end.
    if (!tls || denied.has(ingress)) return false;
    if (locationPath === NO_TLS_REDIRECT_PREFIX || locationPath.startsWith(`${NO_TLS_REDIRECT_PREFIX}/`)) return false;
    const p = byKey.get(ingress);
    return p?.annotations.forceSslRedirect === true || (hostTls && (p?.annotations.sslRedirect ?? true));
  };
  const builder = new LocationSettingsBuilder({
    secrets: snap.secrets,
    privateDir: opts.tls?.certDir ?? opts.privateDir ?? null,
    report: (ingress, reason) => report(ingress, 'partial', reason),
    errorUpstream: (ingress) => {
      const p = byKey.get(ingress);
      const own = p ? defaultBackendOf(ingress, p.annotations) : null;
      // Another namespace's default backend never answers this Ingress's errors.
      const global = globalDefault && sameTenant(globalDefault.ingress, ingress) ? globalDefault.resolved.action : undefined;
      const target = own?.action.kind === 'proxy' ? { action: own.action, by: p! } : global?.kind === 'proxy' ? { action: global, by: byKey.get(globalDefault!.ingress) } : null;
      const protocol = target?.by?.annotations.backendProtocol ?? 'HTTP';
      // Error pages are HTTP responses: a gRPC default backend cannot give them.
      if (!target || (protocol !== 'HTTP' && protocol !== 'HTTPS')) return null;
      return { upstream: target.action.upstream, scheme: protocol === 'HTTPS' ? 'https' : 'http' };
    },
  });
  const settingsFor: SettingsFor = (ingress, ctx) => {
    const p = byKey.get(ingress);
    return p ? builder.for(ingress, p.annotations, ctx) : { settings: DEFAULT_LOCATION_SETTINGS, unavailable: null };
  };
  const servers: Server[] = [];
  for (const h of live) {
    yield;
    const own = tls?.hosts.get(h.host!.host) ?? null;
    // A host's unmatched paths go to the global default backend only within its namespace.
    const global = globalDefault && sameTenant(globalDefault.ingress, h.owner!) ? globalDefault : null;
    servers.push(buildServer(h, global, redirect(own !== null), own ?? tls?.inherited.get(h.host!.host) ?? null, settingsFor));
  }
  servers.sort((a, b) => (a.file < b.file ? -1 : 1));
  const defaultServer = buildServer(catchAll, globalDefault, redirect(false), tls?.defaultTls ?? null, settingsFor);
  for (const s of [defaultServer, ...servers]) {
    yield;
    Object.assign(s, builder.serverLocations(s), { snippets: serverSnippets(s) });
  }
  /**
   * server-snippet acts on the whole server: it applies only where every Ingress with rules for the
   * host is in the snippet's namespace, so that no namespace can change another's routes.
   */
  function serverSnippets(s: Server): Server['snippets'] {
    const out: Server['snippets'] = [];
    for (const ingress of s.ingresses) {
      const directives = byKey.get(ingress)?.annotations.serverSnippet;
      if (!directives || denied.has(ingress)) continue;
      const namespace = ingress.split('/')[0];
      const other = s.ingresses.find((i) => i.split('/')[0] !== namespace);
      if (other !== undefined || s.host === null) {
        report(ingress, 'partial', `server-snippet is not applied to ${s.host === null ? 'the default server' : `host ${s.host}`}: ${other !== undefined ? `Ingress ${other} of another namespace serves it too` : 'rules without a host share it with every namespace'}`);
        continue;
      }
      out.push({ ingress, directives });
    }
    return out;
  }
  yield;
  const extras = builder.collect([defaultServer, ...servers]);
  yield;
  const privateFiles = new Map<string, CertificateFile>([...(tls?.certificates ?? []), ...extras.files.map((f) => [f.file, f] as const)]);

  const served = new Set<string>([...servers, defaultServer].flatMap((s) => s.locations.map((l) => l.ingress)));
  served.delete('');
  for (const k of denied) served.delete(k);
  yield;
  const allLocations = [...servers, defaultServer].flatMap((s) => s.locations);
  const usedCanaries = [...new Set(allLocations.flatMap((l) => (l.action.kind === 'proxy' && l.action.via ? [l.action.via] : [])))].sort().map((v) => canaries.get(v)!);
  for (const c of attachedCanaries) served.add(c);
  const exactNames = servers.filter((s) => !s.serverName.startsWith('~')).map((s) => s.serverName);
  yield;
  const used = new Set([
    ...allLocations.flatMap((l) => (l.action.kind === 'proxy' ? [l.action.upstream] : [])),
    ...usedCanaries.map((c) => c.canary),
    ...[...servers, defaultServer].flatMap((s) => s.errorLocations.map((e) => e.upstream)),
  ]);

  const upstreams = [...backends.upstreams.values()].filter((u) => used.has(u.name)).sort((a, b) => (a.name < b.name ? -1 : 1));
  const affinityCookieNames = parsedIngresses.flatMap((p) => (p.annotations.affinity ? [p.annotations.affinity.cookie] : []));

  return {
    httpPort: opts.httpPort,
    ipv6: opts.ipv6,
    accessLog: opts.accessLog ?? null,
    defaultServer,
    servers,
    upstreams,
    serverNamesHash: serverNamesHashSizes(exactNames),
    served: [...served].sort(),
    rejections: rejections.sort((a, b) => (a.ingress < b.ingress ? -1 : a.ingress > b.ingress ? 1 : 0)),
    https: tls?.https ?? null,
    certificates: [...privateFiles.values()].sort((a, b) => (a.file < b.file ? -1 : 1)),
    limitReqZones: extras.limitReqZones,
    limitConnZones: extras.limitConnZones,
    corsMaps: extras.corsMaps,
    affinityKeys: affinityKeysFor(extras.affinityKeys, upstreams, affinityCookieNames),
    affinityCookies: extras.affinityCookies,
    canaries: usedCanaries,
    warnings: tls ? [...tls.warnings].sort() : [],
    tlsRecheckAt: tls?.recheckAt !== null && tls?.recheckAt !== undefined ? new Date(tls.recheckAt).toISOString() : null,
  };
}

interface TlsPlan {
  https: Https;
  /** The default server's: the --default-ssl-certificate Secret when usable, else the generated one. */
  defaultTls: ServerTls;
  /** Hosts that spec.tls names (and that have routes), with the certificate each is served with. */
  hosts: Map<string, ServerTls>;
  /**
   * Exact hosts without TLS of their own that a TLS wildcard host covers. nginx chooses among the
   * servers on the HTTPS port; without a listener there, an HTTPS request for such a host would
   * be routed by the wildcard's rules, against "an exact host wins". So they listen too, with the
   * wildcard's certificate (what a client gets for that name anyway), and redirect nothing.
   */
  inherited: Map<string, ServerTls>;
  certificates: Map<string, CertificateFile>;
  warnings: string[];
  /** Epoch ms of the next certificate validity change, or null. */
  recheckAt: number | null;
}

/** One Ingress's claim on TLS for a host, through one spec.tls entry. */
interface TlsClaim {
  ingress: string;
  secret: ParsedTls['secret'];
}

type Outcome = { ok: true; cert: Certificate | null } | { ok: false; reason: string };

/**
 * Which certificate each host is served with. A host gets TLS when an Ingress with rules for it
 * names it in spec.tls (an entry without hosts names every host of that Ingress its certificate
 * covers). Claims are weighed oldest Ingress first; the first usable one wins. An unusable Secret
 * (missing, malformed, not valid now, not valid for the host) leaves the host on TLS with the
 * default certificate, and is reported to the Ingress that named it.
 */
function planTls(
  secrets: V1Secret[],
  ingresses: ParsedIngress[],
  live: HostRoutes[],
  opts: TlsOptions,
  now: Date,
  nginxVersion: string | undefined,
  report: (ingress: string, severity: Rejection['severity'], reason: string) => void,
  sameTenant: (a: string, b: string) => boolean,
): TlsPlan {
  const warnings: string[] = [];
  const certificates = new Map<string, CertificateFile>();
  let recheckAt: number | null = null;
  const later = (at: Date, slackMs = 0) => {
    const ms = at.getTime() + slackMs;
    if (ms > now.getTime() && (recheckAt === null || ms < recheckAt)) recheckAt = ms;
  };
  const use = (cert: Certificate): string => {
    certificates.set(cert.file, certificateFile(cert));
    // The moment after it expires, the host falls back to the default certificate.
    later(cert.notAfter, 1000);
    return path.join(opts.certDir, cert.file);
  };
  const secretsByKey = new Map<string, V1Secret>();
  for (const s of secrets) secretsByKey.set(`${s.metadata?.namespace ?? 'default'}/${s.metadata?.name ?? ''}`, s);
  const fromSecret = (key: string): { ok: true; cert: Certificate } | { ok: false; reason: string } => {
    const secret = secretsByKey.get(key);
    if (!secret) return { ok: false, reason: `Secret ${key} not found (only Secrets of type ${TLS_SECRET_TYPE} are read)` };
    const r = certificateFromSecret(secret);
    if (!r.ok) return { ok: false, reason: `Secret ${key}: ${r.reason}` };
    const refused = opts.refusedCertificates?.get(r.certificate.file);
    return refused === undefined ? { ok: true, cert: r.certificate } : { ok: false, reason: `Secret ${key}: nginx refused its certificate: ${refused}` };
  };
  const usableNow = (cert: Certificate): string | null => {
    const problem = validityProblem(cert, now);
    if (problem && now < cert.notBefore) later(cert.notBefore);
    return problem;
  };

  // The default certificate.
  const generated = certificateFromPem(...splitPem(opts.defaultCertificate.pem));
  if (!generated.ok) throw new Error(`translate: options.tls.defaultCertificate is unusable: ${generated.reason}`);
  let defaultCert = generated.certificate;
  let defaultSecret: string | null = null;
  if (opts.defaultSslCertificate !== undefined) {
    const fallback = 'the generated self-signed certificate is used instead';
    const m = /^([^/]*)\/([^/]*)$/.exec(opts.defaultSslCertificate);
    let key: string | null = null;
    try {
      if (m) key = `${checkObjectName('namespace', m[1], 'label')}/${checkObjectName('Secret', m[2], 'subdomain')}`;
    } catch {
      key = null;
    }
    if (key === null) {
      warnings.push(`--default-ssl-certificate ${JSON.stringify(opts.defaultSslCertificate.slice(0, 300))} is not NAMESPACE/NAME of a Secret; ${fallback}`);
    } else {
      const r = fromSecret(key);
      const problem = r.ok ? usableNow(r.cert) : r.reason;
      if (r.ok && problem === null) {
        defaultCert = r.cert;
        defaultSecret = key;
      } else {
        warnings.push(`--default-ssl-certificate: ${r.ok ? `Secret ${key}: ${problem}` : problem}; ${fallback}`);
      }
    }
  }
  const defaultTls: ServerTls = { certPath: use(defaultCert), secret: defaultSecret, ingress: null };

  // Claims, per host, oldest Ingress first.
  const liveHosts = new Map(live.map((h) => [h.host!.host, h.host!]));
  const hostOwner = new Map(live.map((h) => [h.host!.host, h.owner!]));
  const claims = new Map<string, TlsClaim[]>();
  for (const p of ingresses) {
    const own = new Map<string, ParsedHost>();
    // Only the namespace that owns a host gives it TLS (translate reports the others' rules).
    for (const r of p.rules) {
      const owner = r.host ? hostOwner.get(r.host.host) : undefined;
      if (r.host && r.paths.length > 0 && owner !== undefined && sameTenant(owner, p.key)) own.set(r.host.host, r.host);
    }
    for (const t of p.tls) {
      let targets: string[];
      if (t.hosts) {
        // A host without a rule of this Ingress has nothing of it to serve: nothing to say.
        targets = t.hosts.filter((h) => own.has(h));
      } else {
        // The API: hosts "defaults to the wildcard host setting for the loadbalancer controller";
        // as in ingress-nginx, the entry covers every host of this Ingress its certificate covers.
        const where = `spec.tls[${t.index}] names no hosts`;
        if (t.secret === null) {
          report(p.key, 'partial', `${where} and no secretName: it has no effect`);
          continue;
        }
        if ('problem' in t.secret) {
          report(p.key, 'partial', `${t.secret.problem}; as ${where}, it has no effect`);
          continue;
        }
        const r = fromSecret(t.secret.key);
        if (!r.ok) {
          report(p.key, 'partial', `${where}, and ${r.reason}: no host gets TLS from it`);
          continue;
        }
        targets = [...own].filter(([, h]) => hostProblem(r.cert, h) === null).map(([h]) => h);
        if (targets.length === 0 && own.size > 0) {
          report(p.key, 'partial', `${where}, and the certificate of Secret ${t.secret.key} covers none of this Ingress's hosts: no host gets TLS from it`);
        }
      }
      for (const h of targets) {
        const list = claims.get(h) ?? [];
        list.push({ ingress: p.key, secret: t.secret });
        claims.set(h, list);
      }
    }
  }

  const describe = (s: TlsClaim['secret']) => (s === null ? 'the default certificate (no secretName)' : 'key' in s ? `Secret ${s.key}` : 'an invalid secretName');
  const same = (a: TlsClaim['secret'], b: TlsClaim['secret']) => describe(a) === describe(b);
  const hosts = new Map<string, ServerTls>();
  for (const host of [...claims.keys()].sort()) {
    const parsedHost = liveHosts.get(host)!;
    const evaluate = (c: TlsClaim): Outcome => {
      if (c.secret === null) return { ok: true, cert: null };
      if ('problem' in c.secret) return { ok: false, reason: c.secret.problem };
      const r = fromSecret(c.secret.key);
      if (!r.ok) return r;
      const problem = usableNow(r.cert) ?? hostProblem(r.cert, parsedHost);
      return problem ? { ok: false, reason: `Secret ${c.secret.key}: ${problem}` } : { ok: true, cert: r.cert };
    };
    let winner: { claim: TlsClaim; cert: Certificate | null } | null = null;
    const failed: Array<{ claim: TlsClaim; reason: string }> = [];
    for (const claim of claims.get(host)!) {
      if (winner) {
        if (!same(claim.secret, winner.claim.secret)) {
          report(claim.ingress, 'partial', `TLS for ${host}: ${describe(claim.secret)} is not used; ${host} is served with ${describe(winner.claim.secret)} from ${claim.ingress === winner.claim.ingress ? 'an earlier spec.tls entry' : `the older Ingress ${winner.claim.ingress}`}`);
        }
        continue;
      }
      const o = evaluate(claim);
      if (o.ok) winner = { claim, cert: o.cert };
      else failed.push({ claim, reason: o.reason });
    }
    const servedWith = winner?.cert ? describe(winner.claim.secret) : 'the default certificate';
    for (const f of failed) report(f.claim.ingress, 'partial', `TLS for ${host}: ${f.reason}; ${host} is served over HTTPS with ${servedWith}`);
    const owner = winner?.claim.ingress ?? failed[0]!.claim.ingress;
    const secret = winner?.claim.secret;
    hosts.set(host, winner?.cert && secret && 'key' in secret ? { certPath: use(winner.cert), secret: secret.key, ingress: owner } : { ...defaultTls, ingress: owner });
  }

  const inherited = new Map<string, ServerTls>();
  for (const [host, h] of liveHosts) {
    if (h.kind !== 'exact' || hosts.has(host) || !host.includes('.')) continue;
    const covering = hosts.get(`*.${host.slice(host.indexOf('.') + 1)}`);
    if (covering) inherited.set(host, { ...covering, ingress: null });
  }

  let http2: Https['http2'] = 'listen';
  if (nginxVersion !== undefined) {
    const v = parseNginxVersion(nginxVersion);
    if (!v) warnings.push(`nginx version ${JSON.stringify(nginxVersion.slice(0, 100))} is not understood; HTTP/2 uses the "listen ... http2" syntax of nginx before 1.25.1`);
    else if (versionAtLeast(v, HTTP2_DIRECTIVE_SINCE)) http2 = 'directive';
  }
  return {
    https: { port: opts.httpsPort, redirectPort: opts.httpsRedirectPort ?? 443, http2 },
    defaultTls,
    hosts,
    inherited,
    certificates,
    warnings,
    recheckAt,
  };
}

/** The model's view of a certificate: the file name, and the content kept out of JSON and inspection. */
function certificateFile(cert: Certificate): CertificateFile {
  return withPem({ file: cert.file }, cert.pem);
}

/** A PEM text holding certificates and a key, as [certificates, key]. */
function splitPem(pem: string): [string, string] {
  const blocks = pem.match(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g) ?? [];
  const isCert = (b: string) => b.startsWith('-----BEGIN CERTIFICATE-----');
  return [blocks.filter(isCert).join('\n'), blocks.filter((b) => !isCert(b)).join('\n')];
}

/** A location's settings from its Ingress. */
type SettingsFor = (ingress: string, ctx: LocationContext) => SettingsResult;

/** The longest rendered location argument: nginx refuses tokens of 4096 bytes or more (quoting can double backslashes). */
const MAX_PATTERN_BYTES = 3000;

/**
 * The rewrite-target regex of a location with a literal (Exact or Prefix) path: it has no capture
 * groups, so any pattern that matches does; the path itself reads best, `^` when that is too long.
 */
function literalRewrite(literal: string): string {
  const pattern = `^${regexLiteral(literal)}`;
  return Buffer.byteLength(nginxValue(pattern)) <= MAX_PATTERN_BYTES ? pattern : '^';
}

function buildServer(
  h: HostRoutes,
  globalDefault: HostRoutes['fallback'],
  redirect: (ingress: string, locationPath: string) => boolean,
  tls: ServerTls | null,
  settingsFor: SettingsFor,
): Server {
  const locations: Location[] = [];
  /** How long a location's path counts in precedence (for a converted Prefix: its literal path). */
  const weight = new Map<Location, number>();
  /** A Prefix path rendered as a regex (see below): the literal path, for pinning. */
  const converted = new Map<Location, string>();
  const exactTaken = new Set([...h.claims.values()].filter((c) => c.path.match === 'exact').map((c) => c.path.path));
  // A host with use-regex paths: nginx tries regex locations in file order before any prefix
  // location except "/". To keep "longest path first" across both kinds (as ingress-nginx orders
  // them), the host's other Prefix paths become anchored, case-sensitive regexes with exactly the
  // Prefix semantics, and all regexes are ordered by path length. Exact paths stay exact (they
  // win outright) and "/" stays a prefix (it is tried last).
  const regexHost = [...h.claims.values()].some((c) => c.path.match === 'regex');
  const located = (l: Omit<Location, 'settings' | 'action'> & { action: Action }, ctx: LocationContext, w: number) => {
    const s = settingsFor(l.ingress, ctx);
    const loc: Location = { ...l, action: s.unavailable && l.action.kind === 'proxy' ? { kind: 'unavailable', reason: s.unavailable } : l.action, settings: s.settings };
    locations.push(loc);
    weight.set(loc, w);
    return loc;
  };
  const push = (match: Location['match'], path: string, c: Claim, opts: { ignoreCase?: boolean; weight?: number } = {}) =>
    located(
      {
        match,
        path,
        ignoreCase: opts.ignoreCase ?? false,
        route: { pathType: c.path.pathType, path: c.path.rawPath },
        ingress: c.ingress,
        service: c.resolved.service,
        ...(c.canary !== undefined ? { canary: { ingress: c.canary, service: c.canaryService ?? '' } } : {}),
        action: c.resolved.action,
        sslRedirect: redirect(c.ingress, c.path.match === 'regex' ? '' : c.path.path),
      },
      { rewriteRegex: c.path.match === 'regex' ? `(?i)^(?:${c.path.path})` : literalRewrite(c.path.path), cookiePath: c.path.match === 'regex' ? '/' : c.path.path },
      opts.weight ?? path.length,
    );
  for (const c of h.claims.values()) {
    const p = c.path.path;
    if (c.path.match === 'regex') {
      push('regex', `^(?:${p})`, c, { ignoreCase: true, weight: p.length });
      continue;
    }
    if (c.path.match === 'exact' || p === '/') {
      push(c.path.match, p, c);
      continue;
    }
    // Prefix "/foo" beside Prefix "/foo/": the request for /foo goes to "/foo", everything below
    // to "/foo/" (ingress-nginx's locations "= /foo" and "/foo/"), so neither route is lost.
    const sibling = h.claims.get(claimKeyOf({ match: 'prefix', path: p, slash: !c.path.slash }));
    if (sibling && !c.path.slash) {
      if (!exactTaken.has(p)) push('exact', p, c);
      continue;
    }
    if (regexHost) {
      const pattern = `^${regexLiteral(p)}(?:/|$)`;
      if (Buffer.byteLength(nginxValue(pattern)) <= MAX_PATTERN_BYTES) {
        converted.set(push('regex', pattern, c, { weight: p.length }), p);
        continue;
      }
      // Too long to render as a pattern: it keeps nginx's prefix semantics (a regex may win over it).
    }
    // Prefix /foo matches /foo and /foo/..., never /foobar: an exact location for the path
    // itself (unless an Exact rule owns it: Exact wins) and a prefix location for its subtree.
    if (!exactTaken.has(p) && !sibling) push('exact', p, c);
    push('prefix', `${p}/`, c);
  }
  if (!locations.some((l) => l.match === 'prefix' && l.path === '/')) {
    // Without a "location /", nginx would serve files from its html root for unmatched paths.
    const fb = h.fallback ?? globalDefault;
    located(
      {
        match: 'prefix',
        path: '/',
        ignoreCase: false,
        route: { pathType: 'Default', path: '/' },
        ingress: fb?.ingress ?? '',
        service: fb?.resolved.service ?? '',
        action: fb ? fb.resolved.action : { kind: 'notFound' },
        sslRedirect: redirect(fb?.ingress ?? '', '/'),
      },
      { rewriteRegex: '^/', cookiePath: '/' },
      1,
    );
  }
  // nginx answers /foo with a 301 to /foo/ when a proxied location is named "/foo/" and none is
  // named "/foo" (before it even tries regexes). Ingress says an Exact /foo/ does not match /foo
  // at all: pin /foo to whatever it would match without that redirect (the longest Prefix
  // covering it; regex paths are not considered).
  // Indexed by path (not a scan of every location per path: 20,000 paths took a minute): each
  // map holds the first location of that path, so ties go to the earlier one, as a scan in order.
  const exactPaths = new Set<string>();
  const prefixAt = new Map<string, number>();
  const convertedAt = new Map<string, number>();
  locations.forEach((o, i) => {
    const literal = converted.get(o);
    if (literal !== undefined) {
      if (!convertedAt.has(literal)) convertedAt.set(literal, i);
    } else if (o.match === 'exact') exactPaths.add(o.path);
    else if (o.match === 'prefix' && !prefixAt.has(o.path)) prefixAt.set(o.path, i);
  });
  const count = locations.length;
  for (let i = 0; i < count; i++) {
    const l = locations[i]!;
    if (l.match !== 'exact' || !l.path.endsWith('/') || l.path === '/') continue;
    const bare = l.path.slice(0, -1);
    if (exactPaths.has(bare)) continue;
    // The location covering `bare` with the longest path: a prefix location (its path, which
    // always ends in "/", starts `bare`) or a converted Prefix (`bare` is its literal or below it).
    let best = 0;
    let bestValue = -1;
    const consider = (at: number | undefined, value: number) => {
      if (at !== undefined && (value > bestValue || (value === bestValue && at < best))) [best, bestValue] = [at, value];
    };
    for (let k = bare.indexOf('/'); k !== -1; k = bare.indexOf('/', k + 1)) {
      consider(prefixAt.get(bare.slice(0, k + 1)), k + 1);
      if (k > 0) consider(convertedAt.get(bare.slice(0, k)), k + 1);
    }
    consider(convertedAt.get(bare), bare.length + 1);
    const covering = locations[best]!;
    const pinned: Location = { ...covering, match: 'exact', path: bare, ignoreCase: false, sslRedirect: redirect(covering.ingress, bare) };
    locations.push(pinned);
    exactPaths.add(bare);
    weight.set(pinned, bare.length);
  }
  // Longest path first, then exact, Prefix-as-regex, prefix, use-regex: nginx only cares about the
  // order of regex locations among themselves; the rest is for people reading the file.
  const rank = (l: Location) => (l.match === 'exact' ? 0 : l.match === 'prefix' ? 2 : l.ignoreCase ? 3 : 1);
  // The keys are computed once per location, not per comparison (Map lookups in a comparator).
  const keyed = locations.map((l) => ({ l, w: weight.get(l) ?? l.path.length, r: rank(l) }));
  keyed.sort((a, b) => {
    if (a.w !== b.w) return b.w - a.w;
    if (a.r !== b.r) return a.r - b.r;
    return a.l.path < b.l.path ? -1 : a.l.path > b.l.path ? 1 : 0;
  });
  keyed.forEach((k, i) => (locations[i] = k.l));
  const host = h.host?.host ?? null;
  return {
    host,
    serverName: h.host ? serverNameFor(h.host) : '_',
    file: host === null ? MAIN_FILE : serverFile(host),
    locations,
    ingresses: [...h.ingresses].sort(),
    tls,
    mirrors: [],
    errorLocations: [],
    snippets: [],
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
