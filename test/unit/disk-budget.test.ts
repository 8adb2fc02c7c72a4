import { afterEach, describe, expect, it, vi } from 'vitest';
import { DiskBudget } from '../../src/ingest/disk-budget.js';

/** A store whose disk has `free.bytes` free, counting how often it is asked. */
function disk(free: { bytes: number; asked: number }): () => Promise<number | undefined> {
  return async () => {
    free.asked += 1;
    return free.bytes;
  };
}

describe('DiskBudget', () => {
  afterEach(() => vi.useRealTimers());

  it('a started body reserves its bytes: two bodies are never promised the same space', async () => {
    const free = { bytes: 32 * 1024 * 1024, asked: 0 };
    const budget = new DiskBudget(disk(free));
    const first = await budget.reserve(20 * 1024 * 1024);
    expect('release' in first).toBe(true);
    expect(await budget.reserve(20 * 1024 * 1024)).toEqual({ available: 12 * 1024 * 1024 });
    (first as { release(): void }).release();
    (first as { release(): void }).release(); // twice is once
    expect('release' in (await budget.reserve(20 * 1024 * 1024))).toBe(true);
    expect(await budget.available()).toBe(12 * 1024 * 1024);
  });

  it('asks the disk afresh before saying no', async () => {
    const free = { bytes: 10, asked: 0 };
    const budget = new DiskBudget(disk(free));
    expect(await budget.available()).toBe(10);
    free.bytes = 100;
    expect((await budget.shortfall(50)).missing).toBe(0);
    expect(free.asked).toBe(2);
  });

  it('a backward step of the wall clock does not freeze the cached answer', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const free = { bytes: 10, asked: 0 };
    const budget = new DiskBudget(disk(free));
    await budget.available();
    vi.setSystemTime(Date.now() - 3600_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    free.bytes = 99;
    expect(await budget.available()).toBe(99);
    expect(free.asked).toBe(2);
  });

  it('covered(): the disk, asked afresh, still holds every reservation (a stream filling it sees when it does not)', async () => {
    const free = { bytes: 100, asked: 0 };
    const budget = new DiskBudget(disk(free));
    const held = await budget.reserve(40);
    expect(await budget.covered()).toBe(true);
    // The body's own bytes (or anyone's) used the disk up: the reservation is no longer covered.
    free.bytes = 39;
    expect(await budget.covered()).toBe(false);
    expect(free.asked).toBe(3);
    (held as { release(): void }).release();
    expect(await budget.covered()).toBe(true);
    expect(await new DiskBudget(async () => undefined).covered()).toBe(true);
  });
});

