// Reload-free endpoints: which mode a pass runs in, what the DNS responder answers for a model,
// and the endpoint-only pass that updates those answers without translating or rendering.
import type { EndpointTarget } from '../dns/answers.ts';
import { MAX_ANSWERED_ENDPOINTS } from '../dns/names.ts';
import type { RoutingModel, Upstream } from '../model.ts';
import { parseNginxVersion, UPSTREAM_RESOLVE_SINCE, versionAtLeast } from '../nginx/version.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import { Backends } from '../translate/backends.ts';

export type EndpointsMode = 'dns' | 'reload';

/** What the sidecar hands its DNS responder (src/dns/answers.ts EndpointAnswers). */
export interface EndpointAnswersSink {
  /** Every host the responder answers, with its targets (empty: the 503 listener). */
  replace(answers: Map<string, EndpointTarget[]>): void;
}

/**
 * The mode for the nginx that serves: `auto` takes dns where that nginx can; a forced `dns` on an
 * older (or unknown) nginx would render what it cannot load, so it is reload, with the reason.
 */
export function endpointsModeFor(
  flag: 'auto' | 'dns' | 'reload',
  nginxVersion: string | undefined,
): { mode: EndpointsMode; warning?: string } {
  if (flag === 'reload') return { mode: 'reload' };
  const v = nginxVersion === undefined ? null : parseNginxVersion(nginxVersion);
  if (v !== null && versionAtLeast(v, UPSTREAM_RESOLVE_SINCE)) return { mode: 'dns' };
  if (flag === 'auto') return { mode: 'reload' };
  return {
    mode: 'reload',
    warning: `--endpoints-mode dns needs nginx 1.27.3 or later to resolve upstream servers; the serving nginx is ${v ? v.join('.') : 'of an unknown version'}, so endpoint changes reload nginx`,
  };
}

/** The responder's answers for a model: each dynamic upstream's host and its ready endpoints. */
export function answersOf(model: RoutingModel): Map<string, EndpointTarget[]> {
  const out = new Map<string, EndpointTarget[]>();
  for (const u of model.upstreams) {
    if (!u.dynamic) continue;
    // Variants of one Service port (protocol, balancing) share the host and the endpoints.
    if (!out.has(u.dynamic.host))
      out.set(
        u.dynamic.host,
        u.servers.map((s) => targetOf(s.address)),
      );
  }
  return out;
}

/** Both answers at once: while a reload is under way, old workers still ask for the old hosts. */
export function unionOf(
  a: Map<string, EndpointTarget[]>,
  b: Map<string, EndpointTarget[]>,
): Map<string, EndpointTarget[]> {
  const out = new Map(a);
  for (const [host, targets] of b) out.set(host, targets);
  return out;
}

/** `ip:port` or `[ipv6]:port` (grammar.ts upstreamAddress) as a target. */
function targetOf(address: string): EndpointTarget {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i);
  return { ip: host.startsWith('[') ? host.slice(1, -1) : host, port: Number(address.slice(i + 1)) };
}

/**
 * The endpoint objects (EndpointSlices, Endpoints) of `services` (`namespace/name`) in `snap`, as
 * one string: equal strings, equal endpoints for those Services.
 */
export function endpointsSignature(snap: Snapshot, services: readonly string[]): string {
  if (services.length === 0) return '';
  const want = new Set(services);
  const parts: string[] = [];
  for (const es of snap.endpointSlices) {
    const svc: unknown = es.metadata?.labels?.['kubernetes.io/service-name'];
    const key = `${es.metadata?.namespace ?? 'default'}/${String(svc)}`;
    if (want.has(key)) parts.push(JSON.stringify([key, es.metadata?.name, es.ports, es.endpoints]));
  }
  for (const ep of snap.endpoints) {
    const key = `${ep.metadata?.namespace ?? 'default'}/${ep.metadata?.name}`;
    if (want.has(key)) parts.push(JSON.stringify([key, ep.subsets]));
  }
  return parts.sort().join('\n');
}

/**
 * The model with the ready endpoints of `snap`, when only dynamic upstreams' endpoints differ
 * (then only the answers change); null when a full pass is needed: the endpoints of a Service the
 * files depend on changed (`signature`: endpointsSignature() of the snapshot the model was
 * translated from: a canary's, default-backend's, a hash's, one that had none), or a dynamic
 * upstream outgrew what one answer carries.
 */
export function withEndpointsOf(
  model: RoutingModel,
  snap: Snapshot,
  signature: string,
): { model: RoutingModel; changed: string[] } | null {
  if (endpointsSignature(snap, model.endpointsInFiles ?? []) !== signature) return null;
  const current = Backends.endpointServers(snap, model.upstreams);
  const changed: string[] = [];
  const upstreams: Upstream[] = [];
  for (const u of model.upstreams) {
    const servers = current.get(u.name);
    if (servers === undefined || sameServers(servers, u.servers)) {
      upstreams.push(u);
      continue;
    }
    if (servers.length > MAX_ANSWERED_ENDPOINTS) return null;
    changed.push(u.name);
    upstreams.push({ ...u, servers });
  }
  return { model: changed.length === 0 ? model : { ...model, upstreams }, changed };
}

function sameServers(a: Upstream['servers'], b: Upstream['servers']): boolean {
  return a.length === b.length && a.every((s, i) => s.address === b[i]!.address);
}
