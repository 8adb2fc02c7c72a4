import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_PATH_BYTES } from '../../src/names/safe-name.js';
import { parseChecksum, parseMetadata } from '../../src/web/tus-headers.js';
import { decodeUploadId, encodeUploadId, MAX_ID_CHARS, newUploadInfo, ownerOf } from '../../src/web/upload-id.js';

const SECRET = randomBytes(32);

describe('upload ids', () => {
  it('round-trip every field, under the secret that signed them only', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 200 }), fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })), (name, size, hash) => {
        const info = newUploadInfo(name.toWellFormed(), size, hash === null ? undefined : `xxh64:${hash.toString(16).padStart(16, '0')}`, 1_700_000_000_123);
        const id = encodeUploadId(info, SECRET);
        expect(id.length).toBeLessThanOrEqual(MAX_ID_CHARS);
        expect(decodeUploadId(id, SECRET)).toEqual(info);
        expect(decodeUploadId(id, randomBytes(32))).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it('refuse any change to an id: every character, a byte cut or added, another spelling', () => {
    const id = encodeUploadId(newUploadInfo('docs/a.txt', 1234, 'xxh64:0123456789abcdef'), SECRET);
    for (let at = 0; at < id.length; at++) {
      const other = id[at] === 'A' ? 'B' : 'A';
      expect(decodeUploadId(id.slice(0, at) + other + id.slice(at + 1), SECRET)).toBeUndefined();
    }
    expect(decodeUploadId(id.slice(0, -1), SECRET)).toBeUndefined();
    expect(decodeUploadId(`${id}A`, SECRET)).toBeUndefined();
    expect(decodeUploadId(`${id}=`, SECRET)).toBeUndefined();
    expect(decodeUploadId('', SECRET)).toBeUndefined();
    expect(decodeUploadId('A'.repeat(MAX_ID_CHARS + 1), SECRET)).toBeUndefined();
  });

  it('fit the longest name the rules allow; give each upload its own owner', () => {
    const longest = newUploadInfo('a'.repeat(MAX_PATH_BYTES), Number.MAX_SAFE_INTEGER, 'xxh64:ffffffffffffffff');
    expect(encodeUploadId(longest, SECRET).length).toBeLessThanOrEqual(MAX_ID_CHARS);
    const one = newUploadInfo('x', 1, undefined);
    const two = newUploadInfo('x', 1, undefined);
    expect(ownerOf(one)).toMatch(/^[0-9a-f]{64}$/);
    expect(ownerOf(one)).not.toBe(ownerOf(two));
  });
});

describe('tus headers', () => {
  const b64 = (text: string) => Buffer.from(text).toString('base64');
  it('metadata: relativePath, then filename, then name; empty values count as absent; unknown keys ignored', () => {
    expect(parseMetadata(`filename ${b64('a.txt')},relativePath ${b64('d/a.txt')},filetype ${b64('text/plain')}`).name).toBe('d/a.txt');
    expect(parseMetadata(`filename ${b64('a.txt')},relativePath`).name).toBe('a.txt');
    expect(parseMetadata(`name ${b64('u.txt')}`).name).toBe('u.txt');
    expect(parseMetadata(undefined)).toEqual({ name: undefined, hash: undefined });
  });

  it('checksum: known algorithms with a digest of their length only', () => {
    expect(parseChecksum(`sha1 ${Buffer.alloc(20).toString('base64')}`)?.algorithm).toBe('sha1');
    expect(() => parseChecksum(`sha1 ${Buffer.alloc(19).toString('base64')}`)).toThrow(/not a sha1 digest/);
    expect(() => parseChecksum('crc32 AAAAAA==')).toThrow(/algorithm/);
    expect(() => parseChecksum('sha256 !!!')).toThrow(/base64/);
    expect(parseChecksum(undefined)).toBeUndefined();
  });
});
