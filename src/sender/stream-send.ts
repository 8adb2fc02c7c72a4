/**
 * Sending a stream of unknown size (standard input, a library's Readable or async iterable) as
 * one file, over one connection (feature `stream`, docs/PROTOCOL.md §9.4): a header without
 * size or hash, the bytes in body frames as they come, then the size and hash in the `hash`
 * message. A stream cannot be read again, so nothing here retries or resumes: a connection
 * that breaks, or a source that fails, ends the send with STREAM_INTERRUPTED (run the job
 * again), and the receiver discards what it got. Only connecting moves on to the receiver's
 * next address (fallbacks) when one cannot be reached: no byte of the stream has gone yet.
 */
import type { BandwidthLimit } from '../bandwidth-limit.js';
import { FtError, toFtError } from '../errors.js';
import { createHasher } from '../hashing.js';
import { escapeForDisplay, parseSafeName } from '../names/safe-name.js';
import { FEATURES } from '../wire/messages.js';
import { PROGRESS_INTERVAL_MS, type SendEvent } from '../ingest/events.js';
import { SenderConnection, type Outcome } from './connection.js';
import { bandwidthOf, connectOptions, endpointsOf, limitedSlice, senderIdentity } from './send-setup.js';
import type { FileResult, SendOptions, SendReport } from './sender.js';

/** A source of unknown size: any Readable, or any async iterable of bytes (strings are UTF-8). */
export interface StreamSource {
  stream: AsyncIterable<Uint8Array | string>;
  /** The file's name on the receiver: a safe relative path, as for files. */
  name: string;
}

/** How a stream is shown in events and results, where a file shows its path. */
export const STREAM_PATH = '-';

/** What the wait for the next chunk yields to when the receiver has answered (or the connection ended). */
const STOP = Symbol('stop');

/** Bytes per body frame at most: a source's larger chunks are cut, so a frame's bytes soon reach the receiver. */
const MAX_FRAME_BYTES = 1024 * 1024;

export async function sendStream(source: StreamSource, options: SendOptions): Promise<SendReport> {
  const started = performance.now();
  const emit = options.onEvent ?? (() => undefined);
  const { name } = source;
  parseSafeName(name);
  const identity = await senderIdentity(options);
  const result: FileResult = { path: STREAM_PATH, name, size: 0, hash: '', status: 'failed', bytesSent: 0 };
  const report = (): SendReport => ({ files: [result], ignored: [], bytesSent: result.bytesSent, durationMs: Math.round(performance.now() - started) });
  emit({ type: 'collected', files: 1, bytes: null });
  const reading = source.stream[Symbol.asyncIterator]();
  const bandwidth = bandwidthOf(options);
  // Under a limit, frames of a slice each: each waits for the limit before it goes.
  const chunks = framed(reading, bandwidth ? limitedSlice(bandwidth) : MAX_FRAME_BYTES, options.signal);
  // The producer is started before the receiver is kept waiting: a header goes out with data to follow.
  const first = await nextChunk(chunks, result);
  const { connection, host, port } = await openFirstReachable(options, identity);
  const { fingerprint, firstContact } = connection;
  emit({ type: 'connected', host, port, attempt: 0, ...(fingerprint !== undefined && { fingerprint }), firstContact });
  try {
    if (!connection.features.has(FEATURES.STREAM)) {
      throw new FtError('UNSUPPORTED_VERSION', `${host}:${port} cannot take a stream (its ft is older, without the "${FEATURES.STREAM}" feature); upgrade ft there, or send a file`);
    }
    const decision = await connection.sendHeader({ type: 'file', id: 1, filename: name, stream: true });
    if (decision.type === 'refuse') {
      settleFailure(result, 'refused', new FtError(decision.code, decision.message), emit);
      await connection.finish();
      return report();
    }
    if (decision.type !== 'accept' || decision.offset !== 0) {
      throw new FtError('BAD_MESSAGE', `the receiver answered a stream's header with ${decision.type === 'accept' ? `offset ${decision.offset}` : `"${decision.type}"`}`);
    }
    const outcome = await streamBody(connection, first, chunks, { result, bandwidth }, options, emit);
    if (outcome.type === 'failed') {
      settleFailure(result, 'failed', new FtError(outcome.code, outcome.message), emit);
      // The receiver drops whatever else comes: there is no point sending it.
      connection.close();
      return report();
    }
    Object.assign(result, { status: 'sent', hash: outcome.hash, resumedFrom: 0 }, outcome.path === undefined ? {} : { remotePath: outcome.path });
    emit({ type: 'verified', path: STREAM_PATH, name, size: result.size, hash: outcome.hash, ...(outcome.path !== undefined && { remotePath: outcome.path }), resumedFrom: 0 });
    await connection.finish();
    return report();
  } catch (error) {
    connection.close();
    throw interrupted(error, result, options.signal);
  } finally {
    // Stops the source (a Readable is destroyed) when the send ended before it did. Not
    // awaited: a source still working on a chunk nobody will take must not hold the send.
    reading.return?.().catch(() => undefined);
  }
}

