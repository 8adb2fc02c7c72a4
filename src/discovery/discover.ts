import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { FtError } from '../errors.js';
import { validateDiscoverOptions, validateWatchOptions } from '../options.js';
import { DISCOVER_DEFAULTS } from '../defaults.js';
import { decodeDatagram, encodeDatagram, type ReceiverInfo } from './codec.js';
import { broadcastTargets, type BroadcastTarget } from './interfaces.js';
import { ReceiverTable, type FoundReceiver } from './sightings.js';

export type { Claim, Endpoint, FoundReceiver } from './sightings.js';

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
  return (await discoverAll(options)).receivers;
}

/** What discoverAll() heard. */
export interface Heard {
  receivers: FoundReceiver[];
  /** Answers for more receivers than are kept came in: the list may lack the one wanted (a flood of invented ids can push a real receiver out). */
  overflowed: boolean;
  /** Answers `setAside` picked, grouped apart (by id, bounded the same way): never merged with `receivers`, never counted by `until`. */
  setAside: FoundReceiver[];
}

/**
 * discover(), also saying whether it overflowed; answers for which `setAside` returns true are
 * kept apart (resolveReceiver: those with another key than the one pinned for the name), so that
 * they can neither be picked nor make a conflict of the receiver wanted.
 */
export async function discoverAll(options: DiscoverOptions = {}, setAside?: (info: ReceiverInfo) => boolean): Promise<Heard> {
  validateDiscoverOptions(options);
  const timeout = options.timeout ?? DISCOVER_DEFAULTS.timeout;
  const port = options.port ?? DISCOVER_DEFAULTS.port;
  const targets = broadcastTargets({ only: options.interface, includeLoopback: true });
  if (targets.length === 0) {
    throw new FtError('CONNECT_FAILED', 'no network interface with an IPv4 broadcast address is up');
  }
  options.signal?.throwIfAborted();
  const qid = randomBytes(8).toString('hex');
  const query = encodeDatagram({ kind: 'query', qid });
  const found = new ReceiverTable();
  const aside = new ReceiverTable();
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

  return new Promise((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    let settling = false;
    const finish = (error?: Error) => {
      timers.forEach(clearTimeout);
      options.signal?.removeEventListener('abort', onAbort);
      socket.close();
      if (error) reject(error);
      else resolve({ receivers: found.receivers(), overflowed: found.overflowed, setAside: aside.receivers() });
    };
    const onAbort = () => finish(new FtError('ABORTED', 'discovery was cancelled'));
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('message', (bytes, from) => {
      const datagram = decodeDatagram(bytes);
      if (datagram?.kind !== 'answer' || datagram.qid !== qid) return;
      const { kind: _kind, qid: _qid, ...info } = datagram;
      if (setAside?.(info)) {
        aside.add({ address: from.address, info });
        return;
      }
      found.add({ address: from.address, info });
      if (!settling && options.until?.(found.receivers())) {
        settling = true;
        timers.push(setTimeout(() => finish(), options.settleMs ?? DISCOVER_DEFAULTS.settleMs));
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

export interface WatchOptions {
  /** Only this interface (name or address). @default every IPv4 interface, loopback included */
  interface?: string;
  /** UDP port receivers announce on. @default 9527 */
  port?: number;
}

/**
 * Listens for beacons and keeps a live list: 'up' when a receiver is first heard, 'down' when
 * it has missed three intervals, 'conflict' when answers with its id start to disagree (see
 * FoundReceiver.conflict), and 'update' whenever its entry changes (an address more or less, a
 * conflict begun or over). Each sighting is forgotten on its own after three missed intervals,
 * so a conflict ends when the impostor falls silent. Also queries once at the start, so the
 * list fills at once. Times come from the monotonic clock: a wall-clock step changes nothing.
 */
export class ReceiverWatcher extends EventEmitter {
  private readonly table = new ReceiverTable();
  private timer: NodeJS.Timeout | undefined;
  private warnedFull = false;

  private constructor(private readonly socket: dgram.Socket) {
    super();
  }

  static async start(options: WatchOptions = {}): Promise<ReceiverWatcher> {
    validateWatchOptions(options);
    const port = options.port ?? DISCOVER_DEFAULTS.port;
    const targets = broadcastTargets({ only: options.interface, includeLoopback: true });
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const watcher = new ReceiverWatcher(socket);
    socket.on('error', (error) => watcher.emit('warning', error));
    socket.on('message', (bytes, from) => {
      const datagram = decodeDatagram(bytes);
      if (datagram && datagram.kind !== 'query') watcher.heard({ address: from.address, info: datagram });
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
    return this.table.receivers();
  }

  private heard(sighting: Parameters<ReceiverTable['add']>[0]): void {
    const { interval, id } = sighting.info;
    const before = this.table.describe(id);
    const change = this.table.add(sighting, performance.now() + interval * 3000 + 1000);
    if (change === 'ignored') {
      if (!this.warnedFull) this.emit('warning', new Error('discovery: too many receiver ids heard; new ones are ignored until some go'));
      this.warnedFull = true;
      return;
    }
    const receiver = this.table.describe(id)!;
    if (change === 'new') this.emit('up', receiver);
    if (change !== 'changed') return;
    if (receiver.conflict && !before?.conflict) this.emit('conflict', receiver);
    this.emit('update', receiver);
  }

  private expire(): void {
    const { gone, changed } = this.table.expire(performance.now());
    for (const receiver of changed) this.emit('update', receiver);
    for (const receiver of gone) this.emit('down', receiver);
    if (gone.length > 0) this.warnedFull = false;
  }

  close(): Promise<void> {
    clearInterval(this.timer);
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
