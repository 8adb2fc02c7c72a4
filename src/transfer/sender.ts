/**
 * Sending files to a receiver.
 *
 *  1. Expand the paths and hash the small files (their headers announce size and hash up front);
 *     a large file's hash comes from the hash cache or is computed while its body is sent and
 *     follows the body, so a first send reads it once.
 *  2. Connect, read the receiver's `hello`, answer with ours (and the token proof if asked).
 *  3. Send headers up to PIPELINE_DEPTH ahead of the bodies; for each answer in order:
 *     `skip` → already there; `refuse` → reported; `need-hash` → hash the file now and send
 *     the header again (a file of that size already has the name, perhaps this very one);
 *     `accept` → if it offers an offset, compare its
 *     prefixHash with our own first `offset` bytes, then stream the body from that offset
 *     (or from 0 when the prefix differs). A `done` confirms the file, `failed` reports why.
 *  4. `bye`, and close. A lost connection is retried with growing back-off; the receiver's
 *     partials make each retry a resume.
 */
import type { Stats } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { FtError, toFtError, type ErrorCode } from '../errors.js';
import { nodeFileSystem, READ_BLOCK_BYTES, type FileHandle, type FileSystem } from '../storage/file-system.js';
import { createHasher, type Hasher } from '../hashing.js';
import { escapeForDisplay, parseSafeName } from '../names/safe-name.js';
import { DEFAULT_PORT, type FileHeader } from '../wire/messages.js';
import { PROGRESS_INTERVAL_MS, type SendEvent } from './events.js';
import { HashCache } from './hash-cache.js';
import { collectFiles, hashLocalFile, hashLocalFiles, hashLocalPrefix, localFileError, type HashOptions, type LocalFile } from './local-files.js';
import { SenderConnection, type Outcome } from './sender-connection.js';

export interface SendOptions {
  /** Receiver host name or address. */
  host: string;
  /** @default 9527 */
  port?: number;
  /** Cancels the transfer; what the receiver got so far stays resumable. */
  signal?: AbortSignal;
  /** Every event, in order (started, progress, verified, skipped, …). */
  onEvent?: (event: SendEvent) => void;
  /** Progress only, at most 4 times a second per file. */
  onProgress?: (progress: { path: string; name: string; bytes: number; size: number }) => void;
  /** Reconnect attempts after a lost connection. @default 5 */
  retries?: number;
  /** First back-off delay in ms; it doubles each attempt, up to 10 s. @default 500 */
  retryDelayMs?: number;
  /** Shared secret, when the receiver requires one. */
  token?: string;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** Give up on a receiver that neither reads nor answers for this long, in ms. @default 60000 */
  idleTimeoutMs?: number;
  /**
   * A file of hashes of large files from earlier runs (see defaultHashCachePath()), so re-sends
   * and resumes do not read them twice. @default no cache
   */
  hashCache?: string;
  /** File system to read from. @default node:fs */
  fs?: FileSystem;
}

export type FileStatus = 'sent' | 'resumed' | 'skipped' | 'refused' | 'failed';

export interface FileResult {
  path: string;
  name: string;
  size: number;
  hash: string;
  status: FileStatus;
  /** Name the receiver stored it under (may differ when it kept both copies). */
  remotePath?: string;
  /** Bytes the receiver already held when the last body started. */
  resumedFrom?: number;
  /** Body bytes this run put on the wire for this file. */
  bytesSent: number;
  code?: ErrorCode;
  message?: string;
}

export interface SendReport {
  files: FileResult[];
  bytesSent: number;
  durationMs: number;
}

/** Headers sent ahead of their bodies, so many small files do not cost a round trip each. */
const PIPELINE_DEPTH = 32;
const MAX_RETRY_DELAY_MS = 10_000;
const MAX_BUSY_RETRIES = 10;
/** Small files' bytes kept in memory from hashing to sending, in all. */
const KEEP_CONTENT_BUDGET_BYTES = 32 * 1024 * 1024;
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['CONNECT_FAILED', 'CONNECTION_LOST', 'TIMEOUT', 'BUSY']);

interface Job {
  file: LocalFile;
  result: FileResult;
  /** Resolves once the file is hashed (or failed to be); `isHashed` says the same synchronously. */
  ready: Promise<void>;
  hashed: () => void;
  isHashed: boolean;
  /** Times the receiver found our content wrong; once is retried after re-hashing. */
  mismatches: number;
  busyRetries: number;
  finished: boolean;
}

