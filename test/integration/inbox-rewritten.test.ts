/**
 * Point 11 of issue 9: an inbox file rewritten in place with its mtime restored used to be
 * answered "already there" from a cache of inbox hashes (keyed without ctime), so the new
 * content was never stored. The receiver no longer answers from content before the body; it
 * compares bytes at placement. "Already there" now comes only from a receipt the receiver
 * issued to this sender, which pins the stored file's identity (ctime included): the sender
 * here keeps its receipts (hashCache, senderKeyFile), so that is what is put to the test.
 */
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { send } from '../../src/index.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  await closeAllReceivers();
  await removeTempDirs();
});

it('stores a file again after the inbox copy was rewritten in place with its mtime restored', async () => {
  const r = await startReceiver();
  const src = path.join(await tempDir(), 'pin.txt');
  await writeFile(src, '4711\n');
  const keep = await tempDir('ft-sender-');
  const options = { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, hashCache: path.join(keep, 'hashes.json'), senderKeyFile: path.join(keep, 'sender-key.pem') };
  const first = await send([src], options);
  expect(first.files[0]!.status).toBe('sent');
  // An open receiver tells no path; its event says where the file went.
  expect(first.files[0]!.remotePath).toBeUndefined();
  expect(r.eventsOf('received').map((e) => e.path)).toEqual(['pin.txt']);
  const received = path.join(r.dir, 'pin.txt');
  // A whole second, so that it can be restored exactly.
  const mtime = new Date(1_700_000_000_000);
  await utimes(received, mtime, mtime);
  // utimes() changed the stored file's identity, so the first receipt no longer holds: the
  // file is uploaded again, found identical, kept once, and a receipt of it as it is now given.
  const second = await send([src], options);
  expect(second.files[0]!.status).toBe('sent');
  expect(r.eventsOf('received').map((e) => e.path)).toEqual(['pin.txt', 'pin.txt']);
  // With that receipt, an unchanged file is "already there".
  const unchanged = await send([src], options);
  expect(unchanged.files[0]!.status).toBe('skipped');

  const before = await stat(received);
  await writeFile(received, '1234\n'); // same size, same inode
  await utimes(received, mtime, mtime);
  const after = await stat(received);
  expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);

  const skippedBefore = r.eventsOf('skipped').length;
  const receivedBefore = r.eventsOf('received').length;
  const again = await send([src], options);
  expect(again.files[0]!.status).toBe('sent');
  expect(again.files[0]!.remotePath).toBeUndefined();
  const stored = r.eventsOf('received').slice(receivedBefore);
  expect(stored).toHaveLength(1);
  expect(await readFile(path.join(r.dir, stored[0]!.path), 'utf8')).toBe('4711\n');
  expect(await readFile(received, 'utf8')).toBe('1234\n');
  expect(r.eventsOf('skipped')).toHaveLength(skippedBefore);
});
