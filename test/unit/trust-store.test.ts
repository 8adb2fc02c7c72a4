/**
 * The sender's pinned receivers: what record() keeps, what lookup() and forget() find, and a
 * file that is corrupt, too large, from a newer ft or not ours is an error, never "no pins".
 * (Several processes at once, and a lock left by a killed one: test/integration/trust-store-processes.test.ts.)
 */
import { spawnSync } from 'node:child_process';
import { promises as nodeFs } from 'node:fs';
import { chmod, mkdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { shortFingerprint } from '../../src/auth/fingerprint.js';
import {
  canonicalAddress,
  defaultTrustStorePath,
  MAX_NAMES_PER_RECEIVER,
  MAX_PINNED_RECEIVERS,
  TrustStore,
  type PinnedReceiver,
  type TrustStoreFs,
} from '../../src/auth/trust-store.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterAll(removeTempDirs);

/** A full fingerprint of its own for each number (52 characters A-Z, 2-7). */
function fp(n: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let tail = '';
  for (let v = n, i = 0; i < 6; i++, v >>= 5) tail = alphabet[v & 31] + tail;
  return tail + 'A'.repeat(46);
}

async function storeFile(): Promise<string> {
  return path.join(await tempDir('ft-trust-'), 'config', 'ft', 'known-receivers.json');
}

/** A clock that moves on a second at each call. */
function ticking(start = Date.parse('2025-03-01T10:00:00.000Z')): () => Date {
  let t = start;
  return () => new Date((t += 1000));
}

async function refusal(promise: Promise<unknown>, code = 'TRUST_STORE_INVALID'): Promise<FtError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code).toBe(code);
  expect((error as FtError).message).not.toContain('\n');
  return error as FtError;
}

function entry(n: number, fields: Partial<PinnedReceiver> = {}): PinnedReceiver {
  return { fingerprint: fp(n), names: [`r${n}`], addresses: [`10.0.${n >> 8 & 255}.${n & 255}:9527`], added: '2025-01-01T00:00:00.000Z', lastSeen: '2025-01-02T00:00:00.000Z', ...fields };
}

async function writeStore(file: string, content: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content), { mode: 0o600 });
  await chmod(file, 0o600);
}

