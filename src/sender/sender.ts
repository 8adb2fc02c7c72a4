/**
 * Sending files to a receiver.
 *
 *  1. Expand the paths and hash the small files (their headers announce size and hash up front);
 *     a large file's hash comes from the hash cache or is computed while its body is sent and
 *     follows the body, so a first send reads it once.
 *  2. Connect, read the receiver's `hello`, answer with ours: our owner key and its signature
 *     over the receiver's nonce (and the token proof if asked).
 *  3. Send headers up to PIPELINE_DEPTH ahead of the bodies, with the receipt of an earlier
 *     upload of the same file, unchanged since, when we hold one; for each answer in order:
 *     `skip` → already there (the receipt held); `refuse` → reported (`BUSY`: set aside
 *     and asked again after a back-off, while the others go on); `accept` → if it offers
 *     an offset, compare its prefixHash with our own first `offset` bytes, then stream the
 *     body from that offset (or from 0 when the prefix differs). A `done` confirms the file
 *     (and brings a receipt, kept for the next send), `failed` reports why.
 *  4. `bye`, and close. A lost connection is retried with growing back-off; the receiver's
 *     partials, private to our owner key, make each retry a resume. After
 *     MAX_FILES_PER_CONNECTION headers, the connection is finished the same way and the rest
 *     goes over a new one.
 */
import { FtError, toFtError, type ErrorCode } from '../errors.js';
import { nodeFileSystem, type FileSystem } from '../file-system.js';
import { createHasher, type Hasher } from '../hashing.js';
import { backoffDelay, waitFor, type Backoff } from '../retry.js';
import type { Connector } from '../transport/connector.js';
import { collisionKey, escapeForDisplay, parseSafeName } from '../names/safe-name.js';
import { formatMtime, MAX_FILES_PER_CONNECTION, MAX_FOLDERS_PER_CONNECTION, MTIME_PATTERN, type FileHeader } from '../wire/messages.js';
import { PROGRESS_INTERVAL_MS, type SendEvent } from '../ingest/events.js';
import { HashCache, type ReceiverId, type StoredReceipt } from './hash-cache.js';
import { collectFiles, hashLocalFiles, KeepBudget, localFileError } from './local-files.js';
import { FileSource } from './file-source.js';
import { FolderSource, type Source } from './source.js';
import type { OwnerKey } from '../auth/owner-key.js';
import { SenderConnection, type Decision, type FolderDecision, type Outcome } from './connection.js';
import type { ReceiverTrust, TrustPolicy } from './receiver-trust.js';
import { bandwidthOf, connectOptions, endpointsOf, limitedSlice, senderIdentity, type Endpoint } from './send-setup.js';
import { sendStream, type StreamSource } from './stream-send.js';
import { validateSendOptions } from '../options.js';
import { SEND_DEFAULTS } from '../defaults.js';
import { BandwidthLimit } from '../bandwidth-limit.js';

