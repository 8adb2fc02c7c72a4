/**
 * Point 11 of issue 9: an inbox file rewritten in place with its mtime restored used to be
 * answered "already there" from a cache of inbox hashes (keyed without ctime), so the new
 * content was never stored. The receiver no longer answers from content before the body; it
 * compares bytes at placement.
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
  const first = await send([src], { host: '127.0.0.1', port: r.port });
  expect(first.files[0]).toMatchObject({ status: 'sent', remotePath: 'pin.txt' });
  const received = path.join(r.dir, 'pin.txt');
  // A whole second, so that it can be restored exactly.
  const mtime = new Date(1_700_000_000_000);
  await utimes(received, mtime, mtime);
  // Sent again while unchanged: whatever the receiver remembers about pin.txt, it knows it now.
  await send([src], { host: '127.0.0.1', port: r.port });

  const before = await stat(received);
  await writeFile(received, '1234\n'); // same size, same inode
  await utimes(received, mtime, mtime);
  const after = await stat(received);
  expect([after.ino, after.size, after.mtimeMs]).toEqual([before.ino, before.size, before.mtimeMs]);

  const skippedBefore = r.eventsOf('skipped').length;
  const again = await send([src], { host: '127.0.0.1', port: r.port });
  expect(again.files[0]!.status).toBe('sent');
  const where = again.files[0]!.remotePath!;
  expect(await readFile(path.join(r.dir, where), 'utf8')).toBe('4711\n');
  expect(await readFile(received, 'utf8')).toBe('1234\n');
  expect(r.eventsOf('skipped')).toHaveLength(skippedBefore);
});
