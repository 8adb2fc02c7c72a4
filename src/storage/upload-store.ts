/**
 * The upload store port: what receiving a file needs of storage, whatever the storage is (a
 * local folder today; an object store later). Shaped by the upload, not by system calls, in
 * the spirit of tus-node-server's DataStore and Locker:
 *
 *   inspect(name) → open(key) → [hashPrefix()] → append(from) → write… → end()
 *                 → commit(name, hash, metadata) | abandon() | discard()
 *   makeFolder(name)  (an empty folder: no upload)
 *
 * The ingest service (src/ingest/) makes every decision and calls these in that order; a store
 * never talks to a peer and never decides what a peer may learn. Nothing here names a path on
 * the receiving machine: names are the validated components of a peer's file name (parseSafeName).
 */
/** What a store can do, so that callers ask rather than assume. */
export interface StoreCapabilities {
  /** A commit never replaces a different file under the name, and the check is atomic with the placement. */
  readonly atomicNoReplace: boolean;
  /** freeSpace() answers (otherwise only the disk filling up stops a body). */
  readonly freeSpace: boolean;
  /** An upload may be opened before its size is known (open with `size` undefined). */
  readonly lateSize: boolean;
  /** Uploads left unfinished survive a restart of the receiver (resume). */
  readonly durableUploads: boolean;
  /** commit() applies FileMetadata, and makeFolder() creates folders. */
  readonly metadata: boolean;
}

/** Who uploads what: an upload's key. Another owner's upload of the same name and size is another upload. */
export interface UploadKey {
  /** Fingerprint of the key the sender proved in its hello: 64 lowercase hex digits. */
  readonly owner: string;
  /** The peer's file name as sent (already validated). */
  readonly filename: string;
  /** The whole file's size; undefined while it is unknown (a stream; needs `lateSize`). */
  readonly size: number | undefined;
  /** The content's hash when the header has it: a kept upload of other content is not resumed. */
  readonly hash?: string;
}

/** What a header may learn of a name before its body: nothing about content, only what the policy must refuse. */
export type TargetState = { readonly kind: 'free' } | { readonly kind: 'conflict'; readonly reason: string };

/**
 * What a store records of a committed file, to tell later that it is unchanged (a receipt
 * seals it). Opaque to everyone but the store that made it.
 */
export type StoredIdentity = Readonly<Record<string, string | number>>;

/**
 * What a file keeps besides its bytes, as the sender asked (PROTOCOL.md §9.5). A store applies
 * what it can before the file is made durable and placed, and says what in its capabilities.
 */
export interface FileMetadata {
  /** Modification time, in nanoseconds since the epoch (negative before 1970). */
  readonly mtimeNs?: bigint;
  /**
   * Permission bits asked for: a store applies at most the 0o777 bits (never set-user-id,
   * set-group-id or sticky), masked by its own umask.
   */
  readonly mode?: number;
}

/** Where a committed upload ended up. */
export interface Placed {
  /** Relative to the inbox, `/`-separated: the name, or a variant of it. */
  readonly path: string;
  /** An identical file already had this name: the upload was dropped instead of stored twice. */
  readonly deduplicated: boolean;
  readonly identity: StoredIdentity;
}

export interface OpenOptions {
  /**
   * The address of the peer: what the upload counts against in the store's quotas (an IPv4
   * address, or an IPv6 address, counted by its /64).
   */
  readonly peer: string;
  /** Gives up waiting for an older holder of the same key to let go. */
  readonly signal?: AbortSignal;
  /**
   * Records the upload at once, so that a restart finds it (at offset 0), and keeps it for
   * resume whatever its size until it is committed, discarded or expired: for a protocol that
   * creates an upload apart from its bytes (tus). One already kept under the key is resumed.
   */
  readonly record?: boolean;
  /**
   * The metadata the header asked for, which commit() will most likely be given: a store that
   * fixes an object's metadata when the object is begun (an S3 multipart upload) gives it then,
   * so that the object appears with it. commit()'s metadata is what counts.
   */
  readonly metadata?: FileMetadata;
}

export interface UploadStore {
  readonly capabilities: StoreCapabilities;
  /**
   * Text that must never reach a peer (the inbox's location on this machine): a session
   * replaces it in anything it sends.
   */
  readonly privateLocation: string;
  /** Decides, before any body byte, whether the name can be used under the store's conflict policy. */
  inspect(components: readonly string[]): Promise<TargetState>;
  /**
   * Opens the upload for `key`, creating it or resuming what is held. The upload holds the
   * key's lock until it is committed, abandoned or discarded. A key already held is taken over:
   * its holder's `revoked` signal aborts and this call waits for it to let go (bounded; then
   * FtError BUSY). Throws FtError BUSY when the store's quotas leave no room.
   */
  open(key: UploadKey, options: OpenOptions): Promise<Upload>;
  /**
   * Opens only an upload that exists already (recorded, or kept for resume), holding its lock
   * as open() does (a holder is taken over); undefined when there is none: nothing is created.
   * Such an upload stays kept whatever its size.
   */
  resume(key: UploadKey, options: OpenOptions): Promise<Upload | undefined>;
  /**
   * Creates the folder `components` and those on the way (an empty folder a sender announced),
   * under the conflict policy as for a file's folders: one that exists is fine; a file or link in
   * the way is CONFLICT or UNSAFE_PATH, or under `rename` gives a variant. Returns its path,
   * relative to the inbox.
   */
  makeFolder(components: readonly string[]): Promise<string>;
  /**
   * Whether `path` (from a Placed) still holds the file committed with `identity`, unchanged.
   * Asynchronous: a store on the network can only tell by asking (an S3 HeadObject).
   */
  unchanged(path: string, identity: StoredIdentity): Promise<boolean>;
  /** Free bytes for new data, or undefined when the store cannot tell (see capabilities). */
  freeSpace(): Promise<number | undefined>;
  /**
   * The unfinished uploads kept now, with when expire(ttlMs) may first delete each, and the
   * entries that cannot be ours (one line each). Reads only: nothing is created or deleted.
   */
  listPartials(ttlMs: number): Promise<PartialListing>;
  /** Deletes uploads untouched for `ttlMs` (and the store's own garbage); returns what it deleted. */
  expire(ttlMs: number, now?: number): Promise<string[]>;
  /** How often expire() should run, in ms. */
  readonly sweepIntervalMs: number;
  /** Releases what the store holds open (after every upload is done). */
  close(): Promise<void>;
}

