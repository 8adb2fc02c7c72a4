/**
 * The S3 gateway the S3 inbox is built on, probed for real: a one-node Ceph cluster with two
 * gateways (test/helpers/ceph.ts). The first tests show the cluster works and is cleaned up; the
 * probes pin the conditional-write and multipart semantics the S3 store's design rests on
 * (docs/S3.md has the table), so that a Ceph upgrade that changes one of them fails here first.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { cephDaemonsOf, cephSkipReason, startCephCluster, useCephCluster } from '../helpers/ceph.js';

const MiB = 1024 * 1024;
if (cephSkipReason) console.warn(`skipping the S3 gateway tests: ${cephSkipReason}`);

/** The HTTP status of a failed call, or 'ok'. */
async function outcome(call: Promise<unknown>): Promise<number | 'ok'> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === undefined) throw error;
    return status;
  }
}

async function body(client: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  const got = await client.send(new GetObjectCommand({ Bucket, Key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

/** A completed two-part multipart upload (5 MiB + 1 byte) of `data`, with `extra` on the completion. */
async function multipart(client: S3Client, Bucket: string, Key: string, data: Buffer, extra: { IfNoneMatch?: string } = {}, Metadata?: Record<string, string>) {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key, Metadata }));
  const first = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: data.subarray(0, 5 * MiB) }));
  const second = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: data.subarray(5 * MiB) }));
  return client.send(
    new CompleteMultipartUploadCommand({
      Bucket, Key, UploadId, ...extra,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: first.ETag }, { PartNumber: 2, ETag: second.ETag }] },
    }),
  );
}