export async function send(paths: string[], options: SendOptions): Promise<SendReport> {
  const started = Date.now();
  const fs = options.fs ?? nodeFileSystem;
  const emit = options.onEvent ?? (() => undefined);
  if (paths.length === 0) throw new FtError('USAGE', 'nothing to send: give at least one file or folder');

  const { files, problems } = collectFiles(paths, fs);
  emit({ type: 'collected', files: files.length + problems.length, bytes: files.reduce((sum, file) => sum + file.size, 0) });
  // A path that cannot be sent is a job that fails at once, so it is reported like any other file.
  const failedPaths = problems.map(({ path, name, error }) => ({ file: { path, name, size: 0, mtimeMs: 0, hash: '' }, error }));
  const jobs: Job[] = [...files, ...failedPaths.map((p) => p.file)].map((file) => {
    let hashed!: () => void;
    const ready = new Promise<void>((resolve) => (hashed = resolve));
    const result: FileResult = { path: file.path, name: file.name, size: file.size, hash: '', status: 'failed', bytesSent: 0 };
    return { file, result, mismatches: 0, busyRetries: 0, finished: false, isHashed: false, ready, hashed };
  });
  for (const [i, { error }] of failedPaths.entries()) finish(jobs[files.length + i]!, 'failed', error, emit);
  for (const job of jobs) {
    if (job.finished) continue;
    // A name the receiver is bound to refuse (a backslash, a trailing dot…) is refused here, without a round trip.
    try {
      parseSafeName(job.file.name);
    } catch (error) {
      finish(job, 'refused', error as FtError, emit);
    }
  }
  // Hashing runs ahead of the transfer: the first header goes out as soon as its file is hashed.
  const cache = options.hashCache ? await HashCache.load(options.hashCache) : undefined;
  const io: LocalIo = { fs, cache, hashing: new Set() };
  const byFile = new Map(jobs.map((job) => [job.file, job]));
  const hashing = hashLocalFiles(
    jobs.filter((job) => !job.finished).map((job) => job.file),
    fs,
    {
      signal: options.signal,
      cache,
      defer: true,
      keepBudget: KEEP_CONTENT_BUDGET_BYTES,
      onHashed: (file, error) => hashed(byFile.get(file)!, error, options.signal, emit),
    },
  );
  for (const job of jobs) if (job.finished) job.hashed();
  // Saved as soon as hashing ends, so even a sender killed mid-transfer resumes without re-reading.
  const hashingDone = hashing.then(() => cache?.save());
  try {
    const report = await transferAll(jobs, options, io, emit, started);
    // Cancelled while every file was still being hashed: nothing was sent, and that is no success.
    if (options.signal?.aborted) throw new FtError('ABORTED', 'send was cancelled');
    return report;
  } finally {
    // Abort stops the hashing workers too; let them wind down before returning.
    await hashingDone.catch(() => undefined);
    await Promise.all(io.hashing);
    // Hashes computed while sending, for the next run.
    await cache?.save();
  }
}

/** Records the end of a job's hashing, successful or not, and lets whoever waits for it go on. */
function hashed(job: Job, error: unknown, signal: AbortSignal | undefined, emit: (event: SendEvent) => void): void {
  const ftError = error === undefined ? undefined : localFileError(job.file.path, error);
  if (ftError && (ftError.code === 'ABORTED' || signal?.aborted)) {
    // The whole send is ending: no event per file.
    Object.assign(job.result, { code: 'ABORTED', message: ftError.message });
    job.finished = true;
  } else if (ftError) {
    finish(job, 'failed', ftError, emit);
  } else {
    Object.assign(job.result, { size: job.file.size, hash: job.file.hash });
  }
  job.isHashed = true;
  job.hashed();
}

/**
 * Hashes a job's file again in the background (the receiver asked for its hash, or found it
 * wrong); the job waits in the queue meanwhile, and send() waits for the hashing before it ends.
 */
function hashAgain(job: Job, io: LocalIo, options: HashOptions, emit: (event: SendEvent) => void): void {
  job.isHashed = false;
  job.ready = new Promise<void>((resolve) => (job.hashed = resolve));
  const hashing = hashLocalFile(job.file, io.fs, options).then(
    () => hashed(job, undefined, options.signal, emit),
    (error: unknown) => hashed(job, error, options.signal, emit),
  );
  io.hashing.add(hashing);
  void hashing.finally(() => io.hashing.delete(hashing));
}

