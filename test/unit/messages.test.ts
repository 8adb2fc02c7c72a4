import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, FtError, LOCAL_CODES, WIRE_CODES, wireCodeOf, type ErrorCode, type WireCode } from '../../src/errors.js';
import type { JsonObject } from '../../src/wire/frame.js';
import { HASH_PATTERN, OUR_FEATURES, parseReceiverMessage, parseSenderMessage, sharedFeatures, type Refuse } from '../../src/wire/messages.js';

const HASH = 'xxh64:0123456789abcdef';
const NONCE = '0123456789abcdef0123456789abcdef';
const PROOF = 'ab'.repeat(32);

/** As from the wire: JSON text parsed, so "__proto__" is an own key like any other. */
function wire(text: string): JsonObject {
  return JSON.parse(text) as JsonObject;
}

function refusal(fn: () => unknown): FtError {
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

const sender = (raw: JsonObject) => parseSenderMessage(raw);
const receiver = (raw: JsonObject) => parseReceiverMessage(raw);

describe('HASH_PATTERN', () => {
  it('matches "xxh64:" and exactly 16 lowercase hex digits', () => {
    expect(HASH_PATTERN.test(HASH)).toBe(true);
    for (const bad of ['xxh64:0123456789ABCDEF', 'xxh64:0123456789abcde', 'xxh64:0123456789abcdef0', '0123456789abcdef', 'XXH64:0123456789abcdef', 'xxh64:0123456789abcdeg', ` ${HASH}`, `${HASH}\n`]) {
      expect(HASH_PATTERN.test(bad), bad).toBe(false);
    }
  });
});

describe('parseSenderMessage', () => {
  describe('valid messages', () => {
    it('hello, with and without the optional fields', () => {
      expect(sender({ type: 'hello', protocol: 'ft', version: 2 })).toEqual({ type: 'hello', protocol: 'ft', version: 2, features: [] });
      expect(sender({ type: 'hello', protocol: 'ft', version: 2, proof: PROOF, client: 'ft/0.1.0' })).toEqual({
        type: 'hello',
        protocol: 'ft',
        version: 2,
        proof: PROOF,
        client: 'ft/0.1.0',
        features: [],
      });
    });

    it('hello features: known and unknown names are read, duplicates and names not of feature form dropped, too many refused', () => {
      const hello = (features: unknown) => sender({ type: 'hello', protocol: 'ft', version: 4, features } as JsonObject);
      expect(hello(['trailing-hash', 'from-the-future', 'trailing-hash'])).toMatchObject({ features: ['trailing-hash', 'from-the-future'] });
      expect(hello(['UPPER', 7, '', '-x', 'a'.repeat(65), 'ok'])).toMatchObject({ features: ['ok'] });
      refusal(() => hello('trailing-hash'));
      refusal(() => hello(Array.from({ length: 65 }, (_, i) => `f${i}`)));
      expect(receiver({ type: 'hello', protocol: 'ft', version: 4, auth: 'none', nonce: 'ab'.repeat(16), features: ['x', 1] })).toMatchObject({ features: ['x'] });
    });

    it('the shared features are those both peers list and this implementation knows', () => {
      expect([...sharedFeatures(OUR_FEATURES, ['zz-new', 'trailing-hash'])]).toEqual(['trailing-hash']);
      expect([...sharedFeatures(OUR_FEATURES, [])]).toEqual([]);
      expect([...sharedFeatures([], ['trailing-hash'])]).toEqual([]);
    });

    it('hello with an owner key and its proof (protocol 3)', () => {
      const owned = { type: 'hello', protocol: 'ft', version: 4, owner: 'ab'.repeat(32), ownerProof: 'cd'.repeat(64), features: ['trailing-hash'] };
      expect(sender(owned)).toEqual(owned);
    });

    it.each([
      ['a short owner key', { owner: 'ab'.repeat(31) }],
      ['an owner key in uppercase', { owner: 'AB'.repeat(32) }],
      ['a short owner proof', { ownerProof: 'ab'.repeat(63) }],
      ['an owner proof that is a number', { ownerProof: 7 }],
    ])('refuses a hello with %s', (_what, fields) => {
      refusal(() => sender({ type: 'hello', protocol: 'ft', version: 4, ...fields } as JsonObject));
    });

    it("hello with the sender's own nonce (protocol 5): exactly 32 lowercase hex digits", () => {
      const hello = { type: 'hello', protocol: 'ft', version: 5, nonce: NONCE, owner: 'ab'.repeat(32), ownerProof: 'cd'.repeat(64), proof: PROOF, features: ['trailing-hash'] };
      expect(sender(hello)).toEqual(hello);
      // Absent is parsed (an older peer is told its version first); the receiver requires it in version 5.
      expect(sender({ type: 'hello', protocol: 'ft', version: 5 })).not.toHaveProperty('nonce');
    });

    it.each([
      ['31 hex digits', NONCE.slice(1)],
      ['33 hex digits', `${NONCE}0`],
      // The receiver's nonce may be up to 128 digits; the sender's is exactly 16 bytes.
      ['64 hex digits', NONCE.repeat(2)],
      ['uppercase hex', NONCE.toUpperCase()],
      ['non-hex digits', 'g'.repeat(32)],
      ['a number', 12345],
      ['null', null],
      ['an array', [NONCE]],
    ])('refuses a sender hello whose nonce is %s', (_what, nonce) => {
      refusal(() => sender({ type: 'hello', protocol: 'ft', version: 5, nonce } as JsonObject));
    });

    it('a "welcome" is no sender message', () => {
      refusal(() => sender({ type: 'welcome' }));
    });

    it('hello leaves absent optional fields absent (not present as undefined)', () => {
      const hello = sender({ type: 'hello', protocol: 'ft', version: 2 });
      expect(Object.keys(hello).sort()).toEqual(['features', 'protocol', 'type', 'version']);
    });

    it('file', () => {
      const file = { type: 'file', id: 1, filename: 'dir/Ünïcödé 三体.txt', size: 0, hash: HASH };
      expect(sender(file)).toEqual(file);
      expect(sender({ ...file, size: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER })).toMatchObject({ size: 2 ** 53 - 1 });
    });

    it('file without a hash (the hash follows the body), leaving the field absent', () => {
      const file = { type: 'file', id: 3, filename: 'big.iso', size: 5_000_000_000 };
      expect(sender(file)).toEqual(file);
      expect(Object.keys(sender(file)).sort()).toEqual(['filename', 'id', 'size', 'type']);
    });

    it('hash, after a body whose header had none', () => {
      expect(sender({ type: 'hash', id: 3, hash: HASH })).toEqual({ type: 'hash', id: 3, hash: HASH });
    });

    it('file accepts a filename of exactly 4096 UTF-8 bytes (name rules are checked elsewhere)', () => {
      const filename = 'é'.repeat(2048);
      expect(sender({ type: 'file', id: 1, filename, size: 1, hash: HASH })).toMatchObject({ filename });
    });

    it('body, cancel and bye', () => {
      expect(sender({ type: 'body', id: 7, offset: 0, length: 0 })).toEqual({ type: 'body', id: 7, offset: 0, length: 0 });
      expect(sender({ type: 'body', id: 7, offset: 10, length: 5 })).toEqual({ type: 'body', id: 7, offset: 10, length: 5 });
      expect(sender({ type: 'cancel', id: 3 })).toEqual({ type: 'cancel', id: 3 });
      expect(sender({ type: 'bye' })).toEqual({ type: 'bye' });
    });

    it('drops unknown extra fields', () => {
      expect(sender({ type: 'bye', extra: 1, nested: { a: 1 } })).toEqual({ type: 'bye' });
      expect(sender({ type: 'cancel', id: 1, offset: 5 })).toEqual({ type: 'cancel', id: 1 });
    });
  });

  describe('refusals', () => {
    it.each([
      ['no type', {}],
      ['a numeric type', { type: 1 }],
      ['a null type', { type: null }],
      ['an unknown type', { type: 'launch' }],
      ['a receiver-only type', { type: 'accept', id: 1, offset: 0 }],
      ['a type differing in case', { type: 'BYE' }],
      ['type "constructor"', { type: 'constructor' }],
      ['type "toString"', { type: 'toString' }],
      ['type "__proto__"', wire('{"type":"__proto__"}')],
    ])('refuses %s', (_what, raw) => {
      refusal(() => sender(raw as JsonObject));
    });

    it.each([
      ['a wrong protocol', { type: 'hello', protocol: 'http', version: 2 }],
      ['no protocol', { type: 'hello', version: 2 }],
      ['a string version', { type: 'hello', protocol: 'ft', version: '1' }],
      ['a negative version', { type: 'hello', protocol: 'ft', version: -1 }],
      ['a fractional version', { type: 'hello', protocol: 'ft', version: 2.5 }],
      ['a short proof', { type: 'hello', protocol: 'ft', version: 2, proof: 'ab'.repeat(31) }],
      ['an uppercase proof', { type: 'hello', protocol: 'ft', version: 2, proof: 'AB'.repeat(32) }],
      ['a numeric client', { type: 'hello', protocol: 'ft', version: 2, client: 5 }],
      ['a client over 4096 bytes', { type: 'hello', protocol: 'ft', version: 2, client: 'x'.repeat(4097) }],
      ['a null proof', { type: 'hello', protocol: 'ft', version: 2, proof: null }],
    ])('refuses a hello with %s', (_what, raw) => {
      refusal(() => sender(raw as JsonObject));
    });

    const file = { type: 'file', id: 1, filename: 'a.txt', size: 10, hash: HASH };
    it.each([
      ['id 0', { id: 0 }],
      ['a negative id', { id: -1 }],
      ['a fractional id', { id: 1.5 }],
      ['a string id', { id: '1' }],
      ['a negative size', { size: -1 }],
      ['a fractional size', { size: 10.5 }],
      ['a size of 2^53', { size: 2 ** 53 }],
      ['a size beyond 2^53', { size: 2 ** 60 }],
      ['an infinite size (1e400 on the wire)', wire('{"size":1e400}')],
      ['a string size', { size: '10' }],
      ['a null size', { size: null }],
      ['a boolean size', { size: true }],
      ['an uppercase hash', { hash: 'xxh64:0123456789ABCDEF' }],
      ['a short hash', { hash: 'xxh64:0123456789abcde' }],
      ['a long hash', { hash: 'xxh64:0123456789abcdef00' }],
      ['a hash without its prefix', { hash: '0123456789abcdef' }],
      ['a hash with another algorithm', { hash: 'sha256:0123456789abcdef' }],
      ['a hash with a trailing newline', { hash: `${HASH}\n` }],
      ['a numeric filename', { filename: 42 }],
      ['a filename over 4096 bytes', { filename: 'é'.repeat(2048) + 'x' }],
      ['an array filename', { filename: ['a.txt'] }],
    ])('refuses a file header with %s', (_what, change) => {
      refusal(() => sender({ ...file, ...(change as JsonObject) }));
    });

    it.each(['id', 'filename', 'size'])('refuses a file header without %s', (field) => {
      const raw: JsonObject = { ...file };
      delete raw[field];
      refusal(() => sender(raw));
    });

    it.each([
      ['a negative offset', { offset: -1 }],
      ['a fractional length', { length: 0.5 }],
      ['a length of 2^53', { length: 2 ** 53 }],
      ['no length', { length: undefined }],
      ['no id', { id: undefined }],
    ])('refuses a body with %s', (_what, change) => {
      const raw: JsonObject = JSON.parse(JSON.stringify({ type: 'body', id: 1, offset: 0, length: 5, ...change }));
      refusal(() => sender(raw));
    });

    it.each([
      ['no hash', { type: 'hash', id: 3 }],
      ['an uppercase hash', { type: 'hash', id: 3, hash: 'xxh64:0123456789ABCDEF' }],
      ['no id', { type: 'hash', hash: HASH }],
    ])('refuses a hash message with %s', (_what, raw) => {
      refusal(() => sender(raw as JsonObject));
    });

    it('refuses a cancel without a valid id', () => {
      refusal(() => sender({ type: 'cancel' }));
      refusal(() => sender({ type: 'cancel', id: 0 }));
    });

    it('names the field and the bad value in the message', () => {
      const error = refusal(() => sender({ ...file, size: -5 }));
      expect(error.message).toContain('size');
      expect(error.message).toContain('-5');
    });
  });

  describe('prototype keys', () => {
    it('does not let "__proto__" or "constructor" keys leak into the result', () => {
      const raw = wire(
        `{"type":"file","id":1,"filename":"a.txt","size":3,"hash":"${HASH}","__proto__":{"polluted":true,"size":99},"constructor":{"prototype":{"polluted":true}}}`,
      );
      expect(Object.hasOwn(raw, '__proto__')).toBe(true); // the test input really carries the key
      const message = sender(raw);
      expect(Object.keys(message).sort()).toEqual(['filename', 'hash', 'id', 'size', 'type']);
      expect(Reflect.ownKeys(message)).not.toContain('__proto__');
      expect(Object.getPrototypeOf(message)).toBe(Object.prototype);
      expect((message as unknown as Record<string, unknown>).polluted).toBeUndefined();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype).not.toHaveProperty('polluted');
    });

    it('does not read required fields from "__proto__"', () => {
      refusal(() => sender(wire(`{"type":"cancel","__proto__":{"id":1}}`)));
      refusal(() => sender(wire(`{"__proto__":{"type":"bye"}}`)));
    });

    it('does not read required fields inherited through a prototype', () => {
      const raw = Object.create({ type: 'cancel', id: 1 }) as JsonObject;
      refusal(() => sender(raw));
    });

    it('leaves hello optional fields absent when only the prototype has them', () => {
      const raw = Object.assign(Object.create({ proof: PROOF, client: 'x' }), { type: 'hello', protocol: 'ft', version: 2 }) as JsonObject;
      expect(sender(raw)).toEqual({ type: 'hello', protocol: 'ft', version: 2, features: [] });
    });
  });
});

