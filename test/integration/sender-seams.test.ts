/**
 * Issue 10 on the sender's side: a file refused BUSY waits without holding up the others, a
 * file taken over after its body is asked for again, hashes go in the header when the receiver
 * does not take them after the body, and connections come from the connector given.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, utimes } from 'node:fs/promises';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FtError, send } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import { sendWithLimits } from '../../src/sender/sender.js';
import type { Connector } from '../../src/transport/connector.js';
import { tcpConnector } from '../../src/transport/tcp-connector.js';
import { tlsConnector } from '../../src/transport/tls-connector.js';
import { generateIdentity } from '../../src/auth/identity.js';
import { MAX_FILES_PER_CONNECTION, PROTOCOL_VERSION } from '../../src/wire/messages.js';
import type { JsonObject } from '../../src/wire/frame.js';
import { closeAllFakeReceivers, startFakeReceiver } from '../helpers/fake-receiver.js';
import { randomFile, sha256File } from '../helpers/files.js';
import { startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const AN_HOUR_AGO = new Date(Date.now() - 3600_000);

afterEach(closeAllFakeReceivers);
afterAll(removeTempDirs);

interface Script {
  /** The receiver's hello lists these. @default ['trailing-hash'] */
  features?: string[];
  /** The answer to a header (without its id); `earlier` counts the headers of that name before it. @default accept at 0 */
  decide?: (header: JsonObject, earlier: number) => JsonObject;
  /** A `failed` (without its id) instead of `done` after a body, or undefined for done. */
  verdict?: (header: JsonObject, earlier: number) => JsonObject | undefined;
}

/** A receiver that follows a script and logs every frame the sender sent, in order, with its connection. */
async function startScripted(script: Script) {
  const log: Array<{ connection: number; frame: JsonObject }> = [];
  const seen = new Map<string, number>();
  let connections = 0;
  const fake = await startFakeReceiver(async (session) => {
    const connection = connections++;
    const nonce = randomBytes(16).toString('hex');
    session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce, name: 'scripted', features: script.features ?? ['trailing-hash'] });
    await session.next();
    session.send({ type: 'welcome' });
    const headers = new Map<number, { header: JsonObject; earlier: number }>();
    let bodyTotal = 0;
    for (;;) {
      const frame = await session.next(30_000);
      log.push({ connection, frame });
      if (frame.type === 'bye') {
        session.socket.end();
        return;
      }
      if (frame.type === 'file') {
        const name = String(frame.filename);
        const earlier = seen.get(name) ?? 0;
        seen.set(name, earlier + 1);
        headers.set(frame.id as number, { header: frame, earlier });
        session.send({ ...(script.decide?.(frame, earlier) ?? { type: 'accept', offset: 0 }), id: frame.id });
      } else if (frame.type === 'body') {
        const { header, earlier } = headers.get(frame.id as number)!;
        bodyTotal += frame.length as number;
        await session.waitForBodyBytes(bodyTotal);
        let hash = header.hash;
        if (hash === undefined) {
          const trailing = await session.next();
          log.push({ connection, frame: trailing });
          hash = trailing.hash;
        }
        const failed = script.verdict?.(header, earlier);
        session.send(failed ? { ...failed, id: frame.id } : { type: 'done', id: frame.id, hash: hash as string });
      }
    }
  });
  const indexOf = (type: string, filename: string, nth = 0) =>
    log.map(({ frame }, i) => ({ frame, i })).filter(({ frame }) => frame.type === type && frame.filename === filename)[nth]?.i ?? -1;
  return { port: fake.port, fingerprint: fake.fingerprint, log, indexOf, connections: () => connections };
}

/** Body frames carry ids; this names them after the header they answer, on the same connection. */
function bodyIndex(log: Array<{ connection: number; frame: JsonObject }>, filename: string): number {
  const header = log.find(({ frame }) => frame.type === 'file' && frame.filename === filename)!;
  return log.findIndex(({ connection, frame }) => frame.type === 'body' && connection === header.connection && frame.id === header.frame.id);
}

async function smallFiles(names: string[]): Promise<string[]> {
  const dir = await tempDir('ft-seams-');
  return Promise.all(names.map((name, i) => randomFile(path.join(dir, name), 100 + i)));
}

