/**
 * Merging discovery answers into receivers, as pure functions: one receiver heard on several
 * interfaces is one entry; an id heard from an address or port its owner does not list as its
 * own is a conflict, never merged into one plain entry.
 */
import { describe, expect, it } from 'vitest';
import type { ReceiverInfo } from '../../src/discovery/codec.js';
import { consistent, describe as describeEntry, MAX_RECEIVERS, MAX_SIGHTINGS_PER_ID, ReceiverTable, type Sighting } from '../../src/discovery/sightings.js';

const ID = '0123456789abcdef';
const REAL = '192.168.1.20';
const IMPOSTOR = '192.168.1.66';
/** Two full fingerprints: the real receiver's key, and the impostor's. */
const KEY = 'MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOV3HO6DZPIYTEMZUGU3D';
const OTHER_KEY = 'KRUGKIDROVUWG2ZAMJZG653OEBTG66BANJ2W24DTEBXXMZLSEB2A';

const info = (fields: Partial<ReceiverInfo> = {}): ReceiverInfo => ({
  name: 'vm',
  id: ID,
  port: 9527,
  auth: false,
  interval: 3,
  addrs: [REAL, '10.0.0.5', '127.0.0.1'],
  ...fields,
});
const seen = (address: string, fields: Partial<ReceiverInfo> = {}): Sighting => ({ address, info: info(fields) });

describe('consistent()', () => {
  it('one receiver answering on all its interfaces (each answer lists them all) is consistent', () => {
    expect(consistent([seen(REAL), seen('10.0.0.5'), seen('127.0.0.1'), seen(REAL)])).toBe(true);
  });

  it('the same list in another order, or trimmed to what each answer had room for, is still consistent', () => {
    expect(consistent([seen(REAL, { addrs: [REAL, '10.0.0.5'] }), seen('10.0.0.5', { addrs: ['10.0.0.5', REAL, '127.0.0.1'] })])).toBe(true);
  });

  it('one source is consistent even when it lists nothing (an older receiver) or not itself', () => {
    expect(consistent([seen(REAL, { addrs: [] })])).toBe(true);
    expect(consistent([seen(REAL, { addrs: [] }), seen(REAL, { addrs: [] })])).toBe(true);
    expect(consistent([seen(REAL, { addrs: ['10.9.9.9'] })])).toBe(true);
  });

  it('an impostor that copied the id and the address list verbatim, answering from its own address, conflicts', () => {
    expect(consistent([seen(IMPOSTOR), seen(REAL)])).toBe(false);
    expect(consistent([seen(REAL), seen(IMPOSTOR)])).toBe(false);
  });

  it('an impostor that adds its own address to the list conflicts with the real answers, which do not list it', () => {
    expect(consistent([seen(IMPOSTOR, { addrs: [IMPOSTOR, REAL, '10.0.0.5', '127.0.0.1'] }), seen(REAL)])).toBe(false);
  });

  it('the same id from one address with another port, name or auth conflicts (a forged source address)', () => {
    expect(consistent([seen(REAL), seen(REAL, { port: 9999 })])).toBe(false);
    expect(consistent([seen(REAL), seen(REAL, { name: 'vm2' })])).toBe(false);
    expect(consistent([seen(REAL), seen(REAL, { auth: true })])).toBe(false);
    // Two addresses of one receiver with two ports: not one receiver either.
    expect(consistent([seen(REAL), seen('10.0.0.5', { port: 9999 })])).toBe(false);
  });

  it('an older receiver (no addrs) heard from two addresses conflicts: nothing says they belong together', () => {
    expect(consistent([seen(REAL, { addrs: [] }), seen('10.0.0.5', { addrs: [] })])).toBe(false);
  });
});