/** A read of our own file failed: that file fails, the others go on. */
function unreadable(file: LocalFile, error: unknown): FtError {
  return localFileError(file.path, error);
}

/** Marks a job as ended without a transfer (refused locally, unreadable, changed). */
function finish(job: Job, status: 'refused' | 'failed', error: FtError, emit: (event: SendEvent) => void): void {
  const { code, message } = error;
  Object.assign(job.result, { status, code, message });
  job.finished = true;
  job.file.content = undefined;
  emit({ type: status, path: job.file.path, name: job.file.name, code, message });
}

/** Where the sender reads from, the hashes it remembers, and the hashing still running. */
interface LocalIo {
  fs: FileSystem;
  cache: HashCache | undefined;
  hashing: Set<Promise<void>>;
}

/** Connections, one after another, until every job is finished or retries run out. */
async function transferAll(
  jobs: Job[],
  options: SendOptions,
  io: LocalIo,
  emit: (event: SendEvent) => void,
  started: number,
): Promise<SendReport> {
  const retries = options.retries ?? 5;
  let attempt = 0;
  let everConnected = false;
  for (;;) {
    const todo = jobs.filter((job) => !job.finished);
    if (todo.length === 0) break;
    const progressBefore = progressMark(jobs);
    try {
      await transferBatch(todo, options, io, emit, attempt, () => (everConnected = true));
      // Back here early when one file failed mid-body (the connection was dropped on purpose).
      if (progressMark(jobs) !== progressBefore) attempt = 0;
      continue;
    } catch (error) {
      const ftError = abortAware(error, options.signal);
      if (progressMark(jobs) !== progressBefore) attempt = 0;
      // A receiver that never answered is more likely a wrong address than a restart: fail fast.
      const retryable = RETRYABLE.has(ftError.code) && (everConnected || ftError.code !== 'CONNECT_FAILED');
      if (!retryable || attempt >= retries) {
        throw Object.assign(ftError, { details: { ...ftError.details, results: jobs.map((j) => j.result) } });
      }
      const delayMs = Math.min((options.retryDelayMs ?? 500) * 2 ** attempt, MAX_RETRY_DELAY_MS);
      attempt += 1;
      emit({ type: 'retrying', attempt, delayMs, code: ftError.code, message: ftError.message });
      await sleep(delayMs, undefined, { signal: options.signal }).catch(() => {
        throw new FtError('ABORTED', 'send was cancelled');
      });
    }
  }
  const results = jobs.map((job) => job.result);
  return { files: results, bytesSent: results.reduce((sum, r) => sum + r.bytesSent, 0), durationMs: Date.now() - started };
}

function progressMark(jobs: Job[]): number {
  return jobs.reduce((sum, job) => sum + job.result.bytesSent + (job.finished ? 1 : 0), 0);
}

function abortAware(error: unknown, signal: AbortSignal | undefined): FtError {
  if (signal?.aborted) return new FtError('ABORTED', 'send was cancelled');
  return toFtError(error);
}

