import { describe, expect, it } from 'vitest';
import { addressGroup, Admission, IDLE_SLOT_MS, MIN_GREETING_AGE_MS, type Ticket } from '../../src/receiver/admission.js';

const limits = { maxConnections: 3, maxPerAddress: 2, maxGreeting: 2 };

function ticket(admission: Admission, address: string, evicted: string[] = []): Ticket {
  const t = admission.enter(address, () => evicted.push(address));
  if (typeof t === 'string') throw new Error(t);
  return t;
}

describe('Admission', () => {
  it('drops the oldest greeting for a newcomer when the greeting pool is full, unless it is too young to have answered', () => {
    let now = 0;
    const admission = new Admission(limits, () => now);
    const evicted: string[] = [];
    const first = ticket(admission, '10.0.0.1', evicted);
    ticket(admission, '10.0.0.2', evicted);
    expect(admission.enter('10.0.0.3', () => evicted.push('10.0.0.3'))).toMatch(/try again shortly/);
    now += MIN_GREETING_AGE_MS;
    ticket(admission, '10.0.0.3', evicted);
    expect(evicted).toEqual(['10.0.0.1']);
    expect(first.pool).toBe('gone');
    // Leaving again when its socket closes changes nothing.
    admission.leave(first);
    expect(admission.promote(ticket(admission, '10.0.0.1', evicted))).toBeUndefined();
  });

  it('counts only authenticated connections against maxConnections', () => {
    const admission = new Admission({ ...limits, maxGreeting: 10 });
    const tickets = ['a', 'b', 'c', 'd'].map((x) => ticket(admission, `10.0.1.${x.charCodeAt(0)}`));
    expect(tickets.slice(0, 3).map((t) => admission.promote(t))).toEqual([undefined, undefined, undefined]);
    expect(admission.promote(tickets[3]!)).toMatch(/limit of 3/);
    admission.leave(tickets[0]!);
    expect(admission.promote(tickets[3]!)).toBeUndefined();
  });

  it('gives the slot of a connection that moved no file forward for IDLE_SLOT_MS to a newcomer when every slot is taken', () => {
    let now = 0;
    const admission = new Admission({ ...limits, maxGreeting: 10 }, () => now);
    const evicted: string[] = [];
    const [a, b, c] = ['10.0.2.1', '10.0.2.2', '10.0.2.3'].map((address) => ticket(admission, address, evicted));
    for (const t of [a, b, c]) expect(admission.promote(t!)).toBeUndefined();
    now += IDLE_SLOT_MS - 1;
    admission.progressed(b!);
    admission.progressed(c!);
    // Nobody idle long enough yet: the newcomer is told the receiver is full.
    expect(admission.promote(ticket(admission, '10.0.2.4', evicted))).toMatch(/limit of 3/);
    now += 1;
    // Now `a` has done nothing for IDLE_SLOT_MS: it makes room; `b` and `c`, which moved files, stay.
    expect(admission.promote(ticket(admission, '10.0.2.5', evicted))).toBeUndefined();
    expect(evicted).toEqual(['10.0.2.1']);
    expect([a!.pool, b!.pool, c!.pool]).toEqual(['gone', 'active', 'active']);
  });

  it('applies the per-address limit to greeting and authenticated connections alike, an IPv6 /64 counting as one address', () => {
    const admission = new Admission({ ...limits, maxGreeting: 10 });
    const a = ticket(admission, '2001:db8:1:2::1');
    admission.promote(a);
    ticket(admission, '2001:db8:1:2:ffff::9');
    expect(admission.enter('2001:db8:1:2:abcd::1', () => undefined)).toMatch(/already has 2/);
    expect(typeof admission.enter('2001:db8:1:3::1', () => undefined)).toBe('object');
  });

  it('waits longer after each failed proof, on a monotonic clock', () => {
    let now = 0;
    const admission = new Admission(limits, () => now);
    expect([1, 2, 3, 4].map(() => admission.authFailed('10.0.0.1'))).toEqual([100, 200, 400, 800]);
    now += 600_001;
    expect(admission.authFailed('10.0.0.1')).toBe(100);
    admission.authSucceeded('10.0.0.1');
    expect(admission.authFailed('10.0.0.1')).toBe(100);
  });
});

describe('addressGroup', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['2001:0db8:0000:0000:aaaa::1', '2001:db8:0:0::/64'],
    ['fe80::1', 'fe80:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
  ])('%s → %s', (address, group) => {
    expect(addressGroup(address)).toBe(group);
  });
});
