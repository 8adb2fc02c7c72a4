/**
 * The ingest service: every decision about an arriving file, and its commit, whatever carries
 * it (the TCP protocol today; HTTP next). A transport asks it, in order:
 *
 *   decide(header) → accept | skip | refuse
 *   startBody(id, offset, length) → write(chunk)… → endBody() → complete(id, hash)
 *
 * and gets back answers it can put in its own words. It reaches storage only through the
 * upload store port, and nothing it tells a peer depends on other peers' files.
 */
import { performance } from 'node:perf_hooks';
import { FtError, toFtError, type ErrorCode } from '../errors.js';
import { collisionKey, parseSafeName } from '../names/safe-name.js';
import type { Upload, UploadStore, UploadWriter } from '../storage/upload-store.js';
import type { DiskBudget, Reservation } from './disk-budget.js';
import { PROGRESS_INTERVAL_MS, type ReceiverEvent } from './events.js';
import { NameTable } from './name-table.js';
import { receiptName, type ReceiptSealer } from './receipts.js';
import { MAX_FOLDERS_PER_CONNECTION, parseMtime } from '../wire/messages.js';
import type { FileMetadata } from '../storage/upload-store.js';

export interface IngestOptions {
  store: UploadStore;
  receipts: ReceiptSealer;
  /** Free space less what arriving bodies have reserved. */
  disk: DiskBudget;
  /** Largest file accepted, in bytes. */
  maxFileSize: number;
  /** Only a peer that proved the receiver's token may learn where files are stored. */
  tellPaths: boolean;
  emit: (event: ReceiverEvent) => void;
}

/** Who is sending: fixed for a session once its hello is verified. */
export interface Peer {
  /** Fingerprint of the owner key the sender proved: its uploads and receipts are its own. */
  owner: string;
  /** The peer's address, without the port: what its unfinished uploads count against. */
  address: string;
  /** How events name the peer (address and port). */
  remote: string;
  /** Called whenever a file moves forward (for idle-slot accounting). */
  progressed: () => void;
  /** What carries the files: the TCP protocol, or tus over HTTP (reported in `received`). */
  protocol: 'ft' | 'tus';
}

/**
 * How a transport whose uploads exist apart from their bytes (tus) opens one: `create` records
 * a new upload at once (it survives a restart at offset 0), `existing` opens only one created
 * before. Neither computes a prefix hash: the offset is all such a client is told.
 */
export type OpenMode = 'create' | 'existing';

export interface FileOffer {
  id: number;
  filename: string;
  /** Undefined for a stream: its size is declared at its end (endBody), and limits are kept as its bytes arrive. */
  size?: number;
  hash?: string;
  receipt?: string;
  /** Decimal seconds since the epoch (messages.ts MTIME_PATTERN): the time the stored file gets. */
  mtime?: string;
  /** Permission bits the sender asks for (the store applies at most 0o777, less its umask). */
  mode?: number;
}

/** An empty folder a sender announced (the `metadata` feature). */
export interface FolderOffer {
  id: number;
  filename: string;
}

export type Decision =
  | { kind: 'accept'; offset: number; prefixHash?: string }
  | { kind: 'skip'; path?: string }
  /** A folder header: the folder is there (created, or already). */
  | { kind: 'folder'; path?: string }
  | { kind: 'refuse'; code: ErrorCode; message: string };

export type Outcome = { kind: 'done'; hash: string; receipt: string; path?: string } | { kind: 'failed'; code: ErrorCode; message: string };

/**
 * A body reserves at most this much of the free space ahead of what it has written, topped up as
 * it arrives: a slow body cannot hold space it may never fill.
 */
const RESERVE_AHEAD_BYTES = 64 * 1024 * 1024;

/**
 * A stream is refused at its header when less than this is free (or the largest file taken, if
 * smaller): its size is unknown, so the rest is checked as its bytes arrive. It is also what a
 * stream reserves ahead of what it has written: a stream of a few MiB fits on a nearly full
 * disk, and one that outgrows the space fails soon after it is used up.
 */
