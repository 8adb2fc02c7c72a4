/**
 * One receiver at several addresses (send()'s `fallbacks`): two receivers sharing one identity
 * and one store, as instances on a shared bucket do. The first is reached through a proxy that
 * is cut and closed mid-file (the instance gone); the send moves to the second at once and
 * resumes there. A fallback with another key stops the send; all addresses down is the error
 * one address gives. In-process receivers on 127.0.0.1 (the same with real `ft serve`
 * processes on a Ceph bucket: test/slow/s3-multi-instance.test.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { generateIdentity, send, type SendEvent } from '../../src/index.js';
import { LocalUploadStore } from '../../src/storage/local/local-store.js';
import { randomBuffer } from '../helpers/files.js';
import { freePort } from '../helpers/free-port.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;

afterEach(async () => {
  await closeAllProxies();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

function expectFtError(error: unknown, code: string): Error {
  expect(error).toBeInstanceOf(Error);
  expect((error as { code?: string }).code, String(error)).toBe(code);
  return error as Error;
}

describe('send() with fallbacks: one receiver, several addresses', () => {
  it('the first instance lost mid-file: the send goes on at the next address at once, resumes there, and the file arrives whole', async () => {
    const identity = await generateIdentity();
    const inbox = path.join(await tempDir('ft-multi-'), 'inbox');
    const store = await LocalUploadStore.open(inbox);
    const a = await startReceiver({ store, identity });
    const b = await startReceiver({ store, identity });
    expect(b.fingerprint).toBe(a.fingerprint);
    const proxy = await startProxy({ targetPort: a.port, bytesPerSecond: 8 * MiB });
    const bytes = randomBuffer(16 * MiB, 'multi-address');
    const file = path.join(await tempDir('ft-multi-src-'), 'big.bin');
    await writeFile(file, bytes);

    const events: SendEvent[] = [];
    const sending = send([file], {
      host: '127.0.0.1',
      port: proxy.port,
      fallbacks: [{ host: '127.0.0.1', port: b.port }],
      fingerprint: a.fingerprint,
      retries: 0,
      onEvent: (event) => events.push(event),
    });
    await a.waitFor('progress', (e) => e.bytes >= 4 * MiB, 20_000);
    // The instance is gone: its connection drops, and nothing answers at its address any more.
    proxy.cutAll();
    await proxy.close();
    const report = await sending;

    expect(report.files.map((f) => f.status)).toEqual(['resumed']);
    expect(report.files[0]!.resumedFrom).toBeGreaterThanOrEqual(4 * MiB);
    const moves = events.filter((e) => e.type === 'retrying');
    expect(moves).toEqual([expect.objectContaining({ host: '127.0.0.1', port: b.port, delayMs: 0, switching: true, code: 'CONNECTION_LOST' })]);
    expect(events.filter((e) => e.type === 'connected').map((e) => e.type === 'connected' && e.port)).toEqual([proxy.port, b.port]);
    // retries 0: the move to another address is not a retry.
    expect(b.eventsOf('started')).toEqual([expect.objectContaining({ name: 'big.bin', offset: report.files[0]!.resumedFrom })]);
    expect((await readFile(path.join(inbox, 'big.bin'))).equals(bytes)).toBe(true);
  });

  it('a fallback that presents another key stops the send there (RECEIVER_KEY_CHANGED): it does not skip ahead, and it gets nothing', async () => {
    const meant = await generateIdentity();
    const good = await startReceiver({ identity: meant });
    const other = await startReceiver({ identity: await generateIdentity() });
    await good.close();
    const file = path.join(await tempDir('ft-multi-src-'), 'a.txt');
    await writeFile(file, 'for the meant receiver only');
    const error = await send([file], {
      host: '127.0.0.1',
      port: good.port,
      fallbacks: [{ host: '127.0.0.1', port: other.port }, { host: '127.0.0.1', port: good.port }],
      fingerprint: good.fingerprint,
      retries: 0,
    }).catch((e: unknown) => e);
    expect(expectFtError(error, 'RECEIVER_KEY_CHANGED').message).toContain(`127.0.0.1:${other.port}`);
    expect(other.eventsOf('started')).toEqual([]);
  });

  it('every address down: CONNECT_FAILED, as for one address, after one try at each', async () => {
    const ports = [await freePort(), await freePort(), await freePort()];
    const file = path.join(await tempDir('ft-multi-src-'), 'a.txt');
    await writeFile(file, 'nobody home');
    const events: SendEvent[] = [];
    const error = await send([file], {
      host: '127.0.0.1',
      port: ports[0],
      fallbacks: ports.slice(1).map((port) => ({ host: '127.0.0.1', port })),
      trust: 'new',
      retries: 3,
      onEvent: (event) => events.push(event),
    }).catch((e: unknown) => e);
    expectFtError(error, 'CONNECT_FAILED');
    expect(events.filter((e) => e.type === 'retrying').map((e) => e.type === 'retrying' && e.port)).toEqual(ports.slice(1));
  });

  it('fallbacks must be a short array of { host, port? }', async () => {
    for (const fallbacks of ['127.0.0.1', [{ host: '' }], [{ host: 'a', port: 0 }], [{ host: 'a', extra: 1 }], Array.from({ length: 33 }, () => ({ host: 'a' }))]) {
      const error = await send(['x'], { host: '127.0.0.1', fallbacks } as never).catch((e: unknown) => e);
      expect(expectFtError(error, 'USAGE').message).toMatch(/fallbacks/);
    }
  });
});
