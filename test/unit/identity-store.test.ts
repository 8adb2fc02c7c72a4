import { execFile } from 'node:child_process';
import { existsSync, promises as nodeFs } from 'node:fs';
import { chmod, chown, lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createFsFromVolume, Volume } from 'memfs';
import selfsigned from 'selfsigned';
import { afterAll, describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { generateIdentity, identityFrom, needsRenewal, type Identity } from '../../src/auth/identity.js';
import { defaultIdentityDir, identityFileText, loadOrCreateIdentity, type IdentityFileSystem } from '../../src/auth/identity-store.js';
import * as library from '../../src/index.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterAll(removeTempDirs);

const isRoot = process.getuid?.() === 0;
const onPosix = process.platform !== 'win32';
const NOBODY = 65534;
const KEEP_OLD = 'remove it to make a new identity; senders that pinned the old one will refuse the new one';

async function identityDir(): Promise<string> {
  return path.join(await tempDir('ft-identity-'), 'config', 'ft', 'identity');
}

const fileIn = (dir: string) => path.join(dir, 'identity.pem');

async function refusal(dir: string, options?: { fs?: IdentityFileSystem }): Promise<string> {
  const error = await loadOrCreateIdentity(dir, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code).toBe('IDENTITY_INVALID');
  const message = (error as FtError).message;
  expect(message).not.toContain('\n');
  return message;
}

/** A folder holding `text` as its identity file (owner-only, as ft would have made it). */
async function folderHolding(text: string | Buffer): Promise<string> {
  const dir = await identityDir();
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(fileIn(dir), text, { mode: 0o600 });
  return dir;
}

/** An identity whose certificate ends in `days` (negative: already expired). */
async function identityEndingIn(days: number): Promise<Identity> {
  const base = await generateIdentity();
  const { createPublicKey } = await import('node:crypto');
  const publicKey = createPublicKey(base.key).export({ type: 'spki', format: 'pem' }) as string;
  const notAfterDate = new Date(Date.now() + days * 86_400_000);
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'ft receiver' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(notAfterDate.getTime() - 365 * 86_400_000),
    notAfterDate,
    keyPair: { privateKey: base.key, publicKey },
  });
  return identityFrom(pems.private, pems.cert);
}

/** The real file system with one call replaced, and a log of the calls that matter for ordering. */
function recordingFs(overrides: Partial<IdentityFileSystem> = {}): { fs: IdentityFileSystem; log: string[] } {
  const log: string[] = [];
  const fs: IdentityFileSystem = {
    mkdir: nodeFs.mkdir,
    stat: nodeFs.stat,
    unlink: nodeFs.unlink,
    open: (async (...args: Parameters<typeof nodeFs.open>) => {
      const handle = await nodeFs.open(...args);
      const name = path.basename(String(args[0]));
      const sync = handle.sync.bind(handle);
      handle.sync = async () => {
        log.push(`sync ${name}`);
        await sync();
      };
      return handle;
    }) as IdentityFileSystem['open'],
    link: async (from, to) => {
      log.push(`link ${path.basename(String(from))} ${path.basename(String(to))}`);
      await nodeFs.link(from, to);
    },
    rename: async (from, to) => {
      log.push(`rename ${path.basename(String(from))} ${path.basename(String(to))}`);
      await nodeFs.rename(from, to);
    },
    ...overrides,
  };
  return { fs, log };
}