export const STREAM_MIN_FREE_BYTES = 8 * 1024 * 1024;

/** What a peer is told when a file does not fit: not how much space the receiver has. */
const NO_SPACE_TEXT = 'not enough free space on the receiver for this file';

/** What the older holder of an upload is told when a newer upload of the same file takes it over. */
function takenOver(name: string): FtError {
  return new FtError('BUSY', `a newer upload of ${name} took over`);
}

/** Verified files whose commit (fsync and placement) may run at once, per session. */
const MAX_COMMITTING = 32;

export class Ingest {
  constructor(readonly options: IngestOptions) {}

  session(peer: Peer): IngestSession {
    return new IngestSession(this.options, peer);
  }
}

/** An accepted file: its upload is held from the header until it is committed or let go. */
interface Accepted {
  offer: FileOffer;
  components: string[];
  upload: Upload;
  /** The offset offered; the body starts there, or at 0. */
  offset: number;
  /** Set when a newer upload of the same file took this one over: its body is refused. */
  takenOver: boolean;
  /** Stops listening for the takeover. */
  unwatch: () => void;
}

interface ActiveBody {
  file: Accepted;
  writer: UploadWriter;
  reservation: Reservation;
  /** Where the reservation was last sized (an offset in the file). */
  reservedAt: number;
  /** Bytes reserved ahead of what is written, at most: less for a stream, whose end is unknown. */
  ahead: number;
  startedAt: number;
  lastProgress: number;
  /** A write is running: a takeover waits for it before letting go. */
  writing: boolean;
}

/** One sender's files on one connection (or one HTTP upload session). */
export class IngestSession {
  private readonly accepted = new Map<number, Accepted>();
  /** For the collision rule: digests, not names. */
  private readonly names = new NameTable();
  private body: ActiveBody | undefined;
  /** Bodies complete and written, waiting for their hash (at most one on TCP). */
  private readonly ended = new Map<number, { body: ActiveBody; hash: string }>();
  private readonly committing = new Set<Promise<void>>();
  /** Folder headers taken on this session (MAX_FOLDERS_PER_CONNECTION). */
  private folders = 0;

  constructor(
    private readonly options: IngestOptions,
    private readonly peer: Peer,
  ) {}

  /** The body arriving now, if it is being kept: its name, and whether what arrived is kept for resume. */
  get activeBody(): { name: string; resumable: boolean } | undefined {
    const body = this.body;
    return body && { name: body.file.offer.filename, resumable: body.file.upload.resumable };
  }

  /** Accepted files still waiting for their body. */
  get waiting(): number {
    return this.accepted.size;
  }

  /**
   * accept, skip or refuse; never throws (a problem with one file is that file's refusal).
   * `announce` reports it once the transport has answered (answers go out in header order).
   */
  async decide(offer: FileOffer): Promise<{ decision: Decision; announce: () => void }> {
    return (await this.admit(offer, undefined))!;
  }