export interface SendOptions {
  /** Receiver host name or address. */
  host: string;
  /** @default 9527 */
  port?: number;
  /**
   * Other addresses of the same receiver: instances sharing its identity (one key) and its
   * store, as discovery lists them (`ResolvedReceiver.fallbacks`). When `host`:`port` cannot be
   * reached, or the connection is lost, the next one is tried at once, and the send resumes
   * there (the store has what the last one received); after each round, `retries` and its
   * back-off apply as for one address. Every one must present the key the first connection
   * did (RECEIVER_KEY_CHANGED otherwise: the send stops, it does not skip ahead).
   * A port left out is `port`'s. @default none: `host`:`port` only
   */
  fallbacks?: ReadonlyArray<{ host: string; port?: number }>;
  /** Cancels the transfer; what the receiver got so far stays resumable. */
  signal?: AbortSignal;
  /** Every event, in order (started, progress, verified, skipped, …). */
  onEvent?: (event: SendEvent) => void;
  /** Progress only, at most 4 times a second per file; `size` is null for a stream (unknown until it ends). */
  onProgress?: (progress: { path: string; name: string; bytes: number; size: number | null }) => void;
  /** Reconnect attempts after a lost connection. @default 5 */
  retries?: number;
  /**
   * First back-off delay in ms; it doubles each attempt, up to 10 s. Each delay is lengthened
   * by up to as much again, at random (still at most 10 s), so senders do not come back in step.
   * @default 500
   */
  retryDelayMs?: number;
  /** Shared secret, when the receiver requires one. */
  token?: string;
  /** @default 10000 */
  connectTimeoutMs?: number;
  /** Give up on a receiver that neither reads nor answers for this long, in ms. @default 60000 */
  idleTimeoutMs?: number;
  /**
   * A file (see defaultHashCachePath()) where the sender keeps, from one run to the next, the
   * hashes of large files, so re-sends and resumes do not read them twice, and the receivers'
   * upload receipts, so a file sent before and unchanged since is answered "already there"
   * without being sent again. @default none: every run hashes anew, and a re-send is uploaded
   * again (the receiver then finds it identical to the stored file and keeps one copy)
   */
  hashCache?: string;
  /**
   * Follow symbolic links found inside folders. By default they are left out (an `ignored`
   * event each), so that whoever can write into a folder cannot make its send ship other
   * files; paths given to send() are always followed. @default false
   */
  followSymlinks?: boolean;
  /**
   * Bytes of small files' content kept in memory from hashing until sent, in all; hashing waits
   * for room as files are sent, so each file is read once. @default 32 MiB
   */
  keepContentBytes?: number;
  /**
   * The owner key file (see defaultSenderKeyPath()), created owner-only on first use. The
   * receiver keeps a partial upload private to the key that started it and issues receipts
   * to it, so resume after a restart of the sender, and "already there", need the same key.
   * @default a new key for each send() call: resume then works across reconnections within
   * the call, but not across runs. Backup scripts should pass defaultSenderKeyPath().
   */
  senderKeyFile?: string;
  /** File system to read from. @default node:fs */
  fs?: FileSystem;
  /**
   * Send each file's permission bits too (`--preserve-mode`): the receiver gives the file those
   * of them it allows (read, write and execute, less its umask; never set-user-id, set-group-id
   * or sticky). The modification time is always sent. @default false: the receiver's own mode
   */
  preserveMode?: boolean;
  /**
   * The receiver's fingerprint, as `ft serve` printed it (short or full form): its key must be
   * this one, or nothing is sent (RECEIVER_KEY_CHANGED). The surest way for a script.
   */
  fingerprint?: string;
  /**
   * First contact with a receiver whose key nothing vouches for (no `fingerprint`, no pin in
   * `trustFile`): 'pinned' refuses it (RECEIVER_UNKNOWN) unless a `token` is given, whose
   * mutual proofs then settle it; 'new' trusts it (and pins it); a function is asked. Whatever
   * is chosen, every connection of one send must present the key the first one did.
   * @default 'pinned'
   */
  trust?: TrustPolicy;
  /**
   * A file (see defaultTrustStorePath()) of pinned receivers, as `ft send` keeps: a receiver
   * met before must present the same key, and each verified one is pinned there.
   * @default none: nothing is pinned beyond this call
   */
  trustFile?: string;
  /**
   * What discovery found: the receiver name asked for (`--to NAME`), which pins are looked up
   * and made under, and the key its beacon announced, which the receiver must present.
   */
  discovered?: { name?: string; fingerprint?: string };
  /**
   * No TLS: the files, their names and everything else cross the network readable and
   * changeable by anyone on it, and the receiver is not authenticated. The receiver must run
   * in plaintext too. @default false
   */
  insecurePlaintext?: boolean;
  /**
   * Opens the byte stream to the receiver (a tunnel, a test's in-memory pipe…): given
   * `{ host, port }` and `{ signal, timeoutMs }`, resolves with a Duplex (plaintext) or a
   * Channel. @default TLS over TCP (plain TCP with insecurePlaintext)
   */
  connect?: Connector;
  /**
   * Bandwidth limit for the body bytes of this call, in bytes per second (at least 32 KiB/s,
   * twice the slowest body ft receivers accept by default), shared by all its files and connections;
   * or a BandwidthLimit, to share one limit between calls (and receivers). @default no limit
   */
  limitRate?: number | BandwidthLimit;
}

export type FileStatus = 'sent' | 'resumed' | 'skipped' | 'refused' | 'failed';

export interface FileResult {
  path: string;
  name: string;
  size: number;
  hash: string;
  status: FileStatus;
  /** An empty folder (no bytes): `sent` means it is there on the receiver. */
  folder?: boolean;
  /**
   * Name the receiver stored it under (may differ when it kept both copies). Only receivers
   * that required our token tell it: an open receiver's answer would tell anyone which names
   * are taken.
   */
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
  /** Entries inside folders that were not sent, such as symbolic links not followed. */
  ignored: Array<{ path: string; name: string; reason: string }>;
  bytesSent: number;
  durationMs: number;
}

/** Headers sent ahead of their bodies, so many small files do not cost a round trip each. */
const PIPELINE_DEPTH = 32;
const MAX_RETRY_DELAY_MS = 10_000;
/** A file refused BUSY is asked for again after this back-off, at most MAX_BUSY_RETRIES times (75–80 s in all). */
const BUSY_BACKOFF: Backoff = { baseMs: 1000, maxMs: MAX_RETRY_DELAY_MS };
const MAX_BUSY_RETRIES = 10;
const busyDelay = (retry: number) => backoffDelay(BUSY_BACKOFF, retry);
/** Small files' bytes kept in memory from hashing to sending, in all. */
const KEEP_CONTENT_BUDGET_BYTES = SEND_DEFAULTS.keepContentBytes;
const RETRYABLE: ReadonlySet<ErrorCode> = new Set(['CONNECT_FAILED', 'CONNECTION_LOST', 'TIMEOUT', 'BUSY']);

