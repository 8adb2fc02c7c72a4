/**
 * One upload into the S3 store and its writer: the part being filled in memory, parts stored
 * as they fill, the state kept in the bucket (upload-state.ts), the leases held (in-process and
 * in the bucket), and the commit through the Placer.
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
import { attempt, putJson } from './s3-client.js';
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
  /** The bytes after the last whole part, in memory: at most one part. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
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
    return partsBytes(this.state) + this.state.tail + this.pendingBytes - (this.hasPendingTail ? this.state.tail : 0);
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
      this.pending = [tail];
      this.pendingBytes = tail.length;
      this.hasPendingTail = true;
    }
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

  /** @internal The writer's bytes, in order; resolves once a whole part that filled is stored. */
  take(chunk: Buffer): Promise<void> | undefined {
    const hasher = this.hasher!;
    let rest = chunk;
    let flushing: Promise<void> | undefined;
    while (this.pendingBytes + rest.length >= this.store.partBytes) {
      const piece = rest.subarray(0, this.store.partBytes - this.pendingBytes);
      hasher.update(piece);
      this.pending.push(Buffer.from(piece));
      this.pendingBytes += piece.length;
      rest = rest.subarray(piece.length);
      const hashState = hasher.save();
      const body = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      const previous = flushing;
      flushing = (async () => {
        await previous;
        try {
          await this.storePart(body, hashState);
        } catch (error) {
          // The part's bytes are gone from memory and the hasher is past them: only what the bucket holds can be kept.
          this.broken = true;
          throw error;
        }
      })();
    }
    if (rest.length > 0) {
      hasher.update(rest);
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
    return flushing;
  }

  /** Uploads one part (creating the multipart upload for the first) and records it. */
  private async storePart(body: Buffer, hashState: string): Promise<void> {
    const { client, bucket: Bucket } = this.store;
    const what = `writing ${this.key.filename}`;
    if (this.state.uploadId === undefined) {
      this.state.objectKey = await attempt(what, () => this.store.firstFreeKey(this.key.filename));
      const Metadata = objectMetadata(this.state.token, this.key.hash, this.expectedMetadata, this.store.umask);
      const Key = this.state.objectKey;
      const created = await attempt(what, () => client.send(new CreateMultipartUploadCommand({ Bucket, Key, Metadata })));
      this.state.uploadId = created.UploadId!;
      this.store.uploadIdsInUse.add(created.UploadId!);
    }
    const PartNumber = this.state.parts.length + 1;
    const put = await attempt(what, () => client.send(new UploadPartCommand({ Bucket, Key: this.state.objectKey, UploadId: this.state.uploadId, PartNumber, Body: body, ContentLength: body.length })));
    this.state.parts.push({ size: body.length, etag: put.ETag ?? '' });
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
    if (this.state.uploadId !== undefined && this.pendingBytes > 0) {
      const body = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      await this.storePart(body, this.hasher!.save());
    }
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
    this.pending = [];
    this.pendingBytes = 0;
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
    if (!this.broken && this.pendingBytes > 0 && (!this.hasPendingTail || this.pendingBytes !== this.state.tail)) {
      const body = Buffer.concat(this.pending);
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
    await this.store.deleteUpload(this.id, this.state);
    this.pending = [];
    this.pendingBytes = 0;
    await this.release();
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

/** Hashes as it takes bytes; memory bounded by one part (see S3Upload.take). */
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
