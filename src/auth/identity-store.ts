import { randomBytes } from 'node:crypto';
import { constants, promises as nodeFs } from 'node:fs';
import path from 'node:path';
import envPaths from 'env-paths';
import { FtError } from '../errors.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { generateIdentity, identityFrom, needsRenewal, renewCertificate, type Identity } from './identity.js';

/**
 * The receiver's identity on disk: one file, `identity.pem`, holding the PKCS#8 private key and
 * the certificate, in an owner-only folder. Its key is what every sender pins, so the file is
 * created once, never replaced by another key, and refused (never silently remade) when it is
 * unsafe or unreadable: a new key would make every pinned sender refuse this receiver.
 */
export const IDENTITY_FILE_NAME = 'identity.pem';
/** A key and a certificate are about 1 KiB; anything far larger is not ours. */
const MAX_IDENTITY_BYTES = 64 * 1024;
const AFTER_CORRUPT = 'remove it to make a new identity; senders that pinned the old one will refuse the new one';

/** The calls of `node:fs/promises` this module makes (a test can wrap them to inject faults). */
export type IdentityFileSystem = Pick<typeof nodeFs, 'open' | 'mkdir' | 'link' | 'rename' | 'unlink' | 'stat'>;

export interface LoadedIdentity {
  identity: Identity;
  /** This call made the key (first start). */
  created: boolean;
  /** The certificate neared its end and was replaced by one over the same key. */
  renewed: boolean;
}

/** Where `ft serve` keeps its identity: the per-user config folder (~/.config/ft/identity on Linux). */
export function defaultIdentityDir(): string {
  return path.join(envPaths('ft', { suffix: '' }).config, 'identity');
}

/**
 * The identity kept in `dir`, made on first use. Two receivers starting at once on an empty
 * folder end with the same identity: the file appears complete or not at all, and only one of
 * them puts it in place; the other reads it.
 */
export async function loadOrCreateIdentity(dir: string, options: { fs?: IdentityFileSystem } = {}): Promise<LoadedIdentity> {
  const fs = options.fs ?? nodeFs;
  const file = path.join(dir, IDENTITY_FILE_NAME);
  await prepareFolder(fs, dir);
  let identity = await readIdentity(fs, file);
  let created = false;
  if (identity === undefined) {
    const fresh = canonical(await generateIdentity());
    created = await placeNew(fs, file, fresh);
    // Lost the race: another receiver put its identity in place first, and that one counts.
    identity = created ? fresh : await readIdentity(fs, file);
    if (identity === undefined) throw invalid(file, 'it vanished while it was being created');
  }
  if (!needsRenewal(identity)) return { identity, created, renewed: false };
  const renewed = canonical(await renewCertificate(identity));
  await replace(fs, file, renewed);
  return { identity: renewed, created, renewed: true };
}

/** Windows reports no permission bits or owners (ACLs decide; the per-user AppData folder is private). */
const checksOwnership = process.platform !== 'win32' && typeof process.getuid === 'function';

async function prepareFolder(fs: IdentityFileSystem, dir: string): Promise<void> {
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw folderError(dir, describe(error));
  }
  // stat, not lstat: a folder reached through links the user made (a dotfiles repository) is
  // fine; what counts is who can change the folder the file is in.
  const stat = await fs.stat(dir).catch((error: unknown) => {
    throw folderError(dir, describe(error));
  });
  if (!stat.isDirectory()) throw folderError(dir, 'it is not a folder');
  if (!checksOwnership) return;
  const uid = process.getuid!();
  // Whoever can write the folder can replace the key with theirs (and read what ft writes there).
  if (stat.uid !== uid && stat.uid !== 0) {
    throw folderError(dir, `it belongs to another user (uid ${stat.uid}); use a folder of your own (--identity)`);
  }
  if (stat.mode & 0o022) {
    const mode = (stat.mode & 0o7777).toString(8);
    throw folderError(dir, `other users can write to it (mode ${mode}); run chmod 700 ${escapeForDisplay(dir)}`);
  }
}

/**
 * The identity in `file`, or undefined when there is none. A symbolic link at the file's place
 * is refused, not followed: --identity already puts the folder wherever the user wants it, and
 * following a link would make ft trust a file in a folder it has not checked (whoever can write
 * that folder could swap the key) and make a renewal replace the link by a file.
 */
async function readIdentity(fs: IdentityFileSystem, file: string): Promise<Identity | undefined> {
  let handle: Awaited<ReturnType<IdentityFileSystem['open']>>;
  try {
    // O_NONBLOCK: a FIFO put in its place must not hang the start.
    handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw invalid(file, describe(error));
  }
  let text: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw invalid(file, 'it is not a regular file');
    if (checksOwnership) {
      if (stat.uid !== process.getuid!()) {
        throw invalid(file, `it belongs to another user (uid ${stat.uid}), not to the user ft runs as (uid ${process.getuid!()}); run ft as its owner, or use a folder of your own (--identity)`);
      }
      if (stat.mode & 0o077) {
        const mode = (stat.mode & 0o777).toString(8);
        throw invalid(file, `UNPROTECTED PRIVATE KEY FILE: other users may read or change it (mode ${mode}); run chmod 600 ${escapeForDisplay(file)}`);
      }
    }
    const buffer = Buffer.alloc(MAX_IDENTITY_BYTES + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > MAX_IDENTITY_BYTES) throw invalid(file, `it is too large to be an identity (over ${MAX_IDENTITY_BYTES} bytes); ${AFTER_CORRUPT}`);
    }
    text = buffer.subarray(0, length).toString('utf8');
  } catch (error) {
    if (error instanceof FtError) throw error;
    throw invalid(file, describe(error));
  } finally {
    await handle.close();
  }
  return parseIdentityFile(file, text);
}

