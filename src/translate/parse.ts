// Parsing one Ingress: its rules, paths, backends, spec.tls and annotations, checked and
// normalized, with a cache by object. A value that cannot be served throws InvalidValue (the
// driver rejects the Ingress with its message); what only limits the Ingress becomes a note.

import type { V1Ingress, V1IngressBackend } from '@kubernetes/client-node';
import {
  CANARY,
  NO_ANNOTATIONS,
  REWRITE_TARGET,
  USE_REGEX,
  parseAnnotations,
  parseRegexPath,
  type IngressAnnotations,
} from '../annotations/index.ts';
import { INTERNAL_PATH_PREFIX } from '../annotations/settings.ts';
import {
  InvalidValue,
  checkObjectName,
  isPortName,
  isPortNumber,
  parseBoolAnnotation,
  parseHost,
  parsePath,
  type ParsedHost,
} from '../grammar.ts';
import { ingressKey } from './membership.ts';

export type PathType = 'Exact' | 'Prefix' | 'ImplementationSpecific';

export interface BackendRef {
  namespace: string;
  service: string;
  port: { number: number } | { name: string };
}

export interface ParsedPath {
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
export const claimKeyOf = (p: Pick<ParsedPath, 'match' | 'path' | 'slash'>) =>
  `${p.match} ${p.path}${p.slash ? '/' : ''}`;

/** Characters that make a path a regular expression in ingress-nginx (with use-regex, every path is one there). */
const REGEX_SYNTAX = /[*+?()[\]{}|^$\\]/;

/** How many capture groups a (validated, JavaScript-compatible) pattern has. */
function captureGroups(pattern: string): number {
  return new RegExp(`${pattern}|`).exec('')!.length - 1;
}

export interface ParsedTls {
  /** Position in spec.tls, for reasons. */
  index: number;
  /** Valid hosts it names; null when it names none (it then covers the hosts its certificate covers). */
  hosts: string[] | null;
  /**
   * The Secret (`namespace/name`), or the InvalidValue that says why secretName is unusable (the
   * TLS plan throws it where the entry matters); null when secretName is empty, which asks for
   * the default certificate.
   */
  secret: { key: string } | InvalidValue | null;
}

export interface ParsedIngress {
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
export function list<T>(value: T[] | undefined | null): T[] {
  return Array.isArray(value) ? value.filter((v): v is T => typeof v === 'object' && v !== null) : [];
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string') throw new InvalidValue(`${where} must be a string`);
  return value;
}

function parseBackend(namespace: string, b: V1IngressBackend | undefined, where: string): BackendRef {
  if (!b) throw new InvalidValue(`${where}: backend is missing`);
  if (b.resource) {
    throw new InvalidValue(
      `${where}: resource backends (${b.resource.kind ?? 'unknown kind'}) are not supported; use a Service backend`,
    );
  }
  const svc = b.service;
  if (!svc) throw new InvalidValue(`${where}: backend.service is missing`);
  const service = checkObjectName('Service', svc.name, 'label1035');
  const num = svc.port?.number;
  const name = svc.port?.name;
  if (num !== undefined && num !== null && name)
    throw new InvalidValue(`${where}: service port must set number or name, not both`);
  if (num !== undefined && num !== null) {
    if (!isPortNumber(num))
      throw new InvalidValue(`${where}: service port number ${JSON.stringify(num)} is not in 1-65535`);
    return { namespace, service, port: { number: num } };
  }
  if (name) {
    if (!isPortName(name))
      throw new InvalidValue(`${where}: service port name ${JSON.stringify(name)} is not a valid port name`);
    return { namespace, service, port: { name } };
  }
  throw new InvalidValue(`${where}: service port (number or name) is missing`);
}

function parseIngress(
  ing: V1Ingress,
  tlsEnabled: boolean,
  allowSnippets: boolean,
  stickyCookie: boolean,
): ParsedIngress {
  const namespace = checkObjectName('namespace', ing.metadata?.namespace ?? 'default', 'label');
  checkObjectName('Ingress', ing.metadata?.name, 'subdomain');
  const key = ingressKey(ing);
  const spec = ing.spec ?? {};
  const given = ing.metadata?.annotations as unknown;
  const raw = (typeof given === 'object' && given !== null ? given : {}) as Record<string, unknown>;
  let parsedAnnotations: ReturnType<typeof parseAnnotations>;
  try {
    parsedAnnotations = parseAnnotations(raw, { namespace, tlsEnabled, allowSnippets, stickyCookie });
  } catch (err) {
    // A value that does not parse fails closed, as ingress-nginx's "location denied": the Ingress
    // keeps its paths and they answer 503, so that a request cannot fall through to another route
    // without what it asked for (an allowlist, authentication, a redirect to HTTPS). A canary serves
    // nothing of its own: it is rejected whole.
    if (!(err instanceof InvalidValue) || isCanary(raw)) throw err;
    // Its regex paths stay regexes, so that they claim what they would have served.
    const useRegex =
      Object.hasOwn(raw, REWRITE_TARGET) ||
      (Object.hasOwn(raw, USE_REGEX) && booleanOr(USE_REGEX, raw[USE_REGEX], false));
    parsedAnnotations = { annotations: { ...NO_ANNOTATIONS, useRegex, denied: [err.message] }, notes: [] };
  }
  const annotations = parsedAnnotations.annotations;
  const notes: string[] = [...parsedAnnotations.notes];
  const rules: ParsedIngress['rules'] = [];
  list(spec.rules).forEach((rule, i) => {
    const host =
      rule.host === undefined || rule.host === null || rule.host === ''
        ? null
        : parseHost(text(rule.host, `rules[${i}].host`));
    const paths: ParsedPath[] = list(rule.http?.paths).map((p, j) => {
      const where = `rules[${i}].http.paths[${j}]`;
      const pathType = p.pathType as string | undefined;
      if (pathType !== 'Exact' && pathType !== 'Prefix' && pathType !== 'ImplementationSpecific') {
        throw new InvalidValue(
          `${where}: pathType must be Exact, Prefix or ImplementationSpecific, not ${JSON.stringify(pathType ?? '')}`,
        );
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
          throw new InvalidValue(
            `${where}: rewrite-target uses $${captures}, but path ${JSON.stringify(rawPath.slice(0, 100))} has ${groups === 0 ? 'no capture group' : `only ${groups} capture group${groups === 1 ? '' : 's'}`}; add the group to the path (for example "/app(/|$)(.*)" with rewrite-target "/$2")`,
          );
        }
        return {
          pathType,
          rawPath,
          match: 'regex' as const,
          path: pattern,
          slash: false,
          backend: parseBackend(namespace, p.backend, where),
        };
      }
      // With use-regex or rewrite-target, ingress-nginx (>= 1.12, strict path validation) refuses
      // regex syntax in Exact and Prefix paths: here they would be matched literally and answer 404.
      if (annotations.useRegex && REGEX_SYNTAX.test(rawPath)) {
        throw new InvalidValue(
          `${where}: path ${JSON.stringify(rawPath.slice(0, 100))} looks like a regular expression, but pathType ${pathType} matches it literally; use pathType: ImplementationSpecific for a regular-expression path (this Ingress has ${annotations.rewriteTarget ? 'rewrite-target' : 'use-regex'})`,
        );
      }
      if (captures > 0) {
        throw new InvalidValue(
          `${where}: rewrite-target uses $${captures}, but pathType ${pathType} path ${JSON.stringify(rawPath.slice(0, 100))} has no capture groups; use pathType: ImplementationSpecific and a path with the group (for example "/app(/|$)(.*)" with rewrite-target "/$2")`,
        );
      }
      const decoded = parsePath(rawPath);
      if (decoded.startsWith(INTERNAL_PATH_PREFIX))
        throw new InvalidValue(
          `${where}: paths under ${INTERNAL_PATH_PREFIX} are reserved for this sidecar's internal locations`,
        );
      const match = pathType === 'Exact' ? ('exact' as const) : ('prefix' as const);
      const path = match === 'prefix' && decoded.length > 1 ? decoded.replace(/\/+$/, '') : decoded;
      return {
        pathType,
        rawPath,
        match,
        path,
        slash: match === 'prefix' && path !== decoded && path !== '/',
        backend: parseBackend(namespace, p.backend, where),
      };
    });
    if (paths.length === 0) notes.push(`rules[${i}] has no http paths and serves nothing`);
    rules.push({ host, paths });
  });
  const defaultBackend = spec.defaultBackend ? parseBackend(namespace, spec.defaultBackend, 'defaultBackend') : null;
  if (rules.length === 0 && !defaultBackend) throw new InvalidValue('spec has neither rules nor a defaultBackend');
  const tls: ParsedTls[] = [];
  const tlsList = list(spec.tls);
  if (tlsList.length > 0 && !tlsEnabled)
    notes.push('spec.tls is ignored: TLS is not enabled in this sidecar, so its hosts are served over plain HTTP only');
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
          secret = {
            key: `${namespace}/${checkObjectName('Secret', text(secretName, `spec.tls[${i}].secretName`), 'subdomain')}`,
          };
        } catch (err) {
          if (!(err instanceof InvalidValue)) throw err;
          secret = new InvalidValue(`spec.tls[${i}].secretName: ${err.message}`);
        }
      }
      if (named.length > 0 && hosts.length === 0) return;
      tls.push({ index: i, hosts: named.length === 0 ? null : hosts, secret });
    });
  }
  return { key, rules, defaultBackend, tls, annotations, notes };
}

/** Whether annotations ask for a canary (a value that does not parse counts as yes: a canary must never claim paths). */
export function isCanary(raw: Record<string, unknown>): boolean {
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
 * Parsed Ingresses by object: parsing depends on nothing but the object and three options, and
 * snapshots are immutable (the sources replace an object when it changes, never edit it), so an
 * unchanged Ingress is parsed once, not on every pass. A failure is remembered as its reason.
 */
const parsedCache = new WeakMap<V1Ingress, { options: string; result: ParsedIngress | { error: unknown } }>();

export function parseIngressCached(
  ing: V1Ingress,
  tlsEnabled: boolean,
  allowSnippets: boolean,
  stickyCookie: boolean,
): ParsedIngress {
  const options = `${tlsEnabled} ${allowSnippets} ${stickyCookie}`;
  let hit = parsedCache.get(ing);
  if (hit?.options !== options) {
    let result: ParsedIngress | { error: unknown };
    try {
      result = parseIngress(ing, tlsEnabled, allowSnippets, stickyCookie);
    } catch (error) {
      result = { error };
    }
    hit = { options, result };
    parsedCache.set(ing, hit);
  }
  if ('error' in hit.result) throw hit.result.error;
  return hit.result;
}
