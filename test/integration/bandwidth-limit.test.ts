/**
 * `limitRate` / `--limit-rate` end to end, without timing assertions (the measured rates are in
 * test/slow/rate-limit.test.ts): a limited send completes and verifies, and a receiver slowing
 * its senders down itself never counts its own waits against them (minimum body rate, idle timer).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BandwidthLimit, send } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import { randomBuffer, randomFile } from '../helpers/files.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { expectOneCleanErrorLine, killAllFt, runFt, startFtServe } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { closeTusServers, metadata, startTusServer, TUS, tusRequest } from '../helpers/tus-server.js';
import { memoryTransport } from '../helpers/memory-transport.js';

const KiB = 1024;
const MiB = 1024 * KiB;

afterEach(async () => {
  await killAllFt();
  await closeTusServers();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

describe('bandwidth limit', () => {
  it('a send under a limit completes and verifies every file, large and small, and one limit can serve two sends', async () => {
    const r = await startReceiver();
    const src = await tempDir('ft-limit-');
    const large = await randomFile(path.join(src, 'large.bin'), 3 * MiB + 123);
    const small = await Promise.all([1, 2, 3].map((i) => randomFile(path.join(src, `small-${i}.bin`), 10_000 * i)));
    const shared = new BandwidthLimit({ bytesPerSecond: 64 * MiB });
    const [one, two] = await Promise.all([
      send([large], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, limitRate: shared }),
      send(small, { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, limitRate: 32 * MiB }),
    ]);
    for (const file of [...one.files, ...two.files]) expect(file.status).toBe('sent');
    for (const file of [large, ...small]) expect((await readFile(path.join(r.dir, path.basename(file)))).equals(await readFile(file))).toBe(true);
  });

  it('a receiver limited below its own minimum body rate, with a short idle timeout, does not time out the sender it slows down', async () => {
    // 32 KiB/s against a minimum of 1 MiB/s: counted as the sender's, every body would be cut
    // off; and a 64 KiB socket read waits 2 s under the limit, twice the idle timeout.
    const r = await startReceiver({ insecurePlaintext: true, limitRate: 32 * KiB, minBodyRate: MiB, idleTimeoutMs: 1000 });
    const src = await tempDir('ft-limit-');
    const file = await randomFile(path.join(src, 'slowed.bin'), 112 * KiB);
    const report = await send([file], { host: '127.0.0.1', port: r.port, insecurePlaintext: true, retries: 0 });
    expect(report.files[0]!.status).toBe('sent');
    expect(r.eventsOf('connection-error')).toEqual([]);
    expect((await readFile(path.join(r.dir, 'slowed.bin'))).equals(await readFile(file))).toBe(true);
  }, 30_000);

  it('a sender whose receiver reads slowly (its limit) is not taken for idle: body bytes go out, and count, 64 KiB at a time', async () => {
    // In memory there are no kernel buffers to hide it: the receiver takes a chunk as it was
    // written, and a 1 MiB write would leave the sender without a sign of progress for 1 s at
    // 1 MiB/s, twice its idle timeout.
    const transport = memoryTransport();
    const r = await startReceiver({ listen: transport.listen, limitRate: MiB });
    const src = await tempDir('ft-limit-');
    const file = await randomFile(path.join(src, 'drained.bin'), 2 * MiB);
    const report = await send([file], { host: 'memory', connect: async () => transport.dial(), insecurePlaintext: true, idleTimeoutMs: 500, retries: 0 });
    expect(report.files[0]!.status).toBe('sent');
    expect((await readFile(path.join(r.dir, 'drained.bin'))).equals(await readFile(file))).toBe(true);
  }, 30_000);

  it('a tus body under the limit is not cut off for the receiver\'s own waits either', async () => {
    const server = await startTusServer({ bandwidth: new BandwidthLimit({ bytesPerSecond: 32 * KiB }), minBodyRate: MiB, idleTimeoutMs: 1000 });
    const bytes = randomBuffer(96 * KiB, 'tus-limited');
    const created = await tusRequest(server, 'POST', '/files/', {
      ...TUS,
      'Upload-Length': String(bytes.length),
      'Upload-Metadata': metadata({ filename: 'tus.bin', hash: await hashBytes(bytes) }),
    });
    expect(created.status, created.text).toBe(201);
    const patched = await tusRequest(
      server,
      'PATCH',
      created.headers.location!,
      { ...TUS, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': '0' },
      bytes,
    );
    expect(patched.status, patched.text).toBe(204);
    expect((await readFile(path.join(server.dir, 'tus.bin'))).equals(bytes)).toBe(true);
  }, 30_000);

  it('ft send --limit-rate and ft serve --limit-rate transfer and verify; a rate under the floor or not a size is one usage line', async () => {
    const inbox = path.join(await tempDir('ft-limit-'), 'inbox');
    const ft = await startFtServe(inbox, { args: ['--insecure-plaintext', '--limit-rate', '16M'] });
    const src = await tempDir('ft-limit-');
    const file = path.join(src, 'cli.bin');
    await writeFile(file, randomBuffer(MiB + 7, 'cli'));
    const sent = await runFt(['send', file, '--to', `127.0.0.1:${ft.port}`, '--insecure-plaintext', '--limit-rate', '1.5M/s', '--json']);
    expect(sent.exit.code, sent.stderr).toBe(0);
    expect(sent.json().some((event) => event.event === 'verified')).toBe(true);
    expect((await readFile(path.join(ft.dir, 'cli.bin'))).equals(await readFile(file))).toBe(true);
    for (const rate of ['16K', '20 furlongs']) {
      const refused = await runFt(['send', file, '--to', `127.0.0.1:${ft.port}`, '--insecure-plaintext', '--limit-rate', rate]);
      expect(refused.exit.code).toBe(2);
      expectOneCleanErrorLine(refused.stderr);
      expect(refused.stderr).toContain(rate);
    }
    const refused = await runFt(['serve', inbox, '--limit-rate', '1K', '--no-beacon']);
    expect(refused.exit.code).toBe(2);
    expect(refused.stderr).toMatch(/at least 32 KiB\/s/);
  }, 30_000);

  it('the library refuses a limit under the floor, naming the option', async () => {
    await expect(send(['x'], { host: '127.0.0.1', limitRate: 1000 })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/limitRate.*at least 32 KiB\/s/) });
    await expect(startReceiver({ limitRate: -5 })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