describe('BUSY', () => {
  it('a file refused BUSY waits out its back-off while the files after it are sent', async () => {
    const fake = await startScripted({
      decide: (header, earlier) => (header.filename === 'a.txt' && earlier === 0 ? { type: 'refuse', code: 'BUSY', message: 'held elsewhere' } : { type: 'accept', offset: 0 }),
    });
    const files = await smallFiles(['a.txt', 'b.txt', 'c.txt']);
    const report = await sendWithLimits(files, { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 }, { maxFilesPerConnection: MAX_FILES_PER_CONNECTION, busyDelayMs: () => 1000 });
    expect(report.files.map((f) => [f.name, f.status])).toEqual([
      ['a.txt', 'sent'],
      ['b.txt', 'sent'],
      ['c.txt', 'sent'],
    ]);
    // Both other bodies went before a.txt was asked for again (the answer loop did not sleep).
    const again = fake.indexOf('file', 'a.txt', 1);
    expect(again).toBeGreaterThan(-1);
    expect(bodyIndex(fake.log, 'b.txt')).toBeLessThan(again);
    expect(bodyIndex(fake.log, 'c.txt')).toBeLessThan(again);
  });

  it('a file taken over by a newer upload after its body (failed BUSY) is sent again later, not given up', async () => {
    const fake = await startScripted({
      verdict: (header, earlier) =>
        header.filename === 'a.txt' && earlier === 0 ? { type: 'failed', code: 'BUSY', message: 'taken over by a newer upload of this file' } : undefined,
    });
    const files = await smallFiles(['a.txt', 'b.txt']);
    const report = await sendWithLimits(files, { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 }, { maxFilesPerConnection: MAX_FILES_PER_CONNECTION, busyDelayMs: () => 50 });
    expect(report.files.map((f) => [f.name, f.status, f.code])).toEqual([
      ['a.txt', 'sent', undefined],
      ['b.txt', 'sent', undefined],
    ]);
    expect(fake.indexOf('file', 'a.txt', 1)).toBeGreaterThan(-1);
  });

  it('is bounded: a file refused BUSY every time ends refused BUSY after 10 retries; the others are sent', async () => {
    const fake = await startScripted({
      decide: (header) => (header.filename === 'a.txt' ? { type: 'refuse', code: 'BUSY', message: 'held elsewhere' } : { type: 'accept', offset: 0 }),
    });
    const files = await smallFiles(['a.txt', 'b.txt']);
    const report = await sendWithLimits(files, { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 }, { maxFilesPerConnection: MAX_FILES_PER_CONNECTION, busyDelayMs: () => 0 });
    expect(report.files.map((f) => [f.name, f.status, f.code])).toEqual([
      ['a.txt', 'refused', 'BUSY'],
      ['b.txt', 'sent', undefined],
    ]);
    expect(fake.log.filter(({ frame }) => frame.type === 'file' && frame.filename === 'a.txt')).toHaveLength(11);
  });

  it('the default back-off is random below its ceiling, so the retries of a BUSY file still end', async () => {
    const fake = await startScripted({
      decide: (header, earlier) => (header.filename === 'a.txt' && earlier < 2 ? { type: 'refuse', code: 'BUSY', message: 'held elsewhere' } : { type: 'accept', offset: 0 }),
    });
    const files = await smallFiles(['a.txt']);
    const report = await send(files, { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 });
    expect(report.files[0]).toMatchObject({ status: 'sent' });
  }, 20_000);
});

