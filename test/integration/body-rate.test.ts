/**
 * The minimum body rate is judged per body, from its first byte: a fast body does not lend its
 * bytes to the next one, and a body the receiver reads only to drop is judged like any other.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { ephemeralOwnerKey } from '../../src/auth/owner-key.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { randomBuffer } from '../helpers/files.js';
import { RawClient } from '../helpers/raw-client.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(closeAllReceivers);
afterAll(removeTempDirs);

/** Writes `bytes` in `piece`-byte writes, `everyMs` apart, until done or the connection closes. */
async function drip(c: RawClient, bytes: Buffer, piece: number, everyMs: number): Promise<void> {
  for (let at = 0; at < bytes.length && !c.socket.destroyed; at += piece) {
    c.writeRaw(bytes.subarray(at, at + piece));
    await sleep(everyMs);
  }
}

describe('body rate', () => {
  it('a fast body followed by a slower one (still above the minimum) is not cut off', async () => {
    // Window 1 s (half the idle timeout); minimum 2,000 B/s; the second body arrives at ~10,000 B/s.
    const r = await startReceiver({ idleTimeoutMs: 2000, minBodyRate: 2000 });
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      const fast = randomBuffer(2 * MiB, 'fast');
      const slow = randomBuffer(30_000, 'slow');
      c.send({ type: 'file', id: 1, filename: 'fast.bin', size: fast.length, hash: await hashBytes(fast) });
      c.send({ type: 'file', id: 2, filename: 'slow.bin', size: slow.length, hash: await hashBytes(slow) });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      expect(await c.next()).toEqual({ type: 'accept', id: 2, offset: 0 });
      // The first body lasts over two windows (~800 KB/s); the second starts right behind it.
      c.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: fast.length }));
      await drip(c, fast, 64 * 1024, 80);
      c.writeRaw(encodeFrame({ type: 'body', id: 2, offset: 0, length: slow.length }));
      await drip(c, slow, 1000, 100);
      expect(await c.next(10_000)).toMatchObject({ type: 'done', id: 1 });
      expect(await c.next(10_000)).toMatchObject({ type: 'done', id: 2 });
    } finally {
      c.destroy();
    }
    expect(r.eventsOf('connection-error')).toEqual([]);
  }, 30_000);

  it('a body read only to be dropped (no room for it) is cut off when it trickles', async () => {
    const small: FileSystem = { ...nodeFileSystem, statfs: (async () => ({ bavail: 4 * MiB, bsize: 1 })) as unknown as FileSystem['statfs'] };
    const r = await startReceiver({ fs: small, idleTimeoutMs: 4000, minBodyRate: 1000 });
    const c = await RawClient.connect(r.port);
    const started = performance.now();
    try {
      await c.handshake();
      c.send({ type: 'file', id: 1, filename: 'dropped.bin', size: 2 * MiB, hash: 'xxh64:0000000000000002' });
      expect(await c.next()).toMatchObject({ type: 'accept', id: 1 });
      const other = await RawClient.connect(r.port);
      try {
        // Another connection's started body takes the space first.
        await other.handshake({}, ephemeralOwnerKey());
        other.send({ type: 'file', id: 1, filename: 'taker.bin', size: 3 * MiB, hash: 'xxh64:0000000000000003' });
        expect(await other.next()).toMatchObject({ type: 'accept', id: 1 });
        other.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 3 * MiB }), Buffer.alloc(1024)]));
        await r.waitFor('started');
        c.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: 2 * MiB }));
        expect(await c.next()).toMatchObject({ type: 'failed', id: 1, code: 'NO_SPACE' });
        // Its bytes are still read (and dropped): trickled, they are cut off like any other body's.
        void drip(c, Buffer.alloc(2 * MiB), 1, 200);
        await Promise.race([c.closed, sleep(25_000).then(() => Promise.reject(new Error('still open after 25 s')))]);
      } finally {
        other.destroy();
      }
    } finally {
      c.destroy();
    }
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(await r.waitFor('connection-error', (e) => e.message.includes('dropped.bin'))).toMatchObject({ code: 'TIMEOUT' });
  }, 40_000);

  it('a stream trickled in many small body frames is judged across them, as one body', async () => {
    // Window 1 s; minimum 1,000 B/s; the stream comes as 10-byte frames every 100 ms (~100 B/s),
    // each frame fast: only a rate kept across the frames catches it.
    const r = await startReceiver({ idleTimeoutMs: 2000, minBodyRate: 1000 });
    const c = await RawClient.connect(r.port);
    const started = performance.now();
    try {
      await c.handshake({ features: ['trailing-hash', 'stream'] });
      c.send({ type: 'file', id: 1, filename: 'trickle.bin', stream: true });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      for (let offset = 0; !c.socket.destroyed && performance.now() - started < 20_000; offset += 10) {
        c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset, length: 10 }), Buffer.alloc(10, 7)]));
        await sleep(100);
      }
    } finally {
      c.destroy();
    }
    expect(performance.now() - started).toBeLessThan(15_000);
    expect(await r.waitFor('connection-error', (e) => e.message.includes('trickle.bin'))).toMatchObject({ code: 'TIMEOUT' });
  }, 30_000);
});
