/**
 * `ft send` and its owner key (bin/ft.js imports dist/: build first): the per-user key by
 * default, `--sender-key` to choose another, one clear line and exit 2 for a key it cannot use.
 * The receiver is the protocol-3 fake, in this process, on 127.0.0.1.
 */
import { chmod, mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadOwnerKey } from '../../src/auth/owner-key.js';
import { closeAllFakeReceivers, startProtocol3Receiver } from '../helpers/fake-receiver.js';
import { expectOneCleanErrorLine, killAllFt, runFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  killAllFt();
  await closeAllFakeReceivers();
});
afterAll(removeTempDirs);

/** A home of its own for each run: config (the key) and cache (hashes and receipts). */
async function userDirs(): Promise<{ env: NodeJS.ProcessEnv; config: string }> {
  const home = await tempDir('ft-cli-key-');
  const config = path.join(home, 'config');
  return { config, env: { HOME: home, XDG_CONFIG_HOME: config, XDG_CACHE_HOME: path.join(home, 'cache') } };
}

async function aFile(): Promise<string> {
  const file = path.join(await tempDir('ft-cli-key-'), 'note.txt');
  await writeFile(file, 'remember the milk');
  return file;
}

describe('ft send and the sender key', () => {
  it('creates the per-user key owner-only on first use and proves it on every run; a re-send is "already there"', async () => {
    const fake = await startProtocol3Receiver();
    const { env, config } = await userDirs();
    const file = await aFile();
    const to = `127.0.0.1:${fake.port}`;
    const first = await runFt(['send', file, '--to', to, '--fingerprint', fake.fingerprint!], { env });
    expect(first.exit.code, first.stderr).toBe(0);
    const keyFile = path.join(config, 'ft', 'sender-key.pem');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const second = await runFt(['send', file, '--to', to, '--fingerprint', fake.fingerprint!], { env });
    expect(second.exit.code, second.stderr).toBe(0);
    expect(fake.hellos.map((h) => h.owner)).toEqual(Array(2).fill((await loadOwnerKey(keyFile)).publicHex));
    expect(second.stdout).toMatch(/^skipped +note\.txt: already there$/m);
    // An open receiver tells no path: nothing prints "undefined".
    expect(first.stdout + second.stdout).not.toContain('undefined');
    expect(first.stdout).toMatch(/^sent +note\.txt: 17 B verified$/m);
  });

  it('--sender-key uses that file instead (another owner: no receipt of the first applies)', async () => {
    const fake = await startProtocol3Receiver();
    const { env } = await userDirs();
    const file = await aFile();
    const to = `127.0.0.1:${fake.port}`;
    expect((await runFt(['send', file, '--to', to, '--fingerprint', fake.fingerprint!], { env })).exit.code).toBe(0);
    const keyFile = path.join(await tempDir('ft-cli-key-'), 'backup-key.pem');
    const other = await runFt(['send', file, '--to', to, '--fingerprint', fake.fingerprint!, '--sender-key', keyFile], { env });
    expect(other.exit.code, other.stderr).toBe(0);
    expect(fake.hellos[1]!.owner).toBe((await loadOwnerKey(keyFile)).publicHex);
    expect(fake.hellos[1]!.owner).not.toBe(fake.hellos[0]!.owner);
    expect(other.stdout).toMatch(/^sent +note\.txt/m);
  });

  it('a key file others can read, a corrupt one, a folder or a symbolic link: one line, exit 2, nothing sent', async () => {
    const fake = await startProtocol3Receiver();
    const { env } = await userDirs();
    const file = await aFile();
    const dir = await tempDir('ft-cli-key-');
    const readable = path.join(dir, 'readable.pem');
    await loadOwnerKey(readable);
    await chmod(readable, 0o644);
    const corrupt = path.join(dir, 'corrupt.pem');
    await writeFile(corrupt, 'garbage', { mode: 0o600 });
    const folder = path.join(dir, 'folder.pem');
    await mkdir(folder);
    const good = path.join(dir, 'good.pem');
    await loadOwnerKey(good);
    const link = path.join(dir, 'link.pem');
    await symlink(good, link);
    for (const [key, why] of [
      [readable, /other users may read it \(mode 644\); run chmod 600 on it$/],
      [corrupt, /not a PEM private key/],
      [folder, /not a regular file/],
      [link, /it is a symbolic link$/],
    ] as const) {
      const ft = await runFt(['send', file, '--to', `127.0.0.1:${fake.port}`, '--fingerprint', fake.fingerprint!, '--sender-key', key], { env });
      expect(ft.exit.code, ft.stderr).toBe(2);
      expectOneCleanErrorLine(ft.stderr);
      expect(ft.stderr).toContain(`cannot use the sender key ${key}: `);
      expect(ft.stderr.trimEnd()).toMatch(why);
    }
    expect(fake.hellos).toHaveLength(0);
  });
});