describe('loadOrCreateIdentity: creation', () => {
  it('creates an owner-only folder and file on first use, and reuses them ever after', async () => {
    const dir = await identityDir();
    const first = await loadOrCreateIdentity(dir);
    expect(first).toMatchObject({ created: true, renewed: false });
    expect(((await stat(dir)).mode & 0o777).toString(8)).toBe('700');
    expect(((await stat(fileIn(dir))).mode & 0o777).toString(8)).toBe('600');
    expect(await readdir(dir)).toEqual(['identity.pem']);
    // The file holds the PKCS#8 key, then the certificate, and nothing else.
    const text = await readFile(fileIn(dir), 'utf8');
    expect(text).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(identityFrom(first.identity.key, first.identity.cert).fingerprint).toBe(first.identity.fingerprint);

    const again = await loadOrCreateIdentity(dir);
    expect(again).toMatchObject({ created: false, renewed: false });
    expect(again.identity).toEqual(first.identity);
    expect(await readFile(fileIn(dir), 'utf8')).toBe(text);
  });

  it('writes the whole file and syncs it under a temporary name before linking it into place', async () => {
    const dir = await identityDir();
    const { fs, log } = recordingFs();
    await loadOrCreateIdentity(dir, { fs });
    const temporary = log.find((entry) => entry.startsWith('link '))!.split(' ')[1]!;
    expect(temporary).toMatch(/^\.identity\.pem\.\d+\.[0-9a-f]+\.tmp$/);
    expect(log.indexOf(`sync ${temporary}`)).toBeGreaterThanOrEqual(0);
    expect(log.indexOf(`sync ${temporary}`)).toBeLessThan(log.indexOf(`link ${temporary} identity.pem`));
    expect(log.some((entry) => entry.startsWith('rename '))).toBe(false); // rename would replace
    expect(await readdir(dir)).toEqual(['identity.pem']);
  });

  it('many at once on an empty folder all end with one and the same identity', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = await identityDir();
      const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateIdentity(dir)));
      expect(new Set(results.map((r) => r.identity.fingerprint)).size).toBe(1);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(await readdir(dir)).toEqual(['identity.pem']);
      expect((await loadOrCreateIdentity(dir)).identity.fingerprint).toBe(results[0]!.identity.fingerprint);
    }
  });

  it('when all of them reach the final step together, exactly one puts its identity in place and the others use it', async () => {
    const dir = await identityDir();
    const racers = 5;
    let waiting = 0;
    let release!: () => void;
    const allThere = new Promise<void>((resolve) => (release = resolve));
    const { fs } = recordingFs({
      link: async (from, to) => {
        if (++waiting === racers) release();
        await allThere; // every racer has generated and written its own identity
        await nodeFs.link(from, to);
      },
    });
    const results = await Promise.all(Array.from({ length: racers }, () => loadOrCreateIdentity(dir, { fs })));
    const winner = results.filter((r) => r.created);
    expect(winner).toHaveLength(1);
    expect(new Set(results.map((r) => r.identity.fingerprint))).toEqual(new Set([winner[0]!.identity.fingerprint]));
    expect(await readdir(dir)).toEqual(['identity.pem']);
  });

  it('the file never exists half-written: a reader racing the creation sees no file or the whole identity', async () => {
    for (let round = 0; round < 5; round++) {
      const dir = await identityDir();
      await mkdir(dir, { recursive: true, mode: 0o700 });
      let done = false;
      const seen = new Set<string>();
      const creating = loadOrCreateIdentity(dir).finally(() => (done = true));
      const readers = Array.from({ length: 3 }, async () => {
        while (!done) seen.add(await readFile(fileIn(dir), 'utf8').catch(() => 'missing'));
      });
      const [{ identity }] = await Promise.all([creating, ...readers]);
      seen.delete('missing');
      for (const text of seen) expect(text).toBe(identityFileText(identity));
    }
  });

  it('two processes starting at once on an empty folder agree on the identity', async () => {
    // The built module (npm test builds first); skipped checks are not allowed, so require it.
    const built = fileURLToPath(new URL('../../dist/auth/identity-store.js', import.meta.url));
    expect(existsSync(built)).toBe(true);
    const dir = await identityDir();
    const script = `import(${JSON.stringify(built)}).then(async (m) => process.stdout.write((await m.loadOrCreateIdentity(process.argv[1])).identity.fingerprint))`;
    const run = () => promisify(execFile)(process.execPath, ['-e', script, dir], { timeout: 30_000 });
    const outputs = await Promise.all([run(), run(), run()]);
    const fingerprints = outputs.map((o) => o.stdout);
    expect(fingerprints[0]).toMatch(/^[A-Z2-7]{52}$/);
    expect(new Set(fingerprints).size).toBe(1);
    expect((await loadOrCreateIdentity(dir)).identity.fingerprint).toBe(fingerprints[0]);
  });

  it('a failure while putting the file in place leaves no file and no temporary behind', async () => {
    const dir = await identityDir();
    const { fs } = recordingFs({
      link: async () => {
        throw Object.assign(new Error('EIO: i/o error, link'), { code: 'EIO' });
      },
    });
    expect(await refusal(dir, { fs })).toMatch(/cannot be created: EIO/);
    expect(await readdir(dir)).toEqual([]);
    expect((await loadOrCreateIdentity(dir)).created).toBe(true);
  });

  it('on a file system without hard links it creates the file exclusively instead', async () => {
    const dir = await identityDir();
    const { fs } = recordingFs({
      link: async () => {
        throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
      },
    });
    const first = await loadOrCreateIdentity(dir, { fs });
    expect(first.created).toBe(true);
    expect(await readdir(dir)).toEqual(['identity.pem']);
    expect(((await stat(fileIn(dir))).mode & 0o777).toString(8)).toBe('600');
    expect((await loadOrCreateIdentity(dir, { fs })).identity).toEqual(first.identity);
  });

  it('does everything through the file system it is given (here an in-memory one)', async () => {
    const volume = new Volume();
    const memory = createFsFromVolume(volume);
    const fs = memory.promises as unknown as IdentityFileSystem;
    const dir = path.join(await tempDir('ft-identity-'), 'only-in-memory');
    const first = await loadOrCreateIdentity(dir, { fs });
    expect(first.created).toBe(true);
    expect(existsSync(dir)).toBe(false);
    expect(Object.keys(volume.toJSON())).toEqual([fileIn(dir)]);
    expect(memory.readFileSync(fileIn(dir), 'utf8')).toBe(identityFileText(first.identity));
    expect((await loadOrCreateIdentity(dir, { fs })).identity).toEqual(first.identity);
    memory.writeFileSync(fileIn(dir), first.identity.key);
    expect(await refusal(dir, { fs })).toMatch(/holds a private key but no certificate/);
  });

  it('the default lives in the per-user config folder, beside the sender key', () => {
    const previous = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = '/somewhere/config';
    try {
      expect(defaultIdentityDir()).toBe(process.platform === 'linux' ? '/somewhere/config/ft/identity' : defaultIdentityDir());
      expect(path.dirname(defaultIdentityDir())).toBe(path.dirname(library.defaultSenderKeyPath()));
    } finally {
      if (previous === undefined) delete process.env.XDG_CONFIG_HOME;
      else process.env.XDG_CONFIG_HOME = previous;
    }
  });

  it('the library exports what a user needs to keep or bring an identity', () => {
    expect(library.loadOrCreateIdentity).toBe(loadOrCreateIdentity);
    expect(library.defaultIdentityDir).toBe(defaultIdentityDir);
    expect(typeof library.generateIdentity).toBe('function');
    expect(typeof library.identityFrom).toBe('function');
    expect(library.shortFingerprint('A'.repeat(52))).toBe('AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA');
    expect(library.parseFingerprint('aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa')).toBe('A'.repeat(32));
  });
});

