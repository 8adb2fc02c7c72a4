/**
 * What every send needs before its first connection, whatever it sends (files or a stream):
 * the owner key it proves, the receiver key it expects, and how each connection is opened.
 */
import { BandwidthLimit } from '../bandwidth-limit.js';
import { FtError } from '../errors.js';
import { ephemeralOwnerKey, loadOwnerKey, type OwnerKey } from '../auth/owner-key.js';
import { parseFingerprint } from '../auth/fingerprint.js';
import { TrustStore } from '../auth/trust-store.js';
import { SEND_DEFAULTS } from '../defaults.js';
import type { ConnectOptions } from './connection.js';
import { ReceiverTrust } from './receiver-trust.js';
import type { SendOptions } from './sender.js';

export interface SenderIdentity {
  /** Proves to the receiver that resumes and receipts are ours. */
  ownerKey: OwnerKey;
  /** Decides whether the receiver's key is the one meant; undefined in plaintext. */
  trust: ReceiverTrust | undefined;
}

/** Loads the owner key (a key we cannot use stops the whole send) and sets up the receiver trust. */
export async function senderIdentity(options: SendOptions): Promise<SenderIdentity> {
  if (options.senderKeyFile !== undefined && (typeof options.senderKeyFile !== 'string' || options.senderKeyFile === '')) {
    throw new FtError('USAGE', 'senderKeyFile must be the path of a key file');
  }
  const ownerKey = options.senderKeyFile !== undefined ? await loadOwnerKey(options.senderKeyFile) : ephemeralOwnerKey();
  const trust = options.insecurePlaintext
    ? undefined
    : new ReceiverTrust({
        host: options.host,
        port: options.port ?? SEND_DEFAULTS.port,
        fingerprint: options.fingerprint === undefined ? undefined : parseFingerprint(options.fingerprint),
        discovered: options.discovered,
        policy: options.trust ?? 'pinned',
        store: options.trustFile === undefined ? undefined : new TrustStore(options.trustFile),
        token: options.token !== undefined,
      });
  return { ownerKey, trust };
}

/** limitRate as a limit every body byte waits for (one shared by the caller, or one of this send's own). */
export function bandwidthOf({ limitRate }: SendOptions): BandwidthLimit | undefined {
  return typeof limitRate === 'number' ? new BandwidthLimit({ bytesPerSecond: limitRate }) : limitRate;
}

/** Body bytes written at once under a bandwidth limit, well inside its burst: the rate (and progress) stays smooth. */
export function limitedSlice(bandwidth: BandwidthLimit): number {
  return Math.min(64 * 1024, bandwidth.burst);
}

/** One address of the receiver, with its port. */
export interface Endpoint {
  host: string;
  port: number;
}

/** Where this send's connections may go, in turn: `host`:`port`, then each fallback (a port left out is `port`'s). */
export function endpointsOf(options: SendOptions): Endpoint[] {
  const port = options.port ?? SEND_DEFAULTS.port;
  return [{ host: options.host, port }, ...(options.fallbacks ?? []).map((f) => ({ host: f.host, port: f.port ?? port }))];
}

/** How each connection of this send is opened, to `at` (one of endpointsOf). */
export function connectOptions(options: SendOptions, { ownerKey, trust }: SenderIdentity, at: Endpoint = endpointsOf(options)[0]!): ConnectOptions {
  return {
    host: at.host,
    port: at.port,
    token: options.token,
    ownerKey,
    connectTimeoutMs: options.connectTimeoutMs ?? SEND_DEFAULTS.connectTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? SEND_DEFAULTS.idleTimeoutMs,
    signal: options.signal,
    connect: options.connect,
    insecurePlaintext: options.insecurePlaintext ?? false,
    trust,
  };
}