  /**
   * Creates an empty folder a sender announced: `folder`, or `refuse` (a bad name, a file or
   * link in the way under a policy that refuses it, too many folders on this session). Never throws.
   */
  async decideFolder(offer: FolderOffer): Promise<{ decision: Decision; announce: () => void }> {
    const { filename: name } = offer;
    const { emit, store, tellPaths } = this.options;
    const remote = this.peer.remote;
    const refuse = (code: ErrorCode, message: string) => ({
      decision: { kind: 'refuse', code, message } as const,
      announce: () => emit({ type: 'refused', remote, name, code, message }),
    });
    try {
      const components = parseSafeName(name);
      if (!this.names.claim(collisionKey(name), name)) {
        return refuse('NAME_COLLISION', `"${name}" and a name sent earlier on this connection differ only by case or normalisation`);
      }
      // Folders cost inodes and no bytes: the disk budget does not bound them, this does.
      if (++this.folders > MAX_FOLDERS_PER_CONNECTION) {
        return refuse('BUSY', `more than ${MAX_FOLDERS_PER_CONNECTION} folders on one connection; send the rest over another`);
      }
      if (!store.capabilities.metadata) return refuse('INTERNAL', 'this receiver cannot create folders');
      if ((await this.options.disk.shortfall(1)).missing > 0) return refuse('NO_SPACE', NO_SPACE_TEXT);
      const path = await store.makeFolder(components);
      this.peer.progressed();
      return {
        decision: { kind: 'folder', ...(tellPaths ? { path } : {}) },
        announce: () => emit({ type: 'folder', remote, name, path }),
      };
    } catch (error) {
      const { code, message } = this.told(localFailure(error), name);
      return refuse(code, message);
    }
  }

  /**
   * decide() for a transport that creates uploads apart from their bytes (see OpenMode);
   * undefined when `existing` finds no such upload.
   */
  async open(offer: FileOffer, mode: OpenMode): Promise<{ decision: Decision; announce: () => void } | undefined> {
    return this.admit(offer, mode);
  }

  private async admit(offer: FileOffer, mode: OpenMode | undefined): Promise<{ decision: Decision; announce: () => void } | undefined> {
    const { id, filename: name } = offer;
    const { emit } = this.options;
    const remote = this.peer.remote;
    const refuse = (code: ErrorCode, message: string, logged = message) => ({
      decision: { kind: 'refuse', code, message } as const,
      announce: () => emit({ type: 'refused', remote, name, code, message: logged }),
    });
    let upload: Upload | undefined;
    try {
      const components = parseSafeName(name);
      if (!this.names.claim(collisionKey(name), name)) {
        return refuse('NAME_COLLISION', `"${name}" and a name sent earlier on this connection differ only by case or normalisation`);
      }
      const { store, disk, maxFileSize } = this.options;
      const stream = offer.size === undefined;
      if (offer.size !== undefined && offer.size > maxFileSize) {
        return refuse('TOO_LARGE', `${offer.size} bytes is over this receiver's limit of ${maxFileSize}`);
      }
      // A stream was never sent before: no receipt can vouch for it.
      if (stream && !store.capabilities.lateSize) return refuse('WRITE_FAILED', "this receiver's storage cannot take a file of unknown size");
      const stored = offer.receipt === undefined || stream ? undefined : await this.redeem(offer, offer.receipt);
      if (stored !== undefined) {
        this.peer.progressed();
        return {
          decision: { kind: 'skip', ...(this.options.tellPaths ? { path: stored } : {}) },
          announce: () => emit({ type: 'skipped', remote, name, path: stored }),
        };
      }
      const target = await store.inspect(components);
      if (target.kind === 'conflict') return refuse('CONFLICT', target.reason);
      const key = { owner: this.peer.owner, filename: name, size: offer.size, ...(offer.hash !== undefined ? { hash: offer.hash } : {}) };
      const peer = this.peer.address;
      const metadata = metadataOf(offer);
      const opening = { peer, ...(metadata !== undefined ? { metadata } : {}) };
      upload = mode === 'existing' ? await store.resume(key, opening) : await store.open(key, { ...opening, ...(mode === 'create' ? { record: true } : {}) });
      if (upload === undefined) return undefined;
      // A new file needs room even when empty: its inode (the store reports none left as no space).
      const needed = offer.size === undefined ? Math.min(STREAM_MIN_FREE_BYTES, maxFileSize) : Math.max(offer.size - upload.offset, upload.offset === 0 ? 1 : 0);
      const { missing, available } = await disk.shortfall(needed);
      if (missing > 0) {
        await upload.abandon();
        return refuse('NO_SPACE', NO_SPACE_TEXT, `${needed} bytes needed, ${available} free`);
      }
      // The receiver is the authority on the offset; the sender checks prefixHash against its own bytes.
      const prefixHash = upload.offset > 0 && mode === undefined ? await upload.hashPrefix() : undefined;
      this.hold(id, { offer, components, upload, offset: upload.offset, takenOver: false, unwatch: () => undefined });
      const decision: Decision = prefixHash !== undefined && upload.offset > 0 ? { kind: 'accept', offset: upload.offset, prefixHash } : { kind: 'accept', offset: 0 };
      return { decision, announce: () => undefined };
    } catch (error) {
      // Whatever went wrong with this one file (a name the disk cannot hold, a permission), the
      // session and the other files go on.
      await upload?.abandon();
      const { code, message } = this.told(localFailure(error), name);
      return refuse(code, message);
    }
  }

