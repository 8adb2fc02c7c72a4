/**
 * The upload store on a local folder: the inbox (placement), the partial store (uploads kept
 * for resume, their leases and quotas), the body sinks and the file-system adapter, behind
 * the port. Everything that touches a path or a descriptor stays in this folder.
 */
import { FtError } from '../../errors.js';
import { createHasher, type Hasher } from '../../hashing.js';
import { isNotFound, nodeFileSystem, type FileSystem, type OpenFile } from '../../file-system.js';
import type { ConflictPolicy } from '../conflict-policy.js';
import { TAKEOVER_WAIT_MS } from '../leases.js';
import { appliedMetadata, currentUmask, type AppliedMetadata } from './file-metadata.js';
import type {
  FileMetadata,
  OpenOptions,
  PartialListing,
  Placed,
  StoreCapabilities,
  StoredIdentity,
  TargetState,
  Upload,
  UploadKey,
  UploadStore,
  UploadWriter,
} from '../upload-store.js';
import { openBodySink, type BodySink } from './body-sink.js';
import { Inbox } from './inbox.js';
import { readPartialFolder } from './partial-listing.js';
import { PARTIAL_FILE_MODE, PARTIAL_SWEEP_INTERVAL_MS, type Partial, type PartialLimitOptions, type PartialLimits } from './partials.js';
import { sameIdentity, type FileIdentity } from './same-content.js';

export interface LocalUploadStoreOptions {
  /** The file system to use (memfs in tests, see fileSystemOf); node:fs by default. */
  fs?: FileSystem;
  /** What a commit does when a different file has the name; 'rename' (keep both) by default. */
  onConflict?: ConflictPolicy;
  /** Caps on the uploads kept for resume (see PARTIAL_LIMITS). */
  partialLimits?: PartialLimitOptions;
  /** False forces the path fallback used where /proc/self/fd is missing (tests). */
  folderHandles?: boolean;
  /** How long open() waits for an older holder of the same key to let go, in ms (TAKEOVER_WAIT_MS). */
  takeoverWaitMs?: number;
  /** Bits taken away from a mode a sender asks for (FileMetadata.mode). @default the process's umask */
  umask?: number;
}

const CAPABILITIES: StoreCapabilities = {
  // link(2) never replaces an existing name: "is it free?" and "take it" are one system call.
  // (File systems without hard links fall back to a check and a rename; see Inbox.landNew.)
  atomicNoReplace: true,
  freeSpace: false,
  // A stream's partial has a random key and no announced size; its size is declared at end().
  lateSize: true,
  durableUploads: true,
  metadata: true,
};

/**
 * Files and folders cost inodes, which the free bytes do not show: with fewer than this many
 * left the store says it has no space, so that peers cannot use up the inode table (empty files
 * and folders cost no bytes). A file system without an inode limit reports none (`files` 0).
 */
export const MIN_FREE_INODES = 10_000;

export class LocalUploadStore implements UploadStore {
  readonly capabilities: StoreCapabilities;
  readonly sweepIntervalMs = PARTIAL_SWEEP_INTERVAL_MS;

  private constructor(
    private readonly inbox: Inbox,
    private readonly fs: FileSystem,
    private readonly takeoverWaitMs: number,
    private readonly umask: number,
  ) {
    this.capabilities = { ...CAPABILITIES, freeSpace: fs.statfs !== undefined };
  }

