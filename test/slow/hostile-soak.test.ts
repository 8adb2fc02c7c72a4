/**
 * Hostile soak (issue 9, "done when"): one `ft serve` with its default limits and no token, under
 * peers that use the attacks of points 1, 2, 3 and 5 at once for SOAK_MS (over a minute), while a
 * legitimate `ft send` keeps sending from another address. At the end every legitimate file is
 * verified and byte-identical (a resume included, whose partial the attackers tried to poison),
 * the inbox's own files are untouched, no attacker learned anything about them, and the
 * receiver's peak RSS stayed under the bound the README states.
 *
 * A second test fills every connection slot with a hostile peer holding the most a peer can make
 * the receiver hold (the header cap's worth of long names, a full pipeline of accepted headers, a
 * small body one byte short), and checks the same bound.
 *
 * Hostile peers speak the protocol by hand from 127.0.1.x / 127.0.2.x; the legitimate sender
 * connects from 127.0.0.1. Nothing leaves loopback.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { ephemeralOwnerKey, type OwnerKey } from '../../src/auth/owner-key.js';
import { encodeFrame, type JsonObject } from '../../src/wire/frame.js';
import { MAX_FILES_PER_CONNECTION } from '../../src/wire/messages.js';
import { digest, listFiles, randomBuffer, randomFile, waitUntil } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { killAllFt, runFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { mb, MiB, startServe, trackPeakRss, type ServeProcess } from './support.js';

/** The receiver's memory bound with every slot used by a hostile peer, as the README states it. */
const MEMORY_BOUND_BYTES = 320 * MiB;
const SOAK_MS = 65_000;

afterEach(killAllFt);
afterAll(removeTempDirs);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A valid name of about `bytes` bytes, unique per `n`: folders of 200-byte components. */
function longName(n: number, bytes: number): string {
  const parts: string[] = [];
  for (let left = bytes; left > 0; left -= 201) parts.push(`${String(n).padStart(8, '0')}-${'n'.repeat(Math.min(190, left))}`);
  return parts.join('/');
}

interface Tally {
  /** Answers the attackers got that they must never get. */
  violations: string[];
  counts: Record<string, number>;
}

function note(tally: Tally, what: string): void {
  tally.counts[what] = (tally.counts[what] ?? 0) + 1;
}

/**
 * Runs `attack` on fresh connections from `address` until `until`, `parallel` at a time; a
 * connection the receiver cuts (the point of most attacks) just starts the next round.
 */
