/**
 * Issue 9, points 2 and 3, end to end on an open receiver: a peer learns nothing about uploads
 * and files it did not make (no offset or prefix hash of another's partial, no "already there",
 * no size or existence), and cannot make another sender's resume complete with its bytes.
 * Raw clients and send() on 127.0.0.1 only.
 */
import { rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { send } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import { ephemeralOwnerKey } from '../../src/auth/owner-key.js';
import { encodeFrame, type JsonObject } from '../../src/wire/frame.js';
import { digest, randomBuffer, waitUntil } from '../helpers/files.js';
import { partialOf, sharedOwnerKey } from '../helpers/owners.js';
import { RawClient } from '../helpers/raw-client.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { listFiles } from '../helpers/files.js';

const MiB = 1024 * 1024;

afterEach(closeAllReceivers);
afterAll(removeTempDirs);

/** Greets with `key`, sends one header, returns the answer; `body` (when given and accepted) follows and the outcome is returned too. */
async function ask(r: TestReceiver, key: ReturnType<typeof ephemeralOwnerKey>, header: JsonObject, body?: Buffer): Promise<JsonObject[]> {
  const c = await RawClient.connect(r.port);
  try {
    await c.handshake({}, key);
    c.send({ type: 'file', id: 1, ...header });
    const answer = await c.next();
    if (!body || answer.type !== 'accept') return [answer];
    c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: body.length }), body]));
    const outcome = await c.next(10_000);
    c.send({ type: 'bye' });
    await c.rest();
    return [answer, outcome];
  } finally {
    c.destroy();
  }
}

describe("another sender's partial upload", () => {
  it('is neither offered nor revealed to a peer that sends the same name and size, and its owner still resumes it with its own bytes', async () => {
    const r = await startReceiver();
    const victim = await sharedOwnerKey();
    const size = 3 * MiB;
    const bytes = randomBuffer(size, 'victim file');
    const src = path.join(await tempDir(), 'report.pdf');
    await writeFile(src, bytes);

    // The victim's first upload stops after 2 MiB (no hash yet: it would follow the body).
    const c = await RawClient.connect(r.port);
    await c.handshake({}, victim.key);
    c.send({ type: 'file', id: 1, filename: 'report.pdf', size });
    expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: size }), bytes.subarray(0, 2 * MiB)]));
    await waitUntil(async () => (await listFiles(r.dir)).includes(`${partialOf(victim.key, 'report.pdf', size)}.part`) || undefined, 'the partial on disk');
    c.destroy();
    await r.waitFor('connection-error');

    // An attacker who knows the name and size: offset 0, no prefix hash; then it leaves a whole
    // forged body of that size behind (cut before its hash), as a poisoned partial would be.
    const attacker = ephemeralOwnerKey();
    const a = await RawClient.connect(r.port);
    await a.handshake({}, attacker);
    a.send({ type: 'file', id: 1, filename: 'report.pdf', size });
    expect(await a.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    a.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: size }), Buffer.alloc(size, 0x66)]));
    await waitUntil(async () => (await listFiles(r.dir)).includes(`${partialOf(attacker, 'report.pdf', size)}.part`) || undefined, "the attacker's partial");
    a.destroy();
    await waitUntil(() => r.eventsOf('connection-error').length === 2 || undefined, "the attacker's connection ended");
    // Another peer, even with the right hash: nothing of either partial.
    expect(await ask(r, ephemeralOwnerKey(), { filename: 'report.pdf', size, hash: await hashBytes(bytes) })).toEqual([{ type: 'accept', id: 1, offset: 0 }]);

    // The victim's send resumes its own 2 MiB, and the file is the victim's.
    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, senderKeyFile: victim.senderKeyFile, retries: 0 });
    expect(report.files[0]).toMatchObject({ status: 'resumed', resumedFrom: 2 * MiB, bytesSent: MiB });
    expect(await digest(path.join(r.dir, 'report.pdf'))).toEqual(await digest(src));
  });
});