describe.runIf(onPosix)('loadOrCreateIdentity: permissions and ownership', () => {
  it('refuses a key file that group or others can read or write, saying how to fix it, and leaves it alone', async () => {
    const dir = await identityDir();
    const { identity } = await loadOrCreateIdentity(dir);
    const file = fileIn(dir);
    const before = await readFile(file);
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666]) {
      await chmod(file, mode);
      const message = await refusal(dir);
      expect(message).toContain(`UNPROTECTED PRIVATE KEY FILE`);
      expect(message).toContain(`(mode ${mode.toString(8)}); run chmod 600 ${file}`);
      expect(await readFile(file)).toEqual(before);
    }
    await chmod(file, 0o400); // read-only for its owner is fine
    expect((await loadOrCreateIdentity(dir)).identity.fingerprint).toBe(identity.fingerprint);
  });

  it('refuses a folder that group or others can write, and creates nothing in it', async () => {
    for (const mode of [0o777, 0o770, 0o730, 0o703, 0o1777]) {
      const dir = await identityDir();
      await mkdir(dir, { recursive: true });
      await chmod(dir, mode);
      const message = await refusal(dir);
      expect(message).toContain(`cannot use the identity folder ${dir}: other users can write to it (mode ${mode.toString(8)}); run chmod 700 ${dir}`);
      expect(await readdir(dir)).toEqual([]);
    }
    // One that others may only look into is fine: the file itself is owner-only.
    const dir = await identityDir();
    await mkdir(dir, { recursive: true });
    await chmod(dir, 0o755);
    expect((await loadOrCreateIdentity(dir)).created).toBe(true);
  });

  it.skipIf(!isRoot)('refuses a key file or folder owned by another user (needs root to arrange; skipped otherwise)', async () => {
    const dir = await identityDir();
    await loadOrCreateIdentity(dir);
    await chown(fileIn(dir), NOBODY, NOBODY);
    expect(await refusal(dir)).toMatch(new RegExp(`identity file ${fileIn(dir)}: it belongs to another user \\(uid ${NOBODY}\\)`));
    await chown(fileIn(dir), 0, 0);
    await chown(dir, NOBODY, NOBODY);
    expect(await refusal(dir)).toMatch(new RegExp(`identity folder ${dir}: it belongs to another user \\(uid ${NOBODY}\\)`));
  });
});