  /**
   * Where the upload of `id` stands: the bytes it holds (written so far, body or not), and when
   * the store may delete them once let go (see Upload.keptUntil). Undefined when `id` is not held.
   */
  state(id: number, ttlMs: number): { offset: number; keptUntil: number | undefined } | undefined {
    const body = this.bodyOf(id);
    const file = body?.file ?? this.accepted.get(id);
    if (!file) return undefined;
    return { offset: body ? body.writer.size : file.upload.offset, keptUntil: file.upload.keptUntil(ttlMs) };
  }

  /** The peer does not want the upload of `id` any more (tus termination): what is held is deleted. */
  async discard(id: number): Promise<void> {
    const body = this.bodyOf(id);
    if (body) {
      if (this.body === body) this.body = undefined;
      this.ended.delete(id);
      body.reservation.release();
    }
    const file = body?.file ?? this.accepted.get(id);
    this.accepted.delete(id);
    if (!file) return;
    file.unwatch();
    await file.upload.discard();
  }

  /** The body of `id` arriving now, or written and waiting for its hash. */
  private bodyOf(id: number): ActiveBody | undefined {
    return this.body?.file.offer.id === id ? this.body : this.ended.get(id)?.body;
  }

  /** Drops an accepted file the sender will not send (or never sent, at the end): what was held stays for resume. */
  async cancel(id: number): Promise<void> {
    const file = this.take(id);
    await this.letGo(file);
  }

  /**
   * A body for `id` from `offset`, of `length` bytes (undefined: a stream, from 0, until
   * endBody declares its size). Undefined: receive it (write…); an outcome: this file failed
   * (its bytes are to be read and dropped). Throws FtError for a body the protocol does not
   * allow (no such accepted file, a wrong offset or length).
   */
  async startBody(id: number, offset: number, length: number | undefined): Promise<Outcome | undefined> {
    const file = this.take(id);
    const { offer } = file;
    const { emit, disk, maxFileSize } = this.options;
    const remote = this.peer.remote;
    if (file.takenOver) return this.failed(offer.filename, 'BUSY', takenOver(offer.filename).message);
    // A resume must start at the offset we offered; 0 means the sender found our prefix wrong.
    if (offset !== file.offset && offset !== 0) {
      await this.letGo(file);
      throw new FtError('BAD_MESSAGE', `body for ${offer.filename} starts at ${offset}, but ${file.offset} was offered`);
    }
    if ((length === undefined) !== (offer.size === undefined) || (offer.size !== undefined && length !== offer.size - offset)) {
      await this.letGo(file);
      throw new FtError('BAD_MESSAGE', `body length ${length ?? 'unknown'} does not match size ${offer.size ?? 'unknown'} minus offset ${offset}`);
    }
    if (offset === 0 && file.offset > 0) emit({ type: 'restarted', remote, name: offer.filename, discarded: file.offset });
    // A body that starts is progress (an empty file has no byte to show for it).
    this.peer.progressed();
    // The announced size reserved nothing; the body about to arrive does.
    const ahead = length === undefined ? STREAM_MIN_FREE_BYTES : RESERVE_AHEAD_BYTES;
    const reservation = await disk.reserve(Math.min(length ?? maxFileSize, ahead));
    if (!('release' in reservation)) {
      await this.letGo(file);
      return this.failed(offer.filename, 'NO_SPACE', NO_SPACE_TEXT, `${length ?? 'a stream of'} bytes needed, ${reservation.available} free`);
    }
    let writer: UploadWriter;
    try {
      writer = await file.upload.append(offset, length);
    } catch (error) {
      reservation.release();
      await this.letGo(file);
      return this.writeFailure(offer.filename, error);
    }
    file.offset = offset;
    const now = performance.now();
    const body: ActiveBody = { file, writer, reservation, reservedAt: offset, ahead, startedAt: now, lastProgress: now, writing: false };
    this.body = body;
    // Taken over while it was being opened: let go now, not at a first byte that may never come.
    if (file.takenOver) return this.abandonBody(body, takenOver(offer.filename));
    emit({ type: 'started', remote, name: offer.filename, size: offer.size ?? null, offset });
    return undefined;
  }

