/**
 * The library (`serve` + `send`) over real sockets on 127.0.0.1, real files in temp folders.
 * Faults are made deterministic with a pacing proxy: the body crawls through it, and cutAll()
 * drops the connection the moment the receiver holds enough of the file.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FtError, send, type FileResult, type SendEvent } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { FIXTURE_NAMES, loadFixtures, type Fixtures } from '../helpers/fixtures.js';
import { digest, listFiles, partialBytes, partialFiles, randomFile, settledPartialBytes, waitUntil } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import type { Connector } from '../../src/transport/connector.js';
import { tlsConnector } from '../../src/transport/tls-connector.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
let fx: Fixtures;

beforeAll(async () => {
  fx = await loadFixtures();
});
afterEach(async () => {
  await closeAllProxies();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

function only(report: { files: FileResult[] }): FileResult {
  expect(report.files).toHaveLength(1);
  return report.files[0]!;
}

async function expectIdentical(received: string, original: string): Promise<void> {
  expect(await digest(received)).toEqual(await digest(original));
}

/** A file of pseudo-random bytes in a fresh folder. */
async function bigFile(name: string, bytes: number): Promise<string> {
  return randomFile(path.join(await tempDir('ft-src-'), name), bytes);
}

/** Waits until the receiver's partial holds at least `bytes` (the body is crawling through a proxy). */
async function partialReaches(r: TestReceiver, bytes: number): Promise<number> {
  return waitUntil(async () => {
    const held = await partialBytes(r.dir);
    return held >= bytes ? held : 0;
  }, `a partial of ${bytes} bytes`);
}

/** After a connection was dropped: the receiver has noticed, and the partial no longer grows. */
async function partialSettled(r: TestReceiver): Promise<number> {
  await r.waitFor('connection-error');
  return settledPartialBytes(r.dir);
}

