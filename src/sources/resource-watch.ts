// One watched resource of the Kubernetes source: its ListWatch, and the restarts after it fails.
//
// Failures. client-node's ListWatch relists by itself on 410 Gone and reconnects a watch that
// ends or times out, but on any other error (the API server restarting, a refused connection, a
// 403) it emits 'error' and stops for good. Restarting is ours: each resource is restarted with
// a jittered exponential backoff (RETRY), and every restart is a *fresh* ListWatch whose first
// list replaces the cache, so objects deleted during an outage disappear once the API answers
// again. Until that relist succeeds, the last cache keeps serving: routes survive an API outage.
// Each outage is logged once (error) and its end once (info), per resource, not every retry.
import { ListWatch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../ops/log.ts';
import type { Snapshot } from './snapshot.ts';
import { fingerprint, slim, TypedWatch, type Resource } from './kube-resources.ts';
import { describe } from '../errors.ts';

/**
 * Restart backoff: 500 ms doubling to 5 s, each delay jittered by +-20%. The ceiling bounds how
 * long routes lag behind the API after an outage; six watches retrying every ~5 s cost the
 * API server about one request a second meanwhile.
 */
export const RETRY = { initialMs: 500, maxMs: 5_000, jitter: 0.2 } as const;

/** The delay before retry number `attempt` (0 for the first), jittered by `random` in [0, 1). */
export function backoffDelay(
  attempt: number,
  random: number = Math.random(),
  retry: { initialMs: number; maxMs: number } = RETRY,
): number {
  const base = Math.min(retry.maxMs, retry.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - RETRY.jitter + 2 * RETRY.jitter * random));
}

/** What the source needs from its owner, per resource. */
export interface Owner {
  readonly logger: Logger;
  readonly kubeConfig: KubeConfig;
  readonly retry: { initialMs: number; maxMs: number };
  /** `field`: which part of the snapshot changed. */
  changed(field: keyof Snapshot): void;
  failed(err: Error): void;
}

/**
 * One resource: the ListWatch whose cache serves snapshots (`current`), and the restarts after it
 * fails. A restart builds a new ListWatch; its first list is compared with the cache it replaces,
 * so what changed while nothing was watching (deletions included) is reported once.
 */
export class ResourceWatch {
  readonly res: Resource;
  private readonly owner: Owner;
  /** The ListWatch whose cache is served; undefined until the first list succeeded. */
  private current: ListWatch<KubernetesObject> | undefined;
  /** A ListWatch being started to replace `current`. */
  private attempt: ListWatch<KubernetesObject> | undefined;
  /** Per namespace/name, what about the object counts as a change (see fingerprint()). */
  private fingerprints = new Map<string, string>();
  private failures = 0;
  private failingSince: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  /** ListWatches already counted as failed: one ListWatch can report more than one error. */
  private readonly dead = new WeakSet<ListWatch<KubernetesObject>>();
  private resolveSynced!: () => void;
  private rejectSynced!: (err: Error) => void;
  /** Resolves on the first successful list; rejects if stopped before. */
  readonly synced: Promise<void>;

  constructor(res: Resource, owner: Owner) {
    this.res = res;
    this.owner = owner;
    this.synced = new Promise<void>((resolve, reject) => {
      this.resolveSynced = resolve;
      this.rejectSynced = reject;
    });
    // Nobody may be waiting yet (stop() during discovery): the rejection must not go unhandled.
    this.synced.catch(() => {});
  }

  start(): void {
    this.running = this.run();
  }

