import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { FtError } from '../errors.js';
import { createHasher } from '../hashing.js';
import { PARTIAL_DIR } from '../names/safe-name.js';
import { lstatIfExists, readRange, type FileSystem } from './file-system.js';
import { PartialStore, type ContentId, type Partial, type PartialLimitOptions } from './partials.js';

/** What to do when a different file already has the name: keep both, replace it, or refuse. */
export type ConflictPolicy = 'rename' | 'overwrite' | 'reject';
export const CONFLICT_POLICIES: readonly ConflictPolicy[] = ['rename', 'overwrite', 'reject'];

/** link() errors that mean "this file system has no hard links", not "something is wrong". */
const LINK_UNSUPPORTED = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

/** How many `name (n).ext` variants are tried before giving up. */
const MAX_RENAME_ATTEMPTS = 1000;

export type TargetState =
  | { kind: 'free' }
  /** A file of the same size has the name, and only the content's hash can tell if it is this one. */
  | { kind: 'needs-hash' }
  | { kind: 'identical'; path: string }
  | { kind: 'conflict'; reason: string };

/**
 * The receiving folder: finished files under their names, partial uploads in a hidden folder.
 * Paths handed in are validated components (see parseSafeName); this class adds the checks that
 * need the disk: no symbolic link or file on the way, no silent overwrite.
 */
export class Inbox {
  readonly partials: PartialStore;
  private readonly hashCache = new Map<string, Promise<string>>();
  /** Per folder: the fsync running now, and the one queued to start after it. */
  private readonly dirSyncs = new Map<string, { running: Promise<void>; queued?: Promise<void> }>();

  private constructor(
    readonly root: string,
    private readonly fs: FileSystem,
    readonly policy: ConflictPolicy,
    partialLimits: PartialLimitOptions = {},
  ) {
    this.partials = new PartialStore(path.join(root, PARTIAL_DIR), fs, partialLimits);
  }

  /** Creates the folder if needed; the root itself may be a link, resolved once here. */
  static async open(dir: string, fs: FileSystem, policy: ConflictPolicy, partialLimits: PartialLimitOptions = {}): Promise<Inbox> {
    fs.mkdirSync(dir, { recursive: true });
    const root = fs.realpathSync(dir);
    const inbox = new Inbox(root, fs, policy, partialLimits);
    inbox.partials.ensureDir();
    return inbox;
  }

  /** Decides, before any body byte, whether this content can land under this name. */
  async inspect(components: string[], id: ContentId): Promise<TargetState> {
    this.checkParents(components, false);
    const candidates = this.policy === 'rename' ? renameCandidates(components) : [components];
    for (const candidate of candidates) {
      const state = await this.compare(candidate, id);
      if (state === 'missing') return { kind: 'free' };
      if (state === 'identical') return { kind: 'identical', path: candidate.join('/') };
      if (state === 'needs-hash') return { kind: 'needs-hash' };
      if (this.policy === 'reject') return { kind: 'conflict', reason: `a different file named ${candidate.join('/')} exists` };
      if (this.policy === 'overwrite') {
        if (state === 'not-a-file') return { kind: 'conflict', reason: `${candidate.join('/')} exists and is not a regular file` };
        return { kind: 'free' };
      }
    }
    return { kind: 'conflict', reason: `no free name after ${MAX_RENAME_ATTEMPTS} attempts` };
  }

  /**
   * Moves a complete, verified, fsync'd partial to its final name and returns the name used.
   * link() refuses to replace an existing name, which makes "keep both" and "reject" atomic.
   */
  async place(partial: Partial, components: string[]): Promise<string> {
    const created = this.checkParents(components, true);
    partial.forgetMeta();
    const candidates = this.policy === 'rename' ? renameCandidates(components) : [components];
    for (const candidate of candidates) {
      const target = this.pathOf(candidate);
      if (this.policy === 'overwrite') {
        this.refuseLink(target);
        // Land beside the target first and check where that is, so a folder swapped for a link
        // cannot make the rename replace a file outside the inbox.
        const beside = `${target}.ft-${randomBytes(4).toString('hex')}`;
        const landed = this.landNew(partial.dataPath, beside);
        try {
          this.checkLanded(beside);
          this.fs.renameSync(beside, target);
        } catch (error) {
          this.unlinkQuietly(beside);
          throw error;
        }
        if (landed === 'linked') this.fs.unlinkSync(partial.dataPath);
      } else {
        const landed = this.landNew(partial.dataPath, target);
        if (landed === 'taken') {
          if (this.policy === 'reject') throw new FtError('CONFLICT', `a file named ${candidate.join('/')} appeared meanwhile`);
          continue;
        }
        // Checked while the partial still exists: a refusal here loses nothing.
        this.checkLanded(target);
        if (landed === 'linked') this.fs.unlinkSync(partial.dataPath);
      }
      // New folders are durable only once their own parents are synced, too.
      await Promise.all([target, ...created].map((made) => this.syncDir(path.dirname(made))));
      return candidate.join('/');
    }
    throw new FtError('CONFLICT', `no free name for ${components.join('/')} after ${MAX_RENAME_ATTEMPTS} attempts`);
  }