  /**
   * Creates the folder if needed (never writable by others) and its hidden folder of partial
   * uploads, or checks the ones there; refuses an inbox other users can write to or own.
   */
  static async open(dir: string, options: LocalUploadStoreOptions = {}): Promise<LocalUploadStore> {
    const takeoverWaitMs = options.takeoverWaitMs ?? TAKEOVER_WAIT_MS;
    if (!Number.isSafeInteger(takeoverWaitMs) || takeoverWaitMs < 0) {
      throw new FtError('USAGE', `Expected takeoverWaitMs to be a whole number of milliseconds, got ${JSON.stringify(takeoverWaitMs)}`);
    }
    const fs = options.fs ?? nodeFileSystem;
    const inbox = await Inbox.open(dir, fs, options.onConflict ?? 'rename', {
      partialLimits: options.partialLimits,
      folderHandles: options.folderHandles,
    });
    const umask = options.umask ?? currentUmask();
    if (!Number.isSafeInteger(umask) || umask < 0 || umask > 0o777) throw new FtError('USAGE', `Expected umask to be from 0 to 0o777, got ${JSON.stringify(umask)}`);
    return new LocalUploadStore(inbox, fs, takeoverWaitMs, umask);
  }

  /** The inbox's real path. */
  get privateLocation(): string {
    return this.inbox.root;
  }

  /** The store's own hidden folder (local only: the receipt key is kept there). */
  get stateDir(): string {
    return this.inbox.partials.dir;
  }

  get policy(): ConflictPolicy {
    return this.inbox.policy;
  }

  /** The caps on partial uploads in force. */
  get partialLimits(): Readonly<PartialLimits> {
    return this.inbox.partials.limits;
  }

  /** 'handles' where folders are walked through descriptors, 'paths' for the fallback. */
  get folderMode(): 'handles' | 'paths' {
    return this.inbox.folderMode;
  }

  inspect(components: readonly string[]): Promise<TargetState> {
    return this.inbox.inspect([...components]);
  }

  makeFolder(components: readonly string[]): Promise<string> {
    return this.inbox.makeFolder([...components]);
  }

  async open(key: UploadKey, options: OpenOptions): Promise<Upload> {
    return (await this.acquire(key, options, false))!;
  }

  resume(key: UploadKey, options: OpenOptions): Promise<Upload | undefined> {
    return this.acquire(key, options, true);
  }

  private async acquire(key: UploadKey, options: OpenOptions, existing: boolean): Promise<LocalUpload | undefined> {
    const { size } = key;
    // Nothing kept can be a stream's (it is never resumed): there is none to resume.
    if (size === undefined && existing) return undefined;
    let partial: Partial | undefined;
    try {
      const id = { owner: key.owner, filename: key.filename, size, ...(key.hash !== undefined ? { hash: key.hash } : {}) };
      const take = { signal: options.signal, waitMs: this.takeoverWaitMs, keep: options.record === true };
      partial = existing ? await this.inbox.partials.acquire(id, options.peer, { ...take, existing: true }) : await this.inbox.partials.acquire(id, options.peer, take);
      if (partial === undefined) return undefined;
      if (options.record === true && partial.checkedFile === undefined) await partial.record();
    } catch (error) {
      if (partial !== undefined) releaseQuietly(partial);
      // About the receiver's own folder, not the peer's file: the peer is told only the code (the
      // text names the folder and a user id), the receiver's log all of it.
      if (error instanceof FtError && error.code === 'UNSAFE_PATH') {
        throw new FtError('UNSAFE_PATH', `the receiver's folder for unfinished uploads is not usable: ${error.message}`, {}, { cause: error });
      }
      throw error;
    }
    return new LocalUpload(key, size, partial, this.inbox, this.umask);
  }

  async unchanged(path: string, identity: StoredIdentity): Promise<boolean> {
    const recorded = fileIdentityOf(identity);
    if (!recorded) return false;
    const now = this.inbox.statPlaced(path);
    return now !== undefined && sameIdentity(now, recorded);
  }

  async freeSpace(): Promise<number | undefined> {
    const { statfs } = this.fs;
    if (!statfs) return undefined;
    try {
      const stats = await statfs(this.inbox.root);
      if (stats.files > 0 && stats.ffree < MIN_FREE_INODES) return 0;
      return stats.bavail * stats.bsize;
    } catch {
      return undefined;
    }
  }

