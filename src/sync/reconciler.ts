// The one loop: changes mark the state dirty; a single pass at a time rebuilds everything from
// the cache. A burst of changes coalesces into one pass: each change pushes the pass back by the
// debounce window, but never past the ceiling measured from the first unsynced change, so a
// steady stream of changes still syncs regularly. Passes are also rate-limited by a token bucket
// (as ingress-nginx limits its syncs): it holds two passes and gains one per ceiling, so a stream
// of changes spaced about the debounce window apart costs one reload per ceiling instead of one
// per change, while a change that follows a single earlier pass (a Service, then its Ingress a
// moment later) still waits only for the debounce. A change never waits longer than the ceiling
// after the last pass started. A failed pass is retried with backoff.

import type { Logger } from '../ops/log.ts';
import { describe } from '../errors.ts';

/** Passes the rate limit lets through back to back after a quiet ceiling. */
const BURST = 2;

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
  /** The rate limit: passes available (up to BURST) as of `tokensAt`; one more every ceiling. */
  private tokens = BURST;
  private tokensAt = 0;
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
    const at = Math.max(this.notBefore, this.tokenAt(), debounced);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.pass(), Math.max(0, at - Date.now()));
  }

  private async pass(): Promise<void> {
    this.timer = null;
    if (!this.dirty || this.stopped) return this.notifyIdle();
    this.dirty = false;
    const now = Date.now();
    this.tokens = this.available(now) - 1;
    this.tokensAt = now;
    let failed = false;
    this.running = this.opts.sync().catch((err: unknown) => {
      failed = true;
      this.opts.logger.error('sync failed; will retry', { error: describe(err) });
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

  private available(now: number): number {
    if (this.opts.maxDelayMs <= 0) return BURST;
    return Math.min(BURST, this.tokens + (now - this.tokensAt) / this.opts.maxDelayMs);
  }

  /** When a pass may start: now if a token is left, else when the next one arrives. */
  private tokenAt(): number {
    return this.tokens >= 1 || this.opts.maxDelayMs <= 0 ? 0 : this.tokensAt + (1 - this.tokens) * this.opts.maxDelayMs;
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
