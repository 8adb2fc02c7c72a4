import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { encodeFrame, FrameDecoder, FRAME_PREFIX_BYTES, MAX_FRAME_BYTES, type Decoded, type JsonObject } from '../../src/wire/frame.js';
import { parseReceiverMessage, parseSenderMessage } from '../../src/wire/messages.js';

const DECODER_CODES = ['BAD_FRAME', 'FRAME_TOO_LARGE', 'BAD_MESSAGE'];

/** Cuts `stream` at the given positions (taken modulo its length + 1, sorted). */
function splitAt(stream: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    chunks.push(stream.subarray(from, point));
    from = point;
  }
  chunks.push(stream.subarray(from));
  return chunks;
}

/**
 * A flat trace of what the decoder yielded, one line per frame, per body byte, per body-end and
 * for the error, so that the output of differently split runs can be compared.
 */
function trace(items: Decoded[]): string[] {
  const lines: string[] = [];
  for (const item of items) {
    if (item.kind === 'frame') lines.push(`F${JSON.stringify(item.message)}`);
    else if (item.kind === 'body-end') lines.push('E');
    else if (item.kind === 'error') lines.push(`X${item.error.code}`);
    else for (const byte of item.data) lines.push(`b${byte}`);
  }
  return lines;
}

interface Run {
  items: Decoded[];
  error: FtError | undefined;
  decoder: FrameDecoder;
}

/**
 * Pushes every chunk. push() itself must never throw; a violation is one `error` item carrying
 * an FtError with a decoder code, after which the decoder only repeats that error.
 */
function decode(chunks: Buffer[]): Run {
  const decoder = new FrameDecoder();
  const items: Decoded[] = [];
  for (const chunk of chunks) {
    let out: Decoded[];
    try {
      out = decoder.push(chunk);
    } catch (error) {
      throw new Error(`push() threw instead of yielding an error item: ${String(error)}`, { cause: error });
    }
    const errorAt = out.findIndex((item) => item.kind === 'error');
    if (errorAt === -1) {
      items.push(...out);
      continue;
    }
    if (errorAt !== out.length - 1) throw new Error('the error item is not last');
    const { error } = out[errorAt] as { kind: 'error'; error: unknown };
    if (!(error instanceof FtError)) throw new Error(`error item holds a non-FtError: ${String(error)}`);
    if (!DECODER_CODES.includes(error.code)) throw new Error(`decoder reported unexpected code ${error.code}`);
    items.push(...out);
    return { items, error, decoder };
  }
  return { items, error: undefined, decoder };
}

/** What a well-behaved decoder may yield: objects as frames, and exactly `length` body bytes after a body frame. */
function checkStructure(items: Decoded[]): { bodyLeft: number } {
  let bodyLeft = -1; // -1: between frames
  for (const item of items) {
    if (item.kind === 'error') break;
    if (item.kind === 'frame') {
      expect(bodyLeft, 'a frame arrived inside a body').toBe(-1);
      expect(typeof item.message).toBe('object');
      expect(item.message).not.toBeNull();
      expect(Array.isArray(item.message)).toBe(false);
      if (item.message.type === 'body') {
        const length = item.message.length;
        // A body frame with an invalid length is followed by its BAD_MESSAGE error (see frame.test.ts).
        if (!(Number.isSafeInteger(length) && (length as number) >= 0)) continue;
        bodyLeft = length as number;
      }
    } else if (item.kind === 'body-chunk') {
      expect(bodyLeft, 'body bytes outside a body').toBeGreaterThan(0);
      expect(item.data.length).toBeGreaterThan(0);
      expect(item.data.length).toBeLessThanOrEqual(bodyLeft);
      bodyLeft -= item.data.length;
    } else {
      expect(bodyLeft, 'body-end before all body bytes arrived').toBe(0);
      bodyLeft = -1;
    }
  }
  return { bodyLeft };
}

// ---- (a) round trip -------------------------------------------------------------------------

const plainMessage: fc.Arbitrary<JsonObject> = fc
  .dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), fc.jsonValue({ maxDepth: 3, stringUnit: 'grapheme' }), { maxKeys: 6 })
  .filter((message) => message.type !== 'body' && Buffer.byteLength(JSON.stringify(message)) <= MAX_FRAME_BYTES);

type Section = { kind: 'message'; message: JsonObject } | { kind: 'body'; id: number; bytes: Uint8Array };

const section: fc.Arbitrary<Section> = fc.oneof(
  plainMessage.map((message) => ({ kind: 'message' as const, message })),
  fc.record({
    kind: fc.constant('body' as const),
    id: fc.integer({ min: 1, max: 1000 }),
    bytes: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 300 })),
  }),
);

