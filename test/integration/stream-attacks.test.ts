/**
 * Attacks on streams (PROTOCOL.md §9.4) by a raw sender: whatever it does, what it can make the
 * receiver spend is bounded.
 */
import type { Duplex } from 'node:stream';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { hashBytes } from '../../src/hashing.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/wire/frame.js';
import { nodeFileSystem, type FileSystem } from '../../src/index.js';
import { listFiles, randomBuffer, waitUntil } from '../helpers/files.js';
import { RawClient } from '../helpers/raw-client.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const FAKE_HASH = 'xxh64:0123456789abcdef';
const STREAMING = { features: ['trailing-hash', 'stream'] };

afterEach(closeAllReceivers);
afterAll(removeTempDirs);

const frame = (id: number, offset: number, bytes: Buffer) => Buffer.concat([encodeFrame({ type: 'body', id, offset, length: bytes.length }), bytes]);

/** Writes with backpressure; false once the connection is gone. */
async function write(socket: Duplex, bytes: Buffer): Promise<boolean> {
  if (socket.destroyed || !socket.writable) return false;
  if (socket.write(bytes)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
  return !socket.destroyed && socket.writable;
}

describe('a hostile stream', () => {
  // In frames of 1 MiB, or in one frame that says it is 2^40 bytes long.
  for (const oneFrame of [false, true]) {
    it(`one that goes on after its failed is not read for ever: the receiver ends the connection${oneFrame ? ' (one huge frame)' : ''}`, async () => {
      const r = await startReceiver({ maxFileSize: MiB });
      const c = await RawClient.connect(r.port);
      try {
        await c.handshake(STREAMING);
        c.send({ type: 'file', id: 1, filename: 'on-and-on.bin', stream: true });
        expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
        const chunk = randomBuffer(MiB, 'on');
        if (oneFrame) c.send({ type: 'body', id: 1, offset: 0, length: 2 ** 40 });
        let sent = 0;
        // 2 MiB past the limit and then 200 MiB more, ignoring the failed.
        while (sent < 202 * MiB && (await write(c.socket, oneFrame ? chunk : frame(1, sent, chunk)))) sent += chunk.length;
        const answers = await c.rest(10_000);
        expect(answers[0]).toMatchObject({ type: 'failed', id: 1, code: 'TOO_LARGE' });
        expect(answers[1]).toMatchObject({ type: 'error', code: 'UNEXPECTED_MESSAGE' });
        expect(sent).toBeLessThan(100 * MiB);
      } finally {
        c.destroy();
      }
      await waitUntil(async () => (await listFiles(r.dir)).length === 0, 'nothing kept');
    });
  }
});

describe('a stream of tiny frames', () => {
  it('past the first 1,024 frames, frames averaging under 4 KiB end the connection (BAD_MESSAGE); nothing is kept', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake(STREAMING);
      c.send({ type: 'file', id: 1, filename: 'drip.bin', stream: true });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      // 1-byte frames: each costs the receiver a message's work for one byte.
      let sent = 0;
      while (sent < 20_000 && (await write(c.socket, frame(1, sent, Buffer.from([sent & 0xff]))))) sent += 1;
      const answers = await c.rest(10_000);
      expect(answers).toEqual([expect.objectContaining({ type: 'error', code: 'BAD_MESSAGE', message: expect.stringMatching(/1025 frames for 1025 bytes/) })]);
    } finally {
      c.destroy();
    }
    await waitUntil(async () => (await listFiles(r.dir)).length === 0, 'nothing kept');
  });
});

describe('a stream that fails, every way it can', () => {
  it('gives back its reservation of the free space each time: a file that needs nearly all of it is still accepted', async () => {
    const free: FileSystem = { ...nodeFileSystem, statfs: (async () => ({ bavail: 40 * MiB, bsize: 1 })) as unknown as FileSystem['statfs'] };
    const r = await startReceiver({ fs: free });
    const bytes = randomBuffer(3 * MiB, 'fails');
    const endings: Array<(c: RawClient) => void> = [
      (c) => c.destroy(),
      (c) => c.writeRaw(frame(1, 5, bytes)),
      (c) => c.send({ type: 'hash', id: 1, hash: FAKE_HASH, size: bytes.length + 1 }),
      (c) => c.send({ type: 'hash', id: 1, hash: FAKE_HASH, size: bytes.length }),
      (c) => c.send({ type: 'file', id: 2, filename: 'between.bin', size: 1, hash: FAKE_HASH }),
      (c) => c.send({ type: 'cancel', id: 1 }),
      (c) => c.send({ type: 'bye' }),
    ];
    for (const [round, end] of [...endings, ...endings].entries()) {
      const c = await RawClient.connect(r.port);
      try {
        await c.handshake(STREAMING);
        c.send({ type: 'file', id: 1, filename: `fail-${round}.bin`, stream: true });
        expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
        c.writeRaw(frame(1, 0, bytes));
        end(c);
        await waitUntil(() => r.eventsOf('connection-error').length + r.eventsOf('failed').length > round, `round ${round} over`);
      } finally {
        c.destroy();
      }
    }
    await waitUntil(async () => (await listFiles(r.dir)).length === 0, 'nothing kept');
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake(STREAMING);
      c.send({ type: 'file', id: 1, filename: 'nearly-all.bin', size: 39 * MiB, hash: FAKE_HASH });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      // Its body reserves too: a leak would show here.
      c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 39 * MiB }), randomBuffer(MiB)]));
      await waitUntil(() => r.eventsOf('started').some((e) => e.name === 'nearly-all.bin'), 'its body started');
      expect(r.eventsOf('failed').filter((e) => e.name === 'nearly-all.bin')).toEqual([]);
    } finally {
      c.destroy();
    }
  });
});

