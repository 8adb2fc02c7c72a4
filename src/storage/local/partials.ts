import { createHash, randomBytes } from 'node:crypto';
import nodeFs from 'node:fs';
import path from 'node:path';
import { FtError } from '../../errors.js';
import { createHasher, type Hasher } from '../../hashing.js';
import { Leases, type Lease, type TakeOptions } from '../leases.js';
import { SMALL_BODY_BYTES } from './body-sink.js';
import { dropBytes } from './body-writer.js';
import { hashRange, isNotFound, lstatIfExists, type FileHandle, type FileSystem, type OpenFile } from '../../file-system.js';

/** What the inbox compares a header with: a size, and the content's hash when the header has it. */
export interface ContentId {
  /** Undefined for a stream (see Partial.stream). */
  size: number | undefined;
  hash?: string;
}

/**
 * What identifies an upload, and so its partial: who sends it (the fingerprint of the key the
 * sender proved in its hello: 64 lowercase hex digits), under which name, of which size. The
 * hash, when the header has it, only tells whether a kept partial still holds this content.
 */
export interface UploadId extends ContentId {
  owner: string;
  filename: string;
}

/** The `.json` beside a `.part`: what the key alone does not say (the content's hash, who made it). */
export interface PartialMeta {
  v: 1;
  owner: string;
  filename: string;
  size: number;
  hash?: string;
  /** Address of the peer that created it: what it counts against after a restart (quotas). */
  peer: string;
  createdAt: string;
  /** Created apart from its bytes and kept whatever its size (a tus upload; see AcquireOptions.keep). */
  recorded?: true;
}

/** Caps on the partial uploads kept (see PARTIAL_LIMITS). */
export interface PartialLimits {
  /** Partial uploads kept in all. */
  maxPartials: number;
  /** Partial uploads kept per peer (an IPv4 address, or an IPv6 /64). */
  maxPartialsPerPeer: number;
}

/** Caps to use; the defaults (PARTIAL_LIMITS) for those left out. */
export type PartialLimitOptions = { [K in keyof PartialLimits]?: PartialLimits[K] };

/**
 * 64 per peer: a sender keeps at most 32 headers ahead of its bodies, so two sends from one
 * machine at once fit, each with everything it has in flight. 8192 in all: a receiver takes at
 * most 64 connections (maxConnections), each with at most 64 headers waiting for a body
 * (maxPendingFiles) and 32 files past their body being synced and placed (MAX_FINALIZING), so
 * uploads in use can never fill it alone: at the cap one not in use can always make room, taken
 * from the peer holding the most (see makeRoom). Each costs two inodes on disk and about 200
 * bytes of memory here, whatever the peers do.
 */
export const PARTIAL_LIMITS: Readonly<PartialLimits> = { maxPartials: 8192, maxPartialsPerPeer: 64 };

/** How a partial is taken: `keep` keeps it for resume whatever its size; `existing` takes only one already on disk. */
export interface AcquireOptions extends TakeOptions {
  keep?: boolean;
  existing?: boolean;
}

/** Partials holding less than this are deleted after QUICK_EXPIRY_MS, not the full TTL. */
export const QUICK_EXPIRY_BYTES = 1024 * 1024;
/** An abandoned tiny partial saves at most a second of transfer: not worth an inode for days. */
export const QUICK_EXPIRY_MS = 3600_000;
/** How often the receiver should call expire(): a tiny partial is gone at most this long after its hour. */
export const PARTIAL_SWEEP_INTERVAL_MS = 10 * 60_000;

/** Metadata is one short JSON line; anything longer is not ours. */
const METADATA_MAX_BYTES = 4096;
/** Directory entries read at start to count the partials on disk (and by listPartials); the sweep sees the rest. */
export const SCAN_LIMIT = 65_536;
/** Whose partials were found without readable metadata: they count in the total only. */
const UNKNOWN_PEER = '?';
const OWNER_PATTERN = /^[0-9a-f]{64}$/;

/**
 * `<key>.part`, `<key>.json`, the `<key>~<8 hex>.part|json` of a private copy of older versions
 * (only swept), and `<key>.stream`: a stream's bytes under a random key, never resumed (its
 * source cannot be read again), so one found unheld is garbage.
 */
export const KEY_PATTERN = /^([0-9a-f]{32})(~[0-9a-f]{8})?\.(part|json|stream)$/;
/** Metadata being written: `<key>.json.<8 hex>.tmp`, renamed over `<key>.json` once synced. */
const TEMP_PATTERN = /^([0-9a-f]{32})(~[0-9a-f]{8})?\.json\.[0-9a-f]{8}\.tmp$/;
/** Partials of ft 0.1 (keyed by content or name, without an owner): never resumed, only swept. */
const LEGACY_PATTERN = /^n?[0-9a-f]{16}-[0-9]+(~[0-9a-f]{8})?\.(part|json)$/;

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL } = nodeFs.constants;
// Absent on Windows, where they are no-ops.
const O_NOFOLLOW = nodeFs.constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = nodeFs.constants.O_NONBLOCK ?? 0;
const O_DIRECTORY = nodeFs.constants.O_DIRECTORY ?? 0;
/** An existing entry: never through a link, and never waiting on a FIFO someone planted. */
const EXISTING = O_NOFOLLOW | O_NONBLOCK;
/** A new entry of ours: created here, by us, or not at all. */
const FRESH = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
/** A partial's own mode: only this user reads it. */
export const PARTIAL_FILE_MODE = 0o600;
/** Undefined where there are no user ids (Windows): ownership is then not checked. */
export const OUR_UID = process.getuid?.();

