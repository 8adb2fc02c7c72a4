import { constants } from 'node:fs';
import path from 'node:path';
import { FtError } from '../../errors.js';
import { PARTIAL_DIR, parseSafeName } from '../../names/safe-name.js';
import { isNotFound, lstatIfExists, type FileSystem } from '../../file-system.js';
import { Folder, FOLDER_MODE, FolderTree } from './folder-tree.js';
import { folderSuffix, MAX_RENAME_ATTEMPTS, nameVariants, newVariantKey, randomSuffix } from './inbox-names.js';
import { refuseSharedInbox } from './inbox-permissions.js';
import { PartialStore, type Partial, type PartialLimitOptions } from './partials.js';
import { ComparisonTurns, identityOf, sameBytes, type FileIdentity } from './same-content.js';

export type { FileIdentity } from './same-content.js';

import type { ConflictPolicy } from '../conflict-policy.js';

export { CONFLICT_POLICIES, type ConflictPolicy } from '../conflict-policy.js';

/** link() errors that mean "this file system has no hard links", not "something is wrong". */
const LINK_UNSUPPORTED: ReadonlySet<string> = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

/** Walks and placements tried when the target folder is removed in between. */
const MAX_PLACEMENT_ATTEMPTS = 3;

/** Same-size files under rename's candidates compared byte for byte, per placement. */
const MAX_COMPARED_CANDIDATES = 4;

/** Temporary names tried beside a target under `overwrite` before giving up. */
const MAX_TEMPORARY_ATTEMPTS = 16;

const OPEN_PARTIAL = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

/** What the header may learn before its body: nothing about content, only what the policy must refuse. */
export type TargetState = { kind: 'free' } | { kind: 'conflict'; reason: string };

/** Where a placed upload ended up. */
export interface Placed {
  /** Relative to the inbox, `/`-separated. */
  path: string;
  /** An identical file already had this name (under `rename`): the upload was dropped. */
  deduplicated: boolean;
  /** The file under `path` once placement was complete. */
  identity: FileIdentity;
}

export interface InboxOptions {
  /** False forces the path fallback used where /proc/self/fd is missing (tests). */
  folderHandles?: boolean;
  /** Caps on the partial uploads kept (see PartialStore). */
  partialLimits?: PartialLimitOptions;
}

/** The folder that holds the name's last component, and the folders to fsync after placing. */
interface Walked {
  folder: Folder;
  names: string[];
  /** Parents of folders created on the way: their new entries must be synced, too. */
  parentsOfCreated: Folder[];
}

/**
 * The receiving folder: finished files under their names, partial uploads in a hidden folder.
 * Paths handed in are validated components (see parseSafeName); this class adds the checks that
 * need the disk. Every folder is reached through the handle of its parent (FolderTree), never
 * through a symbolic link; nothing is replaced silently, and before its body a peer learns no
 * more than the policy must say (see inspect).
 */
export class Inbox {
  readonly partials: PartialStore;
  /** Keys the suffixed variants of folder components (see folderSuffix). */
  private readonly variantKey = newVariantKey();
  /** Byte comparisons for dedupe running at once, for this inbox only. */
  private readonly comparisons = new ComparisonTurns();

  private constructor(
    readonly root: string,
    private readonly fs: FileSystem,
    readonly policy: ConflictPolicy,
    private readonly tree: FolderTree,
    partialLimits: PartialLimitOptions = {},
  ) {
    this.partials = new PartialStore(path.join(root, PARTIAL_DIR), fs, partialLimits);
  }

  /**
   * Creates the folder if needed (never writable by others); the root itself may be a link,
   * resolved once here. Refuses a root other users can write to (unless sticky) or own.
   */
  static async open(dir: string, fs: FileSystem, policy: ConflictPolicy, options: InboxOptions = {}): Promise<Inbox> {
    fs.mkdirSync(dir, { recursive: true, mode: FOLDER_MODE });
    const root = fs.realpathSync(dir);
    const tree = FolderTree.open(fs, root, options.folderHandles ?? true);
    try {
      refuseSharedInbox(tree.rootStat(), root);
      const inbox = new Inbox(root, fs, policy, tree, options.partialLimits);
      inbox.partials.ensureDir();
      return inbox;
    } catch (error) {
      tree.close();
      throw error;
    }
  }

  /** 'handles' where folders are walked through descriptors, 'paths' for the fallback. */
  get folderMode(): 'handles' | 'paths' {
    return this.tree.mode;
  }

  close(): void {
    this.tree.close();
  }

