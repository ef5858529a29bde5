// The one loop: changes mark the state dirty; a single pass at a time rebuilds everything from
// the cache. A burst of changes coalesces into one pass: each change pushes the pass back by the
// debounce window, but never past the ceiling measured from the first unsynced change, so a
// steady stream of changes still syncs regularly. Passes also start at most once per ceiling
// (a token bucket of one, as ingress-nginx's sync rate limit): a stream of changes spaced about
// the debounce window apart would otherwise let the debounce fire between most of them, one
// reload each. This never makes a change wait longer than the ceiling: a change that is not yet
// synced arrived after the last pass started. A failed pass is retried with backoff.

import type { Logger } from './log.ts';

export interface ReconcilerOptions {
  debounceMs: number;
  maxDelayMs: number;
  sync: () => Promise<void>;
  logger: Logger;
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export class Reconciler {
  private readonly opts: Required<ReconcilerOptions>;
  private dirty = false;
  private firstDirtyAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private failures = 0;
  private notBefore = 0;
  /** When the last pass started (Date.now()); the next one starts no sooner than a ceiling later. */
  private lastPassAt = Number.NEGATIVE_INFINITY;
  private idleWaiters: Array<() => void> = [];

  constructor(opts: ReconcilerOptions) {
    this.opts = { retryBaseMs: 500, retryMaxMs: 30_000, ...opts };
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

  private isIdle(): boolean {
    return this.stopped || (!this.dirty && !this.running && !this.timer);
  }

  private schedule(delayMs: number): void {
    if (!this.started || this.stopped || this.running) return; // a running pass reschedules when done
    const now = Date.now();
    // Changes wait no longer than the ceiling; passes start at most once per ceiling (the last
    // pass started before the first unsynced change, so this never pushes past the ceiling);
    // after a failure, nothing runs before the backoff.
    const debounced = Math.min(now + delayMs, Math.max(this.firstDirtyAt + this.opts.maxDelayMs, now));
    const at = Math.max(this.notBefore, this.lastPassAt + this.opts.maxDelayMs, debounced);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pass(), Math.max(0, at - Date.now()));
  }

  private async pass(): Promise<void> {
    this.timer = null;
    if (!this.dirty || this.stopped) return this.notifyIdle();
    this.dirty = false;
    this.lastPassAt = Date.now();
    let failed = false;
    this.running = this.opts.sync().catch((err: unknown) => {
      failed = true;
      this.opts.logger.error('sync failed; will retry', { error: err instanceof Error ? err.message : String(err) });
    });
    await this.running;
    this.running = null;
    if (failed) {
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

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
