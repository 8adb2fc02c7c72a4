/** The `metadata` feature's fields on the wire: mtime, mode and folder headers (PROTOCOL.md §9.5). */
import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import type { JsonObject } from '../../src/wire/frame.js';
import { FEATURES, formatMtime, MTIME_PATTERN, parseMtime, parseReceiverMessage, parseSenderMessage } from '../../src/wire/messages.js';
import { futimesSeconds, appliedMetadata } from '../../src/storage/local/file-metadata.js';
import { initialMemory, transition } from '../../src/receiver/protocol.js';

const LIMITS = { maxPendingFiles: 4 };
const HELLO = { type: 'hello', protocol: 'ft', version: 5, nonce: '9a'.repeat(16), owner: 'ab'.repeat(32), ownerProof: 'cd'.repeat(64) } as JsonObject;

const HASH = 'xxh64:0123456789abcdef';
const METADATA = new Set([FEATURES.METADATA]);
const header = (extra: Record<string, unknown>): JsonObject => ({ type: 'file', id: 1, filename: 'a.txt', size: 3, hash: HASH, ...extra }) as JsonObject;

function badMessage(fn: () => unknown): FtError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, 'expected a BAD_MESSAGE refusal').toBeInstanceOf(FtError);
  expect((thrown as FtError).code).toBe('BAD_MESSAGE');
  return thrown as FtError;
}

describe('mtime', () => {
  it.each([
    ['0', 0n],
    ['1700000000', 1_700_000_000_000_000_000n],
    ['1700000000.5', 1_700_000_000_500_000_000n],
    ['1700000000.123456789', 1_700_000_000_123_456_789n],
    ['-1', -1_000_000_000n],
    ['-0.5', -500_000_000n],
    ['-86400.000000001', -86_400_000_000_001n],
    ['999999999999.999999999', 999_999_999_999_999_999_999n],
    ['-999999999999', -999_999_999_999_000_000_000n],
  ])('reads %s as %d ns, and writes it back the same', (text, ns) => {
    const parsed = parseSenderMessage(header({ mtime: text }), METADATA);
    expect(parsed).toMatchObject({ mtime: text });
    expect(parseMtime(text)).toBe(ns);
    // The writer's form has no trailing zeros; a time read from it is the same time.
    expect(parseMtime(formatMtime(ns))).toBe(ns);
  });

  it('is written without trailing zeros, negative before 1970', () => {
    expect(formatMtime(1_700_000_000_500_000_000n)).toBe('1700000000.5');
    expect(formatMtime(-500_000_000n)).toBe('-0.5');
    expect(formatMtime(0n)).toBe('0');
    expect(formatMtime(-1n)).toBe('-0.000000001');
    expect(formatMtime(5_000_000_000n)).toBe('5');
  });

  it.each([
    ['10 fraction digits', '1700000000.1234567890'],
    ['an exponent', '1.7e9'],
    ['an upper-case exponent', '17E8'],
    ['a plus sign', '+1700000000'],
    ['a leading zero', '01700000000'],
    ['milliseconds by mistake (13 integer digits)', '1700000000123'],
    ['a huge value', '9'.repeat(400)],
    ['a bare dot', '1700000000.'],
    ['no integer part', '.5'],
    ['a space', ' 1700000000'],
    ['a trailing newline', '1700000000\n'],
    ['a comma', '1700000000,5'],
    ['two minus signs', '--1'],
    ['Infinity', 'Infinity'],
    ['NaN', 'NaN'],
    ['an empty string', ''],
    ['a hex number', '0x10'],
    ['Arabic-Indic digits', '١٧٠٠'],
  ])('refuses %s', (_, text) => {
    expect(MTIME_PATTERN.test(text)).toBe(false);
    badMessage(() => parseSenderMessage(header({ mtime: text }), METADATA));
  });

  it.each([
    ['a number', 1700000000],
    ['null', null],
    ['an object', { s: 1 }],
  ])('refuses an mtime that is %s', (_, value) => {
    badMessage(() => parseSenderMessage(header({ mtime: value }), METADATA));
  });

  it('is an unknown field, ignored, on a connection without "metadata"', () => {
    expect(parseSenderMessage(header({ mtime: 'not a time', mode: -5 }))).toEqual({ type: 'file', id: 1, filename: 'a.txt', size: 3, hash: HASH });
  });
});