function encodeSections(sections: Section[]): { stream: Buffer; expected: string[] } {
  const parts: Buffer[] = [];
  const expected: string[] = [];
  for (const s of sections) {
    if (s.kind === 'message') {
      parts.push(encodeFrame(s.message));
      // What JSON can carry (for example -0 becomes 0) is what must come back.
      expected.push(`F${JSON.stringify(JSON.parse(JSON.stringify(s.message)))}`);
    } else {
      const header = { type: 'body', id: s.id, offset: 0, length: s.bytes.length };
      parts.push(encodeFrame(header), Buffer.from(s.bytes));
      expected.push(`F${JSON.stringify(header)}`, ...Array.from(s.bytes, (byte) => `b${byte}`), 'E');
    }
  }
  return { stream: Buffer.concat(parts), expected };
}

describe('FrameDecoder properties', () => {
  it('(a) decodes any sequence of messages and bodies, split anywhere, back to the same sequence', () => {
    fc.assert(
      fc.property(fc.array(section, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 30 }), (sections, cuts) => {
        const { stream, expected } = encodeSections(sections);
        const run = decode(splitAt(stream, cuts));
        expect(run.error).toBeUndefined();
        expect(trace(run.items)).toEqual(expected);
        expect(run.decoder.atBoundary).toBe(true);
        expect(run.decoder.inBody).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it('(a) parses every decoded message equal to JSON.parse of its encoding', () => {
    fc.assert(
      fc.property(plainMessage, fc.array(fc.nat(), { maxLength: 8 }), (message, cuts) => {
        const frame = encodeFrame(message);
        const run = decode(splitAt(frame, cuts));
        expect(run.error).toBeUndefined();
        expect(run.items).toEqual([{ kind: 'frame', message: JSON.parse(frame.subarray(FRAME_PREFIX_BYTES).toString('utf8')) }]);
      }),
      { numRuns: 300 },
    );
  });

  // ---- (b) hostile input ----------------------------------------------------------------------

  const prefix = (length: number): Buffer => {
    const buffer = Buffer.alloc(FRAME_PREFIX_BYTES);
    buffer.writeUInt32BE(length, 0);
    return buffer;
  };
  const withPrefix = (payload: Uint8Array): Buffer => Buffer.concat([prefix(payload.length), payload]);
  const jsonish = fc.string({
    unit: fc.constantFrom('{', '}', '[', ']', '"', ':', ',', 'type', 'body', 'length', '0', '1', '-', '.', 'e', ' ', 'null', 'é', '\\u00', '\udc00'),
    maxLength: 40,
  });
  const weirdNumber = fc.oneof(
    fc.integer({ min: -5, max: 50 }),
    fc.double(),
    fc.constantFrom(2 ** 53, 2 ** 53 - 1, -0, 1e400, '5', null, [3], { n: 1 }),
  );

  const piece: fc.Arbitrary<Buffer> = fc.oneof(
    // Valid frames and bodies, with a random (possibly wrong) number of body bytes after them.
    plainMessage.map((message) => encodeFrame(message)),
    fc
      .tuple(fc.integer({ min: 0, max: 64 }), fc.uint8Array({ maxLength: 80 }))
      .map(([length, bytes]) => Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length }), bytes])),
    // Body frames whose length is anything at all.
    weirdNumber.map((length) => encodeFrame({ type: 'body', length })),
    // Correct prefixes around garbage: random bytes, or text that is almost JSON.
    fc.uint8Array({ minLength: 0, maxLength: 40 }).map(withPrefix),
    jsonish.map((text) => withPrefix(Buffer.from(text, 'utf8'))),
    // Any prefix at all, and raw noise.
    fc.integer({ min: 0, max: 0xffffffff }).map(prefix),
    fc.integer({ min: MAX_FRAME_BYTES - 2, max: MAX_FRAME_BYTES + 2 }).map(prefix),
    fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
  );

  it('(b) random input in random chunks yields frames, needs more bytes, or fails with a coded FtError, whatever the split', () => {
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (pieces, cuts) => {
        const stream = Buffer.concat(pieces);
        const split = decode(splitAt(stream, cuts));
        const bytewise = decode(Array.from(stream, (byte) => Buffer.from([byte])));

        const { bodyLeft } = checkStructure(split.items);
        checkStructure(bytewise.items);

        // The split never changes the outcome: the same items (body bytes aside from their
        // grouping), and the same error at the same place.
        expect(trace(split.items)).toEqual(trace(bytewise.items));
        expect(split.error?.code).toBe(bytewise.error?.code);
        if (split.error === undefined) {
          // Ended cleanly: the decoder knows whether it is mid-body or mid-frame.
          expect(split.decoder.inBody).toBe(bodyLeft > 0);
          if (bodyLeft > 0) expect(split.decoder.atBoundary).toBe(false);
        } else {
          // Failed for good: the same error again, whatever comes next.
          expect(split.decoder.push(encodeFrame({ type: 'bye' }))).toEqual([{ kind: 'error', error: split.error }]);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('(b) pure noise never escapes as anything but a coded FtError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.nat(), { maxLength: 10 }), (bytes, cuts) => {
        const run = decode(splitAt(Buffer.from(bytes), cuts));
        checkStructure(run.items);
      }),
      { numRuns: 500 },
    );
  });
});