describe.skipIf(cephSkipReason !== undefined)(`a Ceph S3 gateway${cephSkipReason ? ` (skipped: ${cephSkipReason})` : ''}`, () => {
  it('starts on loopback ports of its own and stops leaving no process and no folder', async () => {
    const cluster = await startCephCluster(1);
    const { dir } = cluster;
    try {
      expect(cluster.endpoints).toHaveLength(1);
      expect(cluster.endpoints[0]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(cephDaemonsOf(dir).length).toBeGreaterThanOrEqual(3);
    } finally {
      cluster.stop();
    }
    expect(cephDaemonsOf(dir)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  const ceph = useCephCluster(2);
  const Bucket = 'probe';
  let a: S3Client;
  let b: S3Client;

  it('serves objects and multipart uploads, and both gateways see the same cluster', async () => {
    const cluster = ceph.get();
    await cluster.createBucket(Bucket);
    a = cluster.client(0);
    b = cluster.client(1);
    await a.send(new PutObjectCommand({ Bucket, Key: 'small', Body: 'hello' }));
    expect((await body(b, Bucket, 'small')).toString()).toBe('hello');
    const data = randomBytes(5 * MiB + 1);
    await multipart(a, Bucket, 'big', data);
    const got = await body(b, Bucket, 'big');
    expect(createHash('sha256').update(got).digest('hex')).toBe(createHash('sha256').update(data).digest('hex'));
  });

  it('PutObject If-None-Match: * refuses an existing key (412) and creates a missing one', async () => {
    await a.send(new PutObjectCommand({ Bucket, Key: 'claimed', Body: 'first' }));
    expect(await outcome(b.send(new PutObjectCommand({ Bucket, Key: 'claimed', Body: 'second', IfNoneMatch: '*' })))).toBe(412);
    expect((await body(a, Bucket, 'claimed')).toString()).toBe('first');
    expect(await outcome(b.send(new PutObjectCommand({ Bucket, Key: 'fresh', Body: 'x', IfNoneMatch: '*' })))).toBe('ok');
  });

  it('PutObject If-None-Match: * lets exactly one of 20 racers through two gateways win', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => outcome((i % 2 ? a : b).send(new PutObjectCommand({ Bucket, Key: 'race', Body: `racer ${i}`, IfNoneMatch: '*' })))),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r !== 'ok').every((r) => r === 412 || r === 409)).toBe(true);
  });

  it('CompleteMultipartUpload ignores If-None-Match: * on RGW 16 (it replaces the object)', async () => {
    await a.send(new PutObjectCommand({ Bucket, Key: 'mp-target', Body: 'original' }));
    const done = await outcome(multipart(a, Bucket, 'mp-target', randomBytes(5 * MiB + 1), { IfNoneMatch: '*' }));
    expect(done).toBe('ok');
    expect((await a.send(new HeadObjectCommand({ Bucket, Key: 'mp-target' }))).ContentLength).toBe(5 * MiB + 1);
  });

  it('CompleteMultipartUpload returns an empty ETag; HeadObject has it', async () => {
    const done = await multipart(a, Bucket, 'etag', randomBytes(5 * MiB + 1));
    expect(done.ETag ?? '').toBe('');
    expect((await a.send(new HeadObjectCommand({ Bucket, Key: 'etag' }))).ETag).toMatch(/^"[0-9a-f]{32}-2"$/);
  });

  it('PutObject If-Match: <etag> replaces only the version it names, and RGW 16 matches only the unquoted ETag', async () => {
    const put = await a.send(new PutObjectCommand({ Bucket, Key: 'lease', Body: 'v1' }));
    const unquoted = put.ETag!.replaceAll('"', '');
    // The standard, quoted form never matches on RGW 16 (AWS takes it): the store tries both forms.
    expect(await outcome(b.send(new PutObjectCommand({ Bucket, Key: 'lease', Body: 'v2', IfMatch: put.ETag })))).toBe(412);
    expect(await outcome(b.send(new PutObjectCommand({ Bucket, Key: 'lease', Body: 'v2', IfMatch: unquoted })))).toBe('ok');
    expect(await outcome(b.send(new PutObjectCommand({ Bucket, Key: 'lease', Body: 'v3', IfMatch: unquoted })))).toBe(412);
    expect((await body(a, Bucket, 'lease')).toString()).toBe('v2');
    expect(await outcome(a.send(new PutObjectCommand({ Bucket, Key: 'no-such-lease', Body: 'x', IfMatch: unquoted })))).toBe(412);
    expect(await outcome(a.send(new PutObjectCommand({ Bucket, Key: 'no-such-lease', Body: 'x', IfMatch: '*' })))).toBe(412);
  });

  it('PutObject If-None-Match: <etag> too compares with the unquoted ETag on RGW 16', async () => {
    const put = await a.send(new PutObjectCommand({ Bucket, Key: 'inm-etag', Body: 'v1' }));
    expect(await outcome(a.send(new PutObjectCommand({ Bucket, Key: 'inm-etag', Body: 'v1', IfNoneMatch: put.ETag })))).toBe('ok');
    expect(await outcome(a.send(new PutObjectCommand({ Bucket, Key: 'inm-etag', Body: 'v1', IfNoneMatch: put.ETag!.replaceAll('"', '') })))).toBe(412);
  });

  it('DeleteObject ignores If-Match on RGW 16 (a wrong ETag, quoted or not, still deletes)', async () => {
    for (const IfMatch of ['"00000000000000000000000000000000"', '00000000000000000000000000000000']) {
      await a.send(new PutObjectCommand({ Bucket, Key: 'del', Body: 'v1' }));
      expect(await outcome(a.send(new DeleteObjectCommand({ Bucket, Key: 'del', IfMatch })))).toBe('ok');
      expect(await outcome(a.send(new HeadObjectCommand({ Bucket, Key: 'del' })))).toBe(404);
    }
  });

  it('CopyObject ignores If-None-Match: * and If-Match on RGW 16 (it replaces the destination)', async () => {
    await a.send(new PutObjectCommand({ Bucket, Key: 'copy-src', Body: 'source' }));
    await a.send(new PutObjectCommand({ Bucket, Key: 'copy-dst', Body: 'existing' }));
    expect(await outcome(a.send(new CopyObjectCommand({ Bucket, Key: 'copy-dst', CopySource: `${Bucket}/copy-src`, IfNoneMatch: '*' })))).toBe('ok');
    expect((await body(a, Bucket, 'copy-dst')).toString()).toBe('source');
    await a.send(new PutObjectCommand({ Bucket, Key: 'copy-dst', Body: 'existing' }));
    expect(await outcome(a.send(new CopyObjectCommand({ Bucket, Key: 'copy-dst', CopySource: `${Bucket}/copy-src`, IfMatch: 'abcdef' })))).toBe('ok');
    expect((await body(a, Bucket, 'copy-dst')).toString()).toBe('source');
  });

  it('ListMultipartUploads and ListParts show an unfinished upload, through the other gateway too', async () => {
    const Key = 'unfinished';
    const { UploadId } = await a.send(new CreateMultipartUploadCommand({ Bucket, Key, Metadata: { 'ft-state': 'x' } }));
    const part = await a.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: randomBytes(5 * MiB) }));
    const uploads = await b.send(new ListMultipartUploadsCommand({ Bucket, Prefix: Key }));
    expect(uploads.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([[Key, UploadId]]);
    expect(uploads.Uploads?.[0]?.Initiated).toBeInstanceOf(Date);
    const parts = await b.send(new ListPartsCommand({ Bucket, Key, UploadId }));
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([[1, 5 * MiB, part.ETag]]);
  });

  it('a part under 5 MiB other than the last is refused at completion', async () => {
    const Key = 'small-parts';
    const { UploadId } = await a.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const p1 = await a.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: randomBytes(1024) }));
    const p2 = await a.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: randomBytes(1024) }));
    const done = await outcome(
      a.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] } })),
    );
    expect(done).toBe(400);
  });

  it('x-amz-meta-* given at CreateMultipartUpload is on the object after completion (HeadObject)', async () => {
    await multipart(a, Bucket, 'meta', randomBytes(5 * MiB + 1), {}, { 'ft-hash': '0123456789abcdef' });
    const head = await b.send(new HeadObjectCommand({ Bucket, Key: 'meta' }));
    expect(head.Metadata).toEqual({ 'ft-hash': '0123456789abcdef' });
  });
});

