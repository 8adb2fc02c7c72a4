import { FtError, isWireCode, type WireCode } from '../errors.js';
import type { JsonObject } from './frame.js';

/** Protocol marker and version: a receiver greets with them, a sender must echo a version it shares. */
export const PROTOCOL = 'ft';
/**
 * 2: a header may leave out the hash, which then follows the body (a first send reads its file once).
 * 3: every sender proves an owner key (partials are private to it), "already there" rests on a
 *    receipt the receiver issued to that owner, and `need-hash` is gone (docs/PROTOCOL.md).
 */
export const PROTOCOL_VERSION = 5;
/**
 * 4: both hellos carry `features`, and a capability is a feature both list rather than a new
 *    version; a peer ignores the features it does not know (docs/PROTOCOL.md §9).
 * 5: the connection runs TLS 1.3 unless both sides chose plaintext; the token and owner proofs
 *    are made over keying material exported from this TLS session, the sender's hello carries a
 *    nonce of its own, and the receiver answers it with `welcome` (and its own token proof)
 *    before any file may be announced.
 */
export const FEATURES = {
  /** A header may leave out the hash, which then follows the body in a `hash` message. */
  TRAILING_HASH: 'trailing-hash',
  /** A header may announce a stream of unknown size: its body comes in several frames, its size in the `hash` message. Needs `trailing-hash`. */
  STREAM: 'stream',
  /** Headers carry the modification time (and, when asked, permission bits); empty folders get a header of their own. */
  METADATA: 'metadata',
} as const;
export type Feature = (typeof FEATURES)[keyof typeof FEATURES];
/** What this implementation speaks, in the order it lists them. */
export const OUR_FEATURES: readonly Feature[] = [FEATURES.TRAILING_HASH, FEATURES.STREAM, FEATURES.METADATA];
/** A feature name: lowercase letters, digits and hyphens. */
const FEATURE_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** Features one hello may list: more is not a peer we need to read. */
export const MAX_FEATURES = 64;

/** Features usable only together with others (docs/PROTOCOL.md §9.2). */
const REQUIRES: Partial<Record<Feature, readonly Feature[]>> = { [FEATURES.STREAM]: [FEATURES.TRAILING_HASH] };

/** The features both peers listed, less those whose requirements are not shared: what the connection may use. */
export function sharedFeatures(ours: readonly string[], theirs: readonly string[]): Set<Feature> {
  const known = new Set<string>(ours);
  const both = new Set(theirs.filter((name): name is Feature => known.has(name)));
  for (const feature of both) if (REQUIRES[feature]?.some((needed) => !both.has(needed))) both.delete(feature);
  return both;
}
export const DEFAULT_PORT = 9527;
/**
 * Headers a receiver takes on one connection (every header counts: refused, skipped, re-sent).
 * A sender with more files finishes the connection (`bye`) and goes on over a new one.
 */
export const MAX_FILES_PER_CONNECTION = 10_000;

/**
 * Folder headers a receiver takes on one connection (`metadata`): each may create up to 64
 * nested folders, which cost inodes and no bytes. More are refused BUSY.
 */
export const MAX_FOLDERS_PER_CONNECTION = 1000;

/**
 * A modification time: decimal seconds since the epoch, negative before 1970, with up to 9
 * fraction digits (nanoseconds). At most 12 integer digits: a time in milliseconds by mistake
 * (13 digits today) is refused rather than read as a date 50,000 years away.
 */
export const MTIME_PATTERN = /^-?(0|[1-9][0-9]{0,11})(\.[0-9]{1,9})?$/;
/** Permission bits as a header carries them: the receiver applies only 0o777 of them. */
export const MAX_MODE = 0o7777;

