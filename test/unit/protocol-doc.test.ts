/**
 * docs/PROTOCOL.md's worked examples stay machine-checked: every hex dump and every JSON line of
 * §12 is output of docs/protocol-examples.mjs (an encoder written from the spec, which does not
 * import ft), so an example that goes stale fails here; and ft's own decoder and parsers read
 * every example frame and datagram without an error.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { verifyOwnerProof } from '../../src/auth/owner-key.js';
import { receiverProof, senderProof, verifyReceiverProof, verifySenderProof } from '../../src/auth/token-proof.js';
import { decodeDatagram } from '../../src/discovery/codec.js';
import { FrameDecoder, type JsonObject } from '../../src/wire/frame.js';
import { FEATURES, OUR_FEATURES, PROTOCOL_VERSION, parseReceiverMessage, parseSenderMessage } from '../../src/wire/messages.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const doc = readFileSync(`${root}docs/PROTOCOL.md`, 'utf8');
const script = execFileSync(process.execPath, ['docs/protocol-examples.mjs'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
const scriptLines = new Set(script.split('\n'));

/** The text of one `## ` section of the doc, found by the start of its heading. */
function section(heading: string): string {
  const start = doc.indexOf(`\n## ${heading}`);
  expect(start, `section "${heading}" of PROTOCOL.md`).toBeGreaterThan(0);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end < 0 ? undefined : end);
}

/** The lines of every fenced block of a text. */
function codeBlocks(text: string): string[][] {
  return [...text.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)].map((match) => match[1]!.replace(/\n$/, '').split('\n'));
}

const DUMP_LINE = /^([0-9a-f]{8}(  .*)?|\*)$/;

/** Runs of `hexdump -C` lines, each dump as its text. */
function dumpsOf(block: string[]): string[] {
  const dumps: string[] = [];
  let run: string[] = [];
  for (const line of [...block, '']) {
    if (DUMP_LINE.test(line)) run.push(line);
    else if (run.length > 0) {
      dumps.push(run.join('\n'));
      run = [];
    }
  }
  return dumps;
}

/** The bytes a `hexdump -C` dump shows (`*` repeats the row above up to the next offset). */
function bytesOfDump(dump: string): Buffer {
  const rows = dump.split('\n');
  const total = Number.parseInt(rows.at(-1)!, 16);
  const out = Buffer.alloc(total);
  let previous: { at: number; bytes: Buffer } | undefined;
  let repeating = false;
  for (const row of rows.slice(0, -1)) {
    if (row === '*') {
      repeating = true;
      continue;
    }
    const at = Number.parseInt(row.slice(0, 8), 16);
    const bytes = Buffer.from(row.slice(10, 59).replace(/\s+/g, ''), 'hex');
    if (repeating && previous) for (let fill = previous.at + 16; fill < at; fill += 16) previous.bytes.copy(out, fill);
    repeating = false;
    bytes.copy(out, at);
    previous = { at, bytes };
  }
  if (repeating && previous) for (let fill = previous.at + 16; fill < total; fill += 16) previous.bytes.copy(out, fill);
  return out;
}

/** A JSON line of the examples: `R→S {...}`, `S→R {...}`, or a bare datagram `{...}`. */
interface JsonLine {
  direction: 'R→S' | 'S→R' | 'datagram';
  text: string;
}

function jsonLinesOf(block: string[]): JsonLine[] {
  return block.flatMap((line) => {
    const match = /^(R→S |S→R )?(\{.*\})$/.exec(line);
    if (!match) return [];
    const direction = (match[1]?.trim() ?? 'datagram') as JsonLine['direction'];
    return [{ direction, text: match[2]! }];
  });
}

/** Who sent a decoded frame: a receiver's hello has `auth` (both have a nonce); other types belong to one side. */
function parse(message: JsonObject): unknown {
  const fromReceiver = message.type === 'hello' ? 'auth' in message : ['welcome', 'accept', 'skip', 'refuse', 'done', 'failed', 'error'].includes(message.type as string);
  return fromReceiver ? parseReceiverMessage(message) : parseSenderMessage(message);
}

