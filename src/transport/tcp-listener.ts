import { once } from 'node:events';
import net from 'node:net';
import { FtError } from '../errors.js';
import type { IncomingConnection, Listener, ListenOptions } from './listener.js';

/** Plain TCP: the first transport. */
export async function listenTcp(options: ListenOptions): Promise<Listener> {
  const server = net.createServer();
  let handler: ((connection: IncomingConnection) => void) | undefined;
  server.on('connection', (socket) => {
    // Frames and answers are small; Nagle would hold them back.
    socket.setNoDelay(true);
    const address = (socket.remoteAddress ?? '?').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
    if (handler) handler({ stream: socket, address, port: socket.remotePort ?? 0 });
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const where = `${options.host ?? '*'}:${options.port}`;
      const why = error.code === 'EADDRINUSE' ? 'the port is in use (another ft serve?); pick another with --port' : error.message;
      reject(new FtError('LISTEN_FAILED', `cannot listen on ${where}: ${why}`, {}, { cause: error }));
    });
    server.listen({ port: options.port, host: options.host }, resolve);
  });
  // After listening, an error (EMFILE on accept, say) must not take the receiver down.
  server.on('error', () => undefined);
  const bound = server.address() as net.AddressInfo;
  return {
    address: { host: bound.address, port: bound.port, family: bound.family },
    onConnection: (next) => {
      handler = next;
    },
    close: async () => {
      const closed = once(server, 'close');
      server.close();
      await closed;
    },
  };
}