/**
 * When a partial was last written, as the sweep, the caps and ft status age it: its mtime, or
 * its ctime where that is earlier. A sender's time is set on the partial just before it is
 * placed (and taken back if that fails); should the receiver stop right then, a time a peer
 * chose (the year 30000) must not keep it forever, and the ctime, which nobody sets, tells.
 */
export function lastWriteMs(stat: { mtimeMs: number; ctimeMs: number }): number {
  return Math.min(stat.mtimeMs, stat.ctimeMs);
}

/**
 * The key of a partial: the first 32 hex digits of SHA-256 over owner, name and size (NUL
 * between them). Another owner's upload of the same name and size has another key, so no peer
 * can find, learn the progress of, or append to a partial another peer created.
 */
export function partialKey(id: UploadId): string {
  return createHash('sha256').update(`${id.owner}\0${id.filename}\0${id.size}`).digest('hex').slice(0, 32);
}

/** Who uploads under which name, whatever the size: a digest, so the index holds 32 characters, not the name. */
function nameDigest(id: { owner: string; filename: string }): string {
  return createHash('sha256').update(`${id.owner}\0${id.filename}`).digest('hex').slice(0, 32);
}

/**
 * The peer a partial counts against: an IPv4 address as it is, an IPv6 address by its /64
 * (one host picks any address in its /64 at will).
 */
export function peerGroup(address: string): string {
  const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (!plain.includes(':')) return plain;
  const bare = plain.split('%')[0]!.toLowerCase();
  const halves = bare.split('::');
  if (halves.length > 2) return bare;
  const groups = (half: string | undefined) => (half ? half.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : []);
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  const full = halves.length === 2 ? [...head, ...Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail] : head;
  const prefix = full.slice(0, 4).map((g) => Number.parseInt(g, 16));
  if (full.length !== 8 || prefix.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) return bare;
  return `${prefix.map((g) => g.toString(16)).join(':')}::/64`;
}

/**
 * The hidden folder of partial uploads. One process owns an inbox; within it a key is held by
 * at most one upload at a time, through a lease a newer upload of the same key revokes (see
 * Leases): a stale holder is asked to let go instead of others being told BUSY for as long
 * as it lingers.
 *
 * The folder is ours alone (mode 0700, our uid), and every file in it is opened without
 * following links and checked with fstat (a regular file, one link, ours) before its bytes are
 * read or written, so a planted link, hard link or FIFO is never written through or read.
 */
export class PartialStore {
  readonly limits: PartialLimits;
  /** Keys in use, each leased to the upload holding it. */
  private readonly held = new Leases();
  /** Resumable partials kept or being made, by key, with their peer; least recently used first. */
  private readonly index = new Map<string, string>();
  /** The keys of those whose owner and name are known, by a digest of both: where orphans are found (see dropOrphans). */
  private readonly byName = new Map<string, Set<string>>();
  private readonly nameOf = new Map<string, string>();
  private readonly perPeer = new Map<string, number>();
  /** The folder as checked, to notice it being replaced. */
  private folder: { dev: number; ino: number } | undefined;

