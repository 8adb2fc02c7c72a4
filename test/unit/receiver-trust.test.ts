/** The sender's decision on a receiver's key, without sockets: over an in-memory pin store. */
import { describe, expect, it } from 'vitest';
import { ReceiverTrust, type PinStore, type ReceiverTrustOptions } from '../../src/sender/receiver-trust.js';
import { shortFingerprint } from '../../src/auth/fingerprint.js';
import { rejection } from '../helpers/rejection.js';

const KEY = (n: number) => String.fromCharCode(65 + n).repeat(52);
const [REAL, OTHER, THIRD] = [KEY(0), KEY(1), KEY(2)];

/** Pins as the trust store keeps them: one entry per key, a name or address held by one key. */
class MemoryPins implements PinStore {
  readonly entries: Array<{ fingerprint: string; names: string[]; addresses: string[] }> = [];
  async lookup({ name, address }: { name?: string; address?: string }) {
    const byName = name === undefined ? undefined : this.entries.find((e) => e.names.some((n) => n.toLowerCase() === name.toLowerCase()));
    const byAddress = address === undefined ? undefined : this.entries.find((e) => e.addresses.includes(address));
    return { byName, byAddress };
  }
  async record({ fingerprint, name, address }: { fingerprint: string; name?: string; address?: string }) {
    for (const e of this.entries) {
      e.names = e.names.filter((n) => n !== name);
      e.addresses = e.addresses.filter((a) => a !== address);
    }
    let own = this.entries.find((e) => e.fingerprint === fingerprint);
    if (!own) this.entries.push((own = { fingerprint, names: [], addresses: [] }));
    if (name !== undefined) own.names.unshift(name);
    if (address !== undefined) own.addresses.unshift(address);
  }
}

function trust(options: Partial<ReceiverTrustOptions> = {}): ReceiverTrust {
  return new ReceiverTrust({ host: '192.0.2.7', port: 9527, policy: 'pinned', token: false, ...options });
}

describe('ReceiverTrust', () => {
  it('first contact: refused by default with the key and what to do; trusted with "new"; the token decides; a function is asked', async () => {
    const refused = await rejection(trust().check(REAL));
    expect(refused.code).toBe('RECEIVER_UNKNOWN');
    expect(refused.message).toContain(shortFingerprint(REAL));
    expect(refused.message).toMatch(/--fingerprint .*--trust-new/);
    expect(await trust({ policy: 'new' }).check(REAL)).toBe('trusted');
    expect(await trust({ token: true }).check(REAL)).toBe('after-token-proof');
    const asked: string[] = [];
    const asking = trust({ policy: (receiver) => (asked.push(receiver.fingerprint), false) });
    expect(await asking.check(REAL)).toBe('ask');
    expect((await rejection(asking.ask(REAL))).code).toBe('RECEIVER_UNKNOWN');
    expect(asked).toEqual([REAL]);
  });

  it('a pin by address, and by the name sent to, must match; the name wins over the address', async () => {
    const pins = new MemoryPins();
    await pins.record({ fingerprint: REAL, name: 'nas', address: '192.0.2.7:9527' });
    expect(await trust({ store: pins }).check(REAL)).toBe('trusted');
    const changed = await rejection(trust({ store: pins, policy: 'new', token: true }).check(OTHER));
    expect(changed.code).toBe('RECEIVER_KEY_CHANGED');
    expect(changed.message).toContain(shortFingerprint(OTHER));
    expect(changed.message).toContain(shortFingerprint(REAL));
    expect(changed.message).toContain('ft trust forget 192.0.2.7:9527');
    // Sent to by name: the name's pin decides, even where the address is pinned to another key (a new DHCP lease).
    await pins.record({ fingerprint: THIRD, address: '192.0.2.8:9527' });
    const byName = trust({ store: pins, host: '192.0.2.8', discovered: { name: 'NAS' } });
    expect(await byName.check(REAL)).toBe('trusted');
    const impostor = await rejection(trust({ store: pins, host: '192.0.2.8', discovered: { name: 'nas' } }).check(OTHER));
    expect(impostor.message).toContain('ft trust forget nas');
  });

  it('a name pinned through discovery holds when DNS finds the name instead (the receiver down or slow to answer)', async () => {
    const pins = new MemoryPins();
    await pins.record({ fingerprint: REAL, name: 'nas', address: '192.0.2.7:9600' });
    // `--to nas`, no discovery answer in time: DNS gives an address, and the host sent to is the name.
    expect(await trust({ store: pins, host: 'NAS', port: 9527 }).check(REAL)).toBe('trusted');
    const impostor = await rejection(trust({ store: pins, host: 'nas', port: 9527, policy: 'new' }).check(OTHER));
    expect(impostor).toMatchObject({ code: 'RECEIVER_KEY_CHANGED', message: expect.stringContaining('ft trust forget nas') });
    // Pinned under the address only: a host name DNS resolved is not a receiver's name (two receivers may share a host).
    const fresh = new MemoryPins();
    const byDns = trust({ store: fresh, host: 'nas', port: 9601, policy: 'new' });
    await byDns.check(THIRD);
    await byDns.confirmed(THIRD);
    expect(fresh.entries).toEqual([{ fingerprint: THIRD, names: [], addresses: ['nas:9601'] }]);
  });

  it('--fingerprint and the key a beacon announced are checked before the pins', async () => {
    const pins = new MemoryPins();
    await pins.record({ fingerprint: REAL, address: '192.0.2.7:9527' });
    expect(await trust({ store: pins, fingerprint: REAL.slice(0, 32) }).check(REAL)).toBe('trusted');
    expect((await rejection(trust({ store: pins, fingerprint: OTHER.slice(0, 32) }).check(REAL))).message).toContain('--fingerprint');
    const announced = await rejection(trust({ policy: 'new', discovered: { name: 'nas', fingerprint: REAL } }).check(OTHER));
    expect(announced).toMatchObject({ code: 'RECEIVER_KEY_CHANGED', message: expect.stringContaining('beacon') });
  });

  it('once a connection of a send is verified, every later one must show that key, whatever the policy', async () => {
    const send = trust({ policy: 'new' });
    expect(await send.check(REAL)).toBe('trusted');
    expect(send.firstContact).toBe(true);
    await send.confirmed(REAL);
    expect(await send.check(REAL)).toBe('trusted');
    expect(send.firstContact).toBe(false);
    expect((await rejection(send.check(OTHER))).message).toContain('in the middle of this send');
  });

  it('pins under the address and the name sent to, never under a name the receiver chose', async () => {
    const pins = new MemoryPins();
    const byAddress = trust({ store: pins, policy: 'new' });
    await byAddress.check(REAL);
    await byAddress.confirmed(REAL);
    expect(pins.entries).toEqual([{ fingerprint: REAL, names: [], addresses: ['192.0.2.7:9527'] }]);
    const byName = trust({ store: pins, policy: 'new', host: '192.0.2.9', discovered: { name: 'nas' } });
    await byName.check(OTHER);
    await byName.confirmed(OTHER);
    expect(pins.entries[1]).toEqual({ fingerprint: OTHER, names: ['nas'], addresses: ['192.0.2.9:9527'] });
  });
});
