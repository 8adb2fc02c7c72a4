import net from 'node:net';
import { FtError } from '../errors.js';
import type { Duplex } from 'node:stream';
import type { ConnectTarget, ConnectorOptions } from './connector.js';

/** A plain TCP connection, with Nagle off (headers are small and pipelined): what TLS runs over, and plaintext. */
export function tcpConnector({ host, port }: ConnectTarget, { signal, timeoutMs }: ConnectorOptions): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new FtError('ABORTED', 'send was cancelled'));
    const socket = net.connect({ host, port });
    const fail = (error: FtError) => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = () => fail(new FtError('ABORTED', 'send was cancelled'));
    const onError = (error: NodeJS.ErrnoException) => {
      const what = error.code === 'ECONNREFUSED' ? 'connection refused (is `ft serve` running there?)' : error.message;
      fail(new FtError('CONNECT_FAILED', `${host}:${port}: ${what}`, {}, { cause: error }));
    };
    const timer = setTimeout(() => fail(new FtError('TIMEOUT', `${host}:${port} did not answer within ${timeoutMs} ms`)), timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', onError);
    socket.once('connect', () => {
      cleanup();
      // Until the sender listens (a turn of the event loop away), an error must not go unhandled;
      // the sender then sees the stream destroyed.
      socket.on('error', () => undefined);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
