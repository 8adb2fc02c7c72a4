import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

const CHUNK_BYTES = 1024 * 1024;

/** AES-256-CTR keystream: deterministic for a seed, fast, and incompressible. */
function keystream(seed: string) {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
}

/** `bytes` deterministic pseudo-random bytes (same seed, same bytes). */
export function randomBuffer(bytes: number, seed = 'ft'): Buffer {
  return keystream(seed).update(Buffer.alloc(bytes));
}

/** Writes `bytes` deterministic pseudo-random bytes to `file`, 1 MiB at a time. */
export async function randomFile(file: string, bytes: number, seed: string = path.basename(file)): Promise<string> {
  const cipher = keystream(seed);
  const zeros = Buffer.alloc(Math.min(CHUNK_BYTES, Math.max(bytes, 1)));
  const handle = await open(file, 'w');
  try {
    let left = bytes;
    while (left > 0) {
      const n = Math.min(zeros.length, left);
      await handle.write(cipher.update(zeros.subarray(0, n)));
      left -= n;
    }
  } finally {
    await handle.close();
  }
  return file;
}

/** SHA-256 (hex) of a file's content, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Size and SHA-256 of a file: equal digests mean byte-identical content. */
export async function digest(file: string): Promise<{ size: number; sha256: string }> {
  return { size: (await stat(file)).size, sha256: await sha256File(file) };
}

/** Every regular file below `dir`, as sorted `/`-separated paths relative to it. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (current: string, prefix: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path.join(current, entry.name), rel);
      // The receiver's receipt key is no upload, finished or partial.
      else if (rel !== '.ft-partial/receipts.key') out.push(rel);
    }
  };
  await walk(dir, '');
  return out.sort();
}

/** The names in an inbox's partial folder, less the receiver's receipt key. */
export async function partialFolder(inbox: string): Promise<string[]> {
  return (await readdir(path.join(inbox, '.ft-partial'))).filter((name) => name !== 'receipts.key');
}

/** Total size of the `.part` files in an inbox's partial folder (0 when there are none). */
export async function partialBytes(inbox: string): Promise<number> {
  const dir = path.join(inbox, '.ft-partial');
  let total = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!name.endsWith('.part')) continue;
    total += await stat(path.join(dir, name)).then((s) => s.size, () => 0);
  }
  return total;
}

/** Paths of the `.part` files in an inbox's partial folder. */
export async function partialFiles(inbox: string): Promise<string[]> {
  const dir = path.join(inbox, '.ft-partial');
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith('.part')).map((n) => path.join(dir, n));
}

/** Polls `check` until it returns a truthy value; throws with `what` after `timeoutMs`. */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  what: string,
  { timeoutMs = 10_000, intervalMs = 20 }: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * The partial's size once it has stopped changing (same size on consecutive polls `quietMs`
 * apart): after a drop, the receiver still flushes what it had queued.
 */
export async function settledPartialBytes(inbox: string, { quietMs = 150, timeoutMs = 10_000 } = {}): Promise<number> {
  let last = -1;
  const size = await waitUntil(
    async () => {
      const now = await partialBytes(inbox);
      const stable = now === last;
      last = now;
      return stable ? { now } : undefined;
    },
    'the partial to stop growing',
    { intervalMs: quietMs, timeoutMs },
  );
  return size.now;
}