describe('the inbox, probed without the token', () => {
  it('answers a right guess of a file exactly like a wrong one: upload it, no "already there", no path', async () => {
    const r = await startReceiver();
    await writeFile(path.join(r.dir, 'pin.txt'), '4711');
    const answers: string[] = [];
    const receiptLengths = new Set<number>();
    for (const guess of ['0000', '4711', '1234']) {
      const bytes = Buffer.from(guess);
      const frames = await ask(r, ephemeralOwnerKey(), { filename: 'pin.txt', size: 4, hash: await hashBytes(bytes) }, bytes);
      answers.push(JSON.stringify(frames.map((f) => ({ ...f, hash: f.hash === undefined ? undefined : 'h', receipt: f.receipt === undefined ? undefined : 'r' }))));
      receiptLengths.add((frames[1]?.receipt as string | undefined)?.length ?? 0);
    }
    expect(new Set(answers).size).toBe(1);
    // Not even the receipt's length differs (it seals where the file went: pin.txt, or pin (1).txt).
    expect(receiptLengths.size).toBe(1);
    expect(JSON.parse(answers[0]!)).toEqual([
      { type: 'accept', id: 1, offset: 0 },
      { type: 'done', id: 1, hash: 'h', receipt: 'r' },
    ]);
    // The right guess was stored once (the same bytes), the wrong ones beside it; the original is intact.
    expect(await listFiles(r.dir)).toEqual(['pin (1).txt', 'pin (2).txt', 'pin.txt']);
    expect((await digest(path.join(r.dir, 'pin.txt'))).size).toBe(4);
  });

  it('tells nothing of a name or a size before the body: a header under an existing file, or of its exact size without a hash, is accepted', async () => {
    const r = await startReceiver();
    await writeFile(path.join(r.dir, 'notes'), 'a file where a folder could be');
    await writeFile(path.join(r.dir, 'photo.jpg'), randomBuffer(64 * 1024, 'photo'));
    const key = ephemeralOwnerKey();
    expect(await ask(r, key, { filename: 'notes/x.txt', size: 1 })).toEqual([{ type: 'accept', id: 1, offset: 0 }]);
    for (const size of [64 * 1024, 64 * 1024 + 1]) {
      expect(await ask(r, key, { filename: 'photo.jpg', size })).toEqual([{ type: 'accept', id: 1, offset: 0 }]);
    }
  });
});

describe('receipts', () => {
  it('work for the longest names: a deep folder tree sent, then found already there', async () => {
    const r = await startReceiver();
    const { senderKeyFile } = await sharedOwnerKey();
    const root = await tempDir();
    // 16 folders of 240 bytes: a name of about 3,900 bytes, near the 4,096 limit.
    let dir = path.join(root, 'top');
    const parts = Array.from({ length: 16 }, (_, i) => `${i}`.padStart(3, '0') + 'd'.repeat(237));
    dir = path.join(dir, ...parts);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'f.txt'), 'deep\n');
    const options = { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, senderKeyFile, hashCache: path.join(root, 'cache.json'), retries: 0 };
    const first = await send([path.join(root, 'top')], options);
    expect(first.files.map((f) => f.status)).toEqual(['sent']);
    const again = await send([path.join(root, 'top')], options);
    expect(again.files.map((f) => f.status)).toEqual(['skipped']);
  });
});

describe("the receiver's own folders", () => {
  // Attack review of issue 10: the refusal quoted the folder check, which names the hidden folder and a user id.
  it('a partial folder that is not usable refuses the file with its code only; the receiver logs the rest', async () => {
    const r = await startReceiver();
    const partials = path.join(r.dir, '.ft-partial');
    await rm(partials, { recursive: true });
    await symlink(await tempDir(), partials);
    const key = ephemeralOwnerKey();
    const [answer] = await ask(r, key, { filename: 'big.bin', size: 3 * MiB });
    expect(answer).toEqual({ type: 'refuse', id: 1, code: 'UNSAFE_PATH', message: 'the receiver could not store this file (UNSAFE_PATH)' });
    const warning = await r.waitFor('warning', (event) => event.message.includes('big.bin'));
    expect(warning.message).toMatch(/folder for unfinished uploads is not usable: .*\.ft-partial must be a real folder/);
  });
});
