/**
 * tus upload ids: signed capabilities. An id carries everything needed to find its upload
 * again (so it survives a restart of the receiver with no table of ids), and an HMAC under the
 * receiver's secret, so nobody can make one up or change a field: only whoever was given the
 * id can reach the upload. Each id has its own random nonce, and its own store key (owner).
 *
 *   base64url( version 1 | nonce 16 | created ms 6 | size 8 | flags 1 | [xxh64 8] | name… | mac 16 )
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { MAX_PATH_BYTES } from '../names/safe-name.js';

export interface UploadInfo {
  /** 16 random bytes: what makes the upload its own. */
  nonce: Buffer;
  /** When it was created, in ms since the epoch. */
  created: number;
  size: number;
  /** `xxh64:<16 hex>`, or undefined for an unverified upload. */
  hash: string | undefined;
  /** The upload's name as sent (relativePath or filename); checked by Ingest, not here. */
  name: string;
}

const VERSION = 1;
const NONCE_BYTES = 16;
const MAC_BYTES = 16;
const HEAD_BYTES = 1 + NONCE_BYTES + 6 + 8 + 1;
const HAS_HASH = 1;
const HASH_PATTERN = /^xxh64:([0-9a-f]{16})$/;
/** No id is longer than one with a name of MAX_PATH_BYTES: longer is refused before any work. */
export const MAX_ID_CHARS = Math.ceil(((HEAD_BYTES + 8 + MAX_PATH_BYTES + MAC_BYTES) * 4) / 3);
const ID_PATTERN = /^[A-Za-z0-9_-]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The store key's owner for this upload: its own, so no two tus uploads (nor a TCP one) share a key. */
export function ownerOf(info: UploadInfo): string {
  return createHash('sha256').update('ft-tus').update(info.nonce).digest('hex');
}

export function newUploadInfo(name: string, size: number, hash: string | undefined, now = Date.now()): UploadInfo {
  return { nonce: randomBytes(NONCE_BYTES), created: now, size, hash, name };
}

export function encodeUploadId(info: UploadInfo, secret: Buffer): string {
  const name = Buffer.from(info.name, 'utf8');
  const hash = info.hash === undefined ? undefined : HASH_PATTERN.exec(info.hash)?.[1];
  if (info.hash !== undefined && hash === undefined) throw new Error(`not an xxh64 hash: ${info.hash}`);
  const head = Buffer.alloc(HEAD_BYTES);
  head[0] = VERSION;
  info.nonce.copy(head, 1);
  head.writeUIntBE(info.created, 1 + NONCE_BYTES, 6);
  head.writeBigUInt64BE(BigInt(info.size), 1 + NONCE_BYTES + 6);
  head[HEAD_BYTES - 1] = hash === undefined ? 0 : HAS_HASH;
  const body = Buffer.concat([head, hash === undefined ? Buffer.alloc(0) : Buffer.from(hash, 'hex'), name]);
  return Buffer.concat([body, mac(secret, body)]).toString('base64url');
}

/** The upload an id names, or undefined for anything this receiver did not sign (checked first, in constant time). */
export function decodeUploadId(id: string, secret: Buffer): UploadInfo | undefined {
  if (id.length < 4 || id.length > MAX_ID_CHARS || !ID_PATTERN.test(id)) return undefined;
  const bytes = Buffer.from(id, 'base64url');
  // base64url has one spelling per byte string here: another spelling is not an id we gave.
  if (bytes.length < HEAD_BYTES + MAC_BYTES || bytes.toString('base64url') !== id) return undefined;
  const body = bytes.subarray(0, bytes.length - MAC_BYTES);
  if (!timingSafeEqual(mac(secret, body), bytes.subarray(bytes.length - MAC_BYTES))) return undefined;
  if (body[0] !== VERSION) return undefined;
  const flags = body[HEAD_BYTES - 1]!;
  const hashBytes = flags === HAS_HASH ? 8 : 0;
  if ((flags & ~HAS_HASH) !== 0 || body.length < HEAD_BYTES + hashBytes) return undefined;
  const size = body.readBigUInt64BE(1 + NONCE_BYTES + 6);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  let name: string;
  try {
    name = utf8.decode(body.subarray(HEAD_BYTES + hashBytes));
  } catch {
    return undefined;
  }
  return {
    nonce: Buffer.from(body.subarray(1, 1 + NONCE_BYTES)),
    created: body.readUIntBE(1 + NONCE_BYTES, 6),
    size: Number(size),
    hash: hashBytes === 0 ? undefined : `xxh64:${body.subarray(HEAD_BYTES, HEAD_BYTES + 8).toString('hex')}`,
    name,
  };
}

function mac(secret: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', secret).update('ft-tus-id\0').update(body).digest().subarray(0, MAC_BYTES);
}