describe('the key fingerprint (fp)', () => {
  it('answers with one id and another key are a conflict, from another address or from the same one (a forged source)', () => {
    expect(consistent([seen(REAL, { fingerprint: KEY }), seen('10.0.0.5', { fingerprint: KEY })])).toBe(true);
    expect(consistent([seen(REAL, { fingerprint: KEY }), seen(REAL, { fingerprint: OTHER_KEY })])).toBe(false);
    expect(consistent([seen(REAL, { fingerprint: KEY }), seen('10.0.0.5', { fingerprint: OTHER_KEY })])).toBe(false);
    // A claim of plaintext (no fp) against one with a key: a downgrade attempt, not the same receiver.
    expect(consistent([seen(REAL, { fingerprint: KEY }), seen(REAL)])).toBe(false);
    expect(consistent([seen(REAL), seen(REAL, { fingerprint: KEY })])).toBe(false);
  });

  it('a plain entry carries the fingerprint; a conflicting one lists each claim with its own', () => {
    expect(describeEntry([seen(REAL, { fingerprint: KEY })])).toEqual({
      name: 'vm',
      id: ID,
      port: 9527,
      auth: false,
      fingerprint: KEY,
      addresses: [REAL],
      endpoints: [{ address: REAL, port: 9527 }],
      conflict: false,
    });
    // In plaintext: no fingerprint key at all (and so none in --json).
    expect(Object.hasOwn(describeEntry([seen(REAL)]), 'fingerprint')).toBe(false);
    const entry = describeEntry([seen(REAL, { fingerprint: KEY }), seen(REAL, { fingerprint: OTHER_KEY }), seen(REAL), seen(REAL, { fingerprint: OTHER_KEY })]);
    expect(entry.conflict).toBe(true);
    expect(entry.claims).toEqual([
      { address: REAL, port: 9527, name: 'vm', auth: false, fingerprint: KEY },
      { address: REAL, port: 9527, name: 'vm', auth: false, fingerprint: OTHER_KEY },
      { address: REAL, port: 9527, name: 'vm', auth: false },
    ]);
  });

  it('ReceiverTable: the impostor with the same id, address and port but another key makes one conflicting entry, whichever answers first', () => {
    for (const order of [
      [seen(REAL, { fingerprint: KEY }), seen(REAL, { fingerprint: OTHER_KEY })],
      [seen(REAL, { fingerprint: OTHER_KEY }), seen(REAL, { fingerprint: KEY })],
    ]) {
      const table = new ReceiverTable();
      expect(table.add(order[0]!)).toBe('new');
      expect(table.add(order[1]!)).toBe('changed');
      const [entry, ...more] = table.receivers();
      expect(more).toEqual([]);
      expect(entry!.conflict).toBe(true);
      expect(entry!.claims!.map((c) => c.fingerprint).sort()).toEqual([KEY, OTHER_KEY].sort());
    }
  });
});

