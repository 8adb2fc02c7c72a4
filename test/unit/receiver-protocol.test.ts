/**
 * The receiver's state machine without sockets (src/receiver/protocol.ts): decoded frames in,
 * states and effects out, row by row of the state table in docs/PROTOCOL.md.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { initialMemory, transition, type Effect, type Input, type ProtocolMemory, type ProtocolState } from '../../src/receiver/protocol.js';
import { encodeFrame, FrameDecoder, type JsonObject } from '../../src/wire/frame.js';
import { FEATURES, MAX_FILES_PER_CONNECTION, type Feature } from '../../src/wire/messages.js';

const HASH = 'xxh64:abdc2a61f1f91f4c';
const LIMITS = { maxPendingFiles: 4 };
const HELLO = { type: 'hello', protocol: 'ft', version: 5, nonce: '9a'.repeat(16), owner: 'ab'.repeat(32), ownerProof: 'cd'.repeat(64), features: ['trailing-hash'] };

/** A machine driven by frames as bytes, through the real decoder. */
class Machine {
  state: ProtocolState = { name: 'hello' };
  readonly memory: ProtocolMemory = initialMemory();
  readonly effects: Effect[] = [];
  private readonly decoder = new FrameDecoder();

  feed(input: Input): this {
    const next = transition(this.state, input, this.memory, LIMITS);
    this.state = next.state;
    this.effects.push(...next.effects);
    return this;
  }

  frame(message: JsonObject, raw: Buffer = Buffer.alloc(0)): this {
    for (const item of this.decoder.push(Buffer.concat([encodeFrame(message), raw]))) this.feed(item);
    return this;
  }

  ready(features: Feature[] = [FEATURES.TRAILING_HASH]): this {
    this.frame(HELLO);
    return this.feed({ kind: 'authenticated', features: new Set(features) });
  }

  kinds(): string[] {
    return this.effects.map((effect) => effect.kind);
  }
}

function violation(run: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(FtError);
  expect((thrown as FtError).code).toBe(code);
}

const file = (id: number, extra: JsonObject = { hash: HASH }) => ({ type: 'file', id, filename: `f${id}.txt`, size: 3, ...extra });

