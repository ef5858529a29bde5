// The reconcile loop's contract: bursts coalesce, a stream is bounded by the ceiling, passes never
// overlap, nothing runs before start(), and a failed pass is retried without a new change.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMemoryLogger } from '../../src/ops/log.ts';
import { Reconciler } from '../../src/sync/reconciler.ts';

function loop(opts: { debounceMs: number; maxDelayMs: number; work?: () => Promise<void>; retryBaseMs?: number }) {
  const { logger, entries } = createMemoryLogger();
  let running = 0;
  let overlapped = false;
  const passes: number[] = [];
  const r = new Reconciler({
    debounceMs: opts.debounceMs,
    maxDelayMs: opts.maxDelayMs,
    retryBaseMs: opts.retryBaseMs ?? 50,
    logger,
    sync: async () => {
      running++;
      if (running > 1) overlapped = true;
      passes.push(Date.now());
      try {
        await (opts.work?.() ?? sleep(5));
      } finally {
        running--;
      }
    },
  });
  return { r, passes, entries, overlapped: () => overlapped };
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
    const { r, passes } = loop({ debounceMs: 40, maxDelayMs: 100 });
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
    await r.stop();
  });

  it('rate-limits passes to one per ceiling (after a burst of two) when changes come about a debounce window apart', async () => {
    const { r, passes } = loop({ debounceMs: 20, maxDelayMs: 100 });
    r.start();
    const started = Date.now();
    // A change every ~20 ms for 600 ms: without the rate limit the debounce fires between most of them.
    while (Date.now() - started < 600) {
      r.trigger();
      await sleep(20);
    }
    await r.idle();
    assert.ok(passes.length <= 9, `expected at most 600/100 + 2 passes (+1 for timer slack), saw ${passes.length}`);
    // A bucket of two passes, refilled one per ceiling: never three passes within one ceiling.
    for (let i = 2; i < passes.length; i++)
      assert.ok(passes[i]! - passes[i - 2]! >= 95, `passes ${i - 2} and ${i}: ${passes[i]! - passes[i - 2]!} ms apart`);
    // After a quiet ceiling, a lone change waits only for the debounce.
    await sleep(120);
    const before = passes.length;
    const at = Date.now();
    r.trigger();
    while (passes.length === before && Date.now() - at < 1000) await sleep(2);
    assert.ok(passes[before]! - at < 60, `a lone change after a quiet period waited ${passes[before]! - at} ms`);
    // ... and so does a second one right after that pass (a Service, then its Ingress).
    await r.idle();
    const second = Date.now();
    r.trigger();
    while (passes.length === before + 1 && Date.now() - second < 1000) await sleep(2);
    assert.ok(
      passes[before + 1]! - second < 60,
      `a change right after one pass waited ${passes[before + 1]! - second} ms`,
    );
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
});