  /** Takes the next bytes of the body; an outcome means the file failed and the rest is dropped. */
  async write(chunk: Buffer): Promise<Outcome | undefined> {
    const body = this.body!;
    const { file } = body;
    if (file.takenOver) return this.abandonBody(body, takenOver(body.file.offer.filename));
    this.peer.progressed();
    // A stream's size is checked as it arrives: refused as soon as it passes the limit.
    const { maxFileSize } = this.options;
    if (file.offer.size === undefined && body.writer.size + chunk.length > maxFileSize) {
      return this.abandonBody(body, new FtError('TOO_LARGE', `the stream ${file.offer.filename} passed this receiver's limit of ${maxFileSize} bytes`));
    }
    body.writing = true;
    try {
      await body.writer.write(chunk);
      if (body.writer.size - body.reservedAt >= body.ahead / 2) await this.reserveAhead(body);
    } catch (error) {
      body.writing = false;
      return this.abandonBody(body, error);
    }
    body.writing = false;
    if (file.takenOver) return this.abandonBody(body, takenOver(body.file.offer.filename));
    const now = performance.now();
    if (now - body.lastProgress >= PROGRESS_INTERVAL_MS) {
      body.lastProgress = now;
      const { filename: name, size } = file.offer;
      this.options.emit({ type: 'progress', remote: this.peer.remote, name, bytes: body.writer.size, size: size ?? null });
    }
    return undefined;
  }

  /**
   * The body's last byte arrived: everything is written out, and the file waits for complete().
   * `size`: a stream's, as its sender declares it (checked against what arrived).
   */
  async endBody(size?: number): Promise<Outcome | undefined> {
    const body = this.body!;
    this.body = undefined;
    // Every byte is with the store now; what it still has to write is covered by the file's own blocks.
    body.reservation.release();
    if (body.file.takenOver) return this.abandonBody(body, takenOver(body.file.offer.filename));
    let hash: string;
    try {
      hash = await body.writer.end(size);
    } catch (error) {
      return this.abandonBody(body, error);
    }
    // Taken over while the last bytes were flushed: let go now, not when a hash that may never come arrives.
    if (body.file.takenOver) return this.abandonBody(body, takenOver(body.file.offer.filename));
    this.ended.set(body.file.offer.id, { body, hash });
    return undefined;
  }

