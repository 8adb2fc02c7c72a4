import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { FtError } from '../errors.js';
import { validateDiscoverOptions } from '../transfer/options.js';
import { decodeDatagram, DEFAULT_DISCOVERY_PORT, encodeDatagram, type ReceiverInfo } from './codec.js';
import { broadcastTargets, type BroadcastTarget } from './interfaces.js';

/** A receiver found on the network: one entry however many interfaces it answered on. */
export interface FoundReceiver {
  name: string;
  id: string;
  port: number;
  auth: boolean;
  /** Addresses it answered from, first answer first. */
  addresses: string[];
}

export interface DiscoverOptions {
  /** How long to listen for answers, in ms. @default 1000 */
  timeout?: number;
  signal?: AbortSignal;
  /** Only this interface (name or address). @default every IPv4 interface, loopback included */
  interface?: string;
  /** UDP port receivers listen on. @default 9527 */
  port?: number;
  /** Stop early once this returns true (then wait `settleMs` for late duplicates). */
  until?: (found: FoundReceiver[]) => boolean;
  /** @default 250 */
  settleMs?: number;
}

/** Queries are repeated in case one is lost: at 0, 100 and 300 ms. */
const QUERY_SCHEDULE_MS = [0, 100, 300];

/**
 * Asks every broadcast address "who is there?" and gathers the answers. Receivers answer at
 * once, so on a LAN this finishes in well under the timeout when `until` is given.
 */
export async function discover(options: DiscoverOptions = {}): Promise<FoundReceiver[]> {
  validateDiscoverOptions(options);
  const timeout = options.timeout ?? 1000;
  const port = options.port ?? DEFAULT_DISCOVERY_PORT;
  const targets = broadcastTargets({ only: options.interface, includeLoopback: true });
  if (targets.length === 0) {
    throw new FtError('CONNECT_FAILED', 'no network interface with an IPv4 broadcast address is up');
  }
  options.signal?.throwIfAborted();
  const qid = randomBytes(8).toString('hex');
  const query = encodeDatagram({ kind: 'query', qid });
  const found = new Map<string, FoundReceiver>();
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (error) => {
      socket.removeAllListeners();
      reject(new FtError('CONNECT_FAILED', `cannot open a UDP socket for discovery: ${error.message}`));
    });
    socket.bind(0, () => resolve());
  });
  socket.on('error', () => undefined);
  socket.setBroadcast(true);

  return new Promise<FoundReceiver[]>((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    let settling = false;
    const finish = (error?: Error) => {
      timers.forEach(clearTimeout);
      options.signal?.removeEventListener('abort', onAbort);
      socket.close();
      if (error) reject(error);
      else resolve([...found.values()]);
    };
    const onAbort = () => finish(new FtError('ABORTED', 'discovery was cancelled'));
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('message', (bytes, from) => {
      const datagram = decodeDatagram(bytes);
      if (datagram?.kind !== 'answer' || datagram.qid !== qid) return;
      record(found, datagram, from.address);
      if (!settling && options.until?.([...found.values()])) {
        settling = true;
        timers.push(setTimeout(() => finish(), options.settleMs ?? 250));
      }
    });
    for (const delay of QUERY_SCHEDULE_MS.filter((d) => d < timeout)) {
      timers.push(setTimeout(() => sendAll(socket, query, targets, port), delay));
    }
    timers.push(setTimeout(() => finish(), timeout));
  });
}

function sendAll(socket: dgram.Socket, datagram: Buffer, targets: BroadcastTarget[], port: number): void {
  for (const target of targets) socket.send(datagram, port, target.broadcast, () => undefined);
}

function record(found: Map<string, FoundReceiver>, info: ReceiverInfo, address: string): FoundReceiver {
  let entry = found.get(info.id);
  if (!entry) {
    entry = { name: info.name, id: info.id, port: info.port, auth: info.auth, addresses: [] };
    found.set(info.id, entry);
  }
  if (!entry.addresses.includes(address)) entry.addresses.push(address);
  return entry;
}

export interface WatchOptions {
  interface?: string;
  port?: number;
}

/**
 * Listens for beacons and keeps a live list: 'up' when a receiver is first heard, 'down' when
 * it has missed three intervals. Also queries once at the start, so the list fills at once.
 */
export class ReceiverWatcher extends EventEmitter {
  private readonly seen = new Map<string, { receiver: FoundReceiver; expires: number }>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly socket: dgram.Socket) {
    super();
  }

  static async start(options: WatchOptions = {}): Promise<ReceiverWatcher> {
    validateDiscoverOptions(options);
    const port = options.port ?? DEFAULT_DISCOVERY_PORT;
    const targets = broadcastTargets({ only: options.interface, includeLoopback: true });
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const watcher = new ReceiverWatcher(socket);
    socket.on('error', (error) => watcher.emit('warning', error));
    socket.on('message', (bytes, from) => {
      const datagram = decodeDatagram(bytes);
      if (datagram && datagram.kind !== 'query') watcher.heard(datagram, from.address);
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, () => resolve());
    });
    socket.setBroadcast(true);
    sendAll(socket, encodeDatagram({ kind: 'query', qid: randomBytes(8).toString('hex') }), targets, port);
    watcher.timer = setInterval(() => watcher.expire(), 250);
    return watcher;
  }

  get receivers(): FoundReceiver[] {
    return [...this.seen.values()].map((entry) => entry.receiver);
  }

  private heard(info: ReceiverInfo, address: string): void {
    const expires = Date.now() + info.interval * 3000 + 1000;
    const entry = this.seen.get(info.id);
    if (entry) {
      entry.expires = expires;
      if (!entry.receiver.addresses.includes(address)) entry.receiver.addresses.push(address);
      return;
    }
    const receiver: FoundReceiver = { name: info.name, id: info.id, port: info.port, auth: info.auth, addresses: [address] };
    this.seen.set(info.id, { receiver, expires });
    this.emit('up', receiver);
  }

  private expire(): void {
    const now = Date.now();
    for (const [id, entry] of this.seen) {
      if (entry.expires > now) continue;
      this.seen.delete(id);
      this.emit('down', entry.receiver);
    }
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
