// Cluster state -> routing model. Pure: no I/O, no clock, no logging, sorted output, so the same
// snapshot always yields the same model (and so the same bytes on disk).
//
// Semantics follow networking.k8s.io/v1 Ingress as the Kubernetes docs state them:
// - hosts are exact or single-label wildcards; an exact host wins over a wildcard;
// - Exact paths match the whole path; Prefix (and ImplementationSpecific) match path elements,
//   a trailing slash ignored; the longest path wins, then Exact over Prefix;
// - rules without a host, and the defaultBackend of an Ingress without rules, take the hosts no rule
//   names; an Ingress's defaultBackend answers the unmatched paths of the hosts it is the oldest for
//   (as ingress-nginx; --default-backend-service, else 404, answers the rest);
// - spec.tls hosts are served over TLS with their Secret's certificate; with TLS on, every other
//   host answers HTTPS too, with the default certificate, as ingress-nginx does (see planTls);
// - nginx.ingress.kubernetes.io annotations (src/annotations/index.ts) set each location of the Ingress
//   that carries them; with use-regex, ImplementationSpecific paths are regexes (see buildServer).

//
// The steps, one module each, run in this order by translateSteps below:
// - membership.ts: which Ingresses are ours, their keys, oldest first;
// - parse.ts: one Ingress checked and normalized (cached by object);
// - hosts.ts: host claims, conflicts between Ingresses, default backends (backends.ts resolves
//   Services and EndpointSlices to upstreams);
// - canaries.ts: canary Ingresses attached to the claims they split;
// - tls-plan.ts: the certificate of each host, and HTTP -> HTTPS redirects;
// - locations.ts: each server's locations in precedence order;
// - names.ts: file names and server_names hash sizes.
// Every step reports what it cannot serve of an Ingress to one collector (rejections.ts): a value
// it cannot serve throws InvalidValue, and the step that owns the Ingress records the message.

import { NO_ANNOTATIONS, hasStickyCookie } from '../annotations/index.ts';
import { LocationSettingsBuilder, affinityKeysFor } from '../annotations/settings.ts';
import { describe } from '../errors.ts';
import { variablesUsed } from '../annotations/snippet-variables.ts';
import { InvalidValue, isPortNumber, resolverAddress } from '../grammar.ts';
import { DEFAULT_LOCATION_SETTINGS } from '../model.ts';
import type { Action, CertificateFile, RoutingModel, Server } from '../model.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import { runSteps, runStepsSync } from '../steps.ts';
import { Backends, backendOptions, variantOf } from './backends.ts';
import { Canaries } from './canaries.ts';
import { HostClaims } from './hosts.ts';
import { buildServer, type SettingsFor } from './locations.ts';
import { byAge, ingressKey, isOurs } from './membership.ts';
import { serverNamesHashSizes } from './names.ts';
import type { TranslateOptions } from './options.ts';
import { isCanary, parseIngressCached, type ParsedIngress } from './parse.ts';
import { Rejections } from './rejections.ts';
import { planTls, redirects, tlsOfHost } from './tls-plan.ts';