  async listPartials(ttlMs: number): Promise<PartialListing> {
    const { partials } = this.inbox;
    try {
      return readPartialFolder(this.fs, partials.dir, ttlMs, (key) => partials.holds(key));
    } catch (error) {
      // Deleted meanwhile: made again by the next upload, and nothing is kept.
      if (isNotFound(error)) return { partials: [], unreadable: [], truncated: false };
      throw error;
    }
  }

  async expire(ttlMs: number, now?: number): Promise<string[]> {
    return this.inbox.partials.expire(ttlMs, now);
  }

  async close(): Promise<void> {
    this.inbox.close();
  }
}

type Stage =
  | { kind: 'open' }
  | { kind: 'writing'; writer: LocalWriter }
  | { kind: 'ended'; file: OpenFile; hash: string }
  | { kind: 'committing'; done: Promise<unknown> }
  | { kind: 'done' };

/** One upload: holds its partial's lease from open() until commit, abandon or discard. */
class LocalUpload implements Upload {
  private stage: Stage = { kind: 'open' };
  /** After hashPrefix(): the hasher that has taken the prefix, and where it stopped. */
  private prefix: { hasher: Hasher; at: number } | undefined;

  constructor(
    readonly key: UploadKey,
    /** Undefined for a stream, until its writer ends. */
    private readonly size: number | undefined,
    private readonly partial: Partial,
    private readonly inbox: Inbox,
    private readonly umask: number,
  ) {}

  get offset(): number {
    return this.partial.offset;
  }

  get resumable(): boolean {
    return this.partial.resumable;
  }

  get revoked(): AbortSignal {
    return this.partial.revoked;
  }

  onRevoked(listener: () => void): () => void {
    return this.partial.onRevoked(listener);
  }

  keptUntil(ttlMs: number): number | undefined {
    return this.stage.kind === 'done' ? undefined : this.partial.keptUntil(ttlMs);
  }

  async hashPrefix(): Promise<string> {
    this.expect('open', 'hashPrefix');
    const { hasher, prefixHash } = await this.partial.hashPrefix();
    this.prefix = { hasher, at: this.partial.offset };
    return prefixHash;
  }

  async append(from: number, length: number | undefined): Promise<UploadWriter> {
    this.expect('open', 'append');
    const rest = this.size === undefined ? undefined : this.size - from;
    if (this.size === undefined && (from !== 0 || length !== undefined)) {
      throw new FtError('INTERNAL', `a stream (${this.key.filename}) is written from 0, its length unknown`);
    }
    if (from !== 0 && from !== this.partial.offset) {
      throw new FtError('INTERNAL', `a body of ${this.key.filename} cannot start at ${from}: the upload holds ${this.partial.offset} bytes`);
    }
    if (length !== undefined && length !== rest) {
      throw new FtError('INTERNAL', `a body of ${this.key.filename} from ${from} must be ${rest} bytes, not ${length}`);
    }
    let hasher: Hasher;
    if (from === 0) {
      hasher = await createHasher();
    } else {
      // The prefix hasher goes on from where it stopped; without hashPrefix() it is made now.
      if (this.prefix?.at !== from) this.prefix = { hasher: (await this.partial.hashPrefix()).hasher, at: this.partial.offset };
      if (this.prefix.at !== from) throw new FtError('WRITE_FAILED', 'the partial upload changed on the receiver after it was offered; send again');
      hasher = this.prefix.hasher;
    }
    this.prefix = undefined;
    this.expect('open', 'append'); // let go meanwhile?
    const sink = await openBodySink(this.partial, from, rest);
    const writer = new LocalWriter(this, sink, hasher, from, rest);
    if (this.stage.kind !== 'open') {
      await sink.abandon();
      throw this.notNow('append');
    }
    this.stage = { kind: 'writing', writer };
    return writer;
  }

  /** @internal A stream's writer ended: its size is known now. */
  declareSize(size: number): void {
    this.partial.declareSize(size);
  }