// ---- (c) message validation on arbitrary objects ------------------------------------------------

const SENDER_KEYS: Record<string, string[]> = {
  hello: ['type', 'protocol', 'version', 'nonce', 'proof', 'client', 'owner', 'ownerProof', 'features'],
  file: ['type', 'id', 'filename', 'size', 'hash'],
  body: ['type', 'id', 'offset', 'length'],
  cancel: ['type', 'id'],
  bye: ['type'],
};
const RECEIVER_KEYS: Record<string, string[]> = {
  hello: ['type', 'protocol', 'version', 'auth', 'nonce', 'name', 'features'],
  welcome: ['type', 'proof'],
  accept: ['type', 'id', 'offset', 'prefixHash'],
  skip: ['type', 'id', 'reason', 'path'],
  refuse: ['type', 'id', 'code', 'message'],
  failed: ['type', 'id', 'code', 'message'],
  done: ['type', 'id', 'hash', 'path'],
  error: ['type', 'code', 'message'],
};

const fieldNames = [
  ...new Set([...Object.values(SENDER_KEYS).flat(), ...Object.values(RECEIVER_KEYS).flat()]),
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
];
const typeNames = [...new Set([...Object.keys(SENDER_KEYS), ...Object.keys(RECEIVER_KEYS)]), '__proto__', 'constructor', 'toString', 'x', ''];

const plausibleValue = fc.oneof(
  fc.constantFrom(
    'ft',
    'none',
    'hmac-sha256',
    'already-there',
    'xxh64:0123456789abcdef',
    'xxh64:0123456789ABCDEF',
    'xxh64:0123',
    '0123456789abcdef',
    'a'.repeat(32),
    'b'.repeat(64),
    'c'.repeat(129),
    'BAD_NAME',
    'NOT_A_CODE',
    'toString',
    '__proto__',
    'a.txt',
    'x'.repeat(4097),
  ),
  fc.constantFrom(0, 1, 2, -1, 1.5, 2 ** 53 - 1, 2 ** 53, -0, Number.MAX_VALUE, null, true, false, ''),
  fc.integer(),
  fc.string({ maxLength: 20 }),
  fc.jsonValue({ maxDepth: 2 }),
);

const messageLike: fc.Arbitrary<JsonObject> = fc
  .tuple(
    fc.option(fc.oneof(fc.constantFrom(...typeNames), fc.jsonValue({ maxDepth: 1 })), { nil: undefined }),
    fc.dictionary(fc.oneof(fc.constantFrom(...fieldNames), fc.string({ maxLength: 6 })), plausibleValue, { maxKeys: 8 }),
  )
  .map(([type, fields]) => {
    const object: Record<string, unknown> = { ...fields };
    if (type !== undefined) object.type = type;
    // Through JSON, as from the wire: "__proto__" stays an own key, -0 and friends are normalised.
    return JSON.parse(JSON.stringify(object)) as JsonObject;
  });

