/**
 * A lease on one upload held in the bucket, so that two receivers sharing it never write the
 * same upload at once. Taken with a conditional write (If-None-Match: * to create it, If-Match
 * on the ETag of an expired or released one to take it over), renewed by its holder, and it
 * expires if the holder dies. Another instance that wants the upload marks the lease (a
 * conditional write too); the holder sees the mark at its next renewal and lets go, as a newer
 * open() in the same process would make it (see src/storage/leases.ts).
 *
 * Nothing here deletes conditionally: Ceph 16's gateway ignores If-Match on DeleteObject, so a
 * lease is released by a conditional overwrite, and deleted only with its upload.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { FtError } from '../../errors.js';
import { deleteObject, getJson, putIfAbsent, putIfMatch } from './s3-client.js';

/**
 * How long a lease lives without renewal by default; its holder renews it every third of that.
 * Shorter than open()'s wait for a holder (TAKEOVER_WAIT_MS), so that a sender retrying on
 * another receiver after one died gets the upload within that wait.
 */
export const LEASE_TTL_MS = 8_000;
/** How often a wanted lease is looked at again while waiting for its holder to let go. */
const POLL_MS = 200;

interface LeaseBody {
  token: string;
  expiresAt: number;
  wantedAt?: number;
  released?: true;
}

function parseBody(value: unknown): LeaseBody | undefined {
  const body = value as Partial<LeaseBody> | undefined;
  if (typeof body?.token !== 'string' || typeof body.expiresAt !== 'number') return undefined;
  return body as LeaseBody;
}

export interface BucketLeaseOptions {
  client: S3Client;
  bucket: string;
  key: string;
  ttlMs?: number;
  /** Gives up waiting for another holder (BUSY); already aborted: no wait, and nobody is asked. */
  signal?: AbortSignal;
  /** At most this long (then BUSY). */
  waitMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

export class BucketLease {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private pins = 0;
  private done = false;
  private lastRenewed = Date.now();

  private constructor(
    private readonly options: BucketLeaseOptions,
    private readonly ttlMs: number,
    private readonly token: string,
  ) {
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(ttlMs / 3)));
    this.timer.unref();
  }

  /** Aborts when another instance wants the upload (and no commit is in progress), or the lease is lost. */
  get wanted(): AbortSignal {
    return this.controller.signal;
  }

  static async take(options: BucketLeaseOptions): Promise<BucketLease> {
    const { client, bucket: Bucket, key: Key, signal, waitMs } = options;
    const ttlMs = options.ttlMs ?? LEASE_TTL_MS;
    const token = `${process.pid}-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    const deadline = Date.now() + waitMs;
    const body = () => JSON.stringify({ token, expiresAt: Date.now() + ttlMs } satisfies LeaseBody);
    let asked = false;
    for (;;) {
      const created = await putIfAbsent(client, { Bucket, Key, Body: body() });
      if (created !== false) return new BucketLease(options, ttlMs, token);
      const got = await getJson(client, Bucket, Key);
      if (got === undefined) continue; // deleted meanwhile: create it
      const held = parseBody(got.value);
      if (held === undefined || held.released === true || held.expiresAt <= Date.now()) {
        const taken = await putIfMatch(client, { Bucket, Key, Body: body() }, got.etag);
        if (taken !== false) return new BucketLease(options, ttlMs, token);
        continue; // someone else was quicker: look again
      }
      if (signal?.aborted || Date.now() >= deadline) throw busy();
      if (!asked && held.wantedAt === undefined) {
        // Ask the holder to let go; failing means the lease changed (renewed, say): asked again at the next look.
        asked = (await putIfMatch(client, { Bucket, Key, Body: JSON.stringify({ ...held, wantedAt: Date.now() }) }, got.etag)) !== false;
      }
      await sleep(Math.min(POLL_MS, Math.max(0, deadline - Date.now())));
      if (signal?.aborted) throw busy();
    }
  }

  /** While pinned (a commit in progress) a request to let go is not acted on. Returns the unpin. */
  pin(): () => void {
    this.pins++;
    let unpinned = false;
    return () => {
      if (unpinned) return;
      unpinned = true;
      this.pins--;
    };
  }

  /** Renews the lease, and aborts `wanted` when another instance asks for it or took it. */
  private async renew(): Promise<void> {
    if (this.done) return;
    const { client, bucket: Bucket, key: Key } = this.options;
    try {
      const got = await getJson(client, Bucket, Key);
      const held = parseBody(got?.value);
      if (this.done) return;
      if (got === undefined || held?.token !== this.token) return this.lose('this upload was taken over by another receiver');
      const renewed = await putIfMatch(client, { Bucket, Key, Body: JSON.stringify({ ...held, expiresAt: Date.now() + this.ttlMs }) }, got.etag);
      if (renewed === false) return; // changed meanwhile (asked for, say): the next renewal sees it
      this.lastRenewed = Date.now();
      if (held.wantedAt !== undefined && this.pins === 0) this.lose('another receiver sharing the bucket resumes this upload');
    } catch {
      // The store is unreachable: the lease may lapse, and then it is lost.
      if (Date.now() - this.lastRenewed > this.ttlMs && !this.done) this.lose('the lease on this upload lapsed: the object store did not answer');
    }
  }

  private lose(reason: string): void {
    if (!this.controller.signal.aborted) this.controller.abort(new FtError('BUSY', reason));
  }

  /** Lets go (a conditional overwrite marks it released); never throws. Idempotent. */
  async release(): Promise<void> {
    if (this.stop()) return;
    const { client, bucket: Bucket, key: Key } = this.options;
    try {
      const got = await getJson(client, Bucket, Key);
      const held = parseBody(got?.value);
      if (got === undefined || held?.token !== this.token) return;
      await putIfMatch(client, { Bucket, Key, Body: JSON.stringify({ token: this.token, expiresAt: 0, released: true } satisfies LeaseBody) }, got.etag);
    } catch {
      // It expires on its own.
    }
  }

  /** The upload is gone: the lease object goes with it. Never throws. */
  async drop(): Promise<void> {
    this.stop();
    const { client, bucket, key } = this.options;
    await deleteObject(client, bucket, key).catch(() => undefined);
  }

  private stop(): boolean {
    if (this.done) return true;
    this.done = true;
    clearInterval(this.timer);
    this.timer = undefined;
    return false;
  }
}

/** Whether the lease at `key` is held by a live holder now (for expiry and eviction). */
export async function leaseIsLive(client: S3Client, bucket: string, key: string): Promise<boolean> {
  const held = parseBody((await getJson(client, bucket, key))?.value);
  return held !== undefined && held.released !== true && held.expiresAt > Date.now();
}

function busy(): FtError {
  return new FtError('BUSY', 'another receiver sharing the bucket is writing this upload; try again shortly');
}