describe('a stream and a file of the same name', () => {
  it('racing each other: both arrive whole, neither overwrites the other', async () => {
    const r = await startReceiver();
    const streamed = randomBuffer(3 * MiB, 'streamed');
    const plain = randomBuffer(2 * MiB, 'plain');
    const a = await RawClient.connect(r.port);
    const b = await RawClient.connect(r.port, '127.0.0.1');
    try {
      await a.handshake(STREAMING);
      await b.handshake(STREAMING);
      a.send({ type: 'file', id: 1, filename: 'same.bin', stream: true });
      expect(await a.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      a.writeRaw(frame(1, 0, streamed.subarray(0, MiB)));
      b.send({ type: 'file', id: 1, filename: 'same.bin', size: plain.length, hash: await hashBytes(plain) });
      expect(await b.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      b.writeRaw(frame(1, 0, plain));
      expect(await b.next()).toMatchObject({ type: 'done', id: 1 });
      a.writeRaw(frame(1, MiB, streamed.subarray(MiB)));
      a.send({ type: 'hash', id: 1, hash: await hashBytes(streamed), size: streamed.length });
      expect(await a.next()).toMatchObject({ type: 'done', id: 1 });
    } finally {
      a.destroy();
      b.destroy();
    }
    const received = r.eventsOf('received');
    expect(received).toHaveLength(2);
    expect(new Set(received.map((e) => e.path)).size).toBe(2);
    const contents = await Promise.all(received.map((e) => readFile(path.join(r.dir, e.path))));
    expect(contents.map((c) => c.length).sort()).toEqual([plain.length, streamed.length].sort());
    expect(contents.some((c) => c.equals(plain)) && contents.some((c) => c.equals(streamed))).toBe(true);
  });
});

describe('under a receiver bandwidth limit', () => {
  it('a sender silent while another fills the limit is still cut off by the idle timeout, mid-body or between files', async () => {
    const r = await startReceiver({ limitRate: 64 * 1024, idleTimeoutMs: 1000, minBodyRate: 1 });
    const busy = await RawClient.connect(r.port);
    const silent = await RawClient.connect(r.port);
    const midBody = await RawClient.connect(r.port);
    try {
      await busy.handshake(STREAMING);
      busy.send({ type: 'file', id: 1, filename: 'busy.bin', stream: true });
      expect(await busy.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      let writing = true;
      const filling = (async () => {
        for (let offset = 0; writing && (await write(busy.socket, frame(1, offset, randomBuffer(64 * 1024)))); offset += 64 * 1024);
      })();
      await silent.handshake(STREAMING);
      await midBody.handshake(STREAMING);
      midBody.send({ type: 'file', id: 1, filename: 'mid.bin', stream: true });
      expect(await midBody.next(10_000)).toEqual({ type: 'accept', id: 1, offset: 0 });
      midBody.writeRaw(frame(1, 0, randomBuffer(100 * 1024)).subarray(0, 90 * 1024));
      await Promise.all([silent.closed, midBody.closed]);
      await waitUntil(() => r.eventsOf('connection-error').filter((e) => e.code === 'TIMEOUT').length === 2, 'both timed out');
      expect(busy.socket.destroyed).toBe(false);
      writing = false;
      busy.destroy();
      await filling;
    } finally {
      for (const c of [busy, silent, midBody]) c.destroy();
    }
  }, 20_000);
});

describe('a receiver that stops mid-stream', () => {
  it('keeps nothing of the stream (unlike a file, which is kept for resume)', async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake(STREAMING);
      c.send({ type: 'file', id: 1, filename: 'stopped.bin', stream: true });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(frame(1, 0, randomBuffer(3 * MiB, 'stopped')));
      await waitUntil(async () => (await listFiles(r.dir)).some((name) => name.endsWith('.stream')), 'the stream’s partial written');
      await r.close();
    } finally {
      c.destroy();
    }
    expect(await listFiles(r.dir)).toEqual([]);
  });
});
