import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { decodeDatagram, encodeDatagram, type ReceiverInfo } from './codec.js';
import { broadcastTargets, isLoopbackAddress, onSubnet, type BroadcastTarget } from './interfaces.js';

export interface AnnouncerOptions {
  name: string;
  /** TCP port of the receiver. */
  port: number;
  auth: boolean;
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

/** Answers per source address: a burst of ANSWER_BURST, then one per second. */
const ANSWER_BURST = 5;
const ANSWER_REFILL_PER_MS = 1 / 1000;
/** Rate-limit entries kept; the oldest go first. */
const MAX_TRACKED_SOURCES = 4096;

/**
 * A receiver's presence on the LAN: a beacon every `interval` seconds to each broadcast address,
 * and an immediate unicast answer to each well-formed query. Anything else is ignored silently.
 */
export class Announcer {
  readonly info: ReceiverInfo;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly options: AnnouncerOptions,
  ) {
    this.info = {
      name: options.name,
      id: randomBytes(8).toString('hex'),
      port: options.port,
      auth: options.auth,
      interval: options.interval,
    };
  }

  static async start(options: AnnouncerOptions): Promise<Announcer> {
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

  private beacon(): void {
    const datagram = encodeDatagram({ kind: 'announce', ...this.info });
    for (const target of this.targets()) {
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
    if (!this.allow(from.address)) return;
    const answer = encodeDatagram({ kind: 'answer', qid: datagram.qid, ...this.info });
    // Never answer with more bytes than the query had: no amplification for spoofed sources.
    if (answer.length > bytes.length) return;
    this.socket.send(answer, from.port, from.address, () => undefined);
  }

  private allow(source: string): boolean {
    const now = Date.now();
    const bucket = this.buckets.get(source) ?? { tokens: ANSWER_BURST, at: now };
    bucket.tokens = Math.min(ANSWER_BURST, bucket.tokens + (now - bucket.at) * ANSWER_REFILL_PER_MS);
    bucket.at = now;
    this.buckets.delete(source);
    if (this.buckets.size >= MAX_TRACKED_SOURCES) this.buckets.delete(this.buckets.keys().next().value!);
    this.buckets.set(source, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
