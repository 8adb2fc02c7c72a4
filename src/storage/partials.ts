import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { FtError } from '../errors.js';
import { createHasher, type Hasher } from '../hashing.js';
import { dropBytes } from './body-writer.js';
import { isNotFound, lstatIfExists, readRange, type FileHandle, type FileSystem, type OpenFile } from './file-system.js';

/**
 * What identifies a partial upload: its content when the hash is known (a renamed re-send still
 * resumes), else its name and size (a first send, whose hash follows the body). Either way the
 * sender checks the prefix's hash before resuming and the whole file's hash decides at the end.
 */
export interface ContentId {
  size: number;
  hash?: string;
}

export interface PartialMeta extends ContentId {
  filename: string;
  createdAt: string;
}

/** Bodies streamed to disk (over 1 MiB) get a metadata file beside their data (who sent what, since when). */
const METADATA_MIN_BYTES = 1024 * 1024;

const KEY_PATTERN = /^(n?[0-9a-f]{16})-([0-9]+)(~[0-9a-f]{8})?\.(part|json)$/;

export function partialKey(id: ContentId, filename = ''): string {
  if (id.hash !== undefined) return `${id.hash.slice('xxh64:'.length)}-${id.size}`;
  return `n${createHash('sha256').update(filename).digest('hex').slice(0, 16)}-${id.size}`;
}

/**
 * The hidden folder of partial uploads. One process owns an inbox; within it a key is held by
 * at most one connection at a time (a second sender of the same content is told BUSY).
 */
export class PartialStore {
  /** Keys in use, with the connection (any object) holding each. */
  private readonly held = new Map<string, object>();
  /** Content keys by the file name and size in their metadata, for headers without a hash; read from disk once. */
  private named: Map<string, string> | undefined;

  constructor(
    readonly dir: string,
    private readonly fs: FileSystem,
  ) {}

  ensureDir(): void {
    this.fs.mkdirSync(this.dir, { recursive: true });
    const stat = this.fs.lstatSync(this.dir);
    if (!stat.isDirectory()) {
      throw new FtError('UNSAFE_PATH', `${this.dir} must be a real folder, not a link or a file`);
    }
  }

  /**
   * Takes the partial for this content, creating its metadata when new. Undefined (busy) when
   * another owner holds it. When the same owner already holds it (the same content twice in
   * one batch, such as two empty files), the second copy gets a private partial beside the
   * shared one, never offered for resume and removed on release.
   */
  async acquire(id: ContentId, filename: string, owner: object): Promise<Partial | undefined> {
    const shared = (await this.resumable(id, filename, owner)) ?? partialKey(id, filename);
    const holder = this.held.get(shared);
    if (holder !== undefined && holder !== owner) return undefined;
    const key = holder === undefined ? shared : `${shared}~${randomBytes(4).toString('hex')}`;
    this.held.set(key, owner);
    try {
      const partial = new Partial(this, key, id, path.join(this.dir, `${key}.part`), this.fs, key === shared);
      partial.load(filename, path.join(this.dir, `${key}.json`));
      return partial;
    } catch (error) {
      this.held.delete(key);
      throw error;
    }
  }

  /**
   * A partial left by an earlier transfer of this file that was keyed the other way: a header
   * with a hash also looks under the name (the earlier attempt hashed while sending), and one
   * without looks for partials whose metadata names this file and size. The sender checks the
   * prefix's hash before it resumes, so a wrong guess costs a restart, never a wrong file.
   */
  private async resumable(id: ContentId, filename: string, owner: object): Promise<string | undefined> {
    const onDisk = (key: string) => lstatIfExists(this.fs, path.join(this.dir, `${key}.part`))?.isFile();
    const own = partialKey(id, filename);
    // Its own key held by another connection: that sender is told BUSY and resumes once free.
    if (this.held.has(own) || onDisk(own)) return own;
    const other = id.hash !== undefined ? partialKey({ size: id.size }, filename) : (await this.namedPartials()).get(nameAndSize(filename, id.size));
    // A key of the other kind held by another connection may be another file of that name and size: not a reason to wait.
    const holder = other === undefined ? undefined : this.held.get(other);
    return other !== undefined && (holder ?? owner) === owner && onDisk(other) ? other : undefined;
  }

  /** Notes a content-keyed partial's metadata; entries of partials since removed are caught by the check on use. */
  rememberName(filename: string, size: number, key: string): void {
    this.named?.set(nameAndSize(filename, size), key);
  }

  private async namedPartials(): Promise<Map<string, string>> {
    if (this.named) return this.named;
    let names: string[];
    try {
      names = this.fs.readdirSync(this.dir) as string[];
    } catch {
      return new Map(); // unreadable now: no partial found this way, and the next header tries again
    }
    // In place before the reads below, so that metadata written meanwhile (rememberName) is kept;
    // a lookup during this first build may miss, which costs a restart, never a wrong file.
    const named = (this.named = new Map<string, string>());
    for (const name of names) {
      const match = KEY_PATTERN.exec(name);
      if (!match || match[3] || match[4] !== 'json' || match[1]!.startsWith('n')) continue;
      const meta = await this.fs.readFile(path.join(this.dir, name), 'utf8').then(
        (text) => JSON.parse(text) as { filename?: unknown },
        () => undefined,
      );
      if (typeof meta?.filename !== 'string') continue;
      // An entry noted meanwhile is newer than what was on disk.
      const byName = nameAndSize(meta.filename, Number(match[2]));
      if (!named.has(byName)) named.set(byName, `${match[1]}-${match[2]}`);
    }
    return named;
  }