  constructor(
    readonly dir: string,
    private readonly fs: FileSystem,
    limits: PartialLimitOptions = {},
  ) {
    this.limits = { ...PARTIAL_LIMITS };
    for (const name of ['maxPartials', 'maxPartialsPerPeer'] as const) {
      const value = limits[name] ?? PARTIAL_LIMITS[name];
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new FtError('USAGE', `Expected ${name} to be a whole number of at least 1, got ${JSON.stringify(value)}`);
      }
      this.limits[name] = value;
    }
  }

  /** Creates or checks the folder, then counts the partials already in it. */
  ensureDir(): void {
    this.checkDir();
    this.scan();
  }

  /** Resumable partials counted now (kept on disk, or held by an upload). */
  get count(): number {
    return this.index.size;
  }

  /** How many partials count against this peer's cap. */
  countOf(peer: string): number {
    return this.perPeer.get(peerGroup(peer)) ?? 0;
  }

  /**
   * Takes the partial for this upload, leased to it until release. A key held by another
   * upload is taken over: its holder's lease is revoked, and this waits for it to let go (at
   * most `options.waitMs`, or until `options.signal` aborts; then BUSY); what the holder kept
   * is then resumed. Throws BUSY when the caps are reached and every partial that could make
   * room is in use.
   */
  async acquire(id: UploadId, peer: string, options: AcquireOptions & { existing: true }): Promise<Partial | undefined>;
  async acquire(id: UploadId, peer: string, options?: AcquireOptions): Promise<Partial>;
  async acquire(id: UploadId, peer: string, options: AcquireOptions = {}): Promise<Partial | undefined> {
    if (!OWNER_PATTERN.test(id.owner)) throw new FtError('INTERNAL', 'an upload owner must be 64 lowercase hex digits');
    if (id.size === undefined) return this.acquireStream(id, peer);
    const key = partialKey(id);
    const lease = await this.held.take(key, options);
    const partial = new Partial(this, lease, id, peer, this.fs, options.keep === true || options.existing === true);
    try {
      await this.verifyDir();
      // Only one recorded before: nothing is counted or made for a key nobody created.
      if (options.existing === true && !lstatIfExists(this.fs, partial.dataPath)?.isFile()) {
        lease.release();
        return undefined;
      }
      // Counted from the header on: uploads in flight are what a hostile peer would hold.
      if (partial.resumable && !this.index.has(key)) this.makeRoom(peerGroup(peer));
      if (partial.resumable) partial.load();
      // Against the peer asking, whose room was just made.
      if (partial.resumable && !this.index.has(key)) this.countIn(key, peerGroup(peer));
      if (partial.resumable) this.nameIn(key, id);
    } catch (error) {
      lease.release();
      throw error;
    }
    return partial;
  }

  /**
   * A stream's partial: a fresh random key (nothing to resume, nobody to take over), counted in
   * the caps like any partial kept, and deleted once let go (see tidy).
   */
  private async acquireStream(id: UploadId, peer: string): Promise<Partial> {
    const lease = await this.held.take(randomBytes(16).toString('hex'));
    const partial = new Partial(this, lease, id, peer, this.fs);
    try {
      await this.verifyDir();
      this.makeRoom(peerGroup(peer));
      this.countIn(partial.key, peerGroup(peer));
    } catch (error) {
      lease.release();
      throw error;
    }
    return partial;
  }

  /** @internal Called by Partial.release: tidies up, then lets the next holder in (which then sees what was kept). */
  released(partial: Partial, lease: Lease): void {
    try {
      this.tidy(partial);
    } finally {
      lease.release();
    }
  }

  private tidy(partial: Partial): void {
    if (partial.stream) {
      // Placed, failed or cut off: a stream's bytes are never kept.
      if (lstatIfExists(this.fs, partial.dataPath)) unlinkQuietly(this.fs, partial.dataPath);
      this.forget(partial.key);
      return;
    }
    if (!partial.resumable) {
      // A small upload saves nothing on resume: it is not kept (and has no metadata). Looked up
      // first: most were placed, and a failed unlink costs more.
      if (lstatIfExists(this.fs, partial.dataPath)) unlinkQuietly(this.fs, partial.dataPath);
      return;
    }
    const peer = this.index.get(partial.key);
    if (peer === undefined) return;
    this.index.delete(partial.key);
    if (lstatIfExists(this.fs, partial.dataPath)?.isFile()) {
      this.index.set(partial.key, peer); // now the most recently used
    } else {
      // Placed, discarded, or never written: no longer counted, and its metadata goes too.
      this.countOut(peer);
      this.nameOut(partial.key);
      unlinkQuietly(this.fs, partial.metaPath);
    }
  }

  /**
   * The sweep: deletes, among files named like ours in our folder and not held, partials
   * untouched for `ttlMs`, partials holding less than QUICK_EXPIRY_BYTES untouched for
   * QUICK_EXPIRY_MS (or the TTL if shorter), leftover private copies and temporary metadata,
   * and entries that are not regular files. Nothing is opened (lstat, unlink: neither follows
   * a link), and nothing else is touched. Returns the names deleted.
   */
  expire(ttlMs: number, now = Date.now()): string[] {
    const quickMs = Math.min(ttlMs, QUICK_EXPIRY_MS);
    const removed: string[] = [];
    const seen = new Set<string>();
    let listing: nodeFs.Dir;
    try {
      listing = this.fs.opendirSync(this.dir);
    } catch (error) {
      if (isNotFound(error)) return removed;
      throw error;
    }
    const remove = (name: string) => {
      try {
        this.fs.unlinkSync(path.join(this.dir, name));
        removed.push(name);
      } catch {
        // Gone meanwhile, or not ours to delete: the next sweep looks again.
      }
    };
    try {
      for (let entry = listing.readSync(); entry; entry = listing.readSync()) {
        const { name } = entry;
        const ours = KEY_PATTERN.exec(name);
        const temp = ours ? null : TEMP_PATTERN.exec(name);
        const legacy = ours || temp ? null : LEGACY_PATTERN.exec(name);
        if (!ours && !temp && !legacy) continue;
        const key = ours ? `${ours[1]}${ours[2] ?? ''}` : temp ? `${temp[1]}${temp[2] ?? ''}` : name.replace(/\.(part|json)$/, '');
        if (this.held.has(key)) continue;
        const stat = lstatIfExists(this.fs, path.join(this.dir, name));
        if (!stat || stat.isDirectory()) continue;
        const age = now - lastWriteMs(stat);
        const isPrivate = name.includes('~');
        if (temp) {
          if (age >= quickMs) remove(name);
        } else if (!stat.isFile() || isPrivate || name.endsWith('.stream')) {
          // A link or FIFO named like ours was never written by us; a private copy (older versions)
          // is garbage, and so is a stream's partial nobody holds (its connection is gone).
          remove(name);
          if (ours) this.forget(key);
        } else if (name.endsWith('.part')) {
          if (age >= ttlMs || (stat.size < QUICK_EXPIRY_BYTES && age >= quickMs)) {
            remove(name);
            if (lstatIfExists(this.fs, path.join(this.dir, `${key}.json`))) remove(`${key}.json`);
            if (ours) this.forget(key);
          } else if (ours) {
            seen.add(key);
          }
        } else if (age >= quickMs && !lstatIfExists(this.fs, path.join(this.dir, `${key}.part`))) {
          remove(name); // metadata whose data is gone
        }
      }
    } finally {
      listing.closeSync();
    }
    // Counted partials whose data went some other way (deleted by hand, say) no longer count.
    for (const key of [...this.index.keys()]) if (!seen.has(key) && !this.held.has(key)) this.forget(key);
    return removed;
  }

  /** Whether an upload holds the partial of `key` now. */
  holds(key: string): boolean {
    return this.held.has(key);
  }

  /**
   * After the upload `id` was placed: deletes what is kept of the same owner's uploads of the
   * same name under another key (another size: the source changed, and was sent again from
   * the start), so that it does not wait for the TTL. One held is left alone (in use). Each
   * one's metadata is read again first, and only a partial whose metadata is this owner's
   * upload of this name, under its key, goes: another owner's never does (another digest, and
   * another owner in its metadata), so no peer can delete another's partials by naming them.
   * Returns the keys deleted. Synchronous: no upload can take one of them between the checks
   * and the unlink.
   */
  dropOrphans(id: UploadId): string[] {
    // Most commits (thousands of small files) find nothing kept: no digest for those.
    if (this.byName.size === 0) return [];
    const keys = this.byName.get(nameDigest(id));
    if (keys === undefined) return [];
    const own = partialKey(id);
    const dropped: string[] = [];
    for (const key of [...keys]) {
      if (key === own || this.held.has(key)) continue;
      const meta = this.readMeta(path.join(this.dir, `${key}.json`));
      if (meta === undefined || meta.owner !== id.owner || meta.filename !== id.filename || partialKey(meta) !== key) continue;
      this.evict(key);
      dropped.push(key);
    }
    return dropped;
  }

  /** @internal Reads a partial's metadata; undefined when missing, torn, too long, or not a regular file of ours. */
  readMeta(file: string): PartialMeta | undefined {
    const read = readMetaFile(this.fs, file);
    return typeof read === 'string' ? undefined : read;
  }

  /**
   * Creates the folder owner-only, or checks the one there through a handle opened without
   * following a link: a real folder, ours, and not open to others (tightened to 0700 if it is).
   * One of another user could hold links or files they planted: refused.
   */
  private checkDir(): void {
    const { fs, dir } = this;
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const notAFolder = () => new FtError('UNSAFE_PATH', `${dir} must be a real folder, not a link or a file`);
    let fd: number | undefined;
    try {
      fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'EMLINK' || code === 'ENOTDIR') throw notAFolder();
      // Windows cannot open a folder: the lstat below is all it gets.
      if (code !== 'EISDIR' && code !== 'EPERM') throw error;
    }
    try {
      const stat = fd === undefined ? fs.lstatSync(dir) : fs.fstatSync(fd);
      if (!stat.isDirectory()) throw notAFolder();
      if (OUR_UID !== undefined && stat.uid !== OUR_UID) {
        throw new FtError('UNSAFE_PATH', `${dir} belongs to another user (uid ${stat.uid}); remove it and ft serve creates its own`);
      }
      if (OUR_UID !== undefined && fd !== undefined && (stat.mode & 0o077) !== 0) fs.fchmodSync(fd, 0o700);
      this.folder = { dev: stat.dev, ino: stat.ino };
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }

  /**
   * Before each upload: the folder is still the one checked. Deleted, it is created again (and
   * its parent synced); replaced, the new one is checked like a first one and counted afresh.
   */
  private async verifyDir(): Promise<void> {
    const stat = lstatIfExists(this.fs, this.dir);
    if (stat?.isDirectory() && stat.dev === this.folder?.dev && stat.ino === this.folder.ino) return;
    this.checkDir();
    if (!stat) await syncFolder(this.fs, path.dirname(this.dir));
    this.scan();
  }

  /**
   * Counts the partials on disk, reading at most SCAN_LIMIT entries. Above the total cap (only
   * when the cap was lowered since they were kept) the oldest are deleted now; then each peer's
   * surplus over its cap, its oldest first, as acquire() would.
   */
  private scan(): void {
    for (const key of [...this.index.keys()]) if (!this.held.has(key)) this.forget(key);
    const found: Array<{ key: string; mtimeMs: number }> = [];
    let listing: nodeFs.Dir;
    try {
      listing = this.fs.opendirSync(this.dir);
    } catch {
      return; // unreadable now: the counts start from the uploads to come
    }
    try {
      for (let seen = 0, entry = listing.readSync(); entry && seen < SCAN_LIMIT; seen++, entry = listing.readSync()) {
        const match = KEY_PATTERN.exec(entry.name);
        // A stream's partial not held was left by a receiver that stopped mid-stream: never resumable.
        if (match?.[3] === 'stream' && !match[2] && !this.held.has(match[1]!)) unlinkQuietly(this.fs, path.join(this.dir, entry.name));
        if (!match || match[2] || match[3] !== 'part' || this.index.has(match[1]!)) continue;
        const stat = lstatIfExists(this.fs, path.join(this.dir, entry.name));
        if (stat?.isFile()) found.push({ key: match[1]!, mtimeMs: lastWriteMs(stat) });
      }
    } finally {
      listing.closeSync();
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    const room = Math.max(0, this.limits.maxPartials - this.index.size);
    for (const { key } of found.slice(0, Math.max(0, found.length - room))) this.deleteFiles(key);
    for (const { key } of found.slice(Math.max(0, found.length - room))) {
      const meta = this.readMeta(path.join(this.dir, `${key}.json`));
      const peer = peerGroup(meta?.peer ?? UNKNOWN_PEER);
      this.countIn(key, peer);
      if (meta !== undefined && partialKey(meta) === key) this.nameIn(key, meta);
      if ((this.perPeer.get(peer) ?? 0) > this.limits.maxPartialsPerPeer && peer !== UNKNOWN_PEER) this.evictOldest(peer);
    }
  }

  /**
   * Room for one more partial of this peer. At its own cap, its least recently used unheld one
   * goes. At the total cap, one of the peer holding the most goes (see evictFromLargest), so
   * peers filling the folder make room from their own, never from one keeping to a small share.
   * BUSY only when every partial that could go is in use.
   */
  private makeRoom(peer: string): void {
    const { maxPartials, maxPartialsPerPeer } = this.limits;
    if ((this.perPeer.get(peer) ?? 0) >= maxPartialsPerPeer && !this.evictOldest(peer)) {
      throw new FtError('BUSY', `${maxPartialsPerPeer} uploads from your address are in progress here already; try again shortly`);
    }
    if (this.index.size >= maxPartials && !this.evictFromLargest()) {
      throw new FtError('BUSY', `this receiver has ${maxPartials} uploads in progress, its limit; try again shortly`);
    }
  }

  /** Deletes the least recently used partial of `peer` not held. */
  private evictOldest(peer: string): boolean {
    for (const [key, of] of this.index) {
      if (of !== peer || this.held.has(key)) continue;
      this.evict(key);
      return true;
    }
    return false;
  }

  /**
   * Deletes the least recently used unheld partial of the peer holding the most partials (held
   * ones count too) among those with one unheld; of peers holding as many, the one whose partial
   * was used least recently. Whoever asks, a peer with fewer partials than another loses none
   * while that other has one to give up: many addresses filling the folder evict each other's,
   * not those of a peer that left a few. One pass over the index (least recently used first):
   * a peer's first unheld partial in it is its oldest.
   */
  private evictFromLargest(): boolean {
    let most = 0;
    for (const count of this.perPeer.values()) most = Math.max(most, count);
    let chosen: { key: string; count: number } | undefined;
    for (const [key, of] of this.index) {
      if (this.held.has(key)) continue;
      const count = this.perPeer.get(of) ?? 0;
      if (chosen === undefined || count > chosen.count) chosen = { key, count };
      if (count >= most) break; // nobody holds more: no later partial can win
    }
    if (chosen === undefined) return false;
    this.evict(chosen.key);
    return true;
  }

  private evict(key: string): void {
    this.deleteFiles(key);
    this.forget(key);
  }

  private deleteFiles(key: string): void {
    unlinkQuietly(this.fs, path.join(this.dir, `${key}.part`));
    unlinkQuietly(this.fs, path.join(this.dir, `${key}.json`));
  }

  private countIn(key: string, peer: string): void {
    this.index.set(key, peer);
    this.perPeer.set(peer, (this.perPeer.get(peer) ?? 0) + 1);
  }

  private forget(key: string): void {
    const peer = this.index.get(key);
    if (peer === undefined) return;
    this.index.delete(key);
    this.countOut(peer);
    this.nameOut(key);
  }

  private nameIn(key: string, id: UploadId): void {
    if (this.nameOf.has(key)) return;
    const digest = nameDigest(id);
    this.nameOf.set(key, digest);
    const keys = this.byName.get(digest);
    if (keys) keys.add(key);
    else this.byName.set(digest, new Set([key]));
  }

  private nameOut(key: string): void {
    const digest = this.nameOf.get(key);
    if (digest === undefined) return;
    this.nameOf.delete(key);
    const keys = this.byName.get(digest);
    keys?.delete(key);
    if (keys?.size === 0) this.byName.delete(digest);
  }

  private countOut(peer: string): void {
    const left = (this.perPeer.get(peer) ?? 1) - 1;
    if (left > 0) this.perPeer.set(peer, left);
    else this.perPeer.delete(peer);
  }
}

