import tls from 'node:tls';
import { FtError } from '../errors.js';
import type { Identity } from '../auth/identity.js';
import { TLS_PROFILE, tlsSecurity } from './channel.js';
import { listenTcp } from './tcp-listener.js';
import type { ListenerFactory } from './listener.js';
import type { Socket } from 'node:net';

/**
 * TLS 1.3 over the TCP listener, with the receiver's identity. Each connection is handed over
 * as soon as TCP accepts it, with the handshake still to come, so the receiver's greeting
 * limits (the greeting pool and the hello deadline) bound the handshake too: a peer that
 * opens connections and never finishes a handshake holds no more than one that never says hello.
 * With several `protocols`, the one ALPN settles on (see negotiatedProtocol) says who gets it.
 */
export function tlsListener(identity: Identity, protocols: readonly string[] = TLS_PROFILE.ALPNProtocols): ListenerFactory {
  let secureContext: tls.SecureContext;
  try {
    secureContext = tls.createSecureContext({ key: identity.key, cert: identity.cert, ...TLS_PROFILE, honorCipherOrder: true });
  } catch (error) {
    throw new FtError('IDENTITY_INVALID', `the key and certificate cannot be used for TLS: ${(error as Error).message}`, {}, { cause: error });
  }
  return async (options) => {
    const tcp = await listenTcp(options);
    return {
      address: tcp.address,
      close: () => tcp.close(),
      onConnection: (handler) =>
        tcp.onConnection(({ stream, address, port }) => {
          const socket = new tls.TLSSocket(stream as Socket, {
            isServer: true,
            secureContext,
            // "ft", and "http/1.1" when the receiver also serves its upload page on this port.
            ALPNProtocols: [...protocols],
            // Senders prove themselves with their owner key and the token, inside the channel.
            requestCert: false,
          });
          handler({ stream: socket, address, port, security: tlsSecurity(socket) });
        }),
    };
  };
}

/**
 * The ALPN protocol a server-side TLS socket settled on, once its handshake is done (undefined:
 * the client offered none). Rejects when the handshake fails or the socket closes first.
 */
export function negotiatedProtocol(socket: tls.TLSSocket): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const stop = () => {
      socket.off('secure', secured);
      socket.off('error', failed);
      socket.off('close', closed);
    };
    const secured = () => {
      stop();
      resolve(socket.alpnProtocol || undefined);
    };
    const failed = (error: Error) => {
      stop();
      reject(error);
    };
    const closed = () => failed(new Error('the connection closed during the TLS handshake'));
    socket.once('secure', secured);
    socket.once('error', failed);
    socket.once('close', closed);
  });
}
