/**
 * Places a verified upload in the bucket under its name or a variant, never replacing a
 * different object: claim the name (a marker created with If-None-Match: *), look, then place
 * (PutObject or CompleteMultipartUpload, with If-None-Match: * too where the service honours it).
 * See docs/S3.md.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  GetObjectCommand,
  PutObjectCommand,
  type HeadObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { FtError } from '../../errors.js';
import { createResumableHasher } from '../../resumable-hashing.js';
import { nameVariants } from '../local/inbox-names.js';
import type { Placed, StoredIdentity } from '../upload-store.js';
import { attempt, deleteObject, getJson, headObject, isConflict, isPreconditionFailed, putIfAbsent, putIfMatch } from './s3-client.js';
import type { S3UploadStore } from './s3-store.js';
import { sameFtMetadata } from './object-metadata.js';
import type { UploadState } from './upload-state.js';

const MiB = 1024 * 1024;
/** CopyObject's limit; larger objects keep the metadata they were created with. */
const MAX_COPY_BYTES = 5 * 1024 * MiB;
/** How long a claim on a name holds while its commit places the object. */
const CLAIM_TTL_MS = 5 * 60_000;

/** Places a verified upload under its name or a variant, never replacing a different object (see the file's comment). */
export class Placer {
  /** The multipart upload's key was taken by other content: the upload cannot be placed any more. */
  keyLost = false;

  constructor(
    private readonly store: S3UploadStore,
    private readonly state: UploadState,
    private readonly hash: string,
    private readonly pending: Buffer[],
    /** What the object is to carry (object-metadata.ts). */
    private readonly metadata: Record<string, string>,
  ) {}

  private get client() {
    return this.store.client;
  }

  private get Bucket() {
    return this.store.bucket;
  }

  /**
   * Tries the name, then (under rename) its variants. A multipart upload can only be completed
   * under the key it was made for (chosen when its first part went up: the name, or its first
   * free variant then), so any other candidate can only be the same content already there.
   */
  async place(components: readonly string[]): Promise<{ placed: Placed; moved: boolean }> {
    const last = components[components.length - 1]!;
    const parent = components.slice(0, -1);
    const candidates = this.store.policy === 'rename' ? nameVariants(last) : [last];
    const multipart = this.state.uploadId !== undefined;
    for (const candidate of candidates) {
      const path = [...parent, candidate].join('/');
      const Key = this.store.layout.object(path);
      if (multipart && Key !== this.state.objectKey) {
        const head = await attempt(`placing ${path}`, () => headObject(this.client, this.Bucket, Key));
        if (head !== undefined && (await this.sameContent(head, Key))) return { placed: { path, deduplicated: true, identity: identityOf(head) }, moved: false };
        if (this.store.policy === 'reject') throw new FtError('CONFLICT', `"${path}" exists already`);
        continue;
      }
      const outcome = await this.tryName(path);
      if (outcome !== 'taken') return outcome;
      if (this.store.policy === 'reject') throw new FtError('CONFLICT', `"${path}" exists already`);
    }
    if (multipart) {
      // Its key was taken meanwhile by other content (another receiver's commit, say): the parts
      // can go nowhere else, so the upload goes and the sender's next attempt picks a free name.
      this.keyLost = true;
      throw new FtError('CONFLICT', `the name ${this.store.layout.pathOf(this.state.objectKey)} was taken while this upload was in progress; send it again`);
    }
    throw new FtError('CONFLICT', `no free name was left for ${components.join('/')}`);
  }

