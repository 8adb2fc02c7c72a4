/**
 * A live receiver against a hostile peer that speaks the protocol by hand (RawClient): broken
 * frames, lying or malformed messages, frames out of order, bodies that are too short, too long
 * or wrong, unsafe names, names made to corrupt a terminal, and a file system changed under the
 * receiver's feet. Every case must end in a clear code (refuse / failed / error frame, or a
 * connection-error event when the peer is gone) and the receiver must go on serving: after
 * each case an honest `send()` on another connection still works and the inbox holds exactly
 * what is expected (partial folder included). Everything stays on 127.0.0.1.
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FtError, send, serve } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import type { OwnerKey } from '../../src/auth/owner-key.js';
import { makeNonce } from '../../src/auth/token-proof.js';
import { encodeFrame, type JsonObject } from '../../src/wire/frame.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import { digest, listFiles, partialBytes, randomFile, waitUntil, partialFolder } from '../helpers/files.js';
import { expectServesOn, lengthPrefix, partialData, partialMeta, printedFingerprint, rawFrame } from '../helpers/hostile.js';
import { partialOf, sharedOwnerKey } from '../helpers/owners.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { helloFrom, RAW_OWNER, RawClient } from '../helpers/raw-client.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { killAllFt, startFtServe } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;
const CONTENT = Buffer.from('0123456789');
let HASH: string;

beforeAll(async () => {
  HASH = await hashBytes(CONTENT);
});
afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

/** Distinct small content (and its hash) per label, so partial keys never clash between files. */
async function content(label: string): Promise<{ bytes: Buffer; hash: string }> {
  const bytes = Buffer.from(`content of ${label}\n`);
  return { bytes, hash: await hashBytes(bytes) };
}

function header(id: number, filename: string, size = CONTENT.length, hash = HASH): JsonObject {
  return { type: 'file', id, filename, size, hash };
}

/** A body frame and its raw bytes, from `offset`. */
function body(id: number, bytes: Buffer, offset = 0): Buffer {
  return Buffer.concat([encodeFrame({ type: 'body', id, offset, length: bytes.length - offset }), bytes.subarray(offset)]);
}

/** A receiver whose inbox sits alone in a fresh folder, so anything written beside it shows. */
async function isolatedReceiver(options: Parameters<typeof startReceiver>[0] = {}): Promise<{ r: TestReceiver; root: string }> {
  const root = await tempDir('ft-hostile-');
  const r = await startReceiver({ ...options, dir: path.join(root, 'inbox') });
  return { r, root };
}

/**
 * Connects over TLS, greets (or only reads the receiver's hello when `greet` is false), lets
 * `act` misbehave (given the receiver's hello), and returns every frame that follows until the
 * receiver closes (bounded). After a greeting, the `welcome` has been read already.
 */
async function exchange(r: TestReceiver, act: (c: RawClient, greeting: JsonObject) => Promise<void> | void, { greet = true } = {}): Promise<JsonObject[]> {
  const c = await RawClient.connect(r.port);
  try {
    let greeting: JsonObject;
    if (greet) greeting = await c.handshake();
    else expect((greeting = await c.next())).toMatchObject({ type: 'hello' });
    await act(c, greeting);
    return await c.rest(5000);
  } finally {
    c.destroy();
  }
}

/** The frames end with exactly one `error` of `code` after `before`, and the receiver logged that code. */
async function expectFatal(r: TestReceiver, frames: JsonObject[], code: string, before: unknown[] = []): Promise<void> {
  expect(frames).toEqual([...before, { type: 'error', code, message: expect.any(String) }]);
  const logged = await r.waitFor('connection-error');
  expect(logged.code).toBe(code);
  expect(r.eventsOf('connection-error')).toHaveLength(1);
}

/** Waits until the receiver's partial folder holds at least `bytes` of data. */
function partialReaches(r: TestReceiver, bytes: number): Promise<number> {
  return waitUntil(
    async () => {
      const held = await partialBytes(r.dir);
      return held >= bytes ? held : 0;
    },
    `a partial of ${bytes} bytes`,
    { timeoutMs: 15_000 },
  );
}

/** Leaves a partial of the first `held` bytes of `bytes` on the receiver: a body cut short, then a close. */
async function leavePartial(r: TestReceiver, name: string, bytes: Buffer, held: number, owner: OwnerKey): Promise<string> {
  const hash = await hashBytes(bytes);
  const c = await RawClient.connect(r.port);
  try {
    await c.handshake({}, owner);
    c.send(header(1, name, bytes.length, hash));
    expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
    c.writeRaw(encodeFrame({ type: 'body', id: 1, offset: 0, length: bytes.length }));
    c.writeRaw(bytes.subarray(0, held));
    c.socket.end();
    await c.closed;
  } finally {
    c.destroy();
  }
  expect((await r.waitFor('connection-error')).code).toBe('CONNECTION_LOST');
  expect(await partialBytes(r.dir)).toBe(held);
  return hash;
}

