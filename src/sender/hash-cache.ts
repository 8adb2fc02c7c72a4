import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sameIdentity, type FileIdentity } from '../file-system.js';
import { HASH_PATTERN, RECEIPT_PATTERN } from '../wire/messages.js';
import { backoffDelay, waitFor, type Backoff } from '../retry.js';

/** What a cached hash is valid for: the same file (device, inode) unchanged since (size, mtime, ctime). */
export type { FileIdentity } from '../file-system.js';

/** A receiver as the sender met it: the name its hello gave, and the host and port it was reached at. */
export interface ReceiverId {
  name: string;
  host: string;
  port: number;
}

/** An upload receipt (PROTOCOL.md §4.9, §6.5) and what it is valid for. */
export interface StoredReceipt {
  receiver: ReceiverId;
  /** The name the file was sent under. */
  name: string;
  /** The local file when it was sent. */
  file: FileIdentity;
  hash: string;
  /** Opaque to us: the receiver sealed it. */
  receipt: string;
}

interface HashEntry {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  hash: string;
}

/** Version of the file's format; a file of any other version (or none) is read as empty. */
const FORMAT_VERSION = 2;
/** Oldest entries are dropped beyond these. */
const MAX_ENTRIES = 50_000;
const MAX_RECEIPTS = 50_000;
/** Receipts, names and receiver names together, in characters: names may be long, receipts up to 2 KiB. */
const MAX_RECEIPT_CHARS = 32 * 1024 * 1024;
/** A larger file is not ours (or not sane): it is read as empty rather than parsed. */
const MAX_FILE_BYTES = 128 * 1024 * 1024;
/** How long a save waits for another process's save; a lock older than STALE_LOCK_MS was left by a killed one. */
const LOCK_WAIT_MS = 2000;
const STALE_LOCK_MS = 10_000;
/** Another save holds the lock for a few ms: look again soon, then less and less often. */
const LOCK_BACKOFF: Backoff = { baseMs: 20, maxMs: 200 };

/** Where the ft command keeps it: $XDG_CACHE_HOME/ft/hashes.json, else ~/.cache/ft/hashes.json. */
export function defaultHashCachePath(): string {
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ft', 'hashes.json');
}

/**
 * What a sender remembers from one run to the next, in one file:
 *
 * - hashes of large local files, so a re-send or a resume does not read the whole file again.
 *   ctime is part of the key: any write or utimes() changes it, so a file edited and set back
 *   to its old mtime is hashed again. A stale entry could at worst make the header announce an
 *   old hash: the receiver then finds a mismatch and the sender hashes anew;
 * - upload receipts, so a file sent before, unchanged since, is answered "already there"
 *   without its body. A receipt is used only for the receiver, name and local file (same
 *   identity, same hash) it was issued for.
 *
 * It only ever saves work: an unreadable, corrupt or older file reads as empty, and a save
 * that fails is dropped. Two senders saving at once merge their changes (under a lock file).
 */
