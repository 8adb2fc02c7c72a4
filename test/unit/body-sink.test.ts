/**
 * Where a body's bytes wait (issue 9, point 5): a small body costs its length in memory however
 * it is cut up, and a small body cut short leaves nothing on disk.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import { createFsFromVolume, Volume } from 'memfs';
import { describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { MemorySink, openBodySink, SMALL_BODY_BYTES } from '../../src/storage/local/body-sink.js';
import { fileSystemOf } from '../../src/file-system.js';
import { Inbox } from '../../src/storage/local/inbox.js';
import { OWNER_A } from '../helpers/owners.js';

const MiB = 1024 * 1024;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Heap and buffer memory in use after a full collection. */
function memoryInUse(): number {
  gc();
  gc();
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

async function setup(size: number) {
  const vol = new Volume();
  const inbox = await Inbox.open('/inbox', fileSystemOf(createFsFromVolume(vol)), 'rename');
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + (i >>> 9)) & 0xff;
  const id = { owner: OWNER_A, filename: 'f.bin', size, hash: await hashBytes(bytes) };
  return { vol, inbox, bytes, id };
}

describe('a small body in memory', () => {
  it('delivered one byte per read, costs about its length in memory, not hundreds of bytes per byte', async () => {
    const { vol, inbox, bytes, id } = await setup(SMALL_BODY_BYTES);
    const partial = (await inbox.partials.acquire(id, '192.0.2.1'))!;
    const sink = await openBodySink(partial, 0, bytes.length);
    expect(sink).toBeInstanceOf(MemorySink);
    const before = memoryInUse();
    for (let at = 0; at < bytes.length; at++) {
      // Each read is its own allocation, as a socket's are.
      const chunk = Buffer.allocUnsafeSlow(1);
      chunk[0] = bytes[at]!;
      sink.write(chunk);
    }
    const grown = memoryInUse() - before;
    expect((sink as MemorySink).retainedBytes).toBe(bytes.length);
    // 1 MiB of body; kept by reference, a million chunks cost well over 100 MiB.
    expect(grown).toBeLessThan(8 * MiB);
    const file = await sink.finish();
    await file.close();
    expect((vol.readFileSync(partial.dataPath) as Buffer).equals(bytes)).toBe(true);
  });

  it('grows its buffer with what arrives: a peer that announces 1 MiB and sends 10 bytes holds far less', async () => {
    const { inbox, id } = await setup(SMALL_BODY_BYTES);
    const partial = (await inbox.partials.acquire(id, '192.0.2.1'))!;
    const sink = (await openBodySink(partial, 0, SMALL_BODY_BYTES)) as MemorySink;
    sink.write(Buffer.alloc(10));
    expect(sink.retainedBytes).toBeLessThanOrEqual(64 * 1024);
    sink.write(Buffer.alloc(100_000));
    expect(sink.retainedBytes).toBeGreaterThanOrEqual(100_010);
    expect(sink.retainedBytes).toBeLessThanOrEqual(SMALL_BODY_BYTES);
  });

  it('cut short, leaves nothing on disk: no partial file, nothing to resume', async () => {
    const { vol, inbox, bytes, id } = await setup(500_000);
    const partial = (await inbox.partials.acquire(id, '192.0.2.1'))!;
    const sink = await openBodySink(partial, 0, bytes.length);
    sink.write(bytes.subarray(0, 300_000));
    await sink.abandon();
    expect(vol.readdirSync('/inbox/.ft-partial')).toEqual([]);
    partial.release();
    expect(vol.readdirSync('/inbox/.ft-partial')).toEqual([]);
    const again = (await inbox.partials.acquire(id, '192.0.2.1'))!;
    expect(again.offset).toBe(0);
  });

  it('the small rest of a resumed large upload, cut short, leaves the partial as it was', async () => {
    const { vol, inbox, bytes, id } = await setup(MiB + 500_000);
    const first = (await inbox.partials.acquire(id, '192.0.2.1'))!;
    const handle = await first.openForWrite(0);
    await handle.write(bytes, 0, MiB, 0);
    await handle.close();
    first.release();
    const partial = (await inbox.partials.acquire(id, '192.0.2.1'))!;
    expect(partial.offset).toBe(MiB);
    const sink = await openBodySink(partial, MiB, bytes.length - MiB);
    sink.write(bytes.subarray(MiB, MiB + 1000));
    await sink.abandon();
    partial.release();
    expect((vol.readFileSync(partial.dataPath) as Buffer).equals(bytes.subarray(0, MiB))).toBe(true);
  });
});