/** One partial upload, held by one upload (through its lease) from its header until it is placed or released. */
export class Partial {
  /** Bytes already held: the offset the receiver offers (the receiver is the authority on it). */
  offset = 0;
  readonly dataPath: string;
  readonly metaPath: string;
  /**
   * Only a partial of a file over SMALL_BODY_BYTES is kept for resume: a smaller one would save
   * at most a second, and every one kept costs inodes a peer could fill.
   */
  readonly resumable: boolean;
  /** A stream's: its size is declared at its end (declareSize), and it is never kept. */
  readonly stream: boolean;
  readonly key: string;
  private declaredSize: number | undefined;
  private meta: PartialMeta | undefined;
  /** The data file as checked (at load, or as created): every later open must find this one. */
  private file: { dev: number; ino: number } | undefined;
  private done = false;

  constructor(
    private readonly store: PartialStore,
    private readonly lease: Lease,
    readonly id: UploadId,
    /** The address of the peer uploading it. */
    readonly peer: string,
    private readonly fs: FileSystem,
    /** Kept whatever its size: an upload created apart from its bytes (tus), which a restart must find. */
    private readonly keep = false,
  ) {
    this.key = lease.key;
    this.stream = id.size === undefined;
    this.dataPath = path.join(store.dir, `${this.key}.${this.stream ? 'stream' : 'part'}`);
    this.metaPath = path.join(store.dir, `${this.key}.json`);
    this.resumable = id.size !== undefined && (keep || id.size > SMALL_BODY_BYTES);
  }

