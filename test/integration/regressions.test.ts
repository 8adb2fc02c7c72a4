/** Regression tests, each named after the bug it pins down. */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { promises as nodeFs } from 'node:fs';
import { FtError, send, type FileSystem } from '../../src/index.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  await closeAllReceivers();
  await removeTempDirs();
});

describe('regressions', () => {
  it('an abort while files are still being hashed settles send() with ABORTED instead of hanging', async () => {
    const r = await startReceiver();
    const src = await tempDir('ft-src-');
    for (let i = 0; i < 20; i++) await nodeFs.writeFile(path.join(src, `f${i}.txt`), `file ${i}`);
    // Every open takes 100 ms: hashing 20 files eight at a time outlasts the abort below.
    const slowFs: FileSystem = {
      ...nodeFs,
      open: (async (...args: Parameters<FileSystem['open']>) => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        return nodeFs.open(...args);
      }) as FileSystem['open'],
    };
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 150);
    const started = Date.now();
    const error = await send([src], { host: '127.0.0.1', port: r.port, fs: slowFs, signal: controller.signal }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FtError);
    expect((error as FtError).code).toBe('ABORTED');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
