/**
 * What one peer may consume on a live receiver: files per connection, the rate of a body, disk
 * space promised to bodies, and what error texts tell it. Raw clients on 127.0.0.1 only.
 */
import type nodeFs from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { ephemeralOwnerKey } from '../../src/auth/owner-key.js';
import { encodeFrame, type JsonObject } from '../../src/wire/frame.js';
import { MAX_FILES_PER_CONNECTION } from '../../src/wire/messages.js';
import { MIN_FREE_INODES } from '../../src/storage/local/local-store.js';
import { listFiles } from '../helpers/files.js';
import { expectServesOn } from '../helpers/hostile.js';
import { RawClient } from '../helpers/raw-client.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const ZERO_HASH = 'xxh64:0000000000000000';

afterEach(closeAllReceivers);
afterAll(removeTempDirs);

describe('files per connection', () => {
  it(`a connection may send ${MAX_FILES_PER_CONNECTION} headers; the next one is a protocol error`, async () => {
    const r = await startReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      // Refused at once (a bad name), in batches under the 64 unanswered headers allowed.
      let id = 0;
      while (id < MAX_FILES_PER_CONNECTION) {
        const batch: Buffer[] = [];
        for (let n = 0; n < 50 && id < MAX_FILES_PER_CONNECTION; n++) batch.push(encodeFrame({ type: 'file', id: ++id, filename: `../x${id}`, size: 1 }));
        c.writeRaw(Buffer.concat(batch));
        for (let n = 0; n < batch.length; n++) expect(await c.next(20_000)).toMatchObject({ type: 'refuse', code: 'BAD_NAME' });
      }
      c.send({ type: 'file', id: id + 1, filename: 'one-too-many.txt', size: 1 });
      expect(await c.rest(10_000)).toEqual([{ type: 'error', code: 'UNEXPECTED_MESSAGE', message: expect.stringContaining(`more than ${MAX_FILES_PER_CONNECTION} files`) }]);
    } finally {
      c.destroy();
    }
    await expectServesOn(r);
  }, 120_000);
});

describe('body rate', () => {
  it('a body trickled below the minimum rate is cut off long before the idle timeout would', async () => {
    // Idle timeout 4 s: a byte every 200 ms never trips it; the rate window (2 s here) does.
    const r = await startReceiver({ idleTimeoutMs: 4000, minBodyRate: 1000 });
    const c = await RawClient.connect(r.port);
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await c.handshake();
      c.send({ type: 'file', id: 1, filename: 'trickle.bin', size: 2 * MiB, hash: ZERO_HASH });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: 2 * MiB }));
      timer = setInterval(() => c.writeRaw(Buffer.from('x')), 200);
      // Cut off like an idle connection: closed, and the receiver says why.
      await Promise.race([c.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still open after 30 s')), 30_000))]);
    } finally {
      clearInterval(timer);
      c.destroy();
    }
    expect(performance.now() - started).toBeLessThan(20_000);
    expect(await r.waitFor('connection-error')).toMatchObject({ code: 'TIMEOUT', message: expect.stringContaining('below this receiver') });
    // What arrived is kept for resume.
    await expectServesOn(r, await listFiles(r.dir));
  }, 40_000);

  it('(control) a body at a steady rate above the minimum completes, however long it takes', async () => {
    const r = await startReceiver({ idleTimeoutMs: 2000, minBodyRate: 1000 });
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      const bytes = Buffer.alloc(6000, 7);
      c.send({ type: 'file', id: 1, filename: 'steady.bin', size: bytes.length });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }));
      // 3 s at 2,000 B/s: longer than the rate window and the idle timeout.
      for (let at = 0; at < bytes.length; at += 200) {
        c.writeRaw(bytes.subarray(at, at + 200));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const { hashBytes } = await import('../../src/hashing.js');
      c.send({ type: 'hash', id: 1, hash: await hashBytes(bytes) });
      expect(await c.next(10_000)).toMatchObject({ type: 'done', id: 1 });
    } finally {
      c.destroy();
    }
  }, 40_000);
});

