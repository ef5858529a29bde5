// Ingress status in cluster mode: every Ingress of our class carries the addresses clients reach
// us at in status.loadBalancer.ingress, from `--publish-service NS/NAME` (that Service's load
// balancer IPs or hostnames, else its cluster IPs) or `--publish-address ADDR[,ADDR]`.
//
// - Only the leader writes (one writer, no flapping between replicas); a replica that becomes
//   leader writes at once from the last sync it saw.
// - A write happens only when the addresses differ from what the Ingress already shows: a steady
//   cluster causes no writes at all. Our own write comes back through the watch as a change and
//   the next pass finds nothing to do; a pass that runs before the watch delivered it recognises
//   the object it patched (same resourceVersion) and does not write twice.
// - An Ingress that stops being ours (its class changed) and still shows our addresses is cleared.
//   "Ours" is recognised by the addresses we publish now or the ones we wrote to that very object
//   (by uid) earlier in this process. Ingresses of other classes are otherwise never touched.
// - Writes use the status subresource with a JSON merge patch (the list is replaced whole; null
//   removes it), so nothing but status.loadBalancer.ingress can change.
// - Errors are logged and retried with backoff, and on the next sync; nothing is thrown into the
//   sync pass that called us.

import {
  CoreV1Api,
  NetworkingV1Api,
  PatchStrategy,
  type ConfigurationOptions,
  type KubeConfig,
  type V1Ingress,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from '../ops/log.ts';
import type { RoutingModel } from '../model.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import { ingressKey, isOurs } from '../translate/index.ts';
import { IngressEventRecorder } from './events.ts';
import { LeaderElector, type Leadership } from './leader.ts';
import { httpStatus, requestOptions } from './api.ts';
import { RetryingWorker } from './retrying-worker.ts';

export {
  addrKey,
  normalize,
  parsePublishAddresses,
  parsePublishService,
  type LoadBalancerAddress,
  type PublishFrom,
} from './publish.ts';
import { addrKey, normalize, type LoadBalancerAddress, type PublishFrom } from './publish.ts';
import { describe } from '../errors.ts';

/** The addresses a publish Service stands for: load balancer IPs/hostnames, else its cluster IPs. */
export function serviceAddresses(svc: V1Service): LoadBalancerAddress[] {
  const lb = (svc.status?.loadBalancer?.ingress ?? []).flatMap((i) => {
    const a: LoadBalancerAddress = {};
    if (i.ip) a.ip = i.ip;
    if (i.hostname) a.hostname = i.hostname;
    return a.ip || a.hostname ? [a] : [];
  });
  if (lb.length > 0) return normalize(lb);
  if (svc.spec?.type === 'ExternalName' && svc.spec.externalName) return [{ hostname: svc.spec.externalName }];
  const ips = svc.spec?.clusterIPs?.length ? svc.spec.clusterIPs : svc.spec?.clusterIP ? [svc.spec.clusterIP] : [];
  return normalize(ips.filter((ip) => ip && ip !== 'None').map((ip) => ({ ip })));
}

export function sameAddresses(a: readonly LoadBalancerAddress[], b: readonly LoadBalancerAddress[]): boolean {
  const na = normalize(a).map(addrKey);
  const nb = normalize(b).map(addrKey);
  return na.length === nb.length && na.every((k, i) => k === nb[i]);
}

export function ingressAddresses(ing: V1Ingress): LoadBalancerAddress[] {
  return normalize(ing.status?.loadBalancer?.ingress ?? []);
}

export interface StatusChange {
  ingress: V1Ingress;
  /** The addresses to write; [] clears the list. */
  addresses: LoadBalancerAddress[];
  why: 'publish' | 'clear';
}

/**
 * Pure: which Ingresses need a status write. Ours get `addresses` when they show anything else;
 * the others are cleared only when they still show our addresses (now, or as we last wrote them to
 * that object: `wroteTo(uid)`).
 */
export function planStatus(
  snap: Pick<Snapshot, 'ingresses' | 'ingressClasses'>,
  ingressClass: string,
  addresses: readonly LoadBalancerAddress[],
  wroteTo: (uid: string) => readonly LoadBalancerAddress[] | undefined = () => undefined,
  withoutClass = false,
): StatusChange[] {
  const changes: StatusChange[] = [];
  const target = normalize(addresses);
  for (const ing of snap.ingresses) {
    const current = ingressAddresses(ing);
    if (isOurs(ing, ingressClass, snap.ingressClasses, withoutClass)) {
      if (!sameAddresses(current, target)) changes.push({ ingress: ing, addresses: target, why: 'publish' });
      continue;
    }
    if (current.length === 0) continue;
    const wrote = wroteTo(ing.metadata?.uid ?? '');
    if (
      (target.length > 0 && sameAddresses(current, target)) ||
      (wrote && wrote.length > 0 && sameAddresses(current, wrote))
    ) {
      changes.push({ ingress: ing, addresses: [], why: 'clear' });
    }
  }
  return changes.sort((a, b) => (ingressKey(a.ingress) < ingressKey(b.ingress) ? -1 : 1));
}

/** The calls the status writer makes (NetworkingV1Api and CoreV1Api fit; tests may fake them). */
export interface IngressStatusApi {
  patchNamespacedIngressStatus(
    p: { name: string; namespace: string; body: object },
    o?: ConfigurationOptions,
  ): Promise<V1Ingress>;
}
export interface ServiceReadApi {
  readNamespacedService(p: { name: string; namespace: string }, o?: ConfigurationOptions): Promise<V1Service>;
}

export interface StatusPublisherOptions {
  /** The API: a KubeConfig, or the two small interfaces directly. */
  kubeConfig?: KubeConfig;
  ingressApi?: IngressStatusApi;
  serviceApi?: ServiceReadApi;
  /** `--ingress-class`. */
  ingressClass: string;
  /** `--watch-ingress-without-class`: Ingresses that name no class are ours too. */
  watchIngressWithoutClass?: boolean;
  publish: PublishFrom;
  /** Only the leader writes. */
  leadership: Leadership;
  logger: Logger;
  retryBaseMs?: number;
  retryMaxMs?: number;
  requestTimeoutMs?: number;
}

interface Written {
  /** The resourceVersion the patch was applied to, and the one it produced. */
  from: string;
  to: string;
  addresses: LoadBalancerAddress[];
}

export class StatusPublisher {
  /** For tests and metrics: status writes made, and writes that failed. */
  readonly stats = { writes: 0, failures: 0 };
  private readonly opts: StatusPublisherOptions;
  private readonly ingressApi: IngressStatusApi;
  private readonly serviceApi: ServiceReadApi | null;
  private readonly log: Logger;
  private readonly worker: RetryingWorker;
  private readonly readOptions: ConfigurationOptions;
  private readonly patchOptions: ConfigurationOptions;
  private readonly unsubscribe: () => void;
  private latest: Snapshot | null = null;
  /** What we last wrote to each Ingress, by uid: to recognise our addresses and skip stale reads. */
  private written = new Map<string, Written>();
  /** The last problem finding the publish addresses, logged once until it changes. */
  private addressProblem = '';

  constructor(opts: StatusPublisherOptions) {
    this.opts = opts;
    this.log = opts.logger;
    const ingressApi = opts.ingressApi ?? opts.kubeConfig?.makeApiClient(NetworkingV1Api);
    if (!ingressApi) throw new Error('StatusPublisher needs kubeConfig or ingressApi');
    this.ingressApi = ingressApi;
    this.serviceApi = opts.serviceApi ?? opts.kubeConfig?.makeApiClient(CoreV1Api) ?? null;
    const timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.readOptions = requestOptions({ timeoutMs });
    this.patchOptions = requestOptions({ timeoutMs, contentType: PatchStrategy.MergePatch });
    this.worker = new RetryingWorker({
      job: () => this.pass(),
      logger: opts.logger,
      ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}),
      ...(opts.retryMaxMs !== undefined ? { retryMaxMs: opts.retryMaxMs } : {}),
    });
    // A new leader brings every Ingress up to date from the last sync it saw.
    this.unsubscribe = opts.leadership.onChange((leader) => {
      if (leader && this.latest) this.worker.kick();
    });
  }

  /** The afterSync hook: remember the objects, and bring status up to date when leading. */
  update(snapshot: Snapshot, _model?: RoutingModel): void {
    this.latest = snapshot;
    if (this.opts.leadership.isLeader()) this.worker.kick();
  }

  /** For tests: resolves when no pass is pending or running. */
  idle(): Promise<void> {
    return this.worker.idle();
  }

  async stop(): Promise<void> {
    this.unsubscribe();
    await this.worker.stop();
  }

  /** One pass over the last snapshot; false when something failed and should be retried. */
  private async pass(): Promise<boolean> {
    const snap = this.latest;
    if (!snap || !this.opts.leadership.isLeader()) return true;
    const addresses = await this.publishAddresses(snap);
    if (!addresses) return false;
    const uids = new Set(snap.ingresses.map((i) => i.metadata?.uid ?? ''));
    for (const uid of this.written.keys()) if (!uids.has(uid)) this.written.delete(uid);

    let ok = true;
    for (const change of planStatus(
      snap,
      this.opts.ingressClass,
      addresses,
      (uid) => this.written.get(uid)?.addresses,
      this.opts.watchIngressWithoutClass,
    )) {
      // Leadership can end mid-pass (renew deadline, SIGTERM): the next leader takes over.
      if (!this.opts.leadership.isLeader()) return true;
      const ing = change.ingress;
      const uid = ing.metadata?.uid ?? '';
      const rv = ing.metadata?.resourceVersion ?? '';
      const prior = this.written.get(uid);
      // The snapshot still holds the object we patched (the watch has not delivered our write yet).
      if (prior && prior.from === rv && sameAddresses(prior.addresses, change.addresses)) continue;
      const result = await this.write(ing, change);
      if (result === 'unreachable') return false; // the API is away: the retry redoes the pass
      if (result === 'failed') ok = false;
    }
    return ok;
  }

  private async write(ing: V1Ingress, change: StatusChange): Promise<'ok' | 'failed' | 'unreachable'> {
    const namespace = ing.metadata?.namespace ?? 'default';
    const name = ing.metadata?.name ?? '';
    const uid = ing.metadata?.uid ?? '';
    const body = { status: { loadBalancer: { ingress: change.addresses.length > 0 ? change.addresses : null } } };
    try {
      const updated = await this.ingressApi.patchNamespacedIngressStatus({ name, namespace, body }, this.patchOptions);
      this.stats.writes++;
      // A write that cleared the list is remembered with no addresses: nothing left to recognise.
      if (change.why === 'clear') this.written.delete(uid);
      else
        this.written.set(uid, {
          from: ing.metadata?.resourceVersion ?? '',
          to: updated.metadata?.resourceVersion ?? '',
          addresses: change.addresses,
        });
      this.log.info(
        change.why === 'clear' ? 'Ingress status cleared (no longer of our class)' : 'Ingress status updated',
        {
          ingress: `${namespace}/${name}`,
          addresses: change.addresses.map((a) => a.ip ?? a.hostname),
        },
      );
      return 'ok';
    } catch (err) {
      const status = httpStatus(err);
      if (status === 404) return 'ok'; // deleted meanwhile: nothing to do
      this.stats.failures++;
      this.log.error('could not write Ingress status; will retry', {
        ingress: `${namespace}/${name}`,
        error: describe(err),
      });
      return status === undefined || status >= 500 || status === 429 ? 'unreachable' : 'failed';
    }
  }

  /** The addresses to publish now, or null (logged) when they cannot be known. */
  private async publishAddresses(snap: Snapshot): Promise<LoadBalancerAddress[] | null> {
    const p = this.opts.publish;
    if (p.kind === 'addresses') return normalize(p.addresses);
    // The source's cache holds the Service when it watches its namespace; else ask the API.
    let svc = snap.services.find((s) => s.metadata?.namespace === p.namespace && s.metadata?.name === p.name);
    let problem = '';
    if (!svc && this.serviceApi) {
      try {
        svc = await this.serviceApi.readNamespacedService({ name: p.name, namespace: p.namespace }, this.readOptions);
      } catch (err) {
        problem =
          httpStatus(err) === 404
            ? 'the publish Service does not exist'
            : `could not read the publish Service: ${describe(err)}`;
      }
    } else if (!svc) {
      problem = 'the publish Service does not exist';
    }
    if (problem) {
      if (problem !== this.addressProblem) {
        this.log.warn('Ingress status not written; will retry', {
          publishService: `${p.namespace}/${p.name}`,
          reason: problem,
        });
      }
      this.addressProblem = problem;
      return null;
    }
    this.addressProblem = '';
    return serviceAddresses(svc!);
  }
}

