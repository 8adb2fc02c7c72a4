/**
 * `ft-lan/s3`: an inbox in an S3-compatible bucket, for serve({ store }). Its own entry point,
 * so that only programs using it load the AWS SDK.
 */
export { S3UploadStore, S3_PART_BYTES, S3_MIN_PART_BYTES, S3_PARTS_IN_FLIGHT, type S3UploadStoreOptions } from './s3-store.js';
export { createS3Client, parseS3Url, s3ClientConfig, type S3Location } from './s3-client.js';