describe('disk space', () => {
  /** The real disk, except that it says it has `free` bytes. */
  function smallDisk(free: number): FileSystem {
    return { ...nodeFileSystem, statfs: (async () => ({ bavail: free, bsize: 1 })) as unknown as FileSystem['statfs'] };
  }

  it(`inodes: with fewer than ${MIN_FREE_INODES} free, an empty file and a folder are refused NO_SPACE (they cost no bytes); with more, both go`, async () => {
    for (const ffree of [MIN_FREE_INODES - 1, MIN_FREE_INODES]) {
      const fs = { ...nodeFileSystem, statfs: (async () => ({ bavail: 1024 * MiB, bsize: 1, files: 1_000_000, ffree })) as unknown as FileSystem['statfs'] };
      const r = await startReceiver({ fs });
      const c = await RawClient.connect(r.port);
      try {
        await c.handshake({ features: ['metadata'] }, ephemeralOwnerKey());
        c.send({ type: 'file', id: 1, filename: 'empty.txt', size: 0, hash: 'xxh64:ef46db3751d8e999' });
        c.send({ type: 'file', id: 2, filename: 'empty-folder', folder: true });
        const answers = [await c.next(), await c.next()];
        if (ffree < MIN_FREE_INODES) {
          expect(answers).toEqual([expect.objectContaining({ type: 'refuse', id: 1, code: 'NO_SPACE' }), expect.objectContaining({ type: 'refuse', id: 2, code: 'NO_SPACE' })]);
        } else {
          expect(answers).toEqual([{ type: 'accept', id: 1, offset: 0 }, { type: 'done', id: 2 }]);
        }
      } finally {
        c.destroy();
      }
    }
  });

  it('a slow body holds no more than 64 MiB ahead of what it wrote: a hog the size of the free space does not lock out others', async () => {
    const r = await startReceiver({ fs: smallDisk(200 * MiB) });
    const hog = await RawClient.connect(r.port);
    const other = await RawClient.connect(r.port);
    try {
      await hog.handshake({}, ephemeralOwnerKey());
      hog.send({ type: 'file', id: 1, filename: 'hog.bin', size: 190 * MiB, hash: 'xxh64:00000000000000aa' });
      expect(await hog.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      hog.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 190 * MiB }), Buffer.alloc(4096)]));
      await r.waitFor('started');
      // 200 MiB free, 64 MiB of it reserved for the hog: a 100 MiB upload still fits, header and body.
      await other.handshake({}, ephemeralOwnerKey());
      other.send({ type: 'file', id: 1, filename: 'honest.bin', size: 100 * MiB, hash: 'xxh64:00000000000000bb' });
      expect(await other.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      other.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 100 * MiB }), Buffer.alloc(4096)]));
      await r.waitFor('started', (e) => e.name === 'honest.bin');
      expect(r.eventsOf('failed')).toEqual([]);
    } finally {
      hog.destroy();
      other.destroy();
    }
  });

  it('a started body reserves its size: two 20 MiB bodies on a disk with 32 MiB free → the second is failed NO_SPACE', async () => {
    const r = await startReceiver({ fs: smallDisk(32 * MiB) });
    const clients = [await RawClient.connect(r.port), await RawClient.connect(r.port)];
    try {
      for (const [i, c] of clients.entries()) {
        await c.handshake({}, ephemeralOwnerKey());
        c.send({ type: 'file', id: 1, filename: `big-${i}.bin`, size: 20 * MiB, hash: `xxh64:000000000000000${i}` });
        // The announced size alone reserves nothing: both headers are accepted.
        expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      }
      const [first, second] = clients as [RawClient, RawClient];
      first.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 20 * MiB }), Buffer.alloc(MiB)]));
      await r.waitFor('started');
      second.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: 20 * MiB }));
      expect(await second.next()).toEqual({ type: 'failed', id: 1, code: 'NO_SPACE', message: 'not enough free space on the receiver for this file' });
      // A header now is refused at once, too: what the first body will take is spoken for.
      const third = await RawClient.connect(r.port);
      try {
        await third.handshake({}, ephemeralOwnerKey());
        third.send({ type: 'file', id: 1, filename: 'big-3.bin', size: 20 * MiB, hash: 'xxh64:0000000000000003' });
        expect(await third.next()).toMatchObject({ type: 'refuse', id: 1, code: 'NO_SPACE' });
      } finally {
        third.destroy();
      }
    } finally {
      for (const c of clients) c.destroy();
    }
  });
});