export interface Upload {
  readonly key: UploadKey;
  /** Bytes held: where a body resumes. The store is the authority on it. */
  readonly offset: number;
  /** Whether what is written is kept for resume if the upload is abandoned. */
  readonly resumable: boolean;
  /**
   * Aborts when a newer open() of the same key takes the lock over. The holder stops writing
   * and lets go (abandon) as soon as it can; the newer upload then resumes from what was kept.
   */
  readonly revoked: AbortSignal;
  /**
   * Calls `listener` once when the upload is revoked (at once if it is already), and returns
   * what stops that: the cheap way for a holder to be told (a listener on `revoked` costs far
   * more, and a header flood holds one upload per header).
   */
  onRevoked(listener: () => void): () => void;
  /**
   * Hashes the bytes held (the first `offset` bytes) and returns the hash the sender checks
   * its own prefix against. The offset may drop (to 0) if what was held is gone.
   */
  hashPrefix(): Promise<string>;
  /**
   * Starts writing at `from`: the offset (after hashPrefix), or 0 to start over. `length` is
   * the number of bytes that will follow, or undefined when unknown (declare it with end()).
   */
  append(from: number, length: number | undefined): Promise<UploadWriter>;
  /**
   * Verifies the whole file's hash against `expectedHash` (a mismatch discards the upload and
   * throws FtError HASH_MISMATCH), makes the file durable, places it under `components` (or a
   * variant, as the conflict policy says) without ever replacing a different file, and lets go.
   * Once placed, what is kept of the same owner's uploads of the same name but another size
   * (its source changed, and it was sent again from the start) is deleted, unless in use:
   * orphans, which would otherwise wait for the TTL. Another owner's uploads are never touched.
   * `metadata` is applied to the file before it is made durable (not to an identical file
   * already there that a deduplicating store keeps instead).
   */
  commit(components: readonly string[], expectedHash: string, metadata?: FileMetadata): Promise<Placed>;
  /** The upload will not complete now: keep what can be resumed, and let go. Idempotent; never throws. */
  abandon(): Promise<void>;
  /** The bytes are not wanted: delete them, and let go. Idempotent; never throws. */
  discard(): Promise<void>;
  /**
   * When expire(ttlMs) may first delete what this upload keeps, if it were let go now, in ms
   * since the epoch (counted from the store's last write to it); undefined when nothing is kept.
   */
  keptUntil(ttlMs: number): number | undefined;
}

/** A body being written. Writes are in order; a returned promise means: wait before the next one. */
export interface UploadWriter {
  write(chunk: Buffer): void | Promise<void>;
  /** Bytes of the whole file so far (the prefix kept, and what was written since). */
  readonly size: number;
  /**
   * Every byte is written: flushes what is buffered and returns the hash of the whole file
   * (prefix and body). `size`, when given, declares the file's size late (a stream).
   */
  end(size?: number): Promise<string>;
}

/** An unfinished upload a store keeps (see UploadStore.listPartials). Times are ms since the epoch. */
export interface PartialUpload {
  /** The peer's file name as sent (validated; escape it for display). */
  readonly name: string;
  /** Fingerprint of the sender's key; for a tus upload, the upload's own (see src/web/upload-id.ts). */
  readonly owner: string;
  /** The whole file's size. */
  readonly size: number;
  /** Bytes held: where the upload resumes. */
  readonly bytes: number;
  /** `send` (ft send's protocol) or `tus` (created apart from its bytes: the web page, a tus client). */
  readonly kind: 'send' | 'tus';
  /** When the upload was first made; undefined when its record does not say. */
  readonly createdAt: number | undefined;
  /** The last write to what is held: the TTL counts from it. */
  readonly lastWriteAt: number;
  /** When expire() may first delete it (the TTL from the last write, or less for what holds little). */
  readonly expiresAt: number;
  /** The address of the peer that made it, when recorded. */
  readonly peer?: string;
  /** Whether an upload holds it now; absent where the store cannot tell (another process). */
  readonly inUse?: boolean;
}

/** Something in the store's state that is not a usable upload: reported, never followed. */
export interface UnreadablePartial {
  /** The entry, as the store names it (a file name in the local store's hidden folder). */
  readonly entry: string;
  readonly reason: string;
}

export interface PartialListing {
  readonly partials: PartialUpload[];
  readonly unreadable: UnreadablePartial[];
  /** More entries than a listing reads (see SCAN_LIMIT): the rest are not shown. */
  readonly truncated: boolean;
}