async function keepAttacking(
  port: number,
  address: string,
  parallel: number,
  until: number,
  tally: Tally,
  attack: (c: RawClient, round: number) => Promise<void>,
): Promise<void> {
  let round = 0;
  const worker = async () => {
    while (Date.now() < until) {
      const n = round++;
      let c: RawClient | undefined;
      try {
        c = await RawClient.connect(port, '127.0.0.1', { localAddress: address });
        await attack(c, n);
      } catch {
        note(tally, 'cut off');
        await sleep(50);
      } finally {
        c?.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/** Point 1: the header cap's worth of long names, each accepted and taken back at once. */
async function nameFlood(
  c: RawClient,
  owner: OwnerKey | undefined,
  tally: Tally,
  { nameBytes = 3000, count = MAX_FILES_PER_CONNECTION - 100, until = Infinity } = {},
): Promise<void> {
  if (owner) await c.handshake({}, owner);
  let id = 0;
  while (id < count && Date.now() < until) {
    const batch: Buffer[] = [];
    const ids: number[] = [];
    for (let n = 0; n < 32 && id < count; n++) {
      ids.push(++id);
      batch.push(encodeFrame({ type: 'file', id, filename: longName(id, nameBytes), size: 1, hash: 'xxh64:0000000000000001' }));
    }
    c.writeRaw(Buffer.concat(batch));
    const cancels: Buffer[] = [];
    for (const want of ids) {
      const answer = await c.next(30_000);
      note(tally, `name flood: ${answer.type}`);
      if (answer.type === 'accept') cancels.push(encodeFrame({ type: 'cancel', id: want }));
    }
    c.writeRaw(Buffer.concat(cancels));
  }
}

describe('hostile soak', () => {
  it(`keeps serving a legitimate sender for ${SOAK_MS / 1000} s under every attack at once, within its memory bound, the inbox intact`, async () => {
    const root = await tempDir('ft-soak-');
    const inbox = path.join(root, 'inbox');
    const src = path.join(root, 'src');
    const home = path.join(root, 'home');
    await mkdir(inbox);
    await mkdir(src);
    await mkdir(home);
    // The inbox's own files, which no peer may learn about.
    const pin = Buffer.from('4711');
    await writeFile(path.join(inbox, 'pin.txt'), pin);
    await writeFile(path.join(inbox, 'docs'), 'a file where a folder could be\n');
    const photo = randomBuffer(64 * 1024, 'photo');
    await writeFile(path.join(inbox, 'photo.jpg'), photo);
    const originals = await listFiles(inbox);
    const originalDigests = await Promise.all(originals.map((name) => digest(path.join(inbox, name))));

    const serve = await startServe(inbox, { timeoutMs: SOAK_MS + 240_000 });
    const rss = trackPeakRss(serve.proc.pid, 100);
    const env = { XDG_CONFIG_HOME: path.join(home, 'config'), XDG_CACHE_HOME: path.join(home, 'cache') };
    const to = `127.0.0.1:${serve.port}`;
    // Every legitimate send checks the receiver's key against the one ft serve announced.
    const pinned = ['--fingerprint', String(serve.events('listening')[0]!.fingerprint)];

    // The victim: a large file whose first send is killed part-way, leaving its partial behind.
    const big = await randomFile(path.join(src, 'big.bin'), 24 * MiB, 'victim');
    const bigSize = 24 * MiB;
    // Through a 4 MiB/s proxy, so that the kill lands mid-body.
    const slow = await startProxy({ targetPort: serve.port, bytesPerSecond: 4 * MiB });
    const first = spawnFt(['send', big, '--to', `127.0.0.1:${slow.port}`, '--json', '--retries', '0', ...pinned], { env, timeoutMs: 60_000 });
    await first.waitForJson((e) => e.event === 'progress' && (e.bytes as number) > 4 * MiB, 30_000);
    first.kill('SIGKILL');
    await first.exited;
    await closeAllProxies();
    await waitUntil(() => serve.events('error').length > 0 || undefined, "the victim's connection ended");

    const until = Date.now() + SOAK_MS;
    const tally: Tally = { violations: [], counts: {} };
    const bad = (what: string) => tally.violations.push(what);

    const attacks = [
      // Point 1: names, 24 connections from three addresses.
      ...['127.0.1.1', '127.0.1.2', '127.0.1.3'].map((address) =>
        keepAttacking(serve.port, address, 8, until, tally, (c) => nameFlood(c, ephemeralOwnerKey(), tally, { until })),
      ),
      // Point 2: poison the victim's resume. Same name and size, own bytes, cut before the hash.
      keepAttacking(serve.port, '127.0.1.4', 4, until, tally, async (c) => {
        await c.handshake({}, ephemeralOwnerKey());
        c.send({ type: 'file', id: 1, filename: 'big.bin', size: bigSize });
        const answer = await c.next(30_000);
        note(tally, `poison: ${answer.type} at ${answer.offset}`);
        if (answer.type !== 'accept') return;
        if (answer.offset !== 0 || answer.prefixHash !== undefined) bad(`an attacker was offered the victim's partial: ${JSON.stringify(answer)}`);
        c.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: bigSize }));
        const forged = Buffer.alloc(MiB, 0x66);
        for (let sent = 0; sent < bigSize; sent += forged.length) {
          c.writeRaw(forged);
          if (c.socket.writableNeedDrain) await new Promise((resolve) => c.socket.once('drain', resolve));
        }
        await sleep(200);
      }),
      // Point 3: probe the inbox without uploading anything of value.
      keepAttacking(serve.port, '127.0.1.5', 2, until, tally, async (c, round) => {
        await c.handshake({}, ephemeralOwnerKey());
        const guesses = [String(4700 + (round % 30)), '4711'];
        const probes: Array<{ filename: string; bytes: Buffer }> = [
          ...guesses.map((g) => ({ filename: 'pin.txt', bytes: Buffer.from(g) })),
          { filename: 'docs/x.txt', bytes: Buffer.from('x') },
          { filename: 'photo.jpg', bytes: photo },
        ];
        let id = 0;
        for (const probe of probes) {
          c.send({ type: 'file', id: ++id, filename: probe.filename, size: probe.bytes.length, hash: await hashBytes(probe.bytes) });
          const answer = await c.next(30_000);
          note(tally, `probe: ${answer.type}`);
          if (answer.type !== 'accept') {
            bad(`probe of ${probe.filename} answered ${JSON.stringify(answer)}`);
            continue;
          }
          c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id, offset: 0, length: probe.bytes.length }), probe.bytes]));
          const outcome = await c.next(30_000);
          if (outcome.type !== 'done' || 'path' in outcome) bad(`probe of ${probe.filename} ended ${JSON.stringify(outcome)}`);
        }
        c.send({ type: 'bye' });
        await c.rest(10_000);
        await sleep(1000);
      }),
      // Point 5: connections that never greet.
      keepAttacking(serve.port, '127.0.1.6', 8, until, tally, async (c) => {
        await c.next(30_000);
        await c.closed;
      }),
      // Point 5: small bodies trickled, large bodies stalled after reserving, small bodies cut short.
      keepAttacking(serve.port, '127.0.1.7', 2, until, tally, async (c, round) => {
        await c.handshake({}, ephemeralOwnerKey());
        c.send({ type: 'file', id: 1, filename: `trickle-${round}.bin`, size: MiB, hash: 'xxh64:0000000000000002' });
        if ((await c.next(30_000)).type !== 'accept') return;
        c.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: MiB }));
        for (let i = 0; i < MiB && !c.socket.destroyed; i++) {
          c.writeRaw(Buffer.from('t'));
          await sleep(20);
        }
      }),
      keepAttacking(serve.port, '127.0.1.7', 2, until, tally, async (c, round) => {
        await c.handshake({}, ephemeralOwnerKey());
        c.send({ type: 'file', id: 1, filename: `reserve-${round}.bin`, size: 512 * MiB });
        const answer = await c.next(30_000);
        note(tally, `reserve: ${answer.type}`);
        if (answer.type !== 'accept') return;
        c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 512 * MiB }), Buffer.alloc(MiB)]));
        await c.closed;
      }),
      keepAttacking(serve.port, '127.0.1.8', 2, until, tally, async (c, round) => {
        await c.handshake({}, ephemeralOwnerKey());
        // Deep names, then small bodies cut short.
        for (let id = 1; id <= 20; id++) {
          c.send({ type: 'file', id, filename: Array(2048).fill('d').join('/'), size: 1 });
          note(tally, `deep: ${(await c.next(30_000)).type}`);
        }
        c.send({ type: 'file', id: 21, filename: `cut-${round}.bin`, size: 512 * 1024, hash: 'xxh64:0000000000000003' });
        if ((await c.next(30_000)).type !== 'accept') return;
        c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 21, offset: 0, length: 512 * 1024 }), Buffer.alloc(100 * 1024)]));
        await sleep(100);
      }),
    ];

    // The legitimate sender, every few seconds, from 127.0.0.1.
    const legit: Array<{ name: string; code: number | null; ms: number }> = [];
    const legitimate = (async () => {
      for (let n = 0; Date.now() < until; n++) {
        const file = path.join(src, `legit-${n}.txt`);
        await writeFile(file, `legitimate file ${n}\n`.repeat(100 + n));
        const started = Date.now();
        const run = await runFt(['send', file, '--to', to, '--json', ...pinned], { env, timeoutMs: 120_000 });
        legit.push({ name: path.basename(file), code: run.exit.code, ms: Date.now() - started });
        await sleep(3000);
      }
    })();

    await Promise.all([...attacks, legitimate]);
    // The victim's resume, after all that.
    const resumed = await runFt(['send', big, '--to', to, '--json', ...pinned], { env, timeoutMs: 120_000 });
    const peak = await rss.stop();
    console.log(
      `hostile soak: receiver peak RSS ${mb(peak)} (bound ${mb(MEMORY_BOUND_BYTES)}); legitimate sends ${legit.length}, ` +
        `slowest ${Math.max(...legit.map((l) => l.ms))} ms; attack answers ${JSON.stringify(tally.counts)}`,
    );

    expect(tally.violations).toEqual([]);
    expect(legit.length).toBeGreaterThanOrEqual(5);
    expect(legit.filter((l) => l.code !== 0)).toEqual([]);
    for (const { name } of legit) expect(await digest(path.join(inbox, name))).toEqual(await digest(path.join(src, name)));
    expect(resumed.exit.code, resumed.stderr).toBe(0);
    const verified = resumed.json().find((e) => e.event === 'verified');
    // Resumed from the victim's own partial, which no attacker could touch.
    expect(verified?.resumedFrom).toBeGreaterThan(0);
    expect(await digest(path.join(inbox, 'big.bin'))).toEqual(await digest(big));
    // The inbox's own files are as they were; nothing else was written outside the inbox.
    expect(await Promise.all(originals.map((name) => digest(path.join(inbox, name))))).toEqual(originalDigests);
    expect((await listFiles(root)).filter((f) => !f.startsWith('inbox/') && !f.startsWith('src/') && !f.startsWith('home/'))).toEqual([]);
    expect(peak).toBeLessThan(MEMORY_BOUND_BYTES);
    await stopServe(serve);
  }, SOAK_MS + 300_000);

  it('every connection slot held by a hostile peer holding all it can keeps the receiver within its memory bound', async () => {
    const root = await tempDir('ft-soak-slots-');
    const serve = await startServe(path.join(root, 'inbox'), { timeoutMs: 600_000 });
    const rss = trackPeakRss(serve.proc.pid, 100);
    const tally: Tally = { violations: [], counts: {} };
    const clients: RawClient[] = [];
    try {
      // 64 connections (the default maximum) from 8 addresses (8 each, the per-address maximum).
      // Greeted one after another (a burst would meet the greeting pool's limit, which is not the point here).
      for (let i = 0; i < 64; i++) {
        const c = await RawClient.connect(serve.port, '127.0.0.1', { localAddress: `127.0.2.${1 + (i % 8)}` });
        await c.handshake({}, ephemeralOwnerKey());
        clients.push(c);
      }
      let flooded = 0;
      const holding = clients.map(async (c, i) => {
        await nameFlood(c, undefined, tally, { count: MAX_FILES_PER_CONNECTION - 64, nameBytes: 3000 });
        if (++flooded === clients.length) console.log(`all 64 slots hostile: peak RSS ${mb(rss.peak())} once every name flood is done`);
        // A full pipeline of accepted headers with long names, and a small body one byte short.
        const base = MAX_FILES_PER_CONNECTION - 64;
        const headers: Buffer[] = [];
        for (let n = 1; n <= 63; n++) headers.push(encodeFrame({ type: 'file', id: base + n, filename: longName(base + n, 4000), size: MiB, hash: 'xxh64:0000000000000004' }));
        c.writeRaw(Buffer.concat(headers));
        for (let n = 1; n <= 63; n++) note(tally, `held: ${(await c.next(60_000)).type}`);
        c.writeRaw(encodeFrame({ type: 'body', id: base + 1, offset: 0, length: MiB }));
        const chunk = randomBuffer(4096, `slot-${i}`);
        for (let sent = 0; sent < MiB - 4096; sent += chunk.length) c.writeRaw(chunk);
        c.writeRaw(chunk.subarray(0, 4095));
      });
      await Promise.all(holding);
      // Held for a few seconds, under the minimum-rate window, while we watch the memory.
      await sleep(4000);
      const peak = rss.peak();
      console.log(`all 64 slots hostile: receiver peak RSS ${mb(peak)} (bound ${mb(MEMORY_BOUND_BYTES)}); answers ${JSON.stringify(tally.counts)}`);
      expect(tally.counts['name flood: accept']).toBe(64 * (MAX_FILES_PER_CONNECTION - 64));
      expect(tally.counts['held: accept']).toBe(64 * 63);
      expect(peak).toBeLessThan(MEMORY_BOUND_BYTES);
    } finally {
      for (const c of clients) c.destroy();
    }
    // Once they are gone, a legitimate sender gets through.
    const file = path.join(root, 'after.txt');
    await writeFile(file, 'after the siege\n');
    const env = { XDG_CONFIG_HOME: path.join(root, 'config'), XDG_CACHE_HOME: path.join(root, 'cache') };
    const pinned = ['--fingerprint', String(serve.events('listening')[0]!.fingerprint)];
    await waitUntil(async () => (await runFt(['send', file, '--to', `127.0.0.1:${serve.port}`, ...pinned], { env, timeoutMs: 60_000 })).exit.code === 0 || undefined, 'a legitimate send', {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    expect(await readFile(path.join(serve.dir, 'after.txt'), 'utf8')).toBe('after the siege\n');
    await rss.stop();
    await stopServe(serve);
  }, 600_000);
});

async function stopServe(serve: ServeProcess): Promise<void> {
  serve.proc.kill('SIGTERM');
  const timer = setTimeout(() => serve.proc.kill('SIGKILL'), 10_000);
  await serve.proc.exited;
  clearTimeout(timer);
}
