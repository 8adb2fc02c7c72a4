import { constants, type Stats } from 'node:fs';
import path from 'node:path';
import { FtError } from '../../errors.js';
import { isNotFound, lstatIfExists, type FileSystem } from '../../file-system.js';

const { O_RDONLY } = constants;
// Absent on Windows, which has no /proc either: the tree then works on paths.
const O_DIRECTORY = constants.O_DIRECTORY ?? 0;
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const OPEN_FOLDER = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;

/** Folders ft creates in the inbox: never writable by others, whatever the umask. */
export const FOLDER_MODE = 0o755;

/** Folder handles kept open between placements besides the root's (a batch mostly fills one folder). */
const MAX_CACHED_FOLDERS = 4;

/**
 * One folder of the inbox. With handles, it is an open descriptor and `entry(name)` reaches
 * `name` inside exactly that folder (Linux's `/proc/self/fd/<fd>/<name>`, the openat() that
 * Node lacks), wherever the folder has been moved or whatever replaced its path since it was
 * opened. Without handles it is a path, checked by lstat.
 */
export class Folder {
  private refs = 1;

  constructor(
    private readonly fs: FileSystem,
    /** Its place below the root, `/`-separated ('' for the root). */
    readonly rel: string,
    readonly dev: number,
    readonly ino: number,
    private readonly fd: number | undefined,
    private readonly dirPath: string,
  ) {}

  /** A short path naming `name` inside this folder, for one system call. */
  entry(name: string): string {
    return this.fd === undefined ? path.join(this.dirPath, name) : `/proc/self/fd/${this.fd}/${name}`;
  }

  /** The folder itself, as a path. */
  self(): string {
    return this.fd === undefined ? this.dirPath : `/proc/self/fd/${this.fd}`;
  }

  get handle(): number | undefined {
    return this.fd;
  }

  retain(): this {
    this.refs++;
    return this;
  }

  /** The descriptor closes with the last user: a number closed early could name a file opened meanwhile. */
  release(): void {
    if (--this.refs > 0 || this.fd === undefined) return;
    try {
      this.fs.closeSync(this.fd);
    } catch {
      // Nothing left to do with it.
    }
  }
}

export type Step =
  | { kind: 'folder'; folder: Folder; created: boolean }
  | { kind: 'missing' }
  | { kind: 'link' }
  | { kind: 'not-a-folder' };

export type RootState = 'same' | 'missing' | 'link' | 'not-a-folder' | 'other-folder';

/**
 * The inbox's folders, walked one component at a time from the root's handle: each folder is
 * opened with O_DIRECTORY|O_NOFOLLOW relative to its parent's handle, so a folder swapped for
 * a symbolic link is never followed, and each walk costs a few system calls per component on
 * short paths. Where /proc/self/fd does not reach into folders (other systems, memfs), the tree
 * falls back to paths: lstat per component, and a check after placement (Inbox.checkLanded).
 */
export class FolderTree {
  private readonly cache = new Map<string, Folder>();
  private readonly syncs = new Map<string, { running: Promise<void>; queued?: Promise<void> }>();

  private constructor(
    private readonly fs: FileSystem,
    readonly rootPath: string,
    private rootFolder: Folder,
    readonly mode: 'handles' | 'paths',
  ) {}

  /** Opens the root; `allowHandles: false` forces the path fallback (tests). */
  static open(fs: FileSystem, rootPath: string, allowHandles = true): FolderTree {
    const handles = allowHandles ? openHandle(fs, rootPath) : undefined;
    if (handles) return new FolderTree(fs, rootPath, new Folder(fs, '', handles.stat.dev, handles.stat.ino, handles.fd, rootPath), 'handles');
    const stat = fs.lstatSync(rootPath);
    if (!stat.isDirectory()) throw new FtError('UNSAFE_PATH', 'the inbox is not a folder');
    return new FolderTree(fs, rootPath, new Folder(fs, '', stat.dev, stat.ino, undefined, rootPath), 'paths');
  }

  /** The root folder, retained: release it when done. */
  root(): Folder {
    return this.rootFolder.retain();
  }

