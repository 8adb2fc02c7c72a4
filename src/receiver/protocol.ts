/**
 * The receiver's side of the protocol as a pure state machine (sans-I/O): decoded frames in,
 * a new state and effects out. It knows what may arrive when (docs/PROTOCOL.md, "Receiver
 * state machine"); what to do with a file is the ingest service's, and sockets, timers and
 * answers are the session's (session.ts).
 */
import { FtError } from '../errors.js';
import type { Decoded } from '../wire/frame.js';
import {
  FEATURES,
  MAX_FILES_PER_CONNECTION,
  parseSenderMessage,
  type Body,
  type Feature,
  type FileHeader,
  type FolderHeader,
  type SenderHello,
  type SenderMessage,
} from '../wire/messages.js';

export type ProtocolState =
  /** Waiting for the sender's hello. */
  | { readonly name: 'hello' }
  /** The hello was read; its proofs are being checked. */
  | { readonly name: 'authenticating' }
  | { readonly name: 'ready' }
  /**
   * Raw bytes of the body of file `id` arrive; `dropping` when they are read and not kept. For a
   * stream, `stream` says where its bytes will end once this frame's have arrived.
   */
  | { readonly name: 'receiving'; readonly id: number; readonly hash: string | undefined; readonly dropping: boolean; readonly stream?: StreamSoFar }
  /**
   * The body of `id` is complete; its header had no hash, so the `hash` message comes next. For
   * a stream, another body frame of it may come instead, at `stream.received`.
   */
  | { readonly name: 'awaiting-hash'; readonly id: number; readonly stream?: StreamSoFar }
  /** `bye` was read: nothing more may arrive. */
  | { readonly name: 'closing' };

/** A stream's bytes in all its body frames so far (feature `stream`). */
export interface StreamSoFar {
  readonly received: number;
  /** Its body frames so far. */
  readonly frames: number;
}

/**
 * Each body frame costs the receiver a message's work whatever its length: past the first
 * STREAM_FREE_FRAMES, a stream's frames must average STREAM_MIN_AVERAGE_FRAME_BYTES, so a peer
 * cannot make it spend a message per byte. An honest sender gathers a slow source's bytes for up
 * to a second per frame, and a stream slower than this a second is cut by the minimum body rate.
 */
export const STREAM_FREE_FRAMES = 1024;
export const STREAM_MIN_AVERAGE_FRAME_BYTES = 4096;

/**
 * Bytes of a failed stream read and dropped: what a sender may have on its way before our
 * `failed` reaches it. Past them it ignored the `failed`, and a stream has no size (nor need
 * its frames have a sensible length) to bound what it could go on sending.
 */
export const FAILED_STREAM_GRACE_BYTES = 16 * 1024 * 1024;

/** What happens next, for the session to carry out, in order. */
export type Effect =
  | { readonly kind: 'hello'; readonly hello: SenderHello }
  | { readonly kind: 'header'; readonly header: FileHeader | FolderHeader }
  /** A body starts (for a stream: its first frame; the next ones only bring chunks). */
  | { readonly kind: 'body'; readonly body: Body; readonly stream?: true }
  | { readonly kind: 'chunk'; readonly data: Buffer }
  /**
   * The last raw byte of the body: `hash` is the header's, or undefined when a `hash` message
   * follows. For a stream, the end of one frame: more may follow.
   */
  | { readonly kind: 'body-end'; readonly id: number; readonly hash: string | undefined; readonly dropped: boolean; readonly stream?: true }
  /** The `hash` message; for a stream, with its size, every byte of its frames. */
  | { readonly kind: 'hash'; readonly id: number; readonly hash: string; readonly dropped: boolean; readonly size?: number }
  | { readonly kind: 'cancel'; readonly id: number }
  | { readonly kind: 'bye' };

/** What the machine remembers besides its state: counts and the open headers' hashes. */
export interface ProtocolMemory {
  /** Features both hellos listed (set once the hello is accepted). */
  features: ReadonlySet<Feature>;
  lastId: number;
  headers: number;
  /** Headers not yet answered with refuse/skip, nor started, nor cancelled: their hash (or undefined), and whether each is a stream. */
  readonly open: Map<number, OpenHeader>;
  /** Whether the body in progress was dropped, for its hash. */
  droppedId: number | undefined;
  /** Bytes of the failed stream read and dropped so far (see FAILED_STREAM_GRACE_BYTES). */
  failedStreamBytes: number;
}

export interface OpenHeader {
  readonly hash: string | undefined;
  readonly stream: boolean;
}

export interface ProtocolLimits {
  /** Headers a sender may have open (not answered, or accepted and waiting for a body). */
  readonly maxPendingFiles: number;
}

export function initialMemory(): ProtocolMemory {
  return { features: new Set(), lastId: 0, headers: 0, open: new Map(), droppedId: undefined, failedStreamBytes: 0 };
}

