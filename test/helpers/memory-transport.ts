/**
 * A transport without sockets: connected pairs of in-memory duplex streams (with backpressure
 * and ends like a TCP socket), and a listener factory for serve() that hands them over. The
 * receiver's session then runs exactly as over TCP, with no network at all.
 */
import { Duplex } from 'node:stream';
import type { IncomingConnection, Listener, ListenerFactory } from '../../src/transport/listener.js';

class End extends Duplex {
  peer!: End;
  /** A write waiting for the peer to read (its callback). */
  private blocked: (() => void) | undefined;

  constructor(emitClose = true) {
    // As net.Socket by default: reading the other end's end ends this one's writing too.
    super({ allowHalfOpen: false, emitClose });
  }

  override _read(): void {
    const blocked = this.peer.blocked;
    this.peer.blocked = undefined;
    blocked?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.peer.destroyed) return callback(Object.assign(new Error('the other end is closed'), { code: 'EPIPE' }));
    if (this.peer.push(chunk)) callback();
    else this.blocked = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.peer.destroyed) this.peer.push(null);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.blocked = undefined;
    // As a reset socket: the other end reads its end, and its writes go nowhere.
    if (!this.peer.destroyed && !this.peer.readableEnded) this.peer.push(null);
    callback(error);
  }
}

/** `emitClose: false` makes the second end a stream that never emits 'close' (some transports' streams do not). */
export function duplexPair({ emitClose = true }: { emitClose?: boolean } = {}): [Duplex, Duplex] {
  const a = new End();
  const b = new End(emitClose);
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/** A listener serve() can use, and a way to dial it: each dial is one connection from `address`. */
export function memoryTransport(options: { emitClose?: boolean } = {}): { listen: ListenerFactory; dial: (address?: string, port?: number) => Duplex } {
  let handler: ((connection: IncomingConnection) => void) | undefined;
  let closed = false;
  const listen: ListenerFactory = async ({ port }) => {
    const listener: Listener = {
      address: { host: 'memory', port, family: 'memory' },
      onConnection: (next) => {
        handler = next;
      },
      close: async () => {
        closed = true;
      },
    };
    return listener;
  };
  let nextPort = 40_000;
  const dial = (address = '192.0.2.7', port = nextPort++) => {
    if (!handler || closed) throw new Error('nothing is listening');
    const [client, server] = duplexPair(options);
    handler({ stream: server, address, port });
    return client;
  };
  return { listen, dial };
}