/** One PEM block: its label and the whole text (BEGIN to END). */
const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The key and certificate in the file's text, or IDENTITY_INVALID saying what is wrong. */
export function parseIdentityFile(file: string, text: string): Identity {
  if (text.trim() === '') throw invalid(file, `it is empty; ${AFTER_CORRUPT}`);
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const keys = blocks.filter((block) => block[1]!.endsWith('PRIVATE KEY'));
  const certificates = blocks.filter((block) => block[1] === 'CERTIFICATE');
  const begun = text.match(/-----BEGIN /g)?.length ?? 0;
  if (begun > blocks.length) throw invalid(file, `it is truncated or corrupt (a PEM block has no end); ${AFTER_CORRUPT}`);
  if (keys.length === 0 && certificates.length === 0) throw invalid(file, `it holds neither a private key nor a certificate; ${AFTER_CORRUPT}`);
  if (keys.length === 0) throw invalid(file, `it holds a certificate but no private key; ${AFTER_CORRUPT}`);
  if (certificates.length === 0) throw invalid(file, `it holds a private key but no certificate; ${AFTER_CORRUPT}`);
  if (keys.length > 1 || certificates.length > 1) throw invalid(file, `it holds more than one key or certificate; ${AFTER_CORRUPT}`);
  try {
    return canonical(identityFrom(keys[0]![0], certificates[0]![0]));
  } catch (error) {
    throw invalid(file, `${(error as Error).message}; ${AFTER_CORRUPT}`, error);
  }
}

/** Each PEM ending in one newline: the identity read back from the file equals the one written. */
function canonical(identity: Identity): Identity {
  return { key: `${identity.key.trimEnd()}\n`, cert: `${identity.cert.trimEnd()}\n`, fingerprint: identity.fingerprint };
}

/** What the file holds: the key first, as a TLS library reading one PEM file expects. */
export function identityFileText(identity: Identity): string {
  const { key, cert } = canonical(identity);
  return key + cert;
}

/**
 * Puts a new identity in place without ever replacing a file there: written fully and synced
 * under a temporary name, then link()ed to the real name, which fails if anything (a file, a
 * link, a racing receiver's identity) is there. False when something was.
 */
async function placeNew(fs: IdentityFileSystem, file: string, identity: Identity): Promise<boolean> {
  const temporary = await writeTemporary(fs, file, identity);
  try {
    await fs.link(temporary, file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw invalid(file, `it cannot be created: ${describe(error)}`, error);
    // No hard links here (FAT, some network shares): an exclusive create still never replaces
    // an identity, but a receiver starting at the very same instant may read it half-written
    // and refuse to start (a restart then finds it whole).
    return await writeExclusive(fs, file, identity);
  } finally {
    await fs.unlink(temporary).catch(() => undefined);
  }
  await syncFolder(fs, path.dirname(file));
  return true;
}

/** A renewed certificate over the same key: replacing is right here, the fingerprint stays. */
async function replace(fs: IdentityFileSystem, file: string, identity: Identity): Promise<void> {
  const temporary = await writeTemporary(fs, file, identity);
  try {
    // rename() replaces the name itself, never writes through a link put there meanwhile.
    await fs.rename(temporary, file);
  } catch (error) {
    await fs.unlink(temporary).catch(() => undefined);
    throw invalid(file, `its certificate is near its end and the renewed one cannot be written: ${describe(error)}`, error);
  }
  await syncFolder(fs, path.dirname(file));
}

async function writeTemporary(fs: IdentityFileSystem, file: string, identity: Identity): Promise<string> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeWhole(fs, temporary, identity);
  } catch (error) {
    await fs.unlink(temporary).catch(() => undefined);
    throw invalid(file, `it cannot be written: ${describe(error)}`, error);
  }
  return temporary;
}

async function writeExclusive(fs: IdentityFileSystem, file: string, identity: Identity): Promise<boolean> {
  try {
    await writeWhole(fs, file, identity);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw invalid(file, `it cannot be created: ${describe(error)}`, error);
  }
}

/** Creates `target` (never an existing name, never through a link), owner-only, written and synced. */
async function writeWhole(fs: IdentityFileSystem, target: string, identity: Identity): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const handle = await fs.open(target, flags, 0o600);
  try {
    await handle.writeFile(identityFileText(identity));
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The new name survives a power cut. Best effort: Windows cannot open a folder for syncing. */
async function syncFolder(fs: IdentityFileSystem, dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, constants.O_RDONLY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The file itself is synced; only its name might be lost in a crash, and then it is made anew.
  }
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return 'it is a symbolic link; put the file itself there, or point --identity at the folder that holds it';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'ENOENT') return 'no such file or folder';
  if (code === 'ENOTDIR') return 'a part of the path is not a folder';
  // mkdir of a path where a file stands.
  if (code === 'EEXIST') return 'it is a file, not a folder (--identity names the folder that holds identity.pem)';
  return (error as Error).message;
}

function invalid(file: string, why: string, cause?: unknown): FtError {
  return new FtError('IDENTITY_INVALID', `cannot use the identity file ${escapeForDisplay(file)}: ${why}`, { path: file }, cause === undefined ? {} : { cause });
}

function folderError(dir: string, why: string): FtError {
  return new FtError('IDENTITY_INVALID', `cannot use the identity folder ${escapeForDisplay(dir)}: ${why}`, { path: dir });
}