/**
 * Sends `first` and every chunk after it as body frames, hashing them, then the size and hash;
 * resolves with the receiver's verdict. A `failed` that arrives early stops the sending at once.
 */
async function streamBody(
  connection: SenderConnection,
  first: Buffer | undefined,
  chunks: AsyncIterator<Buffer>,
  { result, bandwidth }: { result: FileResult; bandwidth: BandwidthLimit | undefined },
  options: SendOptions,
  emit: (event: SendEvent) => void,
): Promise<Outcome> {
  const { name } = result;
  const hasher = await createHasher();
  const outcome = connection.startBody({ type: 'body', id: 1, offset: 0, length: first?.length ?? 0 });
  // An early `failed`, or the connection's end, stops the sending at once, even while the source is slow.
  let told: Outcome | undefined;
  const settled: Promise<typeof STOP> = outcome.then(
    (answer) => ((told = answer), STOP),
    () => STOP,
  );
  emit({ type: 'started', path: STREAM_PATH, name, size: null, offset: 0 });
  let lastProgress = performance.now();
  const progress = (force: boolean) => {
    const now = performance.now();
    if (!force && now - lastProgress < PROGRESS_INTERVAL_MS) return;
    lastProgress = now;
    const event = { path: STREAM_PATH, name, bytes: result.bytesSent, size: null };
    emit({ type: 'progress', ...event });
    options.onProgress?.(event);
  };
  for (let chunk = first; chunk !== undefined; ) {
    hasher.update(chunk);
    try {
      if (chunk !== first) connection.write({ type: 'body', id: 1, offset: result.bytesSent, length: chunk.length });
      await bandwidth?.take(chunk.length, options.signal);
      // Waits while the receiver is slower than the producer: the source is read no faster (backpressure).
      await connection.writeRaw(chunk);
    } catch (error) {
      // The receiver said why the stream failed, then closed (it reads only so much of a failed stream): that is the news.
      if (told) return told;
      throw error;
    }
    result.bytesSent += chunk.length;
    progress(false);
    const next = await Promise.race([nextChunk(chunks, result), settled]);
    if (next === STOP) return outcome;
    chunk = next;
  }
  progress(true);
  result.size = result.bytesSent;
  result.hash = hasher.digest();
  connection.write({ type: 'hash', id: 1, hash: result.hash, size: result.size });
  return outcome;
}

/** The next chunk, or undefined at the end; a source that fails is STREAM_INTERRUPTED. */
async function nextChunk(chunks: AsyncIterator<Buffer>, result: FileResult): Promise<Buffer | undefined> {
  let next: IteratorResult<Buffer>;
  try {
    next = await chunks.next();
  } catch (error) {
    if (error instanceof FtError && error.code === 'ABORTED') throw error;
    throw new FtError('STREAM_INTERRUPTED', `reading ${escapeForDisplay(result.name)} failed after ${result.bytesSent} bytes: ${(error as Error)?.message ?? String(error)}`, {}, { cause: error });
  }
  return next.done ? undefined : next.value;
}

/**
 * Small chunks are gathered into frames of at least this many bytes (or what came within
 * GATHER_MS): a receiver bounds a stream's frames by its bytes (PROTOCOL.md §9.4).
 */
const GATHER_BYTES = 64 * 1024;
const GATHER_MS = 1000;
const FLUSH = Symbol('flush');