describe('broken frames', () => {
  const deep = (levels: number) => `{"type":"bye","x":${'{"a":'.repeat(levels - 1)}1${'}'.repeat(levels - 1)}}`;
  const cases: Array<[string, Buffer, string]> = [
    ['a zero length', lengthPrefix(0), 'BAD_FRAME'],
    ['a length of 0xFFFFFFFF', lengthPrefix(0xffffffff), 'FRAME_TOO_LARGE'],
    ['a length of 65537 (one over the limit)', lengthPrefix(65_537), 'FRAME_TOO_LARGE'],
    ['invalid UTF-8 (0xFF 0xFE)', rawFrame(Buffer.concat([Buffer.from('{"type":"bye","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])), 'BAD_FRAME'],
    ['an overlong UTF-8 "/" (0xC0 0xAF)', rawFrame(Buffer.concat([Buffer.from('{"type":"bye","x":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])), 'BAD_FRAME'],
    ['a surrogate encoded in UTF-8 (0xED 0xA0 0x80)', rawFrame(Buffer.concat([Buffer.from('{"type":"bye","x":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')])), 'BAD_FRAME'],
    ['JSON cut short', rawFrame('{"type":"bye"'), 'BAD_FRAME'],
    ['a JSON array', rawFrame('[{"type":"bye"}]'), 'BAD_FRAME'],
    ['a JSON string', rawFrame('"bye"'), 'BAD_FRAME'],
    ['JSON null', rawFrame('null'), 'BAD_FRAME'],
    ['a JSON number', rawFrame('42'), 'BAD_FRAME'],
    ['objects nested 9 levels deep', rawFrame(deep(9)), 'BAD_FRAME'],
    ['arrays nested 30 000 levels deep', rawFrame(`{"type":"bye","x":${'['.repeat(30_000)}${']'.repeat(30_000)}}`), 'BAD_FRAME'],
  ];

  it.each(cases.flatMap(([what, bytes, code]) => [
    [what, 'before the greeting', bytes, code] as const,
    [what, 'after the greeting', bytes, code] as const,
  ]))('%s %s → error %s, close, and the receiver serves on', async (_what, phase, bytes, code) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => c.writeRaw(bytes), { greet: phase === 'after the greeting' });
    await expectFatal(r, frames, code);
    await expectServesOn(r);
  });

  it('accepts objects nested exactly 8 levels deep (the limit itself is allowed)', async () => {
    const { r } = await isolatedReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      c.writeRaw(rawFrame(`{"type":"file","id":1,"filename":"deep.txt","size":${CONTENT.length},"hash":"${HASH}","x":${'{"a":'.repeat(7)}1${'}'.repeat(7)}}`));
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(body(1, CONTENT));
      expect(await c.next()).toMatchObject({ type: 'done', id: 1 });
      c.send({ type: 'bye' });
      await c.closed;
    } finally {
      c.destroy();
    }
    expect(await readFile(path.join(r.dir, 'deep.txt'))).toEqual(CONTENT);
    await expectServesOn(r, ['deep.txt']);
  });

  it.each([
    ['a length prefix cut off', () => Buffer.from([0, 0])],
    ['a frame cut off inside its JSON', () => Buffer.concat([lengthPrefix(40), Buffer.from('{"type":"fi')])],
  ])('%s, then close → logged as CONNECTION_LOST, and the receiver serves on', async (_what, bytes) => {
    const { r } = await isolatedReceiver();
    const c = await RawClient.connect(r.port);
    let frames: JsonObject[];
    try {
      await c.handshake();
      c.writeRaw(bytes());
      c.socket.end();
      frames = await c.rest(5000);
    } finally {
      c.destroy();
    }
    expect(frames).toEqual([]); // the peer is gone: no error frame to deliver
    expect((await r.waitFor('connection-error')).code).toBe('CONNECTION_LOST');
    await expectServesOn(r);
  });
});

describe('malformed and lying messages', () => {
  it('treats "__proto__" and "constructor" keys as plain data: no prototype pollution, headers still handled', async () => {
    const { r } = await isolatedReceiver();
    const protoNames = Object.getOwnPropertyNames(Object.prototype).sort();
    const protoDescriptors = Object.getOwnPropertyDescriptors(Object.prototype);
    const c = await RawClient.connect(r.port);
    const frames: JsonObject[] = [];
    try {
      const { nonce } = await c.next();
      // Hand-written JSON: an object literal with __proto__ would set a prototype, not send the key.
      const proven = helloFrom(RAW_OWNER, { receiverNonce: nonce as string, senderNonce: makeNonce(), binding: c.security.binding() });
      const owner = `"nonce":"${proven.nonce}","owner":"${proven.owner}","ownerProof":"${proven.ownerProof}"`;
      c.writeRaw(
        rawFrame(`{"type":"hello","protocol":"ft","version":${PROTOCOL_VERSION},${owner},"__proto__":{"polluted":"hello","proof":"zz"},"constructor":{"prototype":{"polluted":"hello"}}}`),
      );
      frames.push(await c.next());
      c.writeRaw(
        rawFrame(
          `{"type":"file","id":1,"filename":"proto.txt","size":${CONTENT.length},"hash":"${HASH}",` +
            '"__proto__":{"polluted":"file","filename":"../evil.txt","isAdmin":true},"constructor":{"prototype":{"polluted":"file"}},' +
            '"prototype":{"polluted":"file"},"hasOwnProperty":"not a function","toString":1}',
        ),
      );
      frames.push(await c.next());
      c.writeRaw(body(1, CONTENT));
      frames.push(await c.next());
      // A header whose fields exist only under __proto__ has none of its own.
      c.writeRaw(rawFrame(`{"type":"file","__proto__":{"id":2,"filename":"inherited.txt","size":${CONTENT.length},"hash":"${HASH}"}}`));
      frames.push(...(await c.rest(5000)));
    } finally {
      c.destroy();
    }
    expect(frames).toEqual([
      { type: 'welcome' },
      { type: 'accept', id: 1, offset: 0 },
      { type: 'done', id: 1, hash: HASH, receipt: expect.any(String) },
      { type: 'error', code: 'BAD_MESSAGE', message: expect.any(String) },
    ]);
    expect((await r.waitFor('connection-error')).code).toBe('BAD_MESSAGE');
    // The receiver runs in this process: its prototypes are ours.
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoNames);
    expect(Object.getOwnPropertyDescriptors(Object.prototype)).toEqual(protoDescriptors);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(await readFile(path.join(r.dir, 'proto.txt'))).toEqual(CONTENT);
    expect(existsSync(path.join(r.dir, '..', 'evil.txt'))).toBe(false);
    await expectServesOn(r, ['proto.txt']);
  });

  it('ignores unknown fields in hello, file and body frames', async () => {
    const { r } = await isolatedReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake({ client: 'hostile', future: { nested: [1, { deeper: true }] }, compression: 'zstd' });
      c.send({ ...header(1, 'unknown-fields.txt'), mode: '4777', owner: 'root', path: '/etc/passwd', target: '../../x', encoding: 'base64' });
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: CONTENT.length, compressed: true, seek: 99 }), CONTENT]));
      expect(await c.next()).toEqual({ type: 'done', id: 1, hash: HASH, receipt: expect.any(String) });
      c.send({ type: 'bye', reason: 'done', linger: 1000 });
      expect(await c.rest(5000)).toEqual([]);
    } finally {
      c.destroy();
    }
    expect(r.eventsOf('connection-error')).toEqual([]);
    const stored = await stat(path.join(r.dir, 'unknown-fields.txt'));
    expect(stored.mode & 0o7777).not.toBe(0o4777);
    expect(await readFile(path.join(r.dir, 'unknown-fields.txt'))).toEqual(CONTENT);
    await expectServesOn(r, ['unknown-fields.txt']);
  });

  const TWO_53 = 2 ** 53;
  const badMessagesAfterGreeting: Array<[string, string]> = [
    ['file id as a string', `{"type":"file","id":"1","filename":"a.txt","size":10,"hash":"${'H'}"}`],
    ['file id 0', `{"type":"file","id":0,"filename":"a.txt","size":10,"hash":"H"}`],
    ['file id negative', `{"type":"file","id":-3,"filename":"a.txt","size":10,"hash":"H"}`],
    ['file id fractional', `{"type":"file","id":1.5,"filename":"a.txt","size":10,"hash":"H"}`],
    ['file id 2^53', `{"type":"file","id":${TWO_53},"filename":"a.txt","size":10,"hash":"H"}`],
    ['file id missing', `{"type":"file","filename":"a.txt","size":10,"hash":"H"}`],
    ['filename a number', `{"type":"file","id":1,"filename":42,"size":10,"hash":"H"}`],
    ['filename null', `{"type":"file","id":1,"filename":null,"size":10,"hash":"H"}`],
    ['filename an array', `{"type":"file","id":1,"filename":["a.txt"],"size":10,"hash":"H"}`],
    ['filename an object', `{"type":"file","id":1,"filename":{"0":"a.txt"},"size":10,"hash":"H"}`],
    ['filename missing', `{"type":"file","id":1,"size":10,"hash":"H"}`],
    ['size as a string', `{"type":"file","id":1,"filename":"a.txt","size":"10","hash":"H"}`],
    ['size a boolean', `{"type":"file","id":1,"filename":"a.txt","size":true,"hash":"H"}`],
    ['size null', `{"type":"file","id":1,"filename":"a.txt","size":null,"hash":"H"}`],
    ['size missing', `{"type":"file","id":1,"filename":"a.txt","hash":"H"}`],
    ['hash a number', `{"type":"file","id":1,"filename":"a.txt","size":10,"hash":12}`],
    ['hash empty', `{"type":"file","id":1,"filename":"a.txt","size":10,"hash":""}`],
    ['type a number', `{"type":7,"id":1}`],
    ['type missing', `{"id":1,"filename":"a.txt","size":10,"hash":"H"}`],
    ['an unknown type', `{"type":"upload","id":1}`],
    ['an "error" frame from the sender', `{"type":"error","code":"INTERNAL","message":"x"}`],
    ['a receiver-only type ("accept")', `{"type":"accept","id":1,"offset":0}`],
    ['a receiver-only type ("welcome")', `{"type":"welcome","proof":"${'0'.repeat(64)}"}`],
    ['body length as a string', `{"type":"body","id":1,"offset":0,"length":"3"}`],
    ['body length negative', `{"type":"body","id":1,"offset":0,"length":-1}`],
    ['body length fractional', `{"type":"body","id":1,"offset":0,"length":0.5}`],
    ['body offset as a string', `{"type":"body","id":1,"offset":"0","length":0}`],
    ['body offset negative', `{"type":"body","id":1,"offset":-1,"length":0}`],
    ['cancel id as a string', `{"type":"cancel","id":"x"}`],
  ];

  it.each(badMessagesAfterGreeting)('%s → error BAD_MESSAGE, close, and the receiver serves on', async (_what, json) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => c.writeRaw(rawFrame(json.replaceAll('"H"', `"${HASH}"`))));
    await expectFatal(r, frames, 'BAD_MESSAGE');
    await expectServesOn(r);
  });

  /** This connection's challenge, for greetings that prove something over it (or over another). */
  type Challenge = { receiverNonce: string; binding: Buffer };
  const V = PROTOCOL_VERSION;
  const NONCE = '5e'.repeat(16);
  const greetingOf = (fields: JsonObject) => ({ type: 'hello', protocol: 'ft', version: V, nonce: NONCE, ...fields });
  const badGreetings: Array<[string, JsonObject | ((challenge: Challenge) => JsonObject), string]> = [
    ['version as a string', { type: 'hello', protocol: 'ft', version: '1' }, 'BAD_MESSAGE'],
    ['version fractional', { type: 'hello', protocol: 'ft', version: 2.5 }, 'BAD_MESSAGE'],
    ['version missing', { type: 'hello', protocol: 'ft' }, 'BAD_MESSAGE'],
    ['protocol "FT"', { type: 'hello', protocol: 'FT', version: V }, 'BAD_MESSAGE'],
    ['protocol missing', { type: 'hello', version: V }, 'BAD_MESSAGE'],
    ['a proof that is not hex', { type: 'hello', protocol: 'ft', version: V, proof: 'x'.repeat(64) }, 'BAD_MESSAGE'],
    ['a proof in uppercase hex', { type: 'hello', protocol: 'ft', version: V, proof: 'A'.repeat(64) }, 'BAD_MESSAGE'],
    ['client a number', { type: 'hello', protocol: 'ft', version: V, client: 5 }, 'BAD_MESSAGE'],
    ['client over 4096 bytes', { type: 'hello', protocol: 'ft', version: V, client: 'c'.repeat(4097) }, 'BAD_MESSAGE'],
    ['version 1', { type: 'hello', protocol: 'ft', version: 1 }, 'UNSUPPORTED_VERSION'],
    ['version 3 (before features)', { type: 'hello', protocol: 'ft', version: 3 }, 'UNSUPPORTED_VERSION'],
    // Version 4's proofs were not bound to the channel: a relay could pass them on.
    ['version 4 (proofs not bound to the channel)', (c) => ({ ...helloFrom(RAW_OWNER, { ...c, senderNonce: NONCE }), version: 4 }), 'UNSUPPORTED_VERSION'],
    ['version 6', { type: 'hello', protocol: 'ft', version: V + 1 }, 'UNSUPPORTED_VERSION'],
    ['version 5 without a nonce', (c) => ({ ...helloFrom(RAW_OWNER, { ...c, senderNonce: NONCE }), nonce: undefined }), 'BAD_MESSAGE'],
    ['a nonce of 31 hex digits', (c) => ({ ...helloFrom(RAW_OWNER, { ...c, senderNonce: NONCE }), nonce: NONCE.slice(1) }), 'BAD_MESSAGE'],
    ['a nonce of 33 hex digits', (c) => ({ ...helloFrom(RAW_OWNER, { ...c, senderNonce: NONCE }), nonce: `${NONCE}0` }), 'BAD_MESSAGE'],
    ['a nonce in uppercase hex', (c) => ({ ...helloFrom(RAW_OWNER, { ...c, senderNonce: NONCE }), nonce: NONCE.toUpperCase() }), 'BAD_MESSAGE'],
    ['a nonce that is a number', (c) => ({ ...helloFrom(RAW_OWNER, { ...c, senderNonce: NONCE }), nonce: 5 }), 'BAD_MESSAGE'],
    ['version 5 without an owner key', greetingOf({}), 'BAD_MESSAGE'],
    ['an owner key without its proof', greetingOf({ owner: RAW_OWNER.publicHex }), 'BAD_MESSAGE'],
    ['an owner proof over another nonce', (c) => greetingOf({ owner: RAW_OWNER.publicHex, ownerProof: RAW_OWNER.prove('00'.repeat(16), c.binding) }), 'AUTH_FAILED'],
    // What a man in the middle could relay: a proof made on its plaintext or its own TLS leg.
    ['an owner proof over no channel binding (plaintext)', (c) => greetingOf({ owner: RAW_OWNER.publicHex, ownerProof: RAW_OWNER.prove(c.receiverNonce, Buffer.alloc(0)) }), 'AUTH_FAILED'],
    ['an owner proof over another channel binding', (c) => greetingOf({ owner: RAW_OWNER.publicHex, ownerProof: RAW_OWNER.prove(c.receiverNonce, Buffer.alloc(32)) }), 'AUTH_FAILED'],
    ['an owner proof by another key', (c) => greetingOf({ owner: 'ab'.repeat(32), ownerProof: RAW_OWNER.prove(c.receiverNonce, c.binding) }), 'AUTH_FAILED'],
    ['an owner key in uppercase hex', greetingOf({ owner: 'AB'.repeat(32), ownerProof: 'ab'.repeat(64) }), 'BAD_MESSAGE'],
    ['version 0', { type: 'hello', protocol: 'ft', version: 0 }, 'UNSUPPORTED_VERSION'],
  ];

  it.each(badGreetings)('a greeting with %s → error %s, close, and the receiver serves on', async (_what, hello, code) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(
      r,
      (c, greeting) => c.send(typeof hello === 'function' ? hello({ receiverNonce: greeting.nonce as string, binding: c.security.binding() }) : hello),
      { greet: false },
    );
    // No welcome: a greeting that fails is answered with its error alone.
    await expectFatal(r, frames, code);
    await expectServesOn(r);
  });

  it('(control) the greetings above fail for what they name: the same hello, proven over this channel, is welcomed', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(
      r,
      (c, greeting) => {
        c.send(helloFrom(RAW_OWNER, { receiverNonce: greeting.nonce as string, binding: c.security.binding(), senderNonce: NONCE }));
        c.send({ type: 'bye' });
      },
      { greet: false },
    );
    expect(frames).toEqual([{ type: 'welcome' }]);
    expect(r.eventsOf('connection-error')).toEqual([]);
    await expectServesOn(r);
  });

  it.each([
    ['uppercase hex', 'xxh64:ABCDEF0123456789'],
    ['15 hex digits', 'xxh64:0123456789abcde'],
    ['17 hex digits', 'xxh64:0123456789abcdef0'],
    ['another algorithm', 'sha256:0123456789abcdef'],
    ['no algorithm prefix', '0123456789abcdef'],
    ['non-hex digits', 'xxh64:0123456789abcdeg'],
    ['an empty string', ''],
    ['a trailing newline', 'xxh64:0123456789abcdef\n'],
  ])('a hash with %s → error BAD_MESSAGE', async (_what, hash) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => c.send(header(1, 'hash.txt', CONTENT.length, hash)));
    await expectFatal(r, frames, 'BAD_MESSAGE');
    await expectServesOn(r);
  });
});