describe('sending over 127.0.0.1', () => {
  it.each(FIXTURE_NAMES)('delivers fixture %s byte-identical under its own name', async (name) => {
    const r = await startReceiver();
    const file = only(await send([fx.file(name)], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    expect(file).toMatchObject({ status: 'sent', name });
    // An open receiver tells no one where it stored a file: the inbox shows it.
    expect(file.remotePath).toBeUndefined();
    await expectIdentical(path.join(r.dir, name), fx.file(name));
    // Came by the TCP protocol, and verified (as every file of it is).
    expect(r.eventsOf('received')).toMatchObject([{ name, protocol: 'ft', verified: true }]);
  });

  it('delivers an empty file as an empty file', async () => {
    const src = path.join(await tempDir(), 'nothing.dat');
    await writeFile(src, '');
    const r = await startReceiver();
    const file = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    expect(file).toMatchObject({ status: 'sent', size: 0, bytesSent: 0 });
    expect(file.remotePath).toBeUndefined();
    expect((await stat(path.join(r.dir, 'nothing.dat'))).size).toBe(0);
    expect(await listFiles(r.dir)).toEqual(['nothing.dat']);
  });

  it('delivers a 50 MB random file byte-identical', async () => {
    const src = await bigFile('big.bin', 50_000_000);
    const r = await startReceiver();
    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(only(report)).toMatchObject({ status: 'sent', size: 50_000_000, bytesSent: 50_000_000 });
    await expectIdentical(path.join(r.dir, 'big.bin'), src);
    expect(await partialFiles(r.dir)).toEqual([]);
  });

  it('delivers a folder tree with its relative paths', async () => {
    const r = await startReceiver();
    const report = await send([fx.tree], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    const local = await listFiles(fx.tree);
    expect(local.length).toBeGreaterThan(1);
    expect(report.files.map((f) => f.status)).toEqual(local.map(() => 'sent'));
    expect(report.files.map((f) => f.name).sort()).toEqual(local.map((rel) => `tree/${rel}`).sort());
    expect(report.files.map((f) => f.remotePath)).toEqual(local.map(() => undefined));
    expect(r.eventsOf('received').map((e) => e.path).sort()).toEqual(local.map((rel) => `tree/${rel}`).sort());
    expect(await listFiles(r.dir)).toEqual(local.map((rel) => `tree/${rel}`));
    for (const rel of local) await expectIdentical(path.join(r.dir, 'tree', rel), path.join(fx.tree, rel));
  });

  // The receiver no longer answers "already there" from a header (issue 9, point 3): a re-send
  // is uploaded, compared byte for byte with what has the name, and stored once.
  it('stores a re-send once: same names, no new files, the received files untouched', async () => {
    const r = await startReceiver();
    const paths = [fx.file('three-body.txt'), fx.file('binary.bin'), fx.tree];
    const first = await send(paths, { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(first.files.every((f) => f.status === 'sent')).toBe(true);
    const before = await listFiles(r.dir);
    const mtimes = await Promise.all(before.map(async (rel) => (await stat(path.join(r.dir, rel))).mtimeMs));

    const second = await send(paths, { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(second.files.map((f) => f.status)).toEqual(first.files.map(() => 'sent'));
    // An open receiver tells neither run where it stored the files: its events say so.
    expect([...first.files, ...second.files].every((f) => f.remotePath === undefined)).toBe(true);
    const stored = r.eventsOf('received').map((e) => e.path);
    expect(stored).toHaveLength(2 * first.files.length);
    expect(stored.slice(first.files.length).sort()).toEqual(stored.slice(0, first.files.length).sort());
    expect(await listFiles(r.dir)).toEqual(before);
    const after = await Promise.all(before.map(async (rel) => (await stat(path.join(r.dir, rel))).mtimeMs));
    expect(after).toEqual(mtimes);
  });

  it('sends many files over a single connection', async () => {
    const r = await startReceiver();
    const paths = [...FIXTURE_NAMES.map((name) => fx.file(name)), fx.tree];
    const report = await send(paths, { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(report.files.length).toBeGreaterThan(FIXTURE_NAMES.length);
    expect(report.files.every((f) => f.status === 'sent')).toBe(true);
    expect(r.eventsOf('connection')).toHaveLength(1);
    const received = r.eventsOf('received');
    expect(received).toHaveLength(report.files.length);
    // The open receiver tells the sender no paths; its own events say where each file went.
    for (const f of report.files) {
      expect(f.remotePath).toBeUndefined();
      const stored = received.find((e) => e.name === f.name);
      expect(stored?.path).toBe(f.name);
      await expectIdentical(path.join(r.dir, stored!.path), f.path);
    }
  });
});

describe('resume after interruption', () => {
  it('resumes where the receiver stopped when the connection is cut mid-body', async () => {
    const size = 12 * MiB;
    const src = await bigFile('resume.bin', size);
    const r = await startReceiver();
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 8 * MiB });
    const events: SendEvent[] = [];
    const sending = send([src], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 3, retryDelayMs: 100, onEvent: (e) => events.push(e) });
    sending.catch(() => undefined);

    await partialReaches(r, size / 4);
    proxy.cutAll();
    proxy.setBytesPerSecond(Infinity);
    const file = only(await sending);

    expect(file.status).toBe('resumed');
    expect(file.resumedFrom).toBeGreaterThan(0);
    expect(file.resumedFrom).toBeLessThan(size);
    expect(events.some((e) => e.type === 'retrying')).toBe(true);
    expect(proxy.accepted).toBeGreaterThanOrEqual(2);
    const received = r.eventsOf('received');
    expect(received).toHaveLength(1);
    expect(received[0]!.resumedFrom).toBe(file.resumedFrom);
    await expectIdentical(path.join(r.dir, 'resume.bin'), src);
    expect(await partialFiles(r.dir)).toEqual([]);
  });

  it('a retry that reaches a receiver with another key than the first connection is refused: RECEIVER_KEY_CHANGED, and it gets no header', async () => {
    const size = 12 * MiB;
    const src = await bigFile('switched.bin', size);
    const r = await startReceiver();
    const impostor = await startReceiver();
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 8 * MiB });
    // The first connection goes (through the pacing proxy) to the real receiver, every later one to the impostor.
    let calls = 0;
    const connect: Connector = (_target, options) => tlsConnector({ host: '127.0.0.1', port: calls++ === 0 ? proxy.port : impostor.port }, options);
    // First contact trusted as new: nothing but the first connection of this send vouches for the key.
    const sending = send([src], { host: '127.0.0.1', port: 9, trust: 'new', connect, retries: 3, retryDelayMs: 10 }).catch((e: unknown) => e);
    await partialReaches(r, size / 4);
    proxy.cutAll();
    const error = await sending;
    expect(error).toMatchObject({ code: 'RECEIVER_KEY_CHANGED' });
    expect((error as FtError).message).toContain('in the middle of this send');
    expect(calls).toBe(2);
    // The impostor was reached (its TLS handshake done), and dropped before our hello.
    await impostor.waitFor('connection-error');
    expect(impostor.events.map((e) => e.type)).toEqual(['connection', 'connection-error']);
    expect(impostor.eventsOf('started')).toEqual([]);
    expect(await listFiles(impostor.dir)).toEqual([]);
    expect(await partialFiles(impostor.dir)).toEqual([]);
  });

  it('detects a tampered partial and sends the file again from the start', async () => {
    const size = 8 * MiB;
    const src = await bigFile('tamper.bin', size);
    const r = await startReceiver();
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 8 * MiB });
    // The same owner key for both runs: a partial is private to the key that started it, so
    // a new key would be given a fresh partial and the tampered one never looked at.
    const senderKeyFile = path.join(await tempDir('ft-key-'), 'sender-key.pem');
    const failure = send([src], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile }).then(
      () => undefined,
      (error: unknown) => error,
    );
    await partialReaches(r, 2 * MiB);
    proxy.cutAll();
    const error = await failure;
    expect(error).toBeInstanceOf(FtError);
    expect((error as FtError).code).toBe('CONNECTION_LOST');
    const held = await partialSettled(r);
    expect(held).toBeGreaterThanOrEqual(2 * MiB);
    expect(existsSync(path.join(r.dir, 'tamper.bin'))).toBe(false);

    // Flip some bytes well inside what the receiver holds.
    const [part] = await partialFiles(r.dir);
    const handle = await open(part!, 'r+');
    const original = Buffer.alloc(64);
    await handle.read(original, 0, 64, 1000);
    await handle.write(Buffer.from(original.map((b) => b ^ 0xff)), 0, 64, 1000);
    await handle.close();

    const events: SendEvent[] = [];
    const file = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, senderKeyFile, onEvent: (e) => events.push(e) }));
    expect(events.filter((e) => e.type === 'restarted')).toHaveLength(1);
    expect(events.find((e) => e.type === 'started')).toMatchObject({ offset: 0 });
    expect(r.eventsOf('restarted')).toEqual([expect.objectContaining({ name: 'tamper.bin', discarded: held })]);
    expect(file).toMatchObject({ status: 'sent', resumedFrom: 0, bytesSent: size });
    await expectIdentical(path.join(r.dir, 'tamper.bin'), src);
  });

  it('cancels on AbortSignal with ABORTED, and a later send resumes the partial left behind', async () => {
    const size = 8 * MiB;
    const src = await bigFile('abort.bin', size);
    const r = await startReceiver();
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 8 * MiB });
    const controller = new AbortController();
    const started = Date.now();
    // The same owner key for both runs: a partial is private to the key that started it.
    const senderKeyFile = path.join(await tempDir('ft-key-'), 'sender-key.pem');
    const failure = send([src], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, signal: controller.signal, senderKeyFile }).then(
      () => undefined,
      (error: unknown) => error,
    );
    await partialReaches(r, size / 4);
    controller.abort();
    const error = await failure;
    expect(error).toBeInstanceOf(FtError);
    expect((error as FtError).code).toBe('ABORTED');
    // The whole file at 8 MiB/s would take a second; an abort is not a slow failure.
    expect(Date.now() - started).toBeLessThan(5000);
    const held = await partialSettled(r);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(size);
    expect(existsSync(path.join(r.dir, 'abort.bin'))).toBe(false);

    const file = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, senderKeyFile }));
    expect(file).toMatchObject({ status: 'resumed', resumedFrom: held, bytesSent: size - held });
    await expectIdentical(path.join(r.dir, 'abort.bin'), src);
  });
});

