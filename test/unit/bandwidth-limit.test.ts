/**
 * The bandwidth limit's token bucket, on a fake clock: bursts, the steady rate, FIFO order,
 * aborts, and (fast-check) that no sequence of takes is granted more than rate·t + burst.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BandwidthLimit, burstFor, MAX_BURST, MIN_BURST } from '../../src/bandwidth-limit.js';
import { FtError } from '../../src/errors.js';

/** A clock that moves only when told, and the sleeps waiting on it. */
class FakeTime {
  t = 0;
  readonly timers = new Set<{ at: number; wake: () => void }>();
  readonly now = () => this.t;
  readonly sleep = (ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const timer = {
        at: this.t + ms,
        wake: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.timers.delete(timer);
        reject(new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.add(timer);
    });

  /** Moves to `to`, waking each sleep at its time (and letting its waiter run) on the way. */
  async advanceTo(to: number): Promise<void> {
    for (;;) {
      await settle();
      const due = [...this.timers].filter((timer) => timer.at <= to).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.t = Math.max(this.t, due.at);
      this.timers.delete(due);
      due.wake();
    }
    this.t = Math.max(this.t, to);
    await settle();
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const KiB = 1024;
const MiB = 1024 * KiB;

function limit(bytesPerSecond: number) {
  const time = new FakeTime();
  return { time, bucket: new BandwidthLimit({ bytesPerSecond, now: time.now, sleep: time.sleep }) };
}

/** Takes `bytes` and records when it was granted (or that it failed). */
function timed(bucket: BandwidthLimit, time: FakeTime, bytes: number, signal?: AbortSignal) {
  const record: { at?: number; error?: unknown } = {};
  void bucket.take(bytes, signal).then(
    () => (record.at = time.t),
    (error: unknown) => (record.error = error),
  );
  return record;
}

describe('BandwidthLimit', () => {
  it('bursts 0.1 s of the rate, at least 16 KiB and at most 1 MiB', () => {
    expect(burstFor(4 * MiB)).toBe(Math.floor(0.4 * MiB));
    expect(burstFor(16 * KiB)).toBe(MIN_BURST);
    expect(burstFor(1000)).toBe(MIN_BURST);
    expect(burstFor(100 * MiB)).toBe(MAX_BURST);
  });

  it('grants a burst at once, then holds to the rate', async () => {
    const { time, bucket } = limit(100 * KiB); // burst 16 KiB (10 KiB would be under the floor)
    const first = timed(bucket, time, 16 * KiB);
    await time.advanceTo(0);
    expect(first.at).toBe(0);
    // The bucket is empty: 10 KiB more come after 100 ms.
    const second = timed(bucket, time, 10 * KiB);
    await time.advanceTo(99);
    expect(second.at).toBeUndefined();
    await time.advanceTo(100);
    expect(second.at).toBe(100);
    // A long pause refills the bucket to the burst only, never beyond.
    await time.advanceTo(60_000);
    const third = timed(bucket, time, 16 * KiB);
    const fourth = timed(bucket, time, 1 * KiB);
    await time.advanceTo(60_000);
    expect(third.at).toBe(60_000);
    expect(fourth.at).toBeUndefined();
    await time.advanceTo(60_010);
    expect(fourth.at).toBe(60_010);
  });

  it('takes more than the burst at once (debt), and makes the next taker wait it off', async () => {
    const { time, bucket } = limit(64 * KiB); // burst 16 KiB
    const big = timed(bucket, time, 80 * KiB);
    const next = timed(bucket, time, 16 * KiB);
    // 80 KiB with 16 KiB in hand: 64 KiB of debt, one second of rate.
    await time.advanceTo(999);
    expect(big.at).toBeUndefined();
    await time.advanceTo(1000);
    expect(big.at).toBe(1000);
    await time.advanceTo(1250);
    expect(next.at).toBe(1250);
  });

  it('serves waiters in the order they asked (several connections share one limit fairly)', async () => {
    const { time, bucket } = limit(32 * KiB); // burst 16 KiB
    timed(bucket, time, 16 * KiB); // empties the bucket
    const order: string[] = [];
    const waits = ['a', 'b', 'c', 'a', 'b', 'c'].map((who) => bucket.take(8 * KiB).then(() => order.push(who)));
    await time.advanceTo(10_000);
    await Promise.all(waits);
    expect(order).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(time.timers.size).toBe(0);
  });

  it('takeInTurns shares bytes, not turns: a taker of 64 KiB chunks and one of 16 KiB chunks get the same', async () => {
    const { time, bucket } = limit(MiB);
    const got = { large: 0, small: 0 };
    let running = true;
    const taker = async (who: keyof typeof got, chunk: number, take: (bytes: number) => Promise<void>) => {
      while (running) {
        await take(chunk);
        got[who] += chunk;
      }
    };
    const inTurns = (bytes: number) => bucket.takeInTurns(bytes);
    const loops = [taker('large', 64 * KiB, inTurns), taker('small', 16 * KiB, inTurns)];
    await time.advanceTo(10_000);
    running = false;
    await time.advanceTo(20_000);
    await Promise.all(loops);
    // Counted per whole chunk: up to a chunk of each may be under way when time is up.
    expect(Math.abs(got.large - got.small)).toBeLessThanOrEqual(64 * KiB + 16 * KiB);
    expect(got.large + got.small).toBeGreaterThan(9 * MiB);
    // With a take per chunk, turns are shared instead: four times the bytes for the larger chunks.
    const plain = limit(MiB);
    const byTurn = { large: 0, small: 0 };
    running = true;
    const turnLoops = (['large', 'small'] as const).map(async (who) => {
      while (running) {
        const chunk = who === 'large' ? 64 * KiB : 16 * KiB;
        await plain.bucket.take(chunk);
        byTurn[who] += chunk;
      }
    });
    await plain.time.advanceTo(10_000);
    running = false;
    await plain.time.advanceTo(20_000);
    await Promise.all(turnLoops);
    expect(byTurn.large / byTurn.small).toBeCloseTo(4, 0);
  });

  it('an abort wakes its waiter at once with ABORTED, leaves no timer, and gives the booking back when last', async () => {
    const { time, bucket } = limit(16 * KiB); // burst 16 KiB
    timed(bucket, time, 16 * KiB);
    const controller = new AbortController();
    const waiting = timed(bucket, time, 16 * KiB, controller.signal);
    await time.advanceTo(10);
    expect(time.timers.size).toBe(1);
    controller.abort();
    await time.advanceTo(10);
    expect(waiting.error).toBeInstanceOf(FtError);
    expect((waiting.error as FtError).code).toBe('ABORTED');
    expect(time.timers.size).toBe(0);
    // Given back: the next 16 KiB wait for the first booking only (1 s from 0), not 2 s.
    const after = timed(bucket, time, 16 * KiB);
    await time.advanceTo(1000);
    expect(after.at).toBe(1000);
  });

  it('an aborted waiter in the middle of the line does not let those after it go early', async () => {
    const { time, bucket } = limit(16 * KiB);
    timed(bucket, time, 16 * KiB);
    const controller = new AbortController();
    const middle = timed(bucket, time, 16 * KiB, controller.signal);
    const last = timed(bucket, time, 16 * KiB);
    controller.abort();
    await time.advanceTo(1999);
    expect((middle.error as FtError).code).toBe('ABORTED');
    expect(last.at).toBeUndefined();
    await time.advanceTo(2000);
    expect(last.at).toBe(2000);
  });

  it('refuses at once when the signal has already aborted, and takes 0 bytes without waiting', async () => {
    const { bucket } = limit(16 * KiB);
    await expect(bucket.take(1, AbortSignal.abort())).rejects.toMatchObject({ code: 'ABORTED' });
    await bucket.take(0);
    await expect(bucket.take(-1)).rejects.toThrow();
  });

  it('refuses a rate that is not a positive number', () => {
    for (const rate of [0, -1, NaN, Infinity]) expect(() => new BandwidthLimit({ bytesPerSecond: rate })).toThrow(FtError);
  });

  it('waits on real timers by default', async () => {
    const bucket = new BandwidthLimit({ bytesPerSecond: 1024 * KiB });
    await bucket.take(bucket.burst + 1024); // 1 KiB over the burst: about a millisecond
  });

  it('property: bytes granted by any time t are at most rate·t + burst, in the order asked, and as soon as the rate allows', async () => {
    const take = fc.record({ gapMs: fc.integer({ min: 0, max: 300 }), bytes: fc.integer({ min: 1, max: 256 * KiB }), abort: fc.boolean() });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 16 * KiB, max: 8 * MiB }), fc.array(take, { minLength: 1, maxLength: 30 }), async (rate, takes) => {
        const { time, bucket } = limit(rate);
        const granted: Array<{ at: number; bytes: number; order: number }> = [];
        const aborts: AbortController[] = [];
        let at = 0;
        for (const [order, { gapMs, bytes, abort }] of takes.entries()) {
          at += gapMs;
          await time.advanceTo(at);
          const controller = new AbortController();
          void bucket.take(bytes, controller.signal).then(
            () => granted.push({ at: time.t, bytes, order }),
            () => undefined,
          );
          if (abort) aborts.push(controller);
          // Some aborts come a little later, while others still wait.
          if (aborts.length > 0 && gapMs % 3 === 0) aborts.shift()!.abort();
        }
        await time.advanceTo(at + 3_600_000);
        expect(time.timers.size).toBe(0);
        let sum = 0;
        for (const [i, grant] of granted.entries()) {
          sum += grant.bytes;
          // All grants up to this one happened by its time.
          expect(sum).toBeLessThanOrEqual((rate * grant.at) / 1000 + bucket.burst + 1e-6);
          if (i > 0) expect(grant.order).toBeGreaterThan(granted[i - 1]!.order);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('property: takes asked all at once finish when rate·t + burst covers them, not later', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 16 * KiB, max: 8 * MiB }), fc.array(fc.integer({ min: 1, max: 256 * KiB }), { minLength: 1, maxLength: 20 }), async (rate, sizes) => {
        const { time, bucket } = limit(rate);
        const records = sizes.map((bytes) => timed(bucket, time, bytes));
        await time.advanceTo(3_600_000);
        const total = sizes.reduce((a, b) => a + b, 0);
        const expected = Math.max(0, ((total - bucket.burst) * 1000) / rate);
        expect(records.at(-1)!.at).toBeCloseTo(expected, 6);
      }),
      { numRuns: 200 },
    );
  });
});