/**
 * The source's chunks as Buffers of 1 to `frameBytes` bytes, small ones gathered up to
 * GATHER_BYTES (or GATHER_MS after the first of them); an abort ends the wait for the next one.
 */
async function* framed(iterator: AsyncIterator<Uint8Array | string>, frameBytes: number, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
  const aborted = new Promise<never>((_, reject) => {
    const stop = () => reject(new FtError('ABORTED', 'send was cancelled'));
    if (signal?.aborted) stop();
    signal?.addEventListener('abort', stop, { once: true });
  });
  aborted.catch(() => undefined);
  const gather = Math.min(GATHER_BYTES, frameBytes);
  let held: Buffer[] = [];
  let heldBytes = 0;
  let flushAt = 0;
  const release = () => {
    const out = held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes);
    held = [];
    heldBytes = 0;
    return out;
  };
  let pending: Promise<IteratorResult<Uint8Array | string>> | undefined;
  for (;;) {
    pending ??= iterator.next();
    let timer: NodeJS.Timeout | undefined;
    const due = heldBytes === 0 ? [] : [new Promise<typeof FLUSH>((resolve) => (timer = setTimeout(resolve, Math.max(0, flushAt - Date.now()), FLUSH)))];
    const next = await Promise.race([pending, aborted, ...due]).finally(() => clearTimeout(timer));
    if (next === FLUSH) {
      yield release(); // the source is slow: what it gave goes now, and its pending read is kept
      continue;
    }
    pending = undefined;
    if (next.done) {
      if (heldBytes > 0) yield release();
      return;
    }
    const value = next.value;
    let bytes = typeof value === 'string' ? Buffer.from(value) : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    if (bytes.length === 0) continue;
    if (heldBytes > 0) {
      held.push(Buffer.from(bytes)); // copied: a source may reuse its buffer for the next chunk
      heldBytes += bytes.length;
      if (heldBytes < gather) continue;
      bytes = release();
    }
    let at = 0;
    for (; bytes.length - at >= gather; at += frameBytes) yield bytes.subarray(at, Math.min(at + frameBytes, bytes.length));
    if (at < bytes.length) {
      held = [Buffer.from(bytes.subarray(at))];
      heldBytes = held[0]!.length;
      flushAt = Date.now() + GATHER_MS;
    }
  }
}

function settleFailure(result: FileResult, status: 'refused' | 'failed', error: FtError, emit: (event: SendEvent) => void): void {
  Object.assign(result, { status, code: error.code, message: error.message });
  emit({ type: status, path: STREAM_PATH, name: result.name, code: error.code, message: error.message });
}

/**
 * Why the send ended early. Once the stream's bytes began to be read, a lost connection cannot
 * be made good (they cannot be read again): STREAM_INTERRUPTED, the job has to run again.
 */
function interrupted(error: unknown, result: FileResult, signal: AbortSignal | undefined): FtError {
  // `stream`: whoever reports it must not promise a resume.
  if (signal?.aborted) return new FtError('ABORTED', 'send was cancelled', { stream: true });
  const failure = toFtError(error);
  if (!['CONNECTION_LOST', 'TIMEOUT', 'STREAM_INTERRUPTED'].includes(failure.code)) return failure;
  const message =
    failure.code === 'STREAM_INTERRUPTED'
      ? failure.message
      : `the stream ${escapeForDisplay(result.name)} was cut off after ${result.bytesSent} bytes (${failure.message}); a stream cannot resume: run the job again`;
  Object.assign(result, { status: 'failed', code: 'STREAM_INTERRUPTED', message });
  return new FtError('STREAM_INTERRUPTED', message, { results: [result] }, { cause: failure });
}

/** A connection to the first of the receiver's addresses that can be reached (each checked for its key); the last failure when none can. */
async function openFirstReachable(options: SendOptions, identity: Awaited<ReturnType<typeof senderIdentity>>) {
  const endpoints = endpointsOf(options);
  for (let i = 0; ; i++) {
    const at = endpoints[i]!;
    try {
      return { connection: await SenderConnection.open(connectOptions(options, identity, at)), ...at };
    } catch (error) {
      // Only an address that cannot be reached is passed over: a key refused stops here.
      if (i === endpoints.length - 1 || !(error instanceof FtError) || error.code !== 'CONNECT_FAILED' || options.signal?.aborted) throw error;
    }
  }
}
