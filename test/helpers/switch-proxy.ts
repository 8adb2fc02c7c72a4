import net from 'node:net';

/**
 * A TCP forwarder on 127.0.0.1 whose target can be changed between connections (one address
 * that first reaches one receiver, then another: what a LAN impostor taking over an address
 * looks like to a sender), and that can cut a connection after a number of client bytes.
 */
export interface SwitchProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Where new connections go. */
  target: number;
  /** The next connections are reset (both sides) once this many client → target bytes passed; undefined: never. */
  cutAfter: number | undefined;
  /** Connections cut by cutAfter so far. */
  readonly cuts: number;
  /** Runs as a connection is cut, before anything else can connect (to switch the target, say). */
  onCut: (() => void) | undefined;
  close(): Promise<void>;
}

const open = new Set<SwitchProxy>();

export async function closeAllSwitchProxies(): Promise<void> {
  await Promise.all([...open].map((proxy) => proxy.close()));
}

export async function startSwitchProxy(target: number): Promise<SwitchProxy> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let cuts = 0;
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    accepted += 1;
    const limit = proxy.cutAfter;
    const upstream = net.connect({ port: proxy.target, host: '127.0.0.1' });
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    let forwarded = 0;
    client.on('data', (chunk: Buffer) => {
      if (limit !== undefined && forwarded + chunk.length > limit) {
        // Cut before this chunk: the target never sees more than `limit` bytes.
        cuts += 1;
        proxy.onCut?.();
        client.resetAndDestroy();
        upstream.resetAndDestroy();
        return;
      }
      forwarded += chunk.length;
      upstream.write(chunk);
    });
    upstream.pipe(client);
    upstream.once('connect', () => client.resume());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, resolve);
  });
  const proxy: SwitchProxy = {
    port: (server.address() as net.AddressInfo).port,
    get accepted() {
      return accepted;
    },
    get cuts() {
      return cuts;
    },
    target,
    cutAfter: undefined,
    onCut: undefined,
    async close() {
      open.delete(proxy);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  open.add(proxy);
  return proxy;
}