describe('several instances sharing one key and one name (one receiver, several endpoints)', () => {
  const A = '192.168.1.21';
  const B = '192.168.1.22';
  /** An instance on its own host: it lists only its own address, and the other instance's port may differ. */
  const instance = (address: string, port: number, fields: Partial<ReceiverInfo> = {}) => seen(address, { fingerprint: KEY, port, addrs: [address], ...fields });

  it('answers with one id and one key from different hosts and ports are one receiver with every endpoint, first heard first', () => {
    const entry = describeEntry([instance(B, 9600), instance(A, 9527), instance(B, 9600)]);
    expect(entry).toEqual({
      name: 'vm',
      id: ID,
      port: 9600,
      auth: false,
      fingerprint: KEY,
      addresses: [B, A],
      endpoints: [
        { address: B, port: 9600 },
        { address: A, port: 9527 },
      ],
      conflict: false,
    });
    // Two instances on one host (two ports on 127.0.0.1): one address, two endpoints.
    expect(describeEntry([instance('127.0.0.1', 9001), instance('127.0.0.1', 9002)]).endpoints).toEqual([
      { address: '127.0.0.1', port: 9001 },
      { address: '127.0.0.1', port: 9002 },
    ]);
  });

  it('a hostile answer reusing the id with another key is never merged: the id is a conflict, whichever answers first', () => {
    for (const order of [
      [instance(A, 9527), instance(B, 9527, { fingerprint: OTHER_KEY })],
      [instance(B, 9527, { fingerprint: OTHER_KEY }), instance(A, 9527)],
    ]) {
      expect(consistent(order)).toBe(false);
      const table = new ReceiverTable();
      for (const s of order) table.add(s);
      const [entry, ...more] = table.receivers();
      expect(more).toEqual([]);
      expect(entry!.conflict).toBe(true);
      expect(entry!.claims!.map((c) => [c.address, c.fingerprint])).toEqual(order.map((s) => [s.address, s.info.fingerprint]));
    }
    // Nor one reusing it with no key at all (a downgrade to plaintext), nor a third instance among two good ones.
    expect(consistent([instance(A, 9527), instance(B, 9527, { fingerprint: undefined })])).toBe(false);
    expect(consistent([instance(A, 9527), instance(B, 9527), instance('192.168.1.66', 9527, { fingerprint: OTHER_KEY })])).toBe(false);
  });

  it('one key but another name or auth under the same id is a conflict too (instances of one receiver agree on both)', () => {
    expect(consistent([instance(A, 9527), instance(B, 9527, { name: 'vm2' })])).toBe(false);
    expect(consistent([instance(A, 9527), instance(B, 9527, { auth: true })])).toBe(false);
  });

  it('plaintext receivers are never merged on their claims alone: one id from two hosts, or on two ports, is a conflict', () => {
    expect(consistent([instance(A, 9527, { fingerprint: undefined }), instance(B, 9527, { fingerprint: undefined })])).toBe(false);
    expect(consistent([instance(A, 9001, { fingerprint: undefined }), instance(A, 9002, { fingerprint: undefined })])).toBe(false);
  });

  it('the same name and key under two ids stay two receivers (nothing merges across ids)', () => {
    const table = new ReceiverTable();
    table.add(instance(A, 9527));
    table.add(instance(B, 9527, { id: 'fedcba9876543210' }));
    expect(table.receivers().map((r) => [r.id, r.endpoints.length, r.conflict])).toEqual([
      [ID, 1, false],
      ['fedcba9876543210', 1, false],
    ]);
  });
});

describe('describe()', () => {
  it('a consistent id is one plain entry with every address, first heard first', () => {
    expect(describeEntry([seen('10.0.0.5'), seen(REAL), seen('10.0.0.5')])).toEqual({
      name: 'vm',
      id: ID,
      port: 9527,
      auth: false,
      addresses: ['10.0.0.5', REAL],
      endpoints: [
        { address: '10.0.0.5', port: 9527 },
        { address: REAL, port: 9527 },
      ],
      conflict: false,
    });
  });

  it('a conflicting id lists every distinct claim, and no claim stands in for the others', () => {
    const entry = describeEntry([seen(IMPOSTOR, { port: 4444 }), seen(REAL), seen(REAL, { name: 'other' }), seen(IMPOSTOR, { port: 4444, addrs: [] })]);
    expect(entry).toEqual({
      name: 'vm',
      id: ID,
      port: 4444,
      auth: false,
      addresses: [IMPOSTOR, REAL],
      endpoints: [
        { address: IMPOSTOR, port: 4444 },
        { address: REAL, port: 9527 },
      ],
      conflict: true,
      claims: [
        { address: IMPOSTOR, port: 4444, name: 'vm', auth: false },
        { address: REAL, port: 9527, name: 'vm', auth: false },
        { address: REAL, port: 9527, name: 'other', auth: false },
      ],
    });
  });
});