interface Job {
  /** What is sent; the transfer needs only the Source interface (files are hashed up front by local-files.ts). */
  file: Source;
  result: FileResult;
  /** Resolves once the file is hashed (or failed to be); `isHashed` says the same synchronously. */
  ready: Promise<void>;
  hashed: () => void;
  isHashed: boolean;
  /** Times the receiver found our content wrong; once is retried after re-hashing. */
  mismatches: number;
  busyRetries: number;
  /** A file refused BUSY is not asked for again before this (performance.now()). */
  notBefore: number;
  /** Hashed before its header goes out: the receiver does not take the hash after the body. */
  hashFirst: boolean;
  finished: boolean;
}

/** Knobs for tests, not part of the library's options. */
export interface SendLimits {
  maxFilesPerConnection: number;
  /** Folder headers per connection. @default MAX_FOLDERS_PER_CONNECTION */
  maxFoldersPerConnection?: number;
  /** The back-off before asking again for a file refused BUSY. @default BUSY_BACKOFF with jitter */
  busyDelayMs?: (retry: number) => number;
}

/** How long a receipt waits in memory before it is saved (a sender killed mid-batch keeps the rest). */
const RECEIPT_SAVE_DELAY_MS = 1000;

/**
 * Sends files and folders (paths), or one stream of unknown size as one file (`{ stream, name }`:
 * any Readable or async iterable of bytes; see stream-send.ts). A stream is sent alone.
 */
export async function send(sources: string[] | [StreamSource], options: SendOptions): Promise<SendReport> {
  validateSendOptions(sources, options);
  const [first] = sources;
  if (typeof first === 'object') return sendStream(first, options);
  return sendWithLimits(sources as string[], options, { maxFilesPerConnection: MAX_FILES_PER_CONNECTION });
}

export async function sendWithLimits(paths: string[], options: SendOptions, limits: SendLimits): Promise<SendReport> {
  validateSendOptions(paths, options);
  // Durations and rate limits use the monotonic clock: a wall-clock step must not change them.
  const started = performance.now();
  const fs = options.fs ?? nodeFileSystem;
  const emit = options.onEvent ?? (() => undefined);
  if (paths.length === 0) throw new FtError('USAGE', 'nothing to send: give at least one file or folder');
  const { keepContentBytes } = options;
  if (keepContentBytes !== undefined && !(Number.isSafeInteger(keepContentBytes) && keepContentBytes >= 0)) {
    throw new FtError('USAGE', `keepContentBytes must be a whole number of bytes, 0 or more (got ${String(keepContentBytes)})`);
  }

  const ignored: SendReport['ignored'] = [];
  const { files, folders, problems } = collectFiles(paths, fs, { followSymlinks: options.followSymlinks ?? SEND_DEFAULTS.followSymlinks, onIgnored: (entry) => ignored.push(entry) });
  for (const entry of ignored) emit({ type: 'ignored', ...entry });
  emit({ type: 'collected', files: files.length + folders.length + problems.length, bytes: files.reduce((sum, file) => sum + file.size, 0) });
  // A path that cannot be sent is a job that fails at once, so it is reported like any other file.
  const failedPaths = problems.map(({ path, name, error }) => ({ file: { path, name, size: 0, mtimeMs: 0, hash: '' }, error }));
  const sources: Source[] = [
    ...files.map((listed) => new FileSource(listed, fs)),
    ...folders.map((folder) => new FolderSource(folder.path, folder.name)),
    ...failedPaths.map((p) => new FileSource(p.file, fs)),
  ];
  const jobs: Job[] = sources.map((file) => {
    let hashed!: () => void;
    const ready = new Promise<void>((resolve) => (hashed = resolve));
    const result: FileResult = { path: file.path, name: file.name, size: file.size ?? 0, hash: '', status: 'failed', bytesSent: 0, ...(file.folder ? { folder: true } : {}) };
    return { file, result, mismatches: 0, busyRetries: 0, notBefore: 0, hashFirst: false, finished: false, isHashed: false, ready, hashed };
  });
  const firstFailed = files.length + folders.length;
  for (const [i, { error }] of failedPaths.entries()) finish(jobs[firstFailed + i]!, 'failed', error, emit);
  // Before any file is reported: a key we cannot use stops the whole send.
  const { ownerKey, trust } = await senderIdentity(options);
  refuseLocally(jobs, emit);
  // Hashing runs ahead of the transfer: the first header goes out as soon as its file is hashed.
  const cache = options.hashCache ? await HashCache.load(options.hashCache) : undefined;
  const budget = new KeepBudget(options.keepContentBytes ?? KEEP_CONTENT_BUDGET_BYTES);
  const io: LocalIo = { cache, budget, hashing: new Set(), ownerKey, trust, saveSoon: saver(cache), bandwidth: bandwidthOf(options) };
  const byFile = new Map<object, Job>(sources.map((source, i) => [source, jobs[i]!]));
  const hashing = hashLocalFiles(
    sources.filter((source, i) => !jobs[i]!.finished && !source.folder) as FileSource[],
    fs,
    {
      signal: options.signal,
      cache,
      defer: true,
      keepBudget: budget,
      onHashed: (file, error) => hashed(byFile.get(file)!, error, options.signal, emit),
    },
  );
  for (const job of jobs) if (job.finished) job.hashed();
  // A folder has nothing to hash: its header can go at once.
  for (const job of jobs) if (job.file.folder && !job.finished) hashed(job, undefined, options.signal, emit);
  // Saved as soon as hashing ends, so even a sender killed mid-transfer resumes without re-reading.
  const hashingDone = hashing.then(() => cache?.save());
  try {
    const report = { ...(await transferAll(jobs, options, io, limits, emit, started)), ignored };
    // Cancelled while every file was still being hashed: nothing was sent, and that is no success.
    if (options.signal?.aborted) throw new FtError('ABORTED', 'send was cancelled');
    return report;
  } finally {
    // Nothing more will be sent: hashing still waiting for room goes on without keeping.
    budget.close();
    // Abort stops the hashing workers too; let them wind down before returning.
    await hashingDone.catch(() => undefined);
    await Promise.all(io.hashing);
    // Hashes computed while sending, and receipts, for the next run.
    await io.saveSoon.flush();
  }
}