/** One frame of `text`, decoded by ft's own decoder. */
function decodeOneFrame(text: string): JsonObject {
  const json = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(json.length);
  const items = new FrameDecoder().push(Buffer.concat([prefix, json]));
  const frames = items.filter((item) => item.kind === 'frame');
  expect(items.filter((item) => item.kind === 'error')).toEqual([]);
  expect(frames).toHaveLength(1);
  return (frames[0] as { message: JsonObject }).message;
}

const examples = section('12. Examples');
const blocks = codeBlocks(examples);
const dumps = blocks.flatMap(dumpsOf);
const jsonLines = blocks.flatMap(jsonLinesOf);

describe('PROTOCOL.md', () => {
  it('is short enough to read in one sitting', () => {
    // 1,110: §10 gained endpoints (one receiver, several instances sharing its key) and how senders use them.
    expect(doc.split('\n').length).toBeLessThan(1110);
  });

  it('specifies the version this implementation speaks', () => {
    const version = /^\*\*Version:\*\* (\d+)<br>$/m.exec(doc)?.[1];
    expect(Number(version)).toBe(PROTOCOL_VERSION);
  });

  it('registers every feature ft knows, and ft knows every feature it registers', () => {
    const registry = section('9. Features');
    const table = registry.slice(registry.indexOf('| Feature |'));
    const rows = [...table.matchAll(/^\| `([a-z0-9-]+)` \|/gm)].map((match) => match[1]);
    expect(rows.sort()).toEqual(Object.values(FEATURES).sort());
    expect([...OUR_FEATURES].sort()).toEqual(Object.values(FEATURES).sort());
  });

  describe('worked examples', () => {
    it('show dumps and JSON lines (the checks below are not vacuous)', () => {
      expect(dumps.length).toBeGreaterThanOrEqual(3);
      expect(jsonLines.filter((line) => line.direction !== 'datagram').length).toBeGreaterThanOrEqual(15);
      expect(jsonLines.filter((line) => line.direction === 'datagram')).toHaveLength(3);
    });

    it('hold nothing but dumps, JSON lines and notes of raw bytes in their blocks', () => {
      const other = blocks.flat().filter((line) => !DUMP_LINE.test(line) && !/^(R→S |S→R )?\{.*\}$/.test(line) && !/^S→R \(\d+ raw bytes\)$/.test(line));
      expect(other).toEqual([]);
    });

    it.each(dumps.map((dump) => [dump.split('\n')[0]!, dump]))('dump starting %s is output of protocol-examples.mjs', (_first, dump) => {
      expect(script).toContain(`${dump}\n`);
    });

    it.each(jsonLines.map((line) => [line.text.slice(0, 60), line.text]))('JSON line %s… is output of protocol-examples.mjs', (_start, text) => {
      expect(scriptLines.has(text), text).toBe(true);
    });

    it.each(jsonLines.filter((line) => line.direction !== 'datagram').map((line) => [line.direction, line.text.slice(0, 50), line]))(
      '%s %s… decodes as a frame and parses as a message of its direction',
      (_direction, _start, line) => {
        const message = decodeOneFrame(line.text);
        expect(message).toEqual(JSON.parse(line.text));
        // As on a connection whose hellos list every feature (the examples of §12.10 need `metadata`).
        const parsed = line.direction === 'R→S' ? parseReceiverMessage(message) : parseSenderMessage(message, new Set(Object.values(FEATURES)));
        expect(parsed).toMatchObject({ type: message.type });
        if (message.type === 'hello') expect(parsed).toMatchObject({ version: PROTOCOL_VERSION, features: [FEATURES.TRAILING_HASH] });
      },
    );

    it('prove the owner key and the token, both ways, as ft checks them (plaintext: an empty binding)', () => {
      const messages = jsonLines.filter((line) => line.direction !== 'datagram').map((line) => JSON.parse(line.text) as JsonObject);
      const hellos = messages.filter((m) => m.type === 'hello');
      const receiverNonces = new Set(hellos.filter((m) => 'auth' in m).map((m) => m.nonce as string));
      expect(receiverNonces.size).toBe(1);
      const [nonce] = receiverNonces;
      const senders = hellos.filter((m) => 'owner' in m);
      expect(senders.length).toBeGreaterThanOrEqual(2);
      expect(examples).toContain('**plaintext**');
      const plaintext = Buffer.alloc(0);
      const implementation = readFileSync(`${root}docs/IMPLEMENTATION.md`, 'utf8');
      for (const hello of senders) {
        expect(hello.nonce).toMatch(/^[0-9a-f]{32}$/);
        const fingerprint = verifyOwnerProof(hello.owner as string, nonce!, hello.ownerProof as string, plaintext);
        expect(fingerprint).toBeDefined();
        // Bound to the channel: the same signature does not hold for a TLS binding.
        expect(verifyOwnerProof(hello.owner as string, nonce!, hello.ownerProof as string, Buffer.alloc(32))).toBeUndefined();
        // The fingerprint the implementation note gives for the example key is ft's.
        expect(implementation).toContain(`\`${fingerprint}\``);
      }
      const withToken = senders.filter((m) => 'proof' in m);
      expect(withToken).toHaveLength(1);
      expect(examples).toContain('`example-token`');
      const transcript = { binding: plaintext, receiverNonce: nonce!, senderNonce: withToken[0]!.nonce as string };
      expect(verifySenderProof('example-token', transcript, withToken[0]!.proof as string)).toBe(true);
      // Each welcome proves the token exactly when the receiver asked for one.
      const welcomes = messages.filter((m) => m.type === 'welcome');
      expect(welcomes).toEqual([{ type: 'welcome' }, { type: 'welcome', proof: receiverProof('example-token', transcript) }]);
      expect(verifyReceiverProof('example-token', transcript, welcomes[1]!.proof as string)).toBe(true);
    });

    it('give the proofs over TLS for the example binding as ft computes them', () => {
      const tls = /Over TLS, with the example `B` = SHA-256 of `ft example channel binding` = `([0-9a-f]{64})`[^`]*`ownerProof` is\n`([0-9a-f]{128})`,\nthe `proof` `([0-9a-f]{64})` and the `welcome`'s `([0-9a-f]{64})`\./.exec(examples);
      expect(tls, 'the TLS proofs of §12.3').not.toBeNull();
      const [, bindingHex, ownerProof, proof, welcomeProof] = tls!;
      const binding = Buffer.from(bindingHex!, 'hex');
      expect(binding).toEqual(createHash('sha256').update('ft example channel binding').digest());
      const hello = jsonLines.map((line) => JSON.parse(line.text) as JsonObject).find((m) => m.type === 'hello' && 'proof' in m)!;
      const receiverNonce = (jsonLines.map((line) => JSON.parse(line.text) as JsonObject).find((m) => m.type === 'hello' && 'auth' in m)!).nonce as string;
      const transcript = { binding, receiverNonce, senderNonce: hello.nonce as string };
      expect(verifyOwnerProof(hello.owner as string, receiverNonce, ownerProof!, binding)).toBeDefined();
      expect(proof).toBe(senderProof('example-token', transcript));
      expect(welcomeProof).toBe(receiverProof('example-token', transcript));
      // Over another channel they are other proofs: what makes a relayed one worthless.
      expect(proof).not.toBe(hello.proof);
    });

    it.each([...doc.matchAll(/`(\{"type":[^`]*\})`/g)].map((match) => [match[1]!]))('the message %s quoted in the text parses', (text) => {
      expect(() => parse(JSON.parse(text) as JsonObject)).not.toThrow();
    });

    it.each(dumps.filter((dump) => dump.startsWith('00000000  00 00')).map((dump) => [dump.split('\n')[1] ?? '', dump]))(
      'the frames of the dump %s… decode and parse without an error',
      (_row, dump) => {
        const items = new FrameDecoder().push(bytesOfDump(dump));
        expect(items.filter((item) => item.kind === 'error')).toEqual([]);
        const frames = items.filter((item) => item.kind === 'frame');
        expect(frames.length).toBeGreaterThan(0);
        for (const frame of frames) expect(() => parse((frame as { message: JsonObject }).message)).not.toThrow();
      },
    );

    it.each(jsonLines.filter((line) => line.direction === 'datagram').map((line) => [line.text.slice(0, 60), line.text]))(
      'the datagram %s… is one ft decodes',
      (_start, text) => {
        const bytes = Buffer.from(text.replace(/"<(\d+) spaces>"/, (_all, count: string) => `"${' '.repeat(Number(count))}"`), 'utf8');
        const datagram = decodeDatagram(bytes);
        expect(datagram).toBeDefined();
        if (datagram!.kind === 'query') expect(bytes.length).toBe(512);
      },
    );
  });
});
