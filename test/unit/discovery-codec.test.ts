/**
 * Discovery datagrams: encode/decode round trips, the query-is-never-smaller-than-its-answer
 * rule, and a decoder that turns anything malformed into undefined without throwing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  cleanReceiverName,
  decodeDatagram,
  DISCOVERY_MARKER,
  DISCOVERY_VERSION,
  encodeDatagram,
  encodeWithin,
  MAX_ADDRESSES,
  MAX_DATAGRAM_BYTES,
  MAX_NAME_BYTES,
  QUERY_BYTES,
  type Datagram,
} from '../../src/discovery/codec.js';

const ID = '0123456789abcdef';
const QID = 'fedcba9876543210';
/** A full fingerprint (52 characters of base32), written out so the test does not depend on the code under test. */
const FP = 'MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOV3HO6DZPIYTEMZUGU3D';

// The wire objects below carry no `addrs` (as from an older receiver): that decodes as an empty list.
const announce: Datagram = { kind: 'announce', name: 'laptop', id: ID, port: 9527, auth: false, interval: 3, addrs: [] };
const answer: Datagram = { kind: 'answer', qid: QID, name: 'desk', id: ID, port: 40000, auth: true, interval: 0.5, addrs: ['192.168.1.20', '10.0.0.5'] };
const query: Datagram = { kind: 'query', qid: QID };

/** Wire objects (as a peer would send them) that decode; each rejection case mutates one. */
const wireAnnounce = () => ({ m: DISCOVERY_MARKER, v: DISCOVERY_VERSION, kind: 'announce', name: 'laptop', id: ID, port: 9527, auth: false, interval: 3 });
const wireAnswer = () => ({ ...wireAnnounce(), kind: 'answer', qid: QID });
const wireQuery = () => ({ m: DISCOVERY_MARKER, v: DISCOVERY_VERSION, kind: 'query', qid: QID });

const bytes = (value: unknown) => Buffer.from(JSON.stringify(value));
// Written out independently of the code under test: the classes names may not contain (src/names/safe-name.ts),
// controls, bidi and other format characters, invisible, blank and private-use ones among them.
const CONTROL_OR_BIDI =
  /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Co}\p{Cs}\p{Noncharacter_Code_Point}\u2800\u{16fe4}\u{1d159}]|(?! )\p{White_Space}/u;

describe('encodeDatagram / decodeDatagram round trips', () => {
  it.each([
    ['announce', announce],
    ['answer', answer],
    ['query', query],
  ])('%s', (_kind, datagram) => {
    const encoded = encodeDatagram(datagram);
    expect(decodeDatagram(encoded)).toEqual(datagram);
    const wire = JSON.parse(encoded.toString('utf8'));
    expect(wire.m).toBe(DISCOVERY_MARKER);
    expect(wire.v).toBe(DISCOVERY_VERSION);
    expect(wire.kind).toBe(datagram.kind);
  });

  it('keeps a non-ASCII name, boundary ports and the largest interval', () => {
    for (const datagram of [
      { ...announce, name: 'Küche — 台所 🍳', port: 1, interval: 3600 },
      { ...announce, name: 'x'.repeat(MAX_NAME_BYTES), port: 65535, auth: true, interval: 0.001 },
    ] as Datagram[]) {
      expect(decodeDatagram(encodeDatagram(datagram))).toEqual(datagram);
    }
  });

  it('decodes the wire objects used as bases below (so each rejection is due to its one change)', () => {
    expect(decodeDatagram(bytes(wireAnnounce()))).toEqual(announce);
    expect(decodeDatagram(bytes(wireAnswer()))).toEqual({ ...announce, kind: 'answer', qid: QID });
    expect(decodeDatagram(bytes(wireQuery()))).toEqual(query);
  });

  it('ignores unknown extra fields and does not copy them into the result', () => {
    expect(decodeDatagram(bytes({ ...wireAnnounce(), extra: 1, pad: '    ' }))).toEqual(announce);
    expect(decodeDatagram(bytes({ ...wireQuery(), pad: 'x', name: 'y' }))).toEqual(query);
  });
});

