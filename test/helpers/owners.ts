import { createHash } from 'node:crypto';
import path from 'node:path';
import { partialKey } from '../../src/storage/local/partials.js';
import { loadOwnerKey, type OwnerKey } from '../../src/auth/owner-key.js';
import { tempDir } from './temp.js';

/** Two senders' owner fingerprints, for tests of the storage alone. */
export const OWNER_A = 'a'.repeat(64);
export const OWNER_B = 'b'.repeat(64);

/**
 * The fingerprint the receiver names a sender by once its hello proves `key`: SHA-256 of the
 * raw public key, hex (what verifyOwnerProof returns).
 */
export function ownerFingerprint(key: OwnerKey): string {
  return createHash('sha256').update(Buffer.from(key.publicHex, 'hex')).digest('hex');
}

/** `.ft-partial/<key>` (relative to the inbox, as listFiles shows it) of an upload by the sender proving `key`. */
export function partialOf(key: OwnerKey, filename: string, size: number): string {
  return `.ft-partial/${partialKey({ owner: ownerFingerprint(key), filename, size })}`;
}

/**
 * A key kept in a fresh key file: a RawClient proving `key` (handshake(fields, key)) and
 * send({ senderKeyFile }) look like one sender, so either can resume what the other left.
 */
export async function sharedOwnerKey(): Promise<{ key: OwnerKey; senderKeyFile: string }> {
  const senderKeyFile = path.join(await tempDir('ft-owner-'), 'sender-key.pem');
  return { key: await loadOwnerKey(senderKeyFile), senderKeyFile };
}
