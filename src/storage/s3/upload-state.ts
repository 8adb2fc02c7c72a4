/**
 * An unfinished upload's state, kept in the bucket as a small JSON object (layout.ts), so that
 * a restart of the receiver, or another receiver sharing the bucket, resumes it: the multipart
 * upload and its parts, the bytes after the last whole part (kept as a tail object when the
 * upload was let go), and the hash state at both points, so the whole-file hash goes on without
 * reading anything back (an unfinished multipart upload's bytes cannot be read anyway).
 */
import { randomBytes } from 'node:crypto';
import type { ResumableHasher } from '../../resumable-hashing.js';
import type { UploadKey } from '../upload-store.js';

export interface PartRecord {
  readonly size: number;
  readonly etag: string;
}

export interface UploadState {
  v: 1;
  owner: string;
  filename: string;
  size: number;
  hash?: string;
  /** The peer's quota group (peerGroup): whose quota it counts against. */
  peer: string;
  /** The peer's address as it was when the upload was made. */
  address?: string;
  createdAt: number;
  /** The store's last write to it, in ms since the epoch (this receiver's clock): expiry counts from it. */
  touchedAt: number;
  /** Made by a protocol that creates uploads apart from their bytes (tus): kept whatever its size. */
  recorded: boolean;
  /** Random: the object placed from this upload carries it (x-amz-meta-ft-id), so a replacement shows. */
  token: string;
  /** The key the multipart upload was created for, and its id, once the first part was written. */
  objectKey: string;
  uploadId?: string;
  parts: PartRecord[];
  /** The saved hasher (createResumableHasher) after the parts. */
  partsHashState: string;
  /** Bytes in the tail object after the parts, and the hasher after them. */
  tail: number;
  tailHashState?: string;
}

const HEX40 = /^[0-9a-f]{1,64}$/;

/** The state if `value` is a well-formed one for this upload; undefined otherwise (it is then dropped). */
export function parseUploadState(value: unknown, expect: { owner: string; filename: string; size: number }): UploadState | undefined {
  const state = value as Partial<UploadState> | undefined;
  if (state?.v !== 1 || state.owner !== expect.owner || state.filename !== expect.filename || state.size !== expect.size) return undefined;
  const wholeNumber = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!wholeNumber(state.createdAt) || !wholeNumber(state.touchedAt) || !wholeNumber(state.tail) || typeof state.recorded !== 'boolean') return undefined;
  if (typeof state.peer !== 'string' || typeof state.token !== 'string' || !HEX40.test(state.token) || typeof state.objectKey !== 'string') return undefined;
  if (typeof state.partsHashState !== 'string' || ((state.tail as number) > 0 && typeof state.tailHashState !== 'string')) return undefined;
  if (state.hash !== undefined && typeof state.hash !== 'string') return undefined;
  if (state.uploadId !== undefined && typeof state.uploadId !== 'string') return undefined;
  if (!Array.isArray(state.parts) || !state.parts.every((p: PartRecord) => wholeNumber(p?.size) && p.size > 0 && typeof p.etag === 'string')) return undefined;
  if (state.parts.length > 0 && state.uploadId === undefined) return undefined;
  if (partsBytes(state as UploadState) + (state.tail as number) > state.size) return undefined;
  return state as UploadState;
}

export function partsBytes(state: UploadState): number {
  let total = 0;
  for (const part of state.parts) total += part.size;
  return total;
}

/** The state of an upload just made (nothing held yet). */
export function newState(key: UploadKey, size: number, peer: string, address: string, recorded: boolean, objectKey: string, hasher: ResumableHasher): UploadState {
  const now = Date.now();
  return {
    v: 1,
    owner: key.owner,
    filename: key.filename,
    size,
    ...(key.hash !== undefined ? { hash: key.hash } : {}),
    peer,
    address,
    createdAt: now,
    touchedAt: now,
    recorded,
    token: randomBytes(16).toString('hex'),
    objectKey,
    parts: [],
    partsHashState: hasher.save(),
    tail: 0,
  };
}
