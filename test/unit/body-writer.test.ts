import { promises as nodeFs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyWriter, HIGH_WATER_BYTES as HIGH_WATER } from '../../src/storage/local/body-writer.js';
import type { FileHandle } from '../../src/file-system.js';

const MiB = 1024 * 1024;

function pattern(size: number, seed: number): Buffer {
  const bytes = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    bytes[i] = x >>> 24;
  }
  return bytes;
}

/** Splits `data` into chunks of pseudo-random sizes between 1 and `max` bytes. */
function chunksOf(data: Buffer, max: number, seed: number): Buffer[] {
  const chunks: Buffer[] = [];
  let x = seed;
  for (let at = 0; at < data.length; ) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const size = 1 + (x % max);
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** Feeds chunks as the receiver does: wait for drained() whenever write() says so. */
async function feed(writer: BodyWriter, chunks: Buffer[]): Promise<void> {
  for (const chunk of chunks) {
    if (!writer.write(chunk)) await writer.drained();
  }
}

/** Rejects if `promise` has not settled within `ms`: a hang becomes a test failure, not a timeout. */
function within<T>(promise: Promise<T>, ms = 2000): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Lets pending promise callbacks and I/O callbacks run. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

interface WritevCall {
  position: number;
  buffers: number;
  bytes: number;
}

/** An in-memory file behind the writev a BodyWriter uses; `limit` caps the bytes taken per call. */
function memoryHandle(options: { limit?: number; size?: number } = {}) {
  let file = Buffer.alloc(options.size ?? 0);
  const calls: WritevCall[] = [];
  const handle = {
    async writev(buffers: Buffer[], position: number) {
      const bytes = buffers.reduce((sum, b) => sum + b.length, 0);
      calls.push({ position, buffers: buffers.length, bytes });
      const take = Math.min(bytes, options.limit ?? Infinity);
      const data = Buffer.concat(buffers).subarray(0, take);
      if (file.length < position + take) file = Buffer.concat([file, Buffer.alloc(position + take - file.length)]);
      data.copy(file, position);
      return { bytesWritten: take, buffers };
    },
  };
  return { handle: handle as unknown as FileHandle, calls, contents: () => file };
}

/** A handle whose writev calls wait until the test lets each one finish. */
function gatedHandle() {
  const pending: Array<{ bytes: number; position: number; finish: () => void }> = [];
  const handle = {
    writev(buffers: Buffer[], position: number) {
      const bytes = buffers.reduce((sum, b) => sum + b.length, 0);
      return new Promise((resolve) => {
        pending.push({ bytes, position, finish: () => resolve({ bytesWritten: bytes, buffers }) });
      });
    },
  };
  return { handle: handle as unknown as FileHandle, pending };
}

function enospc(): NodeJS.ErrnoException {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
}

/** A handle that accepts `okCalls` writev calls and then rejects every one with ENOSPC. */
function fullDiskHandle(okCalls = 0) {
  let calls = 0;
  let written = 0;
  const handle = {
    async writev(buffers: Buffer[]) {
      calls++;
      if (calls > okCalls) throw enospc();
      const bytes = buffers.reduce((sum, b) => sum + b.length, 0);
      written += bytes;
      return { bytesWritten: bytes, buffers };
    },
  };
  return { handle: handle as unknown as FileHandle, calls: () => calls, written: () => written };
}

describe('BodyWriter', () => {
  describe('on a file system', () => {
    let tempDir: string | undefined;
    afterEach(async () => {
      if (tempDir) await nodeFs.rm(tempDir, { recursive: true, force: true });
      tempDir = undefined;
    });

    it('writes many small chunks in order on memfs', async () => {
      const fs = createFsFromVolume(new Volume()).promises;
      const data = pattern(5 * MiB + 123, 1);
      const handle = (await fs.open('/body.bin', 'w')) as unknown as FileHandle;
      const writer = new BodyWriter(handle, 0);
      await feed(writer, chunksOf(data, 4000, 7));
      await writer.flush();
      await handle.close();
      expect(writer.position).toBe(data.length);
      const written = (await fs.readFile('/body.bin')) as Buffer;
      expect(written.length).toBe(data.length);
      expect(written.equals(data)).toBe(true);
    });

    it('writes after a start offset on a real file, keeping the bytes before it', async () => {
      tempDir = await nodeFs.mkdtemp(path.join(os.tmpdir(), 'ft-body-writer-'));
      const file = path.join(tempDir, 'partial.bin');
      const head = pattern(1000, 2);
      await nodeFs.writeFile(file, head);
      const rest = pattern(2 * MiB + 17, 3);
      const handle = await nodeFs.open(file, 'r+');
      try {
        const writer = new BodyWriter(handle, head.length);
        await feed(writer, chunksOf(rest, 1500, 11));
        await writer.flush();
        expect(writer.position).toBe(head.length + rest.length);
      } finally {
        await handle.close();
      }
      expect((await nodeFs.readFile(file)).equals(Buffer.concat([head, rest]))).toBe(true);
    });
  });

  it('batches small chunks into few, contiguous writev calls of at most 1024 buffers', async () => {
    const { handle, calls, contents } = memoryHandle({ size: 500 });
    const data = pattern(3 * MiB, 4);
    const writer = new BodyWriter(handle, 500);
    await feed(writer, chunksOf(data, 600, 5)); // ~10,000 chunks
    await writer.flush();
    expect(contents().subarray(500).equals(data)).toBe(true);
    let expected = 500;
    for (const call of calls) {
      expect(call.position).toBe(expected);
      expect(call.buffers).toBeLessThanOrEqual(1024);
      expected += call.bytes;
    }
    expect(expected).toBe(500 + data.length);
    expect(calls.length).toBeLessThan(40);
  });

  it('copies tiny chunks rather than keeping each by reference: 1 MiB trickled one byte per read reaches writev in a few buffers', async () => {
    const { handle, calls, contents } = memoryHandle();
    const data = pattern(MiB + 100, 12);
    const writer = new BodyWriter(handle, 0);
    for (let at = 0; at < data.length; at++) {
      // Each read is its own allocation, as a socket's are: kept by reference, each costs hundreds of bytes.
      const chunk = Buffer.allocUnsafeSlow(1);
      chunk[0] = data[at]!;
      if (!writer.write(chunk)) await writer.drained();
    }
    await writer.flush();
    expect(contents().equals(data)).toBe(true);
    expect(calls.reduce((sum, call) => sum + call.buffers, 0)).toBeLessThanOrEqual(8);
  });

  it('keeps the order of tiny chunks copied and large ones kept by reference, interleaved', async () => {
    const { handle, contents } = memoryHandle();
    const data = pattern(3 * MiB, 13);
    const writer = new BodyWriter(handle, 0);
    const sizes = [1, 40_000, 3, 17, 70_000, 16_383, 16_384, 5, 300_000];
    const chunks: Buffer[] = [];
    for (let at = 0, i = 0; at < data.length; i++) {
      const size = Math.min(sizes[i % sizes.length]!, data.length - at);
      chunks.push(data.subarray(at, at + size));
      at += size;
    }
    await feed(writer, chunks);
    await writer.flush();
    expect(contents().equals(data)).toBe(true);
    expect(writer.position).toBe(data.length);
  });

  it('completes short writes by writing the rest at the right position', async () => {
    const { handle, calls, contents } = memoryHandle({ limit: 777 });
    const data = pattern(300_000, 6);
    const writer = new BodyWriter(handle, 0);
    await feed(writer, chunksOf(data, 5000, 9));
    await writer.flush();
    expect(contents().equals(data)).toBe(true);
    expect(writer.position).toBe(data.length);
    expect(calls.length).toBeGreaterThanOrEqual(Math.ceil(data.length / 777));
  });

  it('writes whatever is queued on flush, even below the batch size', async () => {
    const { handle, calls, contents } = memoryHandle();
    const writer = new BodyWriter(handle, 0);
    expect(writer.write(Buffer.from('hello '))).toBe(true);
    expect(writer.write(Buffer.from('world'))).toBe(true);
    expect(calls).toHaveLength(0); // small chunks wait for a batch
    await writer.flush();
    expect(contents().toString()).toBe('hello world');
    expect(writer.position).toBe(11);
    await writer.flush(); // nothing left: returns at once
    expect(calls).toHaveLength(1);
  });

  it('accepts empty chunks', async () => {
    const { handle, contents } = memoryHandle();
    const writer = new BodyWriter(handle, 0);
    writer.write(Buffer.alloc(0));
    writer.write(Buffer.from('x'));
    writer.write(Buffer.alloc(0));
    await within(writer.flush());
    expect(contents().toString()).toBe('x');
  });

  it('signals backpressure past the high-water mark, and drained() resolves once writes catch up', async () => {
    const { handle, pending } = gatedHandle();
    const writer = new BodyWriter(handle, 0);
    const chunk = pattern(MiB, 7);

    expect(writer.write(chunk)).toBe(true); // 1 MiB queued: a write starts
    expect(pending).toHaveLength(1);
    for (let held = 2 * MiB; held < HIGH_WATER; held += MiB) expect(writer.write(chunk)).toBe(true);
    expect(writer.write(chunk)).toBe(false); // the high-water mark held in memory: stop reading
    expect(writer.write(Buffer.alloc(10))).toBe(false);

    let drained = false;
    const waiting = writer.drained().then(() => {
      drained = true;
    });
    await tick();
    await tick();
    expect(drained).toBe(false); // nothing was written yet
    expect(writer.position).toBe(0);

    pending.shift()!.finish(); // the first MiB reaches the file
    await within(waiting);
    expect(drained).toBe(true);
    expect(writer.position).toBe(MiB);

    // The rest goes out as one more batch; flush waits for it.
    let flushed = false;
    const flushing = writer.flush().then(() => {
      flushed = true;
    });
    await tick();
    expect(pending).toHaveLength(1);
    expect(pending[0]!.position).toBe(MiB);
    expect(pending[0]!.bytes).toBe(HIGH_WATER - MiB + 10);
    expect(flushed).toBe(false);
    pending.shift()!.finish();
    await within(flushing);
    expect(writer.position).toBe(HIGH_WATER + 10);
  });

  it('resolves drained() at once when below the high-water mark', async () => {
    const { handle } = gatedHandle();
    const writer = new BodyWriter(handle, 0);
    writer.write(pattern(MiB, 8)); // a write is in flight and never finishes
    await within(writer.drained(), 500);
  });

  describe('write errors', () => {
    it('surfaces ENOSPC from drained() while the caller waits on backpressure', async () => {
      const { handle } = fullDiskHandle();
      const writer = new BodyWriter(handle, 0);
      const chunk = pattern(MiB, 9);
      let accepted = true;
      for (let i = 0; i < 4; i++) accepted = writer.write(chunk);
      expect(accepted).toBe(false);
      await expect(within(writer.drained())).rejects.toMatchObject({ code: 'ENOSPC' });
      // Once failed, always failed.
      expect(() => writer.write(Buffer.from('more'))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
      await expect(within(writer.flush())).rejects.toMatchObject({ code: 'ENOSPC' });
      await expect(within(writer.drained())).rejects.toMatchObject({ code: 'ENOSPC' });
    });

    it('surfaces ENOSPC from flush() for a small body', async () => {
      const { handle, calls } = fullDiskHandle();
      const writer = new BodyWriter(handle, 0);
      writer.write(Buffer.from('small'));
      await expect(within(writer.flush())).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(calls()).toBe(1);
      expect(writer.position).toBe(0);
    });

    it('surfaces ENOSPC that happens after some batches were written, and keeps the position of the good bytes', async () => {
      const { handle, calls, written } = fullDiskHandle(2);
      const writer = new BodyWriter(handle, 100);
      const chunk = pattern(MiB, 10);
      let failure: unknown;
      try {
        await within(feed(writer, Array.from({ length: 12 }, () => chunk)), 5000);
        await within(writer.flush());
      } catch (error) {
        failure = error;
      }
      expect(failure).toMatchObject({ code: 'ENOSPC' });
      expect(calls()).toBe(3);
      expect(written()).toBeGreaterThanOrEqual(2 * MiB);
      expect(writer.position).toBe(100 + written());
    });

    it('reports a writev that writes nothing as an EIO error instead of looping forever', async () => {
      const handle = {
        async writev(buffers: Buffer[]) {
          return { bytesWritten: 0, buffers };
        },
      } as unknown as FileHandle;
      const writer = new BodyWriter(handle, 0);
      writer.write(Buffer.from('stuck'));
      await expect(within(writer.flush())).rejects.toMatchObject({ code: 'EIO' });
    });

    it('surfaces an error from a write started in the background on the next write', async () => {
      const { handle } = fullDiskHandle();
      const writer = new BodyWriter(handle, 0);
      writer.write(pattern(MiB, 11)); // starts a background write that fails
      await tick();
      expect(() => writer.write(Buffer.from('x'))).toThrow(expect.objectContaining({ code: 'ENOSPC' }));
    });
  });
});
