/**
 * tus-js-client (npm, in Node), a client nobody here wrote, against the endpoint: uploads,
 * and resumes after an abort (by its upload URL) and after a restart of the receiver (by the
 * fingerprint it stored); every file lands byte for byte, verified.
 */
import { createReadStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as tus from 'tus-js-client';
import { afterEach, describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { content } from '../contract/upload-store.contract.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { closeTusServers, startTusServer, type TusServer } from '../helpers/tus-server.js';

const MiB = 1024 * 1024;

afterEach(async () => {
  await closeTusServers();
  await removeTempDirs();
});

type Source = ConstructorParameters<typeof tus.Upload>[0];

/** Runs an upload to success, or until `stopAt` bytes have gone out (then aborts it). */
function run(file: Source, options: tus.UploadOptions, stopAt = Infinity, onStop?: () => Promise<void>): Promise<{ url: string | null; stopped: boolean }> {
  return new Promise((resolve, reject) => {
    let stopped = false;
    const upload: tus.Upload = new tus.Upload(file, {
      retryDelays: [],
      ...options,
      onProgress: (sent) => {
        if (stopped || sent < stopAt) return;
        stopped = true;
        const stop = onStop ?? (() => upload.abort());
        void Promise.resolve(stop()).then(() => setTimeout(() => resolve({ url: upload.url, stopped: true }), 100));
      },
      onSuccess: () => resolve({ url: upload.url, stopped: false }),
      onError: (error) => (stopped ? undefined : reject(error)),
    });
    if (options.uploadUrl === undefined && options.storeFingerprintForResuming) {
      void upload.findPreviousUploads().then((previous) => {
        if (previous[0]) upload.resumeFromPreviousUpload(previous[0]);
        upload.start();
      });
    } else {
      upload.start();
    }
  });
}

async function expectPlaced(server: TusServer, name: string, bytes: Buffer): Promise<void> {
  const stored = await readFile(path.join(server.dir, name));
  expect(stored.length).toBe(bytes.length);
  expect(stored.equals(bytes)).toBe(true);
}

describe('tus-js-client against the endpoint', () => {
  it('uploads several files, each verified', async () => {
    const server = await startTusServer();
    for (const [name, size] of [['a.txt', 0], ['b.bin', 1000], ['c/d.bin', 3 * MiB]] as const) {
      const bytes = content(size, size + 1);
      const metadata = { filename: path.basename(name), relativePath: name, hash: await hashBytes(bytes) };
      const result = await run(bytes, { endpoint: server.url, metadata, uploadSize: bytes.length });
      expect(result.stopped).toBe(false);
      await expectPlaced(server, name, bytes);
    }
    expect(server.events.filter((e) => e.type === 'received').map((e) => e.type === 'received' && e.verified)).toEqual([true, true, true]);
  });

  it('aborted mid-way, a new Upload with the same uploadUrl resumes where the receiver stopped and finishes', async () => {
    const server = await startTusServer();
    const bytes = content(48 * MiB, 7);
    const metadata = { filename: 'big.bin', hash: await hashBytes(bytes) };
    const first = await run(bytes, { endpoint: server.url, metadata }, 16 * MiB);
    expect(first.stopped).toBe(true);
    expect(first.url).toMatch(/\/files\/[A-Za-z0-9_-]+$/);
    const patches: number[] = [];
    const onBeforeRequest = (req: tus.HttpRequest) => {
      if (req.getMethod() === 'PATCH') patches.push(Number(req.getHeader('Upload-Offset')));
    };
    const second = await run(bytes, { endpoint: server.url, metadata, uploadUrl: first.url!, onBeforeRequest });
    expect(second.stopped).toBe(false);
    await expectPlaced(server, 'big.bin', bytes);
    // It went on from what the receiver held (at least what it had taken when the abort came), not from 0.
    expect(patches).toHaveLength(1);
    expect(patches[0]).toBeGreaterThan(0);
    expect(server.events.filter((e) => e.type === 'received')).toMatchObject([{ protocol: 'tus', verified: true }]);
  });

  it('stopped by a receiver restart, a new Upload finds the stored fingerprint and resumes after the restart', async () => {
    const work = await tempDir('ft-tusjs-');
    const file = path.join(work, 'photo.raw');
    const bytes = content(40 * MiB, 8);
    await writeFile(file, bytes);
    // The Node build exports FileUrlStorage; the package's one .d.ts (shared with the browser) does not declare it.
    const { FileUrlStorage } = tus as unknown as { FileUrlStorage: new (file: string) => tus.UrlStorage };
    const urlStorage = new FileUrlStorage(path.join(work, 'urls.json'));
    const metadata = { filename: 'photo.raw', hash: await hashBytes(bytes) };
    let server = await startTusServer();
    const { dir, secret, port } = server;
    const options = { endpoint: server.url, metadata, urlStorage, storeFingerprintForResuming: true, removeFingerprintOnSuccess: true };
    const first = await run(createReadStream(file), options, 12 * MiB, () => server.close());
    expect(first.stopped).toBe(true);
    server = await startTusServer({ dir, secret, port });
    const second = await run(createReadStream(file), options);
    expect(second.stopped).toBe(false);
    expect(second.url).toBe(first.url);
    await expectPlaced(server, 'photo.raw', bytes);
    const received = server.events.find((e) => e.type === 'received');
    expect(received?.type === 'received' && received.resumedFrom).toBeGreaterThan(0);
    expect(await urlStorage.findAllUploads()).toEqual([]);
  });
});
