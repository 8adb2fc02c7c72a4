/**
 * Streams of unknown size (feature `stream`, PROTOCOL.md §9.4) through the library: any async
 * iterable or Readable arrives as one verified file; limits are kept as its bytes arrive (an
 * endless stream is refused, not read to its end); a stream cut off is not resumable, so the
 * send fails STREAM_INTERRUPTED and the receiver keeps nothing of it.
 */
import { Readable } from 'node:stream';
import { readdirSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BandwidthLimit, FtError, nodeFileSystem, send, type FileSystem, type SendEvent } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import { listFiles, randomBuffer, waitUntil } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { closeAllFakeReceivers, startFakeReceiver, startProtocol3Receiver } from '../helpers/fake-receiver.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { RawClient } from '../helpers/raw-client.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { removeTempDirs } from '../helpers/temp.js';

const MiB = 1024 * 1024;

afterEach(async () => {
  await closeAllProxies();
  await closeAllReceivers();
  await closeAllFakeReceivers();
});
afterAll(removeTempDirs);

/** `bytes` in chunks of uneven sizes (1 byte to 200 KiB), as a pipe might cut them. */
async function* unevenly(bytes: Buffer): AsyncGenerator<Buffer> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = [1, 7, 200 * 1024, 65_536, 3000][i % 5]!;
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

/** Bounds a test whose receiver would not stop the stream: it fails long before. */
const ENDLESS_BOUND = 512 * MiB;

/** Never ends (up to ENDLESS_BOUND): 64 KiB after 64 KiB, until the consumer stops; counts what it gave. */
function endless(): { stream: AsyncGenerator<Buffer>; produced: () => number; stopped: () => boolean } {
  let produced = 0;
  let stopped = false;
  const chunk = randomBuffer(64 * 1024, 'endless');
  async function* stream(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        if (produced >= ENDLESS_BOUND) throw new Error('the endless stream was read to its bound');
        produced += chunk.length;
        yield chunk;
      }
    } finally {
      stopped = true;
    }
  }
  return { stream: stream(), produced: () => produced, stopped: () => stopped };
}

const to = (r: TestReceiver) => ({ host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0 });

/** Nothing under the stream's name, and nothing left in the partial folder. */
async function nothingKept(r: TestReceiver): Promise<void> {
  await waitUntil(async () => (await listFiles(r.dir)).length === 0, 'the stream’s partial deleted');
}

/** The file holds exactly `bytes` (compared whole: a deep equality of MiBs takes seconds). */
async function expectContent(file: string, bytes: Buffer): Promise<void> {
  const stored = await readFile(file);
  expect(stored.length).toBe(bytes.length);
  expect(stored.equals(bytes)).toBe(true);
}

async function expectFtError(promise: Promise<unknown>, code: string): Promise<FtError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code, (error as FtError).message).toBe(code);
  return error as FtError;
}

