/**
 * Load: many senders at once, and one very large file.
 *
 *  (a) 64 `ft send` child processes start at the same moment, each with its own 8 MiB random
 *      file (distinct content), against one `ft serve --max-connections 128
 *      --max-connections-per-address 128`. Every sender exits 0 and every file arrives
 *      byte-identical (SHA-256 of source and received file compared).
 *      Real processes rather than library calls in this process: that is what users run, and it
 *      loads the receiver with 64 independent TCP clients and event loops. The machine copes:
 *      64 Node processes take a few seconds of CPU to start on 2 cores, and the whole test used
 *      about 1.5 GB of memory (MemAvailable dropped by 1.4 GB; each sender's VmHWM is ~65 MB,
 *      much of it shared code), so the 16 processes × 4 files fallback is not needed.
 *  (b) One 2 GiB file to a receiver process: the receiver's peak RSS (VmHWM from
 *      /proc/PID/status, read just before stopping it) stays under 100 MB. Peak RSS of receiver
 *      and sender and the throughput are printed for the CI log; speeds are not asserted (the
 *      machine is shared). The 2 GiB source and its copy are deleted afterwards.
 */
import { mkdir, readdir, rm, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomFile, sha256File, partialFolder } from '../helpers/files.js';
import { killAllFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { mb, MiB, procStatusBytes, sameContent, startServe, stopServe, trackPeakRss } from './support.js';

const GiB = 1024 * MiB;

afterEach(killAllFt);
afterAll(removeTempDirs);

describe('load', () => {
  it('takes 64 concurrent ft send processes of 8 MiB each, every file byte-identical', async () => {
    const SENDERS = 64;
    const SIZE = 8 * MiB;
    const root = await tempDir('ft-slow-load-many-');
    const srcDir = path.join(root, 'src');
    const inbox = path.join(root, 'inbox');
    await mkdir(srcDir);
    const names = Array.from({ length: SENDERS }, (_, i) => `file-${String(i).padStart(2, '0')}.bin`);
    const sources = await Promise.all(names.map((name) => randomFile(path.join(srcDir, name), SIZE, `load-${name}`)));
    const expected = await Promise.all(sources.map((file) => sha256File(file)));
    expect(new Set(expected).size).toBe(SENDERS);

    const serve = await startServe(inbox, { timeoutMs: 300_000, args: ['--max-connections', '128', '--max-connections-per-address', '128'] });
    const receiverRss = trackPeakRss(serve.proc.pid, 100);
    try {
      const started = Date.now();
      const senders = sources.map((file) => spawnFt(['send', file, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--json'], { timeoutMs: 240_000 }));
      const senderRss = senders.map((s) => trackPeakRss(s.pid, 100));
      const exits = await Promise.all(senders.map((s) => s.exited));
      const wallMs = Date.now() - started;
      const senderPeaks = (await Promise.all(senderRss.map((r) => r.stop()))).map((p) => p ?? 0);
      for (const [i, exit] of exits.entries()) {
        expect(exit, `sender ${names[i]}:\n${senders[i]!.stdout}\n${senders[i]!.stderr}`).toEqual({ code: 0, signal: null });
        expect(senders[i]!.json().find((e) => e.event === 'verified'), senders[i]!.stdout).toMatchObject({ name: names[i], size: SIZE });
      }
      const retries = senders.reduce((n, s) => n + s.json().filter((e) => e.event === 'retrying').length, 0);

      expect((await readdir(inbox)).filter((n) => !n.startsWith('.')).sort()).toEqual(names);
      const received = await Promise.all(names.map((name) => sha256File(path.join(inbox, name))));
      expect(received).toEqual(expected);
      expect(await partialFolder(inbox)).toEqual([]);
      expect(serve.events('received')).toHaveLength(SENDERS);
      expect(serve.proc.child.exitCode).toBeNull();

      const peak = await procStatusBytes(serve.proc.pid, 'VmHWM');
      console.log(
        `load (a): ${SENDERS} senders × ${SIZE / MiB} MiB in ${(wallMs / 1000).toFixed(1)} s wall ` +
          `(${((SENDERS * SIZE) / MiB / (wallMs / 1000)).toFixed(1)} MiB/s overall, including process start-up and hashing); ` +
          `${retries} retrying events; peak RSS receiver: ${mb(peak)}; peak RSS senders: largest ${mb(Math.max(...senderPeaks))}, ` +
          `sum ${mb(senderPeaks.reduce((a, b) => a + b, 0))}`,
      );
    } finally {
      await receiverRss.stop();
      await stopServe(serve.proc);
      await rm(root, { recursive: true, force: true });
    }
  });

  it('receives a 2 GiB file with the receiver peak RSS under 100 MB', async () => {
    const SIZE = 2 * GiB;
    // The performance target (README); about 74 MB measured, 96-104 MB without ft serve's young collections.
    const LIMIT = 100e6;
    const free = await statfs(os.tmpdir()).then((s) => s.bavail * s.bsize);
    if (free < 2 * SIZE + GiB) {
      throw new Error(`${os.tmpdir()} has ${(free / GiB).toFixed(1)} GiB free; this test needs ${(2 * SIZE + GiB) / GiB} GiB (source and copy)`);
    }
    const root = await tempDir('ft-slow-load-big-');
    const inbox = path.join(root, 'inbox');
    const serve = await startServe(inbox, { timeoutMs: 400_000 });
    try {
      let t = Date.now();
      const src = await randomFile(path.join(root, 'huge.bin'), SIZE, 'load-2GiB');
      console.log(`load (b): generated the 2 GiB source in ${((Date.now() - t) / 1000).toFixed(1)} s`);

      t = Date.now();
      const sender = spawnFt(['send', src, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--json'], { timeoutMs: 300_000 });
      const senderRss = trackPeakRss(sender.pid, 50);
      const exit = await sender.exited;
      const wallMs = Date.now() - t;
      const senderPeak = await senderRss.stop();
      expect(exit, sender.stderr + sender.stdout).toEqual({ code: 0, signal: null });
      expect(sender.json().find((e) => e.event === 'verified'), sender.stdout).toMatchObject({ name: 'huge.bin', size: SIZE });
      const received = await serve.proc.waitForJson((e) => e.event === 'received' && e.name === 'huge.bin', 30_000);

      // Just before stopping the receiver: its high-water mark over the whole transfer.
      const receiverPeak = await procStatusBytes(serve.proc.pid, 'VmHWM');
      const receiverNow = await procStatusBytes(serve.proc.pid, 'VmRSS');
      const bodyMs = received.durationMs as number;
      console.log(`peak RSS receiver: ${mb(receiverPeak)} (now ${mb(receiverNow)})`);
      console.log(`peak RSS sender: ${mb(senderPeak)}`);
      console.log(
        `throughput: ${(SIZE / MiB / (bodyMs / 1000)).toFixed(1)} MiB/s for the body (receiver's view, incl. fsync); ` +
          `${(SIZE / MiB / (wallMs / 1000)).toFixed(1)} MiB/s for the whole send (start-up, hashing, body, verify: ${(wallMs / 1000).toFixed(1)} s)`,
      );
      await stopServe(serve.proc);

      expect(receiverPeak, 'VmHWM of the receiver').toBeDefined();
      expect(receiverPeak!).toBeLessThan(LIMIT);
      t = Date.now();
      expect(await sameContent(src, path.join(inbox, 'huge.bin'))).toBe(true);
      console.log(`load (b): compared source and copy in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      expect(await partialFolder(inbox)).toEqual([]);
    } finally {
      await stopServe(serve.proc);
      await rm(root, { recursive: true, force: true });
    }
  });
});
