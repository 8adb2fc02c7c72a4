/**
 * Process-level faults with the real CLI: a sender or a receiver dies with SIGKILL in the middle
 * of a body. The body crawls through a pacing proxy (16 MiB/s) so "the middle" is reached at a
 * known point on any machine: we kill once the receiver's partial holds a quarter of the file.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { digest, partialBytes, randomFile, settledPartialBytes, waitUntil } from '../helpers/files.js';
import { freePort } from '../helpers/free-port.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, runFt, spawnFt, startFtServe, type FtServe } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const RATE = 16 * MiB;

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
});
afterAll(removeTempDirs);

async function setup(): Promise<{ src: string; dir: string; final: string }> {
  const root = await tempDir('ft-kill-');
  const src = await randomFile(path.join(root, 'big.bin'), SIZE);
  const dir = path.join(root, 'inbox');
  return { src, dir, final: path.join(dir, 'big.bin') };
}

/** Resolves once the receiver's partial holds at least a quarter of the file. */
function quarterReceived(dir: string): Promise<number> {
  return waitUntil(
    async () => {
      const held = await partialBytes(dir);
      return held >= SIZE / 4 ? held : 0;
    },
    'a quarter of the file in the partial',
    { timeoutMs: 20_000 },
  );
}

/**
 * Watches the final name: it must never exist with other than the full size (the receiver
 * places a file only after verifying it). Returns the sizes seen while it existed.
 */
function watchFinal(final: string): { stop(): void; badSizes: number[] } {
  const badSizes: number[] = [];
  const timer = setInterval(() => {
    try {
      const size = statSync(final).size;
      if (size !== SIZE) badSizes.push(size);
    } catch {
      // not there yet
    }
  }, 5);
  return { stop: () => clearInterval(timer), badSizes };
}

/** The full fingerprint `ft serve --json` announced in its `listening` line: what `ft send --fingerprint` pins. */
async function fingerprintOf(serve: FtServe): Promise<string> {
  const { fingerprint } = await serve.proc.waitForJson((e) => e.event === 'listening');
  expect(fingerprint).toMatch(/^[A-Z2-7]{52}$/);
  return fingerprint as string;
}

describe('killed processes', () => {
  it('resumes when the sender was killed with SIGKILL mid-body and the same command is run again', async () => {
    const { src, dir, final } = await setup();
    const serve = await startFtServe(dir, { json: true });
    const proxy = await startProxy({ targetPort: serve.port, bytesPerSecond: RATE });
    const watch = watchFinal(final);
    try {
      const fingerprint = await fingerprintOf(serve);
      const sender = spawnFt(['send', src, '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', fingerprint, '--json']);
      await quarterReceived(dir);
      expect(existsSync(final)).toBe(false);
      sender.kill('SIGKILL');
      expect(await sender.exited).toEqual({ code: null, signal: 'SIGKILL' });
      // The receiver sees the connection drop and keeps what it has.
      await serve.proc.waitForJson((e) => e.event === 'error', 15_000);
      const held = await settledPartialBytes(dir);
      expect(held).toBeGreaterThanOrEqual(SIZE / 4);
      expect(held).toBeLessThan(SIZE);
      expect(existsSync(final)).toBe(false);

      const rerun = await runFt(['send', src, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', fingerprint, '--json']);
      expect(rerun.exit.code, rerun.stderr).toBe(0);
      const events = rerun.json();
      const resumed = events.find((e) => e.event === 'resumed');
      expect(resumed, rerun.stdout).toBeDefined();
      expect(resumed!.offset).toBe(held);
      expect(events.find((e) => e.event === 'verified')).toMatchObject({ name: 'big.bin', resumedFrom: held });
      const summary = events.at(-1)!;
      expect(summary).toMatchObject({ event: 'summary', sent: 1, resumed: 1, failed: 0 });
      expect(summary.bytes).toBe(SIZE - held);
      expect(summary.bytes as number).toBeLessThan(SIZE);
      expect(await digest(final)).toEqual(await digest(src));
      await serve.proc.waitForJson((e) => e.event === 'received' && e.resumedFrom === held);
    } finally {
      watch.stop();
    }
    expect(watch.badSizes).toEqual([]);
  });

  it('finishes by itself when the receiver was killed with SIGKILL mid-body and restarted on the same port', async () => {
    const { src, dir, final } = await setup();
    const port = await freePort();
    const first = await startFtServe(dir, { port, json: true });
    const proxy = await startProxy({ targetPort: port, bytesPerSecond: RATE });
    const watch = watchFinal(final);
    try {
      // Default retries: the sender must ride out the receiver's absence on its own.
      // The restarted receiver keeps its identity (same config folder), so the pinned key holds across the restart.
      const fingerprint = await fingerprintOf(first);
      const sender = spawnFt(['send', src, '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', fingerprint, '--json'], { timeoutMs: 45_000 });
      await quarterReceived(dir);
      const finalExistedAtKill = existsSync(final);
      first.proc.kill('SIGKILL');
      expect(await first.proc.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(finalExistedAtKill).toBe(false);
      expect(existsSync(final)).toBe(false);
      const held = await partialBytes(dir);
      expect(held).toBeGreaterThanOrEqual(SIZE / 4);

      const second = await startFtServe(dir, { port, json: true });
      expect(await fingerprintOf(second)).toBe(fingerprint);
      const exit = await sender.exited;
      expect(exit, sender.stderr + sender.stdout).toEqual({ code: 0, signal: null });

      const events = sender.json();
      expect(events.some((e) => e.event === 'retrying')).toBe(true);
      const resumed = events.find((e) => e.event === 'resumed');
      expect(resumed, sender.stdout).toBeDefined();
      expect(resumed!.offset as number).toBeGreaterThan(0);
      expect(resumed!.offset as number).toBeLessThan(SIZE);
      expect(events.at(-1)).toMatchObject({ event: 'summary', sent: 1, resumed: 1, failed: 0 });
      expect(await digest(final)).toEqual(await digest(src));
      const received = await second.proc.waitForJson((e) => e.event === 'received');
      expect(received).toMatchObject({ name: 'big.bin', resumedFrom: resumed!.offset });
    } finally {
      watch.stop();
    }
    expect(watch.badSizes).toEqual([]);
  });
});
