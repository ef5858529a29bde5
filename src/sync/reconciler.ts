// The one loop: changes mark the state dirty; a single pass at a time rebuilds everything from
// the cache. A burst of changes coalesces into one pass: each change pushes the pass back by the
// debounce window, but never past the ceiling measured from the first unsynced change, so a
// steady stream of changes still syncs regularly. A change after a quiet period waits only the
// debounce.
//
// What limits reloads is what they cost nginx (pacing.ts), not a fixed rate: a pass waits while
// too many old worker generations are still draining (up to a limit, then it goes ahead and says
// so), and while the reloads of the recent past took more than their share of wall time. A pass
// that did not reload costs nginx nothing and counts for neither. The reconciler cannot know
// before a pass whether it will reload, so while nginx is over a bound every pass waits.
// A failed pass is retried with backoff.

import type { Logger } from '../ops/log.ts';
import { describe } from '../errors.ts';
import {
  DEFAULT_MAX_DRAIN_WAIT_MS,
  DEFAULT_MAX_DRAINING_GENERATIONS,
  DEFAULT_MAX_RELOAD_SHARE_PERCENT,
  RELOAD_WINDOW_MS,
  ReloadShare,
} from './pacing.ts';

/** What a pass reports: whether it reloaded nginx, and how long nginx took to reload. */
export interface PassResult {
  reloaded: boolean;
  reloadMs: number;
}

export interface ReconcilerOptions {
  debounceMs: number;
  maxDelayMs: number;
  /**
   * One pass. Returning nothing counts the whole pass as reload time (it may have reloaded); a
   * failure counts the same way.
   */
  sync: () => Promise<void | PassResult>;
  /**
   * True when the pass due now will not reload nginx (only DNS answers change): it is not held by
   * draining generations or the reload share. Absent: every pass may reload.
   */
  reloadFree?: () => boolean;
  /** Old nginx worker generations still draining; absent: only the reload share applies. */
  drainingGenerations?: () => Promise<number>;
  logger: Logger;
  /** A pass waits while this many old generations drain; 0: no limit. */
  maxDrainingGenerations?: number;
  /** The longest a pass waits for draining generations; then it runs, with a warning. */
  maxDrainWaitMs?: number;
  /** Reloads may take at most this percentage of any `reloadWindowMs`; 100: no limit. */
  maxReloadSharePercent?: number;
  reloadWindowMs?: number;
  /** How often a held pass asks again how many generations drain. */
  drainPollMs?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export class Reconciler {
  private readonly opts: Required<Omit<ReconcilerOptions, 'drainingGenerations' | 'reloadFree'>> &
    Pick<ReconcilerOptions, 'drainingGenerations' | 'reloadFree'>;
  private readonly share: ReloadShare;
  private dirty = false;
  private firstDirtyAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private failures = 0;
  /** No pass before this: the failure backoff, or the next look at draining generations. */
  private notBefore = 0;
  /** When passes started waiting for draining generations (null: not waiting). */
  private drainWaitSince: number | null = null;
  /** This wait's warning was logged (once per stretch of too many draining generations). */
  private drainWarned = false;
  /** The last error counting generations, logged once. */
  private drainError = '';
  private idleWaiters: Array<() => void> = [];

  constructor(opts: ReconcilerOptions) {
    this.opts = {
      maxDrainingGenerations: DEFAULT_MAX_DRAINING_GENERATIONS,
      maxDrainWaitMs: DEFAULT_MAX_DRAIN_WAIT_MS,
      maxReloadSharePercent: DEFAULT_MAX_RELOAD_SHARE_PERCENT,
      reloadWindowMs: RELOAD_WINDOW_MS,
      drainPollMs: 50,
      retryBaseMs: 500,
      retryMaxMs: 30_000,
      ...opts,
    };
    this.share = new ReloadShare({ sharePercent: this.opts.maxReloadSharePercent, windowMs: this.opts.reloadWindowMs });
  }

  /** Something changed. Cheap and safe to call from any event handler. */
  trigger(): void {
    if (this.stopped) return;
    if (!this.dirty) {
      this.dirty = true;
      this.firstDirtyAt = Date.now();
    }
    this.schedule(this.opts.debounceMs);
  }

  /** Passes run only after start(): a source's first full read must be in the cache first. */
  start(): void {
    this.started = true;
    if (this.dirty) this.schedule(this.opts.debounceMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    this.notifyIdle();
  }

  /** Resolves once no change is pending and no pass is running. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The pending pass will not reload (the caller knows: DNS answers only), so nothing paces it. */
  private reloadFree(): boolean {
    return this.opts.reloadFree?.() ?? false;
  }

  private isIdle(): boolean {
    return this.stopped || (!this.dirty && !this.running && !this.timer);
  }

  private schedule(delayMs: number): void {
    if (!this.started || this.stopped || this.running) return; // a running pass reschedules when done
    const now = Date.now();
    // The debounce, capped by the ceiling; then what nginx's recent reloads allow, and the backoff.
    const debounced = Math.min(now + delayMs, Math.max(this.firstDirtyAt + this.opts.maxDelayMs, now));
    const at = Math.max(this.notBefore, this.reloadFree() ? 0 : this.share.earliest(now), debounced);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pass(), Math.min(2 ** 31 - 1, Math.max(0, at - now)));
  }

  private async pass(): Promise<void> {
    this.timer = null;
    if (!this.dirty || this.stopped) return this.notifyIdle();
    const pass = this.runPass();
    this.running = pass.then(() => undefined);
    const outcome = await pass;
    this.running = null;
    if (outcome === 'held') {
      this.notBefore = Date.now() + this.opts.drainPollMs;
      this.schedule(this.opts.drainPollMs);
      return;
    }
    if (outcome === 'failed') {
      // Retry the same state later even if nothing else changes: the cause may be transient
      // (a full disk, nginx restarting).
      this.failures++;
      const wait = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** (this.failures - 1));
      if (!this.dirty) {
        this.dirty = true;
        this.firstDirtyAt = Date.now();
      }
      this.notBefore = Date.now() + wait;
      this.schedule(wait);
      return;
    }
    this.failures = 0;
    this.notBefore = 0;
    if (this.dirty) this.schedule(this.opts.debounceMs);
    else this.notifyIdle();
  }