describe('conflict policies', () => {
  /** An inbox that already holds report.txt with other content, and a local report.txt to send. */
  async function setup(): Promise<{ inbox: string; src: string }> {
    const root = await tempDir();
    const inbox = path.join(root, 'inbox');
    await mkdir(inbox);
    await writeFile(path.join(inbox, 'report.txt'), 'the old report\n');
    await mkdir(path.join(root, 'local'));
    const src = path.join(root, 'local', 'report.txt');
    await writeFile(src, 'the new report, which is longer\n');
    return { inbox, src };
  }

  it('rename keeps both as "name (1).ext", and re-sending that content stores it once, under that name', async () => {
    const { inbox, src } = await setup();
    const r = await startReceiver({ dir: inbox, onConflict: 'rename' });
    const file = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    // An open receiver does not say where the file went: the inbox and its events do.
    expect(file.status).toBe('sent');
    expect(file.remotePath).toBeUndefined();
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['report (1).txt']);
    expect(await readFile(path.join(inbox, 'report.txt'), 'utf8')).toBe('the old report\n');
    await expectIdentical(path.join(inbox, 'report (1).txt'), src);

    const again = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    expect(again.status).toBe('sent');
    expect(again.remotePath).toBeUndefined();
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['report (1).txt', 'report (1).txt']);
    expect(await listFiles(inbox)).toEqual(['report (1).txt', 'report.txt']);
    await expectIdentical(path.join(inbox, 'report (1).txt'), src);
  });

  it('rename tells a sender that proved the token the name it stored the file under, on a re-send too', async () => {
    const { inbox, src } = await setup();
    const r = await startReceiver({ dir: inbox, onConflict: 'rename', token: 'sesame' });
    const file = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, token: 'sesame' }));
    expect(file).toMatchObject({ status: 'sent', remotePath: 'report (1).txt' });
    const again = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, token: 'sesame' }));
    expect(again).toMatchObject({ status: 'sent', remotePath: 'report (1).txt' });
    expect(await readFile(path.join(inbox, 'report.txt'), 'utf8')).toBe('the old report\n');
    expect(await listFiles(inbox)).toEqual(['report (1).txt', 'report.txt']);
  });

  it('overwrite replaces the existing file', async () => {
    const { inbox, src } = await setup();
    const r = await startReceiver({ dir: inbox, onConflict: 'overwrite' });
    const file = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    expect(file.status).toBe('sent');
    expect(file.remotePath).toBeUndefined();
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['report.txt']);
    await expectIdentical(path.join(inbox, 'report.txt'), src);
    expect(await listFiles(inbox)).toEqual(['report.txt']);
  });

  it('reject refuses with CONFLICT and keeps the existing file', async () => {
    const { inbox, src } = await setup();
    const r = await startReceiver({ dir: inbox, onConflict: 'reject' });
    const file = only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    expect(file).toMatchObject({ status: 'refused', code: 'CONFLICT' });
    expect(await readFile(path.join(inbox, 'report.txt'), 'utf8')).toBe('the old report\n');
    expect(await listFiles(inbox)).toEqual(['report.txt']);
    expect(r.eventsOf('refused')).toEqual([expect.objectContaining({ code: 'CONFLICT' })]);
  });
});

