/**
 * The sender killed with SIGKILL ten times during one 256 MiB upload, then run to the end.
 *
 * One `ft serve` runs throughout. Each attempt runs `ft send big.bin --json` through a pacing
 * proxy (a random 16–48 MiB/s, so an attempt takes a second or two) and is SIGKILLed at a random
 * point chosen by a seeded RNG (the seed is printed; FT_SLOW_SEED repeats a run):
 *  - most attempts die once the receiver's partial has grown by a random amount since the
 *    attempt began (somewhere in the body);
 *  - two of them die after a random delay (0–2.5 s) from spawning (while hashing, connecting, in the
 *    handshake or early in the body), capped by the same growth limit.
 * The growth allowed per attempt is a random share of what is left of 80% of the file, so the
 * ten attempts never finish the file and the last run always has something to resume.
 *
 * After every kill: nothing exists under the final name (or, if it does, it is complete and
 * byte-identical). At the end the send runs without the proxy: exit 0, resumed from exactly
 * the bytes held, byte-identical, no partial left. Most re-runs must have resumed (JSON `resumed`).
 */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { digest, partialBytes, randomFile, settledPartialBytes, waitUntil, partialFolder } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, runFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { MiB, seededRng, sleep, startServe, watchFinal } from './support.js';

const SIZE = 256 * MiB;
const KILLS = 10;
/** The attempts may take the partial up to about this share of the file, in all. */
const BUDGET = 0.8 * SIZE;

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
});
afterAll(removeTempDirs);

interface Attempt {
  index: number;
  mode: 'growth' | 'delay';
  rate: number;
  heldBefore: number;
  heldAfter: number;
  resumedOffset: number | undefined;
  ms: number;
}

describe('sender killed with SIGKILL again and again', () => {
  it(`resumes after ${KILLS} random SIGKILLs of ft send and finishes byte-identical`, async () => {
    const rng = seededRng('sender-kills');
    const root = await tempDir('ft-slow-sender-kills-');
    const src = await randomFile(path.join(root, 'big.bin'), SIZE, `sender-kills-${rng.seed}`);
    const dir = path.join(root, 'inbox');
    const final = path.join(dir, 'big.bin');
    const serve = await startServe(dir, { timeoutMs: 400_000 });
    const proxy = await startProxy({ targetPort: serve.port });
    const watch = watchFinal(final, SIZE);
    const srcDigest = await digest(src);

    // Two of the re-runs (attempts 2..10) die after a random delay instead of at a growth mark.
    const delayed = new Set<number>();
    while (delayed.size < 2) delayed.add(rng.int(2, KILLS));
    const attempts: Attempt[] = [];
    try {
      let held = 0;
      for (let index = 1; index <= KILLS; index++) {
        const mode = delayed.has(index) ? 'delay' : 'growth';
        const rate = Math.round(rng.between(16, 48) * MiB);
        proxy.setBytesPerSecond(rate);
        const left = KILLS - index + 1;
        const growth = Math.max(1 * MiB, Math.floor((rng.between(0.3, 1.0) * (BUDGET - held)) / left));
        const target = held + growth;
        const delayMs = mode === 'delay' ? rng.between(0, 2500) : Infinity;
        const errorsBefore = serve.events('error').length;
        const startsBefore = serve.events('started').length;
        const began = Date.now();
        const sender = spawnFt(['send', src, '--to', `127.0.0.1:${proxy.port}`, '--json', '--trust-new'], { timeoutMs: 60_000 });
        let exitedEarly = false;
        void sender.exited.then(() => (exitedEarly = true));
        await waitUntil(
          async () => exitedEarly || Date.now() - began >= delayMs || (await partialBytes(dir)) >= target,
          `attempt ${index}: the partial to reach ${target} bytes`,
          { timeoutMs: 60_000, intervalMs: 5 },
        );
        expect(exitedEarly, `attempt ${index} ended by itself before the kill:\n${sender.stdout}\n${sender.stderr}`).toBe(false);
        sender.kill('SIGKILL');
        expect(await sender.exited).toEqual({ code: null, signal: 'SIGKILL' });

        // Every body the receiver started for this attempt has ended (with an error: the sender
        // vanished), so the partial is released and final before the next attempt.
        await waitUntil(
          () => serve.events('error').length - errorsBefore >= serve.events('started').length - startsBefore,
          `attempt ${index}: the receiver to notice the dropped connection`,
          { timeoutMs: 15_000 },
        );
        const heldAfter = await settledPartialBytes(dir, { quietMs: 100 });
        const resumed = sender.json().find((e) => e.event === 'resumed');
        attempts.push({
          index,
          mode,
          rate,
          heldBefore: held,
          heldAfter,
          resumedOffset: resumed?.offset as number | undefined,
          ms: Date.now() - began,
        });
        // Nothing under the final name unless complete and byte-identical.
        if (existsSync(final)) expect(await digest(final)).toEqual(srcDigest);
        expect(heldAfter).toBeGreaterThanOrEqual(held);
        expect(heldAfter).toBeLessThan(SIZE);
        if (mode === 'growth') {
          expect(heldAfter, `attempt ${index}`).toBeGreaterThanOrEqual(target);
          // The body started, so a re-run resumed from exactly what the previous attempts left.
          if (index > 1) expect(resumed?.offset, `attempt ${index}:\n${sender.stdout}`).toBe(held);
        }
        held = heldAfter;
        await sleep(rng.between(0, 200));
      }
      console.table(
        attempts.map((a) => ({
          attempt: a.index,
          kill: a.mode,
          'MiB/s': +(a.rate / MiB).toFixed(1),
          'held before': a.heldBefore,
          'held after': a.heldAfter,
          'resumed from': a.resumedOffset ?? '-',
          ms: a.ms,
        })),
      );
      const reruns = attempts.filter((a) => a.index > 1);
      const resumedReruns = reruns.filter((a) => a.resumedOffset !== undefined && a.resumedOffset > 0);
      // At least most re-runs resumed from a non-zero offset (all but the delay kills must have).
      expect(resumedReruns.length, JSON.stringify(attempts)).toBeGreaterThanOrEqual(Math.ceil(reruns.length * 0.6));
      expect(existsSync(final)).toBe(false);

      // The last run, without the proxy, goes to the end from what the ten attempts left.
      const last = await runFt(['send', src, '--to', `127.0.0.1:${serve.port}`, '--json', '--trust-new'], { timeoutMs: 120_000 });
      expect(last.exit, last.stderr + last.stdout).toEqual({ code: 0, signal: null });
      const events = last.json();
      expect(events.find((e) => e.event === 'resumed'), last.stdout).toMatchObject({ offset: held });
      expect(events.find((e) => e.event === 'verified')).toMatchObject({ name: 'big.bin', size: SIZE, resumedFrom: held });
      const summary = events.at(-1)!;
      expect(summary).toMatchObject({ event: 'summary', sent: 1, resumed: 1, failed: 0, bytes: SIZE - held });
      expect(await digest(final)).toEqual(srcDigest);
      await serve.proc.waitForJson((e) => e.event === 'received' && e.resumedFrom === held, 15_000);
      expect(await partialFolder(dir)).toEqual([]);
      expect(serve.proc.child.exitCode).toBeNull();
    } finally {
      watch.stop();
      await rm(root, { recursive: true, force: true });
    }
    expect(watch.badSizes).toEqual([]);
  });
});
