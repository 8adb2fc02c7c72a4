import type { ErrorCode } from '../errors.js';

/** Exit codes of the `ft` command, documented in the README. */
export const EXIT = {
  OK: 0,
  OTHER: 1,
  USAGE: 2,
  VERIFY_FAILED: 3,
  REFUSED: 4,
  CONNECTION: 5,
  /** The receiver is not the one pinned, named by --fingerprint, or holding the token: maybe an impostor. */
  IMPERSONATION: 6,
  /** First contact with a receiver nothing vouches for: trust it (terminal, --trust-new, --fingerprint, a token). */
  UNTRUSTED: 7,
  /** A stream (standard input) was cut off mid-way: it cannot resume, so run the job again. */
  STREAM_INTERRUPTED: 8,
} as const;

const EXIT_BY_CODE: Partial<Record<ErrorCode, number>> = {
  USAGE: EXIT.USAGE,
  LOCAL_FILE: EXIT.USAGE,
  HASH_MISMATCH: EXIT.VERIFY_FAILED,
  BAD_NAME: EXIT.REFUSED,
  UNSAFE_PATH: EXIT.REFUSED,
  CONFLICT: EXIT.REFUSED,
  TOO_LARGE: EXIT.REFUSED,
  NO_SPACE: EXIT.REFUSED,
  BUSY: EXIT.REFUSED,
  NAME_COLLISION: EXIT.REFUSED,
  AUTH_FAILED: EXIT.REFUSED,
  UNSUPPORTED_VERSION: EXIT.REFUSED,
  CONNECT_FAILED: EXIT.CONNECTION,
  CONNECTION_LOST: EXIT.CONNECTION,
  TIMEOUT: EXIT.CONNECTION,
  TLS_FAILED: EXIT.CONNECTION,
  IDENTITY_INVALID: EXIT.USAGE,
  TRUST_STORE_INVALID: EXIT.USAGE,
  RECEIVER_KEY_CHANGED: EXIT.IMPERSONATION,
  RECEIVER_NOT_AUTHENTIC: EXIT.IMPERSONATION,
  RECEIVER_UNKNOWN: EXIT.UNTRUSTED,
  STREAM_INTERRUPTED: EXIT.STREAM_INTERRUPTED,
};

export function exitCodeFor(code: ErrorCode): number {
  return Object.hasOwn(EXIT_BY_CODE, code) ? EXIT_BY_CODE[code]! : EXIT.OTHER;
}
