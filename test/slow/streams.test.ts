/**
 * A 256 MiB stream piped from a child process into `ft send - --as NAME` arrives byte-identical
 * and verified, with the receiver keeping nothing else (issue 13).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import { listFiles } from '../helpers/files.js';
import { killAllFt, runFt, startFtServe } from '../helpers/spawn-ft.js';
import { startProducer } from '../helpers/stream-producer.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;

afterEach(killAllFt);
afterAll(removeTempDirs);

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

it('256 MiB from a pipe arrive byte-identical and verified', async () => {
  const root = await tempDir('ft-slow-stream-');
  const home = { HOME: root, XDG_CONFIG_HOME: path.join(root, 'config'), XDG_CACHE_HOME: path.join(root, 'cache') };
  const serve = await startFtServe(path.join(root, 'inbox'), { json: true });
  const bytes = 256 * MiB + 12_345;
  const producer = startProducer(bytes);
  const started = performance.now();
  const ft = await runFt(['send', '-', '--as', 'backup/db.sql', '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--json'], {
    env: home,
    stdin: producer.child.stdout!,
    timeoutMs: 120_000,
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(`streams: ${bytes} bytes in ${seconds.toFixed(1)} s (${(bytes / MiB / seconds).toFixed(0)} MiB/s)`);
  expect(ft.exit.code, ft.stderr).toBe(0);
  const events = ft.json();
  expect(events.find((e) => e.event === 'verified')).toMatchObject({ name: 'backup/db.sql', size: bytes });
  expect(events.filter((e) => e.event === 'progress').every((e) => e.size === null)).toBe(true);
  const received = await serve.proc.waitForJson((e) => e.event === 'received');
  expect(received).toMatchObject({ name: 'backup/db.sql', size: bytes, verified: true });
  expect(await sha256Of(path.join(serve.dir, 'backup/db.sql'))).toBe(await producer.sha256);
  expect(await listFiles(serve.dir)).toEqual(['backup/db.sql']);
}, 180_000);
