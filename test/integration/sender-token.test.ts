/**
 * A sender that holds a token expects a receiver that checks one: a receiver whose hello says
 * it needs none (auth "none") may be an impostor that took the real receiver's name or address,
 * so the sender stops before any header or byte of a file goes out. All traffic on 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FtError, send } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import { receiverProof, senderProof, verifySenderProof, type ProofTranscript } from '../../src/auth/token-proof.js';
import { encodeFrame, FrameDecoder, type JsonObject } from '../../src/wire/frame.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import { closeAllFakeReceivers, startFakeReceiver, type FakeSession } from '../helpers/fake-receiver.js';
import { listFiles, waitUntil } from '../helpers/files.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { killAllFt, runFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { rejection } from '../helpers/rejection.js';

const TOKEN = 'a token only the real receiver knows';
const NONCE = '0123456789abcdef0123456789abcdef';

afterEach(async () => {
  await killAllFt();
  await closeAllFakeReceivers();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

async function localFile(name: string): Promise<string> {
  const file = path.join(await tempDir('ft-src-'), name);
  await writeFile(file, `the secret content of ${name}\n`);
  return file;
}

describe('a sender with a token and a receiver that asks for none', () => {
  it('fails with RECEIVER_NOT_AUTHENTIC and a clear message, sending nothing at all (not even its hello)', async () => {
    const fake = await startFakeReceiver((session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: NONCE, name: 'nas', features: ['trailing-hash'] });
    });
    const src = await localFile('private.txt');
    const error = await rejection(send([src], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, token: TOKEN, retries: 3, retryDelayMs: 10, idleTimeoutMs: 5000 }));
    expect(error.code).toBe('RECEIVER_NOT_AUTHENTIC');
    expect(error.message).toContain('this receiver does not ask for a token; it may be an impostor');
    expect(error.message).not.toContain('\n');
    // Not retried (one connection), and the impostor got no byte from us.
    await waitUntil(() => fake.sessions.length === 1 && fake.sessions[0]!.socket.destroyed, 'the sender to hang up');
    expect(fake.sessions).toHaveLength(1);
    expect(fake.sessions[0]!.received().length).toBe(0);
  });

  it('a real receiver without a token gets no file from a sender holding one; with no token the send works', async () => {
    const open = await startReceiver();
    const src = await localFile('report.txt');
    const error = await rejection(send([src], { host: '127.0.0.1', port: open.port, fingerprint: open.fingerprint, token: TOKEN, retries: 0 }));
    expect(error.code).toBe('RECEIVER_NOT_AUTHENTIC');
    expect(open.eventsOf('started')).toEqual([]);
    expect(await listFiles(open.dir)).toEqual([]);
    // Control: the same send without a token goes through.
    const report = await send([src], { host: '127.0.0.1', port: open.port, fingerprint: open.fingerprint, retries: 0 });
    expect(report.files.map((f) => f.status)).toEqual(['sent']);
  });

  it('ft send with FT_TOKEN set exits 6 (impersonation) with one line naming the risk', async () => {
    const open = await startReceiver();
    const src = await localFile('cli.txt');
    // A home of its own: ft send keeps its owner key there (~/.config/ft), not in the runner's.
    const home = await tempDir('ft-home-');
    const env = { FT_TOKEN: TOKEN, HOME: home, XDG_CONFIG_HOME: path.join(home, 'config'), XDG_CACHE_HOME: path.join(home, 'cache') };
    const run = await runFt(['send', src, '--to', `127.0.0.1:${open.port}`, '--retries', '0', '--fingerprint', open.fingerprint!], { env });
    expect(run.exit.code).toBe(6);
    expect(run.stderr).toMatch(/^ft: .*this receiver does not ask for a token; it may be an impostor.*\n$/);
    expect(await listFiles(open.dir)).toEqual([]);
  });

  it('a receiver that asks for the token still gets it proven (the check is only about "none")', async () => {
    const frames: string[] = [];
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'hmac-sha256', nonce: NONCE, name: 'nas', features: ['trailing-hash'] });
      const hello = await session.next();
      frames.push(String(hello.type), typeof hello.proof);
      const transcript = { binding: session.security.binding(), receiverNonce: NONCE, senderNonce: String(hello.nonce) };
      frames.push(String(verifySenderProof(TOKEN, transcript, String(hello.proof))));
      session.socket.end(encodeFrame({ type: 'error', code: 'AUTH_FAILED', message: 'wrong proof' }));
    });
    const src = await localFile('proof.txt');
    const error = await rejection(send([src], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, token: TOKEN, retries: 0 }));
    expect(error.code).toBe('AUTH_FAILED');
    expect(error.message).toContain('wrong proof');
    expect(frames).toEqual(['hello', 'string', 'true']);
  });
});

/** The types of the frames a fake session read from the sender, in order (decoded from every byte it got). */
function frameTypes(session: FakeSession): string[] {
  return new FrameDecoder()
    .push(session.received())
    .flatMap((item) => (item.kind === 'frame' ? [String(item.message.type)] : []));
}