describe('sizes', () => {
  it.each([
    ['negative', '-1'],
    ['fractional', '1.5'],
    ['2^53 (one past the largest safe integer)', String(2 ** 53)],
    ['1e400 (Infinity once parsed)', '1e400'],
  ])('a %s size → error BAD_MESSAGE', async (_what, size) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => c.writeRaw(rawFrame(`{"type":"file","id":1,"filename":"size.bin","size":${size},"hash":"${HASH}"}`)));
    await expectFatal(r, frames, 'BAD_MESSAGE');
    await expectServesOn(r);
  });

  it.each([
    ['2^50', 2 ** 50],
    ['2^53 - 1 (the largest allowed)', Number.MAX_SAFE_INTEGER],
  ])('a size of %s, far above the free space → refuse NO_SPACE, the session goes on, and nothing is left behind', async (_what, size) => {
    const { r } = await isolatedReceiver();
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      c.send(header(1, 'huge.bin', size));
      expect(await c.next()).toEqual({ type: 'refuse', id: 1, code: 'NO_SPACE', message: expect.any(String) });
      // Not fatal: the same connection still gets a small file through.
      c.send(header(2, 'small.txt'));
      expect(await c.next()).toEqual({ type: 'accept', id: 2, offset: 0 });
      c.writeRaw(body(2, CONTENT));
      expect(await c.next()).toMatchObject({ type: 'done', id: 2 });
      c.send({ type: 'bye' });
      expect(await c.rest(5000)).toEqual([]);
    } finally {
      c.destroy();
    }
    expect(r.eventsOf('refused')).toEqual([expect.objectContaining({ name: 'huge.bin', code: 'NO_SPACE' })]);
    // A refused file has nothing to resume: no data and no metadata may stay in the partial folder.
    expect(await partialFolder(r.dir)).toEqual([]);
    await expectServesOn(r, ['small.txt']);
  });

  it('a size of 2^50 with a maxFileSize → refuse TOO_LARGE (the limit is checked before the disk)', async () => {
    const { r } = await isolatedReceiver({ maxFileSize: MiB });
    const frames = await exchange(r, (c) => {
      c.send(header(1, 'huge.bin', 2 ** 50));
      c.send(header(2, 'limit.bin', MiB + 1));
      c.send({ type: 'bye' });
    });
    expect(frames).toEqual([
      { type: 'refuse', id: 1, code: 'TOO_LARGE', message: expect.any(String) },
      { type: 'refuse', id: 2, code: 'TOO_LARGE', message: expect.any(String) },
    ]);
    expect(r.eventsOf('connection-error')).toEqual([]);
    await expectServesOn(r);
  });
});

