// Leader election on a coordination.k8s.io/v1 Lease, so that exactly one replica writes Ingress
// status. client-node v2 ships no leader-election helper, so this follows client-go's
// leaderelection package (the algorithm every Kubernetes controller uses):
// - every retry period a candidate reads the Lease; it takes it when nobody holds it, when the
//   holder released it (empty holderIdentity), or when the holder's record has not changed for a
//   whole lease duration *as observed by this process's own clock* (no cross-node clock
//   comparison: renewTime is only used to notice that the record changed);
// - every write is a replace carrying the resourceVersion that was read (optimistic concurrency),
//   so two candidates can never both win: the loser gets 409 Conflict;
// - the leader renews every retry period and steps down by itself when it could not renew for the
//   renew deadline, which is shorter than the lease duration, so it stops writing before anyone
//   else may take over;
// - stop() steps down, then releases the Lease (holder cleared, duration 1 s) so that another
//   replica takes over at its next retry instead of waiting for the lease to expire.

import {
  CoordinationV1Api,
  V1MicroTime,
  type ConfigurationOptions,
  type KubeConfig,
  type V1Lease,
} from '@kubernetes/client-node';
import type { Logger } from '../ops/log.ts';
import { httpStatus, requestOptions } from './api.ts';
import { describe } from '../errors.ts';

export { DEFAULT_ELECTION_ID } from './publish.ts';

/** The three Lease calls the elector makes (a CoordinationV1Api fits; tests use a fake). */
export interface LeaseApi {
  readNamespacedLease(p: { name: string; namespace: string }, o?: ConfigurationOptions): Promise<V1Lease>;
  createNamespacedLease(p: { namespace: string; body: V1Lease }, o?: ConfigurationOptions): Promise<V1Lease>;
  replaceNamespacedLease(
    p: { name: string; namespace: string; body: V1Lease },
    o?: ConfigurationOptions,
  ): Promise<V1Lease>;
}

/** What the status writer needs to know about leadership. */
export interface Leadership {
  isLeader(): boolean;
  /** Called with the new state on every change; returns an unsubscribe function. */
  onChange(cb: (leader: boolean) => void): () => void;
}

export interface LeaderElectorOptions {
  /** The API: give a KubeConfig, or a LeaseApi directly. */
  kubeConfig?: KubeConfig;
  api?: LeaseApi;
  /** The Lease's namespace: the sidecar's own (POD_NAMESPACE). */
  namespace: string;
  /** The Lease's name: `--election-id`. */
  name: string;
  /** This replica's identity: the pod name. Must differ between replicas. */
  identity: string;
  /** How long a holder's claim is valid without renewal. Default 15 s (whole seconds on the wire). */
  leaseDurationMs?: number;
  /** The leader steps down when it could not renew for this long. Default 10 s. */
  renewDeadlineMs?: number;
  /** How often candidates try and the leader renews. Default 2 s. */
  retryPeriodMs?: number;
  logger: Logger;
  /** For tests: the clock. */
  now?: () => number;
}

type Attempt = 'leader' | 'held' | 'failed';

export class LeaderElector implements Leadership {
  private readonly api: LeaseApi;
  private readonly opts: Required<
    Pick<
      LeaderElectorOptions,
      'namespace' | 'name' | 'identity' | 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'
    >
  >;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly callOptions: ConfigurationOptions;
  private readonly listeners = new Set<(leader: boolean) => void>();
  private leader = false;
  private running = false;
  private loopDone: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** The last Lease read or written, for the next replace (its resourceVersion). */
  private lease: V1Lease | null = null;
  /** The holder's record as last seen, and when this process first saw it (its own clock). */
  private observedRecord = '';
  private observedAt = 0;
  private lastRenew = 0;
  private lastHolder: string | undefined;
  private deadline: NodeJS.Timeout | null = null;
  /** The error of the current run of failed attempts, '' when the last one succeeded. */
  private failing = '';

