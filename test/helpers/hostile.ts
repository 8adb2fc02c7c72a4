/**
 * Helpers for hostile-input tests: hand-made frames (any bytes, not just what encodeFrame would
 * produce) and the check that a receiver still serves an honest sender afterwards.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { send } from '../../src/index.js';
import type { OwnerKey } from '../../src/auth/owner-key.js';
import { digest, listFiles } from './files.js';
import { partialOf } from './owners.js';
import type { TestReceiver } from './receiver.js';
import type { FtServe } from './spawn-ft.js';
import { tempDir } from './temp.js';

/** A frame around arbitrary bytes: 4-byte big-endian length, then the bytes as they are. */
export function rawFrame(payload: string | Buffer): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([prefix, bytes]);
}

/** Just a length prefix (no payload). */
export function lengthPrefix(length: number): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(length, 0);
  return prefix;
}

/** Relative path (as listFiles shows it) of the partial metadata kept for this upload by the sender proving `owner`. */
export function partialMeta(owner: OwnerKey, filename: string, size: number): string {
  return `${partialOf(owner, filename, size)}.json`;
}

/** Relative path (as listFiles shows it) of the partial data kept for this upload by the sender proving `owner`. */
export function partialData(owner: OwnerKey, filename: string, size: number): string {
  return `${partialOf(owner, filename, size)}.part`;
}

let serial = 0;

/**
 * An honest `send()` on a new connection still succeeds, and afterwards the inbox holds exactly
 * `expected` (paths relative to the inbox, `.ft-partial/…` included) plus the file just sent.
 */
export async function expectServesOn(r: TestReceiver, expected: string[] = [], { token }: { token?: string } = {}): Promise<void> {
  const name = `still-serving-${process.pid}-${++serial}.txt`;
  const src = path.join(await tempDir('ft-honest-'), name);
  await writeFile(src, `an honest file, number ${serial}\n`);
  // Pinned to the test receiver's key: the honest sender is one that checks whom it talks to.
  const report = await send([src], { host: '127.0.0.1', port: r.port, retries: 0, token, fingerprint: r.fingerprint });
  // Only a sender that proved the token is told where its file was stored.
  expect(report.files.map((f) => [f.status, f.remotePath])).toEqual([['sent', token === undefined ? undefined : name]]);
  expect(await digest(path.join(r.dir, name))).toEqual(await digest(src));
  expect(await listFiles(r.dir)).toEqual([...expected, name].sort());
}

/**
 * The fingerprint a running `ft serve` printed at start-up (its `ft: fingerprint` line, or the
 * json `listening` event's): what a sender that checks the receiver's key is given.
 */
export function printedFingerprint(serve: FtServe): string {
  for (const line of serve.proc.lines()) {
    const text = /^ft: fingerprint ([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\b/.exec(line);
    if (text) return text[1]!;
    if (line.startsWith('{')) {
      const event = JSON.parse(line) as { event?: string; fingerprint?: string };
      if (event.event === 'listening' && typeof event.fingerprint === 'string') return event.fingerprint;
    }
  }
  throw new Error(`ft serve printed no fingerprint:\n${serve.proc.stdout}`);
}