describe('streams of unknown size', () => {
  it('an async iterable in uneven chunks arrives byte-identical and verified; events give no size until the end', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(3 * MiB + 17, 'uneven');
    const events: SendEvent[] = [];
    const report = await send([{ stream: unevenly(bytes), name: 'dump/db.sql' }], { ...to(r), onEvent: (event) => events.push(event) });
    const hash = await hashBytes(bytes);
    expect(report.files).toEqual([expect.objectContaining({ path: '-', name: 'dump/db.sql', status: 'sent', size: bytes.length, hash, bytesSent: bytes.length })]);
    await expectContent(path.join(r.dir, 'dump/db.sql'), bytes);
    expect(await listFiles(r.dir)).toEqual(['dump/db.sql']);
    expect(events.find((e) => e.type === 'collected')).toEqual({ type: 'collected', files: 1, bytes: null });
    expect(events.find((e) => e.type === 'started')).toMatchObject({ size: null, offset: 0 });
    expect(events.filter((e) => e.type === 'progress').every((e) => e.type === 'progress' && e.size === null)).toBe(true);
    expect(events.find((e) => e.type === 'verified')).toMatchObject({ size: bytes.length, hash });
    expect(await r.waitFor('received')).toMatchObject({ name: 'dump/db.sql', size: bytes.length, hash, verified: true });
    expect(r.eventsOf('started')[0]).toMatchObject({ size: null });
  });

  it('a source of many tiny chunks is gathered into frames the receiver takes (it bounds frames by bytes)', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(20_000, 'tiny');
    async function* byteByByte(): AsyncGenerator<Buffer> {
      for (let at = 0; at < bytes.length; at++) {
        yield bytes.subarray(at, at + 1);
        if (at === 10_000) await new Promise((resolve) => setTimeout(resolve, 1200)); // slow for a while: what came goes
      }
    }
    const report = await send([{ stream: byteByByte(), name: 'tiny.bin' }], to(r));
    expect(report.files[0]).toMatchObject({ status: 'sent', size: bytes.length });
    await expectContent(path.join(r.dir, 'tiny.bin'), bytes);
  });

  it('a Readable, and an empty stream (one empty body), arrive too', async () => {
    const r = await startReceiver();
    const bytes = randomBuffer(2 * MiB, 'readable');
    await send([{ stream: Readable.from([bytes.subarray(0, MiB), bytes.subarray(MiB)]), name: 'r.bin' }], to(r));
    const empty = await send([{ stream: Readable.from([]), name: 'empty' }], to(r));
    expect(empty.files[0]).toMatchObject({ status: 'sent', size: 0, hash: 'xxh64:ef46db3751d8e999' });
    await expectContent(path.join(r.dir, 'r.bin'), bytes);
    expect(await readFile(path.join(r.dir, 'empty'))).toEqual(Buffer.alloc(0));
  });

  it('limitRate holds for a stream: every byte waits for the limit (a clock of the test’s own)', async () => {
    const r = await startReceiver();
    let now = 0;
    let slept = 0;
    const limit = new BandwidthLimit({
      bytesPerSecond: MiB,
      now: () => now,
      sleep: async (ms) => {
        now += ms;
        slept += ms;
      },
    });
    const bytes = randomBuffer(3 * MiB, 'limited');
    const report = await send([{ stream: unevenly(bytes), name: 'limited.bin' }], { ...to(r), limitRate: limit });
    expect(report.files[0]).toMatchObject({ status: 'sent', size: bytes.length });
    // 3 MiB at 1 MiB/s, less the burst the bucket holds at first: close to 3 s of the limit's time.
    expect(slept).toBeGreaterThanOrEqual(3000 - 1000 * (limit.burst / MiB) - 1);
    await expectContent(path.join(r.dir, 'limited.bin'), bytes);
  });

  it('an endless stream is refused TOO_LARGE as soon as it passes the receiver’s limit; nothing is kept', async () => {
    const r = await startReceiver({ maxFileSize: 2 * MiB });
    const source = endless();
    const report = await send([{ stream: source.stream, name: 'endless.bin' }], to(r));
    expect(report.files[0]).toMatchObject({ status: 'failed', code: 'TOO_LARGE' });
    // Stopped soon after the limit: the sender read on only while the answer was on its way.
    expect(source.produced()).toBeLessThan(64 * MiB);
    expect(source.stopped()).toBe(true);
    await nothingKept(r);
  });

  it('an endless stream fails NO_SPACE once the free space is used up, and the partial goes', async () => {
    let dir = '';
    // 40 MiB free at first, less every byte the inbox's partials hold.
    const used = () => {
      const folder = path.join(dir, '.ft-partial');
      return readdirSync(folder).reduce((sum, name) => sum + (statSync(path.join(folder, name), { throwIfNoEntry: false })?.size ?? 0), 0);
    };
    const filling: FileSystem = {
      ...nodeFileSystem,
      statfs: (async () => ({ bavail: Math.max(0, 40 * MiB - used()), bsize: 1 })) as unknown as FileSystem['statfs'],
    };
    const r = await startReceiver({ fs: filling });
    dir = r.dir;
    const source = endless();
    const report = await send([{ stream: source.stream, name: 'full.bin' }], to(r));
    expect(report.files[0]).toMatchObject({ status: 'failed', code: 'NO_SPACE' });
    expect(source.produced()).toBeLessThan(80 * MiB);
    await nothingKept(r);
  });

  it('a stream is refused NO_SPACE at its header when less than the reserve is free', async () => {
    const tiny: FileSystem = { ...nodeFileSystem, statfs: (async () => ({ bavail: 4 * MiB, bsize: 1 })) as unknown as FileSystem['statfs'] };
    const r = await startReceiver({ fs: tiny });
    const source = endless();
    const report = await send([{ stream: source.stream, name: 'x.bin' }], to(r));
    expect(report.files[0]).toMatchObject({ status: 'refused', code: 'NO_SPACE' });
    await nothingKept(r);
  });

  it('a connection cut mid-stream fails STREAM_INTERRUPTED, never retried; the receiver keeps nothing', async () => {
    const r = await startReceiver();
    const proxy = await startProxy({ targetPort: r.port });
    const source = endless();
    let cut = false;
    const sending = send([{ stream: source.stream, name: 'cut.bin' }], {
      ...to(r),
      port: proxy.port,
      retries: 5,
      onEvent: (event) => {
        if (event.type === 'progress' && event.bytes > 4 * MiB && !cut) {
          cut = true;
          proxy.cutAll();
        }
      },
    });
    const error = await expectFtError(sending, 'STREAM_INTERRUPTED');
    expect(error.message).toMatch(/cannot resume: run the job again/);
    expect(error.details.results).toEqual([expect.objectContaining({ name: 'cut.bin', status: 'failed', code: 'STREAM_INTERRUPTED' })]);
    expect(proxy.accepted).toBe(1);
    await nothingKept(r);
  });

  it('a connection lost while the source is silent ends the send at once (not at the next chunk)', async () => {
    const r = await startReceiver();
    const proxy = await startProxy({ targetPort: r.port });
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    async function* silent(): AsyncGenerator<Buffer> {
      yield randomBuffer(MiB, 'silent');
      // A producer busy elsewhere (pg_dump waiting on a lock): nothing comes for a long time.
      await stalled;
    }
    const sending = send([{ stream: silent(), name: 'silent.bin' }], { ...to(r), port: proxy.port });
    await r.waitFor('started');
    await waitUntil(() => proxy.forwarded >= MiB, 'the first chunk through');
    proxy.cutAll();
    try {
      await expectFtError(sending, 'STREAM_INTERRUPTED');
    } finally {
      release();
    }
    await nothingKept(r);
  });

  it('a source that fails mid-way fails STREAM_INTERRUPTED; the receiver keeps nothing', async () => {
    const r = await startReceiver();
    async function* failing(): AsyncGenerator<Buffer> {
      yield randomBuffer(3 * MiB, 'failing');
      throw new Error('pg_dump: connection to server lost');
    }
    const error = await expectFtError(send([{ stream: failing(), name: 'db.sql' }], to(r)), 'STREAM_INTERRUPTED');
    expect(error.message).toMatch(/pg_dump: connection to server lost/);
    await r.waitFor('connection-error');
    await nothingKept(r);
  });

  it('a receiver that says failed and then closes (it reads only so much of a failed stream) fails the file with its code, not the send', async () => {
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: 'ab'.repeat(16), name: 'fake', features: ['trailing-hash', 'stream'] });
      await session.next();
      session.send({ type: 'welcome' });
      const header = await session.next();
      session.send({ type: 'accept', id: header.id!, offset: 0 });
      await session.waitForBodyBytes(MiB);
      // The sender is blocked on a full socket when the answer and the end come.
      session.stopReading();
      await new Promise((resolve) => setTimeout(resolve, 200));
      session.send({ type: 'failed', id: header.id!, code: 'TOO_LARGE', message: 'the stream passed this receiver’s limit' });
      session.send({ type: 'error', code: 'UNEXPECTED_MESSAGE', message: 'stream 1 went on after it failed' });
      session.socket.end();
      setTimeout(() => session.socket.destroy(), 100);
    });
    const source = endless();
    const report = await send([{ stream: source.stream, name: 'cut.bin' }], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 });
    expect(report.files[0]).toMatchObject({ status: 'failed', code: 'TOO_LARGE' });
  });

  it('a receiver without the stream feature gets no header: a one-line error', async () => {
    const fake = await startProtocol3Receiver();
    const error = await expectFtError(
      send([{ stream: unevenly(Buffer.from('data')), name: 'x' }], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 }),
      'UNSUPPORTED_VERSION',
    );
    expect(error.message).toMatch(/cannot take a stream/);
    expect(error.message).not.toMatch(/\n/);
    expect(fake.headers.flat()).toEqual([]);
  });

  it('a stream goes alone and needs a safe name', async () => {
    const stream = unevenly(Buffer.from('x'));
    await expectFtError(send([{ stream, name: 'a' }, 'file.txt'] as never, { host: '127.0.0.1' }), 'USAGE');
    await expectFtError(send([{ stream, name: '../escape' }], { host: '127.0.0.1' }), 'BAD_NAME');
  });
});