describe('what a peer is told', () => {
  /**
   * The real disk, except for one trigger: there the call is made on the real file system with
   * a path under the inbox that it cannot take (a 300-byte name), so what it throws is a genuine
   * Node error (ENAMETOOLONG) whose message quotes the inbox's absolute path.
   */
  function failingFor(trigger: 'open' | 'link', inbox: () => string): FileSystem {
    const tooLong = () => path.join(inbox(), 'n'.repeat(300));
    const realOpen = nodeFileSystem.openSync as (file: nodeFs.PathLike, flags?: nodeFs.OpenMode, mode?: nodeFs.Mode | null) => number;
    const openSync = ((file: nodeFs.PathLike, flags?: nodeFs.OpenMode, mode?: nodeFs.Mode | null) =>
      trigger === 'open' && String(file).endsWith('/trap')
        ? realOpen(path.join(tooLong(), 'trap'), flags, mode)
        : realOpen(file, flags, mode)) as FileSystem['openSync'];
    const linkSync: FileSystem['linkSync'] = (from, to) =>
      trigger === 'link' && String(to).endsWith('/trap.txt') ? nodeFileSystem.linkSync(from, tooLong()) : nodeFileSystem.linkSync(from, to);
    return { ...nodeFileSystem, openSync, linkSync };
  }

  it.each([
    // Under rename a header looks at nothing in the inbox; under reject it walks the folders.
    ['a header (opening a folder of its name)', 'open', 'trap/file.txt', 'refuse', 'reject'],
    ['a placement (linking the file under its name)', 'link', 'trap.txt', 'failed', 'rename'],
  ] as const)(
    'a file-system error at %s reaches the peer as its code only; the receiver log has the detail, and no peer sees the inbox path',
    async (_stage, trigger, name, answerType, onConflict) => {
      let inbox = '';
      const r = await startReceiver({ fs: failingFor(trigger, () => inbox), onConflict });
      inbox = r.dir;
      const bytes = Buffer.from('trapped\n');
      const hash = await hashBytes(bytes);
      const c = await RawClient.connect(r.port);
      const frames: JsonObject[] = [];
      try {
        await c.handshake();
        c.send({ type: 'file', id: 1, filename: name, size: bytes.length, hash });
        frames.push(await c.next());
        if (answerType === 'failed') {
          expect(frames[0]).toEqual({ type: 'accept', id: 1, offset: 0 });
          c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }), bytes]));
          frames.push(await c.next());
        }
        c.send({ type: 'bye' });
        frames.push(...(await c.rest(5000)));
      } finally {
        c.destroy();
      }
      const answer = frames.at(answerType === 'failed' ? 1 : 0)!;
      expect(answer).toEqual({ type: answerType, id: 1, code: 'WRITE_FAILED', message: expect.stringContaining('ENAMETOOLONG') });
      // Nothing the peer got names a path of the receiver's, not even masked: not the inbox, its
      // partials or its folder handles, nor the name the system refused.
      expect(frames).toHaveLength(answerType === 'failed' ? 2 : 1);
      const told = JSON.stringify(frames);
      for (const part of [path.dirname(r.dir), '<inbox>', '.ft-partial', '/proc/', 'n'.repeat(300)]) expect(told).not.toContain(part);
      // The receiver's own log has the system's whole text, the inbox path included.
      const warnings = r.eventsOf('warning').map((e) => e.message);
      expect(warnings).toEqual([expect.stringContaining(`ENAMETOOLONG: name too long`)]);
      expect(warnings[0]).toContain(path.join(r.dir, 'n'.repeat(300)));
      if (answerType === 'failed') {
        expect(r.eventsOf('failed')).toEqual([
          expect.objectContaining({ name, code: 'WRITE_FAILED', message: expect.stringContaining(path.join(r.dir, 'n'.repeat(300))) }),
        ]);
      }
      expect(r.eventsOf('received')).toEqual([]);
      await expectServesOn(r);
    },
  );
});
