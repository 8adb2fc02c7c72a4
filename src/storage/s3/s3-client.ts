/**
 * The S3 calls the S3 store makes, and what their failures mean to ft: a thin layer over
 * @aws-sdk/client-s3 that knows the settings self-hosted gateways need and the conditional
 * writes every S3 service honours (docs/S3.md has what Ceph's gateway does).
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type PutObjectCommandInput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { FtError, type ErrorCode } from '../../errors.js';

/** Where an S3 inbox lives: `s3://bucket/prefix`. */
export interface S3Location {
  readonly bucket: string;
  /** Without a leading or trailing `/`; '' for the bucket's root. */
  readonly prefix: string;
}

/** Parses `s3://bucket[/prefix]`; FtError USAGE otherwise. */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  const prefix = (match?.[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (!match || prefix.split('/').some((part) => part === '.' || part === '..') || /\/\//.test(prefix)) {
    throw new FtError('USAGE', `Expected s3://bucket or s3://bucket/prefix (a bucket name of 3 to 63 lowercase letters, digits, dots and dashes), got ${JSON.stringify(url)}`);
  }
  return { bucket: match[1]!, prefix };
}

/**
 * Client settings for any S3-compatible endpoint. Credentials come only from the SDK's default
 * chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE and the shared credentials
 * file, …), never from ft's command line. Path-style addresses, since self-hosted endpoints
 * seldom have a DNS name per bucket; checksums only where an operation requires them, since Ceph
 * 16's gateway does not understand the SDK's default streaming checksum trailer (411).
 */
export function s3ClientConfig(endpoint: string | undefined, region = process.env.AWS_REGION ?? 'us-east-1'): S3ClientConfig {
  return {
    ...(endpoint !== undefined ? { endpoint } : {}),
    region,
    forcePathStyle: endpoint !== undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
  };
}

export function createS3Client(endpoint: string | undefined): S3Client {
  return new S3Client(s3ClientConfig(endpoint));
}

interface AwsError {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

export function statusOf(error: unknown): number | undefined {
  return (error as AwsError | undefined)?.$metadata?.httpStatusCode;
}

function errorName(error: unknown): string {
  const aws = error as AwsError | undefined;
  return aws?.Code ?? aws?.code ?? aws?.name ?? 'error';
}

export const isNotFound = (error: unknown) => statusOf(error) === 404 || ['NoSuchKey', 'NotFound', 'NoSuchUpload'].includes(errorName(error));
export const isPreconditionFailed = (error: unknown) => statusOf(error) === 412 || errorName(error) === 'PreconditionFailed';
/** 409 ConditionalRequestConflict: AWS's answer to a conditional write racing another. */
export const isConflict = (error: unknown) => statusOf(error) === 409;

const NETWORK_CODES: readonly string[] = Object.freeze(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);

/**
 * One line saying what went wrong with the store, with a stable code: the store unreachable,
 * access denied, the bucket missing (WRITE_FAILED: the file fails, and is resumable once the
 * store is back), or the store asking to slow down (BUSY: try again shortly). `what` says what
 * was being done ("writing part 3 of x.bin"). The original error stays as the cause, for logs.
 */
export function storeError(error: unknown, what: string): FtError {
  if (error instanceof FtError) return error;
  const name = errorName(error);
  const status = statusOf(error);
  const cause = { cause: error };
  const network = (error as { code?: string } | undefined)?.code;
  let code: ErrorCode = 'WRITE_FAILED';
  let reason: string;
  if (network !== undefined && NETWORK_CODES.includes(network)) reason = `the object store is unreachable (${network})`;
  else if (name === 'TimeoutError' || name === 'RequestTimeout') reason = 'the object store did not answer in time';
  else if (name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || status === 403) reason = `the object store refused access (${name})`;
  else if (name === 'NoSuchBucket') reason = 'the bucket does not exist';
  else if (name === 'SlowDown' || name === 'ServiceUnavailable' || status === 503) {
    code = 'BUSY';
    reason = 'the object store asks to slow down; try again shortly';
  } else if (name === 'EntityTooLarge' || name === 'QuotaExceeded') reason = `the object store has no room (${name})`;
  else reason = `the object store failed (${status !== undefined ? `${status} ` : ''}${name})`;
  return new FtError(code, `${what}: ${reason}`, {}, cause);
}

/** Runs an S3 call, mapping its failure with storeError. */
export async function attempt<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw storeError(error, what);
  }
}

/** A small JSON object and its ETag, or undefined when there is none. */
export async function getJson(client: S3Client, Bucket: string, Key: string): Promise<{ value: unknown; etag: string; lastModified: Date | undefined } | undefined> {
  try {
    const got = await client.send(new GetObjectCommand({ Bucket, Key }));
    const text = await got.Body!.transformToString();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    return { value, etag: got.ETag ?? '', lastModified: got.LastModified };
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export async function headObject(client: S3Client, Bucket: string, Key: string) {
  try {
    return await client.send(new HeadObjectCommand({ Bucket, Key }));
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

export async function deleteObject(client: S3Client, Bucket: string, Key: string): Promise<void> {
  await client.send(new DeleteObjectCommand({ Bucket, Key }));
}

/** Creates the object only if the key is free: false when it is taken (412, or AWS's 409 for a race). */
export async function putIfAbsent(client: S3Client, input: PutObjectCommandInput): Promise<string | false> {
  try {
    return (await client.send(new PutObjectCommand({ ...input, IfNoneMatch: '*' }))).ETag ?? '';
  } catch (error) {
    if (isPreconditionFailed(error) || isConflict(error)) return false;
    throw error;
  }
}

/**
 * Replaces the object only if it is still the version `etag` names: a compare-and-swap. False
 * when it is not. RGW 16 matches only the unquoted ETag, AWS the standard quoted one: both forms
 * are tried, each of them conditional, so trying the second never replaces another version.
 */
export async function putIfMatch(client: S3Client, input: PutObjectCommandInput, etag: string): Promise<string | false> {
  const quoted = etag.startsWith('"') ? etag : `"${etag}"`;
  for (const form of [quoted, quoted.slice(1, -1)]) {
    try {
      return (await client.send(new PutObjectCommand({ ...input, IfMatch: form }))).ETag ?? '';
    } catch (error) {
      if (!isPreconditionFailed(error) && !isConflict(error)) throw error;
    }
  }
  return false;
}

export function putJson(client: S3Client, Bucket: string, Key: string, value: unknown) {
  return client.send(new PutObjectCommand({ Bucket, Key, Body: JSON.stringify(value), ContentType: 'application/json' }));
}
