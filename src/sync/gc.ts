// Garbage collection between sync passes (see collectGarbageBetweenPasses).
import v8 from 'node:v8';
import vm from 'node:vm';

let gcFunction: (() => void) | null | undefined;

/**
 * A full garbage collection, run after each pass. A pass allocates the whole model and every
 * rendered file again (~100 MB at 10,000 Ingresses, of which the previous pass's ~100 MB become
 * garbage), and V8, left alone, grows its heap over several passes rather than collecting: the
 * process peaked at ~570 MB at 10,000 Ingresses with a live heap of ~130 MB. Between passes the
 * sidecar is idle, so the collection costs idle time only. `gc` is V8's own, made reachable at
 * run time (--expose-gc, then read from a fresh context); where that is refused, nothing happens.
 */
/** The longest a forced collection between passes may hold the event loop (ms). */
const MAX_GC_PAUSE_MS = 50;
/** ms per MB of heap of the last forced collection between passes; null before the first. */
let gcMsPerMb: number | null = null;

/**
 * collectGarbage() after a pass, unless the last one says it would hold the event loop longer
 * than MAX_GC_PAUSE_MS at the heap's current size: a forced collection is one pause, ~150-500 ms
 * at 10,000 Ingresses (docs/benchmarks.md section 12), while health checks and watch events wait. Then
 * V8 collects on its own, incrementally and concurrently, at the cost of a larger heap.
 */
export function collectGarbageBetweenPasses(): void {
  const heapMb = process.memoryUsage().heapUsed / 1048576;
  if (gcMsPerMb !== null && gcMsPerMb * heapMb > MAX_GC_PAUSE_MS) return;
  const t0 = performance.now();
  collectGarbage();
  gcMsPerMb = (performance.now() - t0) / Math.max(heapMb, 1);
}

export function collectGarbage(): void {
  if (gcFunction === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      const fn: unknown = vm.runInNewContext('gc');
      gcFunction = typeof fn === 'function' ? (fn as () => void) : null;
    } catch {
      gcFunction = null;
    }
  }
  gcFunction?.();
}