export interface ClusterWritersOptions {
  kubeConfig: KubeConfig;
  /** `--ingress-class`. */
  ingressClass: string;
  /** `--watch-ingress-without-class`. */
  watchIngressWithoutClass?: boolean;
  /** From `--publish-service` / `--publish-address`; null (also `--update-status=false`) writes no status and elects no leader. */
  publish: PublishFrom | null;
  /** `--election-id`: the Lease's name. */
  electionId: string;
  /** POD_NAME: the leader-election identity and the Events' reportingInstance. */
  podName: string;
  /** POD_NAMESPACE: where the Lease lives. */
  podNamespace: string;
  /** NODE_NAME, when the Deployment passes it: the Events' source.host. */
  nodeName?: string;
  /** Whether to record Events (default true). */
  events?: boolean;
  logger: Logger;
  /** For tests: leader-election timings. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

export interface ClusterWriters {
  /** Pass as SidecarOptions.afterSync. Never throws. */
  afterSync: (snapshot: Snapshot, model: RoutingModel) => void;
  leader: LeaderElector | null;
  status: StatusPublisher | null;
  events: IngressEventRecorder | null;
  /** Stops status writes, steps down and releases the Lease, and lets pending Events finish. */
  stop(): Promise<void>;
}

/**
 * Everything cluster mode writes back to the API, wired: leader election (when status is
 * published), Ingress status from the leader, Events from every replica. Resolves after the first
 * leader-election attempt.
 */
