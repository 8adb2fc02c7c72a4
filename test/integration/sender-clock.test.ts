/**
 * The sender's durations and progress rate limit run on the monotonic clock: a wall clock
 * stepped backwards in the middle of a send (NTP, a resumed VM) must not silence its progress
 * or make its duration negative. Date is faked (and stepped); timers and performance.now() are
 * real. Traffic on 127.0.0.1 only.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { nodeFileSystem, send, type FileSystem, type SendEvent } from '../../src/index.js';
import { randomBuffer } from '../helpers/files.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;

afterEach(async () => {
  vi.useRealTimers();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

/** node:fs with every read through a file handle taking at least `delayMs` (a slow disk). */
function slowReads(delayMs: number): FileSystem {
  return {
    ...nodeFileSystem,
    open: (async (...args: Parameters<FileSystem['open']>) => {
      const handle = await nodeFileSystem.open(...args);
      const read = handle.read.bind(handle) as (...a: unknown[]) => Promise<unknown>;
      (handle as unknown as { read: unknown }).read = async (...a: unknown[]) => {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        return read(...a);
      };
      return handle;
    }) as FileSystem['open'],
  };
}

describe('a backward step of the wall clock during a send', () => {
  it('keeps progress events coming and the duration positive', async () => {
    const r = await startReceiver();
    const file = path.join(await tempDir('ft-clock-'), 'big.bin');
    await writeFile(file, randomBuffer(8 * MiB, 'clock'));
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    const events: SendEvent[] = [];
    let stepped = false;
    let afterStep = 0;
    const report = await send([file], {
      host: '127.0.0.1',
      port: r.port, fingerprint: r.fingerprint,
      retries: 0,
      // Each 1 MiB block takes at least 150 ms to read: the body takes over a second.
      fs: slowReads(150),
      onEvent: (event) => {
        events.push(event);
        if (event.type !== 'progress' || event.bytes >= event.size!) return;
        // The clock goes back an hour right after the first progress event of the body.
        if (stepped) afterStep += 1;
        else vi.setSystemTime(Date.now() - HOUR);
        stepped = true;
      },
    });
    expect(stepped).toBe(true);
    expect(report.files.map((f) => f.status)).toEqual(['sent']);
    // Progress keeps coming between the step and the end (at most 4 a second), not only the final one.
    expect(afterStep).toBeGreaterThanOrEqual(1);
    expect(report.durationMs).toBeGreaterThan(0);
    expect(report.durationMs).toBeLessThan(HOUR);
  });
});
