/**
 * The sender's side of protocol 3 against a hand-written receiver (test/helpers/fake-receiver.ts):
 * owner key in the hello, receipts kept with the hash cache and shown again for an unchanged
 * file, paths only when told, a bounded number of headers per connection, and name collisions
 * refused across the batch.
 */
import { chmod, mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FtError, send, type SendEvent } from '../../src/index.js';
import { loadOwnerKey } from '../../src/auth/owner-key.js';
import { sendWithLimits } from '../../src/sender/sender.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import { closeAllFakeReceivers, startFakeReceiver, startProtocol3Receiver } from '../helpers/fake-receiver.js';
import { randomFile, waitUntil } from '../helpers/files.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const AN_HOUR_AGO = new Date(Date.now() - 3600_000);

afterEach(closeAllFakeReceivers);
afterAll(removeTempDirs);

/** A folder with small files and one large one (sent without hash in its header on a first send). */
async function someFiles(count = 3): Promise<{ dir: string; files: string[] }> {
  const dir = path.join(await tempDir('ft-p3-'), 'batch');
  await mkdir(dir);
  const files: string[] = [];
  for (let i = 0; i < count; i++) files.push(await randomFile(path.join(dir, `small-${i}.txt`), 100 + i));
  const big = await randomFile(path.join(dir, 'big.bin'), 2 * MiB);
  await utimes(big, AN_HOUR_AGO, AN_HOUR_AGO);
  files.push(big);
  return { dir, files };
}

async function stateFiles(): Promise<{ hashCache: string; senderKeyFile: string }> {
  const dir = await tempDir('ft-p3-state-');
  return { hashCache: path.join(dir, 'cache', 'hashes.json'), senderKeyFile: path.join(dir, 'config', 'sender-key.pem') };
}

describe('owner key', () => {
  it('proves the key of senderKeyFile in every hello; without it, each send() has a key of its own', async () => {
    const fake = await startProtocol3Receiver();
    const { dir } = await someFiles(1);
    const { senderKeyFile } = await stateFiles();
    await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, senderKeyFile });
    await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, senderKeyFile });
    await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint });
    await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint });
    const owners = fake.hellos.map((hello) => hello.owner);
    const key = await loadOwnerKey(senderKeyFile);
    expect(owners[0]).toBe(key.publicHex);
    expect(owners[1]).toBe(key.publicHex);
    expect(new Set(owners).size).toBe(3);
    // The proof is over this connection's nonce (the fake checks it with verifyOwnerProof).
    for (const hello of fake.hellos) expect(hello.ownerProof).toMatch(/^[0-9a-f]{128}$/);
  });

  it('a key file others can read is refused with LOCAL_FILE before anything is sent', async () => {
    const fake = await startProtocol3Receiver();
    const { dir } = await someFiles(1);
    const { senderKeyFile } = await stateFiles();
    await loadOwnerKey(senderKeyFile);
    await chmod(senderKeyFile, 0o644);
    const error = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, senderKeyFile }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FtError);
    expect(error).toMatchObject({ code: 'LOCAL_FILE' });
    expect((error as FtError).message).toMatch(/sender key .*chmod 600/);
    expect(fake.hellos).toHaveLength(0);
  });
});