/** `xxh64:` + 16 lowercase hex digits: XXH64, seed 0, of the content. */
export const HASH_PATTERN = /^xxh64:[0-9a-f]{16}$/;
const NONCE_PATTERN = /^[0-9a-f]{32,128}$/;
/** The sender's nonce: exactly 16 random bytes. */
const SENDER_NONCE_PATTERN = /^[0-9a-f]{32}$/;
const PROOF_PATTERN = /^[0-9a-f]{64}$/;
/** A raw Ed25519 public key (32 bytes) and a signature (64 bytes), in lowercase hex. */
const OWNER_KEY_PATTERN = /^[0-9a-f]{64}$/;
const OWNER_PROOF_PATTERN = /^[0-9a-f]{128}$/;
/** An upload receipt: opaque to the sender, base64url. */
/** Up to 16384: it seals the stored path (a name of up to 4096 bytes, JSON-escaped, with variant suffixes), padded (receipts.ts). */
export const RECEIPT_PATTERN = /^[A-Za-z0-9_-]{16,16384}$/;
const MAX_TEXT = 4096;
const MAX_FILENAME_BYTES = 4096;

export type AuthMethod = 'none' | 'hmac-sha256';

// Receiver → sender.
export interface ReceiverHello {
  type: 'hello';
  protocol: typeof PROTOCOL;
  version: number;
  auth: AuthMethod;
  nonce: string;
  name?: string;
  /** The features this receiver speaks; the connection uses those the sender lists too. */
  features: string[];
}
export interface Accept {
  type: 'accept';
  id: number;
  offset: number;
  /** Present when offset > 0: XXH64 of the receiver's first `offset` bytes (of this owner's own partial). */
  prefixHash?: string;
}
/** The header's receipt names a file this owner uploaded, unchanged since. */
export interface Skip {
  type: 'skip';
  id: number;
  reason: 'already-there';
  /** Where it is stored; told only to senders that proved the receiver's token. */
  path?: string;
}
export interface Refuse {
  type: 'refuse';
  id: number;
  code: WireCode;
  message: string;
}
export interface Done {
  type: 'done';
  id: number;
  /** Absent only in the answer to a folder header (`metadata`). */
  hash?: string;
  /** Where it was stored; told only to senders that proved the receiver's token. */
  path?: string;
  /** Lets the same owner's later header for the same file be answered "already there". */
  receipt?: string;
}
export interface Failed {
  type: 'failed';
  id: number;
  code: WireCode;
  message: string;
}
export interface ErrorMessage {
  type: 'error';
  code: WireCode;
  message: string;
}
/** The sender's hello held: files may come. With a token, the receiver proves it too. */
export interface Welcome {
  type: 'welcome';
  /** HMAC-SHA256 under the token over this channel (docs/PROTOCOL.md §3.4): present when the hello asked for a token. */
  proof?: string;
}
export type ReceiverMessage = ReceiverHello | Welcome | Accept | Skip | Refuse | Done | Failed | ErrorMessage;

// Sender → receiver.
export interface SenderHello {
  type: 'hello';
  protocol: typeof PROTOCOL;
  version: number;
  /** 16 random bytes, hex: the receiver's token proof covers it, so it is fresh even without TLS. */
  nonce?: string;
  /** HMAC-SHA256 under the token over this channel (docs/PROTOCOL.md §3.4). */
  proof?: string;
  client?: string;
  /**
   * The sender's owner key: a raw Ed25519 public key; its partials are private to it. Required
   * in version 3 (optional here so that an older peer is told its version is wrong, not its fields).
   */
  owner?: string;
  /** Ed25519 signature by the owner key over this channel (docs/PROTOCOL.md §3.4). */
  ownerProof?: string;
  /** The features this sender speaks (the ones it will use, if the receiver listed them too). */
  features: string[];
}
export interface FileHeader {
  type: 'file';
  id: number;
  filename: string;
  /** Absent only for a stream, whose size the `hash` message declares. */
  size?: number;
  /** Absent: the hash follows the body, in a `hash` message. */
  hash?: string;
  /** A stream of unknown size (feature `stream`): no size, no hash, a body in several frames. */
  stream?: true;
  /** A receipt from an earlier `done` for this file: "already there" if it still holds. */
  receipt?: string;
  /** `metadata`: the modification time, decimal seconds since the epoch (MTIME_PATTERN; see parseMtime). */
  mtime?: string;
  /** `metadata`, when the sender preserves modes: the file's permission bits. */
  mode?: number;
}
/** `metadata`: an empty folder to create (no size, hash or body); answered `done` without hash, or `refuse`. */
export interface FolderHeader {
  type: 'file';
  id: number;
  filename: string;
  folder: true;
}
export interface Body {
  type: 'body';
  id: number;
  offset: number;
  length: number;
}
/** After the body of a file whose header had no hash: XXH64 of the whole file. */
export interface BodyHash {
  type: 'hash';
  id: number;
  hash: string;
  /** After a stream's last body frame: its size, every byte of every frame. */
  size?: number;
}
export interface Cancel {
  type: 'cancel';
  id: number;
}
export interface Bye {
  type: 'bye';
}
export type SenderMessage = SenderHello | FileHeader | FolderHeader | Body | BodyHash | Cancel | Bye;