  release(key: string): void {
    this.held.delete(key);
  }

  /** Deletes partials untouched for `ttlMs`; only files named like our own, only in our folder. */
  expire(ttlMs: number, now = Date.now()): string[] {
    const removed: string[] = [];
    let names: string[];
    try {
      names = this.fs.readdirSync(this.dir) as string[];
    } catch (error) {
      if (isNotFound(error)) return removed;
      throw error;
    }
    for (const name of names) {
      const match = KEY_PATTERN.exec(name);
      if (!match || this.held.has(`${match[1]}-${match[2]}${match[3] ?? ''}`)) continue;
      const file = path.join(this.dir, name);
      try {
        const stat = this.fs.lstatSync(file);
        if (!stat.isFile() || now - stat.mtimeMs < ttlMs) continue;
        this.fs.unlinkSync(file);
        removed.push(name);
      } catch {
        // Gone meanwhile, or not ours to delete: the next sweep looks again.
      }
    }
    return removed;
  }
}

/** One partial upload, held by one connection from its header until it is placed or released. */
export class Partial {
  /** Bytes already held: the offset the receiver offers (the receiver is the authority on it). */
  offset = 0;
  private metaPath = '';
  private filename = '';

  constructor(
    private readonly store: PartialStore,
    readonly key: string,
    readonly id: ContentId,
    readonly dataPath: string,
    private readonly fs: FileSystem,
    /** False for a private copy, which is never resumed. */
    readonly shared = true,
  ) {}

  load(filename: string, metaPath: string): void {
    this.metaPath = metaPath;
    this.filename = filename;
    const stat = lstatIfExists(this.fs, this.dataPath);
    if (stat && (!stat.isFile() || stat.size > this.id.size)) {
      // Not something we could have written for this content: start over.
      this.fs.unlinkSync(this.dataPath);
    } else if (stat) {
      this.offset = stat.size;
    }
  }

  /** Hashes the bytes held so far; the hasher goes on to take the rest of the body. */
  async hashPrefix(): Promise<{ hasher: Hasher; prefixHash: string }> {
    const hasher = await createHasher();
    if (this.offset > 0) {
      const handle = await this.fs.open(this.dataPath, 'r');
      try {
        const read = await readRange(handle, 0, this.offset, (block) => hasher.update(block));
        this.offset = read;
      } finally {
        await handle.close();
      }
    }
    return { hasher, prefixHash: hasher.digest() };
  }

  /**
   * Opens for appending at `from` (the agreed offset, or 0 to discard what was held). Nothing
   * is written to disk for a header alone: metadata appears with the first body.
   */
  async openForWrite(from: number): Promise<FileHandle> {
    // A small body arrives in one go: its metadata would be created and deleted at once.
    const worthMeta = this.id.size - from > METADATA_MIN_BYTES;
    if (worthMeta && (from === 0 || !lstatIfExists(this.fs, this.metaPath))) {
      const meta: PartialMeta = { filename: this.filename, size: this.id.size, hash: this.id.hash, createdAt: new Date().toISOString() };
      await this.fs.writeFile(this.metaPath, JSON.stringify(meta) + '\n').catch(async (error) => {
        // A full disk can leave an empty metadata file behind: remove it before giving up.
        try {
          this.fs.unlinkSync(this.metaPath);
        } catch {
          // The write's own error is the one to report.
        }
        throw error;
      });
      if (this.shared && !this.key.startsWith('n')) this.store.rememberName(this.filename, this.id.size, this.key);
    }
    if (from === 0) {
      return this.fs.open(this.dataPath, 'w');
    }
    const handle = await this.fs.open(this.dataPath, 'r+');
    try {
      await handle.truncate(from);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle;
  }

  /**
   * Writes a small body (everything from `from` to the end) in one go with synchronous calls,
   * and returns the file still open, for fsync: a thread-pool round trip per call would cost
   * more than the writing itself.
   */
  writeRest(from: number, chunks: Buffer[]): OpenFile {
    const { fs } = this;
    const fd = fs.openSync(this.dataPath, from === 0 ? 'w' : 'r+');
    try {
      if (from > 0) fs.ftruncateSync(fd, from);
      let pending = chunks;
      let at = from;
      while (pending.length > 0) {
        const written = fs.writevSync(fd, pending, at);
        if (written === 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
        at += written;
        pending = dropBytes(pending, written);
      }
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    let open = true;
    return {
      sync: () => new Promise<void>((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(error) : resolve()))),
      // Idempotent: closing a descriptor number twice could close a file opened meanwhile.
      close: async () => {
        if (!open) return;
        // Marked first: Linux releases the number even when close() fails, and it may be reused.
        open = false;
        fs.closeSync(fd);
      },
    };
  }

  /** Removes the data and metadata (after placing the file, or when the content proved wrong). */
  discard(): void {
    unlinkIfExists(this.fs, this.dataPath);
    unlinkIfExists(this.fs, this.metaPath);
  }

  forgetMeta(): void {
    if (this.id.size <= METADATA_MIN_BYTES) return; // never had one
    unlinkIfExists(this.fs, this.metaPath);
  }

  /** Lets others use the content again; a private copy's leftovers are deleted. */
  release(): void {
    this.store.release(this.key);
    if (this.shared) return;
    try {
      this.discard();
    } catch {
      // A leftover private copy is removed by the partial sweep.
    }
  }
}

function nameAndSize(filename: string, size: number): string {
  return `${size}/${filename}`;
}

function unlinkIfExists(fs: FileSystem, file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}
