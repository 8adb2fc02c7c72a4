/**
 * A header without a hash (PROTOCOL.md §9.3, the feature trailing-hash): the sender hashes a
 * large file while it sends it, and the hash follows the body. Raw exchanges pin the receiver's side; library sends pin the
 * sender's (one read of the file, a re-send answered by its receipt, a file changed meanwhile).
 */
import { appendFile, mkdir, open, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createFsFromVolume, Volume } from 'memfs';
import { fileSystemOf, FtError, nodeFileSystem, send, type FileSystem } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import type { OwnerKey } from '../../src/auth/owner-key.js';
import { encodeFrame, type JsonObject } from '../../src/wire/frame.js';
import { digest, listFiles, randomBuffer, randomFile, waitUntil, partialBytes } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { countingReads } from '../helpers/counting-fs.js';
import { partialOf, sharedOwnerKey } from '../helpers/owners.js';
import { RAW_OWNER, RawClient } from '../helpers/raw-client.js';
import { closeAllFakeReceivers, startProtocol3Receiver } from '../helpers/fake-receiver.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;

afterEach(async () => {
  await closeAllProxies();
  await closeAllReceivers();
  await closeAllFakeReceivers();
});
afterAll(removeTempDirs);

/** Files the tests send were last changed an hour ago (a file changed within a minute is hashed first). */
const AN_HOUR_AGO = new Date(Date.now() - 3600_000);

async function fileAtRest(file: string, bytes: number, seed?: string): Promise<string> {
  await randomFile(file, bytes, seed);
  await utimes(file, AN_HOUR_AGO, AN_HOUR_AGO);
  return file;
}

/** An upload receipt as a done frame carries it: opaque base64url (PROTOCOL.md §4.9, §6.5). */
const RECEIPT = expect.stringMatching(/^[A-Za-z0-9_-]{16,2048}$/);

/** Header without hash, then the whole body, as the sender proving `owner`; returns the client for what comes next. */
async function sendHashless(r: TestReceiver, name: string, bytes: Buffer, owner: OwnerKey = RAW_OWNER): Promise<RawClient> {
  const c = await RawClient.connect(r.port);
  await c.handshake({}, owner);
  c.send({ type: 'file', id: 1, filename: name, size: bytes.length });
  expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
  c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }), bytes]));
  return c;
}

async function rest(c: RawClient): Promise<JsonObject[]> {
  try {
    return await c.rest(5000);
  } finally {
    c.destroy();
  }
}

