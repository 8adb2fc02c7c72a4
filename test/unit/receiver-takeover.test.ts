/**
 * Takeover at the edges (PROTOCOL.md §6.6, IMPLEMENTATION.md "Leases and takeover"), socket-free:
 * serve() on an in-memory transport and memfs, with a file system that can hold one call back,
 * so a newer header arrives exactly while the older upload is between two of its own steps.
 */
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralOwnerKey, type OwnerKey } from '../../src/auth/owner-key.js';
import { fileSystemOf, type FileSystem } from '../../src/file-system.js';
import { hashBytes } from '../../src/hashing.js';
import { serve, type Receiver } from '../../src/receiver/server.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { memoryTransport } from '../helpers/memory-transport.js';
import { RawClient } from '../helpers/raw-client.js';
import { content } from '../contract/upload-store.contract.js';

const MiB = 1024 * 1024;

const receivers: Receiver[] = [];
const clients: RawClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

/** A call held back until released; `reached` resolves when it is made. */
interface Gate {
  reached: Promise<void>;
  release: () => void;
}

function gate(): Gate & { hit: () => Promise<void> } {
  let reach!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((resolve) => (reach = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    reached,
    release,
    hit: async () => {
      reach();
      await released;
    },
  };
}

/**
 * memfs where the `nth` call of `call` ('open' of a `.part`, or 'writev' on a handle of one)
 * waits for its gate: `arm()` starts counting.
 */
function heldFs(call: 'open' | 'writev', nth: number) {
  const base = fileSystemOf(createFsFromVolume(new Volume()));
  const held = gate();
  let armed = false;
  let count = 0;
  const maybeHold = async () => {
    if (armed && ++count === nth) await held.hit();
  };
  const fs: FileSystem = {
    ...base,
    open: (async (...args: Parameters<FileSystem['open']>) => {
      const isPart = String(args[0]).endsWith('.part');
      if (isPart && call === 'open') await maybeHold();
      const handle = await base.open(...args);
      if (isPart && call === 'writev') {
        const writev = handle.writev.bind(handle) as (...a: unknown[]) => Promise<unknown>;
        (handle as unknown as { writev: unknown }).writev = async (...a: unknown[]) => {
          await maybeHold();
          return writev(...a);
        };
      }
      return handle;
    }) as FileSystem['open'],
  };
  return { fs, held, arm: () => (armed = true) };
}

async function start(fs: FileSystem) {
  const transport = memoryTransport();
  const receiver = await serve({ dir: '/inbox', fs, listen: transport.listen, beacon: false, port: 0 });
  receivers.push(receiver);
  return () => {
    const client = RawClient.over(transport.dial());
    clients.push(client);
    return client;
  };
}

/** Long enough for the newer header to reach the store (a slow machine at worst lets the test pass vacuously). */
const SETTLE_MS = 500;

/** A newer connection of `owner` sends the same header while the older one's step is held, then lets the step go on. */
async function takeOverWhileHeld(connect: () => RawClient, owner: OwnerKey, size: number, hash: string, held: { release(): void }): Promise<RawClient> {
  const newer = connect();
  await newer.handshake({}, owner);
  newer.send({ type: 'file', id: 1, filename: 'big.bin', size, hash });
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  held.release();
  return newer;
}

describe('takeover while the older upload is between its own steps', () => {
  it('a body whose last byte arrived and is being flushed, waiting for its trailing hash, lets go once flushed', async () => {
    // Regression: revoked during the final flush, the older upload kept its lease until its
    // hash came; a sender that died there held the newer one BUSY.
    const { fs, held, arm } = heldFs('writev', 1);
    const connect = await start(fs);
    const owner = ephemeralOwnerKey();
    const bytes = content(MiB + MiB / 2, 1);
    const hash = await hashBytes(bytes);

    const older = connect();
    await older.handshake({}, owner);
    older.send({ type: 'file', id: 1, filename: 'big.bin', size: bytes.length });
    expect(await older.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    arm();
    // One chunk, under the writer's high-water mark: its write is held, so the body's end waits in the flush.
    older.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }), bytes]));
    await held.reached;

    const newer = await takeOverWhileHeld(connect, owner, bytes.length, hash, held);
    // The older sender is silent now (it died before its hash): its upload must let go all the same.
    const accept = await newer.next(30_000);
    expect(accept).toEqual({ type: 'accept', id: 1, offset: bytes.length, prefixHash: hash });
    newer.send({ type: 'body', id: 1, offset: bytes.length, length: 0 });
    expect(await newer.next(15_000)).toMatchObject({ type: 'done', id: 1, hash });
    // The older one was told at its end; its hash, if it ever comes, is read and dropped.
    expect(await older.next()).toMatchObject({ type: 'failed', id: 1, code: 'BUSY', message: expect.stringContaining('took over') });
    older.send({ type: 'hash', id: 1, hash });
    older.send({ type: 'bye' });
    expect(await older.rest()).toEqual([]);
  }, 60_000);

  it('a body being opened when the newer header comes lets go as soon as it is open, before any byte', async () => {
    // Regression: revoked while its partial was being opened, the older upload noticed only at
    // its first byte; a sender that stalled there held the newer one BUSY.
    const { fs, held, arm } = heldFs('open', 1);
    const connect = await start(fs);
    const owner = ephemeralOwnerKey();
    const bytes = content(2 * MiB, 2);
    const hash = await hashBytes(bytes);

    const older = connect();
    await older.handshake({}, owner);
    older.send({ type: 'file', id: 1, filename: 'big.bin', size: bytes.length, hash });
    expect(await older.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    arm();
    older.send({ type: 'body', id: 1, offset: 0, length: bytes.length });
    await held.reached;

    const newer = await takeOverWhileHeld(connect, owner, bytes.length, hash, held);
    // Told at once, before its first byte: the rest of its body is read and dropped.
    expect(await older.next(15_000)).toMatchObject({ type: 'failed', id: 1, code: 'BUSY', message: expect.stringContaining('took over') });
    older.writeRaw(bytes);
    older.send({ type: 'bye' });
    expect(await older.rest()).toEqual([]);
    expect(await newer.next(30_000)).toEqual({ type: 'accept', id: 1, offset: 0 });
    newer.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }), bytes]));
    expect(await newer.next(15_000)).toMatchObject({ type: 'done', id: 1, hash });
  }, 60_000);
});
