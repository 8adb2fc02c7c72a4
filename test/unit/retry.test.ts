import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { backoffDelay, waitFor } from '../../src/retry.js';

describe('backoffDelay', () => {
  const policy = { baseMs: 500, maxMs: 10_000 };

  it('is random below a ceiling that doubles each attempt, up to the cap', () => {
    const top = () => 0.999999;
    expect([0, 1, 2, 3, 4, 5, 6, 30, 2000].map((n) => backoffDelay(policy, n, top))).toEqual([499, 999, 1999, 3999, 7999, 9999, 9999, 9999, 9999]);
    expect(backoffDelay(policy, 4, () => 0)).toBe(0);
    expect(backoffDelay(policy, 1, () => 0.5)).toBe(500);
  });

  it('spreads the delays of one attempt (full jitter), never past the ceiling', () => {
    const delays = Array.from({ length: 500 }, () => backoffDelay(policy, 3));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(4000);
    expect(new Set(delays).size).toBeGreaterThan(100);
  });

  it('a zero base means no wait', () => {
    expect(backoffDelay({ baseMs: 0, maxMs: 10_000 }, 7)).toBe(0);
  });
});

describe('waitFor', () => {
  it('rejects with ABORTED as soon as the signal fires', async () => {
    const controller = new AbortController();
    const waiting = waitFor(60_000, controller.signal);
    setTimeout(() => controller.abort(), 10);
    await expect(waiting).rejects.toEqual(new FtError('ABORTED', 'send was cancelled'));
  });

  it('rejects at once on a signal already aborted, and resolves after the time otherwise', async () => {
    await expect(waitFor(60_000, AbortSignal.abort())).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(waitFor(1)).resolves.toBeUndefined();
  });
});