describe('the receiver, for a header without a hash', () => {
  it('waits for the hash after the body, then confirms with it', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(2 * MiB + 3, 'hashless ok');
    const hash = await hashBytes(bytes);
    const c = await sendHashless(r, 'a.bin', bytes);
    // The body alone settles nothing: the file needs its hash first.
    await waitUntil(async () => (await partialBytes(r.dir)) >= 2 * MiB, 'the body on disk');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await listFiles(r.dir)).not.toContain('a.bin');
    c.send({ type: 'hash', id: 1, hash });
    // An open receiver (no token) does not tell where it stored the file.
    expect(await c.next()).toEqual({ type: 'done', id: 1, hash, receipt: RECEIPT });
    c.send({ type: 'bye' });
    await rest(c);
    expect((await readFile(path.join(r.dir, 'a.bin'))).equals(bytes)).toBe(true);
  });

  it('a wrong hash after the body → failed HASH_MISMATCH, and nothing is kept', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(2 * MiB, 'hashless wrong');
    const c = await sendHashless(r, 'b.bin', bytes);
    c.send({ type: 'hash', id: 1, hash: await hashBytes(Buffer.from('something else')) });
    expect(await c.next()).toMatchObject({ type: 'failed', id: 1, code: 'HASH_MISMATCH' });
    c.send({ type: 'bye' });
    await rest(c);
    expect(await listFiles(r.dir)).toEqual([]);
  });

  it('anything but the hash after the body is an error; the complete body stays and a real send finishes it without resending', async () => {
    const r = await startReceiver();
    const src = await randomFile(path.join(await tempDir(), 'c.bin'), 3 * MiB);
    const bytes = await readFile(src);
    // One key for the raw upload and the send that finishes it: a partial is its sender's alone.
    const owner = await sharedOwnerKey();
    const c = await sendHashless(r, 'c.bin', bytes, owner.key);
    c.send({ type: 'file', id: 2, filename: 'other.txt', size: 1 });
    expect(await rest(c)).toEqual([{ type: 'error', code: 'UNEXPECTED_MESSAGE', message: expect.stringContaining('"hash"') }]);
    await waitUntil(async () => (await partialBytes(r.dir)) === bytes.length, 'the body kept for resume');

    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile: owner.senderKeyFile });
    expect(report.files[0]).toMatchObject({ status: 'resumed', resumedFrom: bytes.length, bytesSent: 0, hash: await hashBytes(bytes) });
    expect(await digest(path.join(r.dir, 'c.bin'))).toEqual(await digest(src));
  });

  it('a body that cannot be written is answered failed, and the hash that still follows it is read and ignored', async () => {
    const noSpace: FileSystem = {
      ...nodeFileSystem,
      open: (async (...args: Parameters<FileSystem['open']>) => {
        const handle = await nodeFileSystem.open(...args);
        (handle as unknown as { writev: unknown }).writev = async () => {
          throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        };
        return handle;
      }) as FileSystem['open'],
    };
    const r = await startReceiver({ fs: noSpace });
    const bytes = randomBuffer(3 * MiB, 'no space');
    const c = await sendHashless(r, 'full.bin', bytes);
    expect(await c.next()).toMatchObject({ type: 'failed', id: 1, code: 'NO_SPACE' });
    c.send({ type: 'hash', id: 1, hash: await hashBytes(bytes) });
    // The connection goes on: a small file (written without writev) still lands.
    const smallHash = await hashBytes(Buffer.from('small'));
    c.send({ type: 'file', id: 2, filename: 'small.txt', size: 5, hash: smallHash });
    c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 2, offset: 0, length: 5 }), Buffer.from('small')]));
    expect(await c.next()).toEqual({ type: 'accept', id: 2, offset: 0 });
    expect(await c.next()).toEqual({ type: 'done', id: 2, hash: smallHash, receipt: RECEIPT });
    c.send({ type: 'bye' });
    expect(await rest(c)).toEqual([]);
    expect(r.eventsOf('connection-error')).toEqual([]);
    expect(await readFile(path.join(r.dir, 'small.txt'), 'utf8')).toBe('small');
  });

  it('a hash with no body waiting for one is an error', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    await c.handshake();
    c.send({ type: 'hash', id: 1, hash: await hashBytes(Buffer.from('x')) });
    expect(await rest(c)).toEqual([{ type: 'error', code: 'UNEXPECTED_MESSAGE', message: expect.any(String) }]);
  });

  it('a partial is found by its name and size (and sender), whether the header that left it or the one asking has the hash or not', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(3 * MiB, 'cross');
    const hash = await hashBytes(bytes);
    const held = 2 * MiB;
    const leave = async (name: string, withHash: boolean) => {
      const c = await RawClient.connect(r.port);
      await c.handshake();
      c.send(withHash ? { type: 'file', id: 1, filename: name, size: bytes.length, hash } : { type: 'file', id: 1, filename: name, size: bytes.length });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }), bytes.subarray(0, held)]));
      await waitUntil(async () => (await partialBytes(r.dir)) >= held, 'the partial');
      const dropped = r.eventsOf('connection-error').length;
      c.destroy();
      // Released once the receiver has seen the connection go (until then a new sender is told BUSY).
      await waitUntil(() => r.eventsOf('connection-error').length > dropped, 'the drop noticed');
    };
    const offered = async (name: string, withHash: boolean) => {
      const c = await RawClient.connect(r.port);
      await c.handshake();
      c.send(withHash ? { type: 'file', id: 1, filename: name, size: bytes.length, hash } : { type: 'file', id: 1, filename: name, size: bytes.length });
      const answer = await c.next();
      c.destroy();
      return answer;
    };
    const prefixHash = await hashBytes(bytes.subarray(0, held));
    await leave('by-name.bin', false);
    expect(await offered('by-name.bin', true)).toEqual({ type: 'accept', id: 1, offset: held, prefixHash });
    await leave('by-content.bin', true);
    expect(await offered('by-content.bin', false)).toEqual({ type: 'accept', id: 1, offset: held, prefixHash });
  });

  // Issue 10: a stale holder used to make every newer connection poll BUSY for as long as it stayed.
  it('a newer header of the same sender takes the upload over, whether or not either header has the hash; the older one is told BUSY', async () => {
    // Both raw clients are one owner here (RAW_OWNER); that another owner's upload of the same
    // name and size gets a partial of its own is pinned in the store's contract suite.
    const r = await startReceiver();
    const size = 3 * MiB;
    const a = await RawClient.connect(r.port);
    await a.handshake();
    a.send({ type: 'file', id: 1, filename: 'disk.img', size });
    expect(await a.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    const aBytes = randomBuffer(size, 'host a');
    a.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: size }), aBytes.subarray(0, 2 * MiB)]));
    await waitUntil(async () => (await partialBytes(r.dir)) >= 2 * MiB, 'host A under way');
    const b = await RawClient.connect(r.port);
    await b.handshake();
    b.send({ type: 'file', id: 1, filename: 'disk.img', size, hash: await hashBytes(randomBuffer(size, 'host b')) });
    // Offered what A kept, with the hash of that prefix: B's sender finds it is not its own and starts again.
    expect(await b.next(15_000)).toEqual({ type: 'accept', id: 1, offset: 2 * MiB, prefixHash: await hashBytes(aBytes.subarray(0, 2 * MiB)) });
    // Within one connection too: the newer header (id 2) takes over from id 1, whose body is then refused.
    b.send({ type: 'file', id: 2, filename: 'disk.img', size });
    expect(await b.next(15_000)).toMatchObject({ type: 'accept', id: 2, offset: 2 * MiB });
    b.send({ type: 'body', id: 1, offset: 0, length: 0 });
    // A body of the wrong length for id 1 would be BAD_MESSAGE; a taken-over one is refused before that is looked at.
    expect(await b.next()).toMatchObject({ type: 'failed', id: 1, code: 'BUSY', message: expect.stringContaining('took over') });
    a.writeRaw(aBytes.subarray(2 * MiB, 2 * MiB + 1024));
    expect(await a.next()).toMatchObject({ type: 'failed', id: 1, code: 'BUSY' });
    a.destroy();
    b.destroy();
  });

  // Issue 9, point 3: need-hash came only at the right size, which told a peer a file's size.
  it('answers a name taken by a file of the same size exactly like one of another size: accept, never need-hash', async () => {
    const r = await startReceiver();
    await writeFile(path.join(r.dir, 'same.bin'), Buffer.alloc(100, 1));
    await writeFile(path.join(r.dir, 'other.bin'), Buffer.alloc(50, 1));
    const c = await RawClient.connect(r.port);
    await c.handshake();
    c.send({ type: 'file', id: 1, filename: 'same.bin', size: 100 });
    c.send({ type: 'file', id: 2, filename: 'other.bin', size: 100 });
    c.send({ type: 'file', id: 3, filename: 'same.bin/x', size: 100 });
    expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    expect(await c.next()).toEqual({ type: 'accept', id: 2, offset: 0 });
    // A file where a folder is needed is not refused either (under rename): that told a peer the name exists.
    expect(await c.next()).toEqual({ type: 'accept', id: 3, offset: 0 });
    c.destroy();
  });
});

