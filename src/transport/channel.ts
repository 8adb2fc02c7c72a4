/**
 * What a transport tells the protocol about the channel it carries: whether it is encrypted,
 * the receiver's key as the sender saw it, and keying material unique to this channel, over
 * which both peers' token proofs are made (docs/PROTOCOL.md §3) so that a man in the middle,
 * who has one channel with each side, cannot pass a proof on from one to the other.
 */
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

export interface ChannelSecurity {
  readonly kind: 'tls' | 'plaintext';
  /** Sender side, TLS: the full fingerprint of the key the receiver's certificate holds. */
  readonly peerFingerprint?: string;
  /**
   * 32 bytes from the TLS exporter (RFC 8446 §7.5) under EXPORTER_LABEL; empty in plaintext.
   * Read once the handshake is done: on the receiver, the sender's first frame comes after it.
   */
  binding(): Buffer;
}

/** A stream and what carries it. A connector or listener that gives a bare stream gives plaintext. */
export interface Channel {
  readonly stream: Duplex;
  readonly security: ChannelSecurity;
}

export const EXPORTER_LABEL = 'EXPORTER-ft-channel-binding';
export const BINDING_BYTES = 32;
/** ALPN protocol name both sides require: a TLS peer that is not ft is refused in the handshake. */
export const ALPN = 'ft';

export const PLAINTEXT: ChannelSecurity = Object.freeze({ kind: 'plaintext', binding: () => Buffer.alloc(0) });

export function tlsSecurity(socket: TLSSocket, peerFingerprint?: string): ChannelSecurity {
  let binding: Buffer | undefined;
  return {
    kind: 'tls',
    peerFingerprint,
    binding: () => (binding ??= socket.exportKeyingMaterial(BINDING_BYTES, EXPORTER_LABEL, Buffer.alloc(0))),
  };
}

/**
 * TLS 1.3 only; AES-128-GCM first (the fastest here, and as strong as the channel needs); ALPN
 * "ft". Spread into every context and socket, client and server, so both sides agree.
 */
export const TLS_PROFILE: Readonly<{ minVersion: 'TLSv1.3'; maxVersion: 'TLSv1.3'; ciphers: string; ALPNProtocols: string[] }> = Object.freeze({
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
  ALPNProtocols: Object.freeze([ALPN]) as string[],
});
