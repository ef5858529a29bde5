// Events on Ingresses, so that `kubectl describe ingress` says what the sidecar made of it:
// - Warning `Rejected` (nothing of it is served) and Warning `PartlyRejected` (served, less what
//   the message names), one Event per reason, the reason a user can act on as the message;
// - Normal `Served` when the Ingress first serves a route.
//
// No storms. An Event is recorded when its condition *appears* (it was not there in the previous
// sync), not on every sync while it lasts. A condition that goes away and comes back is a repeat:
// the existing Event's count and lastTimestamp are bumped, at most once a minute per Event (a repeat
// within the minute is only counted, and the count travels with the next bump, if one comes).
// What has been recorded is remembered in a bounded LRU cache (4096 conditions, the size of
// client-go's event correlator cache).
//
// Every replica records, not only the leader: rejections are computed by each replica from the
// same objects, Events keep flowing while leadership changes hands, and an Ingress that only one
// replica's nginx refused is reported by that replica. Replicas (and restarts) do not duplicate
// each other because an Event's name is derived from what it says (Ingress name and a hash of its
// uid, type, reason and message): the second create of the same Event gets 409 AlreadyExists and
// counts as recorded. This needs only `create` and `patch` on events, never `get` or `list`.

import { createHash } from 'node:crypto';
import {
  CoreV1Api,
  PatchStrategy,
  type ConfigurationOptions,
  type CoreV1Event,
  type KubeConfig,
  type V1Ingress,
} from '@kubernetes/client-node';
import type { Logger } from '../ops/log.ts';
import type { RoutingModel } from '../model.ts';
import type { Snapshot } from '../sources/snapshot.ts';
import { ingressKey } from '../translate/index.ts';
import { httpStatus, requestOptions } from './api.ts';
import { RetryingWorker } from './retrying-worker.ts';
import { describe } from '../errors.ts';

export const EVENT_COMPONENT = 'ingress-sidecar';
export const SERVED_MESSAGE = 'Its routes are served by ingress-sidecar';
/** The API server accepts longer messages; people read the first lines. */
const MAX_MESSAGE = 1024;

export type EventType = 'Normal' | 'Warning';
export type EventReason = 'Rejected' | 'PartlyRejected' | 'Served';

/** An Event that the current state calls for. */
export interface EventIntent {
  /** Identity for deduplication: Ingress (by uid), type, reason, message. */
  key: string;
  /** The Event object's name: stable for the same key, so replicas and restarts converge on it. */
  name: string;
  ingress: V1Ingress;
  type: EventType;
  reason: EventReason;
  message: string;
}