describe('a stream on the wire (a raw sender)', () => {
  const STREAMING = { features: ['trailing-hash', 'stream'] };
  const frame = (offset: number, bytes: Buffer) => Buffer.concat([encodeFrame({ type: 'body', id: 1, offset, length: bytes.length }), bytes]);

  it('frames at growing offsets and the hash with the size: done, and the file is the frames’ bytes', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake(STREAMING);
      c.send({ type: 'file', id: 1, filename: 'wire.bin', stream: true });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      const bytes = randomBuffer(3 * MiB, 'wire');
      c.writeRaw(Buffer.concat([frame(0, bytes.subarray(0, 5)), frame(5, bytes.subarray(5, 2 * MiB)), frame(2 * MiB, bytes.subarray(2 * MiB))]));
      c.send({ type: 'hash', id: 1, hash: await hashBytes(bytes), size: bytes.length });
      expect(await c.next()).toMatchObject({ type: 'done', id: 1, hash: await hashBytes(bytes) });
      await expectContent(path.join(r.dir, 'wire.bin'), bytes);
    } finally {
      c.destroy();
    }
  });

  it('a hash declaring another size is BAD_MESSAGE, and nothing of the stream is kept', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake(STREAMING);
      c.send({ type: 'file', id: 1, filename: 'liar.bin', stream: true });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      const bytes = randomBuffer(2 * MiB, 'liar');
      c.writeRaw(frame(0, bytes));
      c.send({ type: 'hash', id: 1, hash: await hashBytes(bytes), size: bytes.length - 1 });
      expect(await c.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE' });
    } finally {
      c.destroy();
    }
    await nothingKept(r);
  });

  it('a stream header without the feature is BAD_MESSAGE', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      c.send({ type: 'file', id: 1, filename: 'x.bin', stream: true });
      expect(await c.next()).toMatchObject({ type: 'error', code: 'BAD_MESSAGE', message: expect.stringContaining('"stream"') });
    } finally {
      c.destroy();
    }
  });

  it('a sender that goes away mid-stream leaves nothing: the partial goes with the connection', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    await c.handshake(STREAMING);
    c.send({ type: 'file', id: 1, filename: 'gone.bin', stream: true });
    expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    c.writeRaw(frame(0, randomBuffer(3 * MiB, 'gone')));
    await waitUntil(async () => (await listFiles(r.dir)).some((name) => name.endsWith('.stream')), 'the stream’s partial written');
    c.destroy();
    expect(await r.waitFor('connection-error')).toMatchObject({ code: 'CONNECTION_LOST', message: expect.not.stringContaining('kept for resume') });
    await nothingKept(r);
  });
});