/** One connection's worth of work: returns when every job is finished, throws when the connection fails. */
async function transferBatch(
  todo: Job[],
  options: SendOptions,
  io: LocalIo,
  emit: (event: SendEvent) => void,
  attempt: number,
  onConnected: () => void,
): Promise<void> {
  const { fs } = io;
  const port = options.port ?? DEFAULT_PORT;
  // No connection sits idle while the first (perhaps huge) file is hashed.
  await todo[0]?.ready;
  if (todo.every((job) => job.finished)) return;
  const connection = await SenderConnection.open({
    host: options.host,
    port,
    token: options.token,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    signal: options.signal,
  });
  onConnected();
  emit({ type: 'connected', host: options.host, port, attempt });
  let nextId = 1;
  const queue = [...todo];
  const inFlight: Array<{ job: Job; id: number; withHash: boolean; decision: ReturnType<SenderConnection['sendHeader']> }> = [];
  const outcomes: Promise<void>[] = [];
  const sendHeaders = () => {
    while (queue.length > 0 && inFlight.length < PIPELINE_DEPTH && (queue[0]!.isHashed || queue[0]!.finished)) {
      const job = queue.shift()!;
      if (job.finished) continue;
      const { name: filename, size, hash } = job.file;
      const id = nextId++;
      // No hash yet: it follows the body.
      const header: FileHeader = hash ? { type: 'file', id, filename, size, hash } : { type: 'file', id, filename, size };
      inFlight.push({ job, id, withHash: header.hash !== undefined, decision: connection.sendHeader(header) });
    }
  };
  try {
    for (;;) {
      sendHeaders();
      if (inFlight.length === 0) {
        if (queue.length > 0) {
          await queue[0]!.ready;
          continue;
        }
        // Verdicts still to come may put a job back in the queue (a hash mismatch is retried once).
        await Promise.all(outcomes.splice(0));
        if (queue.length > 0) continue;
        break;
      }
      const { job, id, withHash, decision: pendingDecision } = inFlight.shift()!;
      const decision = await pendingDecision;
      const { file, result } = job;
      if (decision.type === 'skip') {
        Object.assign(result, { status: 'skipped', remotePath: decision.path });
        file.content = undefined;
        job.finished = true;
        emit({ type: 'skipped', path: file.path, name: file.name, remotePath: decision.path });
      } else if (decision.type === 'refuse') {
        if (decision.code === 'BUSY' && job.busyRetries < MAX_BUSY_RETRIES) {
          // Another connection holds the same content (perhaps our own previous one, until the
          // receiver notices it is gone): ask again, waiting longer each time (about 75 s in all).
          await sleep(Math.min(1000 * 2 ** job.busyRetries++, MAX_RETRY_DELAY_MS), undefined, { signal: options.signal });
          queue.push(job);
        } else {
          finish(job, 'refused', new FtError(decision.code, decision.message), emit);
        }
      } else if (decision.type === 'need-hash') {
        if (withHash) throw new FtError('BAD_MESSAGE', `receiver asked for the hash of ${file.name}, which its header carried`);
        // A file of this size already has the name: only the hash can tell whether it is this one.
        hashAgain(job, io, { cache: io.cache, signal: options.signal }, emit);
        queue.push(job);
      } else {
        if (decision.offset > file.size) throw new FtError('BAD_MESSAGE', `receiver offered offset ${decision.offset} past the end of ${file.name}`);
        let offset = decision.offset;
        let hasher: Hasher | undefined;
        try {
          hasher = offset > 0 ? await hashLocalPrefix(file, offset, fs, options.signal) : undefined;
        } catch (error) {
          if (options.signal?.aborted || error instanceof FtError) throw error;
          // Accepted, but we cannot read it: take it back, and go on with the others.
          connection.cancel(id);
          finish(job, 'failed', unreadable(file, error), emit);
          continue;
        }
        if (hasher && hasher.digest() !== decision.prefixHash) {
          emit({ type: 'restarted', path: file.path, name: file.name, discarded: offset, reason: 'receiver partial differs from this file' });
          offset = 0;
          hasher = undefined;
        }
        // A header without a hash: hash the bytes as they go (after the prefix), and send the result after them.
        if (!file.hash) hasher ??= await createHasher();
        else hasher = undefined;
        const outcome = connection.startBody({ type: 'body', id, offset, length: file.size - offset });
        emit({ type: 'started', path: file.path, name: file.name, size: file.size, offset });
        result.resumedFrom = offset;
        try {
          await streamBody(connection, { job, id, offset, hasher }, io, options, emit);
        } catch (error) {
          if (!(error instanceof FtError) || (error.code !== 'FILE_CHANGED' && error.code !== 'LOCAL_FILE')) throw error;
          // The body promised bytes we do not have (or its hash would confirm a torn copy): this
          // file fails, and the others go on over a new connection, which costs no retry.
          finish(job, 'failed', error, emit);
          connection.close();
          return;
        }
        const settled = outcome.then((o) => settle(job, offset, o, queue, io, options.signal, emit));
        settled.catch(() => undefined); // awaited below; a connection failure must not go unhandled meanwhile
        outcomes.push(settled);
      }
    }
    await connection.finish();
  } catch (error) {
    connection.close();
    throw error;
  }
}

