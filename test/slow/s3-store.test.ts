/**
 * The upload store contract (test/contract/upload-store.contract.ts), run against the S3 store on
 * a real one-node Ceph cluster (test/helpers/ceph.ts): each store gets a bucket of its own. Parts
 * of S3's smallest size (5 MiB) and a small-upload size just over one part, so the contract's
 * uploads are multipart with a tail, and its cuts fall inside the second part.
 */
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { describe } from 'vitest';
import { S3UploadStore, S3_MIN_PART_BYTES } from '../../src/storage/s3/s3-store.js';
import { Layout } from '../../src/storage/s3/layout.js';
import { fileMetadataOf } from '../../src/storage/s3/object-metadata.js';
import { uploadStoreContract, type StoreMedium } from '../contract/upload-store.contract.js';
import { cephSkipReason, useCephCluster } from '../helpers/ceph.js';

if (cephSkipReason) console.warn(`skipping the S3 store contract: ${cephSkipReason}`);

/** The bucket seen from outside the store: objects under the prefix, not the store's own state. */
function bucketMedium(client: S3Client, Bucket: string, layout: Layout): StoreMedium {
  const read = async (path: string) => {
    try {
      const got = await client.send(new GetObjectCommand({ Bucket, Key: layout.object(path) }));
      return { bytes: Buffer.from(await got.Body!.transformToByteArray()), metadata: got.Metadata };
    } catch {
      return undefined;
    }
  };
  return {
    read: async (path) => (await read(path))?.bytes,
    put: async (path, bytes) => void (await client.send(new PutObjectCommand({ Bucket, Key: layout.object(path), Body: bytes }))),
    modify: async (path) => {
      const { bytes, metadata } = (await read(path))!;
      bytes[0] = bytes[0]! ^ 0xff;
      // Changed in place by someone who kept its metadata: only the content differs.
      await client.send(new PutObjectCommand({ Bucket, Key: layout.object(path), Body: bytes, Metadata: metadata }));
    },
    replace: async (path) => {
      const { bytes } = (await read(path))!;
      await client.send(new DeleteObjectCommand({ Bucket, Key: layout.object(path) }));
      await client.send(new PutObjectCommand({ Bucket, Key: layout.object(path), Body: bytes }));
    },
    entry: async (path) => {
      const key = layout.object(path);
      try {
        const head = await client.send(new HeadObjectCommand({ Bucket, Key: key }));
        // What a restore from the bucket would give the file: ft's metadata, else the object's own time.
        const { mtimeNs, mode } = fileMetadataOf(head.Metadata);
        return { kind: 'file', mtimeMs: mtimeNs !== undefined ? Number(mtimeNs / 1_000_000n) : (head.LastModified?.getTime() ?? 0), mode: mode ?? 0 };
      } catch {
        const listed = await client.send(new ListObjectsV2Command({ Bucket, Prefix: `${key}/`, MaxKeys: 1 }));
        return (listed.KeyCount ?? 0) > 0 ? { kind: 'folder' } : undefined;
      }
    },
    list: async () => {
      const found: string[] = [];
      let token: string | undefined;
      do {
        const listed = await client.send(new ListObjectsV2Command({ Bucket, Prefix: layout.base, ContinuationToken: token }));
        for (const item of listed.Contents ?? []) {
          const path = layout.pathOf(item.Key!);
          // A folder's marker (`name/`) is no file.
          if (path !== undefined && !path.endsWith('/')) found.push(path);
        }
        token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
      } while (token);
      return found.sort();
    },
  };
}

describe.skipIf(cephSkipReason !== undefined)(`S3 store on Ceph${cephSkipReason ? ` (skipped: ${cephSkipReason})` : ''}`, () => {
  const ceph = useCephCluster(1);
  let buckets = 0;
  uploadStoreContract({
    name: 'S3 store on a Ceph gateway',
    smallUploadBytes: S3_MIN_PART_BYTES + 200 * 1024,
    async create(setup) {
      const cluster = ceph.get();
      const Bucket = `ft-contract-${++buckets}`;
      await cluster.createBucket(Bucket);
      const client = cluster.client();
      const location = { bucket: Bucket, prefix: 'inbox' };
      const store = await S3UploadStore.open({
        client,
        location,
        partBytes: S3_MIN_PART_BYTES,
        smallUploadBytes: S3_MIN_PART_BYTES + 200 * 1024,
        ...setup,
      });
      return { store, medium: bucketMedium(client, Bucket, new Layout(location)), dispose: () => store.close() };
    },
  });
});
