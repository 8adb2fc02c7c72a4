import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NameTable } from '../../src/ingest/name-table.js';

describe('NameTable', () => {
  it('takes a key once per exact name, refuses it for another name, and grows as needed', () => {
    const table = new NameTable();
    for (let i = 0; i < 10_000; i++) expect(table.claim(`key ${i}`, `Name ${i}`)).toBe(true);
    for (let i = 0; i < 10_000; i++) expect(table.claim(`key ${i}`, `Name ${i}`)).toBe(true);
    for (let i = 0; i < 10_000; i += 97) expect(table.claim(`key ${i}`, `name ${i}`)).toBe(false);
    expect(table.count).toBe(10_000);
  });

  it('agrees with a plain Map on any sequence of claims', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.string({ maxLength: 3 }), fc.string({ maxLength: 3 })), { maxLength: 400 }), (claims) => {
        const table = new NameTable();
        const model = new Map<string, string>();
        for (const [key, exact] of claims) {
          const expected = !model.has(key) || model.get(key) === exact;
          if (!model.has(key)) model.set(key, exact);
          expect(table.claim(key, exact)).toBe(expected);
        }
        expect(table.count).toBe(model.size);
      }),
    );
  });
});