  /**
   * Decides, before any body byte, whether the name can be used. It never looks at content or
   * sizes, so a header alone cannot probe the inbox: under `rename` nothing is refused and
   * nothing below the root is looked at (a taken name, or a file or link where a folder is
   * needed, gets a variant at placement, and variants never run out: see nameVariants);
   * under `reject` a taken name is a conflict, and under `overwrite` a name that is not a
   * regular file is, which tells the peer that the name exists (the policy's nature).
   */
  async inspect(components: string[]): Promise<TargetState> {
    await this.ensureOwnFolders(true);
    if (this.policy === 'rename') return { kind: 'free' };
    const walked = this.walk(components, false);
    if (!walked) return { kind: 'free' };
    const { folder, names } = walked;
    try {
      const last = components.at(-1)!;
      const shown = [...names, last].join('/');
      const stat = lstatIfExists(this.fs, folder.entry(last));
      if (!stat) return { kind: 'free' };
      if (stat.isSymbolicLink()) throw new FtError('UNSAFE_PATH', `${shown} in the inbox is a symbolic link`);
      if (this.policy === 'reject') return { kind: 'conflict', reason: `a file named ${shown} exists` };
      if (!stat.isFile()) return { kind: 'conflict', reason: `${shown} exists and is not a regular file` };
      return { kind: 'free' };
    } finally {
      folder.release();
    }
  }

  /**
   * Moves a complete, verified, fsync'd partial to its final name. link() refuses to replace an
   * existing name, which makes "keep both" and "reject" atomic. Under `rename`, a candidate that
   * holds a regular file of the same size is compared byte for byte with the partial: identical
   * content is not stored twice (the partial is dropped, `deduplicated`).
   */
  async place(partial: Partial, components: string[]): Promise<Placed> {
    await this.ensureOwnFolders(false);
    const data = this.openPartial(partial);
    try {
      for (let attempt = 1; ; attempt++) {
        let walked: Walked | undefined;
        try {
          walked = this.walk(components, true)!;
          if (attempt === 1) partial.forgetMeta();
          const placed =
            this.policy === 'overwrite'
              ? this.overwrite(partial, walked, components.at(-1)!, data.fd)
              : await this.placeNew(partial, walked, components.at(-1)!, data.fd);
          // New folders are durable only once their own parents are synced, too.
          await Promise.all([walked.folder, ...walked.parentsOfCreated].map((folder) => this.tree.sync(folder)));
          return placed;
        } catch (error) {
          // A folder was removed while it was walked or after it was opened (the partial is still there): walk again.
          if (!isNotFound(error) || !lstatIfExists(this.fs, partial.dataPath)) throw error;
          if (attempt === MAX_PLACEMENT_ATTEMPTS) {
            throw new FtError('WRITE_FAILED', `the folder of ${components.join('/')} kept disappearing while the file was placed`);
          }
        } finally {
          if (walked) for (const folder of [walked.folder, ...walked.parentsOfCreated]) folder.release();
        }
      }
    } finally {
      this.fs.closeSync(data.fd);
    }
  }

  /**
   * Creates the folder `components` and every one on the way, through the same walk as a file's
   * folders (never through a symbolic link; under `rename` a file or link in the way gives a
   * variant, the other policies refuse it); a folder already there is fine. Returns where it
   * is, relative to the inbox, once the new entries are durable.
   */
  async makeFolder(components: string[]): Promise<string> {
    await this.ensureOwnFolders(false);
    // walk() opens every component but the last: the folder itself is the last one opened.
    const walked = this.walk([...components, ''], true)!;
    try {
      // The paths fallback must not report a folder that a swapped parent put outside.
      if (this.tree.mode === 'paths') this.checkInside(walked.folder, walked.names.join('/'));
      await Promise.all([walked.folder, ...walked.parentsOfCreated].map((folder) => this.tree.sync(folder)));
      return walked.names.join('/');
    } finally {
      for (const folder of [walked.folder, ...walked.parentsOfCreated]) folder.release();
    }
  }

  /**
   * The identity of the regular file at `relative` (a path place() returned), walked through
   * folder handles without following links; undefined when there is none.
   */
  statPlaced(relative: string): FileIdentity | undefined {
    let components: string[];
    try {
      components = parseSafeName(relative);
    } catch {
      return undefined;
    }
    if (this.tree.rootState() !== 'same') return undefined;
    let folder = this.tree.root();
    try {
      for (const name of components.slice(0, -1)) {
        const step = this.tree.step(folder, name, false);
        if (step.kind !== 'folder') return undefined;
        folder.release();
        folder = step.folder;
      }
      const stat = lstatIfExists(this.fs, folder.entry(components.at(-1)!));
      return stat?.isFile() ? identityOf(stat) : undefined;
    } finally {
      folder.release();
    }
  }

