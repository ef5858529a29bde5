// Backends: Services, EndpointSlices (or Endpoints) -> upstreams, one per Service port and variant.

import type { V1EndpointSlice, V1Endpoints, V1Service, V1ServicePort } from '@kubernetes/client-node';
import type { IngressAnnotations } from '../annotations/index.ts';
import { affinityKeyVariable, digest, stickyCookie } from '../annotations/settings.ts';
import { isIP } from 'node:net';
import { parseTargetHost, type TargetHost } from '../annotations/addresses.ts';
import { MAX_ANSWERED_ENDPOINTS, serviceHost } from '../dns/names.ts';
import { InvalidValue, isDnsLabel, isPortNumber, resolverAddress, upstreamAddress } from '../grammar.ts';
import { parseNginxVersion, UPSTREAM_RESOLVE_SINCE, versionAtLeast } from '../nginx/version.ts';
import type { Action, Upstream } from '../model.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import type { TranslateOptions } from './options.ts';
import { list, type BackendRef } from './parse.ts';

export const sameBackend = (a: BackendRef, b: BackendRef) => describeBackend(a) === describeBackend(b);
export const describeBackend = (b: BackendRef) =>
  `Service ${b.namespace}/${b.service}:${'number' in b.port ? b.port.number : b.port.name}`;

/** Resolves Service backends to upstreams; remembers each upstream once. */
export class Backends {
  readonly upstreams = new Map<string, Upstream>();
  /** dns mode: `namespace/service` of every Service whose endpoints the files list (or whose having none changes them). */
  readonly endpointsInFiles = new Set<string>();
  private readonly addressMemo = new Map<string, string[]>();
  private readonly services = new Map<string, V1Service>();
  private readonly slices = new Map<string, V1EndpointSlice[]>();
  private readonly endpoints = new Map<string, V1Endpoints>();

  /**
   * `resolver`: whether nginx has DNS servers (--resolver) to resolve ExternalName names with.
   * `resolveInUpstream`: nginx 1.27.3 or later (`server NAME resolve` in an upstream).
   */
  private readonly opts: BackendOptions;

  constructor(snap: Snapshot, opts: BackendOptions = { resolver: null, resolveInUpstream: false, dynamic: null }) {
    this.opts = opts;
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
    for (const ep of snap.endpoints)
      this.endpoints.set(`${ep.metadata?.namespace ?? 'default'}/${ep.metadata?.name}`, ep);
  }

  /** default-backend: the Service's first port, as ingress-nginx takes it; null when there is no such Service or port. */
  firstPort(namespace: string, service: string): BackendRef | null {
    const port = list(this.services.get(`${namespace}/${service}`)?.spec?.ports)[0];
    return port && isPortNumber(port.port) ? { namespace, service, port: { number: port.port } } : null;
  }