describe('receipts', () => {
  it('a re-send of unchanged files carries their receipts and is answered "already there" without a body', async () => {
    const fake = await startProtocol3Receiver();
    const { dir, files } = await someFiles(3);
    const state = await stateFiles();
    const first = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state });
    expect(first.files.map((f) => f.status)).toEqual(['sent', 'sent', 'sent', 'sent']);
    expect(fake.headers[0]!.every((h) => h.receipt === undefined)).toBe(true);
    const bytesAfterFirst = fake.bodyBytes();
    expect(bytesAfterFirst).toBe(2 * MiB + 100 + 101 + 102);

    const second = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state });
    expect(second.files.map((f) => f.status)).toEqual(['skipped', 'skipped', 'skipped', 'skipped']);
    expect(second.bytesSent).toBe(0);
    expect(fake.bodyBytes()).toBe(bytesAfterFirst);
    const headers = fake.headers[1]!;
    expect(headers).toHaveLength(files.length);
    for (const header of headers) {
      expect(fake.claims.get(header.receipt as string)).toMatchObject({ filename: header.filename, size: header.size, hash: header.hash });
    }
    // The large file's hash, known from the first send, is in its header this time.
    expect(headers.find((h) => h.filename === 'batch/big.bin')!.hash).toMatch(/^xxh64:/);
  });

  it('a file changed since (content, or only its times) goes without receipt and is sent again', async () => {
    const fake = await startProtocol3Receiver();
    const { dir, files } = await someFiles(2);
    const state = await stateFiles();
    await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state });
    await writeFile(files[0]!, 'new content, same name');
    // Same bytes, new times: its identity (mtime, ctime) is not the one the receipt was issued for.
    await utimes(files[1]!, new Date(), AN_HOUR_AGO);
    const second = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state });
    expect(second.files.map((f) => [f.name, f.status])).toEqual([
      ['batch/big.bin', 'skipped'],
      ['batch/small-0.txt', 'sent'],
      ['batch/small-1.txt', 'sent'],
    ]);
    const byName = new Map(fake.headers[1]!.map((h) => [h.filename, h]));
    expect(byName.get('batch/small-0.txt')!.receipt).toBeUndefined();
    expect(byName.get('batch/small-1.txt')!.receipt).toBeUndefined();
    // The new uploads' receipts replace the old ones: a third send is all "already there".
    const third = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state });
    expect(third.files.every((f) => f.status === 'skipped')).toBe(true);
  });

  it('a receipt is shown only to the receiver that issued it, and only with the same owner key it was issued to', async () => {
    const fake = await startProtocol3Receiver({ name: 'one' });
    const other = await startProtocol3Receiver({ name: 'two' });
    const { dir } = await someFiles(1);
    const state = await stateFiles();
    await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state });
    await send([dir], { host: '127.0.0.1', port: other.port, fingerprint: other.fingerprint, ...state });
    expect(other.headers[0]!.every((h) => h.receipt === undefined)).toBe(true);
    // Another key (another machine's, or a lost one): the fake does not honour the receipt, and the file is sent.
    const { senderKeyFile } = await stateFiles();
    const report = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, hashCache: state.hashCache, senderKeyFile });
    expect(report.files.every((f) => f.status === 'sent')).toBe(true);
  });

  it('without a hashCache there is no receipt store: a re-send is uploaded again', async () => {
    const fake = await startProtocol3Receiver();
    const { dir } = await someFiles(1);
    const { senderKeyFile } = await stateFiles();
    await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, senderKeyFile });
    const second = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, senderKeyFile });
    expect(second.files.every((f) => f.status === 'sent')).toBe(true);
    expect(fake.headers[1]!.every((h) => h.receipt === undefined)).toBe(true);
  });

  it('receipts are saved while the send still runs, so a sender killed mid-batch keeps them', async () => {
    // The fake answers the first file, then nothing more: the send hangs until aborted.
    const fake = await startProtocol3Receiver({ stallAfterDone: 1 });
    const dir = path.join(await tempDir('ft-p3-'), 'stall');
    await mkdir(dir);
    await randomFile(path.join(dir, 'a.txt'), 10);
    await randomFile(path.join(dir, 'b.txt'), 20);
    const state = await stateFiles();
    const controller = new AbortController();
    const events: SendEvent[] = [];
    const sending = send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state, signal: controller.signal, onEvent: (e) => events.push(e) });
    sending.catch(() => undefined);
    await waitUntil(() => events.some((e) => e.type === 'verified'), 'the first file verified');
    const saved = await waitUntil(async () => {
      const text = await readFile(state.hashCache, 'utf8').catch(() => '');
      return text.includes('"stall/a.txt"') ? (JSON.parse(text) as { receipts: Array<{ receipt: string }> }) : undefined;
    }, 'the receipt on disk while the send runs');
    expect(fake.claims.has(saved.receipts[0]!.receipt)).toBe(true);
    controller.abort();
    await expect(sending).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('a skip or done without path leaves remotePath out; with one, it is reported', async () => {
    const open = await startProtocol3Receiver();
    const told = await startProtocol3Receiver({ withPaths: true });
    const { dir } = await someFiles(1);
    const state = await stateFiles();
    for (const fake of [open, told]) {
      const events: SendEvent[] = [];
      const first = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state, onEvent: (e) => events.push(e) });
      const second = await send([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, ...state, onEvent: (e) => events.push(e) });
      const reported = events.filter((e) => e.type === 'verified' || e.type === 'skipped');
      expect(reported).toHaveLength(4);
      for (const result of [...first.files, ...second.files, ...reported]) {
        if (fake === open) expect(Object.hasOwn(result, 'remotePath')).toBe(false);
        else expect((result as { remotePath?: string }).remotePath).toBe((result as { name: string }).name);
      }
      expect(second.files.every((f) => f.status === 'skipped')).toBe(true);
    }
  });

  it('a need-hash from a receiver is a protocol violation now (protocol 3 has no such message)', async () => {
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: 'ab'.repeat(16), features: ['trailing-hash'] });
      await session.next();
      session.send({ type: 'welcome' });
      const header = await session.next();
      session.send({ type: 'need-hash', id: header.id });
      await session.next().catch(() => undefined);
    });
    const dir = path.join(await tempDir('ft-p3-'), 'nh');
    await mkdir(dir);
    const big = await randomFile(path.join(dir, 'big.bin'), 2 * MiB);
    await utimes(big, AN_HOUR_AGO, AN_HOUR_AGO);
    await expect(send([big], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 })).rejects.toMatchObject({ code: 'BAD_MESSAGE' });
  });
});