describe('no amplification: queries are padded, answers are smaller', () => {
  it(`pads a query to exactly QUERY_BYTES (${QUERY_BYTES})`, () => {
    const encoded = encodeDatagram({ kind: 'query', qid: QID });
    expect(encoded.length).toBe(QUERY_BYTES);
    expect(QUERY_BYTES).toBeLessThanOrEqual(MAX_DATAGRAM_BYTES);
    // The padding is what makes it that big.
    expect(Buffer.byteLength(JSON.stringify(wireQuery()))).toBeLessThan(QUERY_BYTES / 2);
  });

  it.each([
    ['ASCII', 'n'.repeat(64)],
    ['quotes (escaped to 2 bytes each)', '"'.repeat(64)],
    ['backslashes (escaped to 2 bytes each)', '\\'.repeat(64)],
    ['3-byte characters', '€'.repeat(21)],
    ['4-byte characters', '😀'.repeat(16)],
  ])('an answer with a maximal 64-byte name of %s is smaller than a query', (_what, name) => {
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_NAME_BYTES);
    const queryBytes = encodeDatagram({ kind: 'query', qid: QID }).length;
    for (const interval of [3600, 1 / 3, 0.1234567890123457]) {
      const datagram: Datagram = { kind: 'answer', qid: QID, name, id: ID, port: 65535, auth: false, interval, addrs: [] };
      const encoded = encodeDatagram(datagram);
      expect(decodeDatagram(encoded)).toEqual(datagram);
      expect(encoded.length).toBeLessThan(queryBytes);
    }
  });
});

