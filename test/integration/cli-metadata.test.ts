/** `ft send --preserve-mode` and empty folders through the command (bin/ft.js runs dist/: build first). */
import { chmod, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { killAllFt, runFt, startFtServe } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(killAllFt);
afterAll(removeTempDirs);

async function homeEnv(): Promise<NodeJS.ProcessEnv> {
  const root = await tempDir('ft-cli-meta-home-');
  return { HOME: root, XDG_CONFIG_HOME: path.join(root, 'config'), XDG_CACHE_HOME: path.join(root, 'cache') };
}

describe('ft send and file metadata', () => {
  it('keeps the time always, the mode with --preserve-mode, and empty folders arrive', async () => {
    const src = path.join(await tempDir('ft-cli-meta-src-'), 'project');
    await mkdir(path.join(src, 'logs', 'old'), { recursive: true });
    await writeFile(path.join(src, 'run.sh'), '#!/bin/sh\necho hi\n');
    await chmod(path.join(src, 'run.sh'), 0o750);
    const dir = path.join(await tempDir('ft-cli-meta-'), 'inbox');
    const serve = await startFtServe(dir);
    const to = `127.0.0.1:${serve.port}`;
    const env = await homeEnv();

    const plain = await runFt(['send', src, '--to', to, '--fingerprint', serve.fingerprint!], { env });
    expect(plain.exit.code, plain.stderr).toBe(0);
    expect(plain.stdout).toMatch(/^sent +project\/logs\/old\/: empty folder$/m);
    expect(plain.stdout).toMatch(/^ft: 1 sent, 0 already there, 1 empty folder; /m);
    expect(await readdir(path.join(dir, 'project', 'logs', 'old'))).toEqual([]);
    const received = await stat(path.join(dir, 'project', 'run.sh'));
    expect(received.mode & 0o7777).toBe(0o600);
    expect(Math.floor(received.mtimeMs)).toBe(Math.floor((await stat(path.join(src, 'run.sh'))).mtimeMs));
    await serve.proc.waitForLine(/^folder +project\/logs\/old\/ \(empty\) from /);

    const other = path.join(await tempDir('ft-cli-meta-src-'), 'other.sh');
    await writeFile(other, 'x');
    await chmod(other, 0o750);
    const kept = await runFt(['send', other, '--preserve-mode', '--to', to, '--fingerprint', serve.fingerprint!, '--json'], { env });
    expect(kept.exit.code, kept.stderr).toBe(0);
    // ft serve runs under the test runner's umask (usually 022): 0750 keeps its bits.
    expect((await stat(path.join(dir, 'other.sh'))).mode & 0o7777).toBe(0o750 & ~process.umask());
    expect(kept.json().at(-1)).toMatchObject({ event: 'summary', sent: 1, folders: 0 });
  });
});