describe('trailing-hash', () => {
  async function bigAndSmall(): Promise<{ files: string[]; hashes: Map<string, string> }> {
    const dir = await tempDir('ft-seams-');
    const big = await randomFile(path.join(dir, 'big.bin'), 3 * MiB);
    // Not written lately: a first send leaves its hash for after the body, where the receiver allows it.
    await utimes(big, AN_HOUR_AGO, AN_HOUR_AGO);
    const small = await randomFile(path.join(dir, 'small.txt'), 200);
    const hashes = new Map<string, string>();
    for (const file of [big, small]) hashes.set(path.basename(file), await hashBytes(await readFile(file)));
    return { files: [small, big], hashes };
  }

  it('against a receiver whose hello lists no features, every header carries its hash and no hash follows a body', async () => {
    const fake = await startScripted({ features: [] });
    const { files, hashes } = await bigAndSmall();
    const report = await send(files, { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 });
    expect(report.files.map((f) => [f.name, f.status])).toEqual([
      ['small.txt', 'sent'],
      ['big.bin', 'sent'],
    ]);
    const headers = fake.log.filter(({ frame }) => frame.type === 'file').map(({ frame }) => [frame.filename, frame.hash]);
    expect(headers).toEqual([
      ['small.txt', hashes.get('small.txt')],
      ['big.bin', hashes.get('big.bin')],
    ]);
    expect(fake.log.filter(({ frame }) => frame.type === 'hash')).toEqual([]);
  });

  it('a large file first, against such a receiver, is hashed unconnected and then sent with its hash in the header', async () => {
    const fake = await startScripted({ features: [] });
    const { files, hashes } = await bigAndSmall();
    const report = await send([files[1]!], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0, idleTimeoutMs: 60_000 });
    expect(report.files[0]).toMatchObject({ name: 'big.bin', status: 'sent' });
    expect(fake.log.filter(({ frame }) => frame.type === 'file').map(({ frame }) => frame.hash)).toEqual([hashes.get('big.bin')]);
    // The first connection learnt the receiver wants hashes first and said bye rather than wait idle.
    expect(fake.log.filter(({ frame }) => frame.type === 'bye').map(({ connection }) => connection)).toEqual([0, 1]);
  });

  it('against one that lists trailing-hash, the large file is read once: its hash follows its body', async () => {
    const fake = await startScripted({ features: ['trailing-hash'] });
    const { files, hashes } = await bigAndSmall();
    const report = await send(files, { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 });
    expect(report.files.map((f) => f.status)).toEqual(['sent', 'sent']);
    const big = fake.log.find(({ frame }) => frame.type === 'file' && frame.filename === 'big.bin')!.frame;
    expect(big.hash).toBeUndefined();
    expect(fake.log.filter(({ frame }) => frame.type === 'hash').map(({ frame }) => frame.hash)).toEqual([hashes.get('big.bin')]);
    expect(fake.connections()).toBe(1);
  });
});

