/**
 * A full disk on the receiver. The inbox lives on a small tmpfs (48 MiB) this test mounts and
 * unmounts itself, so it needs root (CI runs as root); without it, or where mounting is not
 * allowed (an unprivileged container), the tests are skipped with a warning saying why.
 *
 *  (a) a file larger than the free space is refused up front (NO_SPACE, sender exit 4) and the
 *      receiver goes on serving;
 *  (b) the disk fills in the middle of a body (a filler file grows while the body crawls
 *      through a pacing proxy): the sender reports NO_SPACE for that file and exits 4, the
 *      receiver keeps running and serves another file, the partial stays in .ft-partial, and
 *      once space is freed the same command resumes from it and finishes byte-identical;
 *  (c) a disk with no space left at all refuses a new file with NO_SPACE (sender exit 4) and
 *      leaves nothing behind for it;
 *  (d) on such a disk, each file of a batch (an empty one included) gets its own verdict and
 *      the connection is not dropped.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { mkdir, open, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digest, partialBytes, partialFiles, randomFile, waitUntil, partialFolder } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, runFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { MiB, startServe } from './support.js';

const DISK = 48 * MiB;

function mountTmpfs(at: string): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${DISK / MiB}m`, 'tmpfs', at], { stdio: 'pipe', timeout: 10_000 });
}

function unmount(at: string): void {
  try {
    execFileSync('umount', [at], { stdio: 'pipe', timeout: 10_000 });
  } catch {
    try {
      execFileSync('umount', ['-l', at], { stdio: 'pipe', timeout: 10_000 });
    } catch (error) {
      console.warn(`could not unmount ${at}: ${(error as Error).message}`);
      return;
    }
  }
  try {
    rmdirSync(at);
  } catch {
    // left for the OS temp cleaner
  }
}

/** Whether a tmpfs can be mounted here (tried once, and unmounted at once); undefined when it can. */
function whyNoMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  const probe = mkdtempSync(path.join(os.tmpdir(), 'ft-slow-disk-probe-'));
  try {
    mountTmpfs(probe);
  } catch (error) {
    rmdirSync(probe);
    return `mount -t tmpfs failed: ${(error as Error).message.split('\n')[0]}`;
  }
  unmount(probe);
  return undefined;
}

const skip = whyNoMount();
if (skip) console.warn(`SKIPPED the disk-full tests: ${skip}. They need root and permission to mount a tmpfs.`);

/** The tmpfs mount point, while mounted (from beforeAll to afterAll). */
let mount: string | undefined;
const unmountAtExit = () => {
  if (mount) unmount(mount);
};

beforeAll(() => {
  if (skip) return;
  const at = mkdtempSync(path.join(os.tmpdir(), 'ft-slow-disk-'));
  try {
    mountTmpfs(at);
  } catch (error) {
    rmdirSync(at);
    throw error;
  }
  mount = at;
  // Should the worker die before afterAll, the mount still goes.
  process.once('exit', unmountAtExit);
});
afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
  if (mount) for (const name of await readdir(mount)) await rm(path.join(mount, name), { recursive: true, force: true });
});
afterAll(async () => {
  await removeTempDirs();
  if (mount) unmount(mount);
  mount = undefined;
  process.off('exit', unmountAtExit);
});

/** Writes zeros to `file` until the disk is full (ENOSPC), or `limit` bytes; returns the bytes written. */
async function fill(file: string, limit = Infinity): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024);
  const handle = await open(file, 'a');
  let written = 0;
  try {
    while (written < limit) {
      const want = Math.min(chunk.length, limit - written);
      try {
        const { bytesWritten } = await handle.write(chunk, 0, want);
        written += bytesWritten;
        if (bytesWritten < want) break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw error;
      }
    }
  } finally {
    await handle.close();
  }
  return written;
}

async function sources(): Promise<string> {
  return tempDir('ft-slow-disk-src-');
}

/** Sends `file` straight to the receiver and expects it to arrive byte-identical. */
async function sendsFine(file: string, port: number, inbox: string): Promise<Array<Record<string, unknown>>> {
  const run = await runFt(['send', file, '--to', `127.0.0.1:${port}`, '--json', '--trust-new'], { timeoutMs: 60_000 });
  expect(run.exit, run.stderr + run.stdout).toEqual({ code: 0, signal: null });
  expect(await digest(path.join(inbox, path.basename(file)))).toEqual(await digest(file));
  return run.json();
}

