// Long synchronous work in steps: a generator yields between units of work (an Ingress, a host, a
// file), and runSteps() gives the event loop a turn whenever a slice has taken longer than its
// budget, so that health checks, status requests and watch events are not held up for a whole
// pass. runStepsSync() runs the same generator without pausing: both return the same result.
import { setImmediate as nextTurn } from 'node:timers/promises';

/** How long one slice of a pass may hold the event loop before it yields (ms). */
export const STEP_BUDGET_MS = 20;

export function runStepsSync<T>(steps: Generator<void, T, void>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

export async function runSteps<T>(steps: Generator<void, T, void>, budgetMs = STEP_BUDGET_MS): Promise<T> {
  let sliceStart = performance.now();
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() - sliceStart >= budgetMs) {
      await nextTurn();
      sliceStart = performance.now();
    }
  }
}
