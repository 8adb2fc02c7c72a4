import dgram from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { FINGERPRINT_PATTERN } from '../auth/fingerprint.js';
import { decodeDatagram, encodeWithin, MAX_DATAGRAM_BYTES, type ReceiverInfo } from './codec.js';
import {
  answerAddresses,
  broadcastTargets,
  isLoopbackAddress,
  nearestFirst,
  onSubnet,
  type BroadcastTarget,
  type OwnAddress,
} from './interfaces.js';
import { RateLimit } from './rate-limit.js';

export interface AnnouncerOptions {
  name: string;
  /** TCP port of the receiver. */
  port: number;
  auth: boolean;
  /** Full fingerprint of the receiver's TLS key, sent as `fp`; none for a receiver in plaintext. */
  fingerprint?: string;
  /** Seconds between beacons. */
  interval: number;
  /** UDP port beacons and queries use. */
  discoveryPort: number;
  /** Only this interface (name or address). */
  interface?: string;
  /** The receiver listens on loopback only: announce there, and answer only local askers. */
  loopbackOnly: boolean;
  onError?: (error: Error) => void;
}

/**
 * The id a receiver announces. With a key, it follows from the key and the name, so instances
 * that share an identity and a name (several `ft serve` on one store) announce one id and are
 * one receiver to senders (sightings.ts), and a restart keeps it. Nothing secret goes in: both
 * are in every beacon anyway. In plaintext nothing can vouch that two answers are one receiver,
 * so each process takes a random one of its own.
 */
export function receiverId(name: string, fingerprint: string | undefined): string {
  if (fingerprint === undefined) return randomBytes(8).toString('hex');
  return createHash('sha256').update(`ft-receiver-id\0${fingerprint}\0${name}`).digest('hex').slice(0, 16);
}

/** Answers per source address: a burst of ANSWER_BURST, then one per second. */
const ANSWER_BURST = 5;
const ANSWER_REFILL_PER_MS = 1 / 1000;
/** A sender repeats each query twice (discover.ts): those repeats are answered without using up its budget. */
const ANSWERS_PER_QUERY_ID = 3;
/** Rate-limit entries kept; the oldest go first. */
const MAX_TRACKED_SOURCES = 4096;
/** The interface list is read at most this often (a query flood must not make us read it per query). */
const ADDRESSES_TTL_MS = 1000;

/**
 * A receiver's presence on the LAN: a beacon every `interval` seconds to each broadcast address,
 * and an immediate unicast answer to each well-formed query. Anything else is ignored silently.
 */
export class Announcer {
  /** What every datagram says, besides the addresses (read from the interfaces as they are). */
  readonly info: Omit<ReceiverInfo, 'addrs'>;
  private readonly limit = new RateLimit({
    burst: ANSWER_BURST,
    refillPerMs: ANSWER_REFILL_PER_MS,
    maxKeys: MAX_TRACKED_SOURCES,
    perTag: ANSWERS_PER_QUERY_ID,
  });
  private addressCache: { at: number; addresses: OwnAddress[] } | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly options: AnnouncerOptions,
  ) {
    this.info = {
      name: options.name,
      id: receiverId(options.name, options.fingerprint),
      port: options.port,
      auth: options.auth,
      interval: options.interval,
      ...(options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint }),
    };
  }

  static async start(options: AnnouncerOptions): Promise<Announcer> {
    // Readers drop a datagram with a malformed `fp`: announcing one would be silence, not a beacon.
    if (options.fingerprint !== undefined && !FINGERPRINT_PATTERN.test(options.fingerprint)) {
      throw new Error(`not a full key fingerprint: ${JSON.stringify(options.fingerprint.slice(0, 60))}`);
    }
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const announcer = new Announcer(socket, options);
    socket.on('message', (bytes, from) => announcer.onMessage(bytes, from));
    socket.on('error', (error) => options.onError?.(error));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.discoveryPort, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.setBroadcast(true);
    announcer.beacon();
    announcer.timer = setInterval(() => announcer.beacon(), options.interval * 1000);
    announcer.timer.unref();
    return announcer;
  }

  private targets(): BroadcastTarget[] {
    try {
      return broadcastTargets({ only: this.options.interface, includeLoopback: this.options.loopbackOnly }).filter(
        (t) => !this.options.loopbackOnly || isLoopbackAddress(t.address),
      );
    } catch (error) {
      this.options.onError?.(error as Error);
      return [];
    }
  }

  /** Every address an answer or beacon of ours may come from (the kernel picks one per datagram). */
  private addresses(): OwnAddress[] {
    const now = performance.now();
    if (!this.addressCache || now - this.addressCache.at > ADDRESSES_TTL_MS) {
      let addresses: OwnAddress[] = [];
      try {
        addresses = answerAddresses({ only: this.options.interface, loopbackOnly: this.options.loopbackOnly });
      } catch (error) {
        this.options.onError?.(error as Error);
      }
      this.addressCache = { at: now, addresses };
    }
    return this.addressCache.addresses;
  }

  private beacon(): void {
    for (const target of this.targets()) {
      const addrs = nearestFirst(this.addresses(), target.address);
      const datagram = encodeWithin({ kind: 'announce', ...this.info, addrs }, MAX_DATAGRAM_BYTES);
      if (!datagram) continue;
      this.socket.send(datagram, this.options.discoveryPort, target.broadcast, (error) => {
        if (error) this.options.onError?.(error);
      });
    }
  }

  private onMessage(bytes: Buffer, from: dgram.RemoteInfo): void {
    const datagram = decodeDatagram(bytes);
    if (datagram?.kind !== 'query') return;
    // Answer only where we announce: an asker elsewhere could not reach our address anyway.
    const restricted = this.options.loopbackOnly || this.options.interface !== undefined;
    if (restricted && !this.targets().some((t) => onSubnet(from.address, t))) return;
    if (!this.limit.allow(from.address, datagram.qid)) return;
    const addrs = nearestFirst(this.addresses(), from.address);
    // Never answer with more bytes than the query had: no amplification for spoofed sources.
    // Addresses far from the asker are dropped first when the list does not fit.
    const answer = encodeWithin({ kind: 'answer', qid: datagram.qid, ...this.info, addrs }, bytes.length);
    if (!answer) return;
    this.socket.send(answer, from.port, from.address, () => undefined);
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