/** A memfs file system holding /src/<name>, changed `age` ms ago, whose reads are counted. */
function countingVolume(name: string, bytes: Buffer, ageMs: number): { fs: FileSystem; read: () => number } {
  const vol = new Volume();
  vol.mkdirSync('/src');
  vol.writeFileSync(`/src/${name}`, bytes);
  const when = new Date(Date.now() - ageMs);
  vol.utimesSync(`/src/${name}`, when, when);
  const { fs, bytesRead } = countingReads(fileSystemOf(createFsFromVolume(vol)));
  return { fs, read: bytesRead };
}

/** `base`, except that the second (or `nth`) asynchronous open of a file named `name` fails with EACCES. */
function secondOpenFails(base: FileSystem, name: string, nth = 2): FileSystem {
  let opens = 0;
  return {
    ...base,
    open: (async (...args: Parameters<FileSystem['open']>) => {
      if (path.basename(String(args[0])) === name && ++opens === nth) throw Object.assign(new Error('permission denied'), { code: 'EACCES' });
      return base.open(...args);
    }) as FileSystem['open'],
  };
}

describe('the sender, for a large file not in the hash cache', () => {
  it('reads it once: the hash is computed while the body is sent', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(3 * MiB + 17, 'read once');
    const { fs, read } = countingVolume('once.bin', bytes, 3600_000);
    const report = await send(['/src/once.bin'], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs, retries: 0 });
    expect(report.files[0]).toMatchObject({ status: 'sent', hash: await hashBytes(bytes) });
    expect(read()).toBe(bytes.length);
    expect((await readFile(path.join(r.dir, 'once.bin'))).equals(bytes)).toBe(true);
  });

  it('hashes first a file changed within the last minute, which may be changing still', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(3 * MiB, 'fresh');
    const { fs, read } = countingVolume('fresh.bin', bytes, 5_000);
    const report = await send(['/src/fresh.bin'], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs, retries: 0 });
    expect(report.files[0]).toMatchObject({ status: 'sent', hash: await hashBytes(bytes) });
    expect(read()).toBe(2 * bytes.length);
  });

  it('remembers the hash computed while sending: with the hash cache, the next header carries it', async () => {
    const r = await startReceiver();
    const src = await fileAtRest(path.join(await tempDir(), 'cached.bin'), 2 * MiB);
    const hashCache = path.join(await tempDir(), 'hashes.json');
    const senderKeyFile = path.join(await tempDir(), 'sender-key.pem');
    expect((await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, hashCache, senderKeyFile })).files[0]).toMatchObject({ status: 'sent' });
    const cached = JSON.parse(await readFile(hashCache, 'utf8')) as { hashes: Record<string, { hash: string }> };
    expect(Object.values(cached.hashes).map((e) => e.hash)).toEqual([await hashBytes(await readFile(src))]);
    // The header now carries the hash and the upload's receipt, so the receiver skips at once (no read).
    const events: string[] = [];
    const again = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, hashCache, senderKeyFile, onEvent: (e) => events.push(e.type) });
    expect(again.files[0]).toMatchObject({ status: 'skipped', bytesSent: 0 });
    expect(events).not.toContain('started');
  });

  it('sent again with the same key and cache: read once in all, and "already there" by its receipt', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(2 * MiB, 'again');
    const { fs, read } = countingVolume('again.bin', bytes, 3600_000);
    const state = await tempDir();
    const options = { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs, hashCache: path.join(state, 'hashes.json'), senderKeyFile: path.join(state, 'key.pem') };
    expect((await send(['/src/again.bin'], options)).files[0]).toMatchObject({ status: 'sent' });
    const second = await send(['/src/again.bin'], options);
    expect(second.files[0]).toMatchObject({ status: 'skipped', bytesSent: 0 });
    expect(read()).toBe(bytes.length);
    expect(await listFiles(r.dir)).toEqual(['again.bin']);
  });

  it('a different file of the same size under the same name is sent at once (protocol 3 has no need-hash), beside the old one', async () => {
    const r = await startReceiver();
    const dir = await tempDir();
    const src = await fileAtRest(path.join(dir, 'twin.bin'), 2 * MiB, 'first twin');
    const first = await digest(src);
    await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    await fileAtRest(src, 2 * MiB, 'second twin');
    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(report.files[0]).toMatchObject({ status: 'sent', bytesSent: 2 * MiB });
    expect(await listFiles(r.dir)).toEqual(['twin (1).bin', 'twin.bin']);
    expect(await digest(path.join(r.dir, 'twin.bin'))).toEqual(first);
    expect(await digest(path.join(r.dir, 'twin (1).bin'))).toEqual(await digest(src));
  });

  it('a file that grows while it is sent fails with FILE_CHANGED; nothing lands and the torn copy is never confirmed', async () => {
    const r = await startReceiver();
    // Large enough that the sender is still reading when the file grows (socket buffers hold a few MiB).
    const src = await fileAtRest(path.join(await tempDir(), 'growing.log'), 24 * MiB);
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 4 * MiB });
    // A key file, to know which owner the partial belongs to.
    const owner = await sharedOwnerKey();
    // One retry: the connection is dropped with the changed file, and the batch goes on without it.
    const sending = send([src], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 1, retryDelayMs: 10, senderKeyFile: owner.senderKeyFile });
    sending.catch(() => undefined);
    await waitUntil(async () => (await partialBytes(r.dir)) > MiB, 'part of the body');
    await appendFile(src, 'one more line\n');
    proxy.setBytesPerSecond(Infinity);
    const report = await sending;
    expect(report.files[0]).toMatchObject({ status: 'failed', code: 'FILE_CHANGED' });
    expect(r.eventsOf('received')).toEqual([]);
    expect((await listFiles(r.dir)).filter((f) => !f.startsWith('.ft-partial/'))).toEqual([]);
    // What arrived stays only as a partial under the name, which the next send checks before resuming.
    expect(await listFiles(r.dir)).toContain(`${partialOf(owner.key, 'growing.log', 24 * MiB)}.part`);
  });

  it('a file rewritten in place (same size) while it is sent fails with FILE_CHANGED, and the other files still go, without retries', async () => {
    const r = await startReceiver();
    const dir = await tempDir();
    const src = await fileAtRest(path.join(dir, 'rewritten.bin'), 24 * MiB);
    const other = path.join(dir, 'other.txt');
    await writeFile(other, 'sent after the change\n');
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 4 * MiB });
    const sending = send([src, other], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 0 });
    sending.catch(() => undefined);
    await waitUntil(async () => (await partialBytes(r.dir)) > MiB, 'part of the body');
    const handle = await open(src, 'r+');
    await handle.write(Buffer.from('changed in place'), 0, 16, 0);
    await handle.close();
    proxy.setBytesPerSecond(Infinity);
    const report = await sending;
    expect(report.files.map((f) => [f.name, f.status, f.code])).toEqual([
      ['rewritten.bin', 'failed', 'FILE_CHANGED'],
      ['other.txt', 'sent', undefined],
    ]);
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['other.txt']);
  });

  it('a file that cannot be read when it is hashed again after HASH_MISMATCH fails alone; the others are sent', async () => {
    // The fake finds the first body of big.bin wrong; the real receiver would need a file changing under it.
    const fake = await startProtocol3Receiver({ failBody: (header) => (header.filename === 'big.bin' ? 'HASH_MISMATCH' : undefined) });
    const bytes = randomBuffer(2 * MiB, 'unreadable later');
    const vol = new Volume();
    vol.mkdirSync('/src');
    vol.writeFileSync('/src/big.bin', bytes);
    vol.writeFileSync('/src/small.txt', 'small');
    vol.utimesSync('/src/big.bin', AN_HOUR_AGO, AN_HOUR_AGO);
    // The first open only looks at it (its hash is deferred), the second sends its body; the third, to hash it again, fails.
    const failing = secondOpenFails(fileSystemOf(createFsFromVolume(vol)), 'big.bin', 3);
    const report = await send(['/src/big.bin', '/src/small.txt'], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, fs: failing, retries: 0 });
    expect(report.files.map((f) => [f.name, f.status, f.code])).toEqual([
      ['big.bin', 'failed', 'LOCAL_FILE'],
      ['small.txt', 'sent', undefined],
    ]);
  });

  it('a file that cannot be read when a resume is offered is taken back; it fails alone and the others are sent', async () => {
    const r = await startReceiver();
    const dir = await tempDir();
    const big = await randomFile(path.join(dir, 'big.bin'), 3 * MiB);
    const small = path.join(dir, 'small.txt');
    await writeFile(small, 'small');
    // A partial of the first 2 MiB, as a cut connection leaves it, made under the key the send proves.
    const bytes = await readFile(big);
    const owner = await sharedOwnerKey();
    const c = await RawClient.connect(r.port);
    await c.handshake({}, owner.key);
    c.send({ type: 'file', id: 1, filename: 'big.bin', size: bytes.length, hash: await hashBytes(bytes) });
    expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }), bytes.subarray(0, 2 * MiB)]));
    await waitUntil(async () => (await partialBytes(r.dir)) >= 2 * MiB, 'the partial');
    c.destroy();
    await r.waitFor('connection-error');
    // The first open hashes it; the second, to check the receiver's prefix, fails.
    const failing = secondOpenFails(nodeFileSystem, 'big.bin');
    const report = await send([big, small], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: failing, retries: 0, senderKeyFile: owner.senderKeyFile });
    expect(report.files.map((f) => [f.name, f.status, f.code])).toEqual([
      ['big.bin', 'failed', 'LOCAL_FILE'],
      ['small.txt', 'sent', undefined],
    ]);
    expect(r.eventsOf('connection-error')).toHaveLength(1); // only the cut one above
  });

  it('torn metadata (an empty .json after a power cut) counts as absent: the first large send after a start goes through, and resumes work', async () => {
    const inbox = path.join(await tempDir(), 'inbox');
    const partials = path.join(inbox, '.ft-partial');
    await mkdir(partials, { recursive: true });
    const src = await fileAtRest(path.join(await tempDir(), 'after-power-cut.bin'), 3 * MiB);
    // Torn metadata of this very upload (with its data, of the owner the send proves), of another one, and of an older version's.
    const owner = await sharedOwnerKey();
    const own = partialOf(owner.key, 'after-power-cut.bin', 3 * MiB);
    await writeFile(path.join(inbox, `${own}.part`), (await readFile(src)).subarray(0, 2 * MiB));
    await writeFile(path.join(inbox, `${own}.json`), '');
    await writeFile(path.join(partials, '0123456789abcdef0123456789abcdef.json'), '');
    await writeFile(path.join(partials, '0123456789abcdef0123456789abcdef.part'), 'x');
    await writeFile(path.join(partials, `0123456789abcdef-${3 * MiB}.json`), '');
    const r = await startReceiver({ dir: inbox });
    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile: owner.senderKeyFile });
    expect(report.files[0]).toMatchObject({ status: 'resumed', resumedFrom: 2 * MiB });
    expect(await digest(path.join(r.dir, 'after-power-cut.bin'))).toEqual(await digest(src));
  });

  it('an aborted first send resumes from the partial kept under the name, and the result is exact', async () => {
    const r = await startReceiver();
    const src = await fileAtRest(path.join(await tempDir(), 'resume.bin'), 6 * MiB);
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 4 * MiB });
    const controller = new AbortController();
    // The same owner key for both runs: a partial is private to the key that started it.
    const senderKeyFile = path.join(await tempDir(), 'sender-key.pem');
    const first = send([src], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, signal: controller.signal, retries: 0, senderKeyFile });
    first.catch(() => undefined);
    await waitUntil(async () => (await partialBytes(r.dir)) > 2 * MiB, 'part of the body');
    controller.abort();
    expect(await first.catch((e: unknown) => e)).toBeInstanceOf(FtError);
    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile });
    expect(report.files[0]!.status).toBe('resumed');
    expect(report.files[0]!.resumedFrom).toBeGreaterThan(2 * MiB);
    expect(report.files[0]!.bytesSent).toBe(6 * MiB - report.files[0]!.resumedFrom!);
    expect(await digest(path.join(r.dir, 'resume.bin'))).toEqual(await digest(src));
  });
});
