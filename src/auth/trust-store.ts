/**
 * The sender's pinned receivers (SSH's known_hosts model): each receiver key it has verified,
 * with the names it was reached by and the addresses it was reached at. A later contact by one
 * of those names or addresses that presents another key is an impostor until the user says
 * otherwise (`ft trust forget`).
 *
 * The file is the security decision, so it is never guessed at: a missing file is empty, but a
 * file that cannot be read or fails any check is an error (TRUST_STORE_INVALID), never "no pins,
 * trust everything". It is written owner-only and atomically (temporary file, fsync, rename),
 * and every change re-reads it under a lock file, so senders running at once keep each other's pins.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as nodeFs } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { domainToASCII } from 'node:url';
import envPaths from 'env-paths';
import { FtError } from '../errors.js';
import { backoffDelay, waitFor, type Backoff } from '../retry.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { FINGERPRINT_PATTERN, fingerprintMatches, parseFingerprint } from './fingerprint.js';
import { hostPort } from '../host-port.js';

export interface PinnedReceiver {
  /** Full form. */
  fingerprint: string;
  /** Receiver names it was reached by or announced, most recent first (compared case-insensitively). */
  names: string[];
  /** "host:port" it was reached at (IPv6 as "[::1]:9527"), canonical, most recent first. */
  addresses: string[];
  /** ISO time of first pin. */
  added: string;
  /** ISO time of last verified contact. */
  lastSeen: string;
}

/** The file system calls the store makes (node:fs/promises, or memfs's in tests). */
export type TrustStoreFs = Pick<typeof nodeFs, 'open' | 'mkdir' | 'rename' | 'unlink' | 'lstat'>;

export interface TrustStoreOptions {
  fs?: TrustStoreFs;
  /** The clock for `added` and `lastSeen`. */
  now?: () => Date;
  /** How long a change waits for another process's lock. @default 15000 */
  lockWaitMs?: number;
}

export const TRUST_FILE_VERSION = 1;
/** Beyond these, record() drops what was seen least recently. */
export const MAX_PINNED_RECEIVERS = 10_000;
export const MAX_NAMES_PER_RECEIVER = 16;
export const MAX_ADDRESSES_PER_RECEIVER = 16;
/** The discovery beacon's limit: a longer name is one no beacon can carry. */
export const MAX_PINNED_NAME_BYTES = 64;
/** Far above 10,000 full entries (about 2 KiB each at most). */
const MAX_FILE_BYTES = 32 * 1024 * 1024;
/** A lock older than this was left by an ft that died (a change holds it for milliseconds). */
const STALE_LOCK_MS = 10_000;
const LOCK_WAIT_MS = 15_000;
const LOCK_BACKOFF: Backoff = { baseMs: 5, maxMs: 100 };
/** A change whose lock was broken under it (only when it held it past STALE_LOCK_MS) starts over. */
const MAX_LOCK_LOSSES = 3;
const ENTRY_FIELDS = ['fingerprint', 'names', 'addresses', 'added', 'lastSeen'];

/** The per-user config folder (~/.config/ft on Linux, as for the sender key), known-receivers.json. */
export function defaultTrustStorePath(): string {
  return path.join(envPaths('ft', { suffix: '' }).config, 'known-receivers.json');
}