describe('what the receiver refuses or rejects', () => {
  const CONTENT = Buffer.from('0123456789');

  async function inboxIn(root: string): Promise<string> {
    const inbox = path.join(root, 'inbox');
    await mkdir(inbox);
    return inbox;
  }

  it.each([
    ['parent escape', '../x'],
    ['absolute path', '/etc/x'],
    ['escape through a folder', 'a/../../x'],
    ['drive letter and backslash', 'C:\\x'],
    ['the partial folder', '.ft-partial/x'],
    ['a Windows device name', 'con.txt'],
    ['a terminal escape', 'a\u001b[31m'],
  ])('refuses %s (%j) with BAD_NAME and writes nothing', async (_what, filename) => {
    const root = await tempDir();
    const r = await startReceiver({ dir: await inboxIn(root) });
    const client = await RawClient.connect(r.port);
    try {
      await client.handshake();
      client.send({ type: 'file', id: 1, filename, size: CONTENT.length, hash: await hashBytes(CONTENT) });
      expect(await client.next()).toMatchObject({ type: 'refuse', id: 1, code: 'BAD_NAME' });
      client.send({ type: 'bye' });
      await client.closed;
    } finally {
      client.destroy();
    }
    expect(await readdir(root)).toEqual(['inbox']);
    expect(await listFiles(r.dir)).toEqual([]);
    expect(existsSync('/etc/x')).toBe(false);
    expect(r.eventsOf('refused')).toEqual([expect.objectContaining({ code: 'BAD_NAME' })]);
  });

  it('refuses all the unsafe names when they come pipelined on one connection', async () => {
    const root = await tempDir();
    const r = await startReceiver({ dir: await inboxIn(root) });
    const names = ['../x', '/etc/x', 'a/../../x', 'C:\\x', '.ft-partial/x', 'con.txt', 'a\u001b[31m'];
    const hash = await hashBytes(CONTENT);
    const client = await RawClient.connect(r.port);
    try {
      await client.handshake();
      names.forEach((filename, i) => client.send({ type: 'file', id: i + 1, filename, size: CONTENT.length, hash }));
      const replies = [];
      for (const _ of names) replies.push(await client.next());
      expect(replies).toEqual(names.map((_, i) => expect.objectContaining({ type: 'refuse', id: i + 1, code: 'BAD_NAME' })));
    } finally {
      client.destroy();
    }
    expect(await readdir(root)).toEqual(['inbox']);
    expect(await listFiles(r.dir)).toEqual([]);
  });

  it('never follows a folder in the inbox that is a symbolic link out of it (rename: the file lands beside it)', async () => {
    const root = await tempDir();
    const inbox = await inboxIn(root);
    const outside = path.join(root, 'outside');
    await mkdir(outside);
    await symlink(outside, path.join(inbox, 'evil'));
    const local = path.join(root, 'local', 'evil');
    await mkdir(local, { recursive: true });
    await writeFile(path.join(local, 'payload.txt'), 'should never land outside\n');
    const r = await startReceiver({ dir: inbox });

    const file = only(await send([local], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    expect(file).toMatchObject({ status: 'sent', name: 'evil/payload.txt' });
    expect(file.remotePath).toBeUndefined();
    expect(await readdir(outside)).toEqual([]);
    expect(await readFile(path.join(inbox, 'evil (1)', 'payload.txt'), 'utf8')).toBe('should never land outside\n');
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['evil (1)/payload.txt']);
  });

  it('refuses with UNSAFE_PATH a file whose name is a symbolic link in the inbox', async () => {
    const root = await tempDir();
    const inbox = await inboxIn(root);
    const outsideFile = path.join(root, 'target.txt');
    await writeFile(outsideFile, 'outside\n');
    await symlink(outsideFile, path.join(inbox, 'evil'));
    const local = path.join(root, 'local', 'evil');
    await mkdir(path.dirname(local), { recursive: true });
    await writeFile(local, 'replacement\n');
    const r = await startReceiver({ dir: inbox, onConflict: 'overwrite' });

    const file = only(await send([local], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint }));
    expect(file).toMatchObject({ status: 'refused', code: 'UNSAFE_PATH' });
    expect(await readFile(outsideFile, 'utf8')).toBe('outside\n');
  });

  it.each([
    ['in the same write as the body', false],
    ['in a later write', true],
  ])('answers done, then an error frame, for bytes beyond the body length (%s), and keeps serving', async (_what, separate) => {
    const r = await startReceiver();
    const client = await RawClient.connect(r.port);
    let frames;
    try {
      await client.handshake();
      client.send({ type: 'file', id: 1, filename: 'extra.txt', size: CONTENT.length, hash: await hashBytes(CONTENT) });
      expect(await client.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      const body = Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: CONTENT.length }), CONTENT]);
      // 'XXXX' read as a frame length is 0x58585858: far over the 64 KiB frame limit.
      const extra = Buffer.from('XXXXXXXXXXXXXXXX');
      if (separate) {
        client.writeRaw(body);
        expect(await client.next()).toMatchObject({ type: 'done', id: 1 });
        client.writeRaw(extra);
        frames = await client.rest();
      } else {
        client.writeRaw(Buffer.concat([body, extra]));
        frames = await client.rest();
        expect(frames[0]).toMatchObject({ type: 'done', id: 1 });
        // An open receiver tells no path (the file is looked for in the inbox below).
        expect(frames[0]).not.toHaveProperty('path');
        frames.shift();
      }
    } finally {
      client.destroy();
    }
    expect(frames).toHaveLength(1);
    expect(frames[0]).toMatchObject({ type: 'error' });
    expect(['BAD_FRAME', 'FRAME_TOO_LARGE']).toContain(frames[0]!.code);
    expect(await readFile(path.join(r.dir, 'extra.txt'))).toEqual(CONTENT);

    const src = path.join(await tempDir(), 'after.txt');
    await writeFile(src, 'the receiver still works\n');
    expect(only(await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint })).status).toBe('sent');
    await expectIdentical(path.join(r.dir, 'after.txt'), src);
  });

  it('fails with HASH_MISMATCH when the content does not match the announced hash, keeping nothing', async () => {
    const r = await startReceiver();
    const client = await RawClient.connect(r.port);
    try {
      await client.handshake();
      const lie = await hashBytes(Buffer.from('something else entirely'));
      client.send({ type: 'file', id: 1, filename: 'lie.txt', size: CONTENT.length, hash: lie });
      expect(await client.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      client.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: CONTENT.length }), CONTENT]));
      expect(await client.next()).toMatchObject({ type: 'failed', id: 1, code: 'HASH_MISMATCH' });
      client.send({ type: 'bye' });
      await client.closed;
    } finally {
      client.destroy();
    }
    expect(existsSync(path.join(r.dir, 'lie.txt'))).toBe(false);
    expect(await listFiles(r.dir)).toEqual([]);
    expect(r.eventsOf('failed')).toEqual([expect.objectContaining({ name: 'lie.txt', code: 'HASH_MISMATCH' })]);
    expect(r.eventsOf('received')).toEqual([]);
  });
});