describe('decodeDatagram rejects (returns undefined, never throws)', () => {
  const rejects = (buffer: Buffer) => {
    let result: unknown = 'threw';
    expect(() => (result = decodeDatagram(buffer))).not.toThrow();
    expect(result).toBeUndefined();
  };
  const json = (text: string) => Buffer.from(text, 'utf8');

  it('an empty datagram', () => rejects(Buffer.alloc(0)));

  it('a datagram over MAX_DATAGRAM_BYTES, even when it is otherwise valid', () => {
    const sized = (total: number) => {
      const base = JSON.stringify({ ...wireAnnounce(), pad: '' });
      return json(JSON.stringify({ ...wireAnnounce(), pad: ' '.repeat(total - Buffer.byteLength(base)) }));
    };
    expect(sized(MAX_DATAGRAM_BYTES).length).toBe(MAX_DATAGRAM_BYTES);
    expect(decodeDatagram(sized(MAX_DATAGRAM_BYTES))).toEqual(announce);
    expect(sized(MAX_DATAGRAM_BYTES + 1).length).toBe(MAX_DATAGRAM_BYTES + 1);
    rejects(sized(MAX_DATAGRAM_BYTES + 1));
    rejects(sized(2000));
  });

  it.each([
    ['a 0xff byte', [0xff]],
    ['an overlong encoding of "/"', [0xc0, 0xaf]],
    ['an encoded lone surrogate', [0xed, 0xa0, 0x80]],
    ['a truncated 3-byte sequence', [0xe2, 0x82]],
  ])('invalid UTF-8 inside an otherwise valid name: %s', (_what, bad) => {
    const text = JSON.stringify(wireAnnounce());
    const [before, after] = text.split('laptop') as [string, string];
    const buffer = Buffer.concat([json(before + 'lap'), Buffer.from(bad), json('top' + after)]);
    // A lenient decoder would turn the bad bytes into U+FFFD and accept the datagram.
    expect(decodeDatagram(Buffer.from(new TextDecoder().decode(buffer)))).toMatchObject({ kind: 'announce' });
    rejects(buffer);
  });

  it.each(['hello', '{', '{"m":"ft-discovery","v":1,"kind":"query"', "{'m':'ft-discovery'}", 'undefined', 'NaN', '\u0000'])(
    'non-JSON %j',
    (text) => rejects(json(text)),
  );

  it.each(['null', '42', '"ft-discovery"', 'true', '[]'])('JSON that is not an object: %s', (text) => rejects(json(text)));

  it('an array holding a valid datagram', () => {
    rejects(bytes([wireAnnounce()]));
    rejects(bytes([wireQuery()]));
  });

  it.each([['ft-discovery2'], ['FT-DISCOVERY'], [''], [null], [1], [undefined]])('marker m = %j', (m) => {
    rejects(bytes({ ...wireAnnounce(), m }));
    rejects(bytes({ ...wireQuery(), m }));
  });

  it.each([[2], [0], ['1'], [1.5], [null], [undefined]])('version v = %j', (v) => {
    rejects(bytes({ ...wireAnnounce(), v }));
    rejects(bytes({ ...wireQuery(), v }));
  });

  it.each([['hello'], ['Announce'], ['QUERY'], [''], [null], [1], [undefined], ['__proto__'], ['constructor']])('kind = %j', (kind) => {
    rejects(bytes({ ...wireAnnounce(), kind }));
  });

  it.each([
    ['too short', ID.slice(1)],
    ['too long', ID + '0'],
    ['upper-case hex', ID.toUpperCase()],
    ['not hex', 'g123456789abcdef'],
    ['with whitespace', ' 123456789abcdef'],
    ['a number', 1234567890123456],
    ['missing', undefined],
  ])('id %s', (_what, id) => {
    rejects(bytes({ ...wireAnnounce(), id }));
    rejects(bytes({ ...wireAnswer(), id }));
  });

  it.each([
    ['too short', QID.slice(1)],
    ['too long', QID + '0'],
    ['upper-case hex', QID.toUpperCase()],
    ['not hex', 'fedcba987654321z'],
    ['a number', 1234567890123456],
    ['an object', { qid: QID }],
    ['missing', undefined],
  ])('qid %s (query and answer)', (_what, qid) => {
    rejects(bytes({ ...wireQuery(), qid }));
    rejects(bytes({ ...wireAnswer(), qid }));
  });

  it.each([[0], [-1], [65536], [70000], [1.5], ['8080'], [null], [true], [undefined]])('port %j', (port) => {
    rejects(bytes({ ...wireAnnounce(), port }));
    rejects(bytes({ ...wireAnswer(), port }));
  });

  it.each([
    ['empty', ''],
    ['65 bytes', 'x'.repeat(MAX_NAME_BYTES + 1)],
    ['22 characters but 66 bytes', '€'.repeat(22)],
    ['NUL', 'lap\u0000top'],
    ['newline', 'lap\ntop'],
    ['escape (terminal control)', '\u001b[31mred'],
    ['DEL', 'lap\u007ftop'],
    ['C1 control', 'lap\u0085top'],
    ['RIGHT-TO-LEFT OVERRIDE U+202E', 'evil\u202etxt.exe'],
    ['LEFT-TO-RIGHT EMBEDDING U+202A', '\u202alaptop'],
    ['FIRST STRONG ISOLATE U+2068', 'lap\u2068top'],
    ['a number', 42],
    ['an array', ['laptop']],
    ['missing', undefined],
  ])('name %s', (_what, name) => {
    rejects(bytes({ ...wireAnnounce(), name }));
    rejects(bytes({ ...wireAnswer(), name }));
  });

  it.each([[0], [-1], [3601], [1e9], [Number.MAX_VALUE], ['3'], [null], [undefined]])('interval %j', (interval) => {
    rejects(bytes({ ...wireAnnounce(), interval }));
    rejects(bytes({ ...wireAnswer(), interval }));
  });

  it('an infinite interval (1e999 in the JSON text)', () => {
    rejects(json(JSON.stringify(wireAnnounce()).replace('"interval":3', '"interval":1e999')));
  });

  it.each([['yes'], [1], [0], [null], [undefined]])('auth %j', (auth) => {
    rejects(bytes({ ...wireAnnounce(), auth }));
  });

  it('fields that arrive only under a "__proto__" key', () => {
    // JSON.parse makes "__proto__" an own key; its contents must not stand in for real fields.
    rejects(json(`{"__proto__":${JSON.stringify(wireAnnounce())}}`));
    rejects(json(`{"__proto__":${JSON.stringify(wireQuery())}}`));
    const { qid: _qid, ...noQid } = wireQuery();
    rejects(json(`{"__proto__":{"qid":"${QID}"},${JSON.stringify(noQid).slice(1)}`));
    const { port: _port, ...noPort } = wireAnnounce();
    rejects(json(`{"__proto__":{"port":9527},${JSON.stringify(noPort).slice(1)}`));
  });

  it('a "__proto__" key beside valid fields neither leaks into the result nor pollutes Object.prototype', () => {
    const text = `{"__proto__":{"polluted":true,"kind":"answer"},${JSON.stringify(wireAnnounce()).slice(1)}`;
    const decoded = decodeDatagram(json(text));
    expect(decoded).toEqual(announce);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(decoded!).sort()).toEqual(['addrs', 'auth', 'id', 'interval', 'kind', 'name', 'port']);
  });
});

