/**
 * A producer of a stream for `ft send -`: a child process that writes `bytes` deterministic
 * pseudo-random bytes (or, with `bytes` undefined, up to 1 GiB: "endless") to its standard
 * output, with backpressure, and prints their SHA-256 on standard error at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const PRODUCER = `
const { createHash } = require('node:crypto');
const total = Number(process.argv[1]);
const block = Buffer.alloc(1 << 20);
const sha = createHash('sha256');
let x = 0x9e3779b9, sent = 0;
function fill() { for (let i = 0; i < block.length; i += 4) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; block.writeInt32LE(x | 0, i); } }
function more() {
  while (sent < total) {
    fill();
    const piece = block.subarray(0, Math.min(block.length, total - sent));
    sha.update(piece);
    sent += piece.length;
    if (!process.stdout.write(Buffer.from(piece))) return process.stdout.once('drain', more);
  }
  process.stdout.end(() => process.stderr.write(sha.digest('hex')));
}
process.stdout.on('error', () => process.exit(0));
more();
`;

export const ENDLESS_BYTES = 1024 ** 3;

export function startProducer(bytes: number = ENDLESS_BYTES): { child: ChildProcess; sha256: Promise<string> } {
  const child = spawn(process.execPath, ['-e', PRODUCER, String(bytes)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (err += text));
  // Not 'close': the parent's end of the stdout pipe, handed to ft, keeps that from coming.
  const sha256 = new Promise<string>((resolve) => child.stderr!.once('end', () => resolve(err.trim())));
  return { child, sha256 };
}
