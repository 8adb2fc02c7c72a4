import type { ErrorCode } from '../errors.js';

/** What a receiver reports, in order, for each connection and file. */
export type ReceiverEvent =
  | { type: 'connection'; remote: string }
  /** `size` null: a stream, whose size is known only at its end (`received`). */
  | { type: 'started'; remote: string; name: string; size: number | null; offset: number }
  | { type: 'restarted'; remote: string; name: string; discarded: number }
  | { type: 'progress'; remote: string; name: string; bytes: number; size: number | null }
  | {
      type: 'received';
      remote: string;
      name: string;
      path: string;
      size: number;
      hash: string;
      resumedFrom: number;
      durationMs: number;
      /** How the file came: `ft` (the TCP protocol) or `tus` (HTTP). */
      protocol: 'ft' | 'tus';
      /** Whether the whole file's hash was announced and matched; false only for unverified tus uploads the receiver allows. */
      verified: boolean;
    }
  | { type: 'skipped'; remote: string; name: string; path: string }
  /** An empty folder a sender announced is there (created, or it was already). */
  | { type: 'folder'; remote: string; name: string; path: string }
  | { type: 'refused'; remote: string; name: string; code: ErrorCode; message: string }
  | { type: 'failed'; remote: string; name: string; code: ErrorCode; message: string }
  | { type: 'connection-error'; remote: string; code: ErrorCode; message: string }
  /** A browser redeemed the one-time access code (or the token) for a session on the upload page. */
  | { type: 'access'; remote: string; via: 'code' | 'token' }
  | { type: 'warning'; message: string };

/** What a sender reports for each file. `name` is the name on the receiver, `path` the local one. */
export type SendEvent =
  /** First, once: how many paths and bytes the batch holds (paths that cannot be sent count as files; a stream's bytes are null). */
  | { type: 'collected'; files: number; bytes: number | null }
  /** `fingerprint`: the receiver's key (absent in plaintext); `firstContact`: met for the first time, and now pinned. */
  | { type: 'connected'; host: string; port: number; attempt: number; fingerprint?: string; firstContact: boolean }
  /** `size` null: a stream (standard input), whose size is known only at its end (`verified`). */
  | { type: 'started'; path: string; name: string; size: number | null; offset: number }
  | { type: 'restarted'; path: string; name: string; discarded: number; reason: string }
  | { type: 'progress'; path: string; name: string; bytes: number; size: number | null }
  | { type: 'verified'; path: string; name: string; size: number; hash: string; remotePath?: string; resumedFrom: number }
  | { type: 'skipped'; path: string; name: string; remotePath?: string }
  /** An empty folder arrived (the receiver created it, or had it already). */
  | { type: 'folder'; path: string; name: string; remotePath?: string }
  /** An entry inside a folder that is not sent, such as a symbolic link not followed. */
  | { type: 'ignored'; path: string; name: string; reason: string }
  | { type: 'refused'; path: string; name: string; code: ErrorCode; message: string }
  | { type: 'failed'; path: string; name: string; code: ErrorCode; message: string }
  | {
      type: 'retrying';
      /** Back-off retries so far (a switch to another address of the receiver, at once, adds none). */
      attempt: number;
      delayMs: number;
      code: ErrorCode;
      message: string;
      /** Where the next connection goes: another address of the receiver when it has several. */
      host: string;
      port: number;
      /** To another address of the receiver, at once (delayMs 0), not counted in `attempt`. */
      switching: boolean;
    };

/** Progress events are limited to this rate per file (plus the final one). */
export const PROGRESS_INTERVAL_MS = 250;