describe('frames in the wrong order', () => {
  it.each([
    // Functions: HASH is only known once beforeAll has run.
    ['"file" before "hello"', () => [header(1, 'early.txt')]],
    ['"body" before "hello"', () => [{ type: 'body', id: 1, offset: 0, length: 0 }]],
    ['"bye" before "hello"', () => [{ type: 'bye' }]],
    ['"cancel" before "hello"', () => [{ type: 'cancel', id: 1 }]],
  ])('%s → error UNEXPECTED_MESSAGE', async (_what, messages) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => messages().forEach((m) => c.send(m)), { greet: false });
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE');
    expect(r.eventsOf('started')).toEqual([]);
    await expectServesOn(r);
  });

  it('"body" before any header → error UNEXPECTED_MESSAGE, nothing written', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => c.writeRaw(body(1, CONTENT)));
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE');
    await expectServesOn(r);
  });

  it('"body" for an id that was never accepted → error UNEXPECTED_MESSAGE (nothing is written for the accepted one)', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, async (c) => {
      c.send(header(1, 'one.txt'));
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(body(2, CONTENT));
    });
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE');
    await expectServesOn(r);
  });

  it('"body" for a refused id → error UNEXPECTED_MESSAGE', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => {
      c.send(header(1, '../refused.txt'));
      c.writeRaw(body(1, CONTENT));
    });
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE', [expect.objectContaining({ type: 'refuse', id: 1, code: 'BAD_NAME' })]);
    await expectServesOn(r);
  });

  it('a second "body" for a file already done → error UNEXPECTED_MESSAGE, the file stays as it was', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => {
      c.send(header(1, 'twice.txt'));
      c.writeRaw(body(1, CONTENT));
      c.writeRaw(body(1, Buffer.from('9876543210')));
    });
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE', [
      { type: 'accept', id: 1, offset: 0 },
      { type: 'done', id: 1, hash: HASH, receipt: expect.any(String) },
    ]);
    expect(await readFile(path.join(r.dir, 'twice.txt'))).toEqual(CONTENT);
    await expectServesOn(r, ['twice.txt']);
  });

  it('"cancel" for an id never accepted → error UNEXPECTED_MESSAGE', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => c.send({ type: 'cancel', id: 9 }));
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE');
    await expectServesOn(r);
  });

  it('a second "hello" → error UNEXPECTED_MESSAGE', async () => {
    const { r } = await isolatedReceiver();
    // The first hello again, valid in every field.
    const frames = await exchange(r, (c) => c.send(helloFrom(RAW_OWNER, c.transcript!)));
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE');
    await expectServesOn(r);
  });

  it('a reused file id → error UNEXPECTED_MESSAGE', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => {
      c.send(header(1, 'con'));
      c.send(header(1, 'again.txt'));
    });
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE', [expect.objectContaining({ type: 'refuse', id: 1, code: 'BAD_NAME' })]);
    await expectServesOn(r);
  });

  it('"bye" while an accepted file waits for its body → error UNEXPECTED_MESSAGE', async () => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, (c) => {
      c.send(header(1, 'waiting.txt'));
      c.send({ type: 'bye' });
    });
    await expectFatal(r, frames, 'UNEXPECTED_MESSAGE', [{ type: 'accept', id: 1, offset: 0 }]);
    await expectServesOn(r);
  });

  it('a 65th accepted header waiting for its body → error UNEXPECTED_MESSAGE', async () => {
    const { r } = await isolatedReceiver();
    const files = await Promise.all(Array.from({ length: 65 }, (_, i) => content(`pending ${i}`)));
    const frames = await exchange(r, (c) => files.forEach((f, i) => c.send(header(i + 1, `p${i}.txt`, f.bytes.length, f.hash))));
    await expectFatal(
      r,
      frames,
      'UNEXPECTED_MESSAGE',
      files.slice(0, 64).map((_, i) => ({ type: 'accept', id: i + 1, offset: 0 })),
    );
    // A header alone writes nothing to disk: no metadata, no data, no final names.
    await expectServesOn(r);
  });
});

