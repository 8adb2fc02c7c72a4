/**
 * One side in TLS, the other in plaintext: both fail at once with TLS_FAILED and say which
 * option is missing; nothing is sent, nothing is retried, and the receiver serves on.
 */
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { send } from '../../src/index.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(closeAllReceivers);
afterAll(removeTempDirs);

async function aFile(): Promise<string> {
  const file = path.join(await tempDir(), 'a.txt');
  await writeFile(file, 'some content\n');
  return file;
}

describe('TLS on one side only', () => {
  it('a TLS sender and a plaintext receiver: TLS_FAILED on both sides, at once, with nothing received', async () => {
    const receiver = await startReceiver({ insecurePlaintext: true });
    const events: string[] = [];
    const error = await send([await aFile()], { host: '127.0.0.1', port: receiver.port, trust: 'new', retries: 3, onEvent: (e) => events.push(e.type) }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'TLS_FAILED', message: expect.stringContaining('--insecure-plaintext') });
    expect(events).not.toContain('retrying');
    const logged = await receiver.waitFor('connection-error');
    expect(logged).toMatchObject({ code: 'TLS_FAILED', message: expect.stringContaining('--insecure-plaintext') });
    expect(receiver.eventsOf('received')).toEqual([]);
    // It serves on: a plaintext sender gets through.
    const report = await send([await aFile()], { host: '127.0.0.1', port: receiver.port, insecurePlaintext: true });
    expect(report.files[0]!.status).toBe('sent');
  });

  it('a plaintext sender and a TLS receiver: TLS_FAILED once the receiver gives up on its handshake, nothing received', async () => {
    const receiver = await startReceiver({ helloTimeoutMs: 300 });
    const events: string[] = [];
    const error = await send([await aFile()], { host: '127.0.0.1', port: receiver.port, insecurePlaintext: true, retries: 3, onEvent: (e) => events.push(e.type) }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'TLS_FAILED', message: expect.stringContaining('without --insecure-plaintext') });
    expect(events).not.toContain('retrying');
    expect(receiver.eventsOf('received')).toEqual([]);
    const report = await send([await aFile()], { host: '127.0.0.1', port: receiver.port, fingerprint: receiver.fingerprint });
    expect(report.files[0]!.status).toBe('sent');
  });
});

describe('a connection lost during the TLS handshake', () => {
  // Reset at once, or closed without a word: what a killed or restarting receiver does. A
  // CONNECT_FAILED is retried once the send has reached the receiver (test/slow/receiver-kills);
  // TLS_FAILED would end the send.
  for (const [what, drop] of [
    ['reset', (socket: net.Socket) => socket.resetAndDestroy()],
    ['closed', (socket: net.Socket) => socket.end()],
  ] as const) {
    it(`(${what}) is a connect failure, as a restarting receiver's is, not TLS_FAILED`, async () => {
      // Once the ClientHello is in: the handshake has begun. Read on, so the peer's end is seen and the socket closes.
      const server = net.createServer((socket) => socket.once('data', () => drop(socket)).resume());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const port = (server.address() as net.AddressInfo).port;
        const error = await send([await aFile()], { host: '127.0.0.1', port, trust: 'new', retries: 0 }).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'CONNECT_FAILED', message: expect.stringContaining(`127.0.0.1:${port}`) });
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  }
});