  /** Under `rename` and `reject`: a name nobody has, or (rename) a copy of the same bytes. */
  private async placeNew(partial: Partial, walked: Walked, last: string, fd: number): Promise<Placed> {
    const { folder, names } = walked;
    const size = partial.size;
    const candidates = this.policy === 'rename' ? nameVariants(last) : [last];
    let compared = 0;
    for (const candidate of candidates) {
      const target = folder.entry(candidate);
      const shown = [...names, candidate].join('/');
      const landed = this.landNew(partial.dataPath, target);
      if (landed !== 'taken') return this.finishPlacement(partial, folder, candidate, shown, landed, fd);
      if (this.policy === 'reject') throw new FtError('CONFLICT', `a file named ${shown} appeared meanwhile`);
      const stat = lstatIfExists(this.fs, target);
      // A few comparisons at most: uploads of one name and size sharing a long prefix must not
      // make each placement read every earlier variant (dedupe is a saving, not a guarantee).
      if (!stat?.isFile() || stat.size !== size || compared >= MAX_COMPARED_CANDIDATES) continue;
      compared++;
      const same = await sameBytes(this.fs, this.comparisons, target, partial.dataPath, size);
      if (!same) continue;
      // The paths fallback must not report a file that a swapped folder put outside.
      if (this.tree.mode === 'paths') this.checkInside(folder, shown);
      partial.discard();
      return { path: shown, deduplicated: true, identity: same };
    }
    throw new FtError('CONFLICT', `no free name for ${[...names, last].join('/')} after ${MAX_RENAME_ATTEMPTS} attempts`);
  }

  /**
   * Under `overwrite`: lands beside the target first, under a temporary name that link()
   * creates only if nobody has it, then renames it over the target.
   */
  private overwrite(partial: Partial, walked: Walked, last: string, fd: number): Placed {
    const { folder, names } = walked;
    const shown = [...names, last].join('/');
    const existing = lstatIfExists(this.fs, folder.entry(last));
    if (existing?.isSymbolicLink()) throw new FtError('UNSAFE_PATH', `${shown} in the inbox is a symbolic link`);
    if (existing && !existing.isFile()) throw new FtError('CONFLICT', `${shown} exists and is not a regular file`);
    for (let attempt = 0; attempt < MAX_TEMPORARY_ATTEMPTS; attempt++) {
      const beside = temporaryName(last);
      const landed = this.landNew(partial.dataPath, folder.entry(beside));
      if (landed === 'taken') continue;
      this.checkLink(partial, folder, beside, fd, landed);
      try {
        this.fs.renameSync(folder.entry(beside), folder.entry(last));
      } catch (error) {
        this.takeBack(partial, folder, beside, landed);
        throw error;
      }
      return this.complete(partial, landed, shown, fd);
    }
    throw new FtError('CONFLICT', `no free temporary name beside ${shown} after ${MAX_TEMPORARY_ATTEMPTS} attempts`);
  }

  private finishPlacement(partial: Partial, folder: Folder, name: string, shown: string, landed: 'linked' | 'moved', fd: number): Placed {
    // Checked while the partial still exists: a refusal here loses nothing.
    this.checkLink(partial, folder, name, fd, landed);
    return this.complete(partial, landed, shown, fd);
  }

  /** The partial's own link goes last; the identity is taken after it (ctime follows the link count). */
  private complete(partial: Partial, landed: 'linked' | 'moved', shown: string, fd: number): Placed {
    if (landed === 'linked') this.fs.unlinkSync(partial.dataPath);
    return { path: shown, deduplicated: false, identity: identityOf(this.fs.fstatSync(fd)) };
  }

  /**
   * After a link (or, without hard links, a rename): the new name must be our partial's file,
   * and, in the path fallback, inside the inbox. Otherwise it is taken back and refused.
   */
  private checkLink(partial: Partial, folder: Folder, name: string, fd: number, landed: 'linked' | 'moved'): void {
    const shown = folder.rel === '' ? name : `${folder.rel}/${name}`;
    try {
      if (this.tree.mode === 'paths') this.checkInside(folder, shown);
      const ours = this.fs.fstatSync(fd);
      const there = lstatIfExists(this.fs, folder.entry(name));
      if (there?.dev !== ours.dev || there.ino !== ours.ino) throw new FtError('UNSAFE_PATH', `${shown} was changed while it was placed`);
    } catch (error) {
      this.takeBack(partial, folder, name, landed);
      throw error;
    }
  }

  /** Undoes a landing: a second link is removed; a moved partial (no hard links) goes back, so a refusal loses nothing. */
  private takeBack(partial: Partial, folder: Folder, name: string, landed: 'linked' | 'moved'): void {
    try {
      if (landed === 'linked') this.fs.unlinkSync(folder.entry(name));
      else this.fs.renameSync(folder.entry(name), partial.dataPath);
    } catch {
      // Already gone; the error that matters is the one being reported.
    }
  }

