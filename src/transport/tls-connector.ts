import type { Socket } from 'node:net';
import tls from 'node:tls';
import { FtError } from '../errors.js';
import { fingerprintOfCertificate } from '../auth/fingerprint.js';
import { ALPN, TLS_PROFILE, tlsSecurity, type Channel } from './channel.js';
import type { Connector } from './connector.js';
import { tcpConnector } from './tcp-connector.js';

/**
 * TLS 1.3 over the TCP connector. The receiver's certificate is self-signed, so no CA can vouch
 * for it: the handshake proves the receiver holds the key in its certificate, and the channel
 * reports that key's fingerprint for the sender to check against its pins (receiver-trust.ts)
 * before it writes a byte of its own.
 */
export const tlsConnector: Connector = async (target, options) => {
  const tcp = await tcpConnector(target, options);
  const where = `${target.host}:${target.port}`;
  return new Promise<Channel>((resolve, reject) => {
    const socket = tls.connect({
      socket: tcp as Socket,
      ...TLS_PROFILE,
      // Trust is decided by pin, not by a CA: checked right after the handshake.
      rejectUnauthorized: false,
      // No SNI: the receiver has one identity, and a host name in clear would tell who is sent to.
      servername: '',
    });
    const fail = (error: FtError) => {
      cleanup();
      socket.destroy();
      // The TLS socket does not always take the TCP one with it (a peer that closed first): no half-open leftovers.
      tcp.destroy();
      reject(error);
    };
    const onAbort = () => fail(new FtError('ABORTED', 'send was cancelled'));
    const onError = (error: NodeJS.ErrnoException) => fail(tlsFailure(where, error));
    // A receiver restarting or overloaded: worth a retry (a plaintext one says something, which fails TLS below).
    const onClose = () => fail(new FtError('CONNECT_FAILED', `${where} closed the connection during the TLS handshake`));
    const timer = setTimeout(() => fail(new FtError('TIMEOUT', `${where}: no TLS handshake within ${options.timeoutMs} ms`)), options.timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('secureConnect', () => {
      cleanup();
      const certificate = socket.getPeerX509Certificate();
      if (socket.getProtocol() !== 'TLSv1.3' || socket.alpnProtocol !== ALPN || !certificate) {
        socket.destroy();
        tcp.destroy();
        return reject(new FtError('TLS_FAILED', `${where} did not set up TLS 1.3 with ALPN "ft" and a certificate`));
      }
      socket.on('error', () => undefined);
      resolve({ stream: socket, security: tlsSecurity(socket, fingerprintOfCertificate(certificate)) });
    });
  });
};

function tlsFailure(where: string, error: NodeJS.ErrnoException): FtError {
  // The connection itself failed (reset, timed out): a receiver restarting, say; retried like any connect failure.
  if (!/^ERR_SSL_/.test(error.code ?? '')) return new FtError('CONNECT_FAILED', `${where}: ${error.message}`, {}, { cause: error });
  // A plaintext peer answers the ClientHello with something that is not a TLS record.
  const plaintext = /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LAYER_FAILURE|HTTP_REQUEST/i.test(error.code ?? '');
  const why = plaintext
    ? 'the receiver does not speak TLS (it may run with --insecure-plaintext; nothing was sent)'
    : error.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL'
      ? 'the receiver does not speak the ft protocol over TLS'
      : error.message.split('\n')[0];
  return new FtError('TLS_FAILED', `${where}: ${why}`, {}, { cause: error });
}