/** Reads fields off an untrusted object, building a new one: unknown keys (and `__proto__`) never pass. */
class Fields {
  constructor(
    private readonly raw: JsonObject,
    private readonly type: string,
  ) {}

  private bad(field: string, expected: string): never {
    const got = Object.hasOwn(this.raw, field) ? JSON.stringify(this.raw[field])?.slice(0, 60) : 'nothing';
    throw new FtError('BAD_MESSAGE', `"${this.type}" message: expected ${field} to be ${expected}, got ${got}`);
  }

  private value(field: string): unknown {
    return Object.hasOwn(this.raw, field) ? this.raw[field] : undefined;
  }

  id(): number {
    const v = this.value('id');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.bad('id', 'a positive integer');
    return v;
  }

  count(field: string): number {
    const v = this.value(field);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.bad(field, 'a non-negative integer up to 2^53-1');
    return v;
  }

  optionalCount(field: string): number | undefined {
    return this.value(field) === undefined ? undefined : this.count(field);
  }

  /** A count when the field holds one, else undefined: for a field the base protocol does not know. */
  lenientCount(field: string): number | undefined {
    const v = this.value(field);
    return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  }

  optionalBoolean(field: string): boolean | undefined {
    const v = this.value(field);
    if (v !== undefined && typeof v !== 'boolean') this.bad(field, 'true or false');
    return v as boolean | undefined;
  }

  text(field: string, maxBytes = MAX_TEXT): string {
    const v = this.value(field);
    if (typeof v !== 'string' || Buffer.byteLength(v) > maxBytes) this.bad(field, `a string of at most ${maxBytes} bytes`);
    return v;
  }

  optionalText(field: string): string | undefined {
    return this.value(field) === undefined ? undefined : this.text(field);
  }

  matching(field: string, pattern: RegExp, description: string): string {
    const v = this.value(field);
    if (typeof v !== 'string' || !pattern.test(v)) this.bad(field, description);
    return v;
  }

  optionalMatching(field: string, pattern: RegExp, description: string): string | undefined {
    return this.value(field) === undefined ? undefined : this.matching(field, pattern, description);
  }

  /** An integer from 0 to `max`, or undefined when absent. */
  optionalCountUpTo(field: string, max: number): number | undefined {
    const v = this.value(field);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) this.bad(field, `an integer from 0 to ${max}`);
    return v;
  }

  /** The field must be absent. */
  absent(field: string, why: string): void {
    if (this.value(field) !== undefined) this.bad(field, why);
  }

  /** A list of feature names; absent is none, and names not of feature form are dropped (a newer peer's). */
  features(): string[] {
    const v = this.value('features');
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.length > MAX_FEATURES) this.bad('features', `a list of at most ${MAX_FEATURES} feature names`);
    return [...new Set(v.filter((name): name is string => typeof name === 'string' && FEATURE_PATTERN.test(name)))];
  }

  oneOf<T extends string>(field: string, allowed: readonly T[]): T {
    const v = this.value(field);
    if (!allowed.includes(v as T)) this.bad(field, `one of ${allowed.join(', ')}`);
    return v as T;
  }

  code(): WireCode {
    const v = this.value('code');
    // An unknown code from a newer peer is kept as INTERNAL rather than failing the parse; so is
    // a local-only one (LOCAL_CODES, PROTOCOL.md §7.1): a peer never sends those, and is not believed.
    if (typeof v !== 'string') this.bad('code', 'an error code string');
    return isWireCode(v) ? v : 'INTERNAL';
  }
}

