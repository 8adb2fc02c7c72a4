/**
 * A sender that holds a token expects a receiver that checks one: a receiver whose hello says
 * it needs none (auth "none") may be an impostor that took the real receiver's name or address,
 * so the sender stops before any header or byte of a file goes out. All traffic on 127.0.0.1.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FtError, send } from '../../src/index.js';
import { encodeFrame } from '../../src/wire/frame.js';
import { closeAllFakeReceivers, startFakeReceiver } from '../helpers/fake-receiver.js';
import { listFiles, waitUntil } from '../helpers/files.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { killAllFt, runFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

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

async function rejection(promise: Promise<unknown>): Promise<FtError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FtError);
  return error as FtError;
}

describe('a sender with a token and a receiver that asks for none', () => {
  it('fails with AUTH_FAILED and a clear message, sending nothing at all (not even its hello)', async () => {
    const fake = await startFakeReceiver((session) => {
      session.send({ type: 'hello', protocol: 'ft', version: 4, auth: 'none', nonce: NONCE, name: 'nas', features: ['trailing-hash'] });
    });
    const src = await localFile('private.txt');
    const error = await rejection(send([src], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, token: TOKEN, retries: 3, retryDelayMs: 10, idleTimeoutMs: 5000 }));
    expect(error.code).toBe('AUTH_FAILED');
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
    expect(error.code).toBe('AUTH_FAILED');
    expect(open.eventsOf('started')).toEqual([]);
    expect(await listFiles(open.dir)).toEqual([]);
    // Control: the same send without a token goes through.
    const report = await send([src], { host: '127.0.0.1', port: open.port, fingerprint: open.fingerprint, retries: 0 });
    expect(report.files.map((f) => f.status)).toEqual(['sent']);
  });

  it('ft send with FT_TOKEN set exits 4 with one line naming the risk', async () => {
    const open = await startReceiver();
    const src = await localFile('cli.txt');
    // A home of its own: ft send keeps its owner key there (~/.config/ft), not in the runner's.
    const home = await tempDir('ft-home-');
    const env = { FT_TOKEN: TOKEN, HOME: home, XDG_CONFIG_HOME: path.join(home, 'config'), XDG_CACHE_HOME: path.join(home, 'cache') };
    const run = await runFt(['send', src, '--to', `127.0.0.1:${open.port}`, '--retries', '0'], { env });
    expect(run.exit.code).toBe(4);
    expect(run.stderr).toMatch(/^ft: .*this receiver does not ask for a token; it may be an impostor.*\n$/);
    expect(await listFiles(open.dir)).toEqual([]);
  });

  it('a receiver that asks for the token still gets it proven (the check is only about "none")', async () => {
    const frames: string[] = [];
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: 4, auth: 'hmac-sha256', nonce: NONCE, name: 'nas', features: ['trailing-hash'] });
      const hello = await session.next();
      frames.push(String(hello.type), typeof hello.proof);
      session.socket.end(encodeFrame({ type: 'error', code: 'AUTH_FAILED', message: 'wrong proof' }));
    });
    const src = await localFile('proof.txt');
    const error = await rejection(send([src], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, token: TOKEN, retries: 0 }));
    expect(error.code).toBe('AUTH_FAILED');
    expect(error.message).toContain('wrong proof');
    expect(frames).toEqual(['hello', 'string']);
  });
});