  list(): KubernetesObject[] {
    return [...(this.current?.list() ?? [])];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.rejectSynced(new Error(`stopped before the first list of ${this.res.plural}`));
    await Promise.all([this.current?.stop(), this.attempt?.stop()]);
    await this.running;
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const { res } = this;
    const listFn = async () => {
      const list = await res.list();
      for (const item of list.items) {
        item.apiVersion ??= res.apiVersion;
        item.kind ??= res.kind;
        slim(item);
      }
      return list;
    };
    // What makeInformer() builds, plus the field selector it cannot pass.
    const lw = new ListWatch<KubernetesObject>(
      res.path,
      new TypedWatch(this.owner.kubeConfig, res.type),
      listFn,
      false,
      undefined,
      res.fieldSelector,
    );
    this.attempt = lw;
    lw.on('error', (err: unknown) => this.fail(lw, err));
    lw.on('add', (obj) => this.event(lw, obj, false));
    lw.on('update', (obj) => this.event(lw, obj, false));
    lw.on('delete', (obj) => this.event(lw, obj, true));
    try {
      // Lists, then connects the watch. A failure is reported through 'error' (and start()
      // still resolves), or, rarely, by a rejection.
      await lw.start();
    } catch (err) {
      this.fail(lw, err);
    }
    if (this.stopped) {
      // ListWatch connects its watch even when stopped during the list.
      await lw.stop();
      return;
    }
    if (!this.dead.has(lw) && lw.latestResourceVersion() === '')
      this.fail(lw, new Error(`the list of ${res.plural} had no resourceVersion`));
    if (this.attempt === lw) this.attempt = undefined;
    if (!this.dead.has(lw)) this.swap(lw);
  }

  /** `lw` has listed and is watching: its cache replaces the served one. */
  private swap(lw: ListWatch<KubernetesObject>): void {
    const old = this.current;
    this.current = lw;
    void old?.stop();
    const fresh = new Map<string, string>();
    for (const obj of lw.list()) fresh.set(keyOf(obj), fingerprint(this.res, obj));
    const changed = !sameMap(this.fingerprints, fresh);
    this.fingerprints = fresh;
    if (this.failingSince !== undefined) {
      this.owner.logger.info(`Kubernetes API: watching ${this.res.plural} again`, {
        resource: this.res.kind,
        downMs: Date.now() - this.failingSince,
        retries: this.failures,
        changed,
      });
    }
    this.failingSince = undefined;
    this.failures = 0;
    this.resolveSynced();
    if (changed && old !== undefined) this.owner.changed(this.res.field);
  }

  private event(lw: ListWatch<KubernetesObject>, obj: KubernetesObject, deleted: boolean): void {
    // A replacement's first list is compared whole in swap(); an old ListWatch is done.
    if (lw !== this.current || this.stopped) return;
    const key = keyOf(obj);
    let changed: boolean;
    if (deleted) {
      changed = this.fingerprints.delete(key);
    } else {
      const fp = fingerprint(this.res, obj);
      changed = this.fingerprints.get(key) !== fp;
      this.fingerprints.set(key, fp);
    }
    if (changed) this.owner.changed(this.res.field);
  }

  /** `lw` failed: keep the cache, log once per outage, and try a new ListWatch after a backoff. */
  private fail(lw: ListWatch<KubernetesObject>, raw: unknown): void {
    if (this.stopped || this.dead.has(lw) || (lw !== this.current && lw !== this.attempt)) return;
    this.dead.add(lw);
    void lw.stop();
    const err = asError(raw);
    this.owner.failed(err);
    const delayMs = backoffDelay(this.failures, Math.random(), this.owner.retry);
    this.failures++;
    const meta = { resource: this.res.kind, error: describe(err), retryInMs: delayMs };
    if (this.failingSince === undefined) {
      this.failingSince = Date.now();
      this.owner.logger.error(
        this.current
          ? `Kubernetes API: watching ${this.res.plural} failed; retrying with backoff, the last known ones keep serving`
          : `Kubernetes API: cannot list ${this.res.plural}; retrying with backoff`,
        meta,
      );
    } else {
      this.owner.logger.debug(`Kubernetes API: ${this.res.plural} still failing`, { ...meta, retries: this.failures });
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.run();
    }, delayMs);
  }
}

function keyOf(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
}

function sameMap(a: Map<string, string>, b: Map<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(typeof err === 'string' ? err : JSON.stringify(err));
}