describe('body offsets and lengths', () => {
  it.each([
    ['an offset that was not offered (3, where 0 was)', { offset: 3, length: CONTENT.length - 3 }],
    ['an offset at the end (10, where 0 was)', { offset: CONTENT.length, length: 0 }],
    ['a length one short of size - offset', { offset: 0, length: CONTENT.length - 1 }],
    ['a length one over size - offset', { offset: 0, length: CONTENT.length + 1 }],
    ['a length of 0 for a 10-byte file', { offset: 0, length: 0 }],
  ])('a body with %s → error BAD_MESSAGE, nothing placed', async (_what, { offset, length }) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, async (c) => {
      c.send(header(1, 'offset.txt'));
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset, length }), CONTENT.subarray(0, length)]));
    });
    await expectFatal(r, frames, 'BAD_MESSAGE');
    expect(existsSync(path.join(r.dir, 'offset.txt'))).toBe(false);
    await expectServesOn(r);
  });

  // Only files over 1 MiB are kept for resume.
  const resumeSize = 2 * MiB + 4000;
  it.each([
    ['past the partial (held + 1)', (held: number) => held + 1],
    ['inside the partial (held - 1)', (held: number) => held - 1],
    ['at the end of the file', (_held: number) => resumeSize],
  ])('a resume from an offset that was not offered, %s → error BAD_MESSAGE; the partial is untouched and resumes later', async (_what, pick) => {
    const { r } = await isolatedReceiver();
    const src = await randomFile(path.join(await tempDir(), 'resume-me.bin'), resumeSize);
    const bytes = await readFile(src);
    const held = MiB + 1500;
    // One key for every connection: a partial is resumed only by the sender that started it.
    const owner = await sharedOwnerKey();
    const hash = await leavePartial(r, 'resume-me.bin', bytes, held, owner.key);
    const offset = pick(held);
    const c = await RawClient.connect(r.port);
    let frames: JsonObject[];
    try {
      await c.handshake({}, owner.key);
      c.send(header(1, 'resume-me.bin', bytes.length, hash));
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: held, prefixHash: await hashBytes(bytes.subarray(0, held)) });
      c.writeRaw(body(1, bytes, offset));
      frames = await c.rest(5000);
    } finally {
      c.destroy();
    }
    expect(frames).toEqual([{ type: 'error', code: 'BAD_MESSAGE', message: expect.any(String) }]);
    await waitUntil(() => r.eventsOf('connection-error').length === 2, 'the second connection error');
    expect(r.eventsOf('connection-error')[1]!.code).toBe('BAD_MESSAGE');
    expect(await partialBytes(r.dir)).toBe(held);

    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile: owner.senderKeyFile });
    expect(report.files[0]).toMatchObject({ status: 'resumed', resumedFrom: held, bytesSent: bytes.length - held });
    expect(await digest(path.join(r.dir, 'resume-me.bin'))).toEqual(await digest(src));
    await expectServesOn(r, ['resume-me.bin']);
  });
});

describe('bodies that lie', () => {
  it('a body shorter than declared, then a close → the partial is kept and a real send resumes it', async () => {
    const { r } = await isolatedReceiver();
    const src = await randomFile(path.join(await tempDir(), 'short.bin'), 3 * MiB);
    const bytes = await readFile(src);
    const held = MiB + 12_345;
    const owner = await sharedOwnerKey();
    await leavePartial(r, 'short.bin', bytes, held, owner.key);
    expect(await listFiles(r.dir)).toEqual([partialMeta(owner.key, 'short.bin', bytes.length), partialData(owner.key, 'short.bin', bytes.length)].sort());
    expect(existsSync(path.join(r.dir, 'short.bin'))).toBe(false);

    const report = await send([src], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile: owner.senderKeyFile });
    expect(report.files[0]).toMatchObject({ status: 'resumed', resumedFrom: held, bytesSent: bytes.length - held });
    expect(await digest(path.join(r.dir, 'short.bin'))).toEqual(await digest(src));
    await expectServesOn(r, ['short.bin']);
  });

  it.each([
    ['"XXXX" (a length far over the limit)', Buffer.from('XXXXXXXX'), 'FRAME_TOO_LARGE'],
    ['four zero bytes (an empty frame)', Buffer.from([0, 0, 0, 0, 1, 2]), 'BAD_FRAME'],
  ])('a body longer than declared, extra bytes %s → done, then error %s; the file has exactly its size', async (_what, extra, code) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, async (c) => {
      c.send(header(1, 'long.txt'));
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(Buffer.concat([body(1, CONTENT), extra]));
    });
    await expectFatal(r, frames, code, [{ type: 'done', id: 1, hash: HASH, receipt: expect.any(String) }]);
    expect((await stat(path.join(r.dir, 'long.txt'))).size).toBe(CONTENT.length);
    expect(await readFile(path.join(r.dir, 'long.txt'))).toEqual(CONTENT);
    await expectServesOn(r, ['long.txt']);
  });

  it.each([
    ['a valid frame', () => encodeFrame(header(2, 'after-bye.txt')), ['UNEXPECTED_MESSAGE']],
    ['a body frame with bytes', () => body(2, CONTENT), ['UNEXPECTED_MESSAGE']],
    ['garbage', () => Buffer.from([0, 0, 0, 0]), ['BAD_FRAME']],
  ])('%s after "bye" → logged as %j, nothing more is answered or written', async (_what, extra, codes) => {
    const { r } = await isolatedReceiver();
    const frames = await exchange(r, async (c) => {
      c.send(header(1, 'before-bye.txt'));
      c.writeRaw(body(1, CONTENT));
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      expect(await c.next()).toMatchObject({ type: 'done', id: 1 });
      c.writeRaw(Buffer.concat([encodeFrame({ type: 'bye' }), extra()]));
    });
    // The receiver has already shut its side after "bye": no error frame can reach us.
    expect(frames).toEqual([]);
    expect(codes).toContain((await r.waitFor('connection-error')).code);
    expect(existsSync(path.join(r.dir, 'after-bye.txt'))).toBe(false);
    await expectServesOn(r, ['before-bye.txt']);
  });

  it('content that does not match the announced hash → failed HASH_MISMATCH, nothing under the name, no partial', async () => {
    const { r } = await isolatedReceiver();
    const lie = await content('what the header promised');
    const c = await RawClient.connect(r.port);
    try {
      await c.handshake();
      c.send(header(1, 'lie.txt', CONTENT.length, lie.hash));
      expect(await c.next()).toEqual({ type: 'accept', id: 1, offset: 0 });
      c.writeRaw(body(1, CONTENT));
      expect(await c.next()).toEqual({ type: 'failed', id: 1, code: 'HASH_MISMATCH', message: expect.any(String) });
      // A failed file does not end the session.
      c.send(header(2, 'honest.txt'));
      expect(await c.next()).toEqual({ type: 'accept', id: 2, offset: 0 });
      c.writeRaw(body(2, CONTENT));
      expect(await c.next()).toMatchObject({ type: 'done', id: 2 });
      c.send({ type: 'bye' });
      expect(await c.rest(5000)).toEqual([]);
    } finally {
      c.destroy();
    }
    expect(existsSync(path.join(r.dir, 'lie.txt'))).toBe(false);
    expect(r.eventsOf('failed')).toEqual([expect.objectContaining({ name: 'lie.txt', code: 'HASH_MISMATCH' })]);
    expect(await partialFolder(r.dir)).toEqual([]);
    await expectServesOn(r, ['honest.txt']);
  });
});