  /** Claims `path`, looks, and places there: 'taken' when another object (or commit) has it. */
  private async tryName(path: string): Promise<{ placed: Placed; moved: boolean } | 'taken'> {
    const Key = this.store.layout.object(path);
    const claimKey = this.store.layout.nameClaim(path);
    const what = `placing ${path}`;
    const claimed = await attempt(what, () => this.claim(claimKey));
    if (!claimed) {
      if (this.store.policy === 'overwrite') throw new FtError('BUSY', `another upload is being placed as ${path}; try again shortly`);
      return 'taken';
    }
    try {
      const head = await attempt(what, () => headObject(this.client, this.Bucket, Key));
      if (head !== undefined) {
        if (await this.sameContent(head, Key)) return { placed: { path, deduplicated: true, identity: identityOf(head) }, moved: false };
        if (this.store.policy !== 'overwrite') return 'taken';
      }
      const placedHere = await attempt(what, () => this.put(Key, head === undefined));
      if (!placedHere) return 'taken';
      const after = await attempt(what, () => headObject(this.client, this.Bucket, Key));
      if (after === undefined) throw new FtError('WRITE_FAILED', `${what}: the object store does not show the object just placed`);
      let identity = identityOf(after);
      if (!sameFtMetadata(after.Metadata, this.metadata) && (after.ContentLength ?? 0) <= MAX_COPY_BYTES) {
        // Not known, or other, when the multipart upload began (the hash of a tus upload, the time
        // of a commit without a header's): set now, by a copy onto itself.
        await attempt(what, () =>
          this.client.send(
            new CopyObjectCommand({ Bucket: this.Bucket, Key, CopySource: encodeURI(`${this.Bucket}/${Key}`), MetadataDirective: 'REPLACE', Metadata: this.metadata }),
          ),
        );
        // The identity as HeadObject will show it later (the copy result's ETag is quoted otherwise on RGW).
        const copied = await attempt(what, () => headObject(this.client, this.Bucket, Key));
        if (copied === undefined) throw new FtError('WRITE_FAILED', `${what}: the object store does not show the object just placed`);
        identity = identityOf(copied);
      }
      return { placed: { path, deduplicated: false, identity }, moved: true };
    } finally {
      await deleteObject(this.client, this.Bucket, claimKey).catch(() => undefined);
    }
  }

  /** Takes the claim on a name: a marker created only if absent, or taken over once expired. */
  private async claim(claimKey: string): Promise<boolean> {
    const Body = JSON.stringify({ token: this.state.token, expiresAt: Date.now() + CLAIM_TTL_MS });
    if ((await putIfAbsent(this.client, { Bucket: this.Bucket, Key: claimKey, Body })) !== false) return true;
    const got = await getJson(this.client, this.Bucket, claimKey);
    if (got === undefined) return (await putIfAbsent(this.client, { Bucket: this.Bucket, Key: claimKey, Body })) !== false;
    const expiresAt = (got.value as { expiresAt?: unknown } | undefined)?.expiresAt;
    if (typeof expiresAt === 'number' && expiresAt > Date.now()) return false;
    return (await putIfMatch(this.client, { Bucket: this.Bucket, Key: claimKey, Body }, got.etag)) !== false;
  }

  /** Whether the object there is this content: its hash metadata, or (without one) its bytes. */
  private async sameContent(head: HeadObjectCommandOutput, Key: string): Promise<boolean> {
    if (head.ContentLength !== this.state.size) return false;
    const recorded = head.Metadata?.['ft-hash'];
    if (recorded !== undefined) return recorded === this.hash;
    // Not placed by ft: read it (once; what ft places carries its hash).
    const got = await this.client.send(new GetObjectCommand({ Bucket: this.Bucket, Key }));
    const hasher = await createResumableHasher();
    for await (const chunk of got.Body as AsyncIterable<Uint8Array>) hasher.update(chunk);
    return hasher.digest() === this.hash;
  }

  /**
   * The object goes up under Key: the buffered bytes in one PutObject, or the multipart upload
   * completed (copied part by part first when it was made for another key). False when Key
   * turned out taken (a conditional write refused).
   */
  private async put(Key: string, mustBeNew: boolean): Promise<boolean> {
    const condition = mustBeNew ? { IfNoneMatch: '*' } : {};
    try {
      if (this.state.uploadId === undefined) {
        const Body = Buffer.concat(this.pending);
        await this.client.send(new PutObjectCommand({ Bucket: this.Bucket, Key, Body, ContentLength: Body.length, Metadata: this.metadata, ...condition }));
        return true;
      }
      if (this.state.objectKey !== Key) throw new FtError('INTERNAL', `a multipart upload made for ${this.state.objectKey} cannot be placed at ${Key}`);
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.Bucket,
          Key,
          UploadId: this.state.uploadId,
          MultipartUpload: { Parts: this.state.parts.map((part, i) => ({ PartNumber: i + 1, ETag: part.etag })) },
          ...condition,
        }),
      );
      return true;
    } catch (error) {
      if (isPreconditionFailed(error) || isConflict(error)) return false;
      throw error;
    }
  }

}

export function identityOf(head: HeadObjectCommandOutput): StoredIdentity {
  return { etag: head.ETag ?? '', size: head.ContentLength ?? 0, id: head.Metadata?.['ft-id'] ?? '' };
}