describe('TrustStore: record and lookup', () => {
  it('a missing file is empty, and reading never creates it', async () => {
    const file = await storeFile();
    const store = new TrustStore(file);
    expect(await store.list()).toEqual([]);
    expect(await store.lookup({ name: 'laptop', address: '10.0.0.1:9527' })).toEqual({});
    expect(await store.forget('laptop')).toEqual([]);
    await expect(stat(path.dirname(file))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the first record creates the file owner-only in an owner-only folder, indented JSON of version 1', async () => {
    const file = await storeFile();
    const store = new TrustStore(file, { now: () => new Date('2025-03-01T10:00:00.000Z') });
    await store.record({ fingerprint: fp(1), name: 'Laptop', address: '192.168.1.20:9527' });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    const text = await readFile(file, 'utf8');
    expect(text).toContain('\n  "receivers"');
    expect(JSON.parse(text)).toEqual({
      version: 1,
      receivers: [{ fingerprint: fp(1), names: ['Laptop'], addresses: ['192.168.1.20:9527'], added: '2025-03-01T10:00:00.000Z', lastSeen: '2025-03-01T10:00:00.000Z' }],
    });
    // No temporary or lock file is left beside it.
    expect((await nodeFs.readdir(path.dirname(file))).sort()).toEqual(['known-receivers.json']);
  });

  it('finds a name whatever its case or Unicode form, and an address in any spelling of the same host', async () => {
    const store = new TrustStore(await storeFile());
    await store.record({ fingerprint: fp(1), name: 'Café-Laptop', address: '[::FFFF:192.168.1.20]:9527' });
    await store.record({ fingerprint: fp(2), name: 'nas', address: '[FE80:0:0::1]:9000' });
    await store.record({ fingerprint: fp(3), address: 'Printer.LAN.:9527' });
    const [one] = await store.list();
    expect(one!.addresses).toEqual(['192.168.1.20:9527']);
    expect((await store.lookup({ name: 'CAFE\u0301-LAPTOP' })).byName?.fingerprint).toBe(fp(1));
    expect((await store.lookup({ address: '192.168.1.20:9527' })).byAddress?.fingerprint).toBe(fp(1));
    expect((await store.lookup({ address: '[fe80::1]:9000' })).byAddress?.fingerprint).toBe(fp(2));
    expect((await store.lookup({ address: 'printer.lan:9527' })).byAddress?.fingerprint).toBe(fp(3));
    expect(await store.lookup({ name: 'nas', address: '192.168.1.20:9527' })).toMatchObject({ byName: { fingerprint: fp(2) }, byAddress: { fingerprint: fp(1) } });
    // Another port is another address; another name is no pin.
    expect(await store.lookup({ name: 'laptop', address: '192.168.1.20:9528' })).toEqual({});
  });

  it('canonical addresses: one spelling per host and port, nonsense refused', () => {
    expect(canonicalAddress('127.0.0.1:9527')).toBe('127.0.0.1:9527');
    expect(canonicalAddress('[::ffff:7f00:1]:1')).toBe('127.0.0.1:1');
    expect(canonicalAddress('[2001:DB8:0:0:0:0:0:1]:65535')).toBe('[2001:db8::1]:65535');
    expect(canonicalAddress('[fe80::1%eth0]:9527')).toBe('[fe80::1%eth0]:9527');
    expect(canonicalAddress('Host.Local:9527')).toBe('host.local:9527');
    expect(canonicalAddress('Café.local.:9527')).toBe('xn--caf-dma.local:9527');
    expect(canonicalAddress('127.1:9527')).toBe('127.0.0.1:9527');
    expect(canonicalAddress('0x7f.0.0.1:9527')).toBe('127.0.0.1:9527');
    for (const bad of ['127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:09527', '::1:9527', '[::1]', '999.0.0.1:9527', '10.0.0.300:1', 'a b:1', '[nothost]:1', ':9527', 'host:9527\n']) {
      expect(canonicalAddress(bad), bad).toBeUndefined();
    }
  });

  it('record: one entry per key; the name and the address move to it; an entry left with nothing goes', async () => {
    const file = await storeFile();
    const store = new TrustStore(file, { now: ticking() });
    await store.record({ fingerprint: fp(1), name: 'laptop', address: '10.0.0.1:9527' });
    await store.record({ fingerprint: fp(2), name: 'desk', address: '10.0.0.2:9527' });
    await store.record({ fingerprint: fp(2), name: 'desk-new', address: '10.0.0.3:9527' });
    // The laptop's key changed (the user forgot it, or the caller decided): the new key takes its name only.
    await store.record({ fingerprint: fp(3), name: 'LAPTOP' });
    let entries = await store.list();
    expect(entries.map((e) => [e.fingerprint, e.names, e.addresses])).toEqual([
      [fp(1), [], ['10.0.0.1:9527']],
      [fp(2), ['desk-new', 'desk'], ['10.0.0.3:9527', '10.0.0.2:9527']],
      [fp(3), ['LAPTOP'], []],
    ]);
    const desk = entries[1]!;
    expect(desk.added).toBe('2025-03-01T10:00:02.000Z');
    expect(desk.lastSeen).toBe('2025-03-01T10:00:03.000Z');
    // And its address too: the first entry holds nothing now, and is gone.
    await store.record({ fingerprint: fp(3), address: '10.0.0.1:9527' });
    entries = await store.list();
    expect(entries.map((e) => e.fingerprint)).toEqual([fp(2), fp(3)]);
    expect(entries[1]!.addresses).toEqual(['10.0.0.1:9527']);
    // A contact seen again moves to the front of its lists, without duplicates.
    await store.record({ fingerprint: fp(2), name: 'Desk', address: '10.0.0.2:9527' });
    expect((await store.list())[0]).toMatchObject({ names: ['Desk', 'desk-new'], addresses: ['10.0.0.2:9527', '10.0.0.3:9527'] });
  });

  it('record writes nothing for a contact that changes nothing but a lastSeen less than an hour old', async () => {
    const file = await storeFile();
    let clock = Date.parse('2025-03-01T10:00:00.000Z');
    const store = new TrustStore(file, { now: () => new Date(clock) });
    await store.record({ fingerprint: fp(1), name: 'laptop', address: '10.0.0.1:9527' });
    const first = await stat(file);
    clock += 59 * 60_000;
    await store.record({ fingerprint: fp(1), name: 'Laptop', address: '10.0.0.1:9527' });
    await store.record({ fingerprint: fp(1), address: '10.0.0.1:9527' });
    const again = await stat(file);
    expect([again.ino, again.mtimeMs]).toEqual([first.ino, first.mtimeMs]);
    // Anything new is written at once: another address, and a lastSeen an hour old.
    await store.record({ fingerprint: fp(1), address: '10.0.0.2:9527' });
    expect((await store.list())[0]!.addresses).toEqual(['10.0.0.2:9527', '10.0.0.1:9527']);
    clock += 61 * 60_000;
    await store.record({ fingerprint: fp(1), address: '10.0.0.2:9527' });
    expect((await store.list())[0]!.lastSeen).toBe(new Date(clock).toISOString());
  });

  it('record refuses a fingerprint that is not a full one and an address that is not one; a name no beacon can carry is not pinned', async () => {
    const file = await storeFile();
    const store = new TrustStore(file);
    await refusal(store.record({ fingerprint: shortFingerprint(fp(1)) }), 'USAGE');
    await refusal(store.record({ fingerprint: fp(1), address: 'laptop' }), 'USAGE');
    await refusal(store.lookup({ address: 'laptop' }), 'USAGE');
    await store.record({ fingerprint: fp(1), name: 'x'.repeat(65), address: '10.0.0.1:9527' });
    await store.record({ fingerprint: fp(2), name: 'bad\u0007name', address: '10.0.0.2:9527' });
    expect((await store.list()).map((e) => e.names)).toEqual([[], []]);
    expect(await store.lookup({ name: 'x'.repeat(65) })).toEqual({});
  });

  it('keeps the 16 most recent names and addresses of a receiver, and the 10,000 receivers seen most recently', async () => {
    const file = await storeFile();
    const store = new TrustStore(file, { now: ticking(Date.parse('2026-01-01T00:00:00.000Z')) });
    for (let i = 0; i < MAX_NAMES_PER_RECEIVER + 4; i++) await store.record({ fingerprint: fp(1), name: `name-${i}`, address: `10.0.0.${i + 1}:9527` });
    const [one] = await store.list();
    expect(one!.names).toHaveLength(MAX_NAMES_PER_RECEIVER);
    expect(one!.names[0]).toBe(`name-${MAX_NAMES_PER_RECEIVER + 3}`);
    expect(one!.names).not.toContain('name-3');
    expect(one!.addresses).toHaveLength(16);
    expect(one!.addresses).not.toContain('10.0.0.4:9527');

    const full = await storeFile();
    // Entry 7 was seen longest ago.
    const receivers = Array.from({ length: MAX_PINNED_RECEIVERS }, (_, i) => entry(i, { lastSeen: i === 7 ? '2024-01-01T00:00:00.000Z' : '2025-01-02T00:00:00.000Z' }));
    await writeStore(full, { version: 1, receivers });
    const big = new TrustStore(full);
    await big.record({ fingerprint: fp(MAX_PINNED_RECEIVERS + 1), name: 'newcomer' });
    const after = await big.list();
    expect(after).toHaveLength(MAX_PINNED_RECEIVERS);
    expect(after.some((e) => e.fingerprint === fp(7))).toBe(false);
    expect(after.at(-1)!.names).toEqual(['newcomer']);
  });

  it('what list() and lookup() return is a copy: changing it changes no pin', async () => {
    const store = new TrustStore(await storeFile());
    await store.record({ fingerprint: fp(1), name: 'laptop' });
    const [listed] = await store.list();
    listed!.names.push('evil');
    expect((await store.lookup({ name: 'evil' })).byName).toBeUndefined();
  });

  it('the default path is known-receivers.json in the config folder, beside the sender key', async () => {
    const { defaultSenderKeyPath } = await import('../../src/auth/owner-key.js');
    expect(path.basename(defaultTrustStorePath())).toBe('known-receivers.json');
    expect(path.dirname(defaultTrustStorePath())).toBe(path.dirname(defaultSenderKeyPath()));
  });
});

describe('TrustStore: forget', () => {
  async function threeReceivers(): Promise<TrustStore> {
    const store = new TrustStore(await storeFile(), { now: ticking() });
    await store.record({ fingerprint: fp(1), name: 'laptop', address: '10.0.0.1:9527' });
    await store.record({ fingerprint: fp(1), address: '10.0.0.1:9000' });
    await store.record({ fingerprint: fp(2), name: 'desk', address: '[fe80::2]:9527' });
    await store.record({ fingerprint: fp(3), name: 'nas', address: '10.0.0.3:9527' });
    return store;
  }

  it('by name (any case), removing the whole entry: its old key is not left pinned under its address', async () => {
    const store = await threeReceivers();
    const removed = await store.forget('LAPTOP');
    expect(removed.map((e) => e.fingerprint)).toEqual([fp(1)]);
    expect(await store.lookup({ address: '10.0.0.1:9527' })).toEqual({});
    expect((await store.list()).map((e) => e.fingerprint)).toEqual([fp(2), fp(3)]);
  });

  it('by address, by a bare host (every port), by full or short fingerprint in any case', async () => {
    let store = await threeReceivers();
    expect((await store.forget('[FE80::2]:9527')).map((e) => e.fingerprint)).toEqual([fp(2)]);
    expect((await store.forget('10.0.0.1')).map((e) => e.fingerprint)).toEqual([fp(1)]);
    expect((await store.list()).map((e) => e.fingerprint)).toEqual([fp(3)]);
    store = await threeReceivers();
    expect((await store.forget(fp(2).toLowerCase())).map((e) => e.fingerprint)).toEqual([fp(2)]);
    expect((await store.forget(shortFingerprint(fp(3)))).map((e) => e.fingerprint)).toEqual([fp(3)]);
    expect((await store.list()).map((e) => e.fingerprint)).toEqual([fp(1)]);
  });

  it('nothing matched: nothing removed and the file is not rewritten; an empty argument is a usage error', async () => {
    const store = await threeReceivers();
    const before = await stat(store.file);
    const text = await readFile(store.file, 'utf8');
    expect(await store.forget('toaster')).toEqual([]);
    expect(await store.forget('10.0.0.9:9527')).toEqual([]);
    expect(await store.forget(shortFingerprint('B'.repeat(52)))).toEqual([]);
    expect(await readFile(store.file, 'utf8')).toBe(text);
    expect((await stat(store.file)).ino).toBe(before.ino);
    await refusal(store.forget('  '), 'USAGE');
  });
});

describe('TrustStore: a file it cannot trust is an error, never "no pins"', () => {
  const good = entry(1);
  const cases: Array<[string, unknown, RegExp]> = [
    ['empty', '', /not JSON/],
    ['not JSON', '{"version":1,"receivers":[', /not JSON/],
    ['not an object', '[]', /not a JSON object/],
    ['no version', { receivers: [] }, /"version" is not 1/],
    ['a newer version', { version: 2, receivers: [] }, /written by a newer ft \(format version 2/],
    ['a version that is not a number', { version: '1', receivers: [] }, /"version" is not 1/],
    ['an unknown top-level field', { version: 1, receivers: [], trustAll: true }, /unknown field "trustAll"/],
    ['receivers not a list', { version: 1, receivers: {} }, /"receivers" is not a list/],
    ['an entry not an object', { version: 1, receivers: [good, 'x'] }, /receivers\[1\] is not an object/],
    ['a short fingerprint', { version: 1, receivers: [{ ...good, fingerprint: shortFingerprint(fp(1)) }] }, /receivers\[0\]\.fingerprint/],
    ['a lowercase fingerprint', { version: 1, receivers: [{ ...good, fingerprint: fp(1).toLowerCase() }] }, /receivers\[0\]\.fingerprint/],
    ['a fingerprint twice', { version: 1, receivers: [good, entry(2, { fingerprint: fp(1) })] }, /receivers\[1\]\.fingerprint: also in receivers\[0\]/],
    ['a name too long', { version: 1, receivers: [{ ...good, names: ['ok', 'é'.repeat(33)] }] }, /receivers\[0\]\.names\[1\] is longer than 64 bytes/],
    ['a name with a control character', { version: 1, receivers: [{ ...good, names: ['a\u001b[2Jb'] }] }, /receivers\[0\]\.names\[0\] has control characters/],
    ['an empty name', { version: 1, receivers: [{ ...good, names: [''] }] }, /names\[0\] is empty/],
    ['a name not a string', { version: 1, receivers: [{ ...good, names: [7] }] }, /names\[0\] is not a string/],
    ['a name in two entries', { version: 1, receivers: [good, entry(2, { names: ['R1'] })] }, /receivers\[1\]\.names\[0\]: also in receivers\[0\]/],
    ['too many names', { version: 1, receivers: [{ ...good, names: Array.from({ length: 17 }, (_, i) => `n${i}`) }] }, /names has more than 16/],
    ['an address without a port', { version: 1, receivers: [{ ...good, addresses: ['10.0.0.1'] }] }, /receivers\[0\]\.addresses\[0\] is not an address/],
    ['an address not canonical', { version: 1, receivers: [{ ...good, addresses: ['[::FFFF:10.0.0.1]:9527'] }] }, /addresses\[0\] is not an address/],
    ['an address in two entries', { version: 1, receivers: [good, entry(2, { addresses: [good.addresses[0]!] })] }, /receivers\[1\]\.addresses\[0\]: also in receivers\[0\]/],
    ['too many addresses', { version: 1, receivers: [{ ...good, addresses: Array.from({ length: 17 }, (_, i) => `10.0.0.${i + 1}:1`) }] }, /addresses has more than 16/],
    ['names missing', { version: 1, receivers: [{ ...good, names: undefined }] }, /names is not a list/],
    ['a bad time', { version: 1, receivers: [{ ...good, added: 'yesterday' }] }, /receivers\[0\]\.added is not an ISO time/],
    ['an impossible date', { version: 1, receivers: [{ ...good, lastSeen: '2025-02-30T00:00:00.000Z' }] }, /lastSeen is not an ISO time/],
    ['an unknown entry field', { version: 1, receivers: [{ ...good, trusted: 'always' }] }, /receivers\[0\]: unknown field "trusted"/],
    ['too many receivers', { version: 1, receivers: Array.from({ length: MAX_PINNED_RECEIVERS + 1 }, (_, i) => entry(i)) }, /more than 10000 receivers/],
  ];

  for (const [what, content, problem] of cases) {
    it(`${what}: TRUST_STORE_INVALID naming the file and the problem, for every call; the file is left as it was`, async () => {
      const file = await storeFile();
      await writeStore(file, content);
      const before = await readFile(file);
      const store = new TrustStore(file);
      for (const call of [() => store.list(), () => store.lookup({ name: 'r1' }), () => store.record({ fingerprint: fp(9), name: 'x' }), () => store.forget('r1')]) {
        const error = await refusal(call());
        expect(error.message).toContain(file);
        expect(error.message).toMatch(problem);
      }
      expect((await readFile(file)).equals(before)).toBe(true);
    });
  }

  it('a symbolic link, a folder, a file others may change and one over the size bound are refused', async () => {
    const dir = path.dirname(await storeFile());
    await mkdir(dir, { recursive: true });
    const real = path.join(dir, 'real.json');
    await writeStore(real, { version: 1, receivers: [] });
    const link = path.join(dir, 'link.json');
    await symlink(real, link);
    expect((await refusal(new TrustStore(link).list())).message).toMatch(/symbolic link/);
    const folder = path.join(dir, 'folder.json');
    await mkdir(folder);
    expect((await refusal(new TrustStore(folder).list())).message).toMatch(/not a regular file/);
    const open = path.join(dir, 'open.json');
    await writeStore(open, { version: 1, receivers: [] });
    await chmod(open, 0o666);
    expect((await refusal(new TrustStore(open).lookup({ name: 'x' }))).message).toMatch(/others may change it \(mode 666\)/);
    const huge = path.join(dir, 'huge.json');
    await writeStore(huge, '');
    await nodeFs.truncate(huge, 33 * 1024 * 1024);
    expect((await refusal(new TrustStore(huge).list())).message).toMatch(/larger than 32 MiB/);
  });

  it.skipIf(process.getuid?.() !== 0)('a file that belongs to another user is refused (it could pin its own keys) (as root only: chown)', async () => {
    const file = await storeFile();
    await writeStore(file, { version: 1, receivers: [] });
    await nodeFs.chown(file, 65534, 65534);
    expect((await refusal(new TrustStore(file).lookup({ name: 'x' }))).message).toMatch(/belongs to another user/);
  });

  it('a read-only file: lookup works, record and forget say so and change nothing', async () => {
    const file = await storeFile();
    const store = new TrustStore(file);
    await store.record({ fingerprint: fp(1), name: 'laptop', address: '10.0.0.1:9527' });
    await chmod(file, 0o400);
    const text = await readFile(file, 'utf8');
    expect((await store.lookup({ name: 'laptop' })).byName?.fingerprint).toBe(fp(1));
    expect((await refusal(store.record({ fingerprint: fp(2), name: 'desk' }))).message).toMatch(/cannot change the trust file .* read-only/);
    expect((await refusal(store.forget('laptop'))).message).toMatch(/read-only/);
    expect(await readFile(file, 'utf8')).toBe(text);
    expect((await nodeFs.readdir(path.dirname(file))).sort()).toEqual(['known-receivers.json']);
  });

  it('a folder it may not write in: record and forget say "permission denied", lookup works', async () => {
    const file = await storeFile();
    await new TrustStore(file).record({ fingerprint: fp(1), name: 'laptop' });
    const denied: TrustStoreFs = {
      ...nodeFs,
      open: (async (target: string, flags: number, mode?: number) => {
        if (flags & nodeFs.constants?.O_CREAT || flags & 0o100) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
        return nodeFs.open(target, flags, mode);
      }) as TrustStoreFs['open'],
    };
    const store = new TrustStore(file, { fs: denied });
    expect((await store.lookup({ name: 'laptop' })).byName?.fingerprint).toBe(fp(1));
    expect((await refusal(store.record({ fingerprint: fp(2), name: 'desk' }))).message).toMatch(/cannot change the trust file .*: permission denied$/);
    expect((await refusal(store.forget('laptop'))).message).toMatch(/permission denied$/);
  });
});

describe('TrustStore: the lock', () => {
  it('changes made at once by several stores on one file all stay', async () => {
    const file = await storeFile();
    await Promise.all(Array.from({ length: 12 }, (_, i) => new TrustStore(file).record({ fingerprint: fp(i), name: `r${i}`, address: `10.0.0.${i + 1}:9527` })));
    const entries = await new TrustStore(file).list();
    expect(entries.map((e) => e.fingerprint).sort()).toEqual(Array.from({ length: 12 }, (_, i) => fp(i)).sort());
  });

  it('a lock whose process is gone is broken at once', async () => {
    const file = await storeFile();
    await new TrustStore(file).record({ fingerprint: fp(1), name: 'laptop' });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    await writeFile(`${file}.lock`, JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), nonce: 'x', time: Date.now() }));
    // Less than the 10 s after which any lock is stale: only the dead process can have freed it.
    await new TrustStore(file, { lockWaitMs: 5_000 }).record({ fingerprint: fp(2), name: 'desk' });
    expect((await new TrustStore(file).list()).map((e) => e.fingerprint)).toEqual([fp(1), fp(2)]);
    expect((await nodeFs.readdir(path.dirname(file))).sort()).toEqual(['known-receivers.json']);
  });

  it('several stores finding the same dead lock at once: each breaks only the lock it judged stale, and every change stays', async () => {
    const file = await storeFile();
    await mkdir(path.dirname(file), { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    await writeFile(`${file}.lock`, JSON.stringify({ pid: Number(dead.stdout), host: os.hostname(), nonce: 'x', time: Date.now() }));
    await Promise.all(Array.from({ length: 10 }, (_, i) => new TrustStore(file, { lockWaitMs: 5_000 }).record({ fingerprint: fp(i), name: `r${i}` })));
    expect((await new TrustStore(file).list()).map((e) => e.fingerprint).sort()).toEqual(Array.from({ length: 10 }, (_, i) => fp(i)).sort());
    expect((await nodeFs.readdir(path.dirname(file))).sort()).toEqual(['known-receivers.json']);
  });

  it('a lock from another host (or unreadable) is broken once it is old; a fresh one held by a live process is waited for, then a clear error', async () => {
    const file = await storeFile();
    await new TrustStore(file).record({ fingerprint: fp(1), name: 'laptop' });
    const lock = `${file}.lock`;
    await writeFile(lock, JSON.stringify({ pid: 1, host: 'elsewhere', nonce: 'x', time: 0 }));
    const error = await refusal(new TrustStore(file, { lockWaitMs: 300 }).record({ fingerprint: fp(2), name: 'desk' }));
    expect(error.message).toMatch(/another ft has held its lock .*known-receivers\.json\.lock/);
    expect((await new TrustStore(file).list()).map((e) => e.fingerprint)).toEqual([fp(1)]);
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    await new TrustStore(file, { lockWaitMs: 60_000 }).record({ fingerprint: fp(2), name: 'desk' });
    await writeFile(lock, 'half-writ');
    await utimes(lock, old, old);
    await new TrustStore(file, { lockWaitMs: 60_000 }).record({ fingerprint: fp(3), name: 'nas' });
    expect((await new TrustStore(file).list()).map((e) => e.fingerprint)).toEqual([fp(1), fp(2), fp(3)]);
  });

  it('our own live process holding the lock is waited for (pid alive, same host)', async () => {
    const file = await storeFile();
    await writeStore(file, { version: 1, receivers: [] });
    await writeFile(`${file}.lock`, JSON.stringify({ pid: process.pid, host: os.hostname(), nonce: 'x', time: Date.now() }));
    await refusal(new TrustStore(file, { lockWaitMs: 200 }).record({ fingerprint: fp(2) }));
  });
});
