/**
 * The upload store on S3-compatible object storage (Ceph's RADOS Gateway, MinIO, AWS, …): an
 * inbox at `s3://bucket/prefix` that several receivers may share. See docs/S3.md for the design
 * and the semantics of the gateways it rests on.
 *
 * - Uploads are multipart uploads of parts of `partBytes` (8 MiB; at least 5 MiB, S3's minimum
 *   but for the last part): one part's buffer per upload is the memory an upload holds, besides
 *   the parts going up, at most `partsInFlight` (4) for the whole store: a part that fills goes
 *   up while the next one fills (s3-upload.ts).
 *   A file that fits in one part is one PutObject at its commit.
 * - All upload state lives in the bucket (upload-state.ts), so a restart, or another receiver,
 *   resumes it; a lease in the bucket (bucket-lease.ts) keeps two receivers from writing one
 *   upload at once, beside the in-process takeover of src/storage/leases.ts.
 * - No-replace holds on Ceph (which ignores If-None-Match on CompleteMultipartUpload) and on AWS:
 *   a commit first claims the name with a conditional PutObject of a marker, then looks whether
 *   the name is taken, and only then places the object (with If-None-Match: * as well, which
 *   AWS honours on both calls and Ceph on PutObject).
 */
import {
  AbortMultipartUploadCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { FtError } from '../../errors.js';
import { createResumableHasher } from '../../resumable-hashing.js';
import type { ConflictPolicy } from '../conflict-policy.js';
import { Leases, TAKEOVER_WAIT_MS } from '../leases.js';
import { currentUmask } from '../local/file-metadata.js';
import { nameVariants } from '../local/inbox-names.js';
import { PARTIAL_LIMITS, PARTIAL_SWEEP_INTERVAL_MS, peerGroup, type PartialLimitOptions, type PartialLimits } from '../local/partials.js';
import type {
  OpenOptions,
  PartialListing,
  PartialUpload,
  StoreCapabilities,
  StoredIdentity,
  TargetState,
  Upload,
  UploadKey,
  UploadStore,
} from '../upload-store.js';
import { BucketLease, leaseIsLive } from './bucket-lease.js';
import { Layout } from './layout.js';
import { attempt, deleteObject, getJson, headObject, isNotFound, putIfAbsent, storeError, type S3Location } from './s3-client.js';
import { PartSlots } from './part-slots.js';
import { S3Upload } from './s3-upload.js';
import { newState, parseUploadState, partsBytes, type UploadState } from './upload-state.js';

const MiB = 1024 * 1024;
/** A part's size by default: the memory one upload holds while its part fills. */
export const S3_PART_BYTES = 8 * MiB;
/**
 * Parts going up at once, all uploads together (as many as @aws-sdk/lib-storage's Upload has by
 * default): receiving goes on while they do, and their buffers are the memory this adds.
 */
export const S3_PARTS_IN_FLIGHT = 4;
/** S3's smallest part but the last. */
export const S3_MIN_PART_BYTES = 5 * MiB;
/** S3's most parts in one upload. */
const MAX_PARTS = 10_000;
/** Uploads of at most this many bytes are never kept for resume (as the local store's small bodies). */
export const S3_SMALL_UPLOAD_BYTES = 1 * MiB;
/** S3 keys are at most 1024 bytes. */
const MAX_KEY_BYTES = 1024;
/** At most this many kept uploads are listed (as the local store's listing). */
const SCAN_LIMIT = 65_536;

export interface S3UploadStoreOptions {
  client: S3Client;
  location: S3Location;
  /** Shown to the receiver's user only (never to a peer): the endpoint, for messages. */
  endpoint?: string;
  onConflict?: ConflictPolicy;
  partialLimits?: PartialLimitOptions;
  takeoverWaitMs?: number;
  partBytes?: number;
  /** Parts going up at once, all uploads together. @default S3_PARTS_IN_FLIGHT */
  partsInFlight?: number;
  smallUploadBytes?: number;
  /** The bucket lease's lifetime without renewal (bucket-lease.ts). */
  leaseTtlMs?: number;
  /** Bits taken away from the modes kept as metadata (ft-mode), as the local store's umask. @default the process's umask */
  umask?: number;
  /** close() destroys the client (it was made for this store). @default false */
  ownsClient?: boolean;
}

const CAPABILITIES: StoreCapabilities = {
  // The claim on a name and the look that follows are atomic among receivers sharing the bucket.
  atomicNoReplace: true,
  // Buckets have no free space to tell.
  freeSpace: false,
  lateSize: false,
  durableUploads: true,
  // Kept as the object's user metadata (object-metadata.ts); folders are marker objects (`name/`).
  metadata: true,
};

export class S3UploadStore implements UploadStore {
  readonly capabilities = CAPABILITIES;
  readonly sweepIntervalMs = PARTIAL_SWEEP_INTERVAL_MS;
  readonly privateLocation: string;
  readonly policy: ConflictPolicy;
  readonly limits: PartialLimits;
  /** @internal */ readonly layout: Layout;
  /** @internal */ readonly client: S3Client;
  /** @internal */ readonly partBytes: number;
  /** @internal */ readonly smallUploadBytes: number;
  /** @internal */ readonly leaseTtlMs: number | undefined;
  /** @internal */ readonly umask: number;
  private readonly takeoverWaitMs: number;
  private readonly ownsClient: boolean;
  private readonly leases = new Leases();
  /** Resumable uploads held here, by id: their peer group (the quotas count them before the bucket shows them). */
  private readonly heldHere = new Map<string, string>();
  /** @internal Multipart uploads in use here, which expiry must not abort. */
  readonly uploadIdsInUse = new Set<string>();
  /** @internal The parts in flight (s3-upload.ts), store-wide. */
  readonly partSlots: PartSlots;

  private constructor(options: S3UploadStoreOptions) {
    this.client = options.client;
    this.layout = new Layout(options.location);
    const { bucket, prefix } = options.location;
    this.privateLocation = `s3://${bucket}${prefix === '' ? '' : `/${prefix}`}`;
    this.policy = options.onConflict ?? 'rename';
    this.limits = { ...PARTIAL_LIMITS, ...definedOnly(options.partialLimits ?? {}) };
    this.takeoverWaitMs = options.takeoverWaitMs ?? TAKEOVER_WAIT_MS;
    this.partBytes = options.partBytes ?? S3_PART_BYTES;
    this.partSlots = new PartSlots(options.partsInFlight ?? S3_PARTS_IN_FLIGHT, this.partBytes);
    this.smallUploadBytes = options.smallUploadBytes ?? S3_SMALL_UPLOAD_BYTES;
    this.leaseTtlMs = options.leaseTtlMs;
    this.umask = options.umask ?? currentUmask();
    this.ownsClient = options.ownsClient === true;
  }

  /** Checks that the bucket is there and ours to use (one line on failure), then serves it. */
  static async open(options: S3UploadStoreOptions): Promise<S3UploadStore> {
    const { partBytes = S3_PART_BYTES, takeoverWaitMs = TAKEOVER_WAIT_MS, partsInFlight = S3_PARTS_IN_FLIGHT } = options;
    if (!Number.isSafeInteger(partsInFlight) || partsInFlight < 1) {
      throw new FtError('USAGE', `Expected partsInFlight to be a whole number of at least 1, got ${JSON.stringify(partsInFlight)}`);
    }
    if (!Number.isSafeInteger(partBytes) || partBytes < S3_MIN_PART_BYTES || partBytes % 32 !== 0) {
      throw new FtError('USAGE', `Expected partBytes to be a multiple of 32 of at least ${S3_MIN_PART_BYTES}, got ${partBytes}`);
    }
    if (!Number.isSafeInteger(takeoverWaitMs) || takeoverWaitMs < 0) {
      throw new FtError('USAGE', `Expected takeoverWaitMs to be a whole number of milliseconds, got ${JSON.stringify(takeoverWaitMs)}`);
    }
    const store = new S3UploadStore(options);
    const where = `${store.privateLocation}${options.endpoint !== undefined ? ` at ${options.endpoint}` : ''}`;
    await attempt(`cannot use ${where}`, () => options.client.send(new HeadBucketCommand({ Bucket: options.location.bucket }))).catch((error: FtError) => {
      // HeadBucket answers a missing bucket with a bare 404.
      if (isNotFound(error.cause)) throw new FtError('WRITE_FAILED', `cannot use ${where}: the bucket does not exist`, {}, { cause: error.cause });
      throw error;
    });
    return store;
  }

  get bucket(): string {
    return this.layout.location.bucket;
  }

  async inspect(components: readonly string[]): Promise<TargetState> {
    const path = components.join('/');
    const key = this.layout.object(path);
    if (Buffer.byteLength(key) > MAX_KEY_BYTES) return { kind: 'conflict', reason: `"${path}" is longer than the object store allows` };
    const head = await attempt(`looking up ${path}`, () => headObject(this.client, this.bucket, key));
    if (head !== undefined && this.policy === 'reject') return { kind: 'conflict', reason: `"${path}" exists already` };
    if (this.policy !== 'rename' && (await this.isFolder(key))) return { kind: 'conflict', reason: `"${path}" is a folder` };
    return { kind: 'free' };
  }

  private async isFolder(key: string): Promise<boolean> {
    const listed = await attempt('listing the inbox', () => this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${key}/`, MaxKeys: 1 })));
    return (listed.KeyCount ?? 0) > 0;
  }

  open(key: UploadKey, options: OpenOptions): Promise<Upload> {
    return this.acquire(key, options, false) as Promise<Upload>;
  }

  resume(key: UploadKey, options: OpenOptions): Promise<Upload | undefined> {
    return this.acquire(key, options, true);
  }

  private async acquire(key: UploadKey, options: OpenOptions, existing: boolean): Promise<S3Upload | undefined> {
    const { size } = key;
    if (size === undefined) throw new FtError('INTERNAL', 'the S3 store needs an upload’s size when it is opened (no lateSize)');
    if (Math.ceil(size / this.partBytes) > MAX_PARTS) {
      throw new FtError('TOO_LARGE', `${size} bytes is over this store's limit of ${MAX_PARTS * this.partBytes} (${MAX_PARTS} parts of ${this.partBytes})`);
    }
    const id = Layout.uploadId(key.owner, key.filename, size);
    const started = Date.now();
    const local = await this.leases.take(id, { signal: options.signal, waitMs: this.takeoverWaitMs });
    let bucketLease: BucketLease | undefined;
    try {
      if (existing && (await headObject(this.client, this.bucket, this.layout.stateOf(id))) === undefined) {
        // Nothing kept: no lease taken, nothing made in the bucket.
        local.release();
        return undefined;
      }
      const group = peerGroup(options.peer);
      const waitMs = Math.max(0, this.takeoverWaitMs - (Date.now() - started));
      // Only an upload that may be kept needs the bucket's lease: a small one lives in memory.
      const mayKeep = existing || options.record === true || size > this.smallUploadBytes;
      if (mayKeep) bucketLease = await BucketLease.take({ client: this.client, bucket: this.bucket, key: this.layout.leaseOf(id), waitMs, signal: options.signal, ttlMs: this.leaseTtlMs });
      let state = mayKeep ? await this.loadState(id, key, size) : undefined;
      if (existing && state === undefined) {
        await bucketLease?.release();
        local.release();
        return undefined;
      }
      const resumable = state !== undefined || options.record === true || size > this.smallUploadBytes;
      let fresh = false;
      if (state === undefined) {
        state = newState(key, size, group, options.peer, options.record === true, this.layout.object(key.filename), await createResumableHasher());
        fresh = true;
      }
      const upload = new S3Upload(this, key, id, state, resumable, local, bucketLease, options.metadata);
      if (resumable) this.heldHere.set(id, state.peer);
      if (fresh && resumable) {
        await this.makeRoom(id, group);
        // Recorded at once, so that a restart (or another receiver) finds it, and the quotas count it.
        await upload.saveState();
        await attempt('recording an upload', () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.layout.peerMarker(group, id), Body: '', ContentLength: 0 })));
      }
      return upload;
    } catch (error) {
      this.heldHere.delete(id);
      await bucketLease?.release();
      local.release();
      throw storeError(error, `opening the upload of ${key.filename}`);
    }
  }

  /** The kept state of upload `id` checked against the bucket (ListParts, the tail), or undefined (then nothing is kept). */
  private async loadState(id: string, key: UploadKey, size: number): Promise<UploadState | undefined> {
    const got = await getJson(this.client, this.bucket, this.layout.stateOf(id));
    if (got === undefined) return undefined;
    const state = parseUploadState(got.value, { owner: key.owner, filename: key.filename, size });
    if (state === undefined || (state.hash !== undefined && key.hash !== undefined && state.hash !== key.hash)) {
      // Unusable, or of other content (the same name and size): dropped, the upload starts afresh.
      await this.deleteUpload(id, state);
      return undefined;
    }
    if (state.uploadId !== undefined && !(await this.partsAreThere(state))) {
      await this.deleteUpload(id, state);
      return undefined;
    }
    if (state.tail > 0) {
      const tail = await headObject(this.client, this.bucket, this.layout.tailOf(id));
      if (tail?.ContentLength !== state.tail) {
        // Torn between writing the tail and the state: resume after the last whole part.
        state.tail = 0;
        delete state.tailHashState;
      }
    }
    return state;
  }

  /** Whether the parts the state lists are those the multipart upload holds (ListParts). */
  private async partsAreThere(state: UploadState): Promise<boolean> {
    const found = new Map<number, { size: number; etag: string }>();
    let marker: string | undefined;
    try {
      for (;;) {
        const listed = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: state.objectKey, UploadId: state.uploadId, PartNumberMarker: marker }));
        for (const part of listed.Parts ?? []) found.set(part.PartNumber!, { size: part.Size ?? -1, etag: part.ETag ?? '' });
        if (!listed.IsTruncated) break;
        marker = listed.NextPartNumberMarker;
      }
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
    return state.parts.every((part, i) => found.get(i + 1)?.size === part.size && found.get(i + 1)?.etag === part.etag);
  }

  /**
   * Room for one more kept upload of `group`: at the per-peer cap its least recently written
   * unheld upload goes, at the total cap the least recently written unheld one of anyone; BUSY
   * when every upload that could go is held (here, or by another receiver's live lease).
   */
  private async makeRoom(id: string, group: string): Promise<void> {
    const { maxPartials, maxPartialsPerPeer } = this.limits;
    const mine = await this.listKeys(this.layout.peerDir(group));
    const ids = new Set(mine.map((entry) => entry.key.slice(this.layout.peerDir(group).length)));
    for (const [held, of] of this.heldHere) if (of === group) ids.add(held);
    ids.delete(id);
    if (ids.size >= maxPartialsPerPeer && !(await this.evictOne(mine.map((entry) => ({ ...entry, id: entry.key.slice(this.layout.peerDir(group).length) }))))) {
      throw new FtError('BUSY', `${maxPartialsPerPeer} uploads from your address are in progress here already; try again shortly`);
    }
    const all = (await this.listKeys(this.layout.uploads)).filter((entry) => entry.key.endsWith('.json'));
    const every = new Set(all.map((entry) => entry.key.slice(this.layout.uploads.length, -'.json'.length)));
    for (const held of this.heldHere.keys()) every.add(held);
    every.delete(id);
    if (every.size >= maxPartials && !(await this.evictOne(all.map((entry) => ({ ...entry, id: entry.key.slice(this.layout.uploads.length, -'.json'.length) }))))) {
      throw new FtError('BUSY', `this receiver has ${maxPartials} uploads in progress, its limit; try again shortly`);
    }
  }

  /** Deletes the least recently written upload among `candidates` that nobody holds. */
  private async evictOne(candidates: Array<{ id: string; lastModified: number }>): Promise<boolean> {
    for (const { id } of [...candidates].sort((a, b) => a.lastModified - b.lastModified)) {
      if (this.heldHere.has(id) || this.leases.has(id)) continue;
      if (await leaseIsLive(this.client, this.bucket, this.layout.leaseOf(id))) continue;
      const got = await getJson(this.client, this.bucket, this.layout.stateOf(id));
      await this.deleteUpload(id, got?.value as UploadState | undefined);
      return true;
    }
    return false;
  }

  /**
   * @internal The key a multipart upload of `name` is made for: the name's, or under rename its
   * first variant free now (a multipart upload can be completed only under the key it was made for).
   */
  async firstFreeKey(name: string): Promise<string> {
    const components = name.split('/');
    const last = components.pop()!;
    if (this.policy !== 'rename') return this.layout.object(name);
    for (const candidate of nameVariants(last)) {
      const key = this.layout.object([...components, candidate].join('/'));
      if ((await headObject(this.client, this.bucket, key)) === undefined) return key;
    }
    return this.layout.object(name);
  }

  /** @internal Every key under `prefix`, with its time (all pages). */
  async listKeys(prefix: string): Promise<Array<{ key: string; lastModified: number }>> {
    const found: Array<{ key: string; lastModified: number }> = [];
    let token: string | undefined;
    do {
      const listed = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const item of listed.Contents ?? []) found.push({ key: item.Key!, lastModified: item.LastModified?.getTime() ?? 0 });
      token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
    } while (token !== undefined);
    return found;
  }

  /** @internal Deletes all an upload keeps in the bucket (its multipart upload, tail, state, markers); never throws. */
  async deleteUpload(id: string, state: Partial<UploadState> | undefined): Promise<void> {
    const quietly = (call: Promise<unknown>) => call.catch(() => undefined);
    if (state?.uploadId !== undefined && typeof state.objectKey === 'string') await quietly(this.abortMultipart(state.objectKey, state.uploadId));
    await quietly(deleteObject(this.client, this.bucket, this.layout.tailOf(id)));
    await quietly(deleteObject(this.client, this.bucket, this.layout.stateOf(id)));
    if (typeof state?.peer === 'string') await quietly(deleteObject(this.client, this.bucket, this.layout.peerMarker(state.peer, id)));
    await quietly(deleteObject(this.client, this.bucket, this.layout.leaseOf(id)));
  }

  /** @internal */
  abortMultipart(Key: string, UploadId: string) {
    return this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId }));
  }

  /** @internal An upload let go: no longer counted as held here. */
  letGo(id: string): void {
    this.heldHere.delete(id);
  }

  /**
   * An empty folder: a marker object `name/` (as S3 consoles make them), zero bytes. A file under
   * a folder's name on the way is CONFLICT, or under rename gives that folder a variant.
   */
  async makeFolder(components: readonly string[]): Promise<string> {
    const names: string[] = [];
    for (const component of components) names.push(await this.folderName(names, component));
    const path = names.join('/');
    const Key = `${this.layout.object(path)}/`;
    if (Buffer.byteLength(Key) > MAX_KEY_BYTES) throw new FtError('CONFLICT', `"${path}" is longer than the object store allows`);
    // One there already is fine: created only if absent, never rewritten.
    await attempt(`making the folder ${path}`, () => putIfAbsent(this.client, { Bucket: this.bucket, Key, Body: '', ContentLength: 0 }));
    return path;
  }

  /** `component` in the folder `parent`, or under rename its first variant, where no file has the name. */
  private async folderName(parent: readonly string[], component: string): Promise<string> {
    for (const candidate of this.policy === 'rename' ? nameVariants(component) : [component]) {
      const path = [...parent, candidate].join('/');
      if ((await attempt(`looking up ${path}`, () => headObject(this.client, this.bucket, this.layout.object(path)))) === undefined) return candidate;
    }
    throw new FtError('CONFLICT', `"${[...parent, component].join('/')}" is a file`);
  }

  async unchanged(path: string, identity: StoredIdentity): Promise<boolean> {
    const head = await headObject(this.client, this.bucket, this.layout.object(path)).catch(() => undefined);
    if (head === undefined || typeof identity.etag !== 'string') return false;
    return head.ETag === identity.etag && head.ContentLength === identity.size && (head.Metadata?.['ft-id'] ?? '') === identity.id;
  }

  async freeSpace(): Promise<number | undefined> {
    return undefined;
  }

  async listPartials(ttlMs: number): Promise<PartialListing> {
    const listing: PartialListing = { partials: [], unreadable: [], truncated: false };
    const states = (await attempt('listing unfinished uploads', () => this.listKeys(this.layout.uploads))).filter((entry) => entry.key.endsWith('.json'));
    for (const { key } of states.slice(0, SCAN_LIMIT)) {
      const id = key.slice(this.layout.uploads.length, -'.json'.length);
      const entry = key.slice(this.layout.state.length);
      const got = await attempt('reading an unfinished upload', () => getJson(this.client, this.bucket, key));
      if (got === undefined) continue; // gone meanwhile
      const raw = got.value as Partial<UploadState> | undefined;
      const size = Number(id.slice(id.lastIndexOf('-') + 1));
      const state = typeof raw?.owner === 'string' && typeof raw.filename === 'string' ? parseUploadState(raw, { owner: raw.owner, filename: raw.filename, size }) : undefined;
      if (state === undefined || Layout.uploadId(state.owner, state.filename, state.size) !== id) {
        listing.unreadable.push({ entry, reason: 'not an upload state this store wrote' });
        continue;
      }
      const inUse = this.leases.has(id) || (await leaseIsLive(this.client, this.bucket, this.layout.leaseOf(id)).catch(() => false));
      const partial: PartialUpload = {
        name: state.filename,
        owner: state.owner,
        size: state.size,
        bytes: partsBytes(state) + state.tail,
        kind: state.recorded ? 'tus' : 'send',
        createdAt: state.createdAt,
        lastWriteAt: state.touchedAt,
        expiresAt: state.touchedAt + ttlMs,
        ...(state.address !== undefined ? { peer: state.address } : {}),
        inUse,
      };
      listing.partials.push(partial);
    }
    listing.partials.sort((a, b) => (a.name === b.name ? a.size - b.size || (a.owner < b.owner ? -1 : 1) : a.name < b.name ? -1 : 1));
    return { ...listing, truncated: states.length > SCAN_LIMIT };
  }

  /**
   * @internal After `placedId` was placed: what the same owner keeps of the same name at another
   * size (its source changed, and it was sent again) goes, unless in use. Never throws.
   */
  async dropOrphans(owner: string, filename: string, placedId: string): Promise<void> {
    try {
      const prefix = `${this.layout.uploads}${Layout.nameOf(owner, filename)}`;
      for (const { key } of await this.listKeys(prefix)) {
        if (!key.endsWith('.json')) continue;
        const id = key.slice(this.layout.uploads.length, -'.json'.length);
        if (id === placedId || this.leases.has(id)) continue;
        if (await leaseIsLive(this.client, this.bucket, this.layout.leaseOf(id))) continue;
        const got = await getJson(this.client, this.bucket, key);
        await this.deleteUpload(id, got?.value as UploadState | undefined);
      }
    } catch {
      // Left for expiry.
    }
  }

  async expire(ttlMs: number, now = Date.now()): Promise<string[]> {
    const deleted: string[] = [];
    const kept = new Set<string>();
    const states = (await attempt('listing unfinished uploads', () => this.listKeys(this.layout.uploads))).filter((entry) => entry.key.endsWith('.json'));
    for (const { key } of states) {
      const id = key.slice(this.layout.uploads.length, -'.json'.length);
      const got = await getJson(this.client, this.bucket, key).catch(() => undefined);
      const state = got?.value as Partial<UploadState> | undefined;
      if (typeof state?.uploadId === 'string') kept.add(state.uploadId);
      if (this.leases.has(id)) continue;
      const touched = typeof state?.touchedAt === 'number' ? state.touchedAt : (got?.lastModified?.getTime() ?? 0);
      if (touched + ttlMs > now) continue;
      if (await leaseIsLive(this.client, this.bucket, this.layout.leaseOf(id)).catch(() => true)) continue;
      await this.deleteUpload(id, state);
      deleted.push(typeof state?.filename === 'string' ? state.filename : id);
    }
    // Multipart uploads no state names (their state was lost, or never written): aborted once as old as the TTL.
    let marker: { key?: string; id?: string } = {};
    for (;;) {
      const listed = await attempt('listing multipart uploads', () =>
        this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.layout.base, KeyMarker: marker.key, UploadIdMarker: marker.id })),
      );
      for (const upload of listed.Uploads ?? []) {
        if (kept.has(upload.UploadId!) || this.uploadIdsInUse.has(upload.UploadId!)) continue;
        if ((upload.Initiated?.getTime() ?? now) + ttlMs > now) continue;
        await this.abortMultipart(upload.Key!, upload.UploadId!).catch(() => undefined);
        deleted.push(this.layout.pathOf(upload.Key!) ?? upload.Key!);
      }
      if (!listed.IsTruncated) break;
      marker = { key: listed.NextKeyMarker, id: listed.NextUploadIdMarker };
    }
    return deleted;
  }

  async close(): Promise<void> {
    // The leases' timers are unref'd and stop with their uploads; a client passed in is the caller's.
    if (this.ownsClient) this.client.destroy();
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