describe('names over the wire', () => {
  const BAD_NAMES: Array<[string, string]> = [
    ['parent escape', '../x'],
    ['escape through a folder', 'a/../../x'],
    ['absolute path', '/etc/x'],
    ['drive letter', 'C:\\x'],
    ['UNC path', '\\\\server\\share\\x'],
    ['backslash parent escape', '..\\x'],
    ['fullwidth solidus', 'a\uFF0Fb'],
    ['fullwidth reverse solidus', 'a\uFF3Cb'],
    ['division slash', 'a\u2215b'],
    ['NUL', 'a\u0000b'],
    ['empty', ''],
    ['dot', '.'],
    ['dot dot', '..'],
    ['a dot component', 'a/./b'],
    ['an empty component', 'a//b'],
    ['a trailing slash', 'a/'],
    ['a component of 256 bytes', 'x'.repeat(256)],
    ['a component of 256 bytes in UTF-8 (128 × "é")', 'é'.repeat(128)],
    ['the partial folder', '.ft-partial/x'],
    ['the partial folder in another case', '.FT-Partial/x'],
    ['the partial folder itself', '.ft-partial'],
    ['CON', 'CON'],
    ['nul.txt', 'nul.txt'],
    ['COM1', 'COM1'],
    ['lpt¹', 'lpt¹'],
    ['a device name deeper down', 'a/aux.tar.gz'],
    ['a trailing dot', 'name.'],
    ['a trailing space', 'name '],
    ['a lone surrogate', 'a\uD800b'],
    ['an alternate data stream', 'file.txt:secret'],
    ['a right-to-left override', 'invoice\u202Etxt.exe'],
  ];

  it.each(BAD_NAMES)('refuses %s (%j) with BAD_NAME; nothing is created inside or outside the inbox', async (_what, filename) => {
    const { r, root } = await isolatedReceiver();
    const frames = await exchange(r, (c) => {
      c.send(header(1, filename));
      c.send({ type: 'bye' });
    });
    expect(frames).toEqual([{ type: 'refuse', id: 1, code: 'BAD_NAME', message: expect.any(String) }]);
    expect(r.eventsOf('refused')).toEqual([expect.objectContaining({ name: filename, code: 'BAD_NAME' })]);
    expect(r.eventsOf('connection-error')).toEqual([]);
    expect(await readdir(root)).toEqual(['inbox']);
    expect(existsSync('/etc/x')).toBe(false);
    await expectServesOn(r);
  });

  it('a name over 4096 bytes → error BAD_MESSAGE (the field limit), and the receiver serves on', async () => {
    const { r, root } = await isolatedReceiver();
    const filename = `${'d/'.repeat(2048)}x`; // 4097 bytes, every component harmless
    expect(Buffer.byteLength(filename)).toBe(4097);
    const frames = await exchange(r, (c) => c.send(header(1, filename)));
    await expectFatal(r, frames, 'BAD_MESSAGE');
    expect(await readdir(root)).toEqual(['inbox']);
    await expectServesOn(r);
  });

  it('accepts the unusual but safe names, stored exactly as sent', async () => {
    const { r, root } = await isolatedReceiver();
    const names = ['..x', '.hidden', ' lead.txt', 'com10', 'console.txt', 'a/.ft-partial/x', 'x'.repeat(255), 'Ünïcödé/三体 ½.txt'];
    const files = await Promise.all(names.map((n) => content(n)));
    const frames = await exchange(r, (c) => {
      names.forEach((name, i) => {
        c.send(header(i + 1, name, files[i]!.bytes.length, files[i]!.hash));
        c.writeRaw(body(i + 1, files[i]!.bytes));
      });
      c.send({ type: 'bye' });
    });
    // Answers to headers come in order; each `done` comes after its `accept`, possibly later.
    expect(frames.filter((f) => f.type === 'accept')).toEqual(names.map((_, i) => ({ type: 'accept', id: i + 1, offset: 0 })));
    expect(frames.filter((f) => f.type === 'done').sort((a, b) => Number(a.id) - Number(b.id))).toEqual(
      names.map((name, i) => ({ type: 'done', id: i + 1, hash: files[i]!.hash, receipt: expect.any(String) })),
    );
    for (const [i] of names.entries()) {
      const at = (type: string) => frames.findIndex((f) => f.type === type && f.id === i + 1);
      expect(at('accept')).toBeLessThan(at('done'));
    }
    for (const [i, name] of names.entries()) expect(await readFile(path.join(r.dir, name))).toEqual(files[i]!.bytes);
    expect(await readdir(root)).toEqual(['inbox']);
    await expectServesOn(r, names);
  });

  it.each([
    ['letter case', 'Report.txt', 'report.txt'],
    ['Unicode normalisation (NFC, then NFD)', 'Caf\u00e9.txt', 'Cafe\u0301.txt'],
    ['both at once', 'R\u00c9SUM\u00c9.txt', 're\u0301sume\u0301.txt'],
  ])('two names in one session that differ only by %s → the second is refused NAME_COLLISION', async (_what, first, second) => {
    const { r } = await isolatedReceiver();
    const a = await content('first');
    const b = await content('second');
    const frames = await exchange(r, (c) => {
      c.send(header(1, first, a.bytes.length, a.hash));
      c.send(header(2, second, b.bytes.length, b.hash));
      c.writeRaw(body(1, a.bytes));
      c.send({ type: 'bye' });
    });
    expect(frames).toEqual([
      { type: 'accept', id: 1, offset: 0 },
      { type: 'refuse', id: 2, code: 'NAME_COLLISION', message: expect.any(String) },
      { type: 'done', id: 1, hash: a.hash, receipt: expect.any(String) },
    ]);
    expect(await readdir(r.dir)).toEqual(['.ft-partial', first].sort());
    expect(await readFile(path.join(r.dir, first))).toEqual(a.bytes);
    await expectServesOn(r, [first]);
  });
});