/** Inputs from the session itself, besides decoded frames. */
export type Signal =
  /** The hello's proofs held: files may come. */
  | { readonly kind: 'authenticated'; readonly features: ReadonlySet<Feature> }
  /** The header of `id` was refused or skipped, or its upload ended without a body: it is no longer open. */
  | { readonly kind: 'settled'; readonly id: number }
  /** The body in progress is not kept (a write failed, no space, taken over): its bytes, and its hash, are read and dropped. */
  | { readonly kind: 'drop' };

export type Input = Decoded | Signal;

/**
 * The one transition function. Throws FtError for a violation (the session answers it with an
 * `error` frame and closes); otherwise returns the next state and what to do.
 */
export function transition(
  state: ProtocolState,
  input: Input,
  memory: ProtocolMemory,
  limits: ProtocolLimits,
): { state: ProtocolState; effects: Effect[] } {
  const stay = (...effects: Effect[]) => ({ state, effects });
  switch (input.kind) {
    case 'error':
      throw input.error;
    case 'authenticated':
      if (state.name !== 'authenticating') throw new FtError('INTERNAL', 'authenticated outside the greeting');
      memory.features = input.features;
      return { state: { name: 'ready' }, effects: [] };
    case 'settled':
      memory.open.delete(input.id);
      return stay();
    case 'drop':
      if (state.name === 'awaiting-hash') memory.droppedId = state.id;
      if (state.name !== 'receiving') return stay();
      memory.droppedId = state.id;
      if (state.stream) memory.failedStreamBytes = 0;
      return { state: { ...state, dropping: true }, effects: [] };
    case 'body-chunk':
      if (state.name !== 'receiving') throw new FtError('INTERNAL', 'body bytes outside a body');
      if (!state.dropping) return stay({ kind: 'chunk', data: input.data });
      if (state.stream && (memory.failedStreamBytes += input.data.length) > FAILED_STREAM_GRACE_BYTES) {
        throw new FtError('UNEXPECTED_MESSAGE', `stream ${state.id} went on for more than ${FAILED_STREAM_GRACE_BYTES} bytes after it failed`);
      }
      return stay();
    case 'body-end': {
      if (state.name !== 'receiving') throw new FtError('INTERNAL', 'the end of a body outside a body');
      const { id, hash, stream } = state;
      const end: Effect = { kind: 'body-end', id, hash, dropped: state.dropping, ...(stream && { stream: true as const }) };
      // The sender learns of a dropped body only from our answer: a hash it sends after the body is read and ignored.
      if (stream) return { state: { name: 'awaiting-hash', id, stream }, effects: [end] };
      return { state: hash === undefined ? { name: 'awaiting-hash', id } : { name: 'ready' }, effects: [end] };
    }
    case 'frame':
      break;
  }
  // Parse errors come first: an unknown type is BAD_MESSAGE in every state.
  const message = parseSenderMessage(input.message, memory.features);
  switch (state.name) {
    case 'closing':
      throw new FtError('UNEXPECTED_MESSAGE', `"${message.type}" after "bye"`);
    case 'hello':
      if (message.type !== 'hello') throw new FtError('UNEXPECTED_MESSAGE', `expected "hello", got "${message.type}"`);
      return { state: { name: 'authenticating' }, effects: [{ kind: 'hello', hello: message }] };
    case 'authenticating':
      throw new FtError('UNEXPECTED_MESSAGE', `"${message.type}" before the greeting was answered`);
    case 'receiving':
      throw new FtError('INTERNAL', 'a frame inside a body');
    case 'awaiting-hash': {
      if (state.stream) return streamGoesOn(state.id, state.stream, message, memory);
      if (message.type !== 'hash') throw new FtError('UNEXPECTED_MESSAGE', `expected the "hash" of file ${state.id}, got "${message.type}"`);
      if (message.id !== state.id) throw new FtError('UNEXPECTED_MESSAGE', `"hash" for file ${message.id}, which has no body waiting for its hash`);
      const dropped = memory.droppedId === state.id;
      return { state: { name: 'ready' }, effects: [{ kind: 'hash', id: message.id, hash: message.hash, dropped }] };
    }
    case 'ready':
      break;
  }
  switch (message.type) {
    case 'file':
      return stay({ kind: 'header', header: openHeader(message, memory, limits) });
    case 'body': {
      // Whether the id was accepted is the session's to say (the decision may still be running).
      const header = memory.open.get(message.id);
      memory.open.delete(message.id);
      memory.droppedId = undefined;
      const hash = header?.hash;
      if (!header?.stream) return { state: { name: 'receiving', id: message.id, hash, dropping: false }, effects: [{ kind: 'body', body: message }] };
      if (message.offset !== 0) throw new FtError('BAD_MESSAGE', `the first body of stream ${message.id} starts at ${message.offset}, not 0`);
      const stream = { received: message.length, frames: 1 };
      return { state: { name: 'receiving', id: message.id, hash, dropping: false, stream }, effects: [{ kind: 'body', body: message, stream: true }] };
    }
    case 'cancel':
      memory.open.delete(message.id);
      return stay({ kind: 'cancel', id: message.id });
    case 'bye':
      return { state: { name: 'closing' }, effects: [{ kind: 'bye' }] };
    case 'hash':
      throw new FtError('UNEXPECTED_MESSAGE', `"hash" for file ${message.id}, which has no body waiting for its hash`);
    case 'hello':
      throw new FtError('UNEXPECTED_MESSAGE', '"hello" is not allowed after the greeting');
  }
}