describe('files per connection', () => {
  it('sends at most the limit of headers per connection, re-sent headers included, then goes on over a new one without a retry', async () => {
    const limit = 3;
    let mismatched = false;
    const fake = await startProtocol3Receiver({
      maxFilesPerConnection: limit,
      // One file is found wrong once: its header is sent again, and counts again.
      failBody: (header) => {
        if (header.filename !== 'many/f-1.txt' || mismatched) return undefined;
        mismatched = true;
        return 'HASH_MISMATCH';
      },
    });
    const dir = path.join(await tempDir('ft-p3-'), 'many');
    await mkdir(dir);
    for (let i = 0; i < 8; i++) await randomFile(path.join(dir, `f-${i}.txt`), 50 + i);
    const events: SendEvent[] = [];
    const report = await sendWithLimits([dir], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0, onEvent: (e) => events.push(e) }, { maxFilesPerConnection: limit });
    expect(report.files.map((f) => f.status)).toEqual(Array(8).fill('sent'));
    // 9 headers (8 files, one twice) in connections of at most 3.
    expect(fake.headers.map((h) => h.length)).toEqual([3, 3, 3]);
    expect(fake.headers.flat().filter((h) => h.filename === 'many/f-1.txt')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'retrying')).toHaveLength(0);
    expect(events.filter((e) => e.type === 'connected')).toHaveLength(3);
    // Each connection was finished with bye (the fake ends its side only then).
    for (const session of fake.sessions) expect(session.received().includes(Buffer.from('"type":"bye"'))).toBe(true);
  });
});

describe('name collisions across the batch', () => {
  it('refuses locally the second of two names equal up to case or normalisation, even on different connections; the others go', async () => {
    const fake = await startProtocol3Receiver();
    const root = await tempDir('ft-p3-');
    const dir = path.join(root, 'docs');
    await mkdir(dir);
    await writeFile(path.join(dir, 'Readme.txt'), 'one');
    await writeFile(path.join(dir, 'README.txt'), 'two');
    await writeFile(path.join(dir, 'caf\u00e9.txt'), 'nfc');
    await writeFile(path.join(dir, 'cafe\u0301.txt'), 'nfd');
    await writeFile(path.join(dir, 'other.txt'), 'three');
    // The same name twice (two files called other.txt) is no collision: the receiver keeps both.
    const elsewhere = path.join(root, 'elsewhere');
    await mkdir(path.join(elsewhere, 'docs'), { recursive: true });
    await writeFile(path.join(elsewhere, 'docs', 'other.txt'), 'four');
    const events: SendEvent[] = [];
    const report = await sendWithLimits([dir, path.join(elsewhere, 'docs')], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, onEvent: (e) => events.push(e) }, { maxFilesPerConnection: 1 });
    const statuses = report.files.map((f) => [f.name, f.status, f.code]);
    expect(statuses).toEqual([
      ['docs/README.txt', 'sent', undefined],
      ['docs/Readme.txt', 'refused', 'NAME_COLLISION'],
      ['docs/cafe\u0301.txt', 'sent', undefined],
      ['docs/café.txt', 'refused', 'NAME_COLLISION'],
      ['docs/other.txt', 'sent', undefined],
      ['docs/other.txt', 'sent', undefined],
    ]);
    expect(fake.headers.flat().map((h) => h.filename)).toEqual(['docs/README.txt', 'docs/cafe\u0301.txt', 'docs/other.txt', 'docs/other.txt']);
    expect(events.filter((e) => e.type === 'refused').map((e) => (e as { code: string }).code)).toEqual(['NAME_COLLISION', 'NAME_COLLISION']);
  });
});
