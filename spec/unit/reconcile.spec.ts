// The reconcile loop's contract: bursts coalesce, a stream is bounded by the ceiling, passes never
// overlap, nothing runs before start(), and a failed pass is retried without a new change. Reloads
// are paced by what they cost nginx: draining worker generations and the share of wall time spent
// reloading (src/sync/pacing.ts), never by a fixed rate. Short real timers; the bounds asserted
// are the ones the logic guarantees, with slack for timers firing late on a busy machine.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Reconciler, type PassResult, type ReconcilerOptions } from '../../src/sync/reconciler.ts';

type LoopOptions = Omit<ReconcilerOptions, 'sync' | 'logger'> & { work?: () => Promise<void | PassResult> };

/** A reconciler around a fake pass (5 ms by default) that records when each pass started and ended. */
function loop(opts: LoopOptions) {
  const { logger, entries } = createMemoryLogger();
  let running = 0;
  let overlapped = false;
  const passes: number[] = [];
  const ends: number[] = [];
  const { work, ...rest } = opts;
  const r = new Reconciler({
    retryBaseMs: 50,
    ...rest,
    logger,
    sync: async () => {
      running++;
      if (running > 1) overlapped = true;
      passes.push(Date.now());
      try {
        return await (work?.() ?? sleep(5));
      } finally {
        ends.push(Date.now());
        running--;
      }
    },
  });
  return { r, passes, ends, entries, overlapped: () => overlapped };
}

/** Waits (bounded) until `passes` has more than `n` entries; returns how long that took. */
async function nextPass(passes: number[], n: number, timeoutMs = 3000): Promise<number> {
  const at = Date.now();
  while (passes.length <= n && Date.now() - at < timeoutMs) await sleep(2);
  assert.ok(passes.length > n, `no pass ${n + 1} within ${timeoutMs} ms`);
  return passes[n]! - at;
}

