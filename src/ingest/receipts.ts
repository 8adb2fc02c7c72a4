import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import path from 'node:path';
import type { FileSystem } from '../file-system.js';
import type { StoredIdentity } from '../storage/upload-store.js';

/**
 * Upload receipts: what lets the receiver answer "already there" without telling anyone but the
 * uploader anything about the inbox. A receipt is sealed (AES-256-GCM) under a key only the
 * receiver holds, so a sender can neither forge one nor read where its file was stored, and it
 * pins the stored file's identity (for the local store: device, inode, size, mtime, ctime): a file changed since, in
 * any way, no longer matches. The receiver keeps no state per upload.
 */
export interface ReceiptClaims {
  /** Owner fingerprint of the sender it was issued to. */
  owner: string;
  /** SHA-256 (hex) of the name the sender asked for: the name itself may be as long as the path. */
  name: string;
  /** Where it was stored, relative to the inbox. */
  path: string;
  hash: string;
  /** The size the sender announced. */
  size: number;
  /** What the store recorded of the stored file, to tell that it is unchanged (opaque here). */
  identity: StoredIdentity;
}

const KEY_FILE = 'receipts.key';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** v2: the store's identity of the file is one opaque claim (v1 receipts, of ft before it, no longer open). */
const AAD = Buffer.from('ft-receipt-v2');

/**
 * Room for the claims of any upload of `requested`: its name as JSON (the stored path is that
 * name with, per component, at most a variant suffix) and the fixed fields, whatever their values.
 */
function paddedLength(requested: string): number {
  const components = requested.split('/').length;
  return Buffer.byteLength(JSON.stringify(requested)) + components * MAX_VARIANT_SUFFIX_BYTES + FIXED_CLAIMS_BYTES;
}

/** `" (ft-0123456789abcdef)"` and the like: more than any variant suffix the inbox gives a component. */
const MAX_VARIANT_SUFFIX_BYTES = 32;
/** The other claims as JSON at their longest (64-hex owner and name digests, hash, size, a local store's five-number identity). */
const FIXED_CLAIMS_BYTES = 400;

/** How a receipt names the file it was asked for. */
export function receiptName(filename: string): string {
  return createHash('sha256').update(filename).digest('hex');
}

export class ReceiptSealer {
  private constructor(private readonly key: Buffer) {}

  /**
   * A key derived from a secret kept elsewhere (the receiver's identity key): for a store with no
   * private folder of its own (an S3 bucket). Receivers sharing an identity share the key.
   */
  static derivedFrom(secret: string | Buffer): ReceiptSealer {
    return new ReceiptSealer(Buffer.from(hkdfSync('sha256', secret, Buffer.alloc(0), 'ft-receipt-key', KEY_BYTES)));
  }

  /** The key kept in `dir` (the receiver's private folder), created owner-only on first use. */
  static open(dir: string, fs: FileSystem): ReceiptSealer {
    const file = path.join(dir, KEY_FILE);
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = readKey(fs, file);
      if (existing) return new ReceiptSealer(existing);
      const key = randomBytes(KEY_BYTES);
      try {
        const fd = fs.openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          fs.writevSync(fd, [key]);
        } finally {
          fs.closeSync(fd);
        }
        return new ReceiptSealer(key);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
    }
    // Torn or planted: receipts are only a shortcut, so a key of this run's own will do.
    return new ReceiptSealer(randomBytes(KEY_BYTES));
  }

  /**
   * A secret for another use (the web side's sessions and upload ids), kept from run to run with
   * this key and independent of it (HKDF-SHA256).
   */
  deriveSecret(label: string): Buffer {
    return Buffer.from(hkdfSync('sha256', this.key, Buffer.alloc(0), `ft-${label}`, 32));
  }

  /**
   * Seals the claims of an upload of `requested` (the name the sender asked for). The plaintext
   * is padded to a length that depends on that name alone: how long a receipt is must not tell
   * whether the file was stored under its name, a numbered variant, or beside an identical one.
   */
  seal(claims: ReceiptClaims, requested: string): string {
    const text = JSON.stringify(claims);
    const padded = Buffer.alloc(Math.max(paddedLength(requested), Buffer.byteLength(text)), 0x20);
    padded.write(text, 'utf8');
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv).setAAD(AAD);
    const body = Buffer.concat([cipher.update(padded), cipher.final()]);
    return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
  }

  /** The claims of a receipt this receiver sealed, or undefined for anything else. */
  open(receipt: string): ReceiptClaims | undefined {
    const raw = Buffer.from(receipt, 'base64url');
    if (raw.length <= IV_BYTES + TAG_BYTES) return undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV_BYTES)).setAAD(AAD);
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      const text = Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      return JSON.parse(text) as ReceiptClaims;
    } catch {
      return undefined;
    }
  }
}

/** Our key, or undefined when there is none (or something that is not ours stands there, which is removed). */
function readKey(fs: FileSystem, file: string): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') return removed(fs, file);
    throw error;
  }
  try {
    const stat = fs.fstatSync(fd);
    const ours = stat.isFile() && stat.size === KEY_BYTES && (stat.mode & 0o077) === 0 && (process.getuid === undefined || stat.uid === process.getuid());
    if (!ours) return removed(fs, file);
    const key = Buffer.alloc(KEY_BYTES);
    if (fs.readSync(fd, key, 0, KEY_BYTES, 0) !== KEY_BYTES) return removed(fs, file);
    return key;
  } finally {
    fs.closeSync(fd);
  }
}

function removed(fs: FileSystem, file: string): undefined {
  try {
    fs.unlinkSync(file);
  } catch {
    // The create below fails with EEXIST, and the next attempt reads again.
  }
  return undefined;
}