  /** The file's size: the announced one, or a stream's once declared; undefined before that. */
  get size(): number | undefined {
    return this.id.size ?? this.declaredSize;
  }

  /** A stream's size, known at its end. */
  declareSize(size: number): void {
    if (!this.stream) throw new FtError('INTERNAL', 'only a stream declares its size late');
    this.declaredSize = size;
  }

  /**
   * Records a new, empty upload on disk (metadata and an empty data file), so that it is found
   * after a restart at offset 0. What was held under the key is replaced. Not synced: a record
   * lost to a power cut holds no byte, and its client starts a new upload (404), losing nothing;
   * waiting for three flushes here was a third of a small tus upload's time.
   */
  async record(): Promise<void> {
    this.writeMeta();
    const handle = await this.createAsync();
    await handle.close();
    this.offset = 0;
  }

  /**
   * When the sweep (expire(ttlMs)) may first delete what is kept, once let go: from the data
   * file's last change, by what it holds (see QUICK_EXPIRY_BYTES). Undefined when nothing is kept.
   */
  keptUntil(ttlMs: number): number | undefined {
    if (!this.resumable) return undefined;
    const stat = lstatIfExists(this.fs, this.dataPath);
    if (!stat?.isFile()) return undefined;
    return lastWriteMs(stat) + (stat.size < QUICK_EXPIRY_BYTES ? Math.min(ttlMs, QUICK_EXPIRY_MS) : ttlMs);
  }

