/**
 * Several receivers sharing one bucket, for real: two S3 stores, each on its own gateway of one
 * Ceph cluster (test/helpers/ceph.ts). An upload let go on one resumes on the other; one whose
 * holder died resumes from its last whole part once the lease lapses; a holder is asked to let
 * go through the bucket; two commits racing for one name never replace each other's file. And
 * the store's errors (endpoint unreachable, access denied, bucket missing) are one line, coded.
 */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import type { ConflictPolicy } from '../../src/storage/conflict-policy.js';
import { S3UploadStore, S3_MIN_PART_BYTES } from '../../src/storage/s3/s3-store.js';
import type { Upload, UploadStore } from '../../src/storage/upload-store.js';
import { content, expectFtError } from '../contract/upload-store.contract.js';
import { cephSkipReason, s3ClientOptions, useCephCluster } from '../helpers/ceph.js';
import { freePort } from '../helpers/free-port.js';

if (cephSkipReason) console.warn(`skipping the shared-bucket tests: ${cephSkipReason}`);

const MiB = 1024 * 1024;
const OWNER = 'a'.repeat(64);
const PEER = '192.0.2.1';
const PART = S3_MIN_PART_BYTES;

/** Writes `bytes` from 0 and leaves the body unfinished (as a connection that dropped). */
async function writeAll(upload: Upload, from: number, bytes: Buffer): Promise<void> {
  const writer = await upload.append(from, upload.key.size! - from);
  for (let at = 0; at < bytes.length; at += 256 * 1024) await writer.write(bytes.subarray(at, at + 256 * 1024));
}