export class HashCache {
  /** Keys changed since the last save began; null marks a receipt removed. */
  private readonly dirtyHashes = new Set<string>();
  private readonly dirtyReceipts = new Map<string, StoredReceipt | null>();
  private receiptChars = 0;
  /** Saves of this cache run one after another. */
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly hashes: Map<string, HashEntry>,
    private readonly receipts: Map<string, StoredReceipt>,
  ) {
    for (const entry of receipts.values()) this.receiptChars += charsOf(entry);
    this.bound();
  }

  static async load(file: string): Promise<HashCache> {
    const { hashes, receipts } = await readCacheFile(file);
    return new HashCache(file, hashes ?? new Map(), receipts ?? new Map());
  }

  get(id: FileIdentity): string | undefined {
    const entry = this.hashes.get(hashKey(id));
    if (!entry || entry.size !== id.size || entry.mtimeMs !== id.mtimeMs || entry.ctimeMs !== id.ctimeMs) return undefined;
    return entry.hash;
  }

  set(id: FileIdentity, hash: string): void {
    const key = hashKey(id);
    this.hashes.delete(key);
    this.hashes.set(key, { size: id.size, mtimeMs: id.mtimeMs, ctimeMs: id.ctimeMs, hash });
    this.dirtyHashes.add(key);
    this.bound();
  }

  /**
   * The receipt for sending this file under `name` to this receiver, when the file is the one
   * it was issued for, unchanged (same identity, and same hash when `hash` is known).
   */
  receiptFor(receiver: ReceiverId, name: string, id: FileIdentity, hash: string | undefined): StoredReceipt | undefined {
    const entry = this.receipts.get(receiptKey(receiver, name, id));
    if (!entry || !sameIdentity(entry.file, id)) return undefined;
    if (hash && hash !== entry.hash) return undefined;
    return entry;
  }

  /** Keeps a receipt (replacing any for the same receiver, name and file), as the newest. */
  setReceipt(entry: StoredReceipt): void {
    const key = receiptKey(entry.receiver, entry.name, entry.file);
    this.removeReceipt(key);
    const stored = { receiver: { ...entry.receiver }, name: entry.name, file: identityOf(entry.file), hash: entry.hash, receipt: entry.receipt };
    this.receipts.set(key, stored);
    this.receiptChars += charsOf(stored);
    this.dirtyReceipts.set(key, stored);
    this.bound();
  }

  /** Forgets a receipt the receiver no longer honours. */
  dropReceipt(receiver: ReceiverId, name: string, id: FileIdentity): void {
    const key = receiptKey(receiver, name, id);
    if (!this.receipts.has(key)) return;
    this.removeReceipt(key);
    this.dirtyReceipts.set(key, null);
  }

  get receiptCount(): number {
    return this.receipts.size;
  }

  /** Whether something changed since the last save began. */
  get dirty(): boolean {
    return this.dirtyHashes.size > 0 || this.dirtyReceipts.size > 0;
  }

  private removeReceipt(key: string): void {
    const old = this.receipts.get(key);
    if (!old) return;
    this.receipts.delete(key);
    this.receiptChars -= charsOf(old);
  }

  private bound(): void {
    while (this.hashes.size > MAX_ENTRIES) this.hashes.delete(this.hashes.keys().next().value!);
    while (this.receipts.size > MAX_RECEIPTS || this.receiptChars > MAX_RECEIPT_CHARS) this.removeReceipt(this.receipts.keys().next().value!);
  }

  /**
   * Writes the changes made since the last save into the file, atomically (temporary file,
   * then rename), merged with what other senders saved there meanwhile; failures are ignored.
   * A change made while a save runs is saved next time.
   */
  save(): Promise<void> {
    const run = this.saving.then(() => this.saveNow());
    this.saving = run;
    return run;
  }

  private async saveNow(): Promise<void> {
    if (!this.dirty) return;
    const hashKeys = [...this.dirtyHashes];
    const receiptChanges = [...this.dirtyReceipts];
    this.dirtyHashes.clear();
    this.dirtyReceipts.clear();
    const temporary = `${this.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    let unlock: (() => Promise<void>) | undefined;
    try {
      await fs.mkdir(path.dirname(this.file), { recursive: true });
      unlock = await lock(`${this.file}.lock`);
      const disk = await readCacheFile(this.file);
      // What others saved stands, except where we changed something; a file we cannot read is replaced by ours.
      const merged = new HashCache(this.file, disk.hashes ?? new Map(this.hashes), disk.receipts ?? new Map(this.receipts));
      for (const key of hashKeys) {
        const entry = this.hashes.get(key);
        merged.hashes.delete(key);
        if (entry) merged.hashes.set(key, entry);
      }
      for (const [key, entry] of receiptChanges) {
        merged.removeReceipt(key);
        if (entry && this.receipts.get(key) === entry) {
          merged.receipts.set(key, entry);
          merged.receiptChars += charsOf(entry);
        }
      }
      merged.bound();
      const text = JSON.stringify({
        version: FORMAT_VERSION,
        hashes: Object.fromEntries(merged.hashes),
        receipts: [...merged.receipts.values()],
      });
      // Owner-only: it lists what was sent where.
      await fs.writeFile(temporary, text, { mode: 0o600, flag: 'wx' });
      await fs.rename(temporary, this.file);
    } catch {
      await fs.unlink(temporary).catch(() => undefined);
      for (const key of hashKeys) this.dirtyHashes.add(key);
      for (const [key, entry] of receiptChanges) if (!this.dirtyReceipts.has(key)) this.dirtyReceipts.set(key, entry);
    } finally {
      await unlock?.();
    }
  }
}

/** The file's maps, or undefined ones when it is missing, unreadable, too large, corrupt or of another version. */
async function readCacheFile(file: string): Promise<{ hashes?: Map<string, HashEntry>; receipts?: Map<string, StoredReceipt> }> {
  let raw: unknown;
  try {
    const handle = await fs.open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const stat = await handle.stat();
      if (!stat.isFile() || stat.size > MAX_FILE_BYTES) return {};
      raw = JSON.parse(await handle.readFile('utf8'));
    } finally {
      await handle.close();
    }
  } catch {
    return {};
  }
  const top = raw as { version?: unknown; hashes?: unknown; receipts?: unknown } | null;
  if (!top || typeof top !== 'object' || top.version !== FORMAT_VERSION) return {};
  const hashes = new Map<string, HashEntry>();
  if (top.hashes && typeof top.hashes === 'object' && !Array.isArray(top.hashes)) {
    for (const [key, value] of Object.entries(top.hashes as Record<string, unknown>)) {
      if (/^\d+:\d+$/.test(key) && isHashEntry(value)) hashes.set(key, { size: value.size, mtimeMs: value.mtimeMs, ctimeMs: value.ctimeMs, hash: value.hash });
    }
  }
  const receipts = new Map<string, StoredReceipt>();
  if (Array.isArray(top.receipts)) {
    for (const value of top.receipts as unknown[]) {
      if (!isStoredReceipt(value)) continue;
      const entry: StoredReceipt = { receiver: { name: value.receiver.name, host: value.receiver.host, port: value.receiver.port }, name: value.name, file: identityOf(value.file), hash: value.hash, receipt: value.receipt };
      const key = receiptKey(entry.receiver, entry.name, entry.file);
      receipts.delete(key);
      receipts.set(key, entry);
    }
  }
  return { hashes, receipts };
}

/**
 * An exclusive lock file, so that two savers do not both merge with the same old file and lose
 * each other's changes. Waits up to LOCK_WAIT_MS; past that the save goes on without (the
 * rename still keeps the file whole: at worst one saver's changes are lost).
 */
async function lock(file: string): Promise<(() => Promise<void>) | undefined> {
  const deadline = performance.now() + LOCK_WAIT_MS;
  for (let attempt = 0; ; attempt++) {
    try {
      await (await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)).close();
      return () => fs.unlink(file).catch(() => undefined);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return undefined;
    }
    const stat = await fs.lstat(file).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > STALE_LOCK_MS) {
      await fs.unlink(file).catch(() => undefined);
      continue;
    }
    const left = deadline - performance.now();
    if (left <= 0) return undefined;
    await waitFor(Math.min(left, backoffDelay(LOCK_BACKOFF, attempt)));
  }
}

function hashKey(id: FileIdentity): string {
  return `${id.dev}:${id.ino}`;
}

function receiptKey(receiver: ReceiverId, name: string, id: FileIdentity): string {
  return JSON.stringify([receiver.name, receiver.host, receiver.port, name, id.dev, id.ino]);
}

function identityOf(id: FileIdentity): FileIdentity {
  return { dev: id.dev, ino: id.ino, size: id.size, mtimeMs: id.mtimeMs, ctimeMs: id.ctimeMs };
}

function charsOf(entry: StoredReceipt): number {
  return entry.receipt.length + entry.name.length + entry.receiver.name.length + entry.receiver.host.length + 128;
}

function isHashEntry(value: unknown): value is HashEntry {
  const e = value as HashEntry;
  return (
    typeof e === 'object' &&
    e !== null &&
    Number.isSafeInteger(e.size) &&
    typeof e.mtimeMs === 'number' &&
    typeof e.ctimeMs === 'number' &&
    typeof e.hash === 'string' &&
    HASH_PATTERN.test(e.hash)
  );
}

function isIdentity(value: unknown): value is FileIdentity {
  const id = value as FileIdentity;
  return (
    typeof id === 'object' &&
    id !== null &&
    Number.isFinite(id.dev) &&
    Number.isFinite(id.ino) &&
    Number.isSafeInteger(id.size) &&
    Number.isFinite(id.mtimeMs) &&
    Number.isFinite(id.ctimeMs)
  );
}

function isStoredReceipt(value: unknown): value is StoredReceipt {
  const e = value as StoredReceipt;
  if (typeof e !== 'object' || e === null) return false;
  const r = e.receiver as ReceiverId | undefined;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.name === 'string' &&
    typeof r.host === 'string' &&
    Number.isInteger(r.port) &&
    r.port > 0 &&
    r.port < 65536 &&
    typeof e.name === 'string' &&
    e.name.length > 0 &&
    isIdentity(e.file) &&
    typeof e.hash === 'string' &&
    HASH_PATTERN.test(e.hash) &&
    typeof e.receipt === 'string' &&
    RECEIPT_PATTERN.test(e.receipt)
  );
}