/** What names are compared by: case-insensitive, one Unicode normal form. */
export function nameKey(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

/** Why a name cannot be pinned, or undefined when it can. */
function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty';
  if (Buffer.byteLength(name) > MAX_PINNED_NAME_BYTES) return `is longer than ${MAX_PINNED_NAME_BYTES} bytes`;
  if (/\p{Cc}/u.test(name)) return 'has control characters';
  if (!name.isWellFormed()) return 'is not valid Unicode';
  return undefined;
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * A host in the one form the file keeps: lowercase, an IPv6 address compressed (its IPv4-mapped
 * form as the IPv4 address it is), a trailing dot dropped. Undefined when it is not a host.
 */
export function canonicalHost(host: string): string | undefined {
  let bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIPv4(bare)) return bare;
  const zoneAt = bare.indexOf('%');
  const zone = zoneAt >= 0 ? bare.slice(zoneAt) : '';
  if (zone && !/^%[A-Za-z0-9_.-]{1,32}$/.test(zone)) return undefined;
  bare = zoneAt >= 0 ? bare.slice(0, zoneAt) : bare;
  if (isIPv6(bare)) {
    const compressed = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(compressed);
    if (mapped && !zone) {
      const [high, low] = [parseInt(mapped[1]!, 16), parseInt(mapped[2]!, 16)];
      return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
    }
    return compressed + zone;
  }
  if (zone || host !== bare) return undefined;
  // As a URL would have it: lowercase, international names in their xn-- form, and the other
  // spellings of an IPv4 address ("127.1", "0x7f.0.0.1", which connecting accepts too) as one.
  const name = domainToASCII(bare.replace(/\.$/, ''));
  if (isIPv4(name)) return name;
  // "10.0.0.300" is not a host name: the last label of a name is never all digits.
  if (!HOST_NAME.test(name) || /(?:^|\.)\d+$/.test(name)) return undefined;
  return name;
}

/** "host:port" as the file keeps it ("[v6]:port"), or undefined when it is not one. */
export function canonicalAddress(address: string): string | undefined {
  const match = /^(\[[^\]]*\]|[^:[\]]+):(\d{1,5})$/.exec(address);
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port < 1 || port > 65_535 || String(port) !== match[2]) return undefined;
  return receiverAddress(match[1]!, port);
}