describe('names that try to corrupt the receiver\'s terminal or log', () => {
  // A colour escape, a forged log line after CR LF, and a right-to-left override.
  const EVIL = 'evil\u001b[31mred\r\nreceived forged.txt (1 MiB)\u202Etxt.exe';
  const RAW_CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/;

  async function refuseEvilName(port: number): Promise<void> {
    const c = await RawClient.connect(port);
    try {
      await c.handshake();
      c.send(header(1, EVIL));
      expect(await c.next()).toMatchObject({ type: 'refuse', id: 1, code: 'BAD_NAME' });
      c.send({ type: 'bye' });
      expect(await c.rest(5000)).toEqual([]);
    } finally {
      c.destroy();
    }
  }

  it('ft serve prints the refused name escaped, on one line', async () => {
    const dir = path.join(await tempDir('ft-display-'), 'inbox');
    const serve = await startFtServe(dir);
    await refuseEvilName(serve.port);
    const line = await serve.proc.waitForLine(/^refused /);
    const out = serve.proc.stdout;
    expect(out).not.toMatch(RAW_CONTROLS);
    expect(out).not.toContain('\r');
    expect(line).toContain('\\x1b[31m');
    expect(line).toContain('\\x0d\\x0a');
    expect(line).toContain('\\u{202e}');
    expect(line).toContain('BAD_NAME');
    // The LF inside the name did not start a line of its own.
    const startUp = (l: string) => l.startsWith('ft: ') || /^[\s▀▄█]*$/.test(l); // the QR code of the page's address
    expect(serve.proc.lines().filter((l) => !startUp(l))).toEqual([line]);
    expect(serve.proc.lines().slice(0, 2)).toEqual([expect.stringMatching(/^ft: receiving into /), expect.stringMatching(/^ft: fingerprint /)]);
    expect(serve.proc.lines().some((l) => l.startsWith('received'))).toBe(false);

    const src = path.join(await tempDir(), 'after-display.txt');
    await writeFile(src, 'still serving\n');
    const report = await send([src], { host: '127.0.0.1', port: serve.port, fingerprint: printedFingerprint(serve), retries: 0 });
    expect(report.files[0]!.status).toBe('sent');
    await serve.proc.waitForLine(/^received after-display\.txt /);
    expect(await listFiles(dir)).toEqual(['after-display.txt']);
  });

  it('ft serve --json carries the name only as JSON escapes, never raw', async () => {
    const dir = path.join(await tempDir('ft-display-'), 'inbox');
    const serve = await startFtServe(dir, { json: true });
    await refuseEvilName(serve.port);
    await serve.proc.waitForJson((e) => e.event === 'refused');
    const line = serve.proc.lines().find((l) => l.includes('"event":"refused"'))!;
    expect(serve.proc.stdout).not.toMatch(RAW_CONTROLS);
    expect(serve.proc.stdout).not.toContain('\r');
    expect(serve.proc.lines().every((l) => l.startsWith('{') && l.endsWith('}'))).toBe(true);
    expect(line).toContain('\\u001b[31m');
    expect(line).toMatch(/\\r\\n|\\u000d\\u000a/);
    expect(line).toContain('\\u202e');
    const event = JSON.parse(line) as Record<string, unknown>;
    expect(event).toMatchObject({ event: 'refused', name: EVIL, code: 'BAD_NAME' });

    const src = path.join(await tempDir(), 'after-json.txt');
    await writeFile(src, 'still serving\n');
    const report = await send([src], { host: '127.0.0.1', port: serve.port, fingerprint: printedFingerprint(serve), retries: 0 });
    expect(report.files[0]!.status).toBe('sent');
    expect(await listFiles(dir)).toEqual(['after-json.txt']);
  });
});