  /**
   * Verifies the body of `id` against `expectedHash` and commits it in the background; `answer`
   * gets the outcome. `expectedHash` undefined: an unverified upload (only where the receiver
   * allows it), committed under the hash of what arrived and reported `verified: false`.
   * Resolves once the commit has started: at most MAX_COMMITTING run at once, while the next
   * bodies stream in (many small files then share fsyncs).
   */
  async complete(id: number, expectedHash: string | undefined, answer: (outcome: Outcome) => void): Promise<void> {
    const ended = this.ended.get(id);
    if (!ended) throw new FtError('INTERNAL', `no body of file ${id} is waiting to be completed`);
    this.ended.delete(id);
    const { body, hash } = ended;
    const { file } = body;
    if (file.takenOver) {
      answer(await this.abandonBody(body, takenOver(body.file.offer.filename)));
      return;
    }
    // No takeover from here on: a commit is not interrupted (a newer upload waits for it).
    file.unwatch();
    if (this.committing.size >= MAX_COMMITTING) await Promise.race(this.committing);
    const committing = this.commit(body, hash, expectedHash)
      .then(answer)
      .finally(() => this.committing.delete(committing));
    this.committing.add(committing);
  }

  /** Ends the session: verified files are committed first; everything else is kept for resume. */
  async close(): Promise<void> {
    await Promise.all(this.committing);
    const bodies = [this.body, ...[...this.ended.values()].map((ended) => ended.body)];
    this.body = undefined;
    this.ended.clear();
    for (const body of bodies) {
      if (!body) continue;
      body.reservation.release();
      await this.letGo(body.file);
    }
    const files = [...this.accepted.values()];
    this.accepted.clear();
    await Promise.all(files.map((file) => this.letGo(file)));
  }

  /** Waits for the commits running now (a transport flushes their answers before it closes). */
  async settled(): Promise<void> {
    await Promise.all(this.committing);
  }

  private async commit(body: ActiveBody, hash: string, expectedHash: string | undefined): Promise<Outcome> {
    const { file } = body;
    const { offer } = file;
    const { emit, receipts, tellPaths } = this.options;
    const remote = this.peer.remote;
    try {
      const placed = await file.upload.commit(file.components, expectedHash ?? hash, metadataOf(offer));
      const size = body.writer.size;
      const claims = { owner: this.peer.owner, name: receiptName(offer.filename), size, path: placed.path, hash, identity: placed.identity };
      const receipt = receipts.seal(claims, offer.filename);
      this.peer.progressed();
      emit({
        type: 'received',
        remote,
        name: offer.filename,
        path: placed.path,
        size,
        hash,
        resumedFrom: file.offset,
        durationMs: Math.round(performance.now() - body.startedAt),
        protocol: this.peer.protocol,
        verified: expectedHash !== undefined,
      });
      return { kind: 'done', hash, receipt, ...(tellPaths ? { path: placed.path } : {}) };
    } catch (error) {
      const failure = localFailure(error);
      if (failure.code === 'HASH_MISMATCH') return this.failed(offer.filename, 'HASH_MISMATCH', failure.message);
      const told = this.told(failure, offer.filename);
      emit({ type: 'failed', remote, name: offer.filename, code: failure.code, message: failure.message });
      return { kind: 'failed', ...told };
    }
  }

  private hold(id: number, file: Accepted): void {
    this.accepted.set(id, file);
    // Taken over while it was decided, while it waits for its body, or between writes: let go
    // now, so the newer upload need not wait (its body, when it comes, is refused).
    file.unwatch = file.upload.onRevoked(() => {
      file.takenOver = true;
      if (this.accepted.get(id) === file || (this.body?.file === file && !this.body.writing) || this.isEnded(file)) {
        void file.upload.abandon();
      }
    });
  }

  private isEnded(file: Accepted): boolean {
    for (const ended of this.ended.values()) if (ended.body.file === file) return true;
    return false;
  }

  private take(id: number): Accepted {
    const file = this.accepted.get(id);
    if (!file) throw new FtError('UNEXPECTED_MESSAGE', `no accepted file with id ${id}`);
    this.accepted.delete(id);
    return file;
  }

  private async letGo(file: Accepted): Promise<void> {
    file.unwatch();
    await file.upload.abandon();
  }