  rootStat(): Stats {
    const fd = this.rootFolder.handle;
    return fd === undefined ? this.fs.lstatSync(this.rootPath) : this.fs.fstatSync(fd);
  }

  /** Whether the root's path still names the folder opened (one lstat). */
  rootState(): RootState {
    const stat = lstatIfExists(this.fs, this.rootPath);
    if (!stat) return 'missing';
    if (stat.isSymbolicLink()) return 'link';
    if (!stat.isDirectory()) return 'not-a-folder';
    return stat.dev === this.rootFolder.dev && stat.ino === this.rootFolder.ino ? 'same' : 'other-folder';
  }

  /** Creates the root again after it was deleted (its parent fsync'd) and opens it. */
  async recreateRoot(): Promise<void> {
    try {
      this.fs.mkdirSync(this.rootPath, { mode: FOLDER_MODE });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const parent = path.dirname(this.rootPath);
    await this.syncPath(parent);
    const handles = this.mode === 'handles' ? openHandle(this.fs, this.rootPath) : undefined;
    let folder: Folder;
    if (handles) folder = new Folder(this.fs, '', handles.stat.dev, handles.stat.ino, handles.fd, this.rootPath);
    else {
      const stat = this.fs.lstatSync(this.rootPath);
      if (!stat.isDirectory()) throw new FtError('UNSAFE_PATH', 'the inbox folder was replaced while it was created again');
      folder = new Folder(this.fs, '', stat.dev, stat.ino, undefined, this.rootPath);
    }
    const old = this.rootFolder;
    this.rootFolder = folder;
    old.release();
    this.forgetCached();
  }

  /**
   * One component down from `parent`. With handles, the open itself refuses links and files
   * (O_NOFOLLOW|O_DIRECTORY) and what it opens is what is used: nothing can be swapped between
   * a check and the use. `create` makes a missing folder through the parent's handle.
   */
  step(parent: Folder, name: string, create: boolean): Step {
    const rel = parent.rel === '' ? name : `${parent.rel}/${name}`;
    const at = parent.entry(name);
    if (this.mode === 'paths') {
      let stat = lstatIfExists(this.fs, at);
      let created = false;
      if (!stat) {
        if (!create) return { kind: 'missing' };
        created = this.makeFolder(at);
        stat = this.fs.lstatSync(at);
      }
      if (stat.isSymbolicLink()) return { kind: 'link' };
      if (!stat.isDirectory()) return { kind: 'not-a-folder' };
      return { kind: 'folder', folder: new Folder(this.fs, rel, stat.dev, stat.ino, undefined, at), created };
    }
    let created = false;
    // A second round only after creating the folder, or when what blocked the open is gone.
    for (let round = 0; round < 3; round++) {
      let fd: number;
      try {
        fd = this.fs.openSync(at, OPEN_FOLDER);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') {
          if (!create) return { kind: 'missing' };
          created = this.makeFolder(at) || created;
          continue;
        }
        if (code !== 'ENOTDIR' && code !== 'ELOOP') throw error;
        const stat = lstatIfExists(this.fs, at);
        if (stat?.isSymbolicLink()) return { kind: 'link' };
        if (stat && !stat.isDirectory()) return { kind: 'not-a-folder' };
        continue; // swapped back meanwhile: open again
      }
      const stat = this.fs.fstatSync(fd);
      if (!stat.isDirectory()) {
        this.fs.closeSync(fd);
        return { kind: 'not-a-folder' };
      }
      return { kind: 'folder', folder: new Folder(this.fs, rel, stat.dev, stat.ino, fd, path.join(this.rootPath, rel)), created };
    }
    throw new FtError('UNSAFE_PATH', `${rel} in the inbox keeps changing while it is opened`);
  }

  /**
   * A folder opened earlier for this place below the root, retained, if it is still there: the
   * kernel's name for its handle (readlink of /proc/self/fd/<fd>, one call) must be exactly
   * the root's path and `rel`, so a folder since moved or deleted is walked to again.
   */
  cached(rel: string): Folder | undefined {
    const folder = this.cache.get(rel);
    if (!folder) return undefined;
    this.cache.delete(rel);
    let where: string | undefined;
    try {
      where = this.fs.readlinkSync(folder.self());
    } catch {
      where = undefined;
    }
    if (where !== path.join(this.rootPath, rel)) {
      folder.release();
      return undefined;
    }
    this.cache.set(rel, folder); // most recently used last
    return folder.retain();
  }