describe('addrs: the addresses a receiver answers from', () => {
  it('round-trips, keeps the order, drops duplicates, and is empty when absent (an older receiver)', () => {
    const addrs = ['192.168.1.20', '10.0.0.5', '127.0.0.1'];
    expect(decodeDatagram(bytes({ ...wireAnnounce(), addrs }))).toEqual({ ...announce, addrs });
    expect(decodeDatagram(bytes({ ...wireAnswer(), addrs: [...addrs, '10.0.0.5'] }))).toMatchObject({ kind: 'answer', addrs });
    expect(decodeDatagram(bytes(wireAnnounce()))).toMatchObject({ addrs: [] });
    expect(decodeDatagram(bytes({ ...wireAnnounce(), addrs: [] }))).toMatchObject({ addrs: [] });
    const wire = JSON.parse(encodeDatagram(answer).toString());
    expect(Object.keys(wire)).toEqual(['m', 'v', 'kind', 'qid', 'name', 'id', 'port', 'auth', 'interval', 'addrs']);
  });

  it.each([
    ['a string', '192.168.1.20'],
    ['an object', { 0: '192.168.1.20' }],
    ['null', null],
    ['a number inside', [3232235796]],
    ['an IPv6 address', ['fe80::1']],
    ['a host name', ['laptop.local']],
    ['an octet over 255', ['192.168.1.256']],
    ['leading zeros', ['192.168.001.020']],
    ['white space', [' 192.168.1.20']],
    ['a CIDR suffix', ['192.168.1.20/24']],
    [`more than ${MAX_ADDRESSES}`, Array.from({ length: MAX_ADDRESSES + 1 }, (_, i) => `10.0.0.${i + 1}`)],
  ])('rejects addrs that is %s', (_what, addrs) => {
    expect(decodeDatagram(bytes({ ...wireAnnounce(), addrs }))).toBeUndefined();
    expect(decodeDatagram(bytes({ ...wireAnswer(), addrs }))).toBeUndefined();
  });

  it('encodeWithin drops addresses from the end until the datagram fits, and gives up only when nothing fits', () => {
    const addrs = Array.from({ length: MAX_ADDRESSES }, (_, i) => `192.168.100.${i + 1}`);
    const full = encodeDatagram({ ...answer, addrs });
    expect(full.length).toBeGreaterThan(QUERY_BYTES);
    const fitted = encodeWithin({ ...answer, addrs }, QUERY_BYTES)!;
    expect(fitted.length).toBeLessThanOrEqual(QUERY_BYTES);
    const decoded = decodeDatagram(fitted) as { addrs: string[] };
    // The longest prefix that fits: one address more would not.
    expect(decoded.addrs).toEqual(addrs.slice(0, decoded.addrs.length));
    expect(decoded.addrs.length).toBeGreaterThan(5);
    expect(encodeDatagram({ ...answer, addrs: addrs.slice(0, decoded.addrs.length + 1) }).length).toBeGreaterThan(QUERY_BYTES);
    // Room for all: unchanged.
    expect(encodeWithin(answer, QUERY_BYTES)!.equals(encodeDatagram(answer))).toBe(true);
    // Not even without addresses: nothing.
    expect(encodeWithin({ ...answer, addrs }, 50)).toBeUndefined();
    // Never more addresses than a reader accepts, however much room there is.
    const many = Array.from({ length: MAX_ADDRESSES + 8 }, (_, i) => `10.0.${i}.1`);
    expect(decodeDatagram(encodeWithin({ ...announce, addrs: many }, MAX_DATAGRAM_BYTES)!)).toMatchObject({ addrs: many.slice(0, MAX_ADDRESSES) });
  });

  it('an answer with a 64-byte name of escaped characters and a key fingerprint still carries 8 addresses in a 512-byte query (PROTOCOL.md §10.3; docs/IMPLEMENTATION.md, Discovery)', () => {
    const addrs = Array.from({ length: MAX_ADDRESSES }, (_, i) => `255.255.255.${100 + i}`);
    const worst: Datagram = { kind: 'answer', qid: QID, name: '"'.repeat(64), id: ID, port: 65535, auth: false, interval: 0.1234567890123457, fingerprint: FP, addrs };
    expect(encodeDatagram({ ...worst, addrs: [] }).length).toBeLessThan(360);
    const decoded = decodeDatagram(encodeWithin(worst, QUERY_BYTES)!) as { addrs: string[]; fingerprint: string };
    expect(decoded.fingerprint).toBe(FP);
    expect(decoded.addrs.length).toBeGreaterThanOrEqual(8);
  });
});

