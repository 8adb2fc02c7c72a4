/**
 * The receiver killed with SIGKILL at five random points during one `ft send`, and restarted on
 * the same port after a short random pause each time. The sender runs with its default retries
 * and must finish by itself.
 *
 * The body goes through a pacing proxy (48 MiB/s, about 5 s for 256 MiB without faults) so
 * the kill points (random, seeded, printed; FT_SLOW_SEED repeats a run) fall inside the body:
 * one kill per fifth of the 10–90% range, each once the current receiver has started the body
 * and its partial has reached that mark.
 *
 * A watcher polling every 3 ms never sees the final name with a size other than the full size;
 * the final file is byte-identical; nothing is left in .ft-partial; the sender's JSON shows a
 * `retrying` and a `resumed` event for every kill.
 */
import { existsSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { digest, partialBytes, randomFile, waitUntil, partialFolder } from '../helpers/files.js';
import { freePort } from '../helpers/free-port.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { MiB, seededRng, sleep, startServe, watchFinal, type ServeProcess } from './support.js';

const SIZE = 256 * MiB;
const RATE = 48 * MiB;
const KILLS = 5;

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
});
afterAll(removeTempDirs);

describe('receiver killed with SIGKILL again and again', () => {
  it(`the sender rides out ${KILLS} SIGKILLs of ft serve (restarted on the same port) and finishes byte-identical`, async () => {
    const rng = seededRng('receiver-kills');
    const root = await tempDir('ft-slow-receiver-kills-');
    const src = await randomFile(path.join(root, 'big.bin'), SIZE, `receiver-kills-${rng.seed}`);
    const srcDigest = await digest(src);
    const dir = path.join(root, 'inbox');
    const final = path.join(dir, 'big.bin');
    const port = await freePort();
    // One kill mark in each fifth of 10%..90% of the file.
    const slot = (0.8 * SIZE) / KILLS;
    const marks = Array.from({ length: KILLS }, (_, i) => Math.floor(0.1 * SIZE + slot * (i + rng.between(0.05, 0.95))));
    const pauses = marks.map(() => Math.round(rng.between(50, 1200)));
    console.log(`receiver-kills: kill marks (bytes in the partial) ${marks.join(', ')}; pauses before restart (ms) ${pauses.join(', ')}`);

    let serve: ServeProcess = await startServe(dir, { port, timeoutMs: 300_000 });
    const proxy = await startProxy({ targetPort: port, bytesPerSecond: RATE });
    const watch = watchFinal(final, SIZE, 3);
    const killedAt: number[] = [];
    try {
      // Default retries (5, back-off from 500 ms, reset whenever bytes move).
      const sender = spawnFt(['send', src, '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', serve.fingerprint!, '--json'], { timeoutMs: 240_000 });
      for (let i = 0; i < KILLS; i++) {
        // This receiver process has the body going: kill once the partial reaches the mark
        // (and at least 1 MiB past where this body started, so every kill is mid-body).
        const current = serve;
        await waitUntil(() => current.events('started').length > 0 || sender.child.exitCode !== null, `kill ${i + 1}: the body to start`, {
          timeoutMs: 60_000,
        });
        expect(sender.child.exitCode, `the sender ended before kill ${i + 1}:\n${sender.stdout}\n${sender.stderr}`).toBeNull();
        const started = current.events('started')[0]!;
        const mark = Math.max(marks[i]!, (started.offset as number) + MiB);
        await waitUntil(async () => (await partialBytes(dir)) >= mark || sender.child.exitCode !== null, `kill ${i + 1}: the partial to reach ${mark} bytes`, {
          timeoutMs: 60_000,
          intervalMs: 5,
        });
        expect(sender.child.exitCode, `the sender ended before kill ${i + 1}:\n${sender.stdout}\n${sender.stderr}`).toBeNull();
        serve.proc.kill('SIGKILL');
        expect(await serve.proc.exited).toEqual({ code: null, signal: 'SIGKILL' });
        killedAt.push(await partialBytes(dir));
        expect(existsSync(final), `final name present after kill ${i + 1}`).toBe(false);
        await sleep(pauses[i]!);
        serve = await startServe(dir, { port, timeoutMs: 300_000 });
      }
      console.log(`receiver-kills: partial bytes on disk right after each kill: ${killedAt.join(', ')}`);

      const exit = await sender.exited;
      expect(exit, sender.stderr + sender.stdout).toEqual({ code: 0, signal: null });
      const events = sender.json();
      const retrying = events.filter((e) => e.event === 'retrying');
      const resumed = events.filter((e) => e.event === 'resumed');
      console.log(`receiver-kills: sender saw ${retrying.length} retrying and ${resumed.length} resumed events`);
      expect(retrying.length, sender.stdout).toBeGreaterThanOrEqual(KILLS);
      expect(resumed.length, sender.stdout).toBeGreaterThanOrEqual(KILLS);
      for (const event of resumed) {
        expect(event.offset as number).toBeGreaterThan(0);
        expect(event.offset as number).toBeLessThan(SIZE);
      }
      expect(events.at(-1)).toMatchObject({ event: 'summary', sent: 1, resumed: 1, failed: 0, refused: 0 });
      expect(await digest(final)).toEqual(srcDigest);
      await serve.proc.waitForJson((e) => e.event === 'received' && e.name === 'big.bin', 15_000);
      expect(await partialFolder(dir)).toEqual([]);
    } finally {
      watch.stop();
      await rm(root, { recursive: true, force: true });
    }
    console.log(`receiver-kills: the watcher polled the final name ${watch.polls()} times`);
    expect(watch.badSizes).toEqual([]);
  });
});