describe('Reconciler', () => {
  it('runs nothing before start(), then one pass for everything that happened before', async () => {
    const { r, passes } = loop({ debounceMs: 10, maxDelayMs: 50 });
    for (let i = 0; i < 5; i++) r.trigger();
    await sleep(60);
    assert.equal(passes.length, 0);
    r.start();
    await sleep(30);
    await r.idle();
    assert.equal(passes.length, 1);
    await r.stop();
  });

  it('coalesces a burst into one pass', async () => {
    const { r, passes } = loop({ debounceMs: 30, maxDelayMs: 1000 });
    r.start();
    for (let i = 0; i < 200; i++) r.trigger();
    await sleep(10);
    await r.idle();
    assert.equal(passes.length, 1);
    await r.stop();
  });

  it('still syncs during a continuous stream of changes, bounded by the ceiling', async () => {
    const { r, passes, ends } = loop({ debounceMs: 40, maxDelayMs: 100 });
    r.start();
    const started = Date.now();
    // A change every 10 ms for 500 ms: the debounce alone would never fire.
    while (Date.now() - started < 500) {
      r.trigger();
      await sleep(10);
    }
    await r.idle();
    assert.ok(passes.length >= 3, `expected passes during the stream, saw ${passes.length}`);
    assert.ok(passes.length <= 8, `expected at most ~1 pass per ceiling, saw ${passes.length}`);
    // The first unsynced change came right after the previous pass ended: the next pass starts
    // within a ceiling of it (30 ms of slack for late timers).
    assert.ok(passes[0]! - started <= 130, `first pass ${passes[0]! - started} ms after the first change`);
    for (let i = 1; i < passes.length; i++)
      assert.ok(passes[i]! - ends[i - 1]! <= 130, `pass ${i}: ${passes[i]! - ends[i - 1]!} ms after the previous one`);
    await r.stop();
  });

  it('never overlaps passes, and runs again for a change made during a pass', async () => {
    let release!: () => void;
    const { r, passes, overlapped } = loop({
      debounceMs: 5,
      maxDelayMs: 20,
      work: () => (passes.length === 1 ? new Promise<void>((res) => (release = res)) : sleep(1)),
    });
    r.start();
    r.trigger();
    while (passes.length === 0) await sleep(2);
    r.trigger(); // during the first pass
    await sleep(50);
    assert.equal(passes.length, 1, 'the second pass waits for the first');
    release();
    await sleep(20);
    await r.idle();
    assert.equal(passes.length, 2);
    assert.equal(overlapped(), false);
    await r.stop();
  });

  it('retries a failed pass with backoff, without a new change, and logs the error', async () => {
    let calls = 0;
    const { r, entries } = loop({
      debounceMs: 5,
      maxDelayMs: 10,
      retryBaseMs: 20,
      work: async () => {
        calls++;
        if (calls < 3) throw new Error(`disk full (${calls})`);
      },
    });
    r.start();
    r.trigger();
    for (let i = 0; i < 100 && calls < 3; i++) await sleep(10);
    await r.idle();
    assert.equal(calls, 3);
    assert.deepEqual(
      entries.filter((e) => e.level === 'error').map((e) => e.error),
      ['disk full (1)', 'disk full (2)'],
    );
    await r.stop();
  });

  it('runs a change after a quiet period after the debounce alone', async () => {
    const { r, passes } = loop({ debounceMs: 20, maxDelayMs: 1000, work: () => sleep(5).then(reload(5)) });
    r.start();
    r.trigger();
    await nextPass(passes, 0);
    await r.idle();
    await sleep(200);
    r.trigger();
    const waited = await nextPass(passes, 1);
    assert.ok(waited >= 19 && waited < 80, `a lone change after a quiet period waited ${waited} ms`);
    await r.stop();
  });

  it('applies each change of a sequence 300 ms apart after the debounce alone: no bucket to wait on', async () => {
    // Each pass takes 30 ms and reports a 30 ms reload; the ceiling is production's 1 s. A rate
    // limit of one pass per ceiling (after a burst of two) would hold the third change ~1 s.
    const { r, passes } = loop({ debounceMs: 20, maxDelayMs: 1000, work: () => sleep(30).then(reload(30)) });
    r.start();
    for (let i = 0; i < 8; i++) {
      r.trigger();
      const waited = await nextPass(passes, i);
      assert.ok(waited < 80, `change ${i + 1} waited ${waited} ms for its pass`);
      await r.idle();
      await sleep(300);
    }
    await r.stop();
  });

  it('holds a pass while too many old worker generations drain, and runs it once they drop', async () => {
    let draining = 2;
    let asked = 0;
    const { r, passes } = loop({
      debounceMs: 5,
      maxDelayMs: 50,
      maxDrainingGenerations: 2,
      maxDrainWaitMs: 60_000,
      drainPollMs: 10,
      drainingGenerations: async () => {
        asked++;
        return draining;
      },
      work: () => sleep(1).then(reload(1)),
    });
    r.start();
    r.trigger();
    await sleep(300);
    assert.equal(passes.length, 0, 'no pass while 2 generations drain');
    assert.ok(asked >= 3, `asked how many drain ${asked} times in 300 ms (every 10 ms wanted)`);
    // Changes during the hold do not get through either.
    for (let i = 0; i < 5; i++) r.trigger();
    await sleep(50);
    assert.equal(passes.length, 0);
    draining = 1;
    const released = Date.now();
    await nextPass(passes, 0);
    assert.ok(passes[0]! - released < 60, `ran ${passes[0]! - released} ms after the generations dropped`);
    await r.idle();
    assert.equal(passes.length, 1, 'the changes held back coalesced into one pass');
    await r.stop();
  });

  it('waits for draining generations no longer than the limit, then reloads and says why', async () => {
    const { r, passes, entries } = loop({
      debounceMs: 5,
      maxDelayMs: 50,
      maxDrainingGenerations: 1,
      maxDrainWaitMs: 150,
      drainPollMs: 10,
      drainingGenerations: () => Promise.resolve(3),
      work: () => sleep(1).then(reload(1)),
    });
    r.start();
    const at = Date.now();
    r.trigger();
    await nextPass(passes, 0);
    assert.ok(passes[0]! - at >= 150, `ran after ${passes[0]! - at} ms, before the 150 ms limit`);
    const warnings = entries.filter((e) => e.level === 'warn' && /still draining/.test(String(e.message)));
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]!.message), /worker_shutdown_timeout/);
    assert.equal(warnings[0]!.drainingGenerations, 3);
    // A generation stays pinned: the next pass waits the limit again (one generation more per limit).
    await r.idle();
    const again = Date.now();
    r.trigger();
    await nextPass(passes, 1);
    assert.ok(passes[1]! - again >= 150, `the next pass waited only ${passes[1]! - again} ms`);
    await r.stop();
  });

  it('without a way to count generations, or when counting fails, paces by the reload share alone', async () => {
    const { r, passes, entries } = loop({
      debounceMs: 5,
      maxDelayMs: 50,
      drainingGenerations: () => Promise.reject(new Error('EACCES /proc/1/task/1/children')),
      work: () => sleep(1).then(reload(1)),
    });
    r.start();
    for (let i = 0; i < 3; i++) {
      r.trigger();
      const waited = await nextPass(passes, i);
      assert.ok(waited < 60, `pass ${i + 1} waited ${waited} ms`);
      await r.idle();
    }
    const warnings = entries.filter((e) => e.level === 'warn');
    assert.equal(warnings.length, 1, 'the error is logged once');
    assert.match(String(warnings[0]!.error), /EACCES/);
    await r.stop();
  });

  it('keeps reloads within their share of any window of wall time, and still syncs a stream', async () => {
    // 40 ms reloads, at most 25% of any 400 ms: 100 ms of reloading, the next one counted in.
    const { r, passes, ends } = loop({
      debounceMs: 5,
      maxDelayMs: 10,
      maxReloadSharePercent: 25,
      reloadWindowMs: 400,
      work: () => sleep(40).then(reload(40)),
    });
    r.start();
    const started = Date.now();
    while (Date.now() - started < 1500) {
      r.trigger();
      await sleep(5);
    }
    await r.idle();
    // Without the share the passes would run back to back: ~30 in 1.5 s.
    assert.ok(passes.length >= 4 && passes.length <= 18, `saw ${passes.length} passes`);
    for (let i = 0; i < passes.length; i++) {
      // The fullest window a pass is in ends with it: the pass (as long as the last) and the past.
      let busy = 40;
      for (let j = 0; j < i; j++) busy += overlap(ends[j]! - 40, ends[j]!, passes[i]! + 40 - 400, passes[i]!);
      assert.ok(busy <= 102, `pass ${i}: ${busy} ms of reloading in the 400 ms up to its end`);
    }
    await r.stop();
  });

  it('does not pace passes that did not reload: they cost nginx nothing', async () => {
    const { r, passes } = loop({
      debounceMs: 5,
      maxDelayMs: 10,
      maxReloadSharePercent: 10,
      reloadWindowMs: 400,
      work: () => sleep(40).then(() => ({ reloaded: false, reloadMs: 0 })),
    });
    r.start();
    const started = Date.now();
    while (Date.now() - started < 600) {
      r.trigger();
      await sleep(5);
    }
    await r.idle();
    // Back to back: 600 / (40 + the 10 ms ceiling) = 12, less for late timers; the share would allow 3.
    assert.ok(passes.length >= 6, `saw ${passes.length} passes`);
    await r.stop();
  });

  it('counts a pass that reports nothing as reload time, all of it', async () => {
    const { r, passes } = loop({
      debounceMs: 5,
      maxDelayMs: 10,
      maxReloadSharePercent: 10,
      reloadWindowMs: 400,
      work: () => sleep(40),
    });
    r.start();
    const started = Date.now();
    while (Date.now() - started < 600) {
      r.trigger();
      await sleep(5);
    }
    await r.idle();
    // 40 ms passes, 10% of 400 ms: one per 400 ms (at 0, 400 and, after the stream, 800 ms).
    assert.ok(passes.length >= 2 && passes.length <= 4, `saw ${passes.length} passes`);
    await r.stop();
  });
});

/** A pass result: nginx reloaded and took `ms`. */
function reload(ms: number): () => PassResult {
  return () => ({ reloaded: true, reloadMs: ms });
}

/** Length of the overlap of [a, b] and [c, d]. */
function overlap(a: number, b: number, c: number, d: number): number {
  return Math.max(0, Math.min(b, d) - Math.max(a, c));
}
