import net from 'node:net';

export interface ProxyOptions {
  targetPort: number;
  /** @default '127.0.0.1' */
  targetHost?: string;
  /** Rate limit for client → target bytes. @default Infinity (no limit) */
  bytesPerSecond?: number;
}

export interface Proxy {
  /** Port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Client → target bytes forwarded so far. */
  readonly forwarded: number;
  /** Drops every current connection at once on both sides (a pulled cable); new ones are still accepted. */
  cutAll(): void;
  /** Changes the client → target rate for current and future connections (Infinity: no limit). */
  setBytesPerSecond(bytesPerSecond: number): void;
  close(): Promise<void>;
}

const open = new Set<Proxy>();

/** Closes every proxy still open (for afterEach). */
export async function closeAllProxies(): Promise<void> {
  await Promise.all([...open].map((proxy) => proxy.close()));
}

/** Credit a slow event loop may bank: a stall is not made up by a burst longer than this. */
const MAX_CREDIT_MS = 50;

/**
 * A TCP proxy on 127.0.0.1 that forwards to targetHost:targetPort, pacing the client → target
 * direction. Pacing is done by pausing the client socket, so back-pressure reaches the sender
 * and the bytes that reach the target follow the configured rate closely, even on a slow machine.
 */
export async function startProxy(options: ProxyOptions): Promise<Proxy> {
  const targetHost = options.targetHost ?? '127.0.0.1';
  let rate = options.bytesPerSecond ?? Infinity;
  let accepted = 0;
  let forwarded = 0;
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  const timers = new Set<NodeJS.Timeout>();
  const rateListeners = new Set<() => void>();

  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    accepted += 1;
    const upstream = net.connect({ port: options.targetPort, host: targetHost, allowHalfOpen: true });
    const pair = { client, upstream };
    pairs.add(pair);
    const destroyBoth = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on('error', destroyBoth);
      socket.on('close', destroyBoth);
    }
    // Half-closes are passed on, so "bye" then FIN reaches the target after the last byte.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());

    // target → client: unpaced.
    upstream.pipe(client, { end: false });

    // client → target: paced by a clock of "bytes allowed by now".
    let windowStart = Date.now();
    let windowBytes = 0;
    const resetWindow = () => {
      windowStart = Date.now();
      windowBytes = 0;
    };
    rateListeners.add(resetWindow);
    client.once('close', () => rateListeners.delete(resetWindow));
    const resume = () => {
      if (client.destroyed) return;
      if (upstream.writableNeedDrain) upstream.once('drain', resume);
      else client.resume();
    };
    client.on('data', (chunk: Buffer) => {
      forwarded += chunk.length;
      const flowing = upstream.write(chunk);
      if (rate === Infinity) {
        if (!flowing) {
          client.pause();
          upstream.once('drain', resume);
        }
        return;
      }
      const now = Date.now();
      if (windowStart + (windowBytes * 1000) / rate < now - MAX_CREDIT_MS) resetWindow();
      windowBytes += chunk.length;
      const wait = windowStart + (windowBytes * 1000) / rate - now;
      if (wait > 0 || !flowing) {
        client.pause();
        const timer = setTimeout(() => {
          timers.delete(timer);
          resume();
        }, Math.max(0, wait));
        timers.add(timer);
      }
    });
    upstream.once('connect', () => client.resume());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, resolve);
  });
  const port = (server.address() as net.AddressInfo).port;

  const cutAll = () => {
    for (const { client, upstream } of [...pairs]) {
      // An RST on both sides, like a peer that vanished.
      for (const socket of [client, upstream]) {
        if (socket.destroyed) continue;
        if (socket.connecting) socket.destroy();
        else socket.resetAndDestroy();
      }
    }
    pairs.clear();
  };

  const proxy: Proxy = {
    port,
    get accepted() {
      return accepted;
    },
    get forwarded() {
      return forwarded;
    },
    cutAll,
    setBytesPerSecond(bytesPerSecond: number) {
      rate = bytesPerSecond;
      for (const reset of rateListeners) reset();
    },
    async close() {
      open.delete(proxy);
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      cutAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  open.add(proxy);
  return proxy;
}
