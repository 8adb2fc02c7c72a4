import type { Duplex } from 'node:stream';
import type { Channel } from './channel.js';

/** Where a sender connects to: what `--to` resolved to. */
export interface ConnectTarget {
  host: string;
  port: number;
}

export interface ConnectorOptions {
  /** Aborts the attempt (reject with FtError ABORTED). */
  signal?: AbortSignal;
  /** Give up after this long (reject with FtError TIMEOUT). */
  timeoutMs: number;
}

/**
 * Opens the byte stream a sender speaks the protocol over (modelled on undici's `connect`
 * option and grpc-js's connectors). TLS is the default (tls-connector.ts), plain TCP
 * (tcp-connector.ts) the plaintext one; a tunnel would be another. It resolves once the stream
 * is open, with what carries it (a bare stream is plaintext, which a sender uses only when told
 * to); a failure should be an FtError CONNECT_FAILED (anything else is taken as one). The sender
 * owns the stream from then on: it sets its own timers and destroys it when done.
 */
export type Connector = (target: ConnectTarget, options: ConnectorOptions) => Promise<Duplex | Channel>;