  constructor(opts: LeaderElectorOptions) {
    if (!opts.identity) throw new Error('leader election needs an identity (the pod name)');
    if (!opts.namespace) throw new Error('leader election needs a namespace (POD_NAMESPACE)');
    if (!opts.name) throw new Error('leader election needs a Lease name (--election-id)');
    const api = opts.api ?? opts.kubeConfig?.makeApiClient(CoordinationV1Api);
    if (!api) throw new Error('LeaderElector needs kubeConfig or api');
    this.api = api;
    this.opts = {
      namespace: opts.namespace,
      name: opts.name,
      identity: opts.identity,
      leaseDurationMs: opts.leaseDurationMs ?? 15_000,
      renewDeadlineMs: opts.renewDeadlineMs ?? 10_000,
      retryPeriodMs: opts.retryPeriodMs ?? 2_000,
    };
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = this.opts;
    if (!(leaseDurationMs > renewDeadlineMs && renewDeadlineMs > retryPeriodMs && retryPeriodMs > 0)) {
      throw new Error('leader election needs lease duration > renew deadline > retry period > 0');
    }
    this.log = opts.logger;
    this.now = opts.now ?? Date.now;
    // A request may not outlive the time the leader has left to renew.
    this.callOptions = requestOptions({
      timeoutMs: Math.max(1000, Math.min(renewDeadlineMs - retryPeriodMs, retryPeriodMs * 2)),
    });
  }

  /** False as soon as the renew deadline has passed, even before the loop has noticed. */
  isLeader(): boolean {
    return this.leader && this.now() - this.lastRenew < this.opts.renewDeadlineMs;
  }

  /** The holder the Lease named when last read (this replica's identity when it leads). */
  holder(): string | undefined {
    return this.lastHolder;
  }

  onChange(cb: (leader: boolean) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Starts campaigning; resolves after the first attempt (so a lone replica leads on return). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    let first!: () => void;
    const firstDone = new Promise<void>((resolve) => (first = resolve));
    this.loopDone = this.loop(first);
    await firstDone;
  }