/** Pure: the Events the model calls for, one per (Ingress, type, reason, message), sorted by key. */
export function eventIntents(
  snap: Pick<Snapshot, 'ingresses'>,
  model: Pick<RoutingModel, 'rejections' | 'served'>,
): EventIntent[] {
  const byKey = new Map<string, V1Ingress>();
  for (const ing of snap.ingresses) byKey.set(ingressKey(ing), ing);
  const out = new Map<string, EventIntent>();
  const add = (ingKey: string, type: EventType, reason: EventReason, rawMessage: string) => {
    const ing = byKey.get(ingKey);
    if (!ing) return;
    const message = rawMessage.length > MAX_MESSAGE ? `${rawMessage.slice(0, MAX_MESSAGE - 3)}...` : rawMessage;
    const key = [ingKey, ing.metadata?.uid ?? '', type, reason, message].join('\u0000');
    out.set(key, { key, name: eventName(ing, key), ingress: ing, type, reason, message });
  };
  for (const r of model.rejections)
    add(r.ingress, 'Warning', r.severity === 'rejected' ? 'Rejected' : 'PartlyRejected', r.reason);
  for (const s of model.served) add(s, 'Normal', 'Served', SERVED_MESSAGE);
  return [...out.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** `<ingress name>.<16 hex>`, a valid object name (at most 253 characters) for any Ingress name. */
export function eventName(ing: V1Ingress, key: string): string {
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 16);
  const base = (ing.metadata?.name ?? 'ingress').slice(0, 253 - 17).replace(/[-.]+$/, '');
  return `${base || 'ingress'}.${hash}`;
}

/** The calls the recorder makes (CoreV1Api fits; tests may fake it). */
export interface EventApi {
  createNamespacedEvent(p: { namespace: string; body: CoreV1Event }, o?: ConfigurationOptions): Promise<CoreV1Event>;
  patchNamespacedEvent(
    p: { name: string; namespace: string; body: object },
    o?: ConfigurationOptions,
  ): Promise<CoreV1Event>;
}

export interface IngressEventRecorderOptions {
  kubeConfig?: KubeConfig;
  api?: EventApi;
  /** reportingInstance: the pod name. */
  instance: string;
  /** source.host: the node name, when known (NODE_NAME from the downward API). */
  host?: string;
  logger: Logger;
  /** Repeats bump an Event at most this often. Default 60 s. */
  repeatIntervalMs?: number;
  /** How many recorded conditions are remembered. Default 4096. */
  cacheSize?: number;
  /** How many unwritten appearances are kept while the API does not answer. Default 16384. */
  queueSize?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  requestTimeoutMs?: number;
  /** For tests: the clock. */
  now?: () => number;
}

interface Recorded {
  name: string;
  namespace: string;
  /** How often the condition appeared (as far as this process knows). */
  count: number;
  /** When the count was last written (creation included). */
  writtenAt: number;
}

export class IngressEventRecorder {
  /** For tests and metrics. */
  readonly stats = { created: 0, bumped: 0, alreadyExisted: 0, failures: 0 };
  private readonly api: EventApi;
  private readonly opts: IngressEventRecorderOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly repeatMs: number;
  private readonly cacheSize: number;
  private readonly queueSize: number;
  private readonly worker: RetryingWorker;
  private readonly createOptions: ConfigurationOptions;
  private readonly patchOptions: ConfigurationOptions;
  /** Conditions present in the last sync. */
  private present = new Set<string>();
  /** Appearances waiting to be written, in order; a failed write stays here for the retry. */
  private queue = new Map<string, EventIntent>();
  /** What has been recorded, least recently used first. */
  private recorded = new Map<string, Recorded>();

  constructor(opts: IngressEventRecorderOptions) {
    this.opts = opts;
    this.log = opts.logger;
    const api = opts.api ?? opts.kubeConfig?.makeApiClient(CoreV1Api);
    if (!api) throw new Error('IngressEventRecorder needs kubeConfig or api');
    this.api = api;
    this.now = opts.now ?? Date.now;
    this.repeatMs = opts.repeatIntervalMs ?? 60_000;
    this.cacheSize = opts.cacheSize ?? 4096;
    this.queueSize = opts.queueSize ?? 16_384;
    const timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.createOptions = requestOptions({ timeoutMs });
    this.patchOptions = requestOptions({ timeoutMs, contentType: PatchStrategy.MergePatch });
    this.worker = new RetryingWorker({
      job: () => this.drain(),
      logger: opts.logger,
      ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}),
      ...(opts.retryMaxMs !== undefined ? { retryMaxMs: opts.retryMaxMs } : {}),
    });
  }

  /** The afterSync hook: queue an Event for every condition that appeared since the last sync. */
  record(snapshot: Snapshot, model: RoutingModel): void {
    const intents = eventIntents(snapshot, model);
    const now = new Set<string>();
    for (const intent of intents) {
      now.add(intent.key);
      if (!this.present.has(intent.key)) this.queue.set(intent.key, intent);
    }
    this.present = now;
    // Bounded even when the API stays away: the oldest unwritten appearances go first.
    let dropped = 0;
    for (const key of this.queue.keys()) {
      if (this.queue.size <= this.queueSize) break;
      this.queue.delete(key);
      dropped++;
    }
    if (dropped > 0) this.log.warn('Events dropped: too many waiting to be written', { dropped });
    if (this.queue.size > 0) this.worker.kick();
  }

  /** For tests: resolves when nothing is queued or being written. */
  idle(): Promise<void> {
    return this.worker.idle();
  }

  async stop(): Promise<void> {
    await this.worker.stop();
  }

  private async drain(): Promise<boolean> {
    for (const [key, intent] of [...this.queue]) {
      const result = await this.write(intent);
      if (result === 'retry') return false; // the API is away: keep the rest for the retry
      this.queue.delete(key);
    }
    return true;
  }

  /**
   * Records one appearance. `retry` when the API did not answer or asked us to come back (network,
   * 5xx, 429); `done` otherwise, including a refusal of this one Event (e.g. 403 in a namespace
   * being deleted), which is logged and not retried.
   */
  private async write(intent: EventIntent): Promise<'done' | 'retry'> {
    const prior = this.recorded.get(intent.key);
    const namespace = intent.ingress.metadata?.namespace ?? 'default';
    try {
      if (!prior) {
        await this.create(intent, 1);
        return 'done';
      }
      // A repeat. Touch the LRU entry; write at most once per interval.
      this.recorded.delete(intent.key);
      this.recorded.set(intent.key, prior);
      prior.count++;
      const at = this.now();
      if (at - prior.writtenAt < this.repeatMs) return 'done';
      try {
        await this.api.patchNamespacedEvent(
          { name: prior.name, namespace, body: { count: prior.count, lastTimestamp: new Date(at).toISOString() } },
          this.patchOptions,
        );
        prior.writtenAt = at;
        this.stats.bumped++;
      } catch (err) {
        if (httpStatus(err) !== 404) {
          prior.count--; // counted again on the retry
          throw err;
        }
        // The Event expired (the API server keeps Events for an hour by default): record it anew.
        this.recorded.delete(intent.key);
        await this.create(intent, 1);
      }
      return 'done';
    } catch (err) {
      this.stats.failures++;
      const status = httpStatus(err);
      const retry = status === undefined || status >= 500 || status === 429;
      this.log.warn(retry ? 'could not record an Event; will retry' : 'the API refused an Event', {
        ingress: ingressKey(intent.ingress),
        reason: intent.reason,
        error: describe(err),
      });
      return retry ? 'retry' : 'done';
    }
  }

  private async create(intent: EventIntent, count: number): Promise<void> {
    const ing = intent.ingress;
    const namespace = ing.metadata?.namespace ?? 'default';
    const at = new Date(this.now());
    const body: CoreV1Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: intent.name, namespace },
      involvedObject: {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'Ingress',
        namespace,
        name: ing.metadata?.name ?? '',
        ...(ing.metadata?.uid ? { uid: ing.metadata.uid } : {}),
        ...(ing.metadata?.resourceVersion ? { resourceVersion: ing.metadata.resourceVersion } : {}),
      },
      type: intent.type,
      reason: intent.reason,
      message: intent.message,
      count,
      firstTimestamp: at,
      lastTimestamp: at,
      source: { component: EVENT_COMPONENT, ...(this.opts.host ? { host: this.opts.host } : {}) },
      reportingComponent: EVENT_COMPONENT,
      reportingInstance: this.opts.instance,
    };
    try {
      await this.api.createNamespacedEvent({ namespace, body }, this.createOptions);
      this.stats.created++;
    } catch (err) {
      // Another replica, or this sidecar before a restart, recorded the same Event.
      if (httpStatus(err) !== 409) throw err;
      this.stats.alreadyExisted++;
    }
    this.remember(intent.key, { name: intent.name, namespace, count, writtenAt: at.getTime() });
  }

  private remember(key: string, r: Recorded): void {
    this.recorded.delete(key);
    this.recorded.set(key, r);
    for (const k of this.recorded.keys()) {
      if (this.recorded.size <= this.cacheSize) break;
      this.recorded.delete(k);
    }
  }
}
