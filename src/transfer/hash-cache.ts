import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What a cached hash is valid for: the same file (device, inode) unchanged since (size, mtime, ctime). */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

interface Entry {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  hash: string;
}

/** Oldest entries are dropped beyond this. */
const MAX_ENTRIES = 50_000;

/** Where the ft command keeps it: $XDG_CACHE_HOME/ft/hashes.json, else ~/.cache/ft/hashes.json. */
export function defaultHashCachePath(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ft', 'hashes.json');
}

/**
 * Hashes of large local files from earlier sends, so a re-send or a resume does not read the
 * whole file again. ctime is part of the key: any write or utimes() changes it, so a file
 * edited and set back to its old mtime is hashed again. A stale entry could at worst make the
 * header announce an old hash: the receiver then finds a mismatch and the sender hashes anew.
 */
export class HashCache {
  /** Changes since the last save began; one made while a save runs is saved next time. */
  private changes = 0;

  private constructor(
    private readonly file: string,
    private readonly entries: Map<string, Entry>,
  ) {}

  /** An unreadable or corrupt cache is an empty one: it only ever saves work. */
  static async load(file: string): Promise<HashCache> {
    const entries = new Map<string, Entry>();
    try {
      const raw = JSON.parse(await fs.readFile(file, 'utf8')) as unknown;
      if (raw && typeof raw === 'object' && !Array.isArray(raw)) {
        for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
          if (isEntry(value)) entries.set(key, value);
        }
      }
    } catch {
      // Missing or unreadable: start empty.
    }
    return new HashCache(file, entries);
  }

  get(id: FileIdentity): string | undefined {
    const entry = this.entries.get(keyOf(id));
    if (!entry || entry.size !== id.size || entry.mtimeMs !== id.mtimeMs || entry.ctimeMs !== id.ctimeMs) return undefined;
    return entry.hash;
  }

  set(id: FileIdentity, hash: string): void {
    const key = keyOf(id);
    this.entries.delete(key);
    this.entries.set(key, { size: id.size, mtimeMs: id.mtimeMs, ctimeMs: id.ctimeMs, hash });
    while (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.changes += 1;
  }

  /** Writes the cache atomically (temporary file, then rename); failures are ignored. */
  async save(): Promise<void> {
    const changes = this.changes;
    if (changes === 0) return;
    const temporary = `${this.file}.${process.pid}.tmp`;
    try {
      await fs.mkdir(path.dirname(this.file), { recursive: true });
      await fs.writeFile(temporary, JSON.stringify(Object.fromEntries(this.entries)));
      await fs.rename(temporary, this.file);
      this.changes -= changes;
    } catch {
      await fs.unlink(temporary).catch(() => undefined);
    }
  }
}

function keyOf(id: FileIdentity): string {
  return `${id.dev}:${id.ino}`;
}

function isEntry(value: unknown): value is Entry {
  const e = value as Entry;
  return (
    typeof e === 'object' &&
    e !== null &&
    Number.isSafeInteger(e.size) &&
    typeof e.mtimeMs === 'number' &&
    typeof e.ctimeMs === 'number' &&
    typeof e.hash === 'string' &&
    /^xxh64:[0-9a-f]{16}$/.test(e.hash)
  );
}
