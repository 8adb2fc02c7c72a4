/**
 * Discovery datagrams: small UTF-8 JSON objects on UDP port 9527.
 *
 *  - `announce`: a receiver's periodic broadcast beacon.
 *  - `query`:    a sender asking "who is there?"; padded so that it is never smaller than the
 *                answer it asks for (a spoofed query cannot be amplified).
 *  - `answer`:   a receiver's unicast reply to a query, echoing its `qid`.
 *
 * Announces and answers carry `addrs`, the IPv4 addresses the receiver may answer from, so that
 * a sender can tell one receiver heard on several interfaces from an impostor that copied its id;
 * and `fp`, the full fingerprint of the receiver's TLS key, absent when it runs in plaintext (so
 * a receiver from before TLS, which sends none, reads as what it is). `fp` is a claim, not a
 * proof: the sender checks it against the TLS certificate it gets.
 *
 * Everything from the network is untrusted: anything that is not exactly one of these shapes
 * decodes to undefined and is ignored.
 */
import net from 'node:net';
import { FINGERPRINT_PATTERN } from '../auth/fingerprint.js';
import { CONTROL_CHARACTERS } from '../names/safe-name.js';

export const DISCOVERY_MARKER = 'ft-discovery';
/** Still 1 with `fp`: a reader of version 1 ignores unknown fields, and a receiver that sends no `fp` is in plaintext. */
export const DISCOVERY_VERSION = 1;
export const DEFAULT_DISCOVERY_PORT = 9527;
/** Larger datagrams are dropped unread. */
export const MAX_DATAGRAM_BYTES = 1024;
/** Queries are padded to this size; answers are always smaller. */
export const QUERY_BYTES = 512;
export const MAX_NAME_BYTES = 64;
/** More addresses than this in one datagram make it invalid (a writer trims its list to fit). */
export const MAX_ADDRESSES = 32;

const ID_PATTERN = /^[0-9a-f]{16}$/;
const QID_PATTERN = /^[0-9a-f]{16}$/;

/** What a receiver says about itself. */
export interface ReceiverInfo {
  name: string;
  /** Stable for the life of one receiver process; with a key, derived from it and the name (announcer.ts receiverId), so shared by instances of one identity. */
  id: string;
  /** TCP port of the transfer service. */
  port: number;
  /** Whether senders need a token. */
  auth: boolean;
  /** Seconds between beacons, so listeners know when one has gone. */
  interval: number;
  /** Full fingerprint of the receiver's TLS key (`fp`); absent for a receiver in plaintext. */
  fingerprint?: string;
  /**
   * IPv4 addresses the receiver may answer from (its own word for which sources are all it);
   * empty when an older receiver sent none.
   */
  addrs: string[];
}

export type Datagram =
  | ({ kind: 'announce' } & ReceiverInfo)
  | ({ kind: 'answer'; qid: string } & ReceiverInfo)
  | { kind: 'query'; qid: string };

export function encodeDatagram(datagram: Datagram): Buffer {
  const head = { m: DISCOVERY_MARKER, v: DISCOVERY_VERSION, kind: datagram.kind, ...(datagram.kind === 'announce' ? {} : { qid: datagram.qid }) };
  if (datagram.kind !== 'query') {
    const { name, id, port, auth, interval, fingerprint, addrs } = datagram;
    return Buffer.from(JSON.stringify({ ...head, name, id, port, auth, interval, ...(fingerprint === undefined ? {} : { fp: fingerprint }), addrs }));
  }
  const unpadded = Buffer.byteLength(JSON.stringify({ ...head, pad: '' }));
  return Buffer.from(JSON.stringify({ ...head, pad: ' '.repeat(Math.max(0, QUERY_BYTES - unpadded)) }));
}

/**
 * The datagram in at most `maxBytes` and MAX_ADDRESSES addresses, dropping addresses from the
 * end of `addrs` as needed (the receiver orders them most relevant first); undefined when even
 * none would fit.
 */
export function encodeWithin(datagram: Exclude<Datagram, { kind: 'query' }>, maxBytes: number): Buffer | undefined {
  const addrs = datagram.addrs.slice(0, MAX_ADDRESSES);
  for (;;) {
    const encoded = encodeDatagram({ ...datagram, addrs });
    if (encoded.length <= maxBytes) return encoded;
    if (addrs.length === 0) return undefined;
    addrs.pop();
  }
}

export function decodeDatagram(bytes: Buffer): Datagram | undefined {
  if (bytes.length === 0 || bytes.length > MAX_DATAGRAM_BYTES) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const get = (key: string): unknown => (Object.hasOwn(raw as object, key) ? (raw as Record<string, unknown>)[key] : undefined);
  if (get('m') !== DISCOVERY_MARKER || get('v') !== DISCOVERY_VERSION) return undefined;
  const kind = get('kind');
  if (kind === 'query') {
    const qid = get('qid');
    return typeof qid === 'string' && QID_PATTERN.test(qid) ? { kind, qid } : undefined;
  }
  if (kind !== 'announce' && kind !== 'answer') return undefined;
  const info = receiverInfo(get);
  if (!info) return undefined;
  if (kind === 'announce') return { kind, ...info };
  const qid = get('qid');
  return typeof qid === 'string' && QID_PATTERN.test(qid) ? { kind, qid, ...info } : undefined;
}

function receiverInfo(get: (key: string) => unknown): ReceiverInfo | undefined {
  const [name, id, port, auth, interval, fp, addrs] = ['name', 'id', 'port', 'auth', 'interval', 'fp', 'addrs'].map(get);
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > MAX_NAME_BYTES) return undefined;
  if (CONTROL_CHARACTERS.test(name)) return undefined;
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) return undefined;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (typeof auth !== 'boolean') return undefined;
  if (typeof interval !== 'number' || !Number.isFinite(interval) || interval <= 0 || interval > 3600) return undefined;
  // Absent: a receiver in plaintext. Anything but a full fingerprint: not an ft datagram.
  if (fp !== undefined && (typeof fp !== 'string' || !FINGERPRINT_PATTERN.test(fp))) return undefined;
  const addresses = addressList(addrs);
  if (!addresses) return undefined;
  return { name, id, port, auth, interval, ...(fp === undefined ? {} : { fingerprint: fp }), addrs: addresses };
}

/** Absent is an empty list; anything but an array of dotted IPv4 addresses is invalid. */
function addressList(value: unknown): string[] | undefined {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_ADDRESSES) return undefined;
  if (!value.every((a) => typeof a === 'string' && net.isIPv4(a))) return undefined;
  return [...new Set(value as string[])];
}

/** Receiver names are shown and matched: keep them short and printable. */
export function cleanReceiverName(name: string): string {
  const chars = [...name.toWellFormed().replace(new RegExp(CONTROL_CHARACTERS, 'gu'), '').trim()];
  // Drop whole code points, never half of a surrogate pair.
  while (Buffer.byteLength(chars.join('')) > MAX_NAME_BYTES) chars.pop();
  return chars.join('').trim() || 'ft';
}
