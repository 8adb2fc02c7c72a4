/** `ft send` and symbolic links inside folders (issue 9, point 12), as a user runs it (bin/ft.js imports dist/: build first). */
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { killAllFt, runFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  await killAllFt();
  await closeAllReceivers();
  await removeTempDirs();
});

async function folderWithLink(): Promise<string> {
  const root = await tempDir('ft-cli-links-');
  await fs.mkdir(path.join(root, 'photos'));
  await fs.writeFile(path.join(root, 'photos', 'beach.jpg'), 'photo');
  await fs.writeFile(path.join(root, 'key'), 'secret');
  await fs.symlink(path.join(root, 'key'), path.join(root, 'photos', 'holiday.jpg'));
  return path.join(root, 'photos');
}

describe('ft send and symbolic links inside a folder', () => {
  it('skips them with a line saying so, and exits 0', async () => {
    const r = await startReceiver();
    const ft = await runFt(['send', await folderWithLink(), '--to', `127.0.0.1:${r.port}`, '--fingerprint', r.fingerprint!]);
    expect(ft.exit.code).toBe(0);
    expect(ft.stdout + ft.stderr).toContain('skipped  photos/holiday.jpg: symbolic link, not followed (use --follow-symlinks)');
    expect(existsSync(path.join(r.dir, 'photos', 'holiday.jpg'))).toBe(false);
    expect(existsSync(path.join(r.dir, 'photos', 'beach.jpg'))).toBe(true);
  });

  it('follows them with --follow-symlinks', async () => {
    const r = await startReceiver();
    const ft = await runFt(['send', await folderWithLink(), '--to', `127.0.0.1:${r.port}`, '--fingerprint', r.fingerprint!, '--follow-symlinks', '--json']);
    expect(ft.exit.code).toBe(0);
    expect(ft.json().filter((e) => e.event === 'ignored')).toEqual([]);
    expect(await fs.readFile(path.join(r.dir, 'photos', 'holiday.jpg'), 'utf8')).toBe('secret');
  });

  it('reports each one skipped as an "ignored" JSON event', async () => {
    const r = await startReceiver();
    const folder = await folderWithLink();
    const ft = await runFt(['send', folder, '--to', `127.0.0.1:${r.port}`, '--fingerprint', r.fingerprint!, '--json']);
    expect(ft.exit.code).toBe(0);
    expect(ft.json().filter((e) => e.event === 'ignored')).toEqual([
      { event: 'ignored', path: path.join(folder, 'holiday.jpg'), name: 'photos/holiday.jpg', reason: 'symbolic link, not followed (use --follow-symlinks)' },
    ]);
  });
});