describe('connector', () => {
  // A bare Duplex carries no TLS, so this seam is shown in plaintext on both sides; the test
  // after it shows the same seam with a TLS channel.
  it('sends through the connector given: a Duplex of its own (not a socket) relaying to a receiver on another port than the target named (nothing listens there)', async () => {
    const r = await startReceiver({ insecurePlaintext: true });
    const dir = await tempDir('ft-seams-');
    const src = await randomFile(path.join(dir, 'relayed.bin'), 3 * MiB);
    const targets: Array<{ host: string; port: number }> = [];
    let bytesOut = 0;
    const connect: Connector = async (target, options) => {
      targets.push(target);
      const socket = await tcpConnector({ host: '127.0.0.1', port: r.port }, options);
      const relay = new Duplex({
        write(chunk: Buffer, _encoding, callback) {
          bytesOut += chunk.length;
          socket.write(chunk, callback);
        },
        final(callback) {
          socket.end();
          callback();
        },
        read() {
          socket.resume();
        },
        destroy(error, callback) {
          socket.destroy();
          callback(error);
        },
      });
      socket.on('data', (data: Buffer) => {
        if (!relay.push(data)) socket.pause();
      });
      socket.on('end', () => relay.push(null));
      socket.on('error', (error) => relay.destroy(error));
      socket.on('close', () => relay.destroy());
      return relay;
    };
    const report = await send([src], { host: '127.0.0.9', port: 4242, retries: 0, connect, insecurePlaintext: true });
    expect(report.files[0]).toMatchObject({ status: 'sent' });
    expect(targets).toEqual([{ host: '127.0.0.9', port: 4242 }]);
    expect(bytesOut).toBeGreaterThan(3 * MiB);
    expect(await sha256File(path.join(r.dir, 'relayed.bin'))).toBe(await sha256File(src));
  });

  it('a connector that returns a TLS Channel (tlsConnector to another port than the target named) sends, and the key it presents is still checked', async () => {
    const r = await startReceiver();
    const dir = await tempDir('ft-seams-');
    const src = await randomFile(path.join(dir, 'tunnelled.bin'), 3 * MiB);
    const targets: Array<{ host: string; port: number }> = [];
    const connect: Connector = async (target, options) => {
      targets.push(target);
      return tlsConnector({ host: '127.0.0.1', port: r.port }, options);
    };
    const report = await send([src], { host: '127.0.0.9', port: 4242, retries: 0, connect, fingerprint: r.fingerprint });
    expect(report.files[0]).toMatchObject({ status: 'sent' });
    expect(targets).toEqual([{ host: '127.0.0.9', port: 4242 }]);
    expect(await sha256File(path.join(r.dir, 'tunnelled.bin'))).toBe(await sha256File(src));

    // The same seam with another key expected: refused before a header, nothing lands.
    const other = await generateIdentity();
    const wrong = await send([await randomFile(path.join(dir, 'refused.bin'), 1000)], { host: '127.0.0.9', port: 4242, retries: 0, connect, fingerprint: other.fingerprint }).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'RECEIVER_KEY_CHANGED' });
    expect(existsSync(path.join(r.dir, 'refused.bin'))).toBe(false);
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['tunnelled.bin']);
    await r.close();
  });

  it('a connector that returns a bare Duplex is refused with TLS_FAILED unless insecurePlaintext is given, before anything is written to it', async () => {
    const dir = await tempDir('ft-seams-');
    const src = await randomFile(path.join(dir, 'plain.txt'), 10);
    let written = 0;
    const bare = new Duplex({ read() {}, write(chunk: Buffer, _encoding, callback) { written += chunk.length; callback(); } });
    const error = await send([src], { host: '127.0.0.9', retries: 3, retryDelayMs: 0, connect: async () => bare }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TLS_FAILED' });
    expect(written).toBe(0);
  });

  it('times a stream that never greets out by its own timer (a Duplex has no setTimeout)', async () => {
    const dir = await tempDir('ft-seams-');
    const src = await randomFile(path.join(dir, 'quiet.txt'), 10);
    const silent = new Duplex({ read() {}, write(_chunk, _encoding, callback) { callback(); } });
    // A bare Duplex is plaintext: the timer under test runs while waiting for the hello.
    const error = await send([src], { host: '127.0.0.9', retries: 0, connectTimeoutMs: 300, connect: async () => silent, insecurePlaintext: true }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FtError);
    expect(error).toMatchObject({ code: 'TIMEOUT', message: '127.0.0.9:9527 did not answer within 300 ms' });
    expect(silent.destroyed).toBe(true);
  });

  it('a receiver that greets and then answers nothing is given up after idleTimeoutMs (the connection\'s own timer)', async () => {
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: randomBytes(16).toString('hex'), name: 'mute', features: ['trailing-hash'] });
      await session.next();
      session.send({ type: 'welcome' });
      await session.next(); // the header, never answered
    });
    const [src] = await smallFiles(['unanswered.txt']);
    const error = await send([src!], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0, idleTimeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TIMEOUT', message: `127.0.0.1:${fake.port} was silent for 300 ms` });
  });

  it('a receiver that stops reading mid-body is given up after idleTimeoutMs, though the sender has bytes to write', async () => {
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: randomBytes(16).toString('hex'), name: 'stuck', features: ['trailing-hash'] });
      await session.next();
      session.send({ type: 'welcome' });
      const header = await session.next();
      session.send({ type: 'accept', id: header.id, offset: 0 });
      await session.waitForBodyBytes(1);
      session.stopReading();
    });
    const dir = await tempDir('ft-seams-');
    const big = await randomFile(path.join(dir, 'stuck.bin'), 64 * MiB);
    const error = await send([big], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0, idleTimeoutMs: 500 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'TIMEOUT', message: `127.0.0.1:${fake.port} was silent for 500 ms` });
  });

  it('a connector that fails with a plain error is a CONNECT_FAILED, which is not retried before any connection worked', async () => {
    const dir = await tempDir('ft-seams-');
    const src = await randomFile(path.join(dir, 'never.txt'), 10);
    let calls = 0;
    const connect: Connector = async () => {
      calls += 1;
      throw new Error('no route to the moon');
    };
    const error = await send([src], { host: '127.0.0.9', port: 1, retries: 3, retryDelayMs: 0, connect }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONNECT_FAILED', message: '127.0.0.9:1: no route to the moon' });
    expect(calls).toBe(1);
  });
});