describe('ReceiverTable', () => {
  it('groups by id: new, same (a repeat), changed (another address), ignoring nothing', () => {
    const table = new ReceiverTable();
    expect(table.add(seen(REAL))).toBe('new');
    expect(table.add(seen(REAL))).toBe('same');
    expect(table.add(seen('10.0.0.5'))).toBe('changed');
    expect(table.add(seen('9.9.9.9', { id: 'fedcba9876543210', addrs: ['9.9.9.9'] }))).toBe('new');
    expect(table.receivers().map((r) => [r.id, r.addresses, r.conflict])).toEqual([
      [ID, [REAL, '10.0.0.5'], false],
      ['fedcba9876543210', ['9.9.9.9'], false],
    ]);
  });

  it('the impostor answering first and the real receiver second make one conflicting entry, whichever comes first', () => {
    for (const order of [
      [seen(IMPOSTOR), seen(REAL)],
      [seen(REAL), seen(IMPOSTOR)],
    ]) {
      const table = new ReceiverTable();
      for (const s of order) table.add(s);
      const [entry, ...more] = table.receivers();
      expect(more).toEqual([]);
      expect(entry!.conflict).toBe(true);
      expect(entry!.claims!.map((c) => c.address).sort()).toEqual([IMPOSTOR, REAL].sort());
    }
  });

  it('forgets each sighting at its own expiry: the conflict ends when the impostor falls silent, the entry when all do', () => {
    const table = new ReceiverTable();
    table.add(seen(REAL), 10_000);
    table.add(seen(IMPOSTOR), 5_000);
    expect(table.describe(ID)!.conflict).toBe(true);
    // A fresh beacon from the real receiver extends only its own sighting.
    expect(table.add(seen(REAL), 20_000)).toBe('same');
    expect(table.expire(4_999)).toEqual({ gone: [], changed: [] });
    const { gone, changed } = table.expire(5_000);
    expect(gone).toEqual([]);
    expect(changed).toEqual([{ name: 'vm', id: ID, port: 9527, auth: false, addresses: [REAL], endpoints: [{ address: REAL, port: 9527 }], conflict: false }]);
    expect(table.expire(19_999).gone).toEqual([]);
    expect(table.expire(20_000).gone.map((r) => r.id)).toEqual([ID]);
    expect(table.receivers()).toEqual([]);
  });

  it(`holds at most ${MAX_RECEIVERS} ids (a flood of invented ones is ignored) and ${MAX_SIGHTINGS_PER_ID} sightings per id`, () => {
    const table = new ReceiverTable();
    const idOf = (i: number) => i.toString(16).padStart(16, '0');
    for (let i = 0; i < MAX_RECEIVERS; i++) expect(table.add(seen(REAL, { id: idOf(i) }))).toBe('new');
    expect(table.overflowed).toBe(false);
    expect(table.add(seen(REAL, { id: idOf(MAX_RECEIVERS) }))).toBe('ignored');
    expect(table.receivers()).toHaveLength(MAX_RECEIVERS);
    // Said, so that a lookup by name does not trust a list that may lack the real receiver.
    expect(table.overflowed).toBe(true);

    const one = new ReceiverTable();
    for (let i = 0; i < MAX_SIGHTINGS_PER_ID * 4; i++) one.add(seen(REAL, { port: 1000 + i }));
    const entry = one.describe(ID)!;
    expect(entry.conflict).toBe(true);
    expect(entry.claims!.length).toBeLessThanOrEqual(MAX_SIGHTINGS_PER_ID);
  });

  it('an id whose sightings overflowed stays a conflict, even if what was kept agrees', () => {
    const table = new ReceiverTable();
    // 16 distinct sightings that all agree (one address, different but all-listed addrs lists)…
    for (let i = 0; i < MAX_SIGHTINGS_PER_ID; i++) table.add(seen(REAL, { addrs: [REAL, `10.0.1.${i}`] }));
    expect(table.describe(ID)!.conflict).toBe(false);
    // …and one more that would not fit, from elsewhere: it must not be forgotten silently.
    expect(table.add(seen(IMPOSTOR))).toBe('changed');
    expect(table.describe(ID)!.conflict).toBe(true);
  });
});
