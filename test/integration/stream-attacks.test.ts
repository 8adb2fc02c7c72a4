/**
 * Attacks on streams (PROTOCOL.md §9.4) by a raw sender: whatever it does, what it can make the
 * receiver spend is bounded.
 */
import type { Duplex } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/wire/frame.js';
import { listFiles, randomBuffer, waitUntil } from '../helpers/files.js';
import { RawClient } from '../helpers/raw-client.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs } from '../helpers/temp.js';

const MiB = 1024 * 1024;
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
  it('one that goes on after its failed is not read for ever: the receiver ends the connection', async () => {
    const r = await startReceiver({ maxFileSize: MiB });
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake(STREAMING);
      c.send({ type: 'file', id: 1, filename: 'on-and-on.bin', stream: true });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      const chunk = randomBuffer(MiB, 'on');
      let offset = 0;
      let sent = 0;
      // 2 MiB past the limit and then 200 MiB more, ignoring the failed.
      while (sent < 202 * MiB && (await write(c.socket, frame(1, offset, chunk)))) {
        offset += chunk.length;
        sent += chunk.length;
      }
      const answers = await c.rest(10_000);
      expect(answers[0]).toMatchObject({ type: 'failed', id: 1, code: 'TOO_LARGE' });
      expect(answers[1]).toMatchObject({ type: 'error', code: 'UNEXPECTED_MESSAGE' });
      expect(sent).toBeLessThan(100 * MiB);
    } finally {
      c.destroy();
    }
    await waitUntil(async () => (await listFiles(r.dir)).length === 0, 'nothing kept');
  });
});