// What other folders import from here.
export { ANNOTATION_PREFIX, FORCE_SSL_REDIRECT_ANNOTATION, SSL_REDIRECT_ANNOTATION } from '../annotations/index.ts';
export { CLASS_ANNOTATION, DEFAULT_CLASS_ANNOTATION, ingressKey, isOurs } from './membership.ts';
export { FILE_PREFIX, MAIN_FILE, UPSTREAMS_FILE, serverNamesHashSizes } from './names.ts';
export type { TlsOptions, TranslateOptions } from './options.ts';

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
  const rejections = new Rejections();
  const report = rejections.report;
  /** Problems that belong to no Ingress. */
  const warnings: string[] = [];

  const ours = snap.ingresses
    .filter((i) => isOurs(i, opts.ingressClass, snap.ingressClasses, opts.watchIngressWithoutClass))
    .sort(byAge);
  yield;
  const backendOpts = backendOptions(opts);
  const resolver = backendOpts.resolver;
  const backends = new Backends(snap, backendOpts);
  const claims = new HostClaims(backends, report, opts.allowCrossNamespaceHosts === true);
  const sameTenant = claims.sameTenant;
  /** Every Ingress that parsed, oldest first. */
  const parsedIngresses: ParsedIngress[] = [];
  /** Ingresses that keep their paths but answer 503 there (annotations.denied). */
  const denied = new Set<string>();
  const canaries = new Canaries(claims, backends, report, opts.allowCrossNamespaceCanary === true);
  const stickyCookie = hasStickyCookie(opts.nginxVersion);

  for (const ing of ours) {
    yield;
    const key = ingressKey(ing);
    let parsed: ParsedIngress;
    try {
      parsed = parseIngressCached(ing, opts.tls !== undefined, opts.allowSnippets === true, stickyCookie);
    } catch (err) {
      // Anything else thrown here is a value of the wrong type (the directory source has no API
      // server to enforce the schema): still this Ingress's problem alone.
      report(key, 'rejected', err instanceof InvalidValue ? err.message : `malformed Ingress: ${describe(err)}`);
      // Its hosts stay its namespace's: a mistake must not hand a host to another namespace.
      if (!isCanary(ing.metadata?.annotations ?? {})) claims.reserve(ing, key);
      continue;
    }
    if (opts.closed?.has(key)) {
      // nginx refused what it rendered (src/sync/settle.ts reports why): a canary takes no share, any
      // other keeps its paths at 503, with nothing of its annotations rendered.
      if (parsed.annotations.canary) continue;
      parsed = {
        ...parsed,
        annotations: {
          ...NO_ANNOTATIONS,
          useRegex: parsed.annotations.useRegex,
          denied: ['nginx refused its configuration'],
        },
        notes: [],
      };
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
      canaries.add(parsed, ing.metadata?.annotations ?? {});
      continue;
    }
    claims.claim(parsed);
  }

  const byKey = new Map(parsedIngresses.map((p) => [p.key, p]));
  claims.settleCatchAll();
  canaries.attachAll(byKey);
  /** --default-backend-service: what answers where no Ingress's defaultBackend does (null: 404). */
  const serviceDefault = defaultBackendService(backends, opts.defaultBackendService, warnings);

  yield;
  const live = claims.live();
  const tls = opts.tls
    ? planTls(snap.secrets, parsedIngresses, live, opts.tls, opts.now!, opts.nginxVersion, report, sameTenant)
    : null;
  /** Whether a location answers plain HTTP with a redirect to HTTPS. */
  const redirect = redirects(tls, denied, byKey);
  const builder = new LocationSettingsBuilder({
    secrets: snap.secrets,
    privateDir: opts.tls?.certDir ?? opts.privateDir ?? null,
    report: (ingress, reason) => report(ingress, 'partial', reason),
    errorUpstream: (ingress) => {
      const p = byKey.get(ingress);
      const own = p ? claims.defaultBackendOf(ingress, p.annotations) : null;
      // As ingress-nginx: the default-backend annotation's Service, else --default-backend-service
      // (never an Ingress's spec.defaultBackend).
      const target =
        own?.action.kind === 'proxy'
          ? { action: own.action, protocol: p!.annotations.backendProtocol ?? 'HTTP' }
          : serviceDefault?.resolved.action.kind === 'proxy'
            ? { action: serviceDefault.resolved.action, protocol: 'HTTP' }
            : null;
      // Error pages are HTTP responses: a gRPC default backend cannot give them.
      if (!target || target.action.kind !== 'proxy' || (target.protocol !== 'HTTP' && target.protocol !== 'HTTPS'))
        return null;
      return { upstream: target.action.upstream, scheme: target.protocol === 'HTTPS' ? 'https' : 'http' };
    },
  });
  const settingsFor: SettingsFor = (ingress, ctx) => {
    const p = byKey.get(ingress);
    return p ? builder.for(ingress, p.annotations, ctx) : { settings: DEFAULT_LOCATION_SETTINGS, unavailable: null };
  };
  const servers: Server[] = [];
  for (const h of live) {
    yield;
    const https = tlsOfHost(tls, h.host!.host);
    servers.push(buildServer(h, serviceDefault, redirect(https.configured), https.tls, settingsFor));
  }
  servers.sort((a, b) => (a.file < b.file ? -1 : 1));
  const defaultServer = buildServer(
    claims.catchAll,
    serviceDefault,
    redirect(false),
    tls?.defaultTls ?? null,
    settingsFor,
  );
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
        report(
          ingress,
          'partial',
          `server-snippet is not applied to ${s.host === null ? 'the default server' : `host ${s.host}`}: ${other !== undefined ? `Ingress ${other} of another namespace serves it too` : 'rules without a host share it with every namespace'}`,
        );
        continue;
      }
      out.push({ ingress, directives });
    }
    return out;
  }
  yield;
  const extras = builder.collect([defaultServer, ...servers]);
  yield;
  const privateFiles = new Map<string, CertificateFile>([
    ...(tls?.certificates ?? []),
    ...extras.files.map((f) => [f.file, f] as const),
  ]);

  const served = new Set<string>([...servers, defaultServer].flatMap((s) => s.locations.map((l) => l.ingress)));
  served.delete('');
  for (const k of denied) served.delete(k);
  yield;
  const allLocations = [...servers, defaultServer].flatMap((s) => s.locations);
  const usedCanaries = canaries.usedBy(allLocations);
  for (const c of canaries.attached) served.add(c);
  const exactNames = servers.filter((s) => !s.serverName.startsWith('~')).map((s) => s.serverName);
  yield;
  const used = new Set([
    ...allLocations.flatMap((l) => (l.action.kind === 'proxy' ? [l.action.upstream] : [])),
    ...usedCanaries.map((c) => c.canary),
    ...[...servers, defaultServer].flatMap((s) => s.errorLocations.map((e) => e.upstream)),
  ]);

  const upstreams = [...backends.upstreams.values()]
    .filter((u) => used.has(u.name))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const affinityCookieNames = parsedIngresses.flatMap((p) =>
    p.annotations.affinity ? [p.annotations.affinity.cookie] : [],
  );

  return {
    httpPort: opts.httpPort,
    ipv6: opts.ipv6,
    accessLog: opts.accessLog ?? null,
    defaultServer,
    servers,
    upstreams,
    serverNamesHash: serverNamesHashSizes(exactNames),
    served: [...served].sort(),
    rejections: rejections.sorted(),
    https: tls?.https ?? null,
    certificates: [...privateFiles.values()].sort((a, b) => (a.file < b.file ? -1 : 1)),
    limitReqZones: extras.limitReqZones,
    limitConnZones: extras.limitConnZones,
    corsMaps: extras.corsMaps,
    affinityKeys: affinityKeysFor(extras.affinityKeys, upstreams, affinityCookieNames),
    affinityCookies: extras.affinityCookies,
    canaries: usedCanaries,
    ingressNginxVariables: snippetVariables([defaultServer, ...servers]),
    ...(resolver && upstreams.some((u) => u.external) ? { resolver: [...resolver] } : {}),
    ...(opts.dynamicEndpoints ? { endpointsInFiles: [...backends.endpointsInFiles].sort() } : {}),
    ...(opts.dynamicEndpoints && upstreams.some((u) => u.dynamic)
      ? {
          endpointResolver: {
            address: dynamicResolverAddress(opts.dynamicEndpoints.resolver),
            unavailablePort: checkedPort(opts.dynamicEndpoints.unavailablePort),
          },
        }
      : {}),
    warnings: [...warnings, ...(tls?.warnings ?? [])].sort(),
    tlsRecheckAt:
      tls?.recheckAt !== null && tls?.recheckAt !== undefined ? new Date(tls.recheckAt).toISOString() : null,
  };
}