describe('fp: the full fingerprint of the receiver key', () => {
  it('round-trips in announces and answers as `fingerprint`, travelling as `fp` before `addrs`; absent means a receiver in plaintext', () => {
    for (const datagram of [
      { ...announce, fingerprint: FP },
      { ...answer, fingerprint: FP },
    ] as Datagram[]) {
      const encoded = encodeDatagram(datagram);
      expect(decodeDatagram(encoded)).toEqual(datagram);
      const wire = JSON.parse(encoded.toString());
      expect(wire.fp).toBe(FP);
      expect(wire.fingerprint).toBeUndefined();
      expect(Object.keys(wire).slice(-2)).toEqual(['fp', 'addrs']);
    }
    expect(decodeDatagram(bytes({ ...wireAnnounce(), fp: FP }))).toEqual({ ...announce, fingerprint: FP });
    // No fp: no `fingerprint` key at all (not one holding undefined), and none on the wire.
    const plain = decodeDatagram(bytes(wireAnswer()))!;
    expect(Object.hasOwn(plain, 'fingerprint')).toBe(false);
    expect(Object.hasOwn(JSON.parse(encodeDatagram(answer).toString()), 'fp')).toBe(false);
  });

  it('a query carries none, even when handed one', () => {
    const wire = JSON.parse(encodeDatagram({ kind: 'query', qid: QID, fingerprint: FP } as unknown as Datagram).toString());
    expect(wire.fp).toBeUndefined();
    expect(decodeDatagram(bytes({ ...wireQuery(), fp: 'anything' }))).toEqual(query);
  });

  it.each([
    ['lower case', FP.toLowerCase()],
    ['the short form (32 characters in groups)', (FP.slice(0, 32).match(/.{4}/g) ?? []).join('-')],
    ['the short form without dashes', FP.slice(0, 32)],
    ['51 characters', FP.slice(0, 51)],
    ['53 characters', FP + 'A'],
    ['a digit outside base32 (1)', '1' + FP.slice(1)],
    ['a digit outside base32 (0)', FP.slice(0, 51) + '0'],
    ['padding', FP.slice(0, 48) + '===='],
    ['surrounding space', ` ${FP}`],
    ['hex (SHA-256 as 64 hex digits)', 'ab'.repeat(32)],
    ['empty', ''],
    ['null', null],
    ['false', false],
    ['a number', 42],
    ['an array', [FP]],
    ['an object', { fp: FP }],
  ])('rejects the whole datagram when fp is %s', (_what, fp) => {
    expect(decodeDatagram(bytes({ ...wireAnnounce(), fp }))).toBeUndefined();
    expect(decodeDatagram(bytes({ ...wireAnswer(), fp }))).toBeUndefined();
  });

  it('fp only under a "__proto__" key is no fp', () => {
    const text = `{"__proto__":{"fp":"${FP}"},${JSON.stringify(wireAnnounce()).slice(1)}`;
    expect(decodeDatagram(Buffer.from(text))).toEqual(announce);
  });

  it('an answer with fp and a maximal name is still smaller than a query, so every query gets one', () => {
    for (const name of ['n'.repeat(64), '"'.repeat(64), '\\'.repeat(64), '😀'.repeat(16)]) {
      const encoded = encodeDatagram({ kind: 'answer', qid: QID, name, id: ID, port: 65535, auth: true, interval: 0.1234567890123457, fingerprint: FP, addrs: [] });
      expect(encoded.length).toBeLessThan(QUERY_BYTES);
      expect(encodeWithin({ kind: 'answer', qid: QID, name, id: ID, port: 65535, auth: true, interval: 3, fingerprint: FP, addrs: ['10.0.0.1'] }, QUERY_BYTES)).toBeDefined();
    }
  });
});