describe.skipIf(cephSkipReason !== undefined)(`receivers sharing a bucket${cephSkipReason ? ` (skipped: ${cephSkipReason})` : ''}`, () => {
  const ceph = useCephCluster(2);
  let buckets = 0;

  /** Two stores on one fresh bucket, through gateway 1 and gateway 2. */
  async function twoReceivers(options: { onConflict?: ConflictPolicy; leaseTtlMs?: number; takeoverWaitMs?: number } = {}) {
    const cluster = ceph.get();
    const bucket = `ft-shared-${++buckets}`;
    await cluster.createBucket(bucket);
    const open = (gateway: number) =>
      S3UploadStore.open({ client: cluster.client(gateway), location: { bucket, prefix: 'team' }, partBytes: PART, smallUploadBytes: 1 * MiB, ...options });
    return { a: await open(0), b: await open(1), bucket, client: cluster.client(0) };
  }

  async function objectBytes(client: S3Client, Bucket: string, Key: string): Promise<Buffer> {
    const got = await client.send(new GetObjectCommand({ Bucket, Key }));
    return Buffer.from(await got.Body!.transformToByteArray());
  }

  it('an upload let go on one receiver resumes on the other at the same offset, and its hash goes on', async () => {
    const { a, b, bucket, client } = await twoReceivers();
    const bytes = content(12 * MiB + 12345, 1);
    const key = { owner: OWNER, filename: 'shared/big.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const cut = 7 * MiB + 3; // one whole part and a tail
    const first = await a.open(key, { peer: PEER });
    await writeAll(first, 0, bytes.subarray(0, cut));
    await first.abandon();
    const second = await b.open(key, { peer: PEER });
    expect(second.offset).toBe(cut);
    expect(await second.hashPrefix()).toBe(await hashBytes(bytes.subarray(0, cut)));
    const placed = await commitRest(second, bytes, cut);
    expect(placed.path).toBe('shared/big.bin');
    expect((await objectBytes(client, bucket, 'team/shared/big.bin')).equals(bytes)).toBe(true);
  });

  it('a holder that died (no let-go) leaves its whole parts: another receiver resumes there once the lease lapses', async () => {
    const { a, b } = await twoReceivers({ leaseTtlMs: 1500, takeoverWaitMs: 20_000 });
    const bytes = content(11 * MiB, 2);
    const key = { owner: OWNER, filename: 'crashed.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const dying = await a.open(key, { peer: PEER });
    await writeAll(dying, 0, bytes.subarray(0, 2 * PART + 1000));
    // "Dies": never lets go, never renews (its timer stopped, as with a killed process).
    stopRenewals(dying);
    const started = Date.now();
    const resumed = await b.open(key, { peer: PEER });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(resumed.offset).toBe(2 * PART); // the tail was only in the dead receiver's memory
    expect(await resumed.hashPrefix()).toBe(await hashBytes(bytes.subarray(0, 2 * PART)));
    await commitRest(resumed, bytes, 2 * PART);
  });

  it('a receiver asked through the bucket lets go: the other takes the upload over and sees what was kept', async () => {
    const { a, b } = await twoReceivers({ leaseTtlMs: 900, takeoverWaitMs: 20_000 });
    const bytes = content(8 * MiB, 3);
    const key = { owner: OWNER, filename: 'wanted.bin', size: bytes.length, hash: await hashBytes(bytes) };
    const holder = await a.open(key, { peer: PEER });
    await writeAll(holder, 0, bytes.subarray(0, PART + 10));
    holder.onRevoked(() => void holder.abandon());
    const taker = await b.open(key, { peer: PEER });
    expect(holder.revoked.aborted).toBe(true);
    expect(taker.offset).toBe(PART + 10);
    await commitRest(taker, bytes, PART + 10);
  });

  it.each([
    ['reject', 1],
    ['reject', 6 * MiB],
    ['rename', 1],
    ['rename', 6 * MiB],
  ] as const)('under %s, commits of other content racing for one name through two gateways never replace each other (%i bytes)', async (policy, size) => {
    const { a, b, bucket, client } = await twoReceivers({ onConflict: policy });
    for (let round = 0; round < (size > MiB ? 2 : 8); round++) {
      const name = `race-${round}.bin`;
      const mine = content(size + 1, 10 + round);
      const theirs = content(size + 1, 100 + round);
      const finish = async (store: UploadStore, bytes: Buffer, owner: string) => {
        const upload = await store.open({ owner, filename: name, size: bytes.length }, { peer: PEER });
        const writer = await upload.append(0, bytes.length);
        for (let at = 0; at < bytes.length; at += 256 * 1024) await writer.write(bytes.subarray(at, at + 256 * 1024));
        return { upload, hash: await writer.end() };
      };
      const ua = await finish(a, mine, OWNER);
      const ub = await finish(b, theirs, 'b'.repeat(64));
      const outcomes = await Promise.allSettled([ua.upload.commit([name], ua.hash), ub.upload.commit([name], ub.hash)]);
      const placed = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [{ path: o.value.path, bytes: i === 0 ? mine : theirs }] : []));
      const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as { code?: string }] : []));
      expect(refused.every((error) => error.code === 'CONFLICT')).toBe(true);
      // Whoever won, every file placed is intact under its path: nothing was replaced.
      for (const file of placed) expect((await objectBytes(client, bucket, `team/${file.path}`)).equals(file.bytes)).toBe(true);
      expect(new Set(placed.map((file) => file.path)).size).toBe(placed.length);
      if (policy === 'reject') expect(placed).toHaveLength(1);
      else expect(placed.length).toBeGreaterThanOrEqual(1);
    }
  });

  it('store errors are one line with a code: unreachable endpoint, access denied, missing bucket', async () => {
    const cluster = ceph.get();
    await cluster.createBucket('ft-errors');
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const location = { bucket: 'ft-errors', prefix: '' };
    const unreachable = await expectFtError(S3UploadStore.open({ client: new S3Client(s3ClientOptions(nowhere, cluster.env)), location, endpoint: nowhere }), 'WRITE_FAILED');
    expect(unreachable.message).toBe(`cannot use s3://ft-errors at ${nowhere}: the object store is unreachable (ECONNREFUSED)`);
    const wrongKey = new S3Client(s3ClientOptions(cluster.endpoints[0]!, { ...cluster.env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' }));
    const denied = await expectFtError(S3UploadStore.open({ client: wrongKey, location }), 'WRITE_FAILED');
    expect(denied.message).toMatch(/^cannot use s3:\/\/ft-errors: the object store refused access \(\w+\)$/);
    const missing = await expectFtError(S3UploadStore.open({ client: cluster.client(0), location: { bucket: 'ft-no-such-bucket', prefix: 'x' } }), 'WRITE_FAILED');
    expect(missing.message).toBe('cannot use s3://ft-no-such-bucket/x: the bucket does not exist');
    for (const error of [unreachable, denied, missing]) expect(error.message).not.toContain('\n');
  });
});

async function commitRest(upload: Upload, bytes: Buffer, from: number) {
  const writer = await upload.append(from, bytes.length - from);
  for (let at = from; at < bytes.length; at += 256 * 1024) await writer.write(bytes.subarray(at, Math.min(bytes.length, at + 256 * 1024)));
  return upload.commit(upload.key.filename.split('/'), await writer.end());
}

/** Stops an upload's lease renewals, as a killed receiver's would stop (test-only reach into the store). */
function stopRenewals(upload: Upload): void {
  const lease = (upload as unknown as { bucketLease?: { timer?: NodeJS.Timeout } }).bucketLease;
  clearInterval(lease?.timer);
}
