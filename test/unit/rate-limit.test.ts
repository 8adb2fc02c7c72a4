/**
 * The announcer's per-source rate limit, with an injected clock: a burst, then a steady rate,
 * and a bounded number of sources.
 */
import { describe, expect, it } from 'vitest';
import { RateLimit } from '../../src/discovery/rate-limit.js';

function limiter(maxKeys = 100) {
  let now = 1_000;
  const limit = new RateLimit({ burst: 5, refillPerMs: 1 / 1000, maxKeys, now: () => now });
  return { limit, advance: (ms: number) => (now += ms) };
}

const take = (limit: RateLimit, key: string, times: number) => Array.from({ length: times }, () => limit.allow(key)).filter(Boolean).length;

describe('RateLimit', () => {
  it('allows a burst of 5, then one per second', () => {
    const { limit, advance } = limiter();
    expect(take(limit, 'a', 20)).toBe(5);
    advance(999);
    expect(limit.allow('a')).toBe(false);
    advance(1);
    expect(limit.allow('a')).toBe(true);
    expect(limit.allow('a')).toBe(false);
    // Never more than the burst, however long the pause.
    advance(3_600_000);
    expect(take(limit, 'a', 20)).toBe(5);
  });

  it('keeps sources apart', () => {
    const { limit } = limiter();
    expect(take(limit, 'a', 10)).toBe(5);
    expect(take(limit, 'b', 10)).toBe(5);
  });

  it('a clock that goes backwards drains nothing: the bucket refills from the new time on', () => {
    const { limit, advance } = limiter();
    expect(take(limit, 'a', 3)).toBe(3);
    advance(-3_600_000);
    expect(take(limit, 'a', 10)).toBe(2);
    advance(1_000);
    expect(limit.allow('a')).toBe(true);
  });

  it('tracks at most maxKeys sources, forgetting the least recently seen', () => {
    const { limit } = limiter(3);
    for (const key of ['a', 'b', 'c']) take(limit, key, 5);
    take(limit, 'a', 1); // a is now the most recent
    take(limit, 'd', 1); // b goes
    expect(limit.size).toBe(3);
    expect(limit.allow('a')).toBe(false);
    expect(limit.allow('c')).toBe(false);
    // b was forgotten, so it starts with a full bucket again.
    expect(take(limit, 'b', 10)).toBe(5);
  });
});

describe('RateLimit with tags (query ids)', () => {
  it('answers repeats of the last tag without a token, up to perTag, and refuses more', () => {
    let now = 0;
    const limit = new RateLimit({ burst: 5, refillPerMs: 1 / 1000, maxKeys: 100, perTag: 3, now: () => now });
    // Three lookups of three datagrams each: 3 tokens, not 9.
    for (const qid of ['q1', 'q2', 'q3']) expect([1, 2, 3].map(() => limit.allow('a', qid))).toEqual([true, true, true]);
    // A fourth copy of one query id is refused (a replayed query is no way around the limit)…
    expect(limit.allow('a', 'q3')).toBe(false);
    // …and new ids still cost a token each: 2 left.
    expect(['q4', 'q5', 'q6'].map((qid) => limit.allow('a', qid))).toEqual([true, true, false]);
    now += 1000;
    expect(limit.allow('a', 'q7')).toBe(true);
  });

  it('a flood of one query id is answered perTag times in all', () => {
    const limit = new RateLimit({ burst: 5, refillPerMs: 1 / 1000, maxKeys: 100, perTag: 3, now: () => 0 });
    expect(Array.from({ length: 200 }, () => limit.allow('a', 'same')).filter(Boolean)).toHaveLength(3);
  });
});
