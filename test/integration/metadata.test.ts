/**
 * File metadata (the `metadata` feature) over real sockets on 127.0.0.1: modification times,
 * permission bits with preserveMode, and empty folders.
 */
import { chmod, lstat, mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { symlink } from 'node:fs/promises';
import { send } from '../../src/index.js';
import { sendWithLimits } from '../../src/sender/sender.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { MAX_FOLDERS_PER_CONNECTION, parseMtime } from '../../src/wire/messages.js';
import { RawClient } from '../helpers/raw-client.js';
import { closeAllFakeReceivers, startProtocol3Receiver } from '../helpers/fake-receiver.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  await closeAllReceivers();
  await closeAllFakeReceivers();
});
afterAll(removeTempDirs);

const MiB = 1024 * 1024;

function sendTo(r: TestReceiver, paths: string[], options: { preserveMode?: boolean } = {}) {
  return send(paths, { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, ...options });
}

/** Sets a file's mtime to exactly `ns` nanoseconds (a string keeps negative times: see file-metadata.ts). */
async function setMtimeNs(file: string, ns: bigint): Promise<void> {
  const seconds = `${ns < 0n ? '-' : ''}${(ns < 0n ? -ns : ns) / 1_000_000_000n}.${((ns < 0n ? -ns : ns) % 1_000_000_000n).toString().padStart(9, '0')}`;
  await utimes(file, new Date(), seconds as unknown as number);
}

async function mtimeNs(file: string): Promise<bigint> {
  return (await stat(file, { bigint: true })).mtimeNs;
}

async function fileIn(name: string, bytes: number | string): Promise<string> {
  const file = path.join(await tempDir('ft-meta-src-'), name);
  await writeFile(file, typeof bytes === 'string' ? bytes : Buffer.alloc(bytes, 7));
  return file;
}

describe('modification times', () => {
  it.each([
    ['a sub-second time', 1_700_000_000_123_456_789n],
    ['a time before 1970', -300_000_000_987_654_321n],
    ['a whole second', 1_000_000_000_000_000_000n],
  ])('keep %s to the microsecond (small and large files)', async (_, wanted) => {
    const small = await fileIn('small.txt', 'hello');
    const large = await fileIn('large.bin', 3 * MiB);
    for (const file of [small, large]) await setMtimeNs(file, wanted);
    // What the source's file system kept (it may round): the receiver must match the source.
    const source = await mtimeNs(small);
    expect(await mtimeNs(large)).toBe(source);
    const r = await startReceiver();
    const report = await sendTo(r, [small, large]);
    expect(report.files.map((f) => f.status)).toEqual(['sent', 'sent']);
    for (const name of ['small.txt', 'large.bin']) {
      const got = await mtimeNs(path.join(r.dir, name));
      // Microseconds, floored (Node's futimes keeps no more).
      expect(got).toBe((source / 1000n) * 1000n - (source < 0n && source % 1000n !== 0n ? 1000n : 0n));
      expect(source - got).toBeGreaterThanOrEqual(0n);
      expect(source - got).toBeLessThan(1000n);
    }
  });

  it('a resend of the same file, its time set, is still answered "already there"', async () => {
    const file = await fileIn('again.txt', 'same bytes');
    await setMtimeNs(file, 1_234_567_890_500_000_000n);
    const r = await startReceiver();
    const state = await tempDir('ft-meta-state-');
    // Receipts are the owner key's: both sends use one key, and keep the receipt in one cache.
    const options = { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, hashCache: path.join(state, 'cache.json'), senderKeyFile: path.join(state, 'key') };
    const first = await send([file], options);
    expect(first.files[0]!.status).toBe('sent');
    expect(await mtimeNs(path.join(r.dir, 'again.txt'))).toBe(1_234_567_890_500_000_000n);
    const second = await send([file], options);
    expect(second.files[0]!.status).toBe('skipped');
  });
});

