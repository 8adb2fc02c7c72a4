import { FtError } from '../errors.js';

/** Frames carry a 4-byte unsigned big-endian length, then that many bytes of a UTF-8 JSON object. */
export const FRAME_PREFIX_BYTES = 4;
/** Frames longer than this are refused before any of their bytes are buffered. */
export const MAX_FRAME_BYTES = 64 * 1024;
/** Deeper JSON than this is refused: no message of ours nests more than two levels. */
const MAX_JSON_DEPTH = 8;

export type JsonObject = Record<string, unknown>;

export function encodeFrame(message: JsonObject): Buffer {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  if (json.length === 0 || json.length > MAX_FRAME_BYTES) {
    throw new FtError('FRAME_TOO_LARGE', `frame of ${json.length} bytes is over the ${MAX_FRAME_BYTES}-byte limit`);
  }
  const frame = Buffer.allocUnsafe(FRAME_PREFIX_BYTES + json.length);
  frame.writeUInt32BE(json.length, 0);
  json.copy(frame, FRAME_PREFIX_BYTES);
  return frame;
}

/**
 * What the decoder yields, in stream order. A `body` frame announces `length` raw bytes that
 * follow it at once; they arrive as `body-chunk` items (views into the pushed chunks, no copy)
 * and end with one `body-end`.
 */
export type Decoded =
  | { kind: 'frame'; message: JsonObject }
  | { kind: 'body-chunk'; data: Buffer }
  | { kind: 'body-end' }
  /** Always last: what came before it in the same chunk was good and is still delivered. */
  | { kind: 'error'; error: FtError };

// ignoreBOM keeps a leading U+FEFF in the text, where JSON.parse refuses it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Incremental decoder for one direction of a connection: push bytes as they arrive, get back
 * everything that is now complete. Lengths are checked before anything is buffered, and the
 * first bad byte puts the decoder into a failed state (the connection must be closed).
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private bodyRemaining = 0;
  private failure: FtError | undefined;

  /** True while raw body bytes are expected. */
  get inBody(): boolean {
    return this.bodyRemaining > 0;
  }

  /** True when no partial frame is buffered: the stream may end cleanly here. */
  get atBoundary(): boolean {
    return this.pendingBytes === 0 && this.bodyRemaining === 0;
  }

  /**
   * Decodes what `chunk` completes. A violation ends the list with an `error` item, after
   * everything good that preceded it; every later push yields that error again.
   */
  push(chunk: Buffer): Decoded[] {
    if (this.failure) return [{ kind: 'error', error: this.failure }];
    const out: Decoded[] = [];
    try {
      this.decode(chunk, out);
    } catch (error) {
      if (!(error instanceof FtError)) throw error;
      this.failure = error;
      out.push({ kind: 'error', error });
    }
    return out;
  }

  private decode(chunk: Buffer, out: Decoded[]): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.bodyRemaining > 0) {
        const take = Math.min(this.bodyRemaining, chunk.length - offset);
        out.push({ kind: 'body-chunk', data: chunk.subarray(offset, offset + take) });
        offset += take;
        this.bodyRemaining -= take;
        if (this.bodyRemaining === 0) out.push({ kind: 'body-end' });
        continue;
      }
      offset = this.takeFrameBytes(chunk, offset, out);
    }
  }

  /** Consumes frame bytes from `chunk` starting at `offset`; returns the new offset. */
  private takeFrameBytes(chunk: Buffer, offset: number, out: Decoded[]): number {
    const available = chunk.length - offset;
    if (this.pendingBytes < FRAME_PREFIX_BYTES) {
      const need = FRAME_PREFIX_BYTES - this.pendingBytes;
      const take = Math.min(need, available);
      this.buffer(chunk.subarray(offset, offset + take));
      if (take < need) return offset + take;
      this.checkLength(this.frameLength());
      return offset + take;
    }
    const total = FRAME_PREFIX_BYTES + this.frameLength();
    const take = Math.min(total - this.pendingBytes, available);
    this.buffer(chunk.subarray(offset, offset + take));
    if (this.pendingBytes === total) this.completeFrame(out);
    return offset + take;
  }

  private buffer(part: Buffer): void {
    // Copy: the caller may reuse its chunk, and frames are small.
    this.pending.push(Buffer.from(part));
    this.pendingBytes += part.length;
  }

  private frameLength(): number {
    const head = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [head];
    return head.readUInt32BE(0);
  }

  private checkLength(length: number): void {
    if (length === 0) this.fail(new FtError('BAD_FRAME', 'empty frame (length 0)'));
    if (length > MAX_FRAME_BYTES) {
      this.fail(new FtError('FRAME_TOO_LARGE', `frame length ${length} is over the ${MAX_FRAME_BYTES}-byte limit`));
    }
  }

  private completeFrame(out: Decoded[]): void {
    const bytes = Buffer.concat(this.pending).subarray(FRAME_PREFIX_BYTES);
    this.pending = [];
    this.pendingBytes = 0;
    const message = this.parse(bytes);
    if (message.type !== 'body') {
      out.push({ kind: 'frame', message });
      return;
    }
    const length = message.length;
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) {
      this.fail(new FtError('BAD_MESSAGE', 'body frame needs a non-negative integer "length"'));
    }
    out.push({ kind: 'frame', message });
    this.bodyRemaining = length;
    if (length === 0) out.push({ kind: 'body-end' });
  }

  private parse(bytes: Buffer): JsonObject {
    let text: string;
    try {
      text = utf8.decode(bytes);
    } catch {
      this.fail(new FtError('BAD_FRAME', 'frame is not valid UTF-8'));
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.fail(new FtError('BAD_FRAME', 'frame is not valid JSON'));
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.fail(new FtError('BAD_FRAME', 'frame is not a JSON object'));
    }
    if (depthOf(value, 0) > MAX_JSON_DEPTH) this.fail(new FtError('BAD_FRAME', 'frame nests too deeply'));
    return value as JsonObject;
  }

  private fail(error: FtError): never {
    throw error;
  }
}

function depthOf(value: unknown, depth: number): number {
  if (depth > MAX_JSON_DEPTH || typeof value !== 'object' || value === null) return depth;
  let deepest = depth + 1;
  for (const child of Object.values(value)) deepest = Math.max(deepest, depthOf(child, depth + 1));
  return deepest;
}