export async function startClusterWriters(opts: ClusterWritersOptions): Promise<ClusterWriters> {
  const log = opts.logger;
  const leader = opts.publish
    ? new LeaderElector({
        kubeConfig: opts.kubeConfig,
        namespace: opts.podNamespace,
        name: opts.electionId,
        identity: opts.podName,
        logger: log,
        ...(opts.leaseDurationMs !== undefined ? { leaseDurationMs: opts.leaseDurationMs } : {}),
        ...(opts.renewDeadlineMs !== undefined ? { renewDeadlineMs: opts.renewDeadlineMs } : {}),
        ...(opts.retryPeriodMs !== undefined ? { retryPeriodMs: opts.retryPeriodMs } : {}),
      })
    : null;
  const status =
    opts.publish && leader
      ? new StatusPublisher({
          kubeConfig: opts.kubeConfig,
          ingressClass: opts.ingressClass,
          ...(opts.watchIngressWithoutClass ? { watchIngressWithoutClass: true } : {}),
          publish: opts.publish,
          leadership: leader,
          logger: log,
        })
      : null;
  const events =
    opts.events === false
      ? null
      : new IngressEventRecorder({
          kubeConfig: opts.kubeConfig,
          instance: opts.podName,
          ...(opts.nodeName ? { host: opts.nodeName } : {}),
          logger: log,
        });
  await leader?.start();
  return {
    afterSync: (snapshot, model) => {
      // Called from inside a sync pass: whatever happens here must not fail the pass.
      try {
        status?.update(snapshot, model);
      } catch (err) {
        log.error('Ingress status: unexpected error', { error: describe(err) });
      }
      try {
        events?.record(snapshot, model);
      } catch (err) {
        log.error('Events: unexpected error', { error: describe(err) });
      }
    },
    leader,
    status,
    events,
    stop: async () => {
      await status?.stop();
      await leader?.stop();
      await events?.stop();
    },
  };
}