  /**
   * Gives `from` the new name `to` without ever replacing an existing `to`: link() refuses an
   * existing name atomically. File systems without hard links (FAT, exFAT, some network shares)
   * get a check and a rename instead, which a writer racing in the same instant could defeat.
   */
  private landNew(from: string, to: string): 'linked' | 'moved' | 'taken' {
    try {
      this.fs.linkSync(from, to);
      return 'linked';
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (code === 'EEXIST') return 'taken';
      if (!LINK_UNSUPPORTED.has(code)) throw error;
    }
    if (lstatIfExists(this.fs, to)) return 'taken';
    this.fs.renameSync(from, to);
    return 'moved';
  }

  private unlinkQuietly(file: string): void {
    try {
      this.fs.unlinkSync(file);
    } catch {
      // Already gone, or the error that matters is the one being reported.
    }
  }

  private pathOf(components: string[]): string {
    return path.join(this.root, ...components);
  }

  /**
   * Every folder on the way must be a real folder (or not exist yet); `create` makes the missing
   * ones and returns them.
   */
  private checkParents(components: string[], create: boolean): string[] {
    const created: string[] = [];
    let current = this.root;
    for (const component of components.slice(0, -1)) {
      current = path.join(current, component);
      let stat = lstatIfExists(this.fs, current);
      if (!stat && create) {
        try {
          this.fs.mkdirSync(current);
          created.push(current);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        stat = this.fs.lstatSync(current);
      }
      if (!stat) continue;
      const shown = path.relative(this.root, current);
      if (stat.isSymbolicLink()) throw new FtError('UNSAFE_PATH', `${shown} in the inbox is a symbolic link`);
      if (!stat.isDirectory()) throw new FtError('CONFLICT', `${shown} in the inbox is a file, not a folder`);
    }
    return created;
  }

  /**
   * The folders were checked before the link, but one could have been swapped for a symbolic
   * link in between: if the file landed outside the inbox, take it back out and refuse.
   */
  private checkLanded(target: string): void {
    const folder = this.fs.realpathSync(path.dirname(target));
    if (folder === this.root || folder.startsWith(this.root + path.sep)) return;
    this.unlinkQuietly(target);
    throw new FtError('UNSAFE_PATH', `${path.relative(this.root, target)} resolved outside the inbox while it was placed`);
  }

  private refuseLink(target: string): void {
    if (lstatIfExists(this.fs, target)?.isSymbolicLink()) {
      throw new FtError('UNSAFE_PATH', `${path.relative(this.root, target)} in the inbox is a symbolic link`);
    }
  }

  private async compare(components: string[], id: ContentId): Promise<'missing' | 'identical' | 'different' | 'not-a-file' | 'needs-hash'> {
    const target = this.pathOf(components);
    const stat = lstatIfExists(this.fs, target);
    if (!stat) return 'missing';
    if (stat.isSymbolicLink()) throw new FtError('UNSAFE_PATH', `${components.join('/')} in the inbox is a symbolic link`);
    if (!stat.isFile()) return 'not-a-file';
    if (stat.size !== id.size) return 'different';
    if (id.hash === undefined) return 'needs-hash';
    const cacheKey = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    // One hash per file however many connections ask at once (a sender retrying meanwhile, say).
    let hash = this.hashCache.get(cacheKey);
    if (!hash) {
      hash = this.hashFile(target, stat.size);
      this.hashCache.set(cacheKey, hash);
      hash.catch(() => this.hashCache.delete(cacheKey));
    }
    return (await hash) === id.hash ? 'identical' : 'different';
  }

  private async hashFile(file: string, size: number): Promise<string> {
    const hasher = await createHasher();
    const handle = await this.fs.open(file, 'r');
    try {
      await readRange(handle, 0, size, (block) => hasher.update(block));
    } finally {
      await handle.close();
    }
    return hasher.digest();
  }

  /**
   * A rename is durable only once its folder is synced. Renames into one folder at the same time
   * share one fsync: a caller waits for a sync that starts after its own rename.
   */
  private syncDir(dir: string): Promise<void> {
    const entry = this.dirSyncs.get(dir);
    if (!entry) {
      const running = this.fsyncDir(dir).finally(() => this.afterDirSync(dir));
      this.dirSyncs.set(dir, { running });
      return running;
    }
    entry.queued ??= entry.running.catch(() => undefined).then(() => this.fsyncDir(dir));
    return entry.queued;
  }

  private afterDirSync(dir: string): void {
    const entry = this.dirSyncs.get(dir);
    if (!entry?.queued) {
      this.dirSyncs.delete(dir);
      return;
    }
    const running = entry.queued.finally(() => this.afterDirSync(dir));
    this.dirSyncs.set(dir, { running });
  }

  private async fsyncDir(dir: string): Promise<void> {
    const handle = await this.fs.open(dir, 'r');
    try {
      await handle.sync();
    } catch (error) {
      // Some file systems cannot fsync a folder; the data itself is already synced.
      if (!['EINVAL', 'EISDIR', 'EBADF'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
    } finally {
      await handle.close();
    }
  }
}

/** `a/b.tar.gz`, `a/b (1).tar.gz`, `a/b (2).tar.gz`, … */
function* renameCandidates(components: string[]): Generator<string[]> {
  yield components;
  const last = components.at(-1)!;
  const dot = last.indexOf('.', 1);
  const stem = dot === -1 ? last : last.slice(0, dot);
  const ext = dot === -1 ? '' : last.slice(dot);
  for (let n = 1; n < MAX_RENAME_ATTEMPTS; n++) yield [...components.slice(0, -1), `${stem} (${n})${ext}`];
}
