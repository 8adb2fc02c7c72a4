/**
 * What the hidden folder of partial uploads holds, read without changing anything: for
 * `ft status` and listPartials(), which may run beside a receiver, or on an inbox no receiver
 * has open. Opening the store would create folders and delete surplus partials; this only
 * lists, lstats, and reads metadata files of at most METADATA_MAX_BYTES through a descriptor
 * opened without following a link or waiting on a FIFO. A data file is never opened (lstat
 * says all that is shown, and opening a device someone planted could do something). Anything
 * that cannot be an upload of ours is reported in a line, never followed.
 */
import nodeFs from 'node:fs';
import path from 'node:path';
import { FtError } from '../../errors.js';
import { SERVE_DEFAULTS } from '../../defaults.js';
import { isNotFound, nodeFileSystem, type FileSystem } from '../../file-system.js';
import { validateListPartialsOptions } from '../../options.js';
import { escapeForDisplay, PARTIAL_DIR, parseSafeName } from '../../names/safe-name.js';
import type { PartialListing, PartialUpload, UnreadablePartial } from '../upload-store.js';
import { isOurFile, KEY_PATTERN, lastWriteMs, OUR_UID, partialKey, QUICK_EXPIRY_BYTES, QUICK_EXPIRY_MS, readMetaFile, SCAN_LIMIT } from './partials.js';

export interface ListPartialsOptions {
  /** The receiver's partialTtlMs, so that expiry times are its own (SERVE_DEFAULTS.partialTtlMs by default). */
  partialTtlMs?: number;
  /** The file system to read (memfs in tests); node:fs by default. */
  fs?: FileSystem;
}

/**
 * The unfinished uploads kept in the inbox folder `inbox` (what `ft status` shows): read only,
 * safe beside a running receiver, which goes on as if nothing had looked. Whether one is in
 * use cannot be told from outside the receiver's process, so `inUse` is absent. Throws FtError
 * LOCAL_FILE when `inbox` is not an ft inbox of this user (see partialFolderOf).
 */
export async function listPartials(inbox: string, options: ListPartialsOptions = {}): Promise<PartialListing> {
  validateListPartialsOptions(options);
  const fs = options.fs ?? nodeFileSystem;
  const dir = partialFolderOf(fs, inbox);
  return readPartialFolder(fs, dir, options.partialTtlMs ?? SERVE_DEFAULTS.partialTtlMs);
}

const { O_RDONLY } = nodeFs.constants;
const O_NOFOLLOW = nodeFs.constants.O_NOFOLLOW ?? 0;
const O_DIRECTORY = nodeFs.constants.O_DIRECTORY ?? 0;

/** When the sweep (PartialStore.expire) may first delete a partial, by what it holds and when it was last written. */
export function expiresAt(bytes: number, lastWriteAt: number, ttlMs: number): number {
  // Whole milliseconds, rounded up: from then on the sweep's `now - mtime >= ttl` holds.
  return Math.ceil(lastWriteAt + (bytes < QUICK_EXPIRY_BYTES ? Math.min(ttlMs, QUICK_EXPIRY_MS) : ttlMs));
}

/**
 * Lists the partial folder `dir` (already checked to be ours), reading at most SCAN_LIMIT
 * entries. `inUse`, where the caller can tell (the store's own leases), marks those held.
 */
export function readPartialFolder(fs: FileSystem, dir: string, ttlMs: number, inUse?: (key: string) => boolean): PartialListing {
  const found = new Map<string, { part: boolean; json: boolean }>();
  let truncated = false;
  const listing = fs.opendirSync(dir);
  try {
    let seen = 0;
    for (let entry = listing.readSync(); entry; entry = listing.readSync()) {
      if (seen++ >= SCAN_LIMIT) {
        truncated = true;
        break;
      }
      // Private copies (`~`), metadata being written and partials of ft 0.1 are the sweep's
      // garbage, and other names (another ft's kinds of partial) are not uploads to resume.
      const match = KEY_PATTERN.exec(entry.name);
      // A stream's bytes (`.stream`) are no upload to resume: they go when its connection ends.
      if (!match || match[2] || match[3] === 'stream') continue;
      const kept = found.get(match[1]!) ?? { part: false, json: false };
      kept[match[3] as 'part' | 'json'] = true;
      found.set(match[1]!, kept);
    }
  } finally {
    listing.closeSync();
  }
  const partials: PartialUpload[] = [];
  const unreadable: UnreadablePartial[] = [];
  for (const [key, { part, json }] of found) {
    const read = readOne(fs, dir, key, part, json, ttlMs);
    if ('reason' in read) unreadable.push(read);
    else partials.push(inUse ? { ...read, inUse: inUse(key) } : read);
  }
  partials.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.lastWriteAt - b.lastWriteAt));
  unreadable.sort((a, b) => (a.entry < b.entry ? -1 : 1));
  return { partials, unreadable, truncated };
}