/**
 * --default-backend-service NAMESPACE/NAME: its first port answers what no Ingress's defaultBackend
 * does. As in ingress-nginx, a Service that is missing or has no ready endpoint leaves it to the 404
 * (said in `warnings`).
 */
function defaultBackendService(
  backends: Backends,
  key: string | undefined,
  warnings: string[],
): { ingress: string; resolved: { action: Action; service: string } } | null {
  if (key === undefined) return null;
  const m = /^([^/]+)\/([^/]+)$/.exec(key);
  const ref = m ? backends.firstPort(m[1]!, m[2]!) : null;
  // Endpoints in the files: with none, the 404 answers (a reload when that changes).
  const resolved = ref
    ? backends.resolve(ref, { ...variantOf(NO_ANNOTATIONS), staticEndpoints: true }, () => {})
    : null;
  if (resolved?.action.kind === 'proxy') return { ingress: '', resolved };
  const why =
    resolved?.action.kind === 'unavailable'
      ? resolved.action.reason
      : `Service ${JSON.stringify(key.slice(0, 300))} not found or has no ports`;
  warnings.push(`--default-backend-service: ${why}; 404 answers instead`);
  return null;
}

function checkedPort(n: number): number {
  if (!isPortNumber(n) || n > 65534)
    throw new Error(`translate: dynamicEndpoints.unavailablePort ${n} is not a port below 65535`);
  return n;
}

/** The DNS responder's address as nginx's resolver takes it; the config module validated it already. */
function dynamicResolverAddress(raw: string): string {
  const address = resolverAddress(raw);
  if (address === null)
    throw new Error(`translate: dynamicEndpoints.resolver ${JSON.stringify(raw)} is not an IP address:port`);
  return address;
}

/** The ingress-nginx variables that the served snippets read (their maps are rendered, no others). */
function snippetVariables(servers: Server[]): string[] {
  const used = new Set<string>();
  for (const s of servers) {
    for (const l of s.locations) if (l.settings.snippet) variablesUsed(l.settings.snippet, used);
    for (const snippet of s.snippets) variablesUsed(snippet.directives, used);
  }
  return [...used].sort();
}