describe('the file system under the inbox', () => {
  // Under rename (the default) such names are not refused, which would tell the peer they exist (see below).
  it.each(['overwrite', 'reject'] as const)('refuses UNSAFE_PATH for a folder in the inbox that is a symbolic link out of it (policy %s)', async (onConflict) => {
    const { r, root } = await isolatedReceiver({ onConflict });
    const outside = path.join(root, 'outside');
    await mkdir(outside);
    await symlink(outside, path.join(r.dir, 'evil'));
    await mkdir(path.join(outside, 'deeper'));
    await symlink(path.join(outside, 'deeper'), path.join(r.dir, 'evil2'));
    const frames = await exchange(r, (c) => {
      c.send(header(1, 'evil/payload.txt'));
      c.send(header(2, 'evil/sub/payload.txt'));
      c.send(header(3, 'evil2'));
      c.send({ type: 'bye' });
    });
    expect(frames).toEqual([
      { type: 'refuse', id: 1, code: 'UNSAFE_PATH', message: expect.any(String) },
      { type: 'refuse', id: 2, code: 'UNSAFE_PATH', message: expect.any(String) },
      { type: 'refuse', id: 3, code: 'UNSAFE_PATH', message: expect.any(String) },
    ]);
    expect(await listFiles(outside)).toEqual([]);
    expect(await readdir(outside)).toEqual(['deeper']);
    await expectServesOn(r, ['evil', 'evil2']);
  });

  it('under rename, treats symbolic links in the inbox like taken names: the upload lands beside them, nothing outside', async () => {
    const { r, root } = await isolatedReceiver();
    const outside = path.join(root, 'outside');
    await mkdir(outside);
    const target = path.join(root, 'target.txt');
    await writeFile(target, 'outside\n');
    await symlink(outside, path.join(r.dir, 'evil'));
    await symlink(target, path.join(r.dir, 'link.txt'));
    const local = await tempDir();
    await mkdir(path.join(local, 'evil'));
    await writeFile(path.join(local, 'evil', 'payload.txt'), 'payload\n');
    await writeFile(path.join(local, 'link.txt'), 'replacement\n');
    const report = await send([path.join(local, 'evil'), path.join(local, 'link.txt')], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    // An open receiver does not tell the sender where it stored a file; its own events do (in
    // the order placements finish, which run side by side).
    expect(report.files.map((f) => [f.status, f.remotePath])).toEqual([
      ['sent', undefined],
      ['sent', undefined],
    ]);
    expect(r.eventsOf('received').map((e) => e.path).sort()).toEqual(['evil (1)/payload.txt', 'link (1).txt']);
    expect(await readFile(path.join(r.dir, 'evil (1)', 'payload.txt'), 'utf8')).toBe('payload\n');
    expect(await readFile(path.join(r.dir, 'link (1).txt'), 'utf8')).toBe('replacement\n');
    expect(await readdir(outside)).toEqual([]);
    expect(await readFile(target, 'utf8')).toBe('outside\n');
  });

  it.each(['overwrite', 'reject'] as const)(
    'refuses UNSAFE_PATH for a file name that is a symbolic link out of the inbox (policy %s)',
    async (onConflict) => {
      const { r, root } = await isolatedReceiver({ onConflict });
      const target = path.join(root, 'target.txt');
      await writeFile(target, 'outside\n');
      await symlink(target, path.join(r.dir, 'link.txt'));
      const frames = await exchange(r, (c) => {
        c.send(header(1, 'link.txt'));
        c.send({ type: 'bye' });
      });
      expect(frames).toEqual([{ type: 'refuse', id: 1, code: 'UNSAFE_PATH', message: expect.any(String) }]);
      expect(await readFile(target, 'utf8')).toBe('outside\n');
      await expectServesOn(r, ['link.txt']);
    },
  );

  it('will not start on an inbox whose .ft-partial is a symbolic link', async () => {
    const root = await tempDir('ft-hostile-');
    const outside = path.join(root, 'outside');
    await mkdir(outside);
    await mkdir(path.join(root, 'inbox'));
    await symlink(outside, path.join(root, 'inbox', '.ft-partial'));
    const error = await serve({ dir: path.join(root, 'inbox'), port: 0, host: '127.0.0.1', beacon: false }).then(
      async (receiver) => {
        await receiver.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FtError);
    expect((error as FtError).code).toBe('UNSAFE_PATH');
    expect(await readdir(outside)).toEqual([]);
  });

  it('a folder swapped for a symbolic link during a transfer: nothing lands outside, the file lands beside the link', async () => {
    const { r, root } = await isolatedReceiver();
    const outside = path.join(root, 'outside');
    const moved = path.join(root, 'moved-away');
    await mkdir(outside);
    await mkdir(path.join(r.dir, 'd'));
    const local = path.join(await tempDir(), 'd');
    await mkdir(local);
    const size = 6 * MiB;
    const src = await randomFile(path.join(local, 'big.bin'), size);
    // At rest for an hour: sent at once, hashed while it is sent (a file changed within a minute is hashed first).
    const anHourAgo = new Date(Date.now() - 3600_000);
    await utimes(src, anHourAgo, anHourAgo);
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 4 * MiB });
    const sending = send([local], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 0 });
    sending.catch(() => undefined);

    await partialReaches(r, MiB);
    await rename(path.join(r.dir, 'd'), moved);
    await symlink(outside, path.join(r.dir, 'd'));
    proxy.setBytesPerSecond(Infinity);
    const report = await sending;

    expect(report.files).toHaveLength(1);
    // Under rename, d is now a link, which is passed over like a file: the folder's first free
    // variant (which an open receiver tells only in its own events, not to the sender).
    expect(report.files[0]).toMatchObject({ name: 'd/big.bin', status: 'sent' });
    expect(report.files[0]!.remotePath).toBeUndefined();
    expect(await readdir(outside)).toEqual([]);
    expect(await readdir(moved)).toEqual([]);
    expect(await digest(path.join(r.dir, 'd (1)', 'big.bin'))).toEqual(await digest(src));
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['d (1)/big.bin']);
    await expectServesOn(r, ['d', 'd (1)/big.bin']);
  });

  it('a folder swapped for a symbolic link during a transfer under overwrite: nothing lands outside, the sender gets UNSAFE_PATH', async () => {
    const { r, root } = await isolatedReceiver({ onConflict: 'overwrite' });
    const outside = path.join(root, 'outside');
    const moved = path.join(root, 'moved-away');
    await mkdir(outside);
    await writeFile(path.join(outside, 'big.bin'), 'precious\n');
    await mkdir(path.join(r.dir, 'd'));
    const local = path.join(await tempDir(), 'd');
    await mkdir(local);
    const size = 6 * MiB;
    const src = await randomFile(path.join(local, 'big.bin'), size);
    const anHourAgo = new Date(Date.now() - 3600_000);
    await utimes(src, anHourAgo, anHourAgo);
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 4 * MiB });
    // A key file, to know which owner the partial left behind belongs to.
    const owner = await sharedOwnerKey();
    const sending = send([local], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile: owner.senderKeyFile });
    sending.catch(() => undefined);

    await partialReaches(r, MiB);
    await rename(path.join(r.dir, 'd'), moved);
    await symlink(outside, path.join(r.dir, 'd'));
    proxy.setBytesPerSecond(Infinity);
    const report = await sending;

    expect(report.files).toHaveLength(1);
    expect(report.files[0]).toMatchObject({ name: 'd/big.bin', code: 'UNSAFE_PATH' });
    expect(['failed', 'refused']).toContain(report.files[0]!.status);
    expect(await readdir(outside)).toEqual(['big.bin']);
    expect(await readFile(path.join(outside, 'big.bin'), 'utf8')).toBe('precious\n');
    expect(await readdir(moved)).toEqual([]);
    expect(r.eventsOf('received')).toEqual([]);
    // The complete, verified upload stays as a partial (a failed placement keeps it:
    // docs/IMPLEMENTATION.md), for its sender under its name and size.
    const key = partialOf(owner.key, 'd/big.bin', size);
    const kept = await digest(path.join(r.dir, `${key}.part`));
    expect(kept).toEqual(await digest(src));
    await expectServesOn(r, ['d', `${key}.part`, `${key}.json`]);
  });

  it('the same content from two senders at once: each uploads into its own partial, and one copy is kept', async () => {
    const { r } = await isolatedReceiver();
    const size = 3 * MiB;
    const srcA = await randomFile(path.join(await tempDir(), 'same.bin'), size, 'same content');
    const srcB = await randomFile(path.join(await tempDir(), 'same.bin'), size, 'same content');
    expect(await digest(srcA)).toEqual(await digest(srcB));
    const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 3 * MiB });
    const [a, b] = await Promise.all([
      send([srcA], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 0 }),
      send([srcB], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 0 }),
    ]);
    // Two senders (two owner keys) never share a partial, so neither waits for the other.
    expect([a.files[0]!.status, b.files[0]!.status]).toEqual(['sent', 'sent']);
    expect(r.eventsOf('refused')).toEqual([]);
    expect(r.eventsOf('received').map((e) => e.path)).toEqual(['same.bin', 'same.bin']);
    expect(await digest(path.join(r.dir, 'same.bin'))).toEqual(await digest(srcA));
    await expectServesOn(r, ['same.bin']);
  });
});
