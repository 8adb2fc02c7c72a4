/**
 * Every error ft raises carries a stable string `code`. Codes also travel over the wire in
 * `refuse`, `failed` and `error` frames, so a code means the same thing on both sides.
 * Match on `code`, never on the message text.
 */
export const ERROR_CODES = {
  // Local usage mistakes (exit 2).
  USAGE: 'bad command-line usage or option value',
  LOCAL_FILE: 'a local path cannot be read (missing, unreadable, not a regular file)',
  // Wire format and protocol violations (fatal for the connection).
  FRAME_TOO_LARGE: 'a frame length is over the 64 KiB limit',
  BAD_FRAME: 'a frame is empty, not UTF-8, not JSON or not a JSON object',
  BAD_MESSAGE: 'a message has missing, unknown-typed or out-of-range fields',
  UNEXPECTED_MESSAGE: 'a message arrived in a state where it is not allowed',
  UNSUPPORTED_VERSION: 'the peers share no protocol version',
  AUTH_FAILED: 'the sender did not prove knowledge of the shared token (fatal for the connection)',
  // Refusals of one file (sender exit 4).
  BAD_NAME: 'the file name is not a safe relative path',
  UNSAFE_PATH: 'the path would leave the inbox (for example through a symbolic link)',
  CONFLICT: 'the name is taken (policy reject), or a file stands where a folder is needed, or no free name was left',
  TOO_LARGE: 'the file is larger than the receiver accepts',
  NO_SPACE: 'the receiver has not enough free disk space',
  BUSY: 'another connection is uploading the same content, or the receiver is at its connection limit',
  NAME_COLLISION: 'another file in this batch has the same name up to case or Unicode normalisation',
  // Transfer failures.
  HASH_MISMATCH: 'the received content does not match the announced hash',
  FILE_CHANGED: 'the local file changed while it was being sent',
  WRITE_FAILED: 'the receiver could not write the file',
  LISTEN_FAILED: 'the receiver could not listen on the address and port',
  CONNECT_FAILED: 'could not connect to the receiver',
  CONNECTION_LOST: 'the connection closed before the transfer finished',
  TIMEOUT: 'the peer did not answer in time',
  ABORTED: 'the operation was cancelled',
  INTERNAL: 'an unexpected internal error',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export class FtError extends Error {
  override name = 'FtError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.details = details;
  }
}

/** Exit codes of the `ft` command, documented in the README. */
export const EXIT = {
  OK: 0,
  OTHER: 1,
  USAGE: 2,
  VERIFY_FAILED: 3,
  REFUSED: 4,
  CONNECTION: 5,
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
};

export function exitCodeFor(code: ErrorCode): number {
  return EXIT_BY_CODE[code] ?? EXIT.OTHER;
}

/** Wraps anything thrown into an FtError, keeping FtErrors as they are. */
export function toFtError(error: unknown, fallback: ErrorCode = 'INTERNAL'): FtError {
  if (error instanceof FtError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new FtError(fallback, message, {}, { cause: error });
}