const HASH = 'xxh64:0123456789abcdef';
const TEMPLATES: JsonObject[] = [
  { type: 'hello', protocol: 'ft', version: 2 },
  { type: 'hello', protocol: 'ft', version: 2, proof: 'b'.repeat(64), client: 'ft/1' },
  { type: 'hello', protocol: 'ft', version: 5, nonce: 'c'.repeat(32), proof: 'b'.repeat(64) },
  { type: 'file', id: 1, filename: 'a.txt', size: 10, hash: HASH },
  { type: 'body', id: 1, offset: 0, length: 10 },
  { type: 'cancel', id: 1 },
  { type: 'bye' },
  { type: 'hello', protocol: 'ft', version: 2, auth: 'none', nonce: 'a'.repeat(32), name: 'desk' },
  { type: 'welcome' },
  { type: 'welcome', proof: 'd'.repeat(64) },
  { type: 'accept', id: 1, offset: 0 },
  { type: 'accept', id: 1, offset: 5, prefixHash: HASH },
  { type: 'skip', id: 1, reason: 'already-there', path: 'a.txt' },
  { type: 'refuse', id: 1, code: 'BAD_NAME', message: 'no' },
  { type: 'failed', id: 1, code: 'HASH_MISMATCH', message: 'no' },
  { type: 'done', id: 1, hash: HASH, path: 'a.txt' },
  { type: 'error', code: 'TIMEOUT', message: 'slow' },
];

/** Valid messages with a few fields replaced, added or dropped: most of the interesting edges are one step away. */
const nearlyValid: fc.Arbitrary<JsonObject> = fc
  .tuple(
    fc.constantFrom(...TEMPLATES),
    fc.dictionary(fc.constantFrom(...fieldNames), plausibleValue, { maxKeys: 2 }),
    fc.subarray(fieldNames, { maxLength: 2 }),
  )
  .map(([template, overrides, dropped]) => {
    const object: Record<string, unknown> = { ...template, ...overrides };
    for (const key of dropped) delete object[key];
    return JSON.parse(JSON.stringify(object)) as JsonObject;
  });

const arbitraryObject: fc.Arbitrary<JsonObject> = fc
  .dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 })
  .map((object) => JSON.parse(JSON.stringify(object)) as JsonObject);

function checkParser(parse: (raw: JsonObject) => unknown, keysByType: Record<string, string[]>, raw: JsonObject): void {
  let result: unknown;
  try {
    result = parse(raw);
  } catch (error) {
    if (!(error instanceof FtError)) throw new Error(`parser threw a non-FtError: ${String(error)}`, { cause: error });
    expect(error.code).toBe('BAD_MESSAGE');
    return;
  }
  const message = result as Record<string, unknown>;
  expect(Object.getPrototypeOf(message)).toBe(Object.prototype);
  const allowed = keysByType[message.type as string];
  expect(allowed, `unexpected type ${String(message.type)}`).toBeDefined();
  for (const key of Reflect.ownKeys(message)) expect(allowed).toContain(key);
  expect(message.type).toBe(raw.type);
  // A parsed message is itself valid, and parses to the same thing.
  expect(parse(JSON.parse(JSON.stringify(message)) as JsonObject)).toEqual(message);
}

describe('message parser properties', () => {
  it('(c) parseSenderMessage returns a clean message or throws BAD_MESSAGE', () => {
    fc.assert(
      fc.property(fc.oneof(nearlyValid, messageLike, arbitraryObject), (raw) => checkParser(parseSenderMessage, SENDER_KEYS, raw)),
      { numRuns: 1000 },
    );
  });

  it('(c) parseReceiverMessage returns a clean message or throws BAD_MESSAGE', () => {
    fc.assert(
      fc.property(fc.oneof(nearlyValid, messageLike, arbitraryObject), (raw) => checkParser(parseReceiverMessage, RECEIVER_KEYS, raw)),
      { numRuns: 1000 },
    );
  });

  it('(c) leaves Object.prototype untouched whatever it parses', () => {
    const before = Reflect.ownKeys(Object.prototype);
    fc.assert(
      fc.property(fc.oneof(nearlyValid, messageLike), (raw) => {
        for (const parse of [parseSenderMessage, parseReceiverMessage]) {
          try {
            parse(raw);
          } catch {
            // Refusals are covered above.
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(Reflect.ownKeys(Object.prototype)).toEqual(before);
  });

  it('(c) the generators reach accepted and refused messages of every type (the properties are not vacuous)', () => {
    const accepted = { sender: new Set<string>(), receiver: new Set<string>() };
    let refused = 0;
    fc.assert(
      fc.property(nearlyValid, (raw) => {
        for (const [side, parse] of [
          ['sender', parseSenderMessage],
          ['receiver', parseReceiverMessage],
        ] as const) {
          try {
            accepted[side].add((parse(raw) as { type: string }).type);
          } catch {
            refused++;
          }
        }
      }),
      { numRuns: 1000, seed: 42 },
    );
    expect([...accepted.sender].sort()).toEqual(Object.keys(SENDER_KEYS).sort());
    expect([...accepted.receiver].sort()).toEqual(Object.keys(RECEIVER_KEYS).sort());
    expect(refused).toBeGreaterThan(100);
  });
});