describe('mode', () => {
  it.each([0, 0o644, 0o755, 0o4755, 0o7777])('reads %o', (mode) => {
    expect(parseSenderMessage(header({ mode }), METADATA)).toMatchObject({ mode });
  });

  it.each([
    ['over 0o7777', 0o10000],
    ['negative', -1],
    ['a fraction', 420.5],
    ['a string', '0644'],
    ['a boolean', true],
  ])('refuses a mode %s', (_, mode) => {
    badMessage(() => parseSenderMessage(header({ mode }), METADATA));
  });

  it('is applied as its 0o777 bits less the umask: never set-user-id, set-group-id or sticky', () => {
    expect(appliedMetadata({ mode: 0o4755 }, 0o022)).toEqual({ mode: 0o755 });
    expect(appliedMetadata({ mode: 0o7777 }, 0o027)).toEqual({ mode: 0o750 });
    expect(appliedMetadata({ mode: 0o640 }, 0)).toEqual({ mode: 0o640 });
    expect(appliedMetadata({}, 0o022)).toBeUndefined();
    expect(appliedMetadata(undefined, 0o022)).toBeUndefined();
  });
});

describe('futimesSeconds', () => {
  it.each([
    [1_700_000_000_123_456_789n, '1700000000.1234565'],
    [1_700_000_000_000_000_000n, '1700000000.0000005'],
    [0n, '0.0000005'],
    [-1n, '-0.0000015'],
    [-1_500_000_000n, '-1.5000005'],
    [-1_499_999_001n, '-1.5000005'],
    [-300_000_000_987_654_321n, '-300000000.9876555'],
  ])('gives %d ns as %s: floored to the microsecond, half a microsecond away from zero', (ns, text) => {
    expect(futimesSeconds(ns)).toBe(text);
  });
});

describe('folder headers', () => {
  it('read id and filename, and nothing else', () => {
    expect(parseSenderMessage({ type: 'file', id: 4, filename: 'a/b', folder: true, mtime: 'x' } as JsonObject, METADATA)).toEqual({
      type: 'file',
      id: 4,
      filename: 'a/b',
      folder: true,
    });
  });

  it.each([
    ['a size', { size: 0 }],
    ['a hash', { hash: HASH }],
    ['a receipt', { receipt: 'a'.repeat(16) }],
  ])('refuse %s', (_, extra) => {
    badMessage(() => parseSenderMessage({ type: 'file', id: 4, filename: 'a/b', folder: true, ...extra } as JsonObject, METADATA));
  });

  it('refuse a folder flag that is not a boolean; false is a file header', () => {
    badMessage(() => parseSenderMessage(header({ folder: 'yes' }), METADATA));
    expect(parseSenderMessage(header({ folder: false }), METADATA)).toEqual({ type: 'file', id: 1, filename: 'a.txt', size: 3, hash: HASH });
  });

  it('are no folder headers without "metadata": a header with no size', () => {
    badMessage(() => parseSenderMessage({ type: 'file', id: 4, filename: 'a/b', folder: true } as JsonObject));
  });

  it('are answered by a done without hash, which parses', () => {
    expect(parseReceiverMessage({ type: 'done', id: 4 } as JsonObject)).toEqual({ type: 'done', id: 4 });
    expect(parseReceiverMessage({ type: 'done', id: 4, path: 'a/b' } as JsonObject)).toEqual({ type: 'done', id: 4, path: 'a/b' });
  });
});

describe('the receiver state machine with folder headers', () => {
  const ready = (features: Set<string>) => {
    const memory = initialMemory();
    transition({ name: 'hello' }, { kind: 'frame', message: HELLO }, memory, LIMITS);
    transition({ name: 'authenticating' }, { kind: 'authenticated', features: features as Set<never> }, memory, LIMITS);
    return memory;
  };
  const folder = { type: 'file', id: 1, filename: 'empty', folder: true } as JsonObject;

  it('takes a folder header with "metadata", without "trailing-hash", as a header with no body to come', () => {
    const memory = ready(new Set([FEATURES.METADATA]));
    const { state, effects } = transition({ name: 'ready' }, { kind: 'frame', message: folder }, memory, LIMITS);
    expect(state).toEqual({ name: 'ready' });
    expect(effects).toEqual([{ kind: 'header', header: { type: 'file', id: 1, filename: 'empty', folder: true } }]);
    // Open until answered, like any header (the 64-header bound counts it).
    expect(memory.open.has(1)).toBe(true);
  });

  it('refuses it as a header without size on a connection without "metadata"', () => {
    const memory = ready(new Set([FEATURES.TRAILING_HASH]));
    badMessage(() => transition({ name: 'ready' }, { kind: 'frame', message: folder }, memory, LIMITS));
  });
});