/**
 * What must hold of a header in arrival order: ids increase, at most MAX_FILES_PER_CONNECTION
 * headers on a connection and maxPendingFiles open at once, and no header without its hash
 * unless `trailing-hash` was agreed.
 */
function openHeader<T extends FileHeader | FolderHeader>(header: T, memory: ProtocolMemory, limits: ProtocolLimits): T {
  if (header.id <= memory.lastId) throw new FtError('UNEXPECTED_MESSAGE', `file id ${header.id} is not above the previous one (${memory.lastId})`);
  if (++memory.headers > MAX_FILES_PER_CONNECTION) {
    throw new FtError('UNEXPECTED_MESSAGE', `more than ${MAX_FILES_PER_CONNECTION} files on one connection; open another`);
  }
  if (memory.open.size >= limits.maxPendingFiles) {
    throw new FtError('UNEXPECTED_MESSAGE', `more than ${limits.maxPendingFiles} headers are waiting for bodies`);
  }
  // A folder header is open until it is answered, like any header (it never gets a body).
  if ('folder' in header) {
    memory.lastId = header.id;
    memory.open.set(header.id, { hash: undefined, stream: false });
    return header;
  }
  if (header.stream) {
    if (!memory.features.has(FEATURES.STREAM)) {
      throw new FtError('BAD_MESSAGE', `file ${header.id} is a stream, and "${FEATURES.STREAM}" was not agreed in the hellos`);
    }
    if (header.size !== undefined || header.hash !== undefined) {
      throw new FtError('BAD_MESSAGE', `the header of stream ${header.id} has a ${header.size !== undefined ? 'size' : 'hash'}; a stream's come after its body`);
    }
  } else if (header.size === undefined) {
    throw new FtError('BAD_MESSAGE', `the header of file ${header.id} has no size`);
  }
  if (header.hash === undefined && !memory.features.has(FEATURES.TRAILING_HASH)) {
    throw new FtError('BAD_MESSAGE', `the header of file ${header.id} has no hash, and "${FEATURES.TRAILING_HASH}" was not agreed in the hellos`);
  }
  memory.lastId = header.id;
  memory.open.set(header.id, { hash: header.hash, stream: header.stream === true });
  return header;
}

/**
 * Between a stream's body frames: the next frame of the same stream, at the bytes received so
 * far and of at least one byte (an empty stream is one empty frame), or its `hash` with the size.
 */
function streamGoesOn(id: number, stream: StreamSoFar, message: SenderMessage, memory: ProtocolMemory): { state: ProtocolState; effects: Effect[] } {
  const dropped = memory.droppedId === id;
  if (message.type === 'hash') {
    if (message.id !== id) throw new FtError('UNEXPECTED_MESSAGE', `"hash" for file ${message.id} in the middle of stream ${id}`);
    if (message.size !== stream.received) {
      throw new FtError('BAD_MESSAGE', `the "hash" of stream ${id} declares size ${message.size ?? 'nothing'}, but ${stream.received} bytes arrived`);
    }
    return { state: { name: 'ready' }, effects: [{ kind: 'hash', id, hash: message.hash, dropped, size: stream.received }] };
  }
  if (message.type !== 'body' || message.id !== id) {
    throw new FtError('UNEXPECTED_MESSAGE', `expected a body or the "hash" of stream ${id}, got "${message.type}"${message.type === 'body' ? ` for file ${message.id}` : ''}`);
  }
  if (stream.received === 0) throw new FtError('BAD_MESSAGE', `stream ${id} began with an empty body: an empty stream has no other`);
  if (message.offset !== stream.received) throw new FtError('BAD_MESSAGE', `a body of stream ${id} starts at ${message.offset}, not ${stream.received}`);
  if (message.length === 0) throw new FtError('BAD_MESSAGE', `an empty body in the middle of stream ${id}`);
  const next = { received: stream.received + message.length, frames: stream.frames + 1 };
  if (next.frames > STREAM_FREE_FRAMES + next.received / STREAM_MIN_AVERAGE_FRAME_BYTES) {
    throw new FtError(
      'BAD_MESSAGE',
      `stream ${id} came in ${next.frames} frames for ${next.received} bytes: past the first ${STREAM_FREE_FRAMES}, frames must average ${STREAM_MIN_AVERAGE_FRAME_BYTES} bytes`,
    );
  }
  return { state: { name: 'receiving', id, hash: undefined, dropping: dropped, stream: next }, effects: [] };
}
