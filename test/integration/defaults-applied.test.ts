/**
 * serve(), send() and discover() left without an option behave as src/defaults.ts says, on real
 * sockets on 127.0.0.x (the receiver tells its limits in its BUSY messages).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DISCOVER_DEFAULTS, SEND_DEFAULTS, SERVE_DEFAULTS } from '../../src/defaults.js';
import { discover, send, type SendEvent } from '../../src/index.js';
import { closeAllFakeReceivers, startFakeReceiver } from '../helpers/fake-receiver.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import type { LocalUploadStore } from '../../src/storage/local/local-store.js';
import { RawClient } from '../helpers/raw-client.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  await closeAllFakeReceivers();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

const clients: RawClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.destroy();
});

async function connect(port: number, localAddress: string): Promise<RawClient> {
  const c = await RawClient.connect(port, '127.0.0.1', { localAddress });
  clients.push(c);
  return c;
}

describe('serve() with no limits given', () => {
  it(`lets ${SERVE_DEFAULTS.maxConnectionsPerAddress} connections in from one address, and tells the next BUSY`, async () => {
    const r = await startReceiver();
    for (let i = 0; i < SERVE_DEFAULTS.maxConnectionsPerAddress; i++) {
      expect(await (await connect(r.port, '127.0.0.1')).next()).toMatchObject({ type: 'hello' });
    }
    const extra = await connect(r.port, '127.0.0.1');
    expect(await extra.next()).toMatchObject({ type: 'error', code: 'BUSY', message: expect.stringContaining(`${SERVE_DEFAULTS.maxConnectionsPerAddress} connections open`) });
  });

  it(`keeps ${SERVE_DEFAULTS.maxUnauthenticated} greetings; the next drops the oldest`, async () => {
    const r = await startReceiver();
    const perAddress = SERVE_DEFAULTS.maxConnectionsPerAddress;
    const greeting: RawClient[] = [];
    for (let i = 0; i < SERVE_DEFAULTS.maxUnauthenticated; i++) {
      const c = await connect(r.port, `127.0.1.${1 + Math.floor(i / perAddress)}`);
      expect(await c.next()).toMatchObject({ type: 'hello' });
      greeting.push(c);
    }
    // Old enough to give way (MIN_GREETING_AGE_MS), and none did so far: the pool holds them all.
    await new Promise((resolve) => setTimeout(resolve, 400));
    for (const c of greeting) expect(c.socket.destroyed || c.socket.readableEnded).toBe(false);
    const newcomer = await connect(r.port, '127.0.2.1');
    expect(await newcomer.next()).toMatchObject({ type: 'hello' });
    await Promise.race([greeting[0]!.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('the oldest greeting was not dropped')), 10_000))]);
    for (const c of greeting.slice(1)) expect(c.socket.destroyed).toBe(false);
  });

  it(`takes ${SERVE_DEFAULTS.maxConnections} connections in all, and tells the next BUSY after its hello`, async () => {
    const r = await startReceiver();
    const perAddress = SERVE_DEFAULTS.maxConnectionsPerAddress;
    for (let i = 0; i < SERVE_DEFAULTS.maxConnections; i++) {
      const c = await connect(r.port, `127.0.3.${1 + Math.floor(i / perAddress)}`);
      await c.handshake();
    }
    // Every one of them past its greeting: a file header is answered (here refused for its name).
    const last = clients.at(-1)!;
    last.send({ type: 'file', id: 1, filename: '../x', size: 1, hash: 'xxh64:0000000000000000' });
    expect(await last.next(20_000)).toMatchObject({ type: 'refuse', code: 'BAD_NAME' });
    const extra = await connect(r.port, '127.0.4.1');
    await extra.handshake();
    expect(await extra.next(20_000)).toMatchObject({ type: 'error', code: 'BUSY', message: expect.stringContaining(`limit of ${SERVE_DEFAULTS.maxConnections} connections`) });
  });

  it(`closes a connection that says nothing within ${SERVE_DEFAULTS.helloTimeoutMs} ms`, async () => {
    const r = await startReceiver();
    const c = await connect(r.port, '127.0.0.1');
    const started = performance.now();
    expect(await c.next()).toMatchObject({ type: 'hello' });
    await Promise.race([c.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open')), SERVE_DEFAULTS.helloTimeoutMs + 20_000))]);
    expect(performance.now() - started).toBeGreaterThanOrEqual(SERVE_DEFAULTS.helloTimeoutMs - 100);
    expect((await r.waitFor('connection-error')).code).toBe('TIMEOUT');
  });

  it('keeps partials within the default caps', async () => {
    const r = await startReceiver();
    expect((r.receiver.store as LocalUploadStore).partialLimits).toEqual({ maxPartials: SERVE_DEFAULTS.maxPartials, maxPartialsPerPeer: SERVE_DEFAULTS.maxPartialsPerPeer });
  });
});

describe('send() with no retry options given', () => {
  it(`reconnects ${SEND_DEFAULTS.retries} times to a receiver that keeps dropping it`, async () => {
    // Greets and welcomes, then drops the sender as soon as it announces a file: every attempt is a lost connection.
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: '00'.repeat(16), features: [] });
      await session.next();
      session.send({ type: 'welcome' });
      await session.next();
      session.socket.destroy();
    });
    const file = path.join(await tempDir(), 'a.txt');
    await writeFile(file, 'abc');
    const events: SendEvent[] = [];
    try {
      // retryDelayMs only shortens the wait; the number of attempts is the default's.
      const error = await send([file], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retryDelayMs: 1, onEvent: (e) => events.push(e) }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CONNECTION_LOST' });
    } finally {
      await fake.close();
    }
    expect(fake.sessions).toHaveLength(SEND_DEFAULTS.retries + 1);
    expect(events.filter((e) => e.type === 'retrying')).toHaveLength(SEND_DEFAULTS.retries);
  });
});

describe('discover() with no timeout given', () => {
  it(`listens for ${DISCOVER_DEFAULTS.timeout} ms`, async () => {
    const started = performance.now();
    await discover({ interface: 'lo', port: 1 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(DISCOVER_DEFAULTS.timeout - 50);
  });
});