describe.skipIf(skip !== undefined)(`a full disk on the receiver (${DISK / MiB} MiB tmpfs)`, () => {
  it('refuses a file larger than the free space up front with NO_SPACE (exit 4) and keeps serving', async () => {
    const src = await sources();
    const inbox = path.join(mount!, 'inbox-a');
    const big = await randomFile(path.join(src, 'too-big.bin'), 64 * MiB);
    const small = await randomFile(path.join(src, 'small.bin'), 1 * MiB);
    const serve = await startServe(inbox, { timeoutMs: 120_000 });

    const started = Date.now();
    const run = await runFt(['send', big, '--to', `127.0.0.1:${serve.port}`, '--json', '--trust-new'], { timeoutMs: 60_000 });
    expect(run.exit, run.stderr + run.stdout).toEqual({ code: 4, signal: null });
    const refused = run.json().find((e) => e.event === 'refused');
    expect(refused, run.stdout).toMatchObject({ name: 'too-big.bin', code: 'NO_SPACE' });
    expect(refused!.message).toMatch(/free/);
    expect(run.json().at(-1)).toMatchObject({ event: 'summary', sent: 0, refused: 1, bytes: 0 });
    // Up front: no body byte was sent, nothing was written.
    expect(await partialFiles(inbox)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(30_000);
    await serve.proc.waitForJson((e) => e.event === 'refused' && e.code === 'NO_SPACE', 10_000);

    expect(serve.proc.child.exitCode).toBeNull();
    await sendsFine(small, serve.port, inbox);
    expect(serve.proc.child.exitCode).toBeNull();
  });

  it('reports NO_SPACE when the disk fills mid-body, keeps the partial and the receiver, and resumes once space is freed', async () => {
    const src = await sources();
    const inbox = path.join(mount!, 'inbox-b');
    await mkdir(inbox);
    const SIZE = 30 * MiB;
    const big = await randomFile(path.join(src, 'big.bin'), SIZE);
    const small = await randomFile(path.join(src, 'small.bin'), 1 * MiB);
    const final = path.join(inbox, 'big.bin');
    // First filler: about 40 MiB stay free, so the 30 MiB header passes the free-space check.
    const filler1 = path.join(mount!, 'filler-1');
    await fill(filler1, 8 * MiB);
    const serve = await startServe(inbox, { timeoutMs: 180_000 });
    const proxy = await startProxy({ targetPort: serve.port, bytesPerSecond: 6 * MiB });

    const sender = spawnFt(['send', big, '--to', `127.0.0.1:${proxy.port}`, '--json', '--trust-new'], { timeoutMs: 120_000 });
    await waitUntil(async () => (await partialBytes(inbox)) >= 4 * MiB, 'the body to be under way', { timeoutMs: 30_000, intervalMs: 10 });
    // Second filler: takes every byte left while the body is still coming.
    const filler2 = path.join(mount!, 'filler-2');
    const filled = await fill(filler2);
    expect(filled).toBeGreaterThan(0);
    const failedOnReceiver = await serve.proc.waitForJson((e) => e.event === 'failed', 30_000);
    expect(failedOnReceiver).toMatchObject({ name: 'big.bin', code: 'NO_SPACE' });
    // The receiver reads and drops the rest of the body: let it come at full speed.
    proxy.setBytesPerSecond(Infinity);

    const exit = await sender.exited;
    expect(exit, sender.stderr + sender.stdout).toEqual({ code: 4, signal: null });
    const events = sender.json();
    const failed = events.find((e) => e.event === 'failed');
    expect(failed, sender.stdout).toMatchObject({ name: 'big.bin', code: 'NO_SPACE' });
    expect(failed!.message).toMatch(/big\.bin/);
    expect(events.at(-1)).toMatchObject({ event: 'summary', sent: 0, failed: 1 });
    expect(events.some((e) => e.event === 'retrying')).toBe(false);

    // The receiver is still there, the partial is kept, nothing is under the final name.
    expect(serve.proc.child.exitCode).toBeNull();
    const parts = await partialFiles(inbox);
    expect(parts).toHaveLength(1);
    const held = await partialBytes(inbox);
    expect(held).toBeGreaterThanOrEqual(4 * MiB);
    expect(held).toBeLessThan(SIZE);
    await expect(open(final, 'r')).rejects.toMatchObject({ code: 'ENOENT' });
    console.log(`disk-full: the filler took ${(filled / MiB).toFixed(1)} MiB; the partial kept ${held} of ${SIZE} bytes`);

    // With some room again, the same receiver takes another file.
    await rm(filler2);
    await sendsFine(small, serve.port, inbox);
    expect(await partialBytes(inbox)).toBe(held);

    // With the fillers gone, the same command resumes from the partial and completes.
    await rm(filler1);
    const rerun = await sendsFine(big, serve.port, inbox);
    expect(rerun.find((e) => e.event === 'resumed'), JSON.stringify(rerun)).toMatchObject({ offset: held });
    expect(rerun.at(-1)).toMatchObject({ event: 'summary', sent: 1, resumed: 1, failed: 0, bytes: SIZE - held });
    expect(await partialFolder(inbox)).toEqual([]);
    expect(serve.proc.child.exitCode).toBeNull();
  });

  it('refuses a new file with NO_SPACE (exit 4) when no space is left at all, leaving nothing behind', async () => {
    const src = await sources();
    const inbox = path.join(mount!, 'inbox-c');
    const small = await randomFile(path.join(src, 'small.bin'), 1 * MiB);
    const serve = await startServe(inbox, { timeoutMs: 120_000 });
    const filler = path.join(mount!, 'filler');
    await fill(filler);

    const run = await runFt(['send', small, '--to', `127.0.0.1:${serve.port}`, '--json', '--trust-new'], { timeoutMs: 60_000 });
    const refused = run.json().find((e) => e.event === 'refused');
    expect.soft(refused, run.stdout).toMatchObject({ name: 'small.bin', code: 'NO_SPACE' });
    expect.soft(run.exit, run.stderr + run.stdout).toEqual({ code: 4, signal: null });
    // Nothing for a refused file may stay in the partial folder (not even metadata).
    expect.soft(await partialFolder(inbox)).toEqual([]);

    // The receiver goes on: once there is room the same file arrives.
    expect(serve.proc.child.exitCode).toBeNull();
    await rm(filler);
    await sendsFine(small, serve.port, inbox);
  });

  it('answers each file of a batch on a disk with no space left, an empty file included, without dropping the connection', async () => {
    const src = await sources();
    const inbox = path.join(mount!, 'inbox-d');
    const empty = path.join(src, 'empty.bin');
    await randomFile(empty, 0);
    const tiny = await randomFile(path.join(src, 'tiny.bin'), 3);
    const serve = await startServe(inbox, { timeoutMs: 120_000 });
    const filler = path.join(mount!, 'filler');
    await fill(filler);

    // An empty file needs no data block: it may arrive, or fail on its own with NO_SPACE.
    // The 3-byte file cannot fit: NO_SPACE. Either way each file gets its own verdict (exit 4),
    // not a connection-level error that abandons the batch.
    const run = await runFt(['send', empty, tiny, '--to', `127.0.0.1:${serve.port}`, '--json', '--trust-new'], { timeoutMs: 60_000 });
    const events = run.json();
    expect.soft(events.filter((e) => e.event === 'error'), run.stdout + run.stderr).toEqual([]);
    expect.soft(run.exit, run.stderr + run.stdout).toEqual({ code: 4, signal: null });
    expect.soft(events.at(-1)?.event, run.stdout).toBe('summary');
    const verdictOf = (name: string) => events.find((e) => e.name === name && ['verified', 'refused', 'failed'].includes(e.event as string));
    expect.soft(verdictOf('tiny.bin')).toMatchObject({ code: 'NO_SPACE' });
    const emptyVerdict = verdictOf('empty.bin');
    expect.soft(emptyVerdict?.event === 'verified' || emptyVerdict?.code === 'NO_SPACE', JSON.stringify(emptyVerdict)).toBe(true);
    expect.soft(await partialFolder(inbox)).toEqual([]);

    expect(serve.proc.child.exitCode).toBeNull();
    await rm(filler);
    await sendsFine(tiny, serve.port, inbox);
  });
});