  /**
   * The action for a backend. `warn` gets the reason to report when the Ingress refers to
   * something missing (the backend answers 503) or asks for what it cannot have.
   */
  resolve(
    b: BackendRef,
    variant: UpstreamVariant,
    warn: (reason: string) => void,
  ): { action: Action; service: string } {
    const protocol = variant.protocol;
    const portText = 'number' in b.port ? String(b.port.number) : b.port.name;
    const service = `${b.namespace}/${b.service}:${portText}`;
    const unavailable = (reason: string, report = true) => {
      if (report) warn(reason);
      return { action: { kind: 'unavailable', reason } as Action, service };
    };
    const svc = this.services.get(`${b.namespace}/${b.service}`);
    if (!svc) return unavailable(`Service ${b.namespace}/${b.service} not found`);
    if (svc.spec?.type === 'ExternalName') return this.external(b, svc, variant, warn, unavailable, service);
    const port = list(svc.spec?.ports).find((p) =>
      'number' in b.port ? p.port === b.port.number : p.name === b.port.name,
    );
    if (!port) return unavailable(`Service ${b.namespace}/${b.service} has no port ${portText}`);
    // Looked up by name, the number comes from the Service: it names the upstream, so check it.
    if (!isPortNumber(port.port))
      return unavailable(`Service ${b.namespace}/${b.service} port ${portText} has an invalid number`);
    // service-upstream: the Service's cluster IP, so kube-proxy picks the endpoint. A headless
    // Service has none: its endpoints are used, and that is said.
    const ip: unknown = svc.spec?.clusterIP;
    const clusterIp = variant.serviceUpstream && typeof ip === 'string' ? upstreamAddress(ip, port.port) : null;
    const serviceUpstreamProblem =
      variant.serviceUpstream && clusterIp === null
        ? `service-upstream: Service ${b.namespace}/${b.service} has no cluster IP; its endpoints are used`
        : undefined;
    const balance = variant.balance;
    const addresses = clusterIp ? [clusterIp] : this.readyAddresses(b.namespace, b.service, port);
    const dynamic = clusterIp ? null : this.dynamicHost(b, port.port, variant, addresses.length);
    // In dns mode, the Services whose endpoints the files hold: their changes take a full pass.
    if (this.opts.dynamic && !dynamic && !clusterIp) this.endpointsInFiles.add(`${b.namespace}/${b.service}`);
    const name = [
      `${b.namespace}_${b.service}_${port.port}`,
      protocol === 'HTTP' ? '' : `_${protocol.toLowerCase()}`,
      clusterIp ? '_svc' : '',
      balanceSuffix(balance),
      // Beside dynamic upstreams of the same Service port, one that lists its endpoints.
      this.opts.dynamic && !dynamic && !clusterIp ? '_static' : '',
    ].join('');
    let upstream = this.upstreams.get(name);
    if (!upstream) {
      const servers = addresses.map((address) => ({ address }));
      upstream = {
        name,
        service: `${b.namespace}/${b.service}:${port.port}`,
        servers,
        balance,
        ...(dynamic ? { dynamic } : {}),
        ...(clusterIp ? { clusterIp: true as const } : {}),
      };
      this.upstreams.set(name, upstream);
    }
    // A dynamic upstream without endpoints is still proxied: nginx gets a 503 from the listener
    // the DNS responder points at, and the endpoints' return needs no reload.
    if (upstream.servers.length === 0 && !upstream.dynamic)
      return unavailable(`Service ${b.namespace}/${b.service} has no ready endpoints`, false);
    if (serviceUpstreamProblem) warn(serviceUpstreamProblem);
    return { action: { kind: 'proxy', upstream: name }, service };
  }

