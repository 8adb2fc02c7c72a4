/**
 * The sender's side of protocol 3 end to end, with the real receiver over 127.0.0.1: receipts
 * for "already there", re-sends without receipts deduplicated by the receiver, paths told only
 * to token holders, resume tied to the owner key, files per connection and name collisions.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FtError, send, type SendEvent } from '../../src/index.js';
import { sendWithLimits } from '../../src/sender/sender.js';
import { listFiles, partialBytes, randomFile, settledPartialBytes, waitUntil } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const AN_HOUR_AGO = new Date(Date.now() - 3600_000);

afterEach(async () => {
  await closeAllProxies();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

async function batch(): Promise<string> {
  const dir = path.join(await tempDir('ft-p3r-'), 'batch');
  await mkdir(dir);
  await randomFile(path.join(dir, 'a.txt'), 300);
  await randomFile(path.join(dir, 'b.txt'), 0);
  const big = await randomFile(path.join(dir, 'big.bin'), 3 * MiB);
  await utimes(big, AN_HOUR_AGO, AN_HOUR_AGO);
  return dir;
}

async function state(): Promise<{ hashCache: string; senderKeyFile: string }> {
  const dir = await tempDir('ft-p3r-state-');
  return { hashCache: path.join(dir, 'hashes.json'), senderKeyFile: path.join(dir, 'sender-key.pem') };
}

const inboxFiles = async (dir: string) => (await listFiles(dir)).filter((f) => !f.startsWith('.ft-partial'));

describe('receipts with the real receiver', () => {
  it('a re-send with the same key and cache is "already there", without a body', async () => {
    const r = await startReceiver();
    const dir = await batch();
    const s = await state();
    const first = await send([dir], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, ...s });
    expect(first.files.map((f) => f.status)).toEqual(['sent', 'sent', 'sent']);
    const second = await send([dir], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, ...s });
    expect(second.files.map((f) => f.status)).toEqual(['skipped', 'skipped', 'skipped']);
    expect(second.bytesSent).toBe(0);
    expect(await inboxFiles(r.dir)).toEqual(['batch/a.txt', 'batch/b.txt', 'batch/big.bin']);
  });

  it('without a receipt (no cache, or another key) a re-send is uploaded and the receiver keeps one copy', async () => {
    const r = await startReceiver();
    const dir = await batch();
    await send([dir], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    const again = await send([dir], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(again.bytesSent).toBe(3 * MiB + 300);
    const s = await state();
    await send([dir], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, ...s });
    expect(await inboxFiles(r.dir)).toEqual(['batch/a.txt', 'batch/b.txt', 'batch/big.bin']);
  });

  it('an open receiver tells no path; one that required our token does', async () => {
    const dir = await batch();
    const open = await startReceiver();
    const events: SendEvent[] = [];
    const report = await send([dir], { host: '127.0.0.1', port: open.port, fingerprint: open.fingerprint, onEvent: (e) => events.push(e) });
    for (const result of [...report.files, ...events.filter((e) => e.type === 'verified')]) expect(Object.hasOwn(result, 'remotePath')).toBe(false);
    const guarded = await startReceiver({ token: 'sesame' });
    const told = await send([dir], { host: '127.0.0.1', port: guarded.port, fingerprint: guarded.fingerprint, token: 'sesame' });
    expect(told.files.map((f) => f.remotePath)).toEqual(['batch/a.txt', 'batch/b.txt', 'batch/big.bin']);
  });

  it('a file sent, then changed in place with its size and mtime restored, is uploaded again (ctime differs)', async () => {
    const r = await startReceiver();
    const dir = path.join(await tempDir('ft-p3r-'), 'pin');
    await mkdir(dir);
    const file = path.join(dir, 'pin.txt');
    await writeFile(file, '1234');
    await utimes(file, AN_HOUR_AGO, AN_HOUR_AGO);
    const s = await state();
    await send([file], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, ...s });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await writeFile(file, '9876');
    await utimes(file, AN_HOUR_AGO, AN_HOUR_AGO);
    const again = await send([file], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, ...s });
    expect(again.files[0]).toMatchObject({ status: 'sent', bytesSent: 4 });
    const stored = await Promise.all((await inboxFiles(r.dir)).map((name) => readFile(path.join(r.dir, name), 'utf8')));
    expect(stored.sort()).toEqual(['1234', '9876']);
  });
});

describe('resume and the owner key, with the real receiver', () => {
  async function abortedSend(r: { dir: string; port: number; fingerprint: string | undefined; waitFor: (type: 'connection-error') => Promise<unknown> }, src: string, senderKeyFile: string): Promise<number> {
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 8 * MiB });
    const controller = new AbortController();
    const failure = send([src], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, signal: controller.signal, senderKeyFile }).catch((e: unknown) => e);
    await waitUntil(async () => (await partialBytes(r.dir)) >= 2 * MiB, 'a partial of 2 MiB');
    controller.abort();
    expect(await failure).toBeInstanceOf(FtError);
    await r.waitFor('connection-error');
    return settledPartialBytes(r.dir);
  }

  it('a later run with the same key file resumes; with another key it starts from 0', async () => {
    const size = 8 * MiB;
    const src = await randomFile(path.join(await tempDir('ft-p3r-'), 'resume.bin'), size);
    const r = await startReceiver();
    const { senderKeyFile } = await state();
    const held = await abortedSend(r, src, senderKeyFile);
    expect(held).toBeGreaterThan(0);
    const other = await state();
    const stranger = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, senderKeyFile: other.senderKeyFile });
    expect(stranger.files[0]).toMatchObject({ status: 'sent', resumedFrom: 0 });

    const r2 = await startReceiver();
    const held2 = await abortedSend(r2, src, senderKeyFile);
    const mine = await send([src], { host: '127.0.0.1', port: r2.port, fingerprint: r2.fingerprint, senderKeyFile });
    expect(mine.files[0]).toMatchObject({ status: 'resumed', resumedFrom: held2, bytesSent: size - held2 });
    expect(existsSync(path.join(r2.dir, 'resume.bin'))).toBe(true);
  });
});

describe('batches with the real receiver', () => {
  it('goes over several connections of at most the limit of headers, without retries', async () => {
    const r = await startReceiver();
    const dir = path.join(await tempDir('ft-p3r-'), 'many');
    await mkdir(dir);
    for (let i = 0; i < 12; i++) await randomFile(path.join(dir, `f-${String(i).padStart(2, '0')}.txt`), 10 + i);
    const events: SendEvent[] = [];
    const report = await sendWithLimits([dir], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, onEvent: (e) => events.push(e) }, { maxFilesPerConnection: 5 });
    expect(report.files.every((f) => f.status === 'sent')).toBe(true);
    expect(events.filter((e) => e.type === 'connected')).toHaveLength(3);
    expect(events.filter((e) => e.type === 'retrying')).toHaveLength(0);
    expect(r.eventsOf('connection')).toHaveLength(3);
    expect(r.eventsOf('connection-error')).toHaveLength(0);
    expect(await inboxFiles(r.dir)).toHaveLength(12);
  });

  it('refuses locally a name that collides with an earlier one of the batch sent over another connection', async () => {
    const r = await startReceiver();
    const dir = path.join(await tempDir('ft-p3r-'), 'case');
    await mkdir(dir);
    await writeFile(path.join(dir, 'Photo.JPG'), 'upper');
    await writeFile(path.join(dir, 'photo.jpg'), 'lower');
    const report = await sendWithLimits([dir], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }, { maxFilesPerConnection: 1 });
    expect(report.files.map((f) => [f.name, f.status, f.code])).toEqual([
      ['case/Photo.JPG', 'sent', undefined],
      ['case/photo.jpg', 'refused', 'NAME_COLLISION'],
    ]);
    expect(await inboxFiles(r.dir)).toEqual(['case/Photo.JPG']);
  });
});
