/**
 * Parsing what a tus client sends in headers: strict, bounded, and never trusting a value it
 * did not check. Each parser returns the value or a TusRefusal with the status to answer.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HASH_PATTERN } from '../wire/messages.js';

export class TusRefusal extends Error {
  constructor(
    readonly status: number,
    /** A stable code (one of ft's error codes), first in the body. */
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Upload-Metadata longer than this is refused: a 4096-byte name in base64 twice, and a hash, fit. */
export const MAX_METADATA_CHARS = 16 * 1024;
export const CHECKSUM_ALGORITHMS = ['sha1', 'sha256', 'md5'] as const;
type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const KEY = /^[\x21-\x7e]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** A non-negative whole number of bytes in a header (`Upload-Length`, `Upload-Offset`). */
export function byteCount(req: IncomingMessage, name: string): number | undefined {
  const value = header(req, name);
  if (value === undefined) return undefined;
  const number = /^[0-9]{1,16}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number)) throw new TusRefusal(400, 'BAD_MESSAGE', `${name} must be a whole number of bytes`);
  return number;
}

/** What Upload-Metadata says of the file: its name (relativePath, else filename, else Uppy's name) and hash. */
export interface FileMetadata {
  name: string | undefined;
  hash: string | undefined;
}

export function parseMetadata(value: string | undefined): FileMetadata {
  const pairs = new Map<string, string>();
  const bad = (why: string) => new TusRefusal(400, 'BAD_MESSAGE', `Upload-Metadata ${why}`);
  if (value !== undefined && value.trim() !== '') {
    if (value.length > MAX_METADATA_CHARS) throw bad(`is longer than ${MAX_METADATA_CHARS} characters`);
    for (const pair of value.split(',')) {
      const parts = pair.trim().split(' ');
      const [key, encoded = ''] = parts;
      if (parts.length > 2 || key === undefined || !KEY.test(key)) throw bad('has a malformed key');
      if (pairs.has(key)) throw bad(`has the key ${key} twice`);
      if (!BASE64.test(encoded)) throw bad(`value of ${key} is not base64`);
      pairs.set(key, encoded);
    }
  }
  const text = (key: string): string | undefined => {
    const encoded = pairs.get(key);
    if (encoded === undefined || encoded === '') return undefined;
    try {
      return utf8.decode(Buffer.from(encoded, 'base64'));
    } catch {
      throw bad(`value of ${key} is not UTF-8`);
    }
  };
  const hash = text('hash');
  if (hash !== undefined && !HASH_PATTERN.test(hash)) throw bad('hash must be xxh64: and 16 lowercase hex digits');
  return { name: text('relativePath') ?? text('filename') ?? text('name'), hash };
}

export function encodeMetadata(values: Record<string, string | undefined>): string {
  return Object.entries(values)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([key, value]) => `${key} ${Buffer.from(value, 'utf8').toString('base64')}`)
    .join(',');
}

/** An `Upload-Checksum: <algorithm> <base64 digest>` header, or undefined without one. */
export function parseChecksum(value: string | undefined): { algorithm: ChecksumAlgorithm; digest: Buffer } | undefined {
  if (value === undefined) return undefined;
  const [algorithm, encoded, ...rest] = value.trim().split(' ');
  if (!CHECKSUM_ALGORITHMS.includes(algorithm as ChecksumAlgorithm)) {
    throw new TusRefusal(400, 'BAD_MESSAGE', `Upload-Checksum: the algorithm must be one of ${CHECKSUM_ALGORITHMS.join(', ')}`);
  }
  if (rest.length > 0 || encoded === undefined || encoded === '' || !BASE64.test(encoded)) {
    throw new TusRefusal(400, 'BAD_MESSAGE', 'Upload-Checksum: the digest must be base64');
  }
  const digest = Buffer.from(encoded, 'base64');
  if (digest.length !== createHash(algorithm!).digest().length) throw new TusRefusal(400, 'BAD_MESSAGE', `Upload-Checksum: not a ${algorithm} digest`);
  return { algorithm: algorithm as ChecksumAlgorithm, digest };
}