  /** Aborts when a newer upload of the same key takes it over: let go (release) soon. */
  get revoked(): AbortSignal {
    return this.lease.revoked;
  }

  onRevoked(listener: () => void): () => void {
    return this.lease.onRevoked(listener);
  }

  /** Holds off revocation while the upload is being committed; returns the unpin. */
  pin(): () => void {
    return this.lease.pin();
  }

  /** The data file this partial checked and uses (for the inbox to compare with what it links). */
  get checkedFile(): { dev: number; ino: number } | undefined {
    return this.file;
  }

  /**
   * @internal Finds what an earlier attempt left (the offset to offer), and returns its usable
   * metadata. What cannot be ours, or holds another content, is deleted: the upload starts at 0.
   */
  load(): PartialMeta | undefined {
    const stat = lstatIfExists(this.fs, this.dataPath);
    if (!stat) return undefined;
    // Not something we could have written for this upload: a link, a FIFO, another's file, a hard link, too long.
    if (!isOurFile(stat) || this.id.size === undefined || stat.size > this.id.size) {
      this.discard();
      return undefined;
    }
    const meta = this.store.readMeta(this.metaPath);
    const matches = meta && meta.owner === this.id.owner && meta.filename === this.id.filename && meta.size === this.id.size;
    if (matches && meta.hash !== undefined && this.id.hash !== undefined && meta.hash !== this.id.hash) {
      this.discard(); // the same name and size, but the sender now has other content
      return undefined;
    }
    // Unusable metadata (torn by a power cut, say) is as good as none: written anew with the next body.
    this.meta = matches ? meta : undefined;
    this.offset = stat.size;
    this.file = { dev: stat.dev, ino: stat.ino };
    return this.meta;
  }

  /** Hashes the bytes held so far; the hasher goes on to take the rest of the body. */
  async hashPrefix(): Promise<{ hasher: Hasher; prefixHash: string }> {
    const hasher = await createHasher();
    if (this.offset > 0) {
      const handle = await this.openChecked(O_RDONLY);
      if (!handle) {
        this.offset = 0;
      } else {
        try {
          this.offset = await hashRange(handle, 0, this.offset, hasher);
        } finally {
          await handle.close();
        }
      }
    }
    return { hasher, prefixHash: hasher.digest() };
  }

