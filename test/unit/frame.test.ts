import { describe, expect, it } from 'vitest';
import { FtError, type ErrorCode } from '../../src/errors.js';
import { encodeFrame, FrameDecoder, FRAME_PREFIX_BYTES, MAX_FRAME_BYTES, type Decoded } from '../../src/wire/frame.js';

/** A raw frame: 4-byte big-endian length, then exactly these payload bytes (no validation). */
function rawFrame(payload: Buffer | string): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  prefix.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([prefix, bytes]);
}

function prefixOf(length: number): Buffer {
  const prefix = Buffer.alloc(FRAME_PREFIX_BYTES);
  prefix.writeUInt32BE(length, 0);
  return prefix;
}

/** Runs `fn`, which must throw an FtError with `code` (encodeFrame throws; the decoder reports errors as items). */
function expectFtError(fn: () => unknown, code: ErrorCode): FtError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected an FtError ${code}`).toBeInstanceOf(FtError);
  expect((thrown as FtError).code).toBe(code);
  return thrown as FtError;
}

/** `items` must be exactly one `error` item with an FtError of `code`; returns the error. */
function only(items: Decoded[], code: ErrorCode): FtError {
  expect(items, `expected exactly one error item ${code}`).toHaveLength(1);
  const item = items[0]!;
  expect(item.kind).toBe('error');
  const error = (item as { error: unknown }).error;
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code).toBe(code);
  return error as FtError;
}

/** Merges adjacent body chunks so outputs can be compared regardless of how input was split. */
function normalise(items: Decoded[]): Array<{ kind: string; message?: unknown; data?: string }> {
  const out: Array<{ kind: string; message?: unknown; data?: string }> = [];
  for (const item of items) {
    if (item.kind === 'body-chunk') {
      const last = out.at(-1);
      if (last?.kind === 'body') last.data += item.data.toString('hex');
      else out.push({ kind: 'body', data: item.data.toString('hex') });
    } else if (item.kind === 'frame') out.push({ kind: 'frame', message: item.message });
    else if (item.kind === 'error') out.push({ kind: 'error', message: item.error.code });
    else out.push({ kind: 'body-end' });
  }
  return out;
}

function pushAll(decoder: FrameDecoder, chunks: Buffer[]): Decoded[] {
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

function bytewise(buffer: Buffer): Buffer[] {
  return Array.from(buffer, (byte) => Buffer.from([byte]));
}

describe('encodeFrame', () => {
  it('writes a 4-byte big-endian length followed by the UTF-8 JSON', () => {
    const frame = encodeFrame({ type: 'bye', note: 'é' });
    const json = Buffer.from(JSON.stringify({ type: 'bye', note: 'é' }), 'utf8');
    expect(frame.readUInt32BE(0)).toBe(json.length);
    expect(frame.subarray(FRAME_PREFIX_BYTES).equals(json)).toBe(true);
    expect(frame.length).toBe(FRAME_PREFIX_BYTES + json.length);
  });

  it('refuses a message whose JSON is over the 64 KiB limit, and accepts one exactly at it', () => {
    // {"x":"…"} is 8 bytes of overhead.
    const atLimit = { x: 'a'.repeat(MAX_FRAME_BYTES - 8) };
    expect(encodeFrame(atLimit).readUInt32BE(0)).toBe(MAX_FRAME_BYTES);
    expectFtError(() => encodeFrame({ x: 'a'.repeat(MAX_FRAME_BYTES - 7) }), 'FRAME_TOO_LARGE');
  });
});

describe('FrameDecoder', () => {
  it('round-trips a frame pushed all at once', () => {
    const message = { type: 'file', id: 1, filename: 'Ünïcödé 三体.txt', size: 10, nested: { a: [1, 2, { b: null }] } };
    const decoder = new FrameDecoder();
    expect(decoder.push(encodeFrame(message))).toEqual([{ kind: 'frame', message }]);
    expect(decoder.atBoundary).toBe(true);
  });

  it('decodes a frame fed one byte at a time, yielding it only on the last byte', () => {
    const message = { type: 'hello', protocol: 'ft', version: 2, client: 'ft/0.1 ✓' };
    const frame = encodeFrame(message);
    const decoder = new FrameDecoder();
    for (let i = 0; i < frame.length - 1; i++) {
      expect(decoder.push(frame.subarray(i, i + 1))).toEqual([]);
      expect(decoder.atBoundary).toBe(false);
    }
    expect(decoder.push(frame.subarray(frame.length - 1))).toEqual([{ kind: 'frame', message }]);
    expect(decoder.atBoundary).toBe(true);
  });

  it('decodes several frames from one chunk, in order', () => {
    const messages = [{ type: 'a' }, { type: 'b', n: 2 }, { type: 'c', list: ['x'] }];
    const decoder = new FrameDecoder();
    const out = decoder.push(Buffer.concat(messages.map((m) => encodeFrame(m))));
    expect(out).toEqual(messages.map((message) => ({ kind: 'frame', message })));
    expect(decoder.atBoundary).toBe(true);
  });

  it('keeps an incomplete trailing frame for the next push', () => {
    const first = encodeFrame({ type: 'a' });
    const second = encodeFrame({ type: 'b' });
    const decoder = new FrameDecoder();
    expect(decoder.push(Buffer.concat([first, second.subarray(0, 6)]))).toEqual([{ kind: 'frame', message: { type: 'a' } }]);
    expect(decoder.atBoundary).toBe(false);
    expect(decoder.push(second.subarray(6))).toEqual([{ kind: 'frame', message: { type: 'b' } }]);
    expect(decoder.atBoundary).toBe(true);
  });

  it('copies buffered frame bytes, so reusing the pushed chunk does not corrupt a frame', () => {
    const frame = encodeFrame({ type: 'x', value: 'abcdef' });
    const decoder = new FrameDecoder();
    const chunk = Buffer.from(frame.subarray(0, 10));
    expect(decoder.push(chunk)).toEqual([]);
    chunk.fill(0xff);
    expect(decoder.push(frame.subarray(10))).toEqual([{ kind: 'frame', message: { type: 'x', value: 'abcdef' } }]);
  });

  it('splits a header frame and its body bytes arriving in the same chunk (sticky packets)', () => {
    const header = { type: 'body', id: 1, offset: 0, length: 5 };
    const decoder = new FrameDecoder();
    const out = decoder.push(Buffer.concat([encodeFrame(header), Buffer.from('hello')]));
    expect(out).toHaveLength(3);
    expect(out[0]).toEqual({ kind: 'frame', message: header });
    expect(out[1]!.kind).toBe('body-chunk');
    expect((out[1] as { data: Buffer }).data.toString()).toBe('hello');
    expect(out[2]).toEqual({ kind: 'body-end' });
    expect(decoder.atBoundary).toBe(true);
    expect(decoder.inBody).toBe(false);
  });

  it('yields body bytes that look like frames as body, not as frames', () => {
    const fakeFrame = encodeFrame({ type: 'bye' });
    const decoder = new FrameDecoder();
    const out = decoder.push(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: fakeFrame.length }), fakeFrame]));
    expect(normalise(out)).toEqual([
      { kind: 'frame', message: { type: 'body', id: 1, offset: 0, length: fakeFrame.length } },
      { kind: 'body', data: fakeFrame.toString('hex') },
      { kind: 'body-end' },
    ]);
  });

  it('yields body-end at once for a body of length 0, and the next frame is a frame', () => {
    const decoder = new FrameDecoder();
    const out = decoder.push(Buffer.concat([encodeFrame({ type: 'body', id: 1, offset: 0, length: 0 }), encodeFrame({ type: 'bye' })]));
    expect(out).toEqual([
      { kind: 'frame', message: { type: 'body', id: 1, offset: 0, length: 0 } },
      { kind: 'body-end' },
      { kind: 'frame', message: { type: 'bye' } },
    ]);
    expect(decoder.atBoundary).toBe(true);
  });

  it('yields body-end for an empty body even when the frame is the last thing pushed', () => {
    const decoder = new FrameDecoder();
    const out = decoder.push(encodeFrame({ type: 'body', length: 0 }));
    expect(out.map((item) => item.kind)).toEqual(['frame', 'body-end']);
    expect(decoder.inBody).toBe(false);
    expect(decoder.atBoundary).toBe(true);
  });

  it('streams a body split across many chunks, with views and one body-end at the end', () => {
    const body = Buffer.alloc(10_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const decoder = new FrameDecoder();
    const first = decoder.push(encodeFrame({ type: 'body', id: 3, offset: 0, length: body.length }));
    expect(first).toEqual([{ kind: 'frame', message: { type: 'body', id: 3, offset: 0, length: body.length } }]);
    expect(decoder.inBody).toBe(true);
    expect(decoder.atBoundary).toBe(false);

    const received: Buffer[] = [];
    let ends = 0;
    for (let at = 0; at < body.length; at += 997) {
      const chunk = body.subarray(at, at + 997);
      const items = decoder.push(chunk);
      for (const item of items) {
        if (item.kind === 'body-chunk') received.push(item.data);
        else if (item.kind === 'body-end') ends++;
        else throw new Error(`unexpected ${item.kind} inside a body`);
      }
      if (at + 997 < body.length) {
        expect(ends).toBe(0);
        expect(decoder.inBody).toBe(true);
      }
    }
    expect(ends).toBe(1);
    expect(Buffer.concat(received).equals(body)).toBe(true);
    expect(decoder.inBody).toBe(false);
    expect(decoder.atBoundary).toBe(true);
  });

  it('decodes frames that follow a body in the same chunk', () => {
    const decoder = new FrameDecoder();
    const chunk = Buffer.concat([
      encodeFrame({ type: 'body', id: 1, offset: 0, length: 3 }),
      Buffer.from('abc'),
      encodeFrame({ type: 'file', id: 2 }),
      encodeFrame({ type: 'body', id: 2, offset: 0, length: 2 }),
      Buffer.from('de'),
      encodeFrame({ type: 'bye' }),
    ]);
    expect(normalise(decoder.push(chunk))).toEqual([
      { kind: 'frame', message: { type: 'body', id: 1, offset: 0, length: 3 } },
      { kind: 'body', data: Buffer.from('abc').toString('hex') },
      { kind: 'body-end' },
      { kind: 'frame', message: { type: 'file', id: 2 } },
      { kind: 'frame', message: { type: 'body', id: 2, offset: 0, length: 2 } },
      { kind: 'body', data: Buffer.from('de').toString('hex') },
      { kind: 'body-end' },
      { kind: 'frame', message: { type: 'bye' } },
    ]);
    expect(decoder.atBoundary).toBe(true);
  });

  it('gives the same result for a mixed stream fed all at once and byte by byte', () => {
    const stream = Buffer.concat([
      encodeFrame({ type: 'hello', version: 2 }),
      encodeFrame({ type: 'body', length: 4 }),
      Buffer.from([0, 1, 2, 3]),
      encodeFrame({ type: 'body', length: 0 }),
      encodeFrame({ type: 'bye' }),
    ]);
    const whole = normalise(new FrameDecoder().push(stream));
    const split = normalise(pushAll(new FrameDecoder(), bytewise(stream)));
    expect(split).toEqual(whole);
    expect(whole.map((item) => item.kind)).toEqual(['frame', 'frame', 'body', 'body-end', 'frame', 'body-end', 'frame']);
  });

  it('returns nothing for an empty chunk and stays at a boundary', () => {
    const decoder = new FrameDecoder();
    expect(decoder.push(Buffer.alloc(0))).toEqual([]);
    expect(decoder.atBoundary).toBe(true);
  });

  describe('refusals', () => {
    it('refuses a zero-length frame with BAD_FRAME', () => {
      expect(only(new FrameDecoder().push(prefixOf(0)), 'BAD_FRAME')).toBeDefined();
    });

    it('refuses a length prefix of 4 GiB - 1 with FRAME_TOO_LARGE as soon as the prefix is complete', () => {
      const decoder = new FrameDecoder();
      expect(decoder.push(Buffer.from([0xff, 0xff, 0xff]))).toEqual([]);
      only(decoder.push(Buffer.from([0xff])), 'FRAME_TOO_LARGE');
    });

    it('refuses a length prefix of 65537 before any payload byte arrives', () => {
      const decoder = new FrameDecoder();
      const error = only(decoder.push(prefixOf(MAX_FRAME_BYTES + 1)), 'FRAME_TOO_LARGE');
      expect(error.message).toContain(String(MAX_FRAME_BYTES + 1));
    });

    it('refuses an oversized prefix even when payload bytes follow in the same chunk', () => {
      const decoder = new FrameDecoder();
      only(decoder.push(Buffer.concat([prefixOf(MAX_FRAME_BYTES + 1), Buffer.from('{"a":1}')])), 'FRAME_TOO_LARGE');
    });

    it('accepts a frame of exactly 64 KiB', () => {
      const message = { x: 'a'.repeat(MAX_FRAME_BYTES - 8) };
      const frame = rawFrame(JSON.stringify(message));
      expect(frame.readUInt32BE(0)).toBe(MAX_FRAME_BYTES);
      const decoder = new FrameDecoder();
      expect(decoder.push(frame)).toEqual([{ kind: 'frame', message }]);
    });

    it('reports a cut-off prefix as not at a boundary', () => {
      const decoder = new FrameDecoder();
      expect(decoder.push(encodeFrame({ type: 'bye' }).subarray(0, 2))).toEqual([]);
      expect(decoder.atBoundary).toBe(false);
      expect(decoder.inBody).toBe(false);
    });

    it('reports a cut-off payload and a cut-off body as not at a boundary', () => {
      const payloadCut = new FrameDecoder();
      payloadCut.push(encodeFrame({ type: 'bye' }).subarray(0, 7));
      expect(payloadCut.atBoundary).toBe(false);

      const bodyCut = new FrameDecoder();
      bodyCut.push(Buffer.concat([encodeFrame({ type: 'body', length: 3 }), Buffer.from('ab')]));
      expect(bodyCut.atBoundary).toBe(false);
      expect(bodyCut.inBody).toBe(true);
    });

    it('refuses invalid UTF-8 with BAD_FRAME', () => {
      // 0xff never occurs in UTF-8; 0xc3 0x28 is a broken two-byte sequence; ed a0 80 is a UTF-16 surrogate.
      for (const payload of [
        Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]),
        Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
        Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')]),
        Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]), // overlong "/"
      ]) {
        only(new FrameDecoder().push(rawFrame(payload)), 'BAD_FRAME');
      }
    });

    it('refuses a frame that starts with a UTF-8 byte order mark with BAD_FRAME', () => {
      only(new FrameDecoder().push(rawFrame(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"type":"bye"}')]))), 'BAD_FRAME');
    });

    it('refuses text that is not JSON with BAD_FRAME', () => {
      for (const text of ['{', 'hello', '{"a":1}x', "{'a':1}"]) {
        only(new FrameDecoder().push(rawFrame(text)), 'BAD_FRAME');
      }
    });

    it.each([
      ['an array', '[1,2,3]'],
      ['an empty array', '[]'],
      ['a number', '42'],
      ['a string', '"type"'],
      ['null', 'null'],
      ['a boolean', 'true'],
    ])('refuses JSON that is %s with BAD_FRAME', (_what, text) => {
      only(new FrameDecoder().push(rawFrame(text)), 'BAD_FRAME');
    });

    it('accepts nesting up to 8 levels and refuses deeper nesting with BAD_FRAME', () => {
      const nest = (levels: number): string => '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1);
      expect(new FrameDecoder().push(rawFrame(nest(8)))).toEqual([{ kind: 'frame', message: JSON.parse(nest(8)) }]);
      only(new FrameDecoder().push(rawFrame(nest(9))), 'BAD_FRAME');
      // Arrays nest too.
      only(new FrameDecoder().push(rawFrame('{"a":' + '['.repeat(20) + ']'.repeat(20) + '}')), 'BAD_FRAME');
    });

    it('refuses pathological nesting that fills a whole frame with BAD_FRAME, without a stack overflow', () => {
      const depth = Math.floor((MAX_FRAME_BYTES - 10) / 2);
      const text = '{"a":' + '['.repeat(depth) + ']'.repeat(depth) + '}';
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(MAX_FRAME_BYTES);
      only(new FrameDecoder().push(rawFrame(text)), 'BAD_FRAME');
    });

    it.each([
      ['negative', -1],
      ['fractional', 1.5],
      ['a string', '5'],
      ['null', null],
      ['beyond 2^53', 2 ** 53],
    ])('refuses a body frame whose length is %s with BAD_MESSAGE', (_what, length) => {
      const decoder = new FrameDecoder();
      const items = decoder.push(encodeFrame({ type: 'body', id: 1, offset: 0, length }));
      expect(items.at(-1)).toMatchObject({ kind: 'error', error: { code: 'BAD_MESSAGE' } });
      expect(decoder.inBody).toBe(false);
    });

    it('refuses a body frame with no length with BAD_MESSAGE', () => {
      const items = new FrameDecoder().push(encodeFrame({ type: 'body', id: 1, offset: 0 }));
      expect(items.at(-1)).toMatchObject({ kind: 'error', error: { code: 'BAD_MESSAGE' } });
    });

    it('does not deliver a body frame with an invalid length as a good frame before its error', () => {
      // push() promises that everything before the error item "was good". A body frame whose
      // length is invalid is the violation itself, so it must not come out as a frame.
      const good = encodeFrame({ type: 'file', id: 1 });
      const items = new FrameDecoder().push(Buffer.concat([good, encodeFrame({ type: 'body', id: 1, offset: 0, length: -1 })]));
      expect(items.map((item) => item.kind)).toEqual(['frame', 'error']);
      expect(items[0]).toEqual({ kind: 'frame', message: { type: 'file', id: 1 } });
    });

    it('does not treat a length inherited through "__proto__" as the body length', () => {
      // JSON.parse makes "__proto__" an own key, so `length` is still missing.
      const items = new FrameDecoder().push(rawFrame('{"type":"body","__proto__":{"length":3}}'));
      expect(items.at(-1)).toMatchObject({ kind: 'error', error: { code: 'BAD_MESSAGE' } });
    });

    it.each([
      ['a zero-length frame', prefixOf(0), 'BAD_FRAME'],
      ['an oversized prefix', prefixOf(0xffffffff), 'FRAME_TOO_LARGE'],
      ['invalid UTF-8', rawFrame(Buffer.from([0xff])), 'BAD_FRAME'],
      ['a JSON array', rawFrame('[]'), 'BAD_FRAME'],
      ['a bad body length', encodeFrame({ type: 'body', length: -1 }), 'BAD_MESSAGE'],
    ] as const)('after %s, every further push yields the same error and nothing else', (_what, bad, code) => {
      const decoder = new FrameDecoder();
      const first = decoder.push(bad).at(-1);
      expect(first).toMatchObject({ kind: 'error', error: { code } });
      const error = (first as { error: FtError }).error;
      expect(error).toBeInstanceOf(FtError);
      // Even perfectly valid input is refused: the stream is out of sync for good.
      expect(decoder.push(encodeFrame({ type: 'bye' }))).toEqual([{ kind: 'error', error }]);
      expect(decoder.push(Buffer.alloc(0))).toEqual([{ kind: 'error', error }]);
      expect((decoder.push(Buffer.from('abc'))[0] as { error: FtError }).error).toBe(error);
    });

    it('delivers the good frames before a bad one in the same chunk, then the error, and nothing after', () => {
      const decoder = new FrameDecoder();
      const chunk = Buffer.concat([
        encodeFrame({ type: 'a' }),
        encodeFrame({ type: 'body', length: 2 }),
        Buffer.from('xy'),
        prefixOf(0),
        encodeFrame({ type: 'b' }),
      ]);
      const items = decoder.push(chunk);
      expect(normalise(items.slice(0, -1))).toEqual([
        { kind: 'frame', message: { type: 'a' } },
        { kind: 'frame', message: { type: 'body', length: 2 } },
        { kind: 'body', data: Buffer.from('xy').toString('hex') },
        { kind: 'body-end' },
      ]);
      only(items.slice(-1), 'BAD_FRAME');
    });
  });
});
