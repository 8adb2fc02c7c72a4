/**
 * One upload into the S3 store and its writer: the part being filled in memory, parts stored
 * as they fill, the state kept in the bucket (upload-state.ts), the leases held (in-process and
 * in the bucket), and the commit through the Placer.
 *
 * A part that fills goes up while the next one fills: receiving never waits for the store
 * unless the store's parts in flight (PartSlots, all uploads together) are all taken. Parts are
 * recorded in the bucket's state strictly in order, each once it was answered and the ones
 * before it were recorded, so the state always names a prefix of the file that is stored.
 */
import { CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { FtError } from '../../errors.js';
import { createResumableHasher, type ResumableHasher } from '../../resumable-hashing.js';
import type { Lease } from '../leases.js';
import type { FileMetadata, Placed, Upload, UploadKey, UploadWriter } from '../upload-store.js';
import type { BucketLease } from './bucket-lease.js';
import { objectMetadata } from './object-metadata.js';
import { Placer } from './placer.js';
import { Revocation } from '../revocation.js';
import { attempt, putJson, storeError } from './s3-client.js';
import type { S3UploadStore } from './s3-store.js';
import { partsBytes, type UploadState } from './upload-state.js';

type Stage = 'open' | 'writing' | 'ended' | 'committing' | 'done';

/** One upload: holds its leases from open() until commit, abandon or discard. */
export class S3Upload implements Upload {
  private stage: Stage = 'open';
  private committing: Promise<unknown> | undefined;
  private readonly revocation = new Revocation();
  /** Whether the state in the bucket is behind the one here. */
  private dirty = false;
  /** Whether the state was ever written to the bucket. */
  private saved: boolean;
  /**
   * The part being filled (sized to what is left of the file, at most one part), from file
   * offset `partStart`; `fill` bytes of it are taken. Allocated as bytes come, so an upload
   * waiting for a slot holds no second buffer.
   */
  private part: Buffer | undefined;
  private fill = 0;
  private partStart = 0;
  /** The next part's number (1-based) while writing: parts in flight are not in the state yet. */
  private nextPart = 1;
  /** The multipart upload being created (once, for the first part), with the key it is for. */
  private creating: Promise<void> | undefined;
  /** Settles once every part sent so far is stored and recorded, or one failed; never rejects. */
  private recording: Promise<void> = Promise.resolve();
  /** The first failure of a part or of its record: the upload cannot go on. */
  private failure: unknown;
  private hasher: ResumableHasher | undefined;
  private wholeHash: string | undefined;
  private readonly stopWatching: Array<() => void> = [];

  constructor(
    private readonly store: S3UploadStore,
    readonly key: UploadKey,
    private readonly id: string,
    private state: UploadState,
    readonly resumable: boolean,
    private readonly local: Lease,
    private readonly bucketLease: BucketLease | undefined,
    /** What the header asked to keep: the multipart upload is begun with it (see OpenOptions.metadata). */
    private readonly expectedMetadata?: FileMetadata,
  ) {
    this.saved = partsBytes(state) + state.tail > 0 || state.uploadId !== undefined || state.recorded;
    this.stopWatching.push(local.onRevoked(() => this.revoke(local.revoked.reason)));
    if (bucketLease) {
      const onWanted = () => this.revoke(bucketLease.wanted.reason);
      bucketLease.wanted.addEventListener('abort', onWanted, { once: true });
      this.stopWatching.push(() => bucketLease.wanted.removeEventListener('abort', onWanted));
    }
    if (state.uploadId !== undefined) store.uploadIdsInUse.add(state.uploadId);
  }

  get offset(): number {
    return this.part !== undefined || this.stage === 'writing' ? this.partStart + this.fill : partsBytes(this.state) + this.state.tail;
  }

  /** The bytes taken but not in a part that went up (the part being filled). */
  private get pending(): Buffer[] {
    return this.part !== undefined && this.fill > 0 ? [this.part.subarray(0, this.fill)] : [];
  }

  /** Whether the tail object's bytes are in `pending` already (loaded for a body). */
  private hasPendingTail = false;
  /** A part failed to be stored: memory no longer matches the hash state, so only the bucket's state is kept. */
  private broken = false;

  get revoked(): AbortSignal {
    return this.revocation.signal;
  }

  private revoke(reason: unknown): void {
    this.revocation.revoke(reason instanceof FtError ? reason : undefined);
  }

  onRevoked(listener: () => void): () => void {
    return this.revocation.onRevoked(listener);
  }

  keptUntil(ttlMs: number): number | undefined {
    if (this.stage === 'done' || !this.resumable || !this.saved) return undefined;
    return this.state.touchedAt + ttlMs;
  }

  async hashPrefix(): Promise<string> {
    this.expect('open', 'hashPrefix');
    return (await this.prefixHasher()).digest();
  }

  /** The hasher after the bytes held, from the saved state: nothing is read back. */
  private prefixHasher(): Promise<ResumableHasher> {
    const { tail, tailHashState, partsHashState } = this.state;
    return createResumableHasher(tail > 0 ? tailHashState : partsHashState);
  }

  async append(from: number, length: number | undefined): Promise<UploadWriter> {
    this.expect('open', 'append');
    const size = this.state.size;
    if (from !== 0 && from !== this.offset) {
      throw new FtError('INTERNAL', `a body of ${this.key.filename} cannot start at ${from}: the upload holds ${this.offset} bytes`);
    }
    if (length !== undefined && length !== size - from) {
      throw new FtError('INTERNAL', `a body of ${this.key.filename} from ${from} must be ${size - from} bytes, not ${length}`);
    }
    if (from === 0 && this.offset > 0) await this.startOver();
    this.hasher = from === 0 ? await createResumableHasher() : await this.prefixHasher();
    if (from > 0 && this.state.tail > 0) {
      // The tail goes into the next part: back into the part's buffer (at most one part).
      const got = await attempt(`resuming ${this.key.filename}`, () => this.store.client.send(new GetObjectCommand({ Bucket: this.store.bucket, Key: this.store.layout.tailOf(this.id) })));
      const tail = Buffer.from(await got.Body!.transformToByteArray());
      if (tail.length !== this.state.tail) throw new FtError('WRITE_FAILED', 'the partial upload changed on the receiver after it was offered; send again');
      this.partStart = partsBytes(this.state);
      this.part = this.newPart();
      tail.copy(this.part);
      this.fill = tail.length;
      this.hasPendingTail = true;
    } else {
      this.partStart = from;
    }
    this.nextPart = this.state.parts.length + 1;
    this.expect('open', 'append'); // let go meanwhile?
    this.stage = 'writing';
    return new S3Writer(this, from, size - from);
  }

  /** append(0) over kept bytes: what was kept goes. */
  private async startOver(): Promise<void> {
    const { uploadId, objectKey } = this.state;
    if (uploadId !== undefined) {
      this.store.uploadIdsInUse.delete(uploadId);
      await this.store.abortMultipart(objectKey, uploadId).catch(() => undefined);
    }
    const fresh = await createResumableHasher();
    this.state = { ...this.state, parts: [], tail: 0, partsHashState: fresh.save(), token: randomBytes(16).toString('hex') };
    delete this.state.uploadId;
    delete this.state.tailHashState;
    this.dirty = true;
  }

  /** A buffer for the part from `partStart`: one part, or what is left of the file. */
  private newPart(): Buffer {
    return this.store.partSlots.buffer(Math.min(this.store.partBytes, this.state.size - this.partStart));
  }

  /**
   * @internal The writer's bytes, in order, copied once into the part being filled; a part that
   * fills is sent. Resolves at once unless the store's parts in flight are all taken, then once
   * this part has a slot (the writer waits: that is the memory bound).
   */
  take(chunk: Buffer): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.failed();
    const hasher = this.hasher!;
    let waiting: Promise<void> | undefined;
    for (let at = 0; at < chunk.length; ) {
      this.part ??= this.newPart();
      const piece = chunk.subarray(at, at + this.part.length - this.fill);
      hasher.update(piece);
      piece.copy(this.part, this.fill);
      this.fill += piece.length;
      at += piece.length;
      // Only a whole part goes up here: a shorter last one waits for finish(), and a file of
      // one short part becomes one PutObject (Placer).
      if (this.fill === this.store.partBytes) waiting = this.send(this.part, hasher.save()) ?? waiting;
    }
    return waiting;
  }

  /**
   * Sends a whole part: a slot first (now if one is free), then UploadPart, then its record in
   * order. Returns a promise only when it has to wait for a slot.
   */
  private send(body: Buffer, hashState: string): Promise<void> | undefined {
    const PartNumber = this.nextPart++;
    this.partStart += body.length;
    this.part = undefined;
    this.fill = 0;
    const slots = this.store.partSlots;
    const slot = slots.tryAcquire() ? undefined : slots.acquire();
    const put = (async () => {
      await slot;
      try {
        await this.multipart();
        const { client, bucket: Bucket } = this.store;
        const Key = this.state.objectKey;
        const UploadId = this.state.uploadId;
        const put = await attempt(`writing ${this.key.filename}`, () => client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body: body, ContentLength: body.length })));
        return put.ETag ?? '';
      } finally {
        slots.recycle(body);
        slots.release();
      }
    })();
    const before = this.recording;
    this.recording = (async () => {
      let etag: string;
      try {
        etag = await put;
        await before;
        if (this.failure !== undefined) return;
        await this.record(body.length, etag, hashState);
      } catch (error) {
        // The part's bytes are gone from memory and the hasher is past them: only what the bucket holds can be kept.
        this.failure ??= error;
        this.broken = true;
      }
    })();
    return slot;
  }

  /** The multipart upload for this file, created with the first part (its key chosen then). */
  private multipart(): Promise<void> {
    if (this.state.uploadId !== undefined) return Promise.resolve();
    this.creating ??= (async () => {
      const { client, bucket: Bucket } = this.store;
      const what = `writing ${this.key.filename}`;
      this.state.objectKey = await attempt(what, () => this.store.firstFreeKey(this.key.filename));
      const Metadata = objectMetadata(this.state.token, this.key.hash, this.expectedMetadata, this.store.umask);
      const Key = this.state.objectKey;
      const created = await attempt(what, () => client.send(new CreateMultipartUploadCommand({ Bucket, Key, Metadata })));
      this.state.uploadId = created.UploadId!;
      this.store.uploadIdsInUse.add(created.UploadId!);
    })();
    return this.creating;
  }

  /** A part is stored: into the state, which goes to the bucket (when the upload is kept for resume). */
  private async record(size: number, etag: string, hashState: string): Promise<void> {
    this.state.parts.push({ size, etag });
    this.state.partsHashState = hashState;
    if (this.hasPendingTail || this.state.tail > 0) {
      // The tail object's bytes are in this part now.
      this.state.tail = 0;
      delete this.state.tailHashState;
      this.hasPendingTail = false;
    }
    this.dirty = true;
    if (this.resumable) await this.saveState();
  }

  /** Every part sent so far stored and recorded (or failed). */
  private async drain(): Promise<void> {
    let seen: Promise<void> | undefined;
    while (seen !== this.recording) {
      seen = this.recording;
      await seen;
    }
  }

  private failed(): FtError {
    return this.failure instanceof FtError ? this.failure : storeError(this.failure, `writing ${this.key.filename}`);
  }

  /** @internal Writes the state to the bucket (touching it: expiry counts from now). */
  async saveState(): Promise<void> {
    this.state.touchedAt = Date.now();
    await attempt(`recording ${this.key.filename}`, () => putJson(this.store.client, this.store.bucket, this.store.layout.stateOf(this.id), this.state));
    this.dirty = false;
    this.saved = true;
  }

  /** @internal Every byte is taken: the last part goes up when there are parts already. */
  async finish(): Promise<string> {
    if (this.stage !== 'writing') throw this.notNow('end');
    if ((this.state.uploadId !== undefined || this.creating !== undefined) && this.fill > 0) {
      // The last, shorter part of a multipart upload.
      await this.send(this.part!.subarray(0, this.fill), this.hasher!.save());
    }
    await this.drain();
    if (this.failure !== undefined) throw this.failed();
    if (this.stage !== 'writing') throw this.notNow('end');
    this.wholeHash = this.hasher!.digest();
    this.stage = 'ended';
    return this.wholeHash;
  }

  async commit(components: readonly string[], expectedHash: string, metadata?: FileMetadata): Promise<Placed> {
    if (this.stage !== 'ended') throw this.notNow('commit');
    this.stage = 'committing';
    // Pinned: a newer open() here or on another receiver waits for the commit instead of revoking it.
    const unpin = [this.local.pin(), this.bucketLease?.pin()];
    const committing = this.place(components, expectedHash, metadata);
    this.committing = committing;
    try {
      const placed = await committing;
      this.stage = 'done';
      await this.release();
      return placed;
    } catch (error) {
      this.stage = 'done';
      // Refused or failed, what can be resumed is kept, as abandon() would.
      await this.letGo();
      throw error;
    } finally {
      for (const undo of unpin) undo?.();
    }
  }

  private async place(components: readonly string[], expectedHash: string, metadata: FileMetadata | undefined): Promise<Placed> {
    const hash = this.wholeHash!;
    if (hash !== expectedHash) {
      await this.dropAll();
      throw new FtError('HASH_MISMATCH', `content of ${this.key.filename} hashes to ${hash}, not ${expectedHash}; nothing was kept`);
    }
    const placer = new Placer(this.store, this.state, hash, this.pending, objectMetadata(this.state.token, hash, metadata, this.store.umask));
    let placed: Awaited<ReturnType<Placer['place']>>;
    try {
      placed = await placer.place(components);
    } catch (error) {
      if (placer.keyLost) await this.dropAll();
      throw error;
    }
    if (placed.moved) this.state.uploadId = undefined; // the multipart upload became the object, or was aborted
    await this.store.deleteUpload(this.id, { ...this.state, uploadId: placed.moved ? undefined : this.state.uploadId });
    await this.store.dropOrphans(this.key.owner, this.key.filename, this.id);
    this.saved = false;
    this.dropPart();
    return placed.placed;
  }

  async abandon(): Promise<void> {
    await this.settled();
    if (this.stage === 'done') return;
    this.stage = 'done';
    await this.letGo();
  }

  async discard(): Promise<void> {
    await this.settled();
    if (this.stage === 'done') return;
    this.stage = 'done';
    await this.dropAll();
  }

  /** Keeps what can be resumed (the tail too), then lets go of the leases; never throws. */
  private async letGo(): Promise<void> {
    if (this.released) return;
    await this.drain();
    try {
      if (this.resumable) await this.keep();
      else await this.dropData();
    } catch {
      // What reached the bucket is there or not; the next open checks it.
    }
    await this.release();
  }

  private async keep(): Promise<void> {
    const held = this.broken ? partsBytes(this.state) + this.state.tail : this.offset;
    if (held === 0 && !this.state.recorded) {
      // Nothing written, nothing to keep: no room taken.
      await this.store.deleteUpload(this.id, this.state);
      return;
    }
    if (!this.broken && this.fill > 0 && (!this.hasPendingTail || this.fill !== this.state.tail)) {
      const body = this.part!.subarray(0, this.fill);
      const tailHashState = this.hasher!.save();
      await attempt(`keeping ${this.key.filename}`, () =>
        this.store.client.send(new PutObjectCommand({ Bucket: this.store.bucket, Key: this.store.layout.tailOf(this.id), Body: body, ContentLength: body.length })),
      );
      this.state.tail = body.length;
      this.state.tailHashState = tailHashState;
      this.dirty = true;
    }
    if (this.dirty || !this.saved) await this.saveState();
  }

  private async dropData(): Promise<void> {
    const { uploadId, objectKey } = this.state;
    if (uploadId !== undefined) await this.store.abortMultipart(objectKey, uploadId).catch(() => undefined);
  }

  private async dropAll(): Promise<void> {
    await this.drain();
    await this.store.deleteUpload(this.id, this.state);
    this.dropPart();
    await this.release();
  }

  private dropPart(): void {
    this.part = undefined;
    this.fill = 0;
  }

  private released = false;

  /** Lets go of both leases: the bucket's first, so that a newer open here finds it free. */
  private async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    for (const stop of this.stopWatching.splice(0)) stop();
    if (this.state.uploadId !== undefined) this.store.uploadIdsInUse.delete(this.state.uploadId);
    this.store.letGo(this.id);
    try {
      await this.bucketLease?.release();
    } finally {
      this.local.release();
    }
  }

  private async settled(): Promise<void> {
    while (this.stage === 'committing') await this.committing?.catch(() => undefined);
  }

  private expect(stage: Stage, call: string): void {
    if (this.stage !== stage) throw this.notNow(call);
  }

  notNow(call: string): FtError {
    return new FtError('INTERNAL', `${call}() of the upload of ${this.key.filename} while it is ${this.stage}`);
  }
}

