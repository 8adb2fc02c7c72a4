/**
 * How the local store applies FileMetadata: what Node's futimes and fchmod are given. Both act
 * on the open file, never on a path.
 */
import type { FileMetadata } from '../upload-store.js';

/** Bits a received file may get: read, write and execute, never set-user-id, set-group-id or sticky. */
export const PERMISSION_BITS = 0o777;

/** What an open file is given (see OpenFile.setMetadata). */
export interface AppliedMetadata {
  /** Seconds since the epoch, as futimes takes them (see futimesSeconds). */
  readonly mtime?: string;
  readonly mode?: number;
}

/**
 * Seconds for futimes, for a time in nanoseconds. Node passes a negative number as "now", but a
 * numeric string through as it is, so the time goes as a string. libuv keeps whole microseconds,
 * truncating toward zero after converting to a double, so the string is the time floored to
 * its microsecond plus half a microsecond away from zero: the double's rounding error (under
 * half a microsecond for |t| < 2^33 s, some 272 years from 1970) cannot move it to the
 * neighbouring microsecond, and the file gets exactly floor(ns / 1000) µs.
 */
export function futimesSeconds(ns: bigint): string {
  const micros = ns >= 0n ? ns / 1000n : -((-ns + 999n) / 1000n);
  const negative = micros < 0n;
  const magnitude = negative ? -micros : micros;
  const whole = magnitude / 1_000_000n;
  const fraction = (magnitude % 1_000_000n).toString().padStart(6, '0');
  return `${negative ? '-' : ''}${whole}.${fraction}5`;
}

/**
 * The bit a received file always keeps: ft opens the verified partial for reading by its name
 * to place it (and to compare it with a same-size file under `rename`), which a mode without
 * it (0o200, 0) would refuse with EACCES to anyone but root, failing every such upload.
 */
export const OWNER_READ = 0o400;

/** What the open file gets: the time as futimes takes it, and the mode's permission bits less the umask, plus OWNER_READ. */
export function appliedMetadata(metadata: FileMetadata | undefined, umask: number): AppliedMetadata | undefined {
  if (metadata === undefined || (metadata.mtimeNs === undefined && metadata.mode === undefined)) return undefined;
  return {
    ...(metadata.mtimeNs !== undefined ? { mtime: futimesSeconds(metadata.mtimeNs) } : {}),
    ...(metadata.mode !== undefined ? { mode: (metadata.mode & PERMISSION_BITS & ~umask) | OWNER_READ } : {}),
  };
}

/**
 * The process's umask, read once (process.umask() sets it and sets it back). Where it cannot be
 * read (a worker thread), the strictest one: group and others get nothing.
 */
export function currentUmask(): number {
  try {
    return process.umask();
  } catch {
    return 0o077;
  }
}
