/**
 * The receiver over the transport seam, with no socket: serve() on an in-memory listener and
 * an in-memory file system (memfs), a raw client on the other end of each stream. Session,
 * ingest and the local store run exactly as they do over TCP.
 */
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { ephemeralOwnerKey } from '../../src/auth/owner-key.js';
import { fileSystemOf, type FileSystem } from '../../src/file-system.js';
import { hashBytes } from '../../src/hashing.js';
import { serve, type Receiver } from '../../src/receiver/server.js';
import { memoryTransport } from '../helpers/memory-transport.js';
import { makeNonce } from '../../src/auth/token-proof.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import { helloFrom, RAW_OWNER, RawClient } from '../helpers/raw-client.js';

const receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

async function start(options: { fs?: (fs: FileSystem) => FileSystem; idleTimeoutMs?: number } = {}) {
  const vol = new Volume();
  const plain = fileSystemOf(createFsFromVolume(vol));
  const fs = options.fs ? options.fs(plain) : plain;
  const transport = memoryTransport();
  const receiver = await serve({ dir: '/inbox', fs, listen: transport.listen, beacon: false, port: 0, idleTimeoutMs: options.idleTimeoutMs });
  receivers.push(receiver);
  const connect = (address?: string) => RawClient.over(transport.dial(address));
  return { vol, receiver, connect };
}

describe('the receiver over an in-memory transport', () => {
  it('greets with version 5 and its features, welcomes a hello proven over the channel, stores a file and answers done with a receipt', async () => {
    const { vol, connect } = await start();
    const client = connect();
    const hello = await client.next();
    expect(hello).toMatchObject({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, features: ['trailing-hash', 'stream', 'metadata'] });
    expect(PROTOCOL_VERSION).toBe(5);
    // A memory transport is plaintext: the channel binding is empty.
    expect(client.security.binding()).toEqual(Buffer.alloc(0));
    client.send(helloFrom(RAW_OWNER, { binding: client.security.binding(), receiverNonce: hello.nonce as string, senderNonce: makeNonce() }));
    expect(await client.next()).toEqual({ type: 'welcome' });
    const content = Buffer.from('hello, world\n');
    const hash = await hashBytes(content);
    client.send({ type: 'file', id: 1, filename: 'greeting.txt', size: content.length, hash });
    expect(await client.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    client.send({ type: 'body', id: 1, offset: 0, length: content.length });
    client.writeRaw(content);
    expect(await client.next()).toMatchObject({ type: 'done', id: 1, hash, receipt: expect.any(String) });
    client.send({ type: 'bye' });
    await client.closed;
    expect(vol.readFileSync('/inbox/greeting.txt', 'utf8')).toBe('hello, world\n');
  });

  it('ignores features it does not know, and refuses a header without its hash unless trailing-hash was agreed', async () => {
    const { connect } = await start();
    const lenient = connect();
    await lenient.handshake({ features: ['trailing-hash', 'zz-from-the-future'] });
    lenient.send({ type: 'file', id: 1, filename: 'a.txt', size: 1 });
    expect(await lenient.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    lenient.destroy();

    const strict = connect();
    await strict.handshake({ features: ['zz-from-the-future'] });
    strict.send({ type: 'file', id: 1, filename: 'b.txt', size: 1 });
    expect(await strict.rest()).toEqual([expect.objectContaining({ type: 'error', code: 'BAD_MESSAGE', message: expect.stringContaining('trailing-hash') })]);
  });

  it('a newer upload of the same file by the same owner takes over a stalled one mid-body and resumes from what it kept', async () => {
    const { vol, connect, receiver } = await start();
    const owner = ephemeralOwnerKey();
    const content = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < content.length; i++) content[i] = (i * 7 + (i >> 12)) & 0xff;
    const hash = await hashBytes(content);
    const header = { type: 'file', id: 1, filename: 'big.bin', size: content.length, hash };
    const stale = connect();
    await stale.handshake({}, owner);
    stale.send(header);
    expect(await stale.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    const started = new Promise((resolve) => receiver.once('started', resolve));
    stale.send({ type: 'body', id: 1, offset: 0, length: content.length });
    const sent = 2 * 1024 * 1024;
    stale.writeRaw(content.subarray(0, sent));
    await started;
    // Time for the bytes to reach the store. The stalled connection stays open: before, the
    // newer one was told BUSY for as long as it stayed.
    await new Promise((resolve) => setTimeout(resolve, 500));

    const fresh = connect();
    await fresh.handshake({}, owner);
    fresh.send(header);
    const accept = await fresh.next(15_000);
    expect(accept).toMatchObject({ type: 'accept', id: 1, prefixHash: expect.stringMatching(/^xxh64:/) });
    const offset = accept.offset as number;
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(sent);
    expect(accept.prefixHash).toBe(await hashBytes(content.subarray(0, offset)));
    fresh.send({ type: 'body', id: 1, offset, length: content.length - offset });
    fresh.writeRaw(content.subarray(offset));
    expect(await fresh.next(15_000)).toMatchObject({ type: 'done', id: 1, hash });
    expect(Buffer.compare(vol.readFileSync('/inbox/big.bin') as Buffer, content)).toBe(0);

    // The stale sender, when it wakes up, learns that its upload was taken over.
    stale.writeRaw(content.subarray(sent, sent + 64 * 1024));
    expect(await stale.next()).toMatchObject({ type: 'failed', id: 1, code: 'BUSY', message: expect.stringContaining('took over') });
    fresh.send({ type: 'bye' });
    stale.destroy();
  });

  it('answers going out keep a connection from its idle timeout, as a socket\'s timeout did (a slow disk finishing files one by one)', async () => {
    // Each file's flush takes 250 ms, one after another; the connection may be silent 600 ms.
    const slowSync = (fs: FileSystem): FileSystem => {
      let queue = Promise.resolve();
      const fdatasync = ((fd: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
        queue = queue.then(() => new Promise((resolve) => setTimeout(resolve, 250))).then(() => fs.fdatasync(fd, callback));
      }) as FileSystem['fdatasync'];
      return { ...fs, fdatasync };
    };
    const { connect } = await start({ fs: slowSync, idleTimeoutMs: 600 });
    const client = connect();
    await client.handshake();
    const files = 8;
    for (let id = 1; id <= files; id++) {
      const content = Buffer.from(`file ${id}\n`);
      client.send({ type: 'file', id, filename: `f${id}.txt`, size: content.length, hash: await hashBytes(content) });
      client.send({ type: 'body', id, offset: 0, length: content.length });
      client.writeRaw(content);
    }
    // The sender now says nothing until every verdict is in (2 s of flushes, well over the idle timeout).
    const verdicts: string[] = [];
    while (verdicts.length < files) {
      const frame = await client.next(5000);
      if (frame.type === 'done' || frame.type === 'failed' || frame.type === 'error') verdicts.push(String(frame.type));
    }
    expect(verdicts).toEqual(Array(files).fill('done'));
    client.send({ type: 'bye' });
    await client.closed;
  });

  it('counts connections by the address the transport reports: the ninth from one address is turned away BUSY', async () => {
    const { connect } = await start();
    const held = Array.from({ length: 8 }, () => connect('198.51.100.9'));
    for (const client of held) await client.handshake();
    const ninth = connect('198.51.100.9');
    expect(await ninth.rest()).toEqual([expect.objectContaining({ type: 'error', code: 'BUSY' })]);
    const other = connect('198.51.100.10');
    expect(await other.handshake()).toMatchObject({ type: 'hello' });
    for (const client of [...held, other]) client.destroy();
  });
});
