/**
 * Issue 9, points 10 and 7 end to end: the inbox deleted or replaced while serving, and an
 * inbox other users can write to.
 */
import { chmod, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { send } from '../../src/index.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { killAllFt, runFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  await closeAllReceivers();
  await killAllFt();
  await removeTempDirs();
});

async function localFile(name: string, text: string): Promise<string> {
  const file = path.join(await tempDir(), name);
  await writeFile(file, text);
  return file;
}

it('receives again after the inbox (with .ft-partial) was deleted while serving', async () => {
  const r = await startReceiver();
  const first = await send([await localFile('one.txt', 'one\n')], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
  expect(first.files[0]).toMatchObject({ status: 'sent' });
  await rm(r.dir, { recursive: true });
  const second = await send([await localFile('two.txt', 'two\n')], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0 });
  expect(second.files[0]).toMatchObject({ status: 'sent' });
  // An open receiver tells no path: its event and the new inbox say where the file went.
  expect(second.files[0]!.remotePath).toBeUndefined();
  expect(r.eventsOf('received').map((e) => e.path)).toEqual(['one.txt', 'two.txt']);
  expect(await readFile(path.join(r.dir, 'two.txt'), 'utf8')).toBe('two\n');
});

it('refuses every upload, with one clear line, once the inbox is replaced by a symbolic link', async () => {
  const r = await startReceiver();
  const root = path.dirname(r.dir);
  const outside = path.join(root, 'outside');
  await mkdir(outside);
  await rename(r.dir, path.join(root, 'old-inbox'));
  await symlink(outside, r.dir);
  for (const name of ['a.txt', 'b.txt']) {
    const report = await send([await localFile(name, `${name}\n`)], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0 });
    expect(report.files[0]).toMatchObject({ status: 'refused', code: 'UNSAFE_PATH' });
    expect(report.files[0]!.message).toMatch(/^the inbox folder was replaced by a symbolic link while serving; [^\n]*$/);
  }
  expect(await (await import('node:fs/promises')).readdir(outside)).toEqual([]);
});

it.runIf(process.platform !== 'win32')('ft serve refuses an inbox all users can write to, saying which chmod fixes it', async () => {
  const dir = path.join(await tempDir(), 'shared');
  await mkdir(dir);
  await chmod(dir, 0o777);
  // Port 1 is never reached: the inbox is checked first.
  const ft = await runFt(['serve', dir, '--port', '1', '--host', '127.0.0.1', '--no-beacon']);
  expect(ft.exit.code).not.toBe(0);
  expect(ft.stderr).toContain(`chmod go-w ${dir}`);
  expect(ft.stderr).not.toContain('    at ');
  expect(ft.stderr.trim().split('\n')).toHaveLength(1);
}, 30_000);