describe('receiver state machine', () => {
  describe('hello', () => {
    it('a sender hello moves to authenticating with a hello effect; authenticated moves to ready with the shared features', () => {
      const m = new Machine().frame(HELLO);
      expect(m.state).toEqual({ name: 'authenticating' });
      expect(m.effects).toEqual([{ kind: 'hello', hello: expect.objectContaining({ version: 5, nonce: '9a'.repeat(16), features: ['trailing-hash'] }) }]);
      m.feed({ kind: 'authenticated', features: new Set([FEATURES.TRAILING_HASH]) });
      expect(m.state).toEqual({ name: 'ready' });
      expect([...m.memory.features]).toEqual(['trailing-hash']);
    });

    it.each([
      ['a file header', file(1)],
      ['bye', { type: 'bye' }],
      ['a body', { type: 'body', id: 1, offset: 0, length: 0 }],
    ])('%s before the hello is UNEXPECTED_MESSAGE', (_what, message) => {
      violation(() => new Machine().frame(message), 'UNEXPECTED_MESSAGE');
    });

    it('anything while the hello is being checked is UNEXPECTED_MESSAGE', () => {
      const m = new Machine().frame(HELLO);
      violation(() => m.frame(file(1)), 'UNEXPECTED_MESSAGE');
    });

    it('an unknown type is BAD_MESSAGE in every state (parse errors first)', () => {
      violation(() => new Machine().frame({ type: 'nope' }), 'BAD_MESSAGE');
      violation(() => new Machine().ready().frame({ type: 'nope' }), 'BAD_MESSAGE');
      const closing = new Machine().ready().frame({ type: 'bye' });
      violation(() => closing.frame({ type: 'nope' }), 'BAD_MESSAGE');
    });

    it('a malformed frame is the decoder\'s error, thrown as it is', () => {
      const m = new Machine();
      const zero = Buffer.alloc(4);
      let thrown: unknown;
      try {
        for (const item of new FrameDecoder().push(zero)) m.feed(item);
      } catch (error) {
        thrown = error;
      }
      expect((thrown as FtError).code).toBe('BAD_FRAME');
    });
  });

  describe('ready', () => {
    it('headers become header effects in order; ids must increase', () => {
      const m = new Machine().ready().frame(file(1)).frame(file(5));
      expect(m.effects.filter((e) => e.kind === 'header').map((e) => (e as { header: { id: number } }).header.id)).toEqual([1, 5]);
      violation(() => m.frame(file(5)), 'UNEXPECTED_MESSAGE');
      violation(() => m.frame(file(2)), 'UNEXPECTED_MESSAGE');
    });

    it('at most maxPendingFiles headers are open; a settled header frees its place', () => {
      const m = new Machine().ready();
      for (let id = 1; id <= LIMITS.maxPendingFiles; id++) m.frame(file(id));
      violation(() => new Machine().ready().frame(file(1)).frame(file(2)).frame(file(3)).frame(file(4)).frame(file(5)), 'UNEXPECTED_MESSAGE');
      m.feed({ kind: 'settled', id: 2 });
      m.frame(file(10));
      expect(m.memory.open.size).toBe(LIMITS.maxPendingFiles);
    });

    it(`the ${MAX_FILES_PER_CONNECTION + 1}st header of a connection is UNEXPECTED_MESSAGE, refused or not`, () => {
      const m = new Machine().ready();
      for (let id = 1; id <= MAX_FILES_PER_CONNECTION; id++) {
        m.frame(file(id));
        m.feed({ kind: 'settled', id });
      }
      violation(() => m.frame(file(MAX_FILES_PER_CONNECTION + 1)), 'UNEXPECTED_MESSAGE');
    });

    it('a header without its hash needs trailing-hash in both hellos', () => {
      violation(() => new Machine().ready([]).frame(file(1, {})), 'BAD_MESSAGE');
      expect(new Machine().ready().frame(file(1, {})).kinds()).toContain('header');
    });

    it('a body with a hash in its header: chunk effects, then body-end with that hash, back to ready', () => {
      const m = new Machine().ready().frame(file(1)).frame({ type: 'body', id: 1, offset: 0, length: 3 }, Buffer.from('abc'));
      expect(m.kinds()).toEqual(['hello', 'header', 'body', 'chunk', 'body-end']);
      expect(m.effects.at(-1)).toEqual({ kind: 'body-end', id: 1, hash: HASH, dropped: false });
      expect(m.state).toEqual({ name: 'ready' });
      expect(m.memory.open.size).toBe(0);
    });

    it('a body without a hash in its header ends in awaiting-hash; the hash with its id completes it', () => {
      const m = new Machine().ready().frame(file(1, {})).frame({ type: 'body', id: 1, offset: 0, length: 3 }, Buffer.from('abc'));
      expect(m.state).toEqual({ name: 'awaiting-hash', id: 1 });
      expect(m.effects.at(-1)).toEqual({ kind: 'body-end', id: 1, hash: undefined, dropped: false });
      m.frame({ type: 'hash', id: 1, hash: HASH });
      expect(m.effects.at(-1)).toEqual({ kind: 'hash', id: 1, hash: HASH, dropped: false });
      expect(m.state).toEqual({ name: 'ready' });
    });

    it('a dropped body yields no chunks; its end and its trailing hash say it was dropped', () => {
      const m = new Machine().ready().frame(file(1, {}));
      const decoder = new FrameDecoder();
      const items = decoder.push(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 4 }), Buffer.from('ab')]));
      for (const item of items) m.feed(item);
      m.feed({ kind: 'drop' });
      for (const item of decoder.push(Buffer.from('cd'))) m.feed(item);
      expect(m.kinds().filter((k) => k === 'chunk')).toHaveLength(1);
      expect(m.effects.at(-1)).toEqual({ kind: 'body-end', id: 1, hash: undefined, dropped: true });
      for (const item of decoder.push(encodeFrame({ type: 'hash', id: 1, hash: HASH }))) m.feed(item);
      expect(m.effects.at(-1)).toEqual({ kind: 'hash', id: 1, hash: HASH, dropped: true });
    });

    it('a body that fails after its last byte (awaiting its hash) has that hash dropped too', () => {
      const m = new Machine().ready().frame(file(1, {})).frame({ type: 'body', id: 1, offset: 0, length: 1 }, Buffer.from('a'));
      m.feed({ kind: 'drop' });
      m.frame({ type: 'hash', id: 1, hash: HASH });
      expect(m.effects.at(-1)).toEqual({ kind: 'hash', id: 1, hash: HASH, dropped: true });
    });

    it.each([
      ['a header', file(2)],
      ['a body', { type: 'body', id: 2, offset: 0, length: 0 }],
      ['bye', { type: 'bye' }],
      ['cancel', { type: 'cancel', id: 1 }],
      ['a hash for another id', { type: 'hash', id: 7, hash: HASH }],
    ])('awaiting a hash, %s is UNEXPECTED_MESSAGE', (_what, message) => {
      const m = new Machine().ready().frame(file(1, {})).frame({ type: 'body', id: 1, offset: 0, length: 1 }, Buffer.from('a'));
      violation(() => m.frame(message), 'UNEXPECTED_MESSAGE');
    });

    it('a hash with no body waiting for it, or a second hello, is UNEXPECTED_MESSAGE', () => {
      violation(() => new Machine().ready().frame({ type: 'hash', id: 1, hash: HASH }), 'UNEXPECTED_MESSAGE');
      violation(() => new Machine().ready().frame(HELLO), 'UNEXPECTED_MESSAGE');
    });

    it('cancel closes the header and is an effect; bye moves to closing, after which every frame is UNEXPECTED_MESSAGE', () => {
      const m = new Machine().ready().frame(file(1)).frame({ type: 'cancel', id: 1 });
      expect(m.effects.at(-1)).toEqual({ kind: 'cancel', id: 1 });
      expect(m.memory.open.size).toBe(0);
      m.frame({ type: 'bye' });
      expect(m.state).toEqual({ name: 'closing' });
      violation(() => m.frame(file(2)), 'UNEXPECTED_MESSAGE');
    });
  });

  it('any sequence of frames ends in a state or an FtError, never another exception', () => {
    const message = fc.oneof(
      fc.constant<JsonObject>(HELLO),
      fc.integer({ min: 1, max: 6 }).map((id) => file(id) as JsonObject),
      fc.integer({ min: 1, max: 6 }).map((id) => file(id, {}) as JsonObject),
      fc.integer({ min: 1, max: 6 }).map((id): JsonObject => ({ type: 'body', id, offset: 0, length: id % 3 })),
      fc.integer({ min: 1, max: 6 }).map((id): JsonObject => ({ type: 'hash', id, hash: HASH })),
      fc.integer({ min: 1, max: 6 }).map((id): JsonObject => ({ type: 'cancel', id })),
      fc.constant<JsonObject>({ type: 'bye' }),
    );
    const signal = fc.oneof(
      fc.constant<Input>({ kind: 'authenticated', features: new Set([FEATURES.TRAILING_HASH]) }),
      fc.integer({ min: 1, max: 6 }).map((id): Input => ({ kind: 'settled', id })),
      fc.constant<Input>({ kind: 'drop' }),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(message.map((m) => ({ m })), signal.map((s) => ({ s }))), { maxLength: 30 }), (steps) => {
        const m = new Machine();
        try {
          for (const step of steps) {
            if ('m' in step) m.frame(step.m, Buffer.alloc(typeof step.m.length === 'number' ? step.m.length : 0, 0x61));
            else if (step.s.kind !== 'authenticated' || m.state.name === 'authenticating') m.feed(step.s);
          }
        } catch (error) {
          expect(error).toBeInstanceOf(FtError);
        }
        expect(m.memory.open.size).toBeLessThanOrEqual(LIMITS.maxPendingFiles);
      }),
      { numRuns: 300 },
    );
  });
});

