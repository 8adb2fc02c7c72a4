import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createHasher, hashBytes } from '../../src/hashing.js';
import { createResumableHasher } from '../../src/resumable-hashing.js';

describe('createResumableHasher', () => {
  it('digests as createHasher and hashBytes do, for any split and any save/restore point', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 200_000 }), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 4 }), async (size, chunks, restoreEvery) => {
        const bytes = randomBytes(size);
        let hasher = await createResumableHasher();
        const plain = await createHasher();
        for (let at = 0, i = 0; at < size; i++) {
          const part = bytes.subarray(at, at + chunks[i % chunks.length]!);
          hasher.update(part);
          plain.update(part);
          at += part.length;
          // Restored from what was saved, in a new hasher: it goes on exactly where the old one was.
          if (restoreEvery > 0 && i % restoreEvery === 0) {
            const before = hasher.digest();
            hasher = await createResumableHasher(hasher.save());
            expect(hasher.digest()).toBe(before);
          }
        }
        const expected = await hashBytes(bytes);
        expect(hasher.digest()).toBe(expected);
        expect(plain.digest()).toBe(expected);
      }),
      { numRuns: 40 },
    );
  });

  it('keeps hashers apart, and the ordinary hashers unaffected', async () => {
    const a = await createResumableHasher();
    const b = await createResumableHasher();
    a.update(Buffer.from('hello'));
    b.update(Buffer.from('other'));
    expect(a.digest()).toBe(await hashBytes(Buffer.from('hello')));
    expect(b.digest()).toBe(await hashBytes(Buffer.from('other')));
    expect(await hashBytes(Buffer.from(''))).toBe('xxh64:ef46db3751d8e999');
  });

  it('refuses a saved state of the wrong size', async () => {
    await expect(createResumableHasher(Buffer.alloc(10).toString('base64'))).rejects.toThrow('88 bytes');
  });
});
