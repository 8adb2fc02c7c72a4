import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { parseS3Url, s3ClientConfig, storeError } from '../../src/storage/s3/s3-client.js';

describe('parseS3Url', () => {
  it('takes s3://bucket and s3://bucket/prefix, without slashes around the prefix', () => {
    expect(parseS3Url('s3://backups')).toEqual({ bucket: 'backups', prefix: '' });
    expect(parseS3Url('s3://backups/')).toEqual({ bucket: 'backups', prefix: '' });
    expect(parseS3Url('s3://team.backups/a/b/')).toEqual({ bucket: 'team.backups', prefix: 'a/b' });
  });

  it.each(['backups', 's3://', 's3://ab', 's3://Backups', 's3://x_y', 's3://bucket/a//b', 's3://bucket/../x', 'http://bucket/x'])('refuses %s (USAGE)', (url) => {
    expect(() => parseS3Url(url)).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
});

describe('s3ClientConfig', () => {
  it('addresses a given endpoint path-style, and asks for checksums only where required (what RGW 16 understands)', () => {
    expect(s3ClientConfig('http://127.0.0.1:7480', 'us-east-1')).toMatchObject({
      endpoint: 'http://127.0.0.1:7480',
      region: 'us-east-1',
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    // No credentials in the configuration: the SDK's default chain (environment, shared file) provides them.
    expect(s3ClientConfig(undefined, 'eu-west-1')).not.toHaveProperty('credentials');
    expect(s3ClientConfig(undefined, 'eu-west-1')).toMatchObject({ forcePathStyle: false });
  });
});

describe('storeError', () => {
  const service = (name: string, status: number) => Object.assign(new Error('x'), { name, $metadata: { httpStatusCode: status } });
  it.each([
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'WRITE_FAILED', 'the object store is unreachable (ECONNREFUSED)'],
    [service('AccessDenied', 403), 'WRITE_FAILED', 'the object store refused access (AccessDenied)'],
    [service('NoSuchBucket', 404), 'WRITE_FAILED', 'the bucket does not exist'],
    [service('SlowDown', 503), 'BUSY', 'the object store asks to slow down; try again shortly'],
    [service('InternalError', 500), 'WRITE_FAILED', 'the object store failed (500 InternalError)'],
  ])('maps %s to one coded line', (error, code, reason) => {
    const mapped = storeError(error, 'writing x.bin');
    expect(mapped).toBeInstanceOf(FtError);
    expect(mapped.code).toBe(code);
    expect(mapped.message).toBe(`writing x.bin: ${reason}`);
    expect(mapped.cause).toBe(error);
  });

  it('keeps an FtError as it is', () => {
    const error = new FtError('CONFLICT', 'taken');
    expect(storeError(error, 'placing')).toBe(error);
  });
});
