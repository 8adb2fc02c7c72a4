/**
 * `--limit-rate` measured: ~10 s transfers at 4 MiB/s, limited by the sender, by the receiver,
 * and by a receiver shared by two senders; and a sender at the floor, 32 KiB/s, for 25 s. The rate is taken from the `--json` progress events
 * as they arrive (bytes and time between the first and the last), and must be within 10 % of
 * the limit; the figures are printed.
 */
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { randomFile } from '../helpers/files.js';
import { killAllFt, spawnFt, startFtServe, type FtProcess } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const LIMIT = 4 * MiB;
const SIZE = 40 * MiB;
/** Within this share of the limit, as the issue asks: generous for a shared 2-core machine. */
const TOLERANCE = 0.1;

afterEach(killAllFt);
afterAll(removeTempDirs);

interface Mark {
  at: number;
  name: string;
  bytes: number;
}

/** The `progress` events of a `--json` process, stamped as they arrive (and when each file was `received`). */
function progressOf(proc: FtProcess, done: Mark[] = []): Mark[] {
  const marks: Mark[] = [];
  let pending = '';
  proc.child.stdout!.on('data', (text: string) => {
    const at = performance.now();
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const event = JSON.parse(line) as { event: string; name?: string; bytes?: number; size?: number };
      if (event.event === 'progress') marks.push({ at, name: event.name!, bytes: event.bytes! });
      if (event.event === 'received') done.push({ at, name: event.name!, bytes: event.size! });
    }
  });
  return marks;
}

/** Bytes per second between the first and the last mark, all files together. */
function measured(marks: Mark[], label: string): number {
  expect(marks.length, `${label}: progress events`).toBeGreaterThan(10);
  const first = marks[0]!;
  const last = marks.at(-1)!;
  // Each file's bytes at a moment are its latest mark by then; the files' sum is what moved.
  const total = (until: number) => {
    const latest = new Map<string, number>();
    for (const mark of marks) if (mark.at <= until) latest.set(mark.name, mark.bytes);
    return [...latest.values()].reduce((a, b) => a + b, 0);
  };
  const seconds = (last.at - first.at) / 1000;
  const rate = (total(last.at) - total(first.at)) / seconds;
  console.log(
    `${label}: ${((total(last.at) - total(first.at)) / MiB).toFixed(1)} MiB in ${seconds.toFixed(2)} s = ${(rate / MiB).toFixed(3)} MiB/s ` +
      `(limit ${(LIMIT / MiB).toFixed(3)} MiB/s, ${(((rate - LIMIT) / LIMIT) * 100).toFixed(1)} %)`,
  );
  return rate;
}

async function inbox(): Promise<string> {
  return path.join(await tempDir('ft-rate-'), 'inbox');
}

async function source(name: string, size = SIZE): Promise<string> {
  return randomFile(path.join(await tempDir('ft-rate-src-'), name), size);
}

function sendFt(file: string, port: number, extra: string[] = []): FtProcess {
  return spawnFt(['send', file, '--to', `127.0.0.1:${port}`, '--insecure-plaintext', '--no-hash-cache', '--json', ...extra], { timeoutMs: 120_000 });
}

describe('the floor: a sender limited to 32K is never cut off by a receiver with the default --min-rate (16K)', () => {
  it('ft send --limit-rate 32K for 25 s (the receiver judges windows of 10 s)', async () => {
    const serve = await startFtServe(await inbox(), { json: true, args: ['--insecure-plaintext'] });
    const sender = sendFt(await source('at-the-floor.bin', 800 * 1024), serve.port, ['--limit-rate', '32K', '--retries', '0']);
    const started = performance.now();
    const exit = await sender.exited;
    console.log(`at the floor: 800 KiB at 32 KiB/s in ${((performance.now() - started) / 1000).toFixed(1)} s, exit ${exit.code}`);
    expect(exit.code, sender.stderr).toBe(0);
    expect(serve.proc.json().filter((event) => event.event === 'error')).toEqual([]);
  });
});

describe('--limit-rate holds the rate within 10 % over a 10 s transfer', () => {
  it('ft send --limit-rate 4M', async () => {
    const serve = await startFtServe(await inbox(), { json: true, args: ['--insecure-plaintext'] });
    const received = progressOf(serve.proc);
    const sender = sendFt(await source('sender-limited.bin'), serve.port, ['--limit-rate', '4M']);
    const sent = progressOf(sender);
    expect((await sender.exited).code, sender.stderr).toBe(0);
    await serve.proc.waitForJson((event) => event.event === 'received');
    for (const rate of [measured(sent, 'sender limit, measured by the sender'), measured(received, 'sender limit, measured by the receiver')]) {
      expect(Math.abs(rate - LIMIT) / LIMIT).toBeLessThan(TOLERANCE);
    }
  });

  it('ft serve --limit-rate 4M', async () => {
    const serve = await startFtServe(await inbox(), { json: true, args: ['--insecure-plaintext', '--limit-rate', '4M'] });
    const received = progressOf(serve.proc);
    const sender = sendFt(await source('receiver-limited.bin'), serve.port);
    expect((await sender.exited).code, sender.stderr).toBe(0);
    const rate = measured(received, 'receiver limit, measured by the receiver');
    expect(Math.abs(rate - LIMIT) / LIMIT).toBeLessThan(TOLERANCE);
  });

  it('ft serve --limit-rate 4M shared by two senders: the two together, and each about half', async () => {
    const serve = await startFtServe(await inbox(), { json: true, args: ['--insecure-plaintext', '--limit-rate', '4M'] });
    const done: Mark[] = [];
    const received = progressOf(serve.proc, done);
    const [a, b] = [sendFt(await source('shared-a.bin', SIZE / 2), serve.port), sendFt(await source('shared-b.bin', SIZE / 2), serve.port)];
    const exits = await Promise.all([a.exited, b.exited]);
    expect(exits.map((exit) => exit.code)).toEqual([0, 0]);
    // While both ran: up to the first file's end.
    await serve.proc.waitForJson((event) => event.event === 'received');
    const together = received.filter((m) => m.at < done[0]!.at);
    const rate = measured(together, 'receiver limit shared by two senders, measured by the receiver');
    expect(Math.abs(rate - LIMIT) / LIMIT).toBeLessThan(TOLERANCE);
    // Each sender's bytes from the moment both were sending (one process starts a little later).
    const names = ['shared-a.bin', 'shared-b.bin'];
    const bothFrom = Math.max(...names.map((name) => together.find((m) => m.name === name)!.at));
    const shares = names.map((name) => {
      const own = together.filter((m) => m.name === name);
      return own.at(-1)!.bytes - own.filter((m) => m.at <= bothFrom).at(-1)!.bytes;
    });
    console.log(`shares while both were sending: ${shares.map((bytes) => `${(bytes / MiB).toFixed(1)} MiB`).join(' and ')}`);
    expect(Math.min(...shares) / Math.max(...shares)).toBeGreaterThan(0.8);
  });
});
