import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { defaultSenderKeyPath, loadOwnerKey, verifyOwnerProof } from '../../src/auth/owner-key.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterAll(removeTempDirs);

async function keyPath(): Promise<string> {
  return path.join(await tempDir('ft-owner-key-'), 'config', 'ft', 'sender-key.pem');
}

async function refusal(file: string): Promise<FtError> {
  const error = await loadOwnerKey(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code).toBe('LOCAL_FILE');
  // One line, naming the file.
  expect((error as FtError).message).not.toContain('\n');
  expect((error as FtError).message).toContain(file);
  return error as FtError;
}

describe('loadOwnerKey', () => {
  it('creates the key owner-only (and its folder) on first use, and loads the same key after', async () => {
    const file = await keyPath();
    const created = await loadOwnerKey(file);
    expect(((await stat(file)).mode & 0o777).toString(8)).toBe('600');
    expect(((await stat(path.dirname(file))).mode & 0o777).toString(8)).toBe('700');
    const again = await loadOwnerKey(file);
    expect(again.publicHex).toBe(created.publicHex);
    expect(created.publicHex).toMatch(/^[0-9a-f]{64}$/);
    const nonce = randomBytes(16).toString('hex');
    expect(verifyOwnerProof(again.publicHex, nonce, created.prove(nonce))).toMatch(/^[0-9a-f]{64}$/);
    // Nothing but the key is left in the folder (no temporary file).
    expect(await readdir(path.dirname(file))).toEqual(['sender-key.pem']);
  });

  it('refuses a key others can read, saying how to fix it', async () => {
    const file = await keyPath();
    await loadOwnerKey(file);
    await chmod(file, 0o644);
    expect((await refusal(file)).message).toMatch(/other users may read it \(mode 644\); run chmod 600 on it/);
    await chmod(file, 0o640);
    await refusal(file);
  });

  it('refuses a symbolic link, even to a good key', async () => {
    const real = await keyPath();
    await loadOwnerKey(real);
    const link = path.join(path.dirname(real), 'link.pem');
    await symlink(real, link);
    expect((await refusal(link)).message).toMatch(/symbolic link/);
  });

  it('refuses a corrupt file, an empty one, a key of another kind, and a folder; it never replaces them', async () => {
    const file = await keyPath();
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n', { mode: 0o600 });
    expect((await refusal(file)).message).toMatch(/not a PEM private key/);
    await writeFile(file, '', { mode: 0o600 });
    await refusal(file);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    await writeFile(file, rsa, { mode: 0o600 });
    expect((await refusal(file)).message).toMatch(/rsa key, not Ed25519/);
    const folder = path.join(path.dirname(file), 'folder.pem');
    await mkdir(folder);
    expect((await refusal(folder)).message).toMatch(/not a regular file/);
  });

  it('many at once creating the same key all get one and the same, complete key', async () => {
    for (let round = 0; round < 5; round++) {
      const file = await keyPath();
      const keys = await Promise.all(Array.from({ length: 12 }, () => loadOwnerKey(file)));
      expect(new Set(keys.map((k) => k.publicHex)).size).toBe(1);
      expect(await readdir(path.dirname(file))).toEqual(['sender-key.pem']);
    }
  });

  it('the key file never exists half-written: a reader racing the creation sees no file or the whole key', async () => {
    for (let round = 0; round < 10; round++) {
      const file = await keyPath();
      await mkdir(path.dirname(file), { recursive: true });
      let done = false;
      const seen = new Set<string>();
      const creating = loadOwnerKey(file).finally(() => (done = true));
      const readers = Array.from({ length: 4 }, async () => {
        while (!done) seen.add(await readFile(file, 'utf8').catch(() => 'missing'));
      });
      await Promise.all([creating, ...readers]);
      seen.add(await readFile(file, 'utf8'));
      const texts = [...seen].filter((text) => text !== 'missing');
      expect(texts).toHaveLength(1);
      expect(texts[0]).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/);
    }
  });

  it('two processes creating the same key at once agree on it', async () => {
    // The built module (npm test builds first); skipped checks are not allowed, so require it.
    const built = fileURLToPath(new URL('../../dist/auth/owner-key.js', import.meta.url));
    expect(existsSync(built)).toBe(true);
    const file = await keyPath();
    const script = `import(${JSON.stringify(built)}).then(async (m) => process.stdout.write((await m.loadOwnerKey(process.argv[1])).publicHex))`;
    const run = () => promisify(execFile)(process.execPath, ['-e', script, file], { timeout: 30_000 });
    const outputs = await Promise.all([run(), run(), run(), run()]);
    const keys = outputs.map((o) => o.stdout);
    expect(keys[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(new Set(keys).size).toBe(1);
    expect((await loadOwnerKey(file)).publicHex).toBe(keys[0]);
  });

  it('the default lives in the per-user config folder', () => {
    const previous = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = '/somewhere/config';
    try {
      expect(defaultSenderKeyPath()).toBe(process.platform === 'linux' ? '/somewhere/config/ft/sender-key.pem' : defaultSenderKeyPath());
    } finally {
      if (previous === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = previous;
    }
  });
});
