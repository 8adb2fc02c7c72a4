import { connectTls, greetOn } from '../helpers/raw-client.js';
/** Regression tests, each named after the bug it pins down. */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { promises as nodeFs } from 'node:fs';
import { FtError, nodeFileSystem, send, type FileSystem } from '../../src/index.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { waitUntil } from '../helpers/files.js';

afterEach(async () => {
  await closeAllReceivers();
  await removeTempDirs();
});

describe('regressions', () => {
  it('an abort while files are still being hashed settles send() with ABORTED instead of hanging', async () => {
    const r = await startReceiver();
    const src = await tempDir('ft-src-');
    // Over the 1 MiB read in one go, so they are opened asynchronously.
    for (let i = 0; i < 20; i++) await nodeFs.writeFile(path.join(src, `f${i}.bin`), Buffer.alloc(1024 * 1024 + 1, i));
    // Every open takes 100 ms: hashing 20 files eight at a time outlasts the abort below.
    const slowFs: FileSystem = {
      ...nodeFileSystem,
      open: (async (...args: Parameters<FileSystem['open']>) => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        return nodeFs.open(...args);
      }) as FileSystem['open'],
    };
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const started = Date.now();
    const error = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: slowFs, signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FtError);
    expect((error as FtError).code).toBe('ABORTED');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a sender that never reads the answers is not read either (memory stays bounded), and is read again once it reads', async () => {
    const r = await startReceiver();
    const socket = await connectTls(r.port);
    socket.on('error', () => undefined);
    await greetOn(socket);
    socket.pause(); // never read: the receiver's answers pile up on its side
    // Under the 10,000 headers one connection may send.
    const count = 9_000;
    // Refused names get a long answer (the message quotes the name, ~1 KB): 9 MB of answers in all,
    // more than socket buffers hold. Sent 32 at a time, paced so that each batch is answered (a
    // peer that sent more than 64 unanswered headers would be cut off instead).
    const name = `${'x'.repeat(900)}/../y`;
    void (async () => {
      for (let id = 1; id <= count; id += 32) {
        const batch = [];
        for (let n = id; n < id + 32 && n <= count; n++) batch.push(encodeFrame({ type: 'file', id: n, filename: name, size: 1, hash: 'xxh64:0000000000000000' }));
        if (socket.destroyed) return;
        socket.write(Buffer.concat(batch));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    const refused = () => r.events.filter((e) => e.type === 'refused').length;
    await waitUntil(() => refused() > 0 || undefined, 'the first refusals');
    // Let it run until it stalls.
    let before = -1;
    while (refused() !== before) {
      before = refused();
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(refused()).toBeLessThan(count);
    socket.resume(); // now read: the receiver goes on to the end
    await waitUntil(() => refused() === count || undefined, 'all refusals once the answers are read', { timeoutMs: 30_000 });
    socket.destroy();
  });

  it('ids must increase: a header with an id below the previous one is a protocol error', async () => {
    const r = await startReceiver();
    const socket = await connectTls(r.port);
    let received = '';
    await greetOn(socket);
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    const header = (id: number) => encodeFrame({ type: 'file', id, filename: `f${id}.txt`, size: 1, hash: 'xxh64:0000000000000000' });
    socket.write(Buffer.concat([header(5), header(3)]));
    await new Promise((resolve) => socket.once('close', resolve));
    expect(received).toContain('"code":"UNEXPECTED_MESSAGE"');
    expect(received).toContain('not above the previous one');
  });

  it('Ctrl-C while the only (large) file is being hashed ends in ABORTED, not in a failed file', async () => {
    const r = await startReceiver();
    const src = path.join(await tempDir('ft-src-'), 'big.bin');
    await nodeFs.writeFile(src, Buffer.alloc(8 * 1024 * 1024, 1));
    // Every read takes 50 ms: hashing 8 MiB in 1 MiB blocks outlasts the abort below.
    const slowReads: FileSystem = {
      ...nodeFileSystem,
      open: (async (...args: Parameters<FileSystem['open']>) => {
        const handle = await nodeFs.open(...args);
        const read = handle.read.bind(handle) as (...a: unknown[]) => Promise<unknown>;
        (handle as unknown as { read: unknown }).read = async (...a: unknown[]) => {
          await new Promise((resolve) => setTimeout(resolve, 50));
          return read(...a);
        };
        return handle;
      }) as FileSystem['open'],
    };
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const error = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: slowReads, signal: controller.signal }).catch((e: unknown) => e);
    expect((error as FtError).code).toBe('ABORTED');
  });
});
