// What protects nginx from reloads, as numbers: how many old worker generations may drain at
// once, and how much of the wall time reloads may take. The reconciler applies both; the defaults
// are here once, and config-flags.ts shows them.
//
// Why these defaults (README.md and docs/operating.md say the same for operators):
// - 2 draining generations: each old generation keeps its workers, their connections and a copy
//   of its configuration in memory until its last connection closes or worker_shutdown_timeout
//   ends it (~60 KB per Ingress per process image: ~600 MB at 10,000 Ingresses, docs/benchmarks.md
//   section 4). Two let a change follow another while the first one's long requests finish, and
//   cap nginx at three configurations in memory.
// - 50% of any 10 s: most of a small reload's wall time is nginx's own hand-over (it waits 100 ms
//   before retiring the old workers), not work; at half, nginx always spends at least as long on
//   a settled configuration as on changing it, and a 5 s reload (10,000 Ingresses) comes at most
//   every 10 s. Small reloads (~150 ms) never reach it when changes are applied one by one.
// - 10 s of waiting on draining workers at most: a stock nginx has no worker_shutdown_timeout, so
//   one WebSocket can keep a generation alive for hours; the wait must end, and then the log says
//   to set worker_shutdown_timeout, the one bound on such generations.

export const DEFAULT_MAX_DRAINING_GENERATIONS = 2;
export const DEFAULT_MAX_RELOAD_SHARE_PERCENT = 50;
export const DEFAULT_MAX_DRAIN_WAIT_MS = 10_000;
/** The sliding window the reload share is measured over. */
export const RELOAD_WINDOW_MS = 10_000;

/**
 * Reloads may take at most `sharePercent` of any window of `windowMs`, the next reload included
 * (expected to last as long as the last one). A reload longer than the window's share stretches
 * the window to fit (a window of `reload / share`), so that any size of configuration gets the
 * same share. Times are milliseconds on one clock (the caller's); nothing here reads a clock.
 */
export class ReloadShare {
  private readonly share: number;
  private readonly windowMs: number;
  /** Reloads still inside a window, oldest first: passes run one at a time, so they never overlap. */
  private reloads: Array<{ start: number; end: number }> = [];
  private lastMs = 0;

  constructor(opts: { sharePercent: number; windowMs?: number }) {
    this.share = Math.min(1, Math.max(0, opts.sharePercent / 100));
    this.windowMs = opts.windowMs ?? RELOAD_WINDOW_MS;
  }

  /** A reload that took nginx from `start` to `end`. */
  record(start: number, end: number): void {
    const from = Math.min(start, end);
    this.reloads.push({ start: from, end });
    this.lastMs = end - from;
  }

  /** The earliest time from `now` on at which the next reload may start. */
  earliest(now: number): number {
    if (this.share >= 1 || this.reloads.length === 0) return now;
    if (this.share <= 0) return Infinity;
    const next = this.lastMs;
    const window = Math.max(this.windowMs, next / this.share);
    this.reloads = this.reloads.filter((r) => r.end > now - window);
    // The window that ends with the next reload is the fullest one it can be in: it may hold
    // `limit` of past reloading. As the start moves later, the oldest reloads leave that window.
    // Find the first k whose reloads from k on fit; the window must then begin inside reload
    // k - 1, late enough to leave out the excess.
    const limit = this.share * window - next;
    let rest = this.reloads.reduce((sum, r) => sum + (r.end - r.start), 0);
    let k = 0;
    for (; k < this.reloads.length && rest > limit; k++) rest -= this.reloads[k]!.end - this.reloads[k]!.start;
    if (k === 0) return now;
    const windowStart = this.reloads[k - 1]!.end - (limit - rest);
    return Math.max(now, windowStart + window - next);
  }
}