  /**
   * The path fallback checked the folders before the link, but one could have been swapped for
   * a symbolic link in between: if the file landed outside the inbox, refuse.
   */
  private checkInside(folder: Folder, shown: string): void {
    const real = this.fs.realpathSync(folder.self());
    if (real === this.root || real.startsWith(this.root + path.sep)) return;
    throw new FtError('UNSAFE_PATH', `${shown} resolved outside the inbox while it was placed`);
  }

  /** The partial must be what we wrote: a regular file of the announced size. Opened, so its identity is known to the end. */
  private openPartial(partial: Partial): { fd: number } {
    const fd = this.fs.openSync(partial.dataPath, OPEN_PARTIAL);
    const stat = this.fs.fstatSync(fd);
    if (!stat.isFile() || partial.size === undefined || stat.size !== partial.size) {
      this.fs.closeSync(fd);
      throw new FtError('UNSAFE_PATH', 'the partial upload is not the file that was written');
    }
    return { fd };
  }

  /**
   * The folder of the name's last component, each one opened through its parent. Under
   * `rename`, a component blocked by a file or a link is replaced by its first variant that is
   * a folder or free (`name (1)/x`); a folder's variants are the same for every file in it
   * (their suffixes are derived, not drawn), so all of them land in the same place. The other
   * policies refuse. Without `create`, undefined when a folder on the way is missing.
   */
  private walk(components: string[], create: boolean): Walked | undefined {
    const wanted = components.slice(0, -1);
    const exact = wanted.join('/');
    const cached = exact === '' ? undefined : this.tree.cached(exact);
    if (cached) return { folder: cached, names: wanted, parentsOfCreated: [] };
    let folder = this.tree.root();
    const names: string[] = [];
    const parentsOfCreated: Folder[] = [];
    try {
      for (const component of wanted) {
        const next = this.descend(folder, component, create, [...names, component].join('/'));
        if (!next) {
          folder.release();
          for (const parent of parentsOfCreated) parent.release();
          return undefined;
        }
        if (next.created) parentsOfCreated.push(folder.retain());
        folder.release();
        folder = next.folder;
        names.push(next.name);
      }
    } catch (error) {
      folder.release();
      for (const parent of parentsOfCreated) parent.release();
      throw error;
    }
    if (names.join('/') === exact) this.tree.remember(folder);
    return { folder, names, parentsOfCreated };
  }

  private descend(parent: Folder, component: string, create: boolean, shown: string): { folder: Folder; name: string; created: boolean } | undefined {
    const variants = this.policy === 'rename' ? nameVariants(component, folderSuffix(this.variantKey, parent.rel, component)) : [component];
    for (const name of variants) {
      const step = this.tree.step(parent, name, create);
      if (step.kind === 'folder') return { folder: step.folder, name, created: step.created };
      if (step.kind === 'missing') return undefined;
      if (this.policy === 'rename') continue;
      if (step.kind === 'link') throw new FtError('UNSAFE_PATH', `${shown} in the inbox is a symbolic link`);
      throw new FtError('CONFLICT', `${shown} in the inbox is a file, not a folder`);
    }
    throw new FtError('CONFLICT', `no free folder name for ${shown} after ${MAX_RENAME_ATTEMPTS} attempts`);
  }

  /**
   * The inbox must still be the folder opened at start. Deleted: it is created again (it is
   * ours), and so is .ft-partial. Replaced by a link, a file or another folder: refused, since
   * whoever replaced it chose where files would land, and the folder opened may now be deleted
   * or moved where nobody looks; a restart checks the new folder as at start.
   */
  private async ensureOwnFolders(withPartials: boolean): Promise<void> {
    const state = this.tree.rootState();
    if (state === 'missing') {
      await this.tree.recreateRoot();
      refuseSharedInbox(this.tree.rootStat(), this.root);
    } else if (state === 'link') {
      throw new FtError('UNSAFE_PATH', 'the inbox folder was replaced by a symbolic link while serving; ft serve receives nothing until it is restarted on a real folder');
    } else if (state === 'not-a-folder') {
      throw new FtError('UNSAFE_PATH', 'the inbox folder was replaced by a file while serving; ft serve receives nothing until it is restarted on a real folder');
    } else if (state === 'other-folder') {
      throw new FtError('UNSAFE_PATH', 'the inbox folder was replaced by another folder while serving; restart ft serve to receive into it');
    }
    if (!withPartials && state === 'same') return;
    const root = this.tree.root();
    try {
      if (lstatIfExists(this.fs, root.entry(PARTIAL_DIR))) return;
      this.partials.ensureDir();
      await this.tree.sync(root);
    } finally {
      root.release();
    }
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
}

/** `name.ft-1a2b3c4d` beside the target, or `.ft-1a2b3c4d` where that would be over 255 bytes. */
function temporaryName(last: string): string {
  const suffix = `.ft-${randomSuffix()}`;
  return Buffer.byteLength(last) + suffix.length <= 255 ? `${last}${suffix}` : suffix;
}