/** Applies the receiver's verdict on one body. */
function settle(job: Job, offset: number, outcome: Outcome, queue: Job[], io: LocalIo, signal: AbortSignal | undefined, emit: (event: SendEvent) => void): void {
  const { file, result } = job;
  file.content = undefined;
  if (outcome.type === 'done') {
    Object.assign(result, { status: offset > 0 ? 'resumed' : 'sent', hash: outcome.hash, remotePath: outcome.path, code: undefined, message: undefined });
    job.finished = true;
    emit({ type: 'verified', path: file.path, name: file.name, size: file.size, hash: outcome.hash, remotePath: outcome.path, resumedFrom: offset });
    return;
  }
  if (outcome.code === 'HASH_MISMATCH' && job.mismatches++ === 0) {
    // Our file may have changed after hashing: hash it again (never from the cache) and send it once more from the start.
    hashAgain(job, io, { keep: true, signal }, emit);
    queue.push(job);
    return;
  }
  finish(job, 'failed', new FtError(outcome.code, outcome.message), emit);
}

/** One body to send: from `offset`, hashed on the way when the header had no hash. */
interface BodyPlan {
  job: Job;
  id: number;
  offset: number;
  hasher: Hasher | undefined;
}

/**
 * Streams [offset, size) of the file: from memory when its bytes were kept from hashing,
 * otherwise reading the next block while the previous one is sent. A body whose header had no
 * hash is followed by its hash, once the file is known not to have changed meanwhile.
 */
async function streamBody(
  connection: SenderConnection,
  { job, id, offset, hasher }: BodyPlan,
  io: LocalIo,
  options: SendOptions,
  emit: (event: SendEvent) => void,
): Promise<void> {
  const { file, result } = job;
  let lastProgress = Date.now();
  const sent = (block: Buffer, position: number) => {
    result.bytesSent += block.length;
    const now = Date.now();
    if (now - lastProgress < PROGRESS_INTERVAL_MS && position < file.size) return;
    lastProgress = now;
    const progress = { path: file.path, name: file.name, bytes: position, size: file.size };
    emit({ type: 'progress', ...progress });
    options.onProgress?.(progress);
  };
  if (file.content) {
    const block = file.content.subarray(offset);
    await connection.writeRaw(block);
    return sent(block, file.size);
  }
  const handle = await io.fs.open(file.path, 'r').catch((error: unknown) => {
    throw unreadable(file, error);
  });
  let next: Promise<Buffer> | undefined;
  try {
    let position = offset;
    next = position < file.size ? readBlock(handle, position, file.size - position) : undefined;
    while (next) {
      const block = await next.catch((error: unknown) => {
        throw unreadable(file, error);
      });
      if (block.length === 0) {
        connection.close();
        throw new FtError('FILE_CHANGED', `${file.path} shrank while it was being sent; run the command again`);
      }
      position += block.length;
      next = position < file.size ? readBlock(handle, position, file.size - position) : undefined;
      hasher?.update(block);
      await connection.writeRaw(block);
      sent(block, position);
    }
    if (file.size === offset) sent(Buffer.alloc(0), file.size);
    if (hasher) sendBodyHash(connection, id, file, await handle.stat().catch((error: unknown) => Promise.reject(unreadable(file, error))), hasher, io.cache);
  } finally {
    await next?.catch(() => undefined);
    await handle.close();
  }
}

/**
 * The hash of what was sent describes the file only if nothing wrote to it meanwhile; a file
 * that changed is dropped (closing the connection), so the receiver never keeps a torn copy.
 */
function sendBodyHash(connection: SenderConnection, id: number, file: LocalFile, now: Stats, hasher: Hasher, cache: HashCache | undefined): void {
  const before = file.identity;
  const same = before && now.dev === before.dev && now.ino === before.ino && now.size === before.size && now.mtimeMs === before.mtimeMs && now.ctimeMs === before.ctimeMs;
  if (!same) {
    connection.close();
    throw new FtError('FILE_CHANGED', `${escapeForDisplay(file.path)} changed while it was being sent; run the command again`);
  }
  file.hash = hasher.digest();
  cache?.set(before, file.hash);
  connection.write({ type: 'hash', id, hash: file.hash });
}

async function readBlock(handle: FileHandle, position: number, remaining: number): Promise<Buffer> {
  // A fresh buffer per block: the socket keeps a reference until the bytes are sent.
  const block = Buffer.allocUnsafe(Math.min(READ_BLOCK_BYTES, remaining));
  const { bytesRead } = await handle.read(block, 0, block.length, position);
  return block.subarray(0, bytesRead);
}