  /**
   * Opens for appending at `from` (the agreed offset, or 0 to discard what was held). Nothing
   * is written to disk for a header alone: metadata appears with the first body streamed to disk.
   */
  async openForWrite(from: number): Promise<FileHandle> {
    // A body held in memory is written in one go once verified: metadata would only cost an fsync.
    if (this.resumable && this.id.size! - from > SMALL_BODY_BYTES && (from === 0 || !this.meta)) this.writeMeta();
    if (from === 0) return (await this.reusedAsync()) ?? this.createAsync();
    const handle = await this.openChecked(O_WRONLY);
    if (!handle) throw changedMeanwhile();
    try {
      if ((await handle.stat()).size < from) throw changedMeanwhile();
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
    const fd = from === 0 ? (this.reusedSync() ?? this.createSync()) : this.openCheckedSync(O_WRONLY);
    if (fd === undefined) throw changedMeanwhile();
    try {
      if (from > 0) {
        if (fs.fstatSync(fd).size < from) throw changedMeanwhile();
        fs.ftruncateSync(fd, from);
      }
      // An empty buffer would make writev write nothing, which reads as a short write.
      let pending = chunks.filter((chunk) => chunk.length > 0);
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
    // fdatasync leaves out metadata a read does not need (the times, the mode): once they are set, fsync.
    let metadataSet = false;
    return {
      sync: () => new Promise<void>((resolve, reject) => (metadataSet ? fs.fsync : fs.fdatasync)(fd, (error) => (error ? reject(error) : resolve()))),
      setMetadata: async ({ mtime, mode }) => {
        metadataSet = true;
        if (mode !== undefined) fs.fchmodSync(fd, mode);
        if (mtime !== undefined) fs.futimesSync(fd, new Date(), mtime);
      },
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
    this.offset = 0;
    this.file = undefined;
    this.meta = undefined;
    unlinkIfExists(this.fs, this.dataPath);
    unlinkIfExists(this.fs, this.metaPath);
  }

  forgetMeta(): void {
    this.meta = undefined;
    unlinkIfExists(this.fs, this.metaPath);
  }

  /** Lets others use the key again; what is not kept for resume is deleted. Idempotent. */
  release(): void {
    if (this.done) return;
    this.done = true;
    this.store.released(this, this.lease);
  }

  /**
   * Metadata goes to a temporary file of our own (O_EXCL, never through a link), which is then
   * renamed over the `.json`, so no link or half-written file is ever read as ours. The file is
   * synced in the background, through the descriptor that wrote it: waiting for that sync
   * before the body (4–5 ms per file on a journalled disk) would slow every file over 1 MiB,
   * and a power cut in between leaves at worst a torn `.json`, which counts as absent.
   */
  private writeMeta(): void {
    const { fs } = this;
    const meta: PartialMeta = {
      v: 1,
      owner: this.id.owner,
      filename: this.id.filename,
      size: this.id.size!,
      ...(this.id.hash !== undefined ? { hash: this.id.hash } : {}),
      peer: this.peer,
      createdAt: new Date().toISOString(),
      ...(this.keep ? { recorded: true as const } : {}),
    };
    const temp = `${this.metaPath}.${randomBytes(4).toString('hex')}.tmp`;
    const fd = fs.openSync(temp, FRESH, PARTIAL_FILE_MODE);
    try {
      const bytes = Buffer.from(JSON.stringify(meta) + '\n');
      for (let at = 0; at < bytes.length; ) {
        const written = fs.writevSync(fd, [bytes.subarray(at)], at);
        if (written === 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
        at += written;
      }
      fs.renameSync(temp, this.metaPath);
    } catch (error) {
      closeQuietly(fs, fd);
      unlinkQuietly(fs, temp);
      throw error;
    }
    fs.fdatasync(fd, () => closeQuietly(fs, fd));
    this.meta = meta;
  }

  /** A new, empty data file of ours; whatever had its name is unlinked first (never written through). */
  private async createAsync(): Promise<FileHandle> {
    let handle: FileHandle;
    try {
      handle = await this.fs.open(this.dataPath, FRESH, PARTIAL_FILE_MODE);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      this.fs.unlinkSync(this.dataPath);
      handle = await this.fs.open(this.dataPath, FRESH, PARTIAL_FILE_MODE);
    }
    try {
      this.adopt(await handle.stat());
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle;
  }

  private createSync(): number {
    const { fs } = this;
    let fd: number;
    try {
      fd = fs.openSync(this.dataPath, FRESH, PARTIAL_FILE_MODE);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      fs.unlinkSync(this.dataPath);
      fd = fs.openSync(this.dataPath, FRESH, PARTIAL_FILE_MODE);
    }
    try {
      this.adopt(fs.fstatSync(fd));
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    return fd;
  }

  /**
   * A file just created with O_EXCL|O_NOFOLLOW is a new regular file of ours by construction;
   * its type is checked all the same. (Its owner and link count are not: some network file
   * systems show another owner, or no link count, for files we create; they resume from 0.)
   */
  private adopt(stat: nodeFs.Stats): void {
    if (!stat.isFile()) throw changedMeanwhile();
    this.file = { dev: stat.dev, ino: stat.ino };
  }

  /**
   * Opens the data file checked at load, never through a link, and checks the handle: still
   * that file, a regular one of ours with one link. Anything else is unlinked (that removes
   * the name, never what a link points to) and undefined returned.
   */
  /**
   * The data file held (one recorded empty, or a partial the sender chose not to resume), emptied
   * to be written from the start: when it is still the file checked, reusing it saves an unlink
   * and a create (a third of a small tus upload's disk calls). Undefined: make a new one.
   */
  private reusedSync(): number | undefined {
    if (this.file === undefined) return undefined;
    const fd = this.openCheckedSync(O_WRONLY);
    if (fd === undefined) return undefined;
    try {
      if (this.fs.fstatSync(fd).size > 0) this.fs.ftruncateSync(fd, 0);
    } catch (error) {
      this.fs.closeSync(fd);
      throw error;
    }
    return fd;
  }

  private async reusedAsync(): Promise<FileHandle | undefined> {
    if (this.file === undefined) return undefined;
    const handle = await this.openChecked(O_WRONLY);
    if (handle === undefined) return undefined;
    try {
      await handle.truncate(0);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle;
  }

  private async openChecked(access: number): Promise<FileHandle | undefined> {
    let handle: FileHandle;
    try {
      handle = await this.fs.open(this.dataPath, access | EXISTING);
    } catch (error) {
      return this.unusable(error);
    }
    let stat: nodeFs.Stats;
    try {
      stat = await handle.stat();
    } catch (error) {
      await handle.close();
      throw error;
    }
    if (this.isTheCheckedFile(stat)) return handle;
    await handle.close();
    return this.unusable();
  }

  private openCheckedSync(access: number): number | undefined {
    const { fs } = this;
    let fd: number;
    try {
      fd = fs.openSync(this.dataPath, access | EXISTING);
    } catch (error) {
      return this.unusable(error);
    }
    let stat: nodeFs.Stats;
    try {
      stat = fs.fstatSync(fd);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    if (this.isTheCheckedFile(stat)) return fd;
    fs.closeSync(fd);
    return this.unusable();
  }

  private isTheCheckedFile(stat: nodeFs.Stats): boolean {
    return isOurFile(stat) && this.file !== undefined && stat.dev === this.file.dev && stat.ino === this.file.ino;
  }

  /** A link (ELOOP), a socket (ENXIO), a folder, or a file swapped in: its name goes, nothing else. */
  private unusable(error?: unknown): undefined {
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (error !== undefined && !isNotFound(error) && !NOT_A_FILE.has(code ?? '')) throw error;
    this.offset = 0;
    this.file = undefined;
    unlinkQuietly(this.fs, this.dataPath);
    return undefined;
  }
}

/** open() errors that mean "this name is not a regular file" (a link under O_NOFOLLOW, a socket, a folder). */
const NOT_A_FILE: ReadonlySet<string> = new Set(['ELOOP', 'EMLINK', 'ENXIO', 'EISDIR', 'ENOTDIR', 'EOPNOTSUPP', 'EFTYPE']);

/**
 * A partial's metadata, read without following a link or waiting on a FIFO, and only from a
 * regular file of ours of at most METADATA_MAX_BYTES; otherwise why not, in a few words.
 */
export function readMetaFile(fs: FileSystem, file: string): PartialMeta | string {
  let fd: number;
  try {
    fd = fs.openSync(file, O_RDONLY | EXISTING);
  } catch (error) {
    return isNotFound(error) ? 'missing' : NOT_A_FILE.has((error as NodeJS.ErrnoException).code ?? '') ? 'not a regular file' : 'unreadable';
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!isOurFile(stat)) return 'not a regular file of ours with one link';
    if (stat.size > METADATA_MAX_BYTES) return `longer than ${METADATA_MAX_BYTES} bytes`;
    const buffer = Buffer.alloc(METADATA_MAX_BYTES + 1);
    let length = 0;
    for (let read = 1; read > 0 && length < buffer.length; length += read) read = fs.readSync(fd, buffer, length, buffer.length - length, length);
    if (length > METADATA_MAX_BYTES) return `longer than ${METADATA_MAX_BYTES} bytes`;
    return parseMeta(buffer.subarray(0, length).toString('utf8')) ?? "not valid (torn, or not ft's)";
  } catch {
    return 'unreadable';
  } finally {
    fs.closeSync(fd);
  }
}

/** A regular file with one link, owned by us: nothing another user made or can reach another way. */
export function isOurFile(stat: nodeFs.Stats): boolean {
  return stat.isFile() && stat.nlink === 1 && (OUR_UID === undefined || stat.uid === OUR_UID);
}

function changedMeanwhile(): FtError {
  return new FtError('WRITE_FAILED', 'the partial upload changed on the receiver after it was offered; send again');
}

function parseMeta(text: string): PartialMeta | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const meta = value as Record<string, unknown>;
  const text200 = (field: unknown) => typeof field === 'string' && field.length <= 200;
  if (meta.v !== 1 || typeof meta.owner !== 'string' || !OWNER_PATTERN.test(meta.owner)) return undefined;
  if (typeof meta.filename !== 'string' || !Number.isSafeInteger(meta.size) || (meta.size as number) < 0) return undefined;
  if ((meta.hash !== undefined && !text200(meta.hash)) || !text200(meta.peer) || !text200(meta.createdAt)) return undefined;
  return {
    v: 1,
    owner: meta.owner,
    filename: meta.filename,
    size: meta.size as number,
    ...(meta.hash !== undefined ? { hash: meta.hash as string } : {}),
    peer: meta.peer as string,
    createdAt: meta.createdAt as string,
    ...(meta.recorded === true ? { recorded: true as const } : {}),
  };
}

/** Best effort: a folder just made again is durable once its parent is synced. */
async function syncFolder(fs: FileSystem, dir: string): Promise<void> {
  try {
    const handle = await fs.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some file systems cannot sync a folder; the folder exists all the same.
  }
}

function unlinkIfExists(fs: FileSystem, file: string): void {
  try {
    fs.unlinkSync(file);
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}

function unlinkQuietly(fs: FileSystem, file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    // Already gone, or the error that matters is another.
  }
}

function closeQuietly(fs: FileSystem, fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Closed already.
  }
}