  /** Steps down (listeners hear `false` first), then releases the Lease for the next replica. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    // Step down before anything else: writers stop at once, even while a request is in flight.
    this.setLeader(false);
    this.wake?.();
    await this.loopDone;
    await this.release();
  }

  private async loop(first: () => void): Promise<void> {
    while (this.running) {
      let result: Attempt;
      // The renew counts from before the request: the Lease's renewTime is stamped then too.
      const attemptStart = this.now();
      try {
        result = await this.tryAcquireOrRenew();
        if (this.failing) {
          this.failing = '';
          this.log.info('leader election: the Lease is reachable again', {
            lease: `${this.opts.namespace}/${this.opts.name}`,
          });
        }
      } catch (err) {
        result = 'failed';
        // Once per outage (and when the error changes), not every retry period.
        const error = describe(err);
        if (error !== this.failing) {
          this.log.warn('leader election: could not read or write the Lease; will retry', {
            lease: `${this.opts.namespace}/${this.opts.name}`,
            error,
          });
        }
        this.failing = error;
      }
      if (!this.running) {
        // stop() was called meanwhile; it releases the Lease if this attempt took it.
        first();
        break;
      }
      if (result === 'leader') {
        this.lastRenew = attemptStart;
        this.setLeader(true);
        this.armDeadline();
      } else if (this.leader && result === 'held') {
        this.stepDown(`the Lease is held by ${this.lastHolder ?? 'another replica'}`);
      }
      first();
      // Candidates jitter (as client-go does) so that replicas do not retry in lockstep.
      const wait = this.leader ? this.opts.retryPeriodMs : this.opts.retryPeriodMs * (1 + Math.random() * 0.2);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, wait);
        t.unref(); // the process lives for its sources and servers, not for this loop
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  private async tryAcquireOrRenew(): Promise<Attempt> {
    const { namespace, name, identity } = this.opts;
    const leaseSeconds = Math.max(1, Math.ceil(this.opts.leaseDurationMs / 1000));
    const stamp = new V1MicroTime(this.now());
    let current: V1Lease;
    try {
      current = await this.api.readNamespacedLease({ name, namespace }, this.callOptions);
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
      try {
        this.lease = await this.api.createNamespacedLease(
          {
            namespace,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name, namespace },
              spec: {
                holderIdentity: identity,
                leaseDurationSeconds: leaseSeconds,
                acquireTime: stamp,
                renewTime: stamp,
                leaseTransitions: 0,
              },
            },
          },
          this.callOptions,
        );
      } catch (createErr) {
        if (httpStatus(createErr) === 409) return 'held'; // another replica created it first
        throw createErr;
      }
      this.lastHolder = identity;
      this.log.info('leader election: created the Lease and took the lead', {
        lease: `${namespace}/${name}`,
        identity,
      });
      return 'leader';
    }

    this.lease = current;
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    this.lastHolder = holder || undefined;
    const now = this.now();
    const record = JSON.stringify([
      holder,
      String(spec.renewTime ?? ''),
      spec.leaseDurationSeconds ?? 0,
      spec.leaseTransitions ?? 0,
    ]);
    if (record !== this.observedRecord) {
      this.observedRecord = record;
      this.observedAt = now;
    }
    const holderMs = (spec.leaseDurationSeconds ?? leaseSeconds) * 1000;
    if (holder !== '' && holder !== identity && now < this.observedAt + holderMs) return 'held';

    const taking = holder !== identity;
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: current.metadata ?? { name, namespace },
      spec: taking
        ? {
            holderIdentity: identity,
            leaseDurationSeconds: leaseSeconds,
            acquireTime: stamp,
            renewTime: stamp,
            leaseTransitions: (spec.leaseTransitions ?? 0) + 1,
          }
        : { ...spec, leaseDurationSeconds: leaseSeconds, renewTime: stamp },
    };
    try {
      this.lease = await this.api.replaceNamespacedLease({ name, namespace, body }, this.callOptions);
    } catch (err) {
      // The Lease changed since we read it: the next read tells by whom. Not a reason to step down
      // yet (it may have been our own earlier write whose answer was lost); the deadline decides.
      if (httpStatus(err) === 409) return 'failed';
      throw err;
    }
    this.lastHolder = identity;
    if (taking) {
      this.log.info('leader election: took the lead', {
        lease: `${namespace}/${name}`,
        identity,
        ...(holder ? { previous: holder } : {}),
      });
    }
    return 'leader';
  }

  /** Clears the holder so that the next candidate takes over at once, without waiting for expiry. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.opts;
    const lease = this.lease;
    if (!lease || lease.spec?.holderIdentity !== identity) return;
    const stamp = new V1MicroTime(this.now());
    try {
      await this.api.replaceNamespacedLease(
        {
          name,
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: lease.metadata ?? { name, namespace },
            spec: {
              holderIdentity: '',
              leaseDurationSeconds: 1,
              acquireTime: stamp,
              renewTime: stamp,
              leaseTransitions: lease.spec?.leaseTransitions ?? 0,
            },
          },
        },
        this.callOptions,
      );
      this.log.info('leader election: released the Lease', { lease: `${namespace}/${name}`, identity });
    } catch (err) {
      // A conflict means someone already took over; anything else leaves the Lease to expire.
      if (httpStatus(err) !== 409) {
        this.log.warn('leader election: could not release the Lease; it expires by itself', {
          lease: `${namespace}/${name}`,
          error: describe(err),
        });
      }
    }
  }

  /**
   * Steps down when the renew deadline passes without a renewal, by a timer rather than after the
   * next attempt returns: a request that hangs must not keep this replica leading past it.
   */
  private armDeadline(): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(
      () => {
        this.deadline = null;
        if (this.leader && this.now() - this.lastRenew >= this.opts.renewDeadlineMs)
          this.stepDown('could not renew the Lease before the renew deadline');
        else if (this.leader) this.armDeadline();
      },
      Math.max(0, this.lastRenew + this.opts.renewDeadlineMs - this.now()),
    );
    this.deadline.unref();
  }

  private stepDown(reason: string): void {
    if (!this.leader) return;
    this.log.warn('leader election: lost the lead', { lease: `${this.opts.namespace}/${this.opts.name}`, reason });
    this.setLeader(false);
  }

  private setLeader(leader: boolean): void {
    if (!leader && this.deadline) {
      clearTimeout(this.deadline);
      this.deadline = null;
    }
    if (this.leader === leader) return;
    this.leader = leader;
    for (const cb of [...this.listeners]) {
      try {
        cb(leader);
      } catch (err) {
        this.log.error('leader election: a listener failed', { error: describe(err) });
      }
    }
  }
}