/**
 * Names refused without a round trip: one the receiver is bound to refuse (a backslash, a
 * trailing dot…), and the second of two names the same up to case or Unicode normalisation.
 * A receiver checks that only within one connection, and a batch may take several (it could
 * also store both on a case-sensitive disk, to the surprise of whoever copies them to one that
 * is not); the same name twice is no collision (the receiver keeps both under its policy).
 */
function refuseLocally(jobs: Job[], emit: (event: SendEvent) => void): void {
  const names = new Map<string, string>();
  for (const job of jobs) {
    if (job.finished) continue;
    const { name } = job.file;
    try {
      parseSafeName(name);
    } catch (error) {
      finish(job, 'refused', error as FtError, emit);
      continue;
    }
    const key = collisionKey(name);
    const earlier = names.get(key);
    if (earlier === undefined) names.set(key, name);
    else if (earlier !== name) {
      const message = `${escapeForDisplay(name)} and ${escapeForDisplay(earlier)}, also in this batch, differ only by case or Unicode normalisation`;
      finish(job, 'refused', new FtError('NAME_COLLISION', message), emit);
    }
  }
}

/** Saves the cache a little after a change (receipts come one by one), and once more at the end. */
interface Saver {
  (): void;
  flush(): Promise<void>;
}

function saver(cache: HashCache | undefined): Saver {
  let timer: NodeJS.Timeout | undefined;
  // A save parses and writes the whole file on this thread: with many receipts it takes a while,
  // so saves are spaced to at most a fifth of the time.
  let lastSaveMs = 0;
  const save = async () => {
    const started = performance.now();
    await cache?.save();
    lastSaveMs = performance.now() - started;
  };
  const soon = (() => {
    if (!cache || timer) return;
    timer = setTimeout(
      () => {
        timer = undefined;
        void save();
      },
      Math.max(RECEIPT_SAVE_DELAY_MS, 4 * lastSaveMs),
    );
    // A pending save must not keep a library user's process alive; flush() saves it anyway.
    timer.unref();
  }) as Saver;
  soon.flush = async () => {
    clearTimeout(timer);
    timer = undefined;
    await save();
  };
  return soon;
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
    Object.assign(job.result, { size: job.file.size ?? 0, hash: job.file.hash });
  }
  job.isHashed = true;
  job.hashed();
}

/**
 * Hashes a job's file (again) in the background, never from the cache: the receiver found its
 * hash wrong, or needs it in the header. The job waits in the queue meanwhile, and send() waits
 * for the hashing before it ends.
 */
function hashAgain(job: Job, io: LocalIo, signal: AbortSignal | undefined, emit: (event: SendEvent) => void): void {
  job.isHashed = false;
  job.ready = new Promise<void>((resolve) => (job.hashed = resolve));
  // Not kept (hashNow releases it): it may go to the back of the queue, and bytes held there
  // could starve the files before it of room while they wait for it (it is read again when sent).
  const hashing = job.file.hashNow(signal).then(
    () => {
      // Fresh, so it replaces any stale entry: the next run need not read the file again.
      if (job.file.identity && job.file.hash) io.cache?.set(job.file.identity, job.file.hash);
      hashed(job, undefined, signal, emit);
    },
    (error: unknown) => hashed(job, error, signal, emit),
  );
  io.hashing.add(hashing);
  void hashing.finally(() => io.hashing.delete(hashing));
}

