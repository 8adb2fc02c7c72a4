/**
 * The receiver's transport seam: a listener hands over connections as duplex byte streams
 * with the peer's address; the receiver never sees what carries them (TLS by default, plain TCP when asked). A listener is made by the receiver from a factory, so it can say where it listens.
 */
import type { Duplex } from 'node:stream';
import type { ChannelSecurity } from './channel.js';

export interface IncomingConnection {
  stream: Duplex;
  /** The peer's address (an IPv4-mapped IPv6 address as plain IPv4) and port. */
  address: string;
  port: number;
  /** What carries the stream. @default plaintext */
  security?: ChannelSecurity;
}

export interface Listener {
  /** Where it listens (the port actually bound, with port 0). */
  readonly address: { host: string; port: number; family: string };
  /** Called for each new connection; set once, before the first one arrives. */
  onConnection(handler: (connection: IncomingConnection) => void): void;
  /** Stops taking connections (the ones handed over are the receiver's to close). */
  close(): Promise<void>;
}

export interface ListenOptions {
  port: number;
  /** Address to listen on; undefined: every interface. */
  host?: string;
}

/** Starts listening, or throws FtError LISTEN_FAILED with a one-line reason. */
export type ListenerFactory = (options: ListenOptions) => Promise<Listener>;