  /** The pass itself, unless draining generations hold it. */
  private async runPass(): Promise<'held' | 'done' | 'failed'> {
    if (!this.reloadFree() && (await this.holdForDraining())) return 'held';
    this.dirty = false;
    const started = Date.now();
    try {
      const result = await this.opts.sync();
      if (!result) this.share.record(started, Date.now());
      else if (result.reloaded) this.share.record(Date.now() - Math.max(0, result.reloadMs), Date.now());
      return 'done';
    } catch (err) {
      // It may have reloaded nginx (or made it parse a configuration it then refused).
      this.share.record(started, Date.now());
      this.opts.logger.error('sync failed; will retry', { error: describe(err) });
      return 'failed';
    }
  }

  /** True when the pass must wait because too many old generations still drain. */
  private async holdForDraining(): Promise<boolean> {
    const max = this.opts.maxDrainingGenerations;
    if (!this.opts.drainingGenerations || max <= 0) return false;
    let draining: number;
    try {
      draining = await this.opts.drainingGenerations();
      this.drainError = '';
    } catch (err) {
      // Absorbed on purpose: not knowing must not stop reloads; the reload share still applies.
      const message = describe(err);
      if (message !== this.drainError)
        this.opts.logger.warn('could not count draining nginx worker generations; not waiting for them', {
          error: message,
        });
      this.drainError = message;
      return false;
    }
    if (draining < max) {
      this.drainWaitSince = null;
      this.drainWarned = false;
      return false;
    }
    const now = Date.now();
    this.drainWaitSince ??= now;
    if (now - this.drainWaitSince < this.opts.maxDrainWaitMs) return true;
    if (!this.drainWarned) {
      this.opts.logger.warn(
        'old nginx workers are still draining; reloading anyway (set worker_shutdown_timeout in nginx.conf to bound how long they keep connections)',
        { drainingGenerations: draining, waitedMs: now - this.drainWaitSince },
      );
      this.drainWarned = true;
    }
    // The next pass waits again from now: at most one generation more per maxDrainWaitMs.
    this.drainWaitSince = null;
    return false;
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
