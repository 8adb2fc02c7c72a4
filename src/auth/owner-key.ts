import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import envPaths from 'env-paths';
import { FtError } from '../errors.js';
import { escapeForDisplay } from '../names/safe-name.js';

/**
 * A sender's owner key: an Ed25519 key pair whose public half the sender shows in its hello,
 * with a signature over the receiver's fresh nonce. The receiver keeps each partial upload
 * private to the key that started it and issues receipts to it, so only the sender that holds
 * the private half can resume its uploads or be told "already there" — and the private half
 * never leaves the sender.
 */
export interface OwnerKey {
  /** Raw public key, 64 lowercase hex digits: what the hello carries. */
  readonly publicHex: string;
  /** Signs this connection's challenge: the receiver's nonce and the channel's binding (empty in plaintext). */
  prove(nonce: string, binding?: Buffer): string;
}

/** Domain separation: a signature made for this purpose is valid for no other. */
const PROOF_CONTEXT = 'ft-owner-v5\0';

/** The signed message: a proof made on one channel is worthless on another (a relaying man in the middle's). */
export function proofMessage(nonce: string, binding: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([Buffer.from(PROOF_CONTEXT, 'utf8'), Buffer.from([binding.length]), binding, Buffer.from(nonce, 'utf8')]);
}

function ownerKeyOf(privateKey: KeyObject): OwnerKey {
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
  const publicHex = Buffer.from(jwk.x!, 'base64url').toString('hex');
  return { publicHex, prove: (nonce, binding) => sign(null, proofMessage(nonce, binding), privateKey).toString('hex') };
}

/** A key for this process only: resume works across reconnections, not across runs. */
export function ephemeralOwnerKey(): OwnerKey {
  return ownerKeyOf(generateKeyPairSync('ed25519').privateKey);
}

/** Where the ft command keeps its key: the per-user config folder (~/.config/ft on Linux). */
export function defaultSenderKeyPath(): string {
  return path.join(envPaths('ft', { suffix: '' }).config, 'sender-key.pem');
}

/**
 * Loads the key kept in `file`, creating it (owner-only, never replacing an existing file) on
 * first use. A key that others can read is refused: whoever reads it can resume our uploads.
 */
export async function loadOwnerKey(file: string): Promise<OwnerKey> {
  for (let attempt = 0; ; attempt++) {
    let pem: string;
    try {
      pem = await readPrivate(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || attempt > 0) throw keyError(file, error);
      const created = await createKey(file);
      if (created) return ownerKeyOf(created);
      continue; // another ft created it meanwhile: use theirs
    }
    return ownerKeyOf(parseKey(file, pem));
  }
}

/**
 * Writes a new key to a temporary file and links it into place, so the key file, once it
 * exists, is complete: two ft started at once never read each other's half-written key (one
 * of them loses the link() race and uses the winner's). Undefined when the other one won.
 */
async function createKey(file: string): Promise<KeyObject | undefined> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const handle = await fs.open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      await handle.writeFile(privateKey.export({ format: 'pem', type: 'pkcs8' }));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.link(temporary, file).catch(async (error: NodeJS.ErrnoException) => {
      // A file system without hard links (FAT, some network shares): an exclusive copy, which
      // still never replaces a key, only without the guarantee of never being seen half-written.
      if (error.code === 'EEXIST') throw error;
      await fs.copyFile(temporary, file, constants.COPYFILE_EXCL);
    });
    return privateKey;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw keyError(file, error);
  } finally {
    await fs.unlink(temporary).catch(() => undefined);
  }
}

function parseKey(file: string, pem: string): KeyObject {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw keyError(file, new Error('not a PEM private key (delete it to make a new one)', { cause: error }));
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') throw keyError(file, new Error(`an ${privateKey.asymmetricKeyType} key, not Ed25519`));
  return privateKey;
}

async function readPrivate(file: string): Promise<string> {
  const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error('not a regular file');
    // Windows reports no permission bits (its ACLs decide, and the per-user AppData folder is private).
    if (process.platform !== 'win32' && stat.mode & 0o077) {
      throw new Error(`other users may read it (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it`);
    }
    if (process.getuid && stat.uid !== process.getuid()) throw new Error('it belongs to another user');
    if (stat.size > 4096) throw new Error('too large to be a key');
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

function keyError(file: string, error: unknown): FtError {
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'ELOOP' ? 'it is a symbolic link' : code === 'EACCES' ? 'permission denied' : code === 'ENOENT' ? 'no such file' : (error as Error).message;
  return new FtError('LOCAL_FILE', `cannot use the sender key ${escapeForDisplay(file)}: ${why}`, { path: file }, { cause: error });
}

/** Checks a hello's owner proof; the fingerprint (SHA-256 of the raw key, hex) names the owner. */
export function verifyOwnerProof(publicHex: string, nonce: string, proofHex: string, binding?: Buffer): string | undefined {
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicHex, 'hex').toString('base64url') }, format: 'jwk' });
    if (!verify(null, proofMessage(nonce, binding), key, Buffer.from(proofHex, 'hex'))) return undefined;
  } catch {
    return undefined;
  }
  return createHash('sha256').update(Buffer.from(publicHex, 'hex')).digest('hex');
}
