/**
 * Two different files with one name and size in one batch (two folders given, each with
 * docs/other.bin). The receiver lets a newer header of an upload take it over, so the sender
 * must not have both in flight at once: the second waits for the first's verdict, then lands
 * beside it. Found in the attack review of issue 10: before, the second header took the upload
 * over, the first body was sent in full and dropped (`failed BUSY`) and sent again later.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { send, type SendEvent } from '../../src/index.js';
import { digest, listFiles, randomFile } from '../helpers/files.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(closeAllReceivers);
afterAll(removeTempDirs);

it('sends two different files of the same name and size one after the other, and keeps both', async () => {
  const r = await startReceiver();
  const root = await tempDir();
  const sources: string[] = [];
  for (const [i, side] of ['one', 'two'].entries()) {
    await mkdir(path.join(root, side, 'docs'), { recursive: true });
    sources.push(await randomFile(path.join(root, side, 'docs', 'other.bin'), 3 * 1024 * 1024, `side ${i}`));
  }
  const events: SendEvent[] = [];
  const report = await send([path.join(root, 'one', 'docs'), path.join(root, 'two', 'docs')], {
    host: '127.0.0.1',
    port: r.port, fingerprint: r.fingerprint,
    onEvent: (event) => events.push(event),
  });
  expect(report.files.map((file) => file.status)).toEqual(['sent', 'sent']);
  // Neither body was dropped and sent again.
  expect(r.eventsOf('failed')).toEqual([]);
  expect(events.filter((event) => event.type === 'started')).toHaveLength(2);
  const stored = (await listFiles(r.dir)).filter((name) => !name.startsWith('.ft-partial'));
  expect(stored).toEqual(['docs/other (1).bin', 'docs/other.bin']);
  const kept = await Promise.all(stored.map((name) => digest(path.join(r.dir, name))));
  expect(kept.map((d) => d.sha256).sort()).toEqual((await Promise.all(sources.map(digest))).map((d) => d.sha256).sort());
});