  /**
   * An ExternalName Service, as ingress-nginx serves it: its DNS name (or IP address) and the port
   * the backend names (a Service port's targetPort, else its port; a number no port has is used
   * as it is), resolved by nginx while it runs. service-upstream changes nothing (there is no
   * cluster IP), as in ingress-nginx.
   */
  private external(
    b: BackendRef,
    svc: V1Service,
    variant: UpstreamVariant,
    warn: (reason: string) => void,
    unavailable: (reason: string) => { action: Action; service: string },
    service: string,
  ): { action: Action; service: string } {
    const what = `Service ${b.namespace}/${b.service} (ExternalName)`;
    const raw: unknown = svc.spec?.externalName;
    if (typeof raw !== 'string' || raw === '') return unavailable(`${what} has no externalName`);
    // A trailing dot says "absolute"; nginx's resolver takes every name as absolute.
    const bare = raw.endsWith('.') ? raw.slice(0, -1) : raw;
    let target: TargetHost;
    try {
      target = parseTargetHost(isIP(bare) === 6 ? `[${bare}]` : bare, (reason) => new InvalidValue(reason));
    } catch (err) {
      return unavailable(`${what}: externalName ${JSON.stringify(raw.slice(0, 256))} ${(err as Error).message}`);
    }
    const ports = list(svc.spec?.ports);
    const named = 'name' in b.port ? b.port.name : null;
    const p = ports.find((x) => (named !== null ? x.name === named : x.port === (b.port as { number: number }).number));
    if (named !== null && !p) return unavailable(`Service ${b.namespace}/${b.service} has no port ${named}`);
    const tp: unknown = p?.targetPort;
    const portNumber = isPortNumber(tp) ? tp : p ? p.port : (b.port as { number: number }).number;
    if (!isPortNumber(portNumber))
      return unavailable(`Service ${b.namespace}/${b.service} port ${named ?? portNumber} has an invalid number`);
    const dns = target.kind === 'dns';
    if (dns && this.opts.resolver === null)
      return unavailable(
        `${what}: nginx has no resolver for ${JSON.stringify(target.host)} (set --resolver to the cluster DNS)`,
      );
    const via = this.opts.resolveInUpstream ? 'resolve' : 'variable';
    const balance = variant.balance;
    // Sticky requests going to any address would send a session elsewhere: not served (fail closed).
    if (dns && via === 'variable' && (balance.kind === 'hash' || balance.kind === 'sticky'))
      return unavailable(
        `${what}: nginx before 1.27.3 resolves its name per request and spreads requests round robin over its addresses, so affinity and upstream-hash-by cannot apply (nginx 1.29.6 and later can, with affinity-mode: persistent)`,
      );
    // nginx's hash picks a `server` line, and every address a resolved name gives shares one: it
    // would spread the requests round robin. A sticky cookie names the address itself.
    if (dns && via === 'resolve' && balance.kind === 'hash')
      return unavailable(
        `${what}: nginx resolves its name into addresses that share one server line, which its hash cannot tell apart, so affinity (balanced) and upstream-hash-by cannot apply; affinity-mode: persistent can (nginx 1.29.6 and later)`,
      );
    const protocol = variant.protocol;
    const name = [
      `${b.namespace}_${b.service}_${portNumber}`,
      protocol === 'HTTP' ? '' : `_${protocol.toLowerCase()}`,
      balanceSuffix(balance),
    ].join('');
    let upstream = this.upstreams.get(name);
    if (!upstream) {
      const host = target.kind === 'ipv6' ? target.host.slice(1, -1) : target.host;
      upstream = {
        name,
        service: `${b.namespace}/${b.service}:${portNumber}`,
        servers: dns ? [] : [{ address: upstreamAddress(host, portNumber)! }],
        balance,
        ...(dns ? { external: { host: target.host, port: portNumber, via } } : {}),
      };
      this.upstreams.set(name, upstream);
    }
    if (dns) {
      // ingress-nginx resolves a name with fewer dots than the pod's ndots through its search
      // domains first; nginx's resolver takes it as written. A name of one label (or ending in
      // .svc) only resolves through them.
      if (!target.host.includes('.') || target.host.endsWith('.svc'))
        warn(
          `${what}: externalName ${JSON.stringify(target.host)} is resolved as written, without the pod's search domains (which ingress-nginx tries); write the full name (NAME.NAMESPACE.svc.cluster.local)`,
        );
      if (via === 'variable' && balance.kind !== 'round_robin')
        warn(
          `${what}: nginx before 1.27.3 resolves its name per request and spreads requests round robin over its addresses; load-balance cannot apply`,
        );
    }
    return { action: { kind: 'proxy', upstream: name }, service };
  }

  /**
   * The DNS host of a Service port whose endpoints the sidecar answers (reload-free), or null when
   * its endpoints go into the files: reload mode; a variant whose answer depends on more than the
   * endpoints (`staticEndpoints`: the default-backend annotation's fallback takes over when there
   * are none, which translate decides; a consistent hash needs a `server` line per endpoint, see
   * variantOf); a TLS backend without the TLS 503 listener (HTTPS off); more ready endpoints
   * than one DNS answer carries (MAX_ANSWERED_ENDPOINTS);
   * names that are not DNS labels (a manifest file; the API allows no others).
   */
  private dynamicHost(
    b: BackendRef,
    port: number,
    variant: UpstreamVariant,
    ready: number,
  ): Upstream['dynamic'] | null {
    const d = this.opts.dynamic;
    if (!d || variant.staticEndpoints || ready > MAX_ANSWERED_ENDPOINTS) return null;
    const tls = variant.protocol === 'HTTPS' || variant.protocol === 'GRPCS';
    if (tls && !d.tls) return null;
    if (!isDnsLabel(b.namespace) || !isDnsLabel(b.service)) return null;
    return { host: serviceHost(b.namespace, b.service, port), tls };
  }

  /**
   * The ready endpoints of each dynamic upstream, from another snapshot: upstream name -> servers.
   * For an endpoint change, to answer it without translating again.
   */
  static endpointServers(snap: Snapshot, upstreams: readonly Upstream[]): Map<string, Upstream['servers']> {
    const index = new Backends(snap);
    const out = new Map<string, Upstream['servers']>();
    for (const u of upstreams) {
      if (!u.dynamic) continue;
      const [ref, portText] = splitService(u.service);
      const port = list(index.services.get(ref)?.spec?.ports).find((p) => p.port === Number(portText));
      const [namespace, service] = ref.split('/') as [string, string];
      out.set(u.name, port ? index.addresses(namespace, service, port).map((address) => ({ address })) : []);
    }
    return out;
  }

