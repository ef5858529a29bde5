import type { Logger } from '../ops/log.ts';
import { describe } from '../errors.ts';

/**
 * Runs one async job at a time for the API writers (status, Events): kick() asks for a run (runs
 * coalesce); a run that reports failure is retried with backoff even if nobody kicks again, and a
 * kick during the backoff runs at once (new state, likely a new chance). Never throws.
 */
export class RetryingWorker {
  private readonly job: () => Promise<boolean>;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly log: Logger;
  private pending = false;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private stopped = false;
  private waiters: Array<() => void> = [];

  constructor(opts: { job: () => Promise<boolean>; retryBaseMs?: number; retryMaxMs?: number; logger: Logger }) {
    this.job = opts.job;
    this.baseMs = opts.retryBaseMs ?? 1_000;
    this.maxMs = opts.retryMaxMs ?? 60_000;
    this.log = opts.logger;
  }

  kick(): void {
    if (this.stopped) return;
    this.pending = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (!this.running) this.running = this.drain();
  }

  /** Resolves when no run is pending or running (a scheduled retry does not count). */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** True while a failed run waits for its retry. */
  retrying(): boolean {
    return this.timer !== null;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.pending = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private async drain(): Promise<void> {
    let ok = true;
    while (this.pending && !this.stopped) {
      this.pending = false;
      try {
        ok = await this.job();
      } catch (err) {
        ok = false;
        this.log.error('unexpected error writing to the Kubernetes API; will retry', { error: describe(err) });
      }
    }
    this.running = null;
    if (!ok && !this.stopped) {
      this.failures++;
      const wait = Math.min(this.maxMs, this.baseMs * 2 ** (this.failures - 1));
      this.timer = setTimeout(() => {
        this.timer = null;
        this.kick();
      }, wait);
      this.timer.unref();
    } else if (ok) {
      this.failures = 0;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
