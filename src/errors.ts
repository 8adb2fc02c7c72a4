/**
 * Every error ft raises carries a stable string `code`. Match on `code`, never on the message text.
 *
 * Two kinds: WIRE_CODES travel in `refuse`, `failed` and `error` frames and mean the same thing
 * on both sides (docs/PROTOCOL.md §7.1); LOCAL_CODES only ever describe this side (a usage
 * mistake, our own file, our own socket) and never go on the wire: a peer that sends one is not
 * believed (it could pass our file off as unreadable, fake a cancellation, or ask for retries).
 */
export const WIRE_CODES = Object.freeze({
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
  WRITE_FAILED: 'the receiver could not write the file',
  INTERNAL: 'an unexpected internal error',
});

export const LOCAL_CODES = Object.freeze({
  // Usage mistakes, our own files, our own connection and timers.
  USAGE: 'bad command-line usage or option value',
  LOCAL_FILE: 'a local path cannot be read (missing, unreadable, not a regular file)',
  FILE_CHANGED: 'the local file changed while it was being sent',
  LISTEN_FAILED: 'the receiver could not listen on the address and port',
  CONNECT_FAILED: 'could not connect to the receiver',
  CONNECTION_LOST: 'the connection closed before the transfer finished',
  TIMEOUT: 'the peer did not answer in time',
  ABORTED: 'the operation was cancelled',
  STREAM_INTERRUPTED: 'a stream (standard input) was cut off mid-way; it cannot resume: run the job again',
  // Encryption and receiver identity (docs/PROTOCOL.md §3).
  TLS_FAILED: 'the encrypted channel could not be set up (the peer does not speak TLS 1.3, or runs in plaintext)',
  IDENTITY_INVALID: "the receiver's key or certificate cannot be read or used",
  RECEIVER_KEY_CHANGED: 'the receiver presented another key than the one pinned for it, or given with --fingerprint',
  RECEIVER_UNKNOWN: 'first contact with a receiver whose key nothing vouches for (no pin, no --trust-new, no token)',
  RECEIVER_NOT_AUTHENTIC: 'the receiver did not prove knowledge of the shared token',
  TRUST_STORE_INVALID: 'the file of pinned receivers cannot be read or written',
});

/** Every code, with its description: the wire codes and the local ones. */
export const ERROR_CODES = Object.freeze({ ...WIRE_CODES, ...LOCAL_CODES });

export type WireCode = keyof typeof WIRE_CODES;
export type LocalCode = keyof typeof LOCAL_CODES;
export type ErrorCode = WireCode | LocalCode;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

/** A code that may travel in a frame (and be believed when it arrives in one). */
export function isWireCode(value: unknown): value is WireCode {
  return typeof value === 'string' && Object.hasOwn(WIRE_CODES, value);
}

/**
 * The code to put on the wire for one of our errors: a local code describes only this side, and
 * the peer would read it as INTERNAL anyway, so it is sent as that.
 */
export function wireCodeOf(code: ErrorCode): WireCode {
  return isWireCode(code) ? code : 'INTERNAL';
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

/** Wraps anything thrown into an FtError, keeping FtErrors as they are. */
export function toFtError(error: unknown, fallback: ErrorCode = 'INTERNAL'): FtError {
  if (error instanceof FtError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new FtError(fallback, message, {}, { cause: error });
}