  /** Tops up the body's reservation; a disk that has no room left for it ends the body as a full disk would. */
  private async reserveAhead(body: ActiveBody): Promise<void> {
    body.reservedAt = body.writer.size;
    const ahead = Math.min((body.file.offer.size ?? this.options.maxFileSize) - body.writer.size, body.ahead);
    const stream = body.file.offer.size === undefined;
    // A stream's size was never checked against the free space: it is, each time, as it grows.
    if (!(await body.reservation.resize(ahead)) || (stream && !(await this.options.disk.covered()))) {
      throw Object.assign(new Error('no room left for the rest of the body'), { code: 'ENOSPC' });
    }
  }

  /** A full disk, an I/O error or a takeover mid-body: keep what was written for resume, and say why. */
  private async abandonBody(body: ActiveBody, error: unknown): Promise<Outcome> {
    if (this.body === body) this.body = undefined;
    body.reservation.release();
    await this.letGo(body.file);
    // Ours, not the disk's: said as they are.
    if (error instanceof FtError && (error.code === 'BUSY' || error.code === 'TOO_LARGE')) return this.failed(body.file.offer.filename, error.code, error.message);
    return this.writeFailure(body.file.offer.filename, error);
  }

  /** This one file could not be written; the session and the other files go on. */
  private writeFailure(filename: string, error: unknown): Outcome {
    const errno = (error as NodeJS.ErrnoException).code;
    const code: ErrorCode = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'NO_SPACE' : localFailure(error).code;
    // The peer learns what happened, not where: system errors name the receiver's paths.
    const told = error instanceof FtError ? error.message : `could not write ${filename}${errno ? ` (${errno})` : ''}`;
    return this.failed(filename, code, told, `could not write ${filename}: ${(error as Error).message}`);
  }

  private failed(name: string, code: ErrorCode, message: string, logged = message): Outcome {
    this.options.emit({ type: 'failed', remote: this.peer.remote, name, code, message: logged });
    return { kind: 'failed', code, message };
  }

  /**
   * What a peer is told of a failure of ours: our own errors say what is wrong with the file,
   * system errors only their code (their text names the receiver's paths); the receiver's log
   * gets the whole text.
   */
  private told(error: FtError, name: string): { code: ErrorCode; message: string } {
    const cause = error.cause as NodeJS.ErrnoException | undefined;
    if (cause === undefined || typeof cause.code !== 'string') return { code: error.code, message: error.message };
    this.options.emit({ type: 'warning', message: `${this.peer.remote}: ${name}: ${error.message}` });
    return { code: error.code, message: `the receiver could not store this file (${cause.code})` };
  }

  /**
   * The stored path a receipt vouches for, when it was issued to this owner for this name and
   * size and the file there is unchanged since; otherwise undefined (the upload goes ahead).
   */
  private async redeem(offer: FileOffer, receipt: string): Promise<string | undefined> {
    const claims = this.options.receipts.open(receipt);
    if (!claims || claims.owner !== this.peer.owner || claims.name !== receiptName(offer.filename) || claims.size !== offer.size) return undefined;
    if (offer.hash !== undefined && offer.hash !== claims.hash) return undefined;
    return (await this.options.store.unchanged(claims.path, claims.identity)) ? claims.path : undefined;
  }
}

/** What the header asked to keep besides the bytes; undefined when nothing. */
function metadataOf(offer: FileOffer): FileMetadata | undefined {
  if (offer.mtime === undefined && offer.mode === undefined) return undefined;
  return { ...(offer.mtime !== undefined ? { mtimeNs: parseMtime(offer.mtime) } : {}), ...(offer.mode !== undefined ? { mode: offer.mode } : {}) };
}

/**
 * Errors from our own work on a file: a file-system error is WRITE_FAILED, anything else is our
 * bug (INTERNAL). Kept apart from transport errors, which mean the peer went away.
 */
export function localFailure(error: unknown): FtError {
  if (error instanceof FtError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  const systemError = typeof code === 'string' && !code.startsWith('ERR_');
  return toFtError(error, systemError ? 'WRITE_FAILED' : 'INTERNAL');
}