describe('a source time the wire cannot carry', () => {
  it('is left out (the receiver\'s own time), and the send goes on', async (context) => {
    // tmpfs keeps times past the 12 integer digits of PROTOCOL.md §9.5; ext4 clamps them.
    const dir = await mkdtemp('/dev/shm/ft-meta-far-').catch(() => undefined);
    if (!dir) return context.skip();
    try {
      const far = path.join(dir, 'far.txt');
      await writeFile(far, 'from the far future');
      await setMtimeNs(far, 10_000_000_000_000n * 1_000_000_000n);
      if ((await mtimeNs(far)) < 1_000_000_000_000n * 1_000_000_000n) return context.skip();
      const near = await fileIn('near.txt', 'an ordinary file');
      const r = await startReceiver();
      const report = await sendTo(r, [far, near]);
      expect(report.files.map((f) => f.status)).toEqual(['sent', 'sent']);
      expect(Number((await mtimeNs(path.join(r.dir, 'far.txt'))) / 1_000_000n)).toBeLessThanOrEqual(Date.now() + 1000);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('permission bits', () => {
  it('are the receiver\'s own (0600) unless preserveMode is asked for', async () => {
    const file = await fileIn('plain.sh', '#!/bin/sh\n');
    await chmod(file, 0o755);
    const r = await startReceiver();
    await sendTo(r, [file]);
    expect((await stat(path.join(r.dir, 'plain.sh'))).mode & 0o7777).toBe(0o600);
  });

  it.each([0o640, 0o755, 0o600])('preserveMode keeps %o', async (mode) => {
    const file = await fileIn('kept.bin', 2 * MiB);
    await chmod(file, mode);
    const small = await fileIn('kept.txt', 'small');
    await chmod(small, mode);
    const previous = process.umask(0o022);
    try {
      const r = await startReceiver();
      await sendTo(r, [file, small], { preserveMode: true });
      for (const name of ['kept.bin', 'kept.txt']) expect((await stat(path.join(r.dir, name))).mode & 0o7777).toBe(mode & ~0o022);
    } finally {
      process.umask(previous);
    }
  });

  it('never applies set-user-id, set-group-id or sticky bits, and the receiver\'s umask masks the rest', async () => {
    const file = await fileIn('suid', 'x');
    await chmod(file, 0o7755);
    // The sender sends them as they are: it is the receiver that refuses them.
    expect((await stat(file)).mode & 0o7000).not.toBe(0);
    const previous = process.umask(0o027);
    try {
      const r = await startReceiver();
      await sendTo(r, [file], { preserveMode: true });
      expect((await stat(path.join(r.dir, 'suid'))).mode & 0o7777).toBe(0o750);
    } finally {
      process.umask(previous);
    }
  });
});

describe('folders', () => {
  it('empty folders arrive, nested ones too; a folder with files is implied by them', async () => {
    const top = path.join(await tempDir('ft-meta-tree-'), 'tree');
    await mkdir(path.join(top, 'empty'), { recursive: true });
    await mkdir(path.join(top, 'deep', 'er', 'est'), { recursive: true });
    await mkdir(path.join(top, 'full'), { recursive: true });
    await writeFile(path.join(top, 'full', 'f.txt'), 'f');
    const r = await startReceiver();
    const report = await sendTo(r, [top]);
    expect(report.files.map((f) => [f.name, f.status, f.folder ?? false])).toEqual([
      ['tree/full/f.txt', 'sent', false],
      ['tree/deep/er/est', 'sent', true],
      ['tree/empty', 'sent', true],
    ]);
    expect((await stat(path.join(r.dir, 'tree', 'empty'))).isDirectory()).toBe(true);
    expect(await readdir(path.join(r.dir, 'tree', 'deep', 'er', 'est'))).toEqual([]);
    expect(r.eventsOf('folder').map((e) => e.path).sort()).toEqual(['tree/deep/er/est', 'tree/empty']);
    // Sent again: the folders are there already, which is fine.
    const again = await sendTo(r, [top]);
    expect(again.files.filter((f) => f.folder).map((f) => f.status)).toEqual(['sent', 'sent']);
  });

  it('an empty folder given alone arrives', async () => {
    const empty = path.join(await tempDir('ft-meta-empty-'), 'nothing-here');
    await mkdir(empty);
    const r = await startReceiver();
    const report = await sendTo(r, [empty]);
    expect(report.files).toMatchObject([{ name: 'nothing-here', status: 'sent', folder: true }]);
    expect((await lstat(path.join(r.dir, 'nothing-here'))).isDirectory()).toBe(true);
  });

  it('a file where the folder should be is refused (reject), or gives a variant (rename)', async () => {
    const top = path.join(await tempDir('ft-meta-clash-'), 'box');
    await mkdir(path.join(top, 'empty'), { recursive: true });
    for (const onConflict of ['reject', 'overwrite'] as const) {
      const r = await startReceiver({ onConflict });
      await mkdir(path.join(r.dir, 'box'));
      await writeFile(path.join(r.dir, 'box', 'empty'), 'a file');
      const report = await sendTo(r, [top]);
      expect(report.files).toMatchObject([{ name: 'box/empty', status: 'refused', code: 'CONFLICT', folder: true }]);
      expect(report.files[0]!.message).toMatch(/box\/empty in the inbox is a file, not a folder/);
      expect((await stat(path.join(r.dir, 'box', 'empty'))).isFile()).toBe(true);
    }
    const r = await startReceiver();
    await mkdir(path.join(r.dir, 'box'));
    await writeFile(path.join(r.dir, 'box', 'empty'), 'a file');
    const report = await sendTo(r, [top]);
    expect(report.files).toMatchObject([{ name: 'box/empty', status: 'sent', folder: true }]);
    expect(r.eventsOf('folder')).toMatchObject([{ name: 'box/empty', path: expect.stringMatching(/^box\/empty \(/) }]);
  });
});

describe('folder limits', () => {
  it('a sender sends at most its limit of folder headers per connection, and the rest over new ones', async () => {
    const top = path.join(await tempDir('ft-meta-many-'), 'many');
    for (const n of [1, 2, 3, 4, 5]) await mkdir(path.join(top, `e${n}`), { recursive: true });
    const r = await startReceiver();
    const report = await sendWithLimits([top], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }, { maxFilesPerConnection: 100, maxFoldersPerConnection: 2 });
    expect(report.files.map((f) => f.status)).toEqual(['sent', 'sent', 'sent', 'sent', 'sent']);
    expect(r.eventsOf('connection')).toHaveLength(3);
    expect((await readdir(path.join(r.dir, 'many'))).sort()).toEqual(['e1', 'e2', 'e3', 'e4', 'e5']);
  });

  it(`a receiver takes ${MAX_FOLDERS_PER_CONNECTION} folder headers on a connection and refuses the next BUSY`, async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake({ features: ['metadata'] });
      let id = 0;
      while (id < MAX_FOLDERS_PER_CONNECTION) {
        const batch: Buffer[] = [];
        for (let n = 0; n < 50 && id < MAX_FOLDERS_PER_CONNECTION; n++) batch.push(encodeFrame({ type: 'file', id: ++id, filename: `f/${id}`, folder: true }));
        c.writeRaw(Buffer.concat(batch));
        for (let n = 0; n < batch.length; n++) expect(await c.next(20_000)).toEqual({ type: 'done', id: id - batch.length + n + 1 });
      }
      c.send({ type: 'file', id: id + 1, filename: 'one-too-many', folder: true });
      expect(await c.next()).toMatchObject({ type: 'refuse', id: id + 1, code: 'BUSY', message: expect.stringContaining(`more than ${MAX_FOLDERS_PER_CONNECTION} folders`) });
      // A file still goes.
      c.send({ type: 'file', id: id + 2, filename: 'f.txt', size: 0, hash: 'xxh64:ef46db3751d8e999' });
      expect(await c.next()).toEqual({ type: 'accept', id: id + 2, offset: 0 });
    } finally {
      c.destroy();
    }
    expect((await readdir(path.join(r.dir, 'f'))).length).toBe(MAX_FOLDERS_PER_CONNECTION);
  }, 60_000);
});

describe('hostile peers', () => {
  async function rawOn(r: TestReceiver): Promise<RawClient> {
    const c = await RawClient.connect(r.port);
    await c.handshake({ features: ['trailing-hash', 'metadata'] });
    return c;
  }

  it.each(['reject', 'overwrite'] as const)('a folder header through a symbolic link is refused UNSAFE_PATH under %s, and nothing is made outside', async (onConflict) => {
    const r = await startReceiver({ onConflict });
    const outside = await tempDir('ft-meta-outside-');
    await symlink(outside, path.join(r.dir, 'link'));
    const c = await rawOn(r);
    try {
      c.send({ type: 'file', id: 1, filename: 'link/inside', folder: true });
      expect(await c.next()).toMatchObject({ type: 'refuse', id: 1, code: 'UNSAFE_PATH' });
      c.send({ type: 'file', id: 2, filename: 'link', folder: true });
      expect(await c.next()).toMatchObject({ type: 'refuse', id: 2, code: 'UNSAFE_PATH' });
    } finally {
      c.destroy();
    }
    expect(await readdir(outside)).toEqual([]);
  });

  it('under rename, a symbolic link where a folder should be is passed over for a variant', async () => {
    const r = await startReceiver();
    const outside = await tempDir('ft-meta-outside-');
    await symlink(outside, path.join(r.dir, 'link'));
    const c = await rawOn(r);
    try {
      c.send({ type: 'file', id: 1, filename: 'link/inside', folder: true });
      expect(await c.next()).toEqual({ type: 'done', id: 1 });
    } finally {
      c.destroy();
    }
    expect(await readdir(outside)).toEqual([]);
    expect(r.eventsOf('folder')).toMatchObject([{ path: expect.stringMatching(/^link \(.*\)\/inside$/) }]);
  });

  it.each([
    ['an exponent', { mtime: '1.7e9' }],
    ['ten fraction digits', { mtime: '1.0123456789' }],
    ['a mode over 0o7777', { mode: 0o10000 }],
    ['a folder header with a size', { folder: true, size: 0 }],
  ])('a header with %s is a protocol error (BAD_MESSAGE), and the receiver serves on', async (_, extra) => {
    const r = await startReceiver();
    const c = await rawOn(r);
    try {
      c.send({ type: 'file', id: 1, filename: 'a.txt', size: 0, hash: 'xxh64:ef46db3751d8e999', ...extra });
      expect(await c.rest()).toEqual([{ type: 'error', code: 'BAD_MESSAGE', message: expect.any(String) }]);
    } finally {
      c.destroy();
    }
    const file = await fileIn('after.txt', 'after');
    expect((await sendTo(r, [file])).files[0]!.status).toBe('sent');
  });

  it('without "metadata" in the hellos, mtime and mode are ignored, whatever they hold', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      c.send({ type: 'file', id: 1, filename: 'a.txt', size: 0, hash: 'xxh64:ef46db3751d8e999', mtime: 'yesterday', mode: 'rwx' });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.send({ type: 'body', id: 1, offset: 0, length: 0 });
      expect(await c.next()).toMatchObject({ type: 'done', id: 1 });
    } finally {
      c.destroy();
    }
    expect((await stat(path.join(r.dir, 'a.txt'))).mode & 0o777).toBe(0o600);
  });
});

describe('a receiver without "metadata"', () => {
  it('gets the files as before, without times, modes or folder headers; empty folders are skipped with a note', async () => {
    const top = path.join(await tempDir('ft-meta-old-'), 'old');
    await mkdir(path.join(top, 'empty'), { recursive: true });
    await writeFile(path.join(top, 'f.txt'), 'f');
    const fake = await startProtocol3Receiver();
    const events: string[] = [];
    const report = await send([top], {
      host: '127.0.0.1',
      port: fake.port,
      fingerprint: fake.fingerprint,
      preserveMode: true,
      onEvent: (event) => events.push(event.type === 'ignored' ? `ignored ${event.name}: ${event.reason}` : event.type),
    });
    expect(fake.headers.flat()).toEqual([{ type: 'file', id: 1, filename: 'old/f.txt', size: 1, hash: expect.any(String) }]);
    expect(report.files.map((f) => [f.name, f.status])).toEqual([
      ['old/f.txt', 'sent'],
      ['old/empty', 'skipped'],
    ]);
    expect(events).toContain('ignored old/empty: empty folder, not sent: the receiver does not take folders (no "metadata" feature)');
  });

  it('the sender still lists "metadata" in its hello, and sends no time or mode', async () => {
    const file = await fileIn('seen.txt', 'x');
    const fake = await startProtocol3Receiver();
    await send([file], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, preserveMode: true });
    expect(fake.hellos[0]!.features).toContain('metadata');
    expect(Object.keys(fake.headers.flat()[0]!).sort()).toEqual(['filename', 'hash', 'id', 'size', 'type']);
  });
});

describe('on the wire', () => {
  it('a header carries mtime as decimal seconds to the nanosecond, and mode only with preserveMode', async () => {
    const file = await fileIn('wire.txt', 'x');
    await chmod(file, 0o4750);
    await setMtimeNs(file, -1_234_567_890_123_456_000n);
    const source = await mtimeNs(file);
    const fake = await startProtocol3Receiver({ features: ['trailing-hash', 'metadata'] });
    await send([file], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint });
    await send([file], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, preserveMode: true });
    const [plain, withMode] = fake.headers.flat();
    expect(parseMtime(plain!.mtime as string)).toBe(source);
    expect(plain).not.toHaveProperty('mode');
    // Sent as the file has them; the receiver drops what it must not apply.
    expect(withMode).toMatchObject({ mtime: plain!.mtime, mode: 0o4750 });
  });
});