describe('streams (feature stream)', () => {
  const STREAMING = [FEATURES.TRAILING_HASH, FEATURES.STREAM];
  const header = (id = 1, extra: JsonObject = {}) => ({ type: 'file', id, filename: 'db.sql', stream: true, ...extra });
  const body = (offset: number, bytes: string, id = 1) => [{ type: 'body', id, offset, length: bytes.length }, Buffer.from(bytes)] as const;

  it('past the first 1,024 frames, a frame that brings the average under 4 KiB is BAD_MESSAGE; frames of 4 KiB go on', () => {
    const tiny = new Machine().ready(STREAMING).frame(header());
    for (let offset = 0; offset < 1024; offset++) tiny.frame(...body(offset, 'x'));
    violation(() => tiny.frame(...body(1024, 'x')), 'BAD_MESSAGE');
    const fair = new Machine().ready(STREAMING).frame(header());
    const chunk = 'y'.repeat(4096);
    for (let frame = 0; frame < 3000; frame++) fair.frame(...body(frame * chunk.length, chunk));
    expect(fair.state).toMatchObject({ name: 'awaiting-hash', stream: { frames: 3000 } });
  });

  it('several bodies at growing offsets, then the hash with the size: one body effect, every chunk, the hash with its size', () => {
    const m = new Machine().ready(STREAMING).frame(header());
    expect(m.effects.at(-1)).toEqual({ kind: 'header', header: { type: 'file', id: 1, filename: 'db.sql', stream: true } });
    m.frame(...body(0, 'abc'));
    expect(m.state).toEqual({ name: 'awaiting-hash', id: 1, stream: { received: 3, frames: 1 } });
    m.frame(...body(3, 'de')).frame(...body(5, 'f'));
    m.frame({ type: 'hash', id: 1, hash: HASH, size: 6 });
    expect(m.kinds()).toEqual(['hello', 'header', 'body', 'chunk', 'body-end', 'chunk', 'body-end', 'chunk', 'body-end', 'hash']);
    expect(m.effects.filter((e) => e.kind === 'body')).toEqual([{ kind: 'body', body: { type: 'body', id: 1, offset: 0, length: 3 }, stream: true }]);
    expect(m.effects.filter((e) => e.kind === 'body-end').every((e) => e.kind === 'body-end' && e.stream === true)).toBe(true);
    expect(m.effects.at(-1)).toEqual({ kind: 'hash', id: 1, hash: HASH, dropped: false, size: 6 });
    expect(m.state).toEqual({ name: 'ready' });
  });

  it('an empty stream is one empty body, then the hash of size 0; another body after it is BAD_MESSAGE', () => {
    const m = new Machine().ready(STREAMING).frame(header()).frame(...body(0, ''));
    m.frame({ type: 'hash', id: 1, hash: HASH, size: 0 });
    expect(m.effects.at(-1)).toMatchObject({ kind: 'hash', size: 0 });
    const again = new Machine().ready(STREAMING).frame(header()).frame(...body(0, ''));
    violation(() => again.frame(...body(0, 'x')), 'BAD_MESSAGE');
  });

  it('a header with stream: without the feature, or with a size or a hash, is BAD_MESSAGE; a header without size is too', () => {
    violation(() => new Machine().ready().frame(header()), 'BAD_MESSAGE');
    violation(() => new Machine().ready(STREAMING).frame(header(1, { size: 3 })), 'BAD_MESSAGE');
    violation(() => new Machine().ready(STREAMING).frame(header(1, { hash: HASH })), 'BAD_MESSAGE');
    violation(() => new Machine().ready(STREAMING).frame({ type: 'file', id: 1, filename: 'x' }), 'BAD_MESSAGE');
  });

  it('between the bodies: a wrong offset, an empty body or a first body past 0 is BAD_MESSAGE; another id or message is UNEXPECTED_MESSAGE', () => {
    const started = () => new Machine().ready(STREAMING).frame(header()).frame(file(2)).frame(...body(0, 'abc'));
    violation(() => new Machine().ready(STREAMING).frame(header()).frame(...body(1, 'abc')), 'BAD_MESSAGE');
    violation(() => started().frame(...body(2, 'de')), 'BAD_MESSAGE');
    violation(() => started().frame(...body(3, '')), 'BAD_MESSAGE');
    violation(() => started().frame(...body(0, 'abc', 2)), 'UNEXPECTED_MESSAGE');
    violation(() => started().frame({ type: 'file', id: 3, filename: 'x', size: 1, hash: HASH }), 'UNEXPECTED_MESSAGE');
    violation(() => started().frame({ type: 'bye' }), 'UNEXPECTED_MESSAGE');
    violation(() => started().frame({ type: 'hash', id: 2, hash: HASH, size: 3 }), 'UNEXPECTED_MESSAGE');
  });

  it('the hash must declare exactly the bytes of every body', () => {
    const started = () => new Machine().ready(STREAMING).frame(header()).frame(...body(0, 'abc')).frame(...body(3, 'de'));
    violation(() => started().frame({ type: 'hash', id: 1, hash: HASH }), 'BAD_MESSAGE');
    violation(() => started().frame({ type: 'hash', id: 1, hash: HASH, size: 3 }), 'BAD_MESSAGE');
    violation(() => started().frame({ type: 'hash', id: 1, hash: HASH, size: 6 }), 'BAD_MESSAGE');
    expect(started().frame({ type: 'hash', id: 1, hash: HASH, size: 5 }).state).toEqual({ name: 'ready' });
  });

  it('a stream dropped mid-way (failed) drops the chunks of its later bodies, and its hash says so', () => {
    const m = new Machine().ready(STREAMING).frame(header()).frame(...body(0, 'abc'));
    m.feed({ kind: 'drop' });
    m.frame(...body(3, 'de')).frame({ type: 'hash', id: 1, hash: HASH, size: 5 });
    expect(m.kinds().filter((k) => k === 'chunk')).toHaveLength(1);
    expect(m.effects.at(-1)).toEqual({ kind: 'hash', id: 1, hash: HASH, dropped: true, size: 5 });
  });

  it('a size in the hash of a file that is not a stream is ignored', () => {
    const m = new Machine().ready(STREAMING).frame(file(1, {})).frame({ type: 'body', id: 1, offset: 0, length: 3 }, Buffer.from('abc'));
    m.frame({ type: 'hash', id: 1, hash: HASH, size: 99 });
    expect(m.effects.at(-1)).toEqual({ kind: 'hash', id: 1, hash: HASH, dropped: false });
  });
});