/** The address of a host and port as the file keeps it, or undefined when it is not one. */
export function receiverAddress(host: string, port: number): string | undefined {
  const canonical = canonicalHost(host);
  if (canonical === undefined || !Number.isInteger(port) || port < 1 || port > 65_535) return undefined;
  return hostPort(canonical, port);
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1');
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function isIsoTime(value: unknown): value is string {
  return typeof value === 'string' && ISO_TIME.test(value) && !Number.isNaN(Date.parse(value)) && new Date(value).toISOString() === value;
}

function describeFile(file: string): string {
  return `the trust file ${escapeForDisplay(file)}`;
}

function invalid(file: string, problem: string, cause?: unknown): FtError {
  return new FtError(
    'TRUST_STORE_INVALID',
    `${describeFile(file)} is invalid: ${problem}; fix it, or delete it to forget every pinned receiver`,
    { path: file },
    { cause },
  );
}

function ioError(file: string, doing: string, error: unknown): FtError {
  if (error instanceof FtError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? 'permission denied'
      : code === 'ELOOP'
        ? 'it is a symbolic link'
        : code === 'ENOSPC'
          ? 'no space left on the device'
          : code === 'ENOTDIR'
            ? 'a part of its path is not a folder'
            : ((error as Error).message ?? String(error));
  return new FtError('TRUST_STORE_INVALID', `cannot ${doing} ${describeFile(file)}: ${why}`, { path: file }, { cause: error });
}

/** Checks the parsed file, every field; the entries, or an error naming the first thing wrong. */
export function parseTrustFile(file: string, text: string): PinnedReceiver[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw invalid(file, `not JSON (${(error as Error).message.split('\n')[0]})`, error);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(file, 'not a JSON object');
  const top = raw as Record<string, unknown>;
  const extra = Object.keys(top).find((key) => key !== 'version' && key !== 'receivers');
  if (typeof top.version === 'number' && Number.isInteger(top.version) && top.version > TRUST_FILE_VERSION) {
    throw new FtError(
      'TRUST_STORE_INVALID',
      `${describeFile(file)} was written by a newer ft (format version ${top.version}; this one reads ${TRUST_FILE_VERSION}): upgrade ft`,
      { path: file },
    );
  }
  if (top.version !== TRUST_FILE_VERSION) throw invalid(file, `"version" is not ${TRUST_FILE_VERSION}`);
  if (extra !== undefined) throw invalid(file, `unknown field ${JSON.stringify(extra.slice(0, 40))}`);
  if (!Array.isArray(top.receivers)) throw invalid(file, '"receivers" is not a list');
  if (top.receivers.length > MAX_PINNED_RECEIVERS) throw invalid(file, `more than ${MAX_PINNED_RECEIVERS} receivers`);
  const owners = { fingerprint: new Map<string, number>(), name: new Map<string, number>(), address: new Map<string, number>() };
  const claim = (kind: keyof typeof owners, key: string, index: number, where: string) => {
    const other = owners[kind].get(key);
    if (other !== undefined) throw invalid(file, `${where}: also in receivers[${other}] (each ${kind} belongs to one receiver)`);
    owners[kind].set(key, index);
  };
  return top.receivers.map((value: unknown, index): PinnedReceiver => {
    const at = `receivers[${index}]`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(file, `${at} is not an object`);
    const entry = value as Record<string, unknown>;
    const unknown = Object.keys(entry).find((key) => !ENTRY_FIELDS.includes(key));
    if (unknown !== undefined) throw invalid(file, `${at}: unknown field ${JSON.stringify(unknown.slice(0, 40))}`);
    if (typeof entry.fingerprint !== 'string' || !FINGERPRINT_PATTERN.test(entry.fingerprint)) {
      throw invalid(file, `${at}.fingerprint is not a full fingerprint (52 letters A-Z and digits 2-7)`);
    }
    claim('fingerprint', entry.fingerprint, index, `${at}.fingerprint`);
    const list = (field: 'names' | 'addresses', max: number, check: (item: unknown, where: string) => void): string[] => {
      const items = entry[field];
      if (!Array.isArray(items)) throw invalid(file, `${at}.${field} is not a list`);
      if (items.length > max) throw invalid(file, `${at}.${field} has more than ${max} items`);
      items.forEach((item, i) => check(item, `${at}.${field}[${i}]`));
      return [...(items as string[])];
    };
    const names = list('names', MAX_NAMES_PER_RECEIVER, (name, where) => {
      if (typeof name !== 'string') throw invalid(file, `${where} is not a string`);
      const problem = nameProblem(name);
      if (problem) throw invalid(file, `${where} ${problem}`);
      claim('name', nameKey(name), index, where);
    });
    const addresses = list('addresses', MAX_ADDRESSES_PER_RECEIVER, (address, where) => {
      if (typeof address !== 'string' || canonicalAddress(address) !== address) {
        throw invalid(file, `${where} is not an address in the form host:port or [IPv6]:port (lowercase)`);
      }
      claim('address', address, index, where);
    });
    for (const field of ['added', 'lastSeen'] as const) {
      if (!isIsoTime(entry[field])) throw invalid(file, `${at}.${field} is not an ISO time (like 2025-01-31T12:00:00.000Z)`);
    }
    return { fingerprint: entry.fingerprint, names, addresses, added: entry.added as string, lastSeen: entry.lastSeen as string };
  });
}

function copyOf(entry: PinnedReceiver): PinnedReceiver {
  return { ...entry, names: [...entry.names], addresses: [...entry.addresses] };
}

/** How stale `lastSeen` may get before a contact that changes nothing else rewrites the file. */
const LAST_SEEN_RESOLUTION_MS = 3_600_000;

export class TrustStore {
  readonly file: string;
  private readonly fs: TrustStoreFs;
  private readonly now: () => Date;
  private readonly lockWaitMs: number;

  constructor(file: string, options: TrustStoreOptions = {}) {
    this.file = path.resolve(file);
    this.fs = options.fs ?? nodeFs;
    this.now = options.now ?? (() => new Date());
    this.lockWaitMs = options.lockWaitMs ?? LOCK_WAIT_MS;
  }

  /** Every pin; a missing file has none. */
  async list(): Promise<PinnedReceiver[]> {
    return (await this.read()).map(copyOf);
  }

  /** The pins that apply: the entry holding this name, and the entry holding this address. */
  async lookup(query: { name?: string; address?: string }): Promise<{ byName?: PinnedReceiver; byAddress?: PinnedReceiver }> {
    const address = query.address === undefined ? undefined : this.checkedAddress(query.address);
    const entries = await this.read();
    const result: { byName?: PinnedReceiver; byAddress?: PinnedReceiver } = {};
    if (query.name !== undefined) {
      const key = nameKey(query.name);
      const byName = entries.find((entry) => entry.names.some((name) => nameKey(name) === key));
      if (byName) result.byName = copyOf(byName);
    }
    if (address !== undefined) {
      const byAddress = entries.find((entry) => entry.addresses.includes(address));
      if (byAddress) result.byAddress = copyOf(byAddress);
    }
    return result;
  }

  /**
   * After a verified contact: the fingerprint now holds this name and address, taken from any
   * other entry (which goes when it is left with neither). A name that cannot be pinned (longer
   * than a beacon carries, or with control characters) is left out: lookup() never finds it.
   */
  async record(contact: { fingerprint: string; name?: string; address?: string }): Promise<void> {
    if (!FINGERPRINT_PATTERN.test(contact.fingerprint)) {
      throw new FtError('USAGE', `cannot pin ${escapeForDisplay(contact.fingerprint.slice(0, 80))}: not a full fingerprint`);
    }
    const address = contact.address === undefined ? undefined : this.checkedAddress(contact.address);
    const name = contact.name !== undefined && nameProblem(contact.name) === undefined ? contact.name : undefined;
    // Every send records its receiver: when nothing would change but a recent lastSeen, no write
    // (a lock, a rename and two fsyncs a send), so lastSeen is kept to within an hour.
    const known = (await this.list()).find((entry) => entry.fingerprint === contact.fingerprint);
    const sameName = name === undefined || (known?.names[0] !== undefined && nameKey(known.names[0]) === nameKey(name));
    const sameAddress = address === undefined || known?.addresses[0] === address;
    if (known && sameName && sameAddress && this.now().getTime() - Date.parse(known.lastSeen) < LAST_SEEN_RESOLUTION_MS) return;
    await this.change((entries) => {
      const time = this.now().toISOString();
      const key = name === undefined ? undefined : nameKey(name);
      let own = entries.find((entry) => entry.fingerprint === contact.fingerprint);
      for (const entry of entries) {
        if (entry === own) continue;
        if (key !== undefined) entry.names = entry.names.filter((n) => nameKey(n) !== key);
        if (address !== undefined) entry.addresses = entry.addresses.filter((a) => a !== address);
      }
      let kept = entries.filter((entry) => entry === own || entry.names.length > 0 || entry.addresses.length > 0);
      if (!own) {
        own = { fingerprint: contact.fingerprint, names: [], addresses: [], added: time, lastSeen: time };
        kept.push(own);
      }
      if (name !== undefined) own.names = [name, ...own.names.filter((n) => nameKey(n) !== key)].slice(0, MAX_NAMES_PER_RECEIVER);
      if (address !== undefined) own.addresses = [address, ...own.addresses.filter((a) => a !== address)].slice(0, MAX_ADDRESSES_PER_RECEIVER);
      own.lastSeen = time;
      if (kept.length > MAX_PINNED_RECEIVERS) {
        const byAge = kept.filter((entry) => entry !== own).sort((a, b) => a.lastSeen.localeCompare(b.lastSeen));
        const dropped = new Set(byAge.slice(0, kept.length - MAX_PINNED_RECEIVERS));
        kept = kept.filter((entry) => !dropped.has(entry));
      }
      return { entries: kept, result: undefined };
    });
  }

  /**
   * Removes whole entries: every one holding this name (case-insensitively), this address
   * ("host:port", or a bare host for every port), or this fingerprint (short or full). Whole,
   * because a user forgetting a receiver whose key changed wants its old key gone, not kept
   * under its address to be refused by. Returns what was removed (nothing: no file is written).
   */
  async forget(what: string): Promise<PinnedReceiver[]> {
    const text = what.trim();
    if (text === '') throw new FtError('USAGE', 'say which receiver to forget: a name, an address or a fingerprint');
    let fingerprint: string | undefined;
    try {
      fingerprint = parseFingerprint(text);
    } catch {
      fingerprint = undefined;
    }
    const address = canonicalAddress(text);
    const host = canonicalHost(text);
    const key = nameKey(text);
    const matches = (entry: PinnedReceiver) =>
      (fingerprint !== undefined && fingerprintMatches(entry.fingerprint, fingerprint)) ||
      entry.names.some((name) => nameKey(name) === key) ||
      (address !== undefined && entry.addresses.includes(address)) ||
      (host !== undefined && entry.addresses.some((a) => hostOf(a) === host));
    if (!(await this.read()).some(matches)) return [];
    return this.change((entries) => ({
      entries: entries.filter((entry) => !matches(entry)),
      result: entries.filter(matches).map(copyOf),
    }));
  }

  private checkedAddress(address: string): string {
    const canonical = canonicalAddress(address);
    if (canonical === undefined) {
      throw new FtError('USAGE', `${escapeForDisplay(address.slice(0, 300))} is not a receiver address (host:port, or [IPv6]:port)`);
    }
    return canonical;
  }

  /** The entries in the file; none when it does not exist. */
  private async read(): Promise<PinnedReceiver[]> {
    return (await this.readFile()).entries;
  }

  /** The entries, and whether the owner has made the file read-only (which ft respects, even as root). */
  private async readFile(): Promise<{ entries: PinnedReceiver[]; readOnly: boolean }> {
    let text: string;
    let readOnly: boolean;
    try {
      const handle = await this.fs.open(this.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) throw invalid(this.file, 'not a regular file');
        // Whoever may change it may pin their own key for any receiver. (Windows has ACLs instead.)
        if (process.platform !== 'win32' && stat.mode & 0o022) {
          throw invalid(this.file, `others may change it (mode ${(stat.mode & 0o777).toString(8)}): run chmod 600 on it`);
        }
        if (process.getuid && stat.uid !== process.getuid()) throw invalid(this.file, 'it belongs to another user');
        if (stat.size > MAX_FILE_BYTES) throw invalid(this.file, `larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB`);
        readOnly = process.platform !== 'win32' && (stat.mode & 0o200) === 0;
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries: [], readOnly: false };
      throw ioError(this.file, 'read', error);
    }
    return { entries: parseTrustFile(this.file, text), readOnly };
  }

  /** Read, change, write, under the lock: what another process wrote meanwhile is what is changed. */
  private async change<T>(edit: (entries: PinnedReceiver[]) => { entries: PinnedReceiver[]; result: T }): Promise<T> {
    try {
      await this.fs.mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
    } catch (error) {
      throw ioError(this.file, 'create the folder of', error);
    }
    for (let losses = 0; ; losses++) {
      const lock = await this.lock();
      try {
        const current = await this.readFile();
        if (current.readOnly) throw ioError(this.file, 'change', new Error('it is read-only (chmod u+w on it lets ft pin receivers)'));
        const { entries, result } = edit(current.entries);
        const temporary = await this.writeTemporary(entries);
        try {
          // Only a change that took longer than STALE_LOCK_MS can have lost its lock: then it starts over.
          if (!(await lock.stillHeld())) {
            if (losses + 1 >= MAX_LOCK_LOSSES) throw ioError(this.file, 'update', new Error('its lock was taken over repeatedly'));
            continue;
          }
          await this.fs.rename(temporary, this.file);
        } finally {
          await this.fs.unlink(temporary).catch(() => undefined);
        }
        await this.syncFolder();
        return result;
      } finally {
        await lock.release();
      }
    }
  }

  private async writeTemporary(entries: PinnedReceiver[]): Promise<string> {
    const temporary = `${this.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    const text = JSON.stringify({ version: TRUST_FILE_VERSION, receivers: entries.map(copyOf) }, null, 2) + '\n';
    try {
      const handle = await this.fs.open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
    } catch (error) {
      await this.fs.unlink(temporary).catch(() => undefined);
      throw ioError(this.file, 'write', error);
    }
    return temporary;
  }

  /** The rename itself survives a crash only once the folder is synced (best effort: not every OS can). */
  private async syncFolder(): Promise<void> {
    try {
      const folder = await this.fs.open(path.dirname(this.file), constants.O_RDONLY);
      await folder.sync().finally(() => folder.close());
    } catch {
      // Windows cannot open a folder; the file is whole either way.
    }
  }

  /**
   * An exclusive lock file (O_EXCL) beside the trust file, naming its holder. One left by an ft
   * that was killed is broken: at once when its process is gone (same host), else once it is
   * older than STALE_LOCK_MS. Waits at most lockWaitMs, then fails with a clear error.
   */
  private async lock(): Promise<{ stillHeld(): Promise<boolean>; release(): Promise<void> }> {
    const lockFile = `${this.file}.lock`;
    const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), nonce: randomBytes(12).toString('hex'), time: Date.now() });
    const deadline = performance.now() + this.lockWaitMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const handle = await this.fs.open(lockFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          await handle.writeFile(mine);
        } finally {
          await handle.close();
        }
        const held = async () => (await this.readLock(lockFile))?.text === mine;
        return {
          stillHeld: held,
          release: async () => {
            if (await held()) await this.fs.unlink(lockFile).catch(() => undefined);
          },
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(this.file, 'change', error);
      }
      const holder = await this.readLock(lockFile);
      if (holder && isStale(holder)) {
        await this.breakLock(lockFile, holder.text);
        continue;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new FtError(
          'TRUST_STORE_INVALID',
          `cannot update ${describeFile(this.file)}: another ft has held its lock ${escapeForDisplay(lockFile)} for over ${Math.round(this.lockWaitMs / 1000)} s (delete it if no ft is running)`,
          { path: this.file },
        );
      }
      await waitFor(Math.min(left, backoffDelay(LOCK_BACKOFF, attempt)));
    }
  }

  private async readLock(lockFile: string): Promise<LockHolder | undefined> {
    try {
      const handle = await this.fs.open(lockFile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
      try {
        const stat = await handle.stat();
        const text = stat.size <= 4096 ? await handle.readFile('utf8') : '';
        return { text, mtimeMs: stat.mtimeMs };
      } finally {
        await handle.close();
      }
    } catch {
      return undefined; // gone meanwhile: try again
    }
  }

  /**
   * Moves the stale lock aside before deleting it, and deletes only the lock it judged stale:
   * two waiters breaking the same lock must not delete the fresh one the first of them made.
   */
  private async breakLock(lockFile: string, staleText: string): Promise<void> {
    const aside = `${lockFile}.${process.pid}.${randomBytes(6).toString('hex')}.stale`;
    try {
      await this.fs.rename(lockFile, aside);
    } catch {
      return; // someone else broke it
    }
    const moved = await this.readLock(aside);
    if (moved && moved.text !== staleText) {
      // We took a fresh lock: give it back (unless a third ft has locked meanwhile; its holder then starts over).
      const handle = await this.fs.open(lockFile, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600).catch(() => undefined);
      if (handle) await handle.writeFile(moved.text).finally(() => handle.close());
    }
    await this.fs.unlink(aside).catch(() => undefined);
  }
}

interface LockHolder {
  text: string;
  mtimeMs: number;
}

function isStale(holder: LockHolder): boolean {
  if (Date.now() - holder.mtimeMs > STALE_LOCK_MS) return true;
  let owner: { pid?: unknown; host?: unknown };
  try {
    owner = JSON.parse(holder.text) as typeof owner;
  } catch {
    return false; // being written, or not ours: only its age can tell
  }
  if (owner.host !== os.hostname() || !Number.isSafeInteger(owner.pid) || (owner.pid as number) <= 0) return false;
  try {
    process.kill(owner.pid as number, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