const HASH_DESCRIPTION = '"xxh64:" and 16 lowercase hex digits';
const NO_FEATURES: ReadonlySet<string> = new Set();

function parseFolderHeader(f: Fields): FolderHeader {
  const header: FolderHeader = { type: 'file', id: f.id(), filename: f.text('filename', MAX_FILENAME_BYTES), folder: true };
  for (const field of ['size', 'hash', 'receipt', 'stream']) f.absent(field, 'absent in a folder header');
  return header;
}

/** Nanoseconds since the epoch from a time MTIME_PATTERN accepted. */
export function parseMtime(text: string): bigint {
  const negative = text.startsWith('-');
  const [whole, fraction = ''] = (negative ? text.slice(1) : text).split('.');
  const ns = BigInt(whole!) * 1_000_000_000n + BigInt(fraction.padEnd(9, '0'));
  return negative ? -ns : ns;
}

/** The wire form of a time in nanoseconds: decimal seconds, the fraction without trailing zeros. */
export function formatMtime(ns: bigint): string {
  const negative = ns < 0n;
  const magnitude = negative ? -ns : ns;
  const whole = magnitude / 1_000_000_000n;
  const fraction = (magnitude % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${negative ? '-' : ''}${whole}${fraction ? `.${fraction}` : ''}`;
}
const RECEIPT_DESCRIPTION = '16 to 16384 base64url characters';

function typeOf(raw: JsonObject): string {
  const type = Object.hasOwn(raw, 'type') ? raw.type : undefined;
  if (typeof type !== 'string') throw new FtError('BAD_MESSAGE', 'message has no string "type"');
  return type;
}

function protocolVersion(f: Fields): { protocol: typeof PROTOCOL; version: number } {
  f.oneOf('protocol', [PROTOCOL]);
  return { protocol: PROTOCOL, version: f.count('version') };
}

/**
 * A sender's message. `features` are the connection's: fields of a feature not agreed are
 * unknown fields, ignored like any other (docs/PROTOCOL.md §9.2).
 */
export function parseSenderMessage(raw: JsonObject, features: ReadonlySet<string> = NO_FEATURES): SenderMessage {
  const type = typeOf(raw);
  const f = new Fields(raw, type);
  switch (type) {
    case 'hello': {
      const hello: SenderHello = { type, ...protocolVersion(f), features: f.features() };
      const owner = f.optionalMatching('owner', OWNER_KEY_PATTERN, '64 lowercase hex digits (an Ed25519 public key)');
      if (owner !== undefined) hello.owner = owner;
      const ownerProof = f.optionalMatching('ownerProof', OWNER_PROOF_PATTERN, '128 lowercase hex digits (an Ed25519 signature)');
      if (ownerProof !== undefined) hello.ownerProof = ownerProof;
      const proof = f.optionalMatching('proof', PROOF_PATTERN, '64 lowercase hex digits');
      if (proof !== undefined) hello.proof = proof;
      const nonce = f.optionalMatching('nonce', SENDER_NONCE_PATTERN, '32 lowercase hex digits');
      if (nonce !== undefined) hello.nonce = nonce;
      const client = f.optionalText('client');
      if (client !== undefined) hello.client = client;
      return hello;
    }
    case 'file': {
      const metadata = features.has(FEATURES.METADATA);
      if (metadata && f.optionalBoolean('folder') === true) return parseFolderHeader(f);
      const stream = f.optionalBoolean('stream') === true;
      const header: FileHeader = { type, id: f.id(), filename: f.text('filename', MAX_FILENAME_BYTES) };
      // A stream has no size; whether it may come at all, and without what, is the state machine's to say.
      const size = stream ? f.optionalCount('size') : f.count('size');
      if (size !== undefined) header.size = size;
      if (stream) header.stream = true;
      if (metadata) {
        const mtime = f.optionalMatching('mtime', MTIME_PATTERN, 'decimal seconds since the epoch, up to 12 integer and 9 fraction digits');
        if (mtime !== undefined) header.mtime = mtime;
        const mode = f.optionalCountUpTo('mode', MAX_MODE);
        if (mode !== undefined) header.mode = mode;
      }
      const hash = f.optionalMatching('hash', HASH_PATTERN, HASH_DESCRIPTION);
      if (hash !== undefined) header.hash = hash;
      const receipt = f.optionalMatching('receipt', RECEIPT_PATTERN, RECEIPT_DESCRIPTION);
      if (receipt !== undefined) header.receipt = receipt;
      return header;
    }
    case 'body':
      return { type, id: f.id(), offset: f.count('offset'), length: f.count('length') };
    case 'hash': {
      const bodyHash: BodyHash = { type, id: f.id(), hash: f.matching('hash', HASH_PATTERN, HASH_DESCRIPTION) };
      // Read only where it means something (a stream's); elsewhere it is an unknown field, ignored.
      const size = f.lenientCount('size');
      if (size !== undefined) bodyHash.size = size;
      return bodyHash;
    }
    case 'cancel':
      return { type, id: f.id() };
    case 'bye':
      return { type };
    default:
      throw new FtError('BAD_MESSAGE', `unknown message type ${JSON.stringify(type).slice(0, 40)} from sender`);
  }
}

export function parseReceiverMessage(raw: JsonObject): ReceiverMessage {
  const type = typeOf(raw);
  const f = new Fields(raw, type);
  switch (type) {
    case 'hello': {
      const hello: ReceiverHello = {
        type,
        ...protocolVersion(f),
        auth: f.oneOf('auth', ['none', 'hmac-sha256'] as const),
        nonce: f.matching('nonce', NONCE_PATTERN, '32 to 128 lowercase hex digits'),
        features: f.features(),
      };
      const name = f.optionalText('name');
      if (name !== undefined) hello.name = name;
      return hello;
    }
    case 'welcome': {
      const welcome: Welcome = { type };
      const proof = f.optionalMatching('proof', PROOF_PATTERN, '64 lowercase hex digits');
      if (proof !== undefined) welcome.proof = proof;
      return welcome;
    }
    case 'accept': {
      const accept: Accept = { type, id: f.id(), offset: f.count('offset') };
      const prefixHash = f.optionalMatching('prefixHash', HASH_PATTERN, HASH_DESCRIPTION);
      if (accept.offset > 0 && prefixHash === undefined) f.matching('prefixHash', HASH_PATTERN, HASH_DESCRIPTION);
      if (prefixHash !== undefined) accept.prefixHash = prefixHash;
      return accept;
    }
    case 'skip': {
      const skip: Skip = { type, id: f.id(), reason: f.oneOf('reason', ['already-there'] as const) };
      const path = f.optionalText('path');
      if (path !== undefined) skip.path = path;
      return skip;
    }
    case 'refuse':
    case 'failed':
      return { type, id: f.id(), code: f.code(), message: f.text('message') };
    case 'done': {
      const done: Done = { type, id: f.id() };
      const hash = f.optionalMatching('hash', HASH_PATTERN, HASH_DESCRIPTION);
      if (hash !== undefined) done.hash = hash;
      const path = f.optionalText('path');
      if (path !== undefined) done.path = path;
      const receipt = f.optionalMatching('receipt', RECEIPT_PATTERN, RECEIPT_DESCRIPTION);
      if (receipt !== undefined) done.receipt = receipt;
      return done;
    }
    case 'error':
      return { type, code: f.code(), message: f.text('message') };
    default:
      throw new FtError('BAD_MESSAGE', `unknown message type ${JSON.stringify(type).slice(0, 40)} from receiver`);
  }
}