  /** @internal The writer's end: every byte is in the file, open for fsync. */
  ended(writer: LocalWriter, file: OpenFile, hash: string): void {
    if (this.stage.kind !== 'writing' || this.stage.writer !== writer) {
      void file.close().catch(() => undefined);
      throw this.notNow('end');
    }
    this.stage = { kind: 'ended', file, hash };
  }

  async commit(components: readonly string[], expectedHash: string, metadata?: FileMetadata): Promise<Placed> {
    const stage = this.stage;
    if (stage.kind !== 'ended') throw this.notNow('commit');
    // Pinned: a newer open() of the key waits for the commit instead of revoking it.
    const unpin = this.partial.pin();
    const committing = this.place(stage.file, stage.hash, components, expectedHash, appliedMetadata(metadata, this.umask));
    this.stage = { kind: 'committing', done: committing };
    try {
      return await committing;
    } finally {
      await stage.file.close().catch(() => undefined);
      this.stage = { kind: 'done' };
      unpin();
      // Placed, the partial is gone; refused or failed, a resumable one is kept, as abandon() would.
      releaseQuietly(this.partial);
    }
  }

  async abandon(): Promise<void> {
    const stage = await this.settled();
    if (stage.kind === 'done') return;
    this.stage = { kind: 'done' };
    try {
      if (stage.kind === 'writing') await stage.writer.abandon();
      else if (stage.kind === 'ended') await stage.file.close();
    } catch {
      // What was written is on disk or not; the next open() finds out.
    }
    releaseQuietly(this.partial);
  }

  async discard(): Promise<void> {
    const stage = await this.settled();
    if (stage.kind === 'done') return;
    this.stage = { kind: 'done' };
    await this.drop(stage);
  }

  /** Checks the whole file's hash, then makes it durable and places it. */
  private async place(file: OpenFile, hash: string, components: readonly string[], expectedHash: string, metadata: AppliedMetadata | undefined): Promise<Placed> {
    if (hash !== expectedHash) {
      // The bytes are not the announced content, and which are wrong cannot be told. If
      // deleting them fails, the next resume's prefix check still refuses them.
      await this.drop({ kind: 'ended', file, hash });
      throw new FtError('HASH_MISMATCH', `content of ${this.key.filename} hashes to ${hash}, not ${expectedHash}; nothing was kept`);
    }
    // PROTOCOL.md §6.8: verified, then the metadata, then durable, then placed.
    if (metadata) await file.setMetadata(metadata);
    await file.sync();
    let placed: Awaited<ReturnType<Inbox['place']>>;
    try {
      placed = await this.inbox.place(this.partial, [...components]);
    } catch (error) {
      if (metadata) await this.unsetMetadata(file);
      throw error;
    } finally {
      await file.close();
    }
    try {
      this.inbox.partials.dropOrphans(this.partial.id);
    } catch {
      // Best effort: what is left waits for the sweep, as before.
    }
    const { dev, ino, size, mtimeMs, ctimeMs } = placed.identity;
    return { path: placed.path, deduplicated: placed.deduplicated, identity: { dev, ino, size, mtimeMs, ctimeMs } };
  }

  /**
   * The partial kept after a placement failed must not keep the sender's time and mode: the
   * sweep ages it by its time (one in the year 30000 would never expire, and would outlive
   * everyone else's partials), and a mode without read or write would lock ft out of it.
   * Where that fails, it goes: a partial is only ever a saving.
   */
  private async unsetMetadata(file: OpenFile): Promise<void> {
    try {
      await file.setMetadata({ mode: PARTIAL_FILE_MODE, mtime: String(Date.now() / 1000) });
      await file.sync();
    } catch {
      try {
        this.partial.discard();
      } catch {
        // The sweep looks again.
      }
    }
  }