/** Hashes as it takes bytes; memory bounded by one part, besides the store's parts in flight (see S3Upload.take). */
class S3Writer implements UploadWriter {
  private received = 0;
  private closed = false;

  constructor(
    private readonly upload: S3Upload,
    private readonly from: number,
    private readonly length: number,
  ) {}

  get size(): number {
    return this.from + this.received;
  }

  write(chunk: Buffer): void | Promise<void> {
    if (this.closed) throw new FtError('INTERNAL', `write() after the body of ${this.upload.key.filename} ended`);
    const { revoked } = this.upload;
    if (revoked.aborted) throw revoked.reason instanceof FtError ? revoked.reason : new FtError('BUSY', 'a newer upload of this file took it over');
    if (this.received + chunk.length > this.length) {
      throw new FtError('INTERNAL', `a body of ${this.length} bytes for ${this.upload.key.filename} got ${this.received + chunk.length}`);
    }
    this.received += chunk.length;
    return this.upload.take(chunk);
  }

  async end(size?: number): Promise<string> {
    if (this.closed) throw new FtError('INTERNAL', `end() of the body of ${this.upload.key.filename} twice`);
    if (size !== undefined && size !== this.upload.key.size) {
      throw new FtError('INTERNAL', `the upload of ${this.upload.key.filename} was opened with size ${this.upload.key.size}, not ${size}`);
    }
    if (this.received !== this.length) {
      throw new FtError('INTERNAL', `the body of ${this.upload.key.filename} ended after ${this.received} of ${this.length} bytes`);
    }
    this.closed = true;
    return this.upload.finish();
  }
}
