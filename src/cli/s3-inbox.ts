/**
 * `ft serve s3://bucket/prefix`: the S3 store for an inbox in a bucket. Credentials come only
 * from the AWS SDK's default chain (the AWS_* environment variables, AWS_PROFILE and the shared
 * credentials file), never from ft's command line, where other users could read them.
 */
import { S3UploadStore } from '../storage/s3/s3-store.js';
import { createS3Client, parseS3Url } from '../storage/s3/s3-client.js';
import type { ConflictPolicy } from '../storage/conflict-policy.js';

export interface S3InboxOptions {
  /** The endpoint of a self-hosted service (Ceph, MinIO, …); AWS's own otherwise (or AWS_ENDPOINT_URL_S3). */
  endpoint?: string;
  onConflict: ConflictPolicy;
  maxPartials?: number;
  maxPartialsPerPeer?: number;
}

/** Opens the bucket (one line, coded, when it cannot be used: see storeError). */
export async function openS3Inbox(url: string, options: S3InboxOptions): Promise<S3UploadStore> {
  const location = parseS3Url(url);
  const client = createS3Client(options.endpoint);
  try {
    return await S3UploadStore.open({
      client,
      location,
      endpoint: options.endpoint,
      onConflict: options.onConflict,
      partialLimits: { maxPartials: options.maxPartials, maxPartialsPerPeer: options.maxPartialsPerPeer },
      ownsClient: true,
    });
  } catch (error) {
    client.destroy();
    throw error;
  }
}