describe('parseReceiverMessage', () => {
  describe('valid messages', () => {
    it('hello, with both auth methods and an optional name', () => {
      expect(receiver({ type: 'hello', protocol: 'ft', version: 2, auth: 'none', nonce: NONCE })).toEqual({
        type: 'hello',
        protocol: 'ft',
        version: 2,
        auth: 'none',
        nonce: NONCE,
        features: [],
      });
      const nonce128 = 'f'.repeat(128);
      expect(receiver({ type: 'hello', protocol: 'ft', version: 2, auth: 'hmac-sha256', nonce: nonce128, name: 'desk' })).toEqual({
        type: 'hello',
        protocol: 'ft',
        version: 2,
        auth: 'hmac-sha256',
        nonce: nonce128,
        name: 'desk',
        features: [],
      });
    });

    it('welcome, with and without the receiver\'s token proof; unknown fields dropped', () => {
      expect(receiver({ type: 'welcome' })).toEqual({ type: 'welcome' });
      expect(Object.keys(receiver({ type: 'welcome' }))).toEqual(['type']);
      expect(receiver({ type: 'welcome', proof: PROOF })).toEqual({ type: 'welcome', proof: PROOF });
      expect(receiver({ type: 'welcome', proof: PROOF, path: '/inbox', features: ['x'] })).toEqual({ type: 'welcome', proof: PROOF });
    });

    it.each([
      ['a short proof', 'ab'.repeat(31)],
      ['a long proof', 'ab'.repeat(33)],
      ['an uppercase proof', 'AB'.repeat(32)],
      ['a proof that is a number', 7],
      ['a null proof', null],
      ['an empty proof', ''],
    ])('refuses a welcome with %s', (_what, proof) => {
      refusal(() => receiver({ type: 'welcome', proof } as JsonObject));
    });

    it('need-hash is no message of protocol 3', () => {
      refusal(() => receiver({ type: 'need-hash', id: 4 }));
    });

    it('skip and done with and without a path and a receipt', () => {
      expect(receiver({ type: 'skip', id: 2, reason: 'already-there' })).toEqual({ type: 'skip', id: 2, reason: 'already-there' });
      const receipt = 'A-_z'.repeat(40);
      expect(receiver({ type: 'done', id: 2, hash: HASH, receipt })).toEqual({ type: 'done', id: 2, hash: HASH, receipt });
      expect(receiver({ type: 'done', id: 2, hash: HASH })).toEqual({ type: 'done', id: 2, hash: HASH });
    });

    it.each([
      ['a receipt with characters outside base64url', { type: 'done', id: 1, hash: HASH, receipt: 'a+b/'.repeat(10) }],
      ['a receipt that is too short', { type: 'done', id: 1, hash: HASH, receipt: 'abc' }],
      ['a receipt over 16384 characters', { type: 'done', id: 1, hash: HASH, receipt: 'a'.repeat(16385) }],
      ['a receipt that is a number', { type: 'done', id: 1, hash: HASH, receipt: 5 }],
    ])('refuses a done with %s', (_what, message) => {
      refusal(() => receiver(message as JsonObject));
    });

    it('accept at offset 0 (no prefixHash needed) and at a resume offset with prefixHash', () => {
      expect(receiver({ type: 'accept', id: 1, offset: 0 })).toEqual({ type: 'accept', id: 1, offset: 0 });
      expect(receiver({ type: 'accept', id: 1, offset: 4096, prefixHash: HASH })).toEqual({ type: 'accept', id: 1, offset: 4096, prefixHash: HASH });
    });

    it('skip, refuse, failed, done and error', () => {
      expect(receiver({ type: 'skip', id: 2, reason: 'already-there', path: 'a (1).txt' })).toEqual({
        type: 'skip',
        id: 2,
        reason: 'already-there',
        path: 'a (1).txt',
      });
      expect(receiver({ type: 'refuse', id: 2, code: 'BAD_NAME', message: 'no' })).toEqual({ type: 'refuse', id: 2, code: 'BAD_NAME', message: 'no' });
      expect(receiver({ type: 'failed', id: 2, code: 'HASH_MISMATCH', message: '' })).toEqual({
        type: 'failed',
        id: 2,
        code: 'HASH_MISMATCH',
        message: '',
      });
      expect(receiver({ type: 'done', id: 2, hash: HASH, path: 'a.txt' })).toEqual({ type: 'done', id: 2, hash: HASH, path: 'a.txt' });
      expect(receiver({ type: 'error', code: 'BAD_MESSAGE', message: 'slow' })).toEqual({ type: 'error', code: 'BAD_MESSAGE', message: 'slow' });
    });
  });

  describe('refusals', () => {
    it.each([
      ['no type', {}],
      ['an unknown type', { type: 'launch' }],
      ['a sender-only type', { type: 'bye' }],
      ['an array type', { type: ['accept'] }],
    ])('refuses %s', (_what, raw) => {
      refusal(() => receiver(raw as JsonObject));
    });

    it.each([
      ['an unknown auth method', { auth: 'md5' }],
      ['a missing auth', { auth: undefined }],
      ['a short nonce', { nonce: 'a'.repeat(31) }],
      ['a long nonce', { nonce: 'a'.repeat(129) }],
      ['an uppercase nonce', { nonce: 'A'.repeat(32) }],
      ['a missing nonce', { nonce: undefined }],
      ['a numeric name', { name: 3 }],
      ['a wrong protocol', { protocol: 'FT' }],
    ])('refuses a hello with %s', (_what, change) => {
      const raw: JsonObject = JSON.parse(JSON.stringify({ type: 'hello', protocol: 'ft', version: 2, auth: 'none', nonce: NONCE, ...change }));
      refusal(() => receiver(raw));
    });

    it('refuses an accept with offset > 0 but no prefixHash', () => {
      const error = refusal(() => receiver({ type: 'accept', id: 1, offset: 1 }));
      expect(error.message).toContain('prefixHash');
    });

    it('refuses an accept with offset > 0 and a null or malformed prefixHash', () => {
      refusal(() => receiver({ type: 'accept', id: 1, offset: 10, prefixHash: null }));
      refusal(() => receiver({ type: 'accept', id: 1, offset: 10, prefixHash: 'xxh64:0123456789ABCDEF' }));
      refusal(() => receiver({ type: 'accept', id: 1, offset: 10, prefixHash: '0123456789abcdef' }));
      refusal(() => receiver({ type: 'accept', id: 1, offset: 10, prefixHash: 'xxh64:0123' }));
    });

    it('refuses an accept whose prefixHash sits only on the prototype', () => {
      refusal(() => receiver(wire(`{"type":"accept","id":1,"offset":10,"__proto__":{"prefixHash":"${HASH}"}}`)));
    });

    it.each([
      ['a negative offset', { type: 'accept', id: 1, offset: -1 }],
      ['a fractional offset', { type: 'accept', id: 1, offset: 0.5 }],
      ['an offset of 2^53', { type: 'accept', id: 1, offset: 2 ** 53, prefixHash: HASH }],
      ['a skip reason we do not know', { type: 'skip', id: 1, reason: 'bored', path: 'a' }],
      ['a skip with a numeric path', { type: 'skip', id: 1, reason: 'already-there', path: 5 }],
      ['need-hash, gone in protocol 3', { type: 'need-hash', id: 4 }],
      ['a done with a receipt that is not base64url', { type: 'done', id: 1, hash: HASH, receipt: 'not/base64url+'.repeat(2) }],
      ['a done with a receipt too short', { type: 'done', id: 1, hash: HASH, receipt: 'abc' }],
      ['a done with a receipt over 16384 characters', { type: 'done', id: 1, hash: HASH, receipt: 'a'.repeat(16385) }],
      ['a done with an uppercase hash', { type: 'done', id: 1, hash: 'xxh64:ABCDEF0123456789', path: 'a' }],
      ['a done with a hash missing its prefix', { type: 'done', id: 1, hash: '0123456789abcdef', path: 'a' }],
      ['a refuse with a numeric code', { type: 'refuse', id: 1, code: 5, message: 'x' }],
      ['a refuse without code', { type: 'refuse', id: 1, message: 'x' }],
      ['a failed without message', { type: 'failed', id: 1, code: 'HASH_MISMATCH' }],
      ['an error with a message over 4096 bytes', { type: 'error', code: 'TIMEOUT', message: 'x'.repeat(4097) }],
      ['a refuse with id 0', { type: 'refuse', id: 0, code: 'BAD_NAME', message: 'x' }],
    ])('refuses %s', (_what, raw) => {
      refusal(() => receiver(raw as JsonObject));
    });
  });

  describe('error codes from the peer', () => {
    it.each(['SOMETHING_NEW', 'bad_name', '', '__proto__', 'constructor', 'toString', 'hasOwnProperty'])(
      'maps the unknown code %j to INTERNAL',
      (code) => {
        expect(receiver({ type: 'error', code, message: 'x' })).toEqual({ type: 'error', code: 'INTERNAL', message: 'x' });
        expect(receiver({ type: 'refuse', id: 1, code, message: 'x' })).toMatchObject({ code: 'INTERNAL' });
        expect(receiver({ type: 'failed', id: 1, code, message: 'x' })).toMatchObject({ code: 'INTERNAL' });
      },
    );

    it.each(['BAD_NAME', 'CONFLICT', 'NO_SPACE', 'BUSY', 'HASH_MISMATCH', 'AUTH_FAILED'] as ErrorCode[])('keeps the known code %s', (code) => {
      expect(receiver({ type: 'refuse', id: 1, code, message: 'x' })).toMatchObject({ code });
    });

    // PROTOCOL.md §7.1: a code travels when its row in the table says so; the others exist for local reporting.
    const protocol = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
    const table = protocol.slice(protocol.indexOf('### 7.1 Codes'), protocol.indexOf('Codes that never travel'));
    const travelling = [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((match) => match[1]!);
    const localOnly = (Object.keys(ERROR_CODES) as ErrorCode[]).filter((code) => !travelling.includes(code));

    it('the protocol lists the codes that travel, and those that do not', () => {
      expect(travelling).toContain('BAD_NAME');
      expect(localOnly.sort()).toEqual([
        'ABORTED',
        'CONNECTION_LOST',
        'CONNECT_FAILED',
        'FILE_CHANGED',
        'IDENTITY_INVALID',
        'LISTEN_FAILED',
        'LOCAL_FILE',
        'RECEIVER_KEY_CHANGED',
        'RECEIVER_NOT_AUTHENTIC',
        'RECEIVER_UNKNOWN',
        'STREAM_INTERRUPTED',
        'TIMEOUT',
        'TLS_FAILED',
        'TRUST_STORE_INVALID',
        'USAGE',
      ]);
    });

    it('names every local-only code where the protocol lists the codes that never travel', () => {
      const never = protocol.slice(protocol.indexOf('Codes that never travel'), protocol.indexOf('### 7.2'));
      const named = [...never.matchAll(/`([A-Z_]+)`/g)].map((match) => match[1]!);
      // (INTERNAL is named there as what a reader takes such a code for.)
      expect([...new Set(named)].filter((code) => code !== 'INTERNAL').sort()).toEqual([...localOnly].sort());
      // One line each for the codes of the channel and of trust, with the description errors.ts gives.
      for (const code of ['TLS_FAILED', 'IDENTITY_INVALID', 'RECEIVER_KEY_CHANGED', 'RECEIVER_UNKNOWN', 'RECEIVER_NOT_AUTHENTIC', 'TRUST_STORE_INVALID'] as const) {
        expect(never).toContain(`- \`${code}\`: ${LOCAL_CODES[code]}\n`);
      }
    });

    it.each(localOnly)('does not believe the local-only code %s from a peer: it is read as INTERNAL', (code) => {
      expect(receiver({ type: 'error', code, message: 'x' })).toEqual({ type: 'error', code: 'INTERNAL', message: 'x' });
      expect(receiver({ type: 'refuse', id: 1, code, message: 'x' })).toMatchObject({ code: 'INTERNAL' });
      expect(receiver({ type: 'failed', id: 1, code, message: 'x' })).toMatchObject({ code: 'INTERNAL' });
    });

    it('keeps every code that travels', () => {
      for (const code of travelling) expect(receiver({ type: 'failed', id: 1, code, message: 'x' })).toMatchObject({ code });
    });

    it('WIRE_CODES are the codes the protocol says travel, LOCAL_CODES those it says never do; ERROR_CODES is both', () => {
      expect(Object.keys(WIRE_CODES).sort()).toEqual([...travelling].sort());
      expect(Object.keys(LOCAL_CODES).sort()).toEqual(localOnly.sort());
      expect(Object.keys(WIRE_CODES).filter((code) => Object.hasOwn(LOCAL_CODES, code))).toEqual([]);
      expect(ERROR_CODES).toEqual({ ...WIRE_CODES, ...LOCAL_CODES });
      for (const description of Object.values(ERROR_CODES)) expect(description).toMatch(/^[a-z].+[^.]$/);
    });

    it('the parser reads every local code as INTERNAL and keeps every wire code (from the sets, not a list of its own)', () => {
      for (const code of Object.keys(LOCAL_CODES)) expect(receiver({ type: 'refuse', id: 1, code, message: 'x' })).toMatchObject({ code: 'INTERNAL' });
      for (const code of Object.keys(WIRE_CODES)) expect(receiver({ type: 'error', code, message: 'x' })).toMatchObject({ code });
    });
  });

  describe('codes we put on the wire', () => {
    it('wireCodeOf keeps a wire code and sends a local one as INTERNAL (what the peer would read it as)', () => {
      for (const code of Object.keys(WIRE_CODES) as WireCode[]) expect(wireCodeOf(code)).toBe(code);
      for (const code of Object.keys(LOCAL_CODES) as ErrorCode[]) expect(wireCodeOf(code)).toBe('INTERNAL');
    });

    it('a wire message cannot be built with a local code (checked by npm run typecheck)', () => {
      // @ts-expect-error TIMEOUT describes this side only: it is no WireCode.
      const refuse: Refuse = { type: 'refuse', id: 1, code: 'TIMEOUT', message: 'x' };
      const local: ErrorCode = 'CONNECTION_LOST';
      // @ts-expect-error an ErrorCode is not a WireCode until wireCodeOf says which.
      const failed: WireCode = local;
      expect([refuse.code, failed]).toEqual(['TIMEOUT', 'CONNECTION_LOST']);
    });
  });

  it('does not let "__proto__" or "constructor" keys leak into the result', () => {
    const raw = wire(`{"type":"error","code":"TIMEOUT","message":"m","__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}}}`);
    const message = receiver(raw);
    expect(Reflect.ownKeys(message).sort()).toEqual(['code', 'message', 'type']);
    expect(Object.getPrototypeOf(message)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('feature stream', () => {
  it('is shared only with trailing-hash, which it needs', () => {
    expect([...sharedFeatures(OUR_FEATURES, ['stream', 'trailing-hash'])].sort()).toEqual(['stream', 'trailing-hash']);
    expect([...sharedFeatures(OUR_FEATURES, ['stream'])]).toEqual([]);
    expect([...sharedFeatures(['trailing-hash'], ['stream', 'trailing-hash'])]).toEqual(['trailing-hash']);
  });

  it('a stream header may leave out the size (the state machine refuses one that has it); others may not', () => {
    expect(parseSenderMessage({ type: 'file', id: 1, filename: 'x', stream: true })).toEqual({ type: 'file', id: 1, filename: 'x', stream: true });
    expect(parseSenderMessage({ type: 'file', id: 1, filename: 'x', stream: true, size: 3 })).toEqual({ type: 'file', id: 1, filename: 'x', size: 3, stream: true });
    expect(parseSenderMessage({ type: 'file', id: 1, filename: 'x', size: 3, stream: false })).toEqual({ type: 'file', id: 1, filename: 'x', size: 3 });
    expect(() => parseSenderMessage({ type: 'file', id: 1, filename: 'x' })).toThrow(/size/);
    expect(() => parseSenderMessage({ type: 'file', id: 1, filename: 'x', stream: 'yes' })).toThrow(/stream/);
    expect(() => parseSenderMessage({ type: 'file', id: 1, filename: 'x', stream: true, size: -1 })).toThrow(/size/);
  });

  it('a hash carries a size when it holds a count, and is read without it otherwise (a field the base protocol does not know)', () => {
    const hash = 'xxh64:abdc2a61f1f91f4c';
    expect(parseSenderMessage({ type: 'hash', id: 1, hash, size: 13 })).toEqual({ type: 'hash', id: 1, hash, size: 13 });
    expect(parseSenderMessage({ type: 'hash', id: 1, hash, size: 'x' })).toEqual({ type: 'hash', id: 1, hash });
    expect(parseSenderMessage({ type: 'hash', id: 1, hash, size: 1.5 })).toEqual({ type: 'hash', id: 1, hash });
  });
});
