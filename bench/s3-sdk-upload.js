#!/usr/bin/env node
// A direct multipart upload with @aws-sdk/client-s3, the S3 rows' reference (bench/s3.js):
//
//   node bench/s3-sdk-upload.js --endpoint URL --bucket B --key K [--part-bytes N] [--queue N] FILE
//
// What @aws-sdk/lib-storage's Upload does, without that package: the file read in parts of
// --part-bytes (8 MiB, as ft's S3 store), up to --queue parts in flight (4: Upload's documented
// default queueSize), then CompleteMultipartUpload. No hash, no conditional write: the fastest
// honest upload the SDK makes. Credentials from the environment (AWS_ACCESS_KEY_ID, …).
// Prints one JSON line: { etag, parts }.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

const { values, positionals } = parseArgs({
  options: { endpoint: { type: 'string' }, bucket: { type: 'string' }, key: { type: 'string' }, 'part-bytes': { type: 'string' }, queue: { type: 'string' } },
  allowPositionals: true,
});
const file = positionals[0];
const partBytes = Number(values['part-bytes'] ?? 8 * 1024 * 1024);
const queue = Number(values.queue ?? 4);
const Bucket = values.bucket;
const Key = values.key;
const client = new S3Client({
  endpoint: values.endpoint,
  region: process.env.AWS_REGION ?? 'us-east-1',
  forcePathStyle: true,
  // As ft's store: Ceph 16's gateway does not understand the SDK's default streaming checksum.
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});

const size = fs.statSync(file).size;
const count = Math.max(1, Math.ceil(size / partBytes));
const fd = fs.openSync(file, 'r');
const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
const parts = new Array(count);
let next = 0;
async function worker() {
  while (next < count) {
    const index = next++;
    const length = Math.min(partBytes, size - index * partBytes);
    const body = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) got += await new Promise((resolve, reject) => fs.read(fd, body, got, length - got, index * partBytes + got, (e, n) => (e ? reject(e) : resolve(n))));
    const put = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: index + 1, Body: body, ContentLength: length }));
    parts[index] = { PartNumber: index + 1, ETag: put.ETag };
  }
}
try {
  await Promise.all(Array.from({ length: Math.min(queue, count) }, worker));
  const done = await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
  process.stdout.write(`${JSON.stringify({ etag: done.ETag, parts: count })}\n`);
} catch (error) {
  await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
  throw error;
} finally {
  fs.closeSync(fd);
  client.destroy();
}