  /** addresses(), once per Service port and pass (several variants ask). */
  private readyAddresses(namespace: string, service: string, port: V1ServicePort): string[] {
    const key = `${namespace}/${service}:${port.port}`;
    let out = this.addressMemo.get(key);
    if (!out) this.addressMemo.set(key, (out = this.addresses(namespace, service, port)));
    return out;
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

export interface BackendOptions {
  resolver: readonly string[] | null;
  resolveInUpstream: boolean;
  /** Reload-free endpoints (dynamicEndpoints given); `tls`: dynamic TLS backends too (HTTPS on). */
  dynamic: { tls: boolean } | null;
}

/** `namespace/service:port` (Upstream.service) as its two parts. */
function splitService(s: string): [string, string] {
  const i = s.lastIndexOf(':');
  return [s.slice(0, i), s.slice(i + 1)];
}

/** How an Ingress's upstreams are built: one upstream per Service port and variant. */
export interface UpstreamVariant {
  protocol: IngressAnnotations['backendProtocol'];
  serviceUpstream: boolean;
  balance: Upstream['balance'];
  /** Endpoints in the files even in reload-free mode (see Backends.dynamicHost). */
  staticEndpoints?: boolean;
}

/** What an upstream's name says of how it balances (upstreams that balance differently differ). */
function balanceSuffix(balance: Upstream['balance']): string {
  switch (balance.kind) {
    case 'round_robin':
      return '';
    case 'least_conn':
      return '_ewma';
    case 'hash':
      return `_hash_${digest(balance.key, 8)}`;
    case 'sticky':
      return `_sticky_${digest(JSON.stringify(balance.cookie), 8)}`;
  }
}

/**
 * ingress-nginx's order: affinity, then upstream-hash-by, then load-balance. `cookiePath`: the
 * path of the Ingress path this upstream serves (defaultCookiePath), where affinity-mode
 * persistent sets its sticky cookie; null for an upstream that answers requests of other paths
 * too (a canary's, the default-backend annotation's error pages): a sticky cookie there would
 * replace the path's own cookie and lose the session, so it is hashed on the cookie instead.
 */
export function variantOf(a: IngressAnnotations, cookiePath: string | null = null): UpstreamVariant {
  const affinity = a.affinity;
  const balance: Upstream['balance'] = affinity
    ? affinity.mode === 'persistent' && cookiePath !== null
      ? { kind: 'sticky', cookie: stickyCookie(affinity, cookiePath) }
      : { kind: 'hash', key: `$${affinityKeyVariable(affinity.cookie)}` }
    : a.hashBy !== null
      ? { kind: 'hash', key: a.hashBy }
      : a.loadBalance === 'ewma'
        ? { kind: 'least_conn' }
        : { kind: 'round_robin' };
  // default-backend answers when the Service has no ready endpoints: that needs them in the files.
  // So does a consistent hash: nginx hashes onto `server` lines, and the peers one resolved name
  // gives all share its line, so among them it picks round robin (every request elsewhere).
  return {
    protocol: a.backendProtocol,
    serviceUpstream: a.serviceUpstream,
    balance,
    staticEndpoints: a.defaultBackend !== null || balance.kind === 'hash',
  };
}

/** What Backends needs of translate's options: --resolver, validated again (the model holds only what nginx takes; null: none), and the nginx syntax. */
export function backendOptions(opts: TranslateOptions): BackendOptions {
  return {
    resolver: resolverOf(opts),
    resolveInUpstream: resolveInUpstream(opts.nginxVersion),
    dynamic: opts.dynamicEndpoints ? { tls: opts.tls !== undefined } : null,
  };
}

function resolverOf(opts: TranslateOptions): string[] | null {
  const out = (opts.resolver ?? []).map((raw) => {
    const address = resolverAddress(raw);
    if (address === null) throw new Error(`translate: resolver ${JSON.stringify(raw)} is not an IP address[:port]`);
    return address;
  });
  return out.length > 0 ? out : null;
}

/** nginx 1.27.3 and later resolve a name in an upstream (`server NAME resolve`); absent or unknown: older syntax. */
function resolveInUpstream(nginxVersion: string | undefined): boolean {
  const v = nginxVersion === undefined ? null : parseNginxVersion(nginxVersion);
  return v !== null && versionAtLeast(v, UPSTREAM_RESOLVE_SINCE);
}