describe('decodeDatagram never throws (property)', () => {
  const KINDS = new Set(['announce', 'answer', 'query']);
  const check = (buffer: Buffer) => {
    const decoded = decodeDatagram(buffer);
    if (decoded !== undefined) {
      expect(KINDS.has(decoded.kind)).toBe(true);
      // Whatever is accepted survives a round trip unchanged.
      expect(decodeDatagram(encodeDatagram(decoded))).toEqual(decoded);
    }
  };

  it('on arbitrary byte arrays', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1500 }), (array) => {
        check(Buffer.from(array));
      }),
      { numRuns: 2000 },
    );
  });

  it('on arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        check(Buffer.from(JSON.stringify(value) ?? 'null'));
      }),
      { numRuns: 1000 },
    );
  });

  it('on arbitrary JSON objects that mix real field names and values with random ones', () => {
    const key = fc.oneof(
      fc.constantFrom('m', 'v', 'kind', 'qid', 'name', 'id', 'port', 'auth', 'interval', 'fp', 'addrs', 'pad', '__proto__', 'constructor', 'toString'),
      fc.string(),
    );
    const value = fc.oneof(
      fc.constantFrom<unknown>(DISCOVERY_MARKER, DISCOVERY_VERSION, 'announce', 'answer', 'query', QID, ID, FP, FP.toLowerCase(), 9527, 3, true, false, 'laptop', ['10.0.0.1'], []),
      fc.jsonValue(),
    );
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 12 }), fc.boolean(), (fields, onBase) => {
        const object = onBase ? { ...wireAnnounce(), ...fields } : fields;
        // Build the text by hand so a "__proto__" key reaches the decoder as text.
        const text = `{${Object.entries(object)
          .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`)
          .join(',')}}`;
        check(Buffer.from(text));
      }),
      { numRuns: 2000 },
    );
  });

  it('on valid datagrams with arbitrary names: accepted only when the name is acceptable', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (name) => {
        const decoded = decodeDatagram(encodeDatagram({ ...announce, name } as Datagram));
        const acceptable = name.length > 0 && Buffer.byteLength(name) <= MAX_NAME_BYTES && !CONTROL_OR_BIDI.test(name);
        expect(decoded === undefined ? false : (decoded as { name: string }).name === name).toBe(acceptable);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('cleanReceiverName', () => {
  it('strips control characters and bidirectional overrides', () => {
    expect(cleanReceiverName('my\u0000la\u001fp\u007ftop\u0085')).toBe('mylaptop');
    expect(cleanReceiverName('evil\u202etxt.exe')).toBe('eviltxt.exe');
    expect(cleanReceiverName('\u2066a\u2069\u202ab\n')).toBe('ab');
    expect(cleanReceiverName('\u001b[31mred')).toBe('[31mred');
    expect(cleanReceiverName('left\u200eright\u200f\u061cmark')).toBe('leftrightmark');
    expect(cleanReceiverName('kitchen\u200b-pc\u3164\u2028')).toBe('kitchen-pc');
  });

  it('trims surrounding whitespace and falls back to "ft" when nothing is left', () => {
    expect(cleanReceiverName('  desk  ')).toBe('desk');
    expect(cleanReceiverName('')).toBe('ft');
    expect(cleanReceiverName('\u0000\u202e \t')).toBe('ft');
  });

  it('keeps a name that is already fine', () => {
    expect(cleanReceiverName('Küche 台所')).toBe('Küche 台所');
    expect(cleanReceiverName('x'.repeat(MAX_NAME_BYTES))).toBe('x'.repeat(MAX_NAME_BYTES));
  });

  it('truncates to 64 bytes, not 64 characters', () => {
    expect(cleanReceiverName('x'.repeat(100))).toBe('x'.repeat(64));
    expect(cleanReceiverName('€'.repeat(30))).toBe('€'.repeat(21)); // 63 bytes; a 22nd would make 66
    expect(Buffer.byteLength(cleanReceiverName('ä'.repeat(40)))).toBe(64);
  });

  it('never cuts a 4-byte character in half (no lone surrogate left behind)', () => {
    // 1 + 16×4 = 65 bytes: one emoji must go, whole.
    const clean = cleanReceiverName('a' + '😀'.repeat(16));
    expect(clean).toBe('a' + '😀'.repeat(15));
    expect(clean.isWellFormed()).toBe(true);
  });

  it('leaves no trailing whitespace after truncating', () => {
    // Cutting the 66-byte name at 64 bytes leaves "x…x " unless it is trimmed again.
    expect(cleanReceiverName('x'.repeat(63) + ' yz')).toBe('x'.repeat(63));
  });

  it('always yields a name the decoder accepts unchanged (property)', () => {
    // Any code point, plus the characters the cleaning is about, plus 4-byte ones to cut.
    const nameUnit = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.constantFrom('😀', '€', ' ', '\u202e', '\u0000', '\n'),
    );
    fc.assert(
      fc.property(fc.string({ unit: nameUnit, maxLength: 80, size: 'max' }), (raw) => {
        const clean = cleanReceiverName(raw);
        expect(Buffer.byteLength(clean)).toBeLessThanOrEqual(MAX_NAME_BYTES);
        expect(clean.length).toBeGreaterThan(0);
        expect(CONTROL_OR_BIDI.test(clean)).toBe(false);
        expect(clean.isWellFormed()).toBe(true);
        expect(clean).toBe(clean.trim());
        expect(cleanReceiverName(clean)).toBe(clean);
        const decoded = decodeDatagram(encodeDatagram({ ...announce, name: clean } as Datagram));
        expect(decoded).toMatchObject({ name: clean });
      }),
      { numRuns: 1000 },
    );
  });
});
