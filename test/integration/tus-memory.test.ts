/**
 * Memory stays bounded: a 256 MiB PATCH into a store that writes slower than the client sends
 * is not buffered. The client can only get ahead of the disk by what the sockets and the
 * writer's queue hold, because the endpoint reads the body only as fast as Ingest writes it.
 */
import http from 'node:http';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { createHasher } from '../../src/hashing.js';
import { removeTempDirs } from '../helpers/temp.js';
import { closeTusServers, metadata, startTusServer, TUS, tusRequest } from '../helpers/tus-server.js';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const CHUNK = 64 * 1024;
/** What the disk takes, in bytes per ms (about 120 MiB/s: slower than loopback). */
const DISK_BYTES_PER_MS = 120 * 1024;
/** Socket buffers on both sides (a few MiB each on Linux), and the body writer's 2 MiB queue and 1 MiB batch. */
const AHEAD_BOUND = 32 * MiB;

afterEach(async () => {
  await closeTusServers();
  await removeTempDirs();
});

/** node:fs whose file writes take time in proportion to their size, counting what reached the disk. */
function slowDisk(): { fs: FileSystem; written: () => number } {
  let written = 0;
  const open: FileSystem['open'] = async (...args: Parameters<FileSystem['open']>) => {
    const handle = await nodeFileSystem.open(...args);
    const writev = handle.writev.bind(handle);
    return Object.assign(handle, {
      writev: async (buffers: NodeJS.ArrayBufferView[], position?: number) => {
        const bytes = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
        await new Promise((resolve) => setTimeout(resolve, bytes / DISK_BYTES_PER_MS));
        const result = await writev(buffers, position);
        written += result.bytesWritten;
        return result;
      },
    });
  };
  return { fs: { ...nodeFileSystem, open }, written: () => written };
}

function chunkAt(index: number): Buffer {
  return Buffer.alloc(CHUNK, (index * 31 + 7) & 0xff);
}

it('a 256 MiB PATCH through a slow disk is never more than a few MiB ahead of it', async () => {
  const disk = slowDisk();
  const server = await startTusServer({ store: { fs: disk.fs } });
  const hasher = await createHasher();
  for (let i = 0; i < SIZE / CHUNK; i++) hasher.update(chunkAt(i));
  const created = await tusRequest(server, 'POST', '/files/', {
    ...TUS,
    'Upload-Length': String(SIZE),
    'Upload-Metadata': metadata({ filename: 'huge.bin', hash: hasher.digest() }),
  });
  expect(created.status).toBe(201);

  let sent = 0;
  let mostAhead = 0;
  const baseline = process.memoryUsage().arrayBuffers;
  let mostMemory = 0;
  const sampler = setInterval(() => {
    mostAhead = Math.max(mostAhead, sent - disk.written());
    mostMemory = Math.max(mostMemory, process.memoryUsage().arrayBuffers - baseline);
  }, 10);
  const answer = await new Promise<number>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: server.port,
        method: 'PATCH',
        path: created.headers.location!,
        agent: false,
        headers: { ...TUS, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': '0', 'Content-Length': String(SIZE) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      },
    );
    req.on('error', reject);
    let index = 0;
    const pump = () => {
      while (index < SIZE / CHUNK) {
        const chunk = chunkAt(index++);
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  clearInterval(sampler);
  expect(answer).toBe(204);
  expect((await stat(path.join(server.dir, 'huge.bin'))).size).toBe(SIZE);
  expect(server.events.find((e) => e.type === 'received')).toMatchObject({ verified: true, size: SIZE });
  expect(mostAhead).toBeGreaterThan(0);
  expect(mostAhead).toBeLessThan(AHEAD_BOUND);
  expect(mostMemory).toBeLessThan(64 * MiB);
}, 60_000);