describe('loadOrCreateIdentity: damaged files are refused, never replaced', () => {
  it('refuses an empty, corrupt, truncated or incomplete file, naming it and what is wrong', async () => {
    const a = await generateIdentity();
    const b = await generateIdentity();
    const whole = identityFileText(a);
    const cases: Array<[string | Buffer, RegExp]> = [
      ['', /it is empty/],
      ['\n  \n', /it is empty/],
      [Buffer.from([0, 159, 146, 150, 255, 1, 2, 3]), /holds neither a private key nor a certificate/],
      ['hello, this is not PEM', /holds neither a private key nor a certificate/],
      [whole.slice(0, Math.floor(whole.length / 2)), /truncated or corrupt/],
      [whole.slice(0, whole.length - 20), /truncated or corrupt/],
      [a.key, /holds a private key but no certificate/],
      [a.cert, /holds a certificate but no private key/],
      [`${b.key}${a.cert}`, /the private key does not belong to the certificate/],
      [`${a.key}${b.key}${a.cert}`, /more than one key or certificate/],
      [`${a.key}${a.cert}${b.cert}`, /more than one key or certificate/],
      [`${a.key}-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n`, /the certificate cannot be read/],
      [`-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n${a.cert}`, /the private key cannot be read/],
    ];
    for (const [text, why] of cases) {
      const dir = await folderHolding(text);
      const message = await refusal(dir);
      expect(message).toContain(`cannot use the identity file ${fileIn(dir)}: `);
      expect(message).toMatch(why);
      expect(message).toContain(KEEP_OLD);
      // Still there, byte for byte: a new key would change the fingerprint every sender pinned.
      expect(await readFile(fileIn(dir))).toEqual(Buffer.from(text));
      expect(await readdir(dir)).toEqual(['identity.pem']);
    }
  });

  it('refuses a file too large to be an identity without reading it all', async () => {
    const dir = await folderHolding(Buffer.alloc(10 * 1024 * 1024, 'A'));
    expect(await refusal(dir)).toMatch(/too large to be an identity/);
  });

  it('refuses a folder, or a FIFO, at the file\'s place (without waiting on the FIFO)', async () => {
    const dir = await identityDir();
    await mkdir(fileIn(dir), { recursive: true });
    expect(await refusal(dir)).toMatch(/it is not a regular file/);
    if (onPosix) {
      const fifoDir = await identityDir();
      await mkdir(fifoDir, { recursive: true, mode: 0o700 });
      await promisify(execFile)('mkfifo', ['-m', '600', fileIn(fifoDir)]);
      expect(await refusal(fifoDir)).toMatch(/it is not a regular file/);
    }
  });
});