  remember(folder: Folder): void {
    if (this.mode !== 'handles' || folder.rel === '' || this.cache.has(folder.rel)) return;
    this.cache.set(folder.rel, folder.retain());
    for (const [rel, oldest] of this.cache) {
      if (this.cache.size <= MAX_CACHED_FOLDERS) break;
      this.cache.delete(rel);
      oldest.release();
    }
  }

  forgetCached(): void {
    for (const folder of this.cache.values()) folder.release();
    this.cache.clear();
  }

  /** Closes every handle (the receiver is closing). */
  close(): void {
    this.forgetCached();
    this.rootFolder.release();
  }

  /**
   * fsyncs a folder through its handle. Placements into one folder at the same time share one
   * fsync: a caller waits for a sync that starts after its own change.
   */
  sync(folder: Folder): Promise<void> {
    const key = `${folder.dev}:${folder.ino}`;
    const entry = this.syncs.get(key);
    if (!entry) {
      const running = this.fsyncFolder(folder.retain()).finally(() => this.afterSync(key));
      this.syncs.set(key, { running });
      return running;
    }
    if (!entry.queued) {
      const held = folder.retain();
      entry.queued = entry.running.catch(() => undefined).then(() => this.fsyncFolder(held));
    }
    return entry.queued;
  }

  private afterSync(key: string): void {
    const entry = this.syncs.get(key);
    if (!entry?.queued) {
      this.syncs.delete(key);
      return;
    }
    const running = entry.queued.finally(() => this.afterSync(key));
    this.syncs.set(key, { running });
  }

  /** Syncs and releases `folder`. */
  private async fsyncFolder(folder: Folder): Promise<void> {
    try {
      const fd = folder.handle;
      if (fd === undefined) return await this.syncPath(folder.self());
      await fsyncFd(this.fs, fd);
    } finally {
      folder.release();
    }
  }

  private async syncPath(dir: string): Promise<void> {
    const fd = this.fs.openSync(dir, 'r');
    try {
      await fsyncFd(this.fs, fd);
    } finally {
      this.fs.closeSync(fd);
    }
  }

  /** mkdir that tolerates losing a race; true when this call made it. */
  private makeFolder(at: string): boolean {
    try {
      this.fs.mkdirSync(at, { mode: FOLDER_MODE });
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
  }
}

/**
 * The root's handle, if /proc/self/fd reaches into it: what the kernel finds through the
 * descriptor's entry must be the folder opened. Undefined means "no handles here".
 */
function openHandle(fs: FileSystem, rootPath: string): { fd: number; stat: Stats } | undefined {
  if (O_DIRECTORY === 0 || O_NOFOLLOW === 0) return undefined;
  let fd: number;
  try {
    fd = fs.openSync(rootPath, OPEN_FOLDER);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ELOOP') throw new FtError('UNSAFE_PATH', 'the inbox is not a folder');
    if (isNotFound(error)) throw error;
    return undefined;
  }
  try {
    const stat = fs.fstatSync(fd);
    const through = fs.statSync(`/proc/self/fd/${fd}/.`);
    if (stat.isDirectory() && through.dev === stat.dev && through.ino === stat.ino) return { fd, stat };
  } catch {
    // No /proc (or not this kind of descriptor): paths it is.
  }
  fs.closeSync(fd);
  return undefined;
}

function fsyncFd(fs: FileSystem, fd: number): Promise<void> {
  return new Promise((resolve, reject) =>
    fs.fsync(fd, (error) => {
      // Some file systems cannot fsync a folder; the data itself is already synced.
      if (error && !['EINVAL', 'EISDIR', 'EBADF', 'ENOTSUP'].includes(error.code ?? '')) reject(error);
      else resolve();
    }),
  );
}