type Welcome = (transcript: ProofTranscript, senderHello: JsonObject) => JsonObject;

/**
 * A receiver that asks for the token and answers the sender's hello with the welcome given;
 * a sender that goes on is served like a real receiver would (accept at 0, done with the hash).
 */
async function tokenFake(welcome: Welcome) {
  const headers: JsonObject[] = [];
  const fake = await startFakeReceiver(async (session) => {
    session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'hmac-sha256', nonce: NONCE, name: 'nas', features: [] });
    const hello = await session.next();
    const transcript = { binding: session.security.binding(), receiverNonce: NONCE, senderNonce: String(hello.nonce) };
    session.send(welcome(transcript, hello));
    let bodyTotal = 0;
    for (;;) {
      const frame = await session.next(30_000);
      if (frame.type === 'bye') return void session.socket.end();
      if (frame.type === 'file') {
        headers.push(frame);
        session.send({ type: 'accept', id: frame.id, offset: 0 });
      } else if (frame.type === 'body') {
        bodyTotal += frame.length as number;
        await session.waitForBodyBytes(bodyTotal);
        const header = headers.find((h) => h.id === frame.id)!;
        session.send({ type: 'done', id: frame.id, hash: header.hash as string });
      }
    }
  });
  return Object.assign(fake, { headers });
}

describe('a receiver that asks for the token must prove it too (mutual, bound to the TLS channel)', () => {
  const impostors: Array<[string, Welcome]> = [
    ['no proof at all', () => ({ type: 'welcome' })],
    ['a made-up proof', () => ({ type: 'welcome', proof: 'ab'.repeat(32) })],
    ['the sender\'s own proof reflected back (it accepts any proof)', (_transcript, hello) => ({ type: 'welcome', proof: String(hello.proof) })],
    ['a proof under another token', (transcript) => ({ type: 'welcome', proof: receiverProof('a guess', transcript) })],
    ['a proof made for another channel (a relayed one)', (transcript) => ({ type: 'welcome', proof: receiverProof(TOKEN, { ...transcript, binding: randomBytes(32) }) })],
    ['the sender\'s proof recomputed by one who knows the token, in the wrong role', (transcript) => ({ type: 'welcome', proof: senderProof(TOKEN, transcript) })],
  ];
  for (const [what, welcome] of impostors) {
    for (const pinned of [true, false]) {
      it(`${what}: RECEIVER_NOT_AUTHENTIC, and no file header reached it (${pinned ? 'its key given' : 'first contact, the token alone decides'})`, async () => {
        const fake = await tokenFake(welcome);
        const src = await localFile('secret.txt');
        const error = await rejection(
          send([src], { host: '127.0.0.1', port: fake.port, ...(pinned ? { fingerprint: fake.fingerprint } : {}), token: TOKEN, retries: 2, retryDelayMs: 10 }),
        );
        expect(error.code).toBe('RECEIVER_NOT_AUTHENTIC');
        expect(error.message).toContain('did not prove that it knows the token');
        expect(error.message).not.toContain('\n');
        await waitUntil(() => fake.sessions.length === 1 && fake.sessions[0]!.socket.destroyed, 'the sender to hang up');
        // One connection (not retried), and all it read was our hello: no header, no byte of the file.
        expect(fake.sessions).toHaveLength(1);
        expect(frameTypes(fake.sessions[0]!)).toEqual(['hello']);
        expect(fake.headers).toEqual([]);
        expect(fake.sessions[0]!.received().includes('secret.txt')).toBe(false);
        expect(fake.sessions[0]!.received().includes('the secret content')).toBe(false);
      });
    }
  }

  it('a welcome with the correct receiver proof lets the files go, even on first contact with no key given', async () => {
    const fake = await tokenFake((transcript) => ({ type: 'welcome', proof: receiverProof(TOKEN, transcript) }));
    const a = await localFile('a.txt');
    const b = await localFile('b.txt');
    const report = await send([a, b], { host: '127.0.0.1', port: fake.port, token: TOKEN, retries: 0 });
    expect(report.files.map((f) => f.status)).toEqual(['sent', 'sent']);
    expect(fake.headers.map((h) => h.filename)).toEqual(['a.txt', 'b.txt']);
    expect(fake.headers.map((h) => h.hash)).toEqual([await hashBytes(await readFile(a)), await hashBytes(await readFile(b))]);
    expect(fake.sessions.reduce((sum, s) => sum + s.bodyBytes, 0)).toBe((await stat(a)).size + (await stat(b)).size);
  });
});