/** A read of our own file failed: that file fails, the others go on. */
function unreadable(file: Source, error: unknown): FtError {
  return localFileError(file.path, error);
}

/** Marks a job as ended without a transfer (refused locally, unreadable, changed). */
function finish(job: Job, status: 'refused' | 'failed', error: FtError, emit: (event: SendEvent) => void): void {
  const { code, message } = error;
  Object.assign(job.result, { status, code, message });
  job.finished = true;
  job.file.release();
  emit({ type: status, path: job.file.path, name: job.file.name, code, message });
}

/** Where the sender reads from, the hashes it remembers, and the hashing still running. */
interface LocalIo {
  cache: HashCache | undefined;
  /** Small files' content kept from hashing to sending. */
  budget: KeepBudget;
  hashing: Set<Promise<void>>;
  /** Proves to the receiver that resumes and receipts are ours. */
  ownerKey: OwnerKey;
  trust: ReceiverTrust | undefined;
  /** Saves the cache soon: a receipt arrived. */
  saveSoon: Saver;
  /** limitRate: what every body byte waits for. */
  bandwidth: BandwidthLimit | undefined;
}

/** Connections, one after another, until every job is finished or retries run out. */
async function transferAll(
  jobs: Job[],
  options: SendOptions,
  io: LocalIo,
  limits: SendLimits,
  emit: (event: SendEvent) => void,
  started: number,
): Promise<Omit<SendReport, 'ignored'>> {
  const retries = options.retries ?? SEND_DEFAULTS.retries;
  // One receiver's addresses (instances sharing its key): the next is tried when one fails.
  const endpoints = endpointsOf(options);
  let at = 0;
  /** Other addresses still to try at once, before the back-off: a round of them after each progress, and after each back-off. */
  let spare = endpoints.length - 1;
  let attempt = 0;
  let everConnected = false;
  for (;;) {
    const todo = jobs.filter((job) => !job.finished);
    if (todo.length === 0) break;
    const progressBefore = progressMark(jobs);
    try {
      await transferBatch(todo, options, io, limits, emit, attempt, endpoints[at]!, () => (everConnected = true));
      // Back here early when one file failed mid-body (the connection was dropped on purpose),
      // or when the connection took as many headers as a receiver allows.
      if (progressMark(jobs) !== progressBefore) {
        attempt = 0;
        spare = endpoints.length - 1;
      }
      continue;
    } catch (error) {
      const ftError = abortAware(error, options.signal);
      if (progressMark(jobs) !== progressBefore) {
        attempt = 0;
        spare = endpoints.length - 1;
      }
      const fail = () => Object.assign(ftError, { details: { ...ftError.details, results: jobs.map((j) => j.result) } });
      if (!RETRYABLE.has(ftError.code)) throw fail();
      if (spare > 0) {
        // Another instance of the receiver: at once, not counted as a retry; it resumes what this one stored.
        spare -= 1;
        at = (at + 1) % endpoints.length;
        emit({ type: 'retrying', attempt, delayMs: 0, code: ftError.code, message: ftError.message, ...endpoints[at]!, switching: true });
        continue;
      }
      // A receiver that never answered (on any of its addresses) is more likely a wrong address than a restart: fail fast.
      if ((!everConnected && ftError.code === 'CONNECT_FAILED') || attempt >= retries) throw fail();
      const delayMs = backoffDelay({ baseMs: options.retryDelayMs ?? SEND_DEFAULTS.retryDelayMs, maxMs: MAX_RETRY_DELAY_MS }, attempt);
      attempt += 1;
      at = (at + 1) % endpoints.length;
      spare = endpoints.length - 1;
      emit({ type: 'retrying', attempt, delayMs, code: ftError.code, message: ftError.message, ...endpoints[at]!, switching: false });
      await waitFor(delayMs, options.signal);
    }
  }
  const results = jobs.map((job) => job.result);
  return { files: results, bytesSent: results.reduce((sum, r) => sum + r.bytesSent, 0), durationMs: Math.round(performance.now() - started) };
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
  limits: SendLimits,
  emit: (event: SendEvent) => void,
  attempt: number,
  at: Endpoint,
  onConnected: () => void,
): Promise<void> {
  const { host, port } = at;
  // Files refused BUSY wait out their back-off; when only they are left, the wait is here, unconnected.
  const earliest = todo.reduce((min, job) => Math.min(min, job.notBefore), Infinity);
  const waitMs = earliest - performance.now();
  if (waitMs > 0) await waitFor(waitMs, options.signal);
  const now = performance.now();
  const queue = todo.filter((job) => job.notBefore <= now);
  const delayed = todo.filter((job) => job.notBefore > now);
  // No connection sits idle while the first (perhaps huge) file is hashed.
  await queue[0]?.ready;
  if (todo.every((job) => job.finished)) return;
  const connection = await SenderConnection.open(connectOptions(options, io, at));
  onConnected();
  const { fingerprint, firstContact } = connection;
  emit({ type: 'connected', host, port, attempt, ...(fingerprint !== undefined && { fingerprint }), firstContact });
  // Receipts are kept for, and shown only to, the receiver that issued them.
  const receiver: ReceiverId = { name: connection.receiverName ?? '', host, port };
  // Without it, every header carries its hash: a file whose hash was left for after the body is hashed first.
  const trailingHash = connection.features.has('trailing-hash');
  // Times (and modes, when asked) go in the headers, and empty folders get their own.
  const metadata = connection.features.has('metadata');
  let nextId = 1;
  // Every header counts, re-sent ones too: the receiver counts them all.
  let headersLeft = limits.maxFilesPerConnection;
  // Empty folders cost the receiver inodes and no bytes: it takes a bounded number per connection.
  let foldersLeft = limits.maxFoldersPerConnection ?? MAX_FOLDERS_PER_CONNECTION;
  /** Whether the next header may go over this connection; if not, the rest go over a new one. */
  const room = () => headersLeft > 0 && !(queue[0]?.file.folder && foldersLeft === 0);
  /** Asked again after its back-off, on this connection if it is still open then, else on a later one. */
  const later = (job: Job) => {
    job.notBefore = performance.now() + (limits.busyDelayMs ?? busyDelay)(job.busyRetries++);
    // Its kept bytes must not hold up the files after it, which may wait for room.
    job.file.release();
    delayed.push(job);
  };
  const promoteDue = () => {
    const now = performance.now();
    for (let i = 0; i < delayed.length; ) {
      if (delayed[i]!.notBefore <= now) queue.push(...delayed.splice(i, 1));
      else i += 1;
    }
  };
  /** `size` is what the header announced: the body and its events hold to it. */
  const inFlight: Array<{ job: Job; id: number; size: number; stored: StoredReceipt | undefined; decision: Promise<Decision | FolderDecision> }> = [];
  const outcomes: Promise<void>[] = [];
  /**
   * Uploads (name and size) with a header out on this connection and no verdict yet. A second,
   * different file of the same name and size waits for the first: the receiver would take the
   * upload over from the first (a newer header of the same upload wins), not keep both.
   */
  const holding = new Set<string>();
  const uploadOf = (job: Job) => `${job.file.name}\0${job.file.size}`;
  const blocked = () => queue.length > 0 && holding.has(uploadOf(queue[0]!));
  const sendHeaders = () => {
    promoteDue();
    while (room() && queue.length > 0 && inFlight.length < PIPELINE_DEPTH && (queue[0]!.isHashed || queue[0]!.finished)) {
      const job = queue[0]!;
      if (job.finished) {
        queue.shift();
        continue;
      }
      const { file } = job;
      if (file.folder) {
        queue.shift();
        if (!metadata) {
          // As before the feature: the receiver gets the files, and an empty folder cannot go.
          const reason = 'empty folder, not sent: the receiver does not take folders (no "metadata" feature)';
          Object.assign(job.result, { status: 'skipped', message: reason });
          job.finished = true;
          emit({ type: 'ignored', path: file.path, name: file.name, reason });
          continue;
        }
        const id = nextId++;
        headersLeft -= 1;
        foldersLeft -= 1;
        inFlight.push({ job, id, size: 0, stored: undefined, decision: connection.sendFolder({ type: 'file', id, filename: file.name, folder: true }) });
        continue;
      }
      if (file.size === undefined) {
        // The interface allows it; streams go through stream-send.ts (feature `stream`), never here.
        queue.shift();
        finish(job, 'failed', new FtError('LOCAL_FILE', `${escapeForDisplay(file.path)}: its size is not known, and this receiver needs it up front`), emit);
        continue;
      }
      const stored = file.identity ? io.cache?.receiptFor(receiver, file.name, file.identity, file.hash || undefined) : undefined;
      // The receipt pins the hash of the file it was issued for, which is this one unchanged.
      if (stored && !file.hash) file.hash = job.result.hash = stored.hash;
      if (!file.hash && !trailingHash) {
        // It stays first, so the files keep their order.
        job.hashFirst = true;
        hashAgain(job, io, options.signal, emit);
        return;
      }
      if (holding.has(uploadOf(job))) return;
      queue.shift();
      const id = nextId++;
      const { size } = file;
      const header: FileHeader = { type: 'file', id, filename: file.name, size };
      // No hash yet: it follows the body.
      if (file.hash) header.hash = file.hash;
      if (stored) header.receipt = stored.receipt;
      const mtime = metadata && file.mtimeNs !== undefined ? formatMtime(file.mtimeNs) : undefined;
      // A time past the wire's 12 integer digits (tmpfs keeps them) is left out: sent, it would close the connection.
      if (mtime !== undefined && MTIME_PATTERN.test(mtime)) header.mtime = mtime;
      if (metadata && options.preserveMode && file.mode !== undefined) header.mode = file.mode;
      headersLeft -= 1;
      holding.add(uploadOf(job));
      inFlight.push({ job, id, size, stored, decision: connection.sendHeader(header) });
    }
  };
  try {
    for (;;) {
      sendHeaders();
      if (inFlight.length === 0) {
        if (queue.length > 0 && room()) {
          if (blocked()) {
            // Its namesake's verdict frees it.
            await Promise.all(outcomes.splice(0));
            continue;
          }
          if (queue[0]!.hashFirst && !queue[0]!.isHashed) {
            // Hashing a large file first could outlast the idle timeout: once the verdicts owed
            // are in, wait for it unconnected (the next connection opens when it is ready).
            await Promise.all(outcomes.splice(0));
            if (!queue[0]!.isHashed) break;
            continue;
          }
          await queue[0]!.ready;
          continue;
        }
        // Verdicts still to come may put a job back in the queue (a hash mismatch is retried once).
        await Promise.all(outcomes.splice(0));
        promoteDue();
        if (queue.length > 0 && room()) continue;
        // Done, or this connection has taken all the headers it may (the rest go over a new one),
        // or only files waiting out a BUSY back-off are left (they go over a new one after it).
        break;
      }
      const { job, id, size, stored, decision: pendingDecision } = inFlight.shift()!;
      const decision = await pendingDecision;
      const { file, result } = job;
      if (decision.type !== 'accept') holding.delete(uploadOf(job));
      if (decision.type === 'done') {
        // A folder header's answer: the folder is there.
        Object.assign(result, { status: 'sent' }, pathOf(decision.path));
        job.finished = true;
        emit({ type: 'folder', path: file.path, name: file.name, ...pathOf(decision.path) });
      } else if (decision.type === 'skip') {
        // Still honoured: kept as the newest, so the bound drops it last.
        if (stored) io.cache?.setReceipt(stored);
        Object.assign(result, { status: 'skipped' }, pathOf(decision.path));
        file.release();
        job.finished = true;
        emit({ type: 'skipped', path: file.path, name: file.name, ...pathOf(decision.path) });
      } else if (decision.type === 'refuse') {
        // Another upload holds the same file, or the receiver is at a limit: ask again later,
        // while the other files go on.
        if (decision.code === 'BUSY' && job.busyRetries < MAX_BUSY_RETRIES) later(job);
        else finish(job, 'refused', new FtError(decision.code, decision.message), emit);
      } else {
        if (decision.offset > size) throw new FtError('BAD_MESSAGE', `receiver offered offset ${decision.offset} past the end of ${file.name}`);
        // The receiver no longer holds what the receipt was for (the stored file changed, or it has a new key).
        if (stored) io.cache?.dropReceipt(receiver, stored.name, stored.file);
        // A source read only once cannot check the receiver's prefix: it starts again.
        let offset = file.rereadable ? decision.offset : 0;
        let hasher: Hasher | undefined;
        try {
          hasher = offset > 0 ? await hashPrefix(file, offset, options.signal) : undefined;
        } catch (error) {
          const ours = error instanceof FtError && (error.code === 'FILE_CHANGED' || error.code === 'LOCAL_FILE');
          if (options.signal?.aborted || (error instanceof FtError && !ours)) throw error;
          // Accepted, but we cannot read it (or it is not the file listed): take it back, and go on with the others.
          connection.cancel(id);
          holding.delete(uploadOf(job));
          finish(job, 'failed', ours ? (error as FtError) : unreadable(file, error), emit);
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
        const outcome = connection.startBody({ type: 'body', id, offset, length: size - offset });
        emit({ type: 'started', path: file.path, name: file.name, size, offset });
        result.resumedFrom = offset;
        try {
          await streamBody(connection, { job, id, size, offset, hasher }, io, options, emit);
        } catch (error) {
          if (!(error instanceof FtError) || (error.code !== 'FILE_CHANGED' && error.code !== 'LOCAL_FILE')) throw error;
          // The body promised bytes we do not have (or its hash would confirm a torn copy): this
          // file fails, and the others go on over a new connection, which costs no retry.
          finish(job, 'failed', error, emit);
          connection.close();
          return;
        }
        const settled = outcome.then((o) => {
          holding.delete(uploadOf(job));
          settle(job, size, offset, o, { queue, later, io, receiver, signal: options.signal }, emit);
        });
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

/** XXH64 of the source's first `length` bytes, to check a receiver's partial; the hasher can go on to take the rest. */
async function hashPrefix(source: Source, length: number, signal: AbortSignal | undefined): Promise<Hasher> {
  const hasher = await createHasher();
  await source.read(0, (block) => hasher.update(block), { length, signal });
  return hasher;
}

/** Where a settled body goes on: the queue for a re-send, and what a receipt is kept for. */
interface SettleContext {
  queue: Job[];
  /** Puts a job back after its BUSY back-off. */
  later: (job: Job) => void;
  io: LocalIo;
  receiver: ReceiverId;
  signal: AbortSignal | undefined;
}

/** `remotePath`, only when the receiver told it. */
function pathOf(remotePath: string | undefined): { remotePath?: string } {
  return remotePath === undefined ? {} : { remotePath };
}

/** Applies the receiver's verdict on one body. */
function settle(job: Job, size: number, offset: number, outcome: Outcome, { queue, later, io, receiver, signal }: SettleContext, emit: (event: SendEvent) => void): void {
  const { file, result } = job;
  file.release();
  if (outcome.type === 'done') {
    delete result.remotePath;
    Object.assign(result, { status: offset > 0 ? 'resumed' : 'sent', hash: outcome.hash, code: undefined, message: undefined }, pathOf(outcome.path));
    job.finished = true;
    // Valid for this file as it was sent: a later send of it, unchanged, is answered "already there".
    if (outcome.receipt && file.identity && outcome.hash === file.hash) {
      io.cache?.setReceipt({ receiver, name: file.name, file: file.identity, hash: outcome.hash, receipt: outcome.receipt });
      io.saveSoon();
    }
    emit({ type: 'verified', path: file.path, name: file.name, size, hash: outcome.hash, ...pathOf(outcome.path), resumedFrom: offset });
    return;
  }
  if (outcome.code === 'HASH_MISMATCH' && job.mismatches++ === 0 && file.rereadable) {
    // Our file may have changed after hashing: hash it again (never from the cache) and send it once more from the start.
    hashAgain(job, io, signal, emit);
    queue.push(job);
    return;
  }
  // Taken over by a newer upload of the same file (or the receiver hit a limit): the upload
  // stays resumable there; ask again after a back-off, as for a header refused BUSY.
  if (outcome.code === 'BUSY' && job.busyRetries < MAX_BUSY_RETRIES) return later(job);
  finish(job, 'failed', new FtError(outcome.code, outcome.message), emit);
}

/** One body to send: from `offset`, hashed on the way when the header had no hash. */
interface BodyPlan {
  job: Job;
  id: number;
  /** As announced in the header. */
  size: number;
  offset: number;
  hasher: Hasher | undefined;
}

/**
 * Streams [offset, size) of the source, each block awaited by the connection (backpressure).
 * A body whose header had no hash is followed by its hash, once the source is known not to have
 * changed meanwhile: one that did is dropped (the caller closes the connection), so the
 * receiver never keeps a torn copy.
 */
async function streamBody(
  connection: SenderConnection,
  { job, id, size, offset, hasher }: BodyPlan,
  io: LocalIo,
  options: SendOptions,
  emit: (event: SendEvent) => void,
): Promise<void> {
  const { file, result } = job;
  let lastProgress = performance.now();
  let position = offset;
  const sent = (bytes: number) => {
    result.bytesSent += bytes;
    const now = performance.now();
    if (now - lastProgress < PROGRESS_INTERVAL_MS && position < size) return;
    lastProgress = now;
    const progress = { path: file.path, name: file.name, bytes: position, size };
    emit({ type: 'progress', ...progress });
    options.onProgress?.(progress);
  };
  await file.read(
    offset,
    async (block) => {
      hasher?.update(block);
      // Under a limit, in slices well inside the burst, so the rate (and progress) stays smooth.
      const slice = io.bandwidth ? limitedSlice(io.bandwidth) : block.length;
      for (let at = 0; at < block.length; at += slice) {
        const bytes = block.subarray(at, at + slice);
        await io.bandwidth?.take(bytes.length, options.signal);
        await connection.writeRaw(bytes);
        position += bytes.length;
        sent(bytes.length);
      }
    },
    // Exactly the length the body frame promised, whatever the source holds by now.
    { length: size - offset, signal: options.signal, keepsBlocks: true, checkUnchanged: hasher !== undefined },
  );
  // Sent: the room goes to the files still being hashed (a retry reads the file again).
  file.release();
  if (position === offset) sent(0);
  if (!hasher) return;
  file.hash = hasher.digest();
  if (file.identity) io.cache?.set(file.identity, file.hash);
  connection.write({ type: 'hash', id, hash: file.hash });
}