  /** Deletes what is held and lets go; never throws. */
  private async drop(stage: Stage): Promise<void> {
    try {
      if (stage.kind === 'writing') await stage.writer.discard();
      else if (stage.kind === 'ended') await stage.file.close();
    } catch {
      // Closed already.
    }
    try {
      this.partial.discard();
    } catch {
      // Left on disk: its prefix no longer matches, and the sweep deletes it.
    }
    releaseQuietly(this.partial);
  }

  /** A commit in progress is waited for: it lets go itself. */
  private async settled(): Promise<Stage> {
    let stage = this.stage;
    while (stage.kind === 'committing') {
      await stage.done.catch(() => undefined);
      stage = this.stage;
    }
    return stage;
  }

  private expect(kind: 'open', call: string): void {
    if (this.stage.kind !== kind) throw this.notNow(call);
  }

  private notNow(call: string): FtError {
    return new FtError('INTERNAL', `${call}() of the upload of ${this.key.filename} while it is ${this.stage.kind}`);
  }
}

/** Hashes as it writes; memory as bounded as the sink's (see body-sink.ts). */
class LocalWriter implements UploadWriter {
  private received = 0;
  private closed = false;

  constructor(
    private readonly upload: LocalUpload,
    private readonly sink: BodySink,
    private readonly hasher: Hasher,
    private readonly from: number,
    /** Undefined for a stream: end() declares it. */
    private readonly length: number | undefined,
  ) {}

  get size(): number {
    return this.from + this.received;
  }

  write(chunk: Buffer): void | Promise<void> {
    if (this.closed) throw new FtError('INTERNAL', `write() after the body of ${this.upload.key.filename} ended`);
    // Taken over: the newer upload resumes from what is on disk, so nothing more goes there.
    const { revoked } = this.upload;
    if (revoked.aborted) throw revoked.reason instanceof FtError ? revoked.reason : new FtError('BUSY', 'a newer upload of this file took it over');
    if (this.length !== undefined && this.received + chunk.length > this.length) {
      throw new FtError('INTERNAL', `a body of ${this.length} bytes for ${this.upload.key.filename} got ${this.received + chunk.length}`);
    }
    this.hasher.update(chunk);
    this.received += chunk.length;
    return this.sink.write(chunk);
  }

  async end(size?: number): Promise<string> {
    if (this.closed) throw new FtError('INTERNAL', `end() of the body of ${this.upload.key.filename} twice`);
    const { key } = this.upload;
    if (key.size === undefined ? size !== this.received : size !== undefined && size !== key.size) {
      throw new FtError('INTERNAL', `the upload of ${key.filename} was opened with size ${key.size ?? 'unknown'} and got ${this.received} bytes, not ${size ?? 'unknown'}`);
    }
    if (this.length !== undefined && this.received !== this.length) {
      throw new FtError('INTERNAL', `the body of ${key.filename} ended after ${this.received} of ${this.length} bytes`);
    }
    this.closed = true;
    if (key.size === undefined) this.upload.declareSize(this.received);
    const file = await this.sink.finish();
    const hash = this.hasher.digest();
    this.upload.ended(this, file, hash);
    return hash;
  }

  /** @internal Keeps on disk what was written, and closes. */
  async abandon(): Promise<void> {
    this.closed = true;
    await this.sink.abandon();
  }

  /** @internal */
  async discard(): Promise<void> {
    this.closed = true;
    await this.sink.discard();
  }
}

function releaseQuietly(partial: Partial): void {
  try {
    partial.release();
  } catch {
    // The lease is let go all the same (see PartialStore.released).
  }
}

function fileIdentityOf(identity: StoredIdentity): FileIdentity | undefined {
  const { dev, ino, size, mtimeMs, ctimeMs } = identity;
  const numbers = [dev, ino, size, mtimeMs, ctimeMs];
  if (!numbers.every((value) => typeof value === 'number')) return undefined;
  return { dev, ino, size, mtimeMs, ctimeMs } as FileIdentity;
}