describe.runIf(onPosix)('loadOrCreateIdentity: symbolic links', () => {
  it('does not read through a symbolic link at the file\'s place, even to a good identity', async () => {
    const elsewhere = await identityDir();
    const { identity } = await loadOrCreateIdentity(elsewhere);
    const dir = await identityDir();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await symlink(fileIn(elsewhere), fileIn(dir));
    expect(await refusal(dir)).toMatch(/it is a symbolic link; put the file itself there, or point --identity at the folder that holds it/);
    expect(await readFile(fileIn(elsewhere), 'utf8')).toBe(identityFileText(identity));
  });

  it('never writes through a symbolic link: a dangling one is refused and its target never created', async () => {
    const dir = await identityDir();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const target = path.join(path.dirname(dir), 'planted.pem');
    await symlink(target, fileIn(dir));
    expect(await refusal(dir)).toMatch(/symbolic link/);
    expect(existsSync(target)).toBe(false);
    expect((await lstat(fileIn(dir))).isSymbolicLink()).toBe(true);
  });

  it('a link that appears between the check and the creation is not replaced or followed', async () => {
    const dir = await identityDir();
    const target = path.join(path.dirname(dir), 'planted.pem');
    const { fs } = recordingFs({
      link: async (from, to) => {
        await symlink(target, to); // planted just before ft links its file into place
        await nodeFs.link(from, to);
      },
    });
    expect(await refusal(dir, { fs })).toMatch(/symbolic link/);
    expect(existsSync(target)).toBe(false);
    expect((await lstat(fileIn(dir))).isSymbolicLink()).toBe(true);
    expect(await readdir(dir)).toEqual(['identity.pem']);
  });

  it('without hard links too: a link planted before the exclusive create is neither followed nor replaced', async () => {
    const dir = await identityDir();
    const target = path.join(path.dirname(dir), 'planted.pem');
    const { fs } = recordingFs({
      link: async (_from, to) => {
        await symlink(target, to);
        throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
      },
    });
    expect(await refusal(dir, { fs })).toMatch(/symbolic link/);
    expect(existsSync(target)).toBe(false);
    expect((await lstat(fileIn(dir))).isSymbolicLink()).toBe(true);
  });

  it('a folder reached through a link the user made is fine', async () => {
    const real = await identityDir();
    await mkdir(real, { recursive: true, mode: 0o700 });
    const linked = path.join(path.dirname(real), 'linked');
    await symlink(real, linked);
    const first = await loadOrCreateIdentity(linked);
    expect(first.created).toBe(true);
    expect((await loadOrCreateIdentity(real)).identity.fingerprint).toBe(first.identity.fingerprint);
  });
});

describe('loadOrCreateIdentity: renewal', () => {
  it('replaces a certificate near its end with one over the same key, atomically, keeping the fingerprint', async () => {
    for (const days of [10, -5]) {
      const old = await identityEndingIn(days);
      expect(needsRenewal(old)).toBe(true);
      const dir = await folderHolding(identityFileText(old));
      const before = await stat(fileIn(dir));
      const { fs, log } = recordingFs();
      const loaded = await loadOrCreateIdentity(dir, { fs });
      expect(loaded).toMatchObject({ created: false, renewed: true });
      expect(loaded.identity.fingerprint).toBe(old.fingerprint);
      expect(loaded.identity.key).toBe(old.key);
      expect(loaded.identity.cert).not.toBe(old.cert);
      expect(needsRenewal(loaded.identity)).toBe(false);
      // Written whole and synced under another name, then renamed over the old file.
      const renamed = log.find((entry) => entry.startsWith('rename '))!.split(' ')[1]!;
      expect(log.indexOf(`sync ${renamed}`)).toBeGreaterThanOrEqual(0);
      expect(log.indexOf(`sync ${renamed}`)).toBeLessThan(log.indexOf(`rename ${renamed} identity.pem`));
      const after = await stat(fileIn(dir));
      expect(after.ino).not.toBe(before.ino);
      expect((after.mode & 0o777).toString(8)).toBe('600');
      expect(await readFile(fileIn(dir), 'utf8')).toBe(identityFileText(loaded.identity));
      expect(await readdir(dir)).toEqual(['identity.pem']);
      const again = await loadOrCreateIdentity(dir);
      expect(again).toMatchObject({ created: false, renewed: false });
      expect(again.identity).toEqual(loaded.identity);
    }
  });

  it('a renewal that cannot be written leaves the old file whole and says so', async () => {
    const old = await identityEndingIn(10);
    const dir = await folderHolding(identityFileText(old));
    const { fs } = recordingFs({
      rename: async () => {
        throw Object.assign(new Error('ENOSPC: no space left on device, rename'), { code: 'ENOSPC' });
      },
    });
    expect(await refusal(dir, { fs })).toMatch(/its certificate is near its end and the renewed one cannot be written: ENOSPC/);
    expect(await readFile(fileIn(dir), 'utf8')).toBe(identityFileText(old));
    expect(await readdir(dir)).toEqual(['identity.pem']);
  });

  it('several renewing at once all keep the same key, and the file ends whole', async () => {
    const old = await identityEndingIn(10);
    const dir = await folderHolding(identityFileText(old));
    const results = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateIdentity(dir)));
    for (const result of results) expect(result.identity.fingerprint).toBe(old.fingerprint);
    const final = await loadOrCreateIdentity(dir);
    expect(final.identity.fingerprint).toBe(old.fingerprint);
    expect(final.renewed).toBe(false);
    expect(await readdir(dir)).toEqual(['identity.pem']);
  });
});