function readOne(fs: FileSystem, dir: string, key: string, part: boolean, json: boolean, ttlMs: number): PartialUpload | UnreadablePartial {
  const data = `${key}.part`;
  const meta = `${key}.json`;
  if (!part) return { entry: meta, reason: 'metadata without data (the sweep deletes it)' };
  let stat: nodeFs.Stats;
  try {
    stat = fs.lstatSync(path.join(dir, data));
  } catch (error) {
    return { entry: data, reason: isNotFound(error) ? 'gone while listing' : 'cannot be read' };
  }
  const notOurs = whyNotOurs(stat);
  if (notOurs) return { entry: data, reason: `${notOurs}: not an upload of ours, never followed (the sweep deletes it)` };
  const expires = expiresAt(stat.size, lastWriteMs(stat), ttlMs);
  const left = `holds ${stat.size} bytes, deleted from ${new Date(expires).toISOString()}`;
  if (!json) return { entry: data, reason: `data without metadata, so its name is unknown (${left})` };
  const read = readMetaFile(fs, path.join(dir, meta));
  if (typeof read === 'string') return { entry: meta, reason: `metadata ${read}, so the upload's name is unknown (${left})` };
  if (partialKey(read) !== key) return { entry: meta, reason: `metadata of another upload than its name says (${left})` };
  try {
    parseSafeName(read.filename);
  } catch {
    return { entry: meta, reason: `metadata with the unsafe name ${escapeForDisplay(read.filename)} (${left})` };
  }
  if (stat.size > read.size) return { entry: data, reason: `holds ${stat.size} bytes, more than the upload's ${read.size}` };
  const created = Date.parse(read.createdAt);
  return {
    name: read.filename,
    owner: read.owner,
    size: read.size,
    bytes: stat.size,
    kind: read.recorded ? 'tus' : 'send',
    createdAt: Number.isFinite(created) ? created : undefined,
    lastWriteAt: lastWriteMs(stat),
    expiresAt: expires,
    peer: read.peer,
  };
}

function whyNotOurs(stat: nodeFs.Stats): string | undefined {
  if (stat.isSymbolicLink()) return 'a symbolic link';
  if (!stat.isFile()) return 'not a regular file';
  if (stat.nlink !== 1) return 'a file with other hard links';
  if (!isOurFile(stat)) return `a file of another user (uid ${stat.uid})`;
  return undefined;
}

/**
 * The partial folder of the inbox `inbox`, checked without changing anything: the inbox a
 * folder, its partial folder a real folder (not a link) of this user. Throws FtError
 * LOCAL_FILE, in one line, for anything else.
 */
export function partialFolderOf(fs: FileSystem, inbox: string): string {
  const shown = escapeForDisplay(inbox);
  let stat: nodeFs.Stats;
  try {
    stat = fs.statSync(inbox);
  } catch (error) {
    throw new FtError('LOCAL_FILE', `${shown} ${isNotFound(error) ? 'does not exist' : `cannot be read (${(error as NodeJS.ErrnoException).code})`}`, { path: inbox });
  }
  if (!stat.isDirectory()) throw new FtError('LOCAL_FILE', `${shown} is not a folder`, { path: inbox });
  const dir = path.join(inbox, PARTIAL_DIR);
  const notInbox = (why: string) => new FtError('LOCAL_FILE', `${shown} is not an ft inbox: ${why}`, { path: inbox });
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (isNotFound(error)) throw notInbox(`it has no ${PARTIAL_DIR} folder (ft serve makes one)`);
    if (code === 'ELOOP' || code === 'EMLINK' || code === 'ENOTDIR') throw notInbox(`its ${PARTIAL_DIR} is not a real folder (a link or a file)`);
    if (code === 'EACCES' || code === 'EPERM') throw new FtError('LOCAL_FILE', `${shown}/${PARTIAL_DIR} cannot be read by this user`, { path: inbox });
    // Windows (and memfs) cannot open a folder: the lstat below is all it gets.
    if (code !== 'EISDIR') throw error;
  }
  try {
    const folder = fd === undefined ? fs.lstatSync(dir) : fs.fstatSync(fd);
    if (!folder.isDirectory()) throw notInbox(`its ${PARTIAL_DIR} is not a real folder (a link or a file)`);
    if (OUR_UID !== undefined && folder.uid !== OUR_UID) {
      throw new FtError('LOCAL_FILE', `${shown}/${PARTIAL_DIR} belongs to another user (uid ${folder.uid}): run ft status as that user`, { path: inbox });
    }
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
  return dir;
}
