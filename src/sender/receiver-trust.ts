/**
 * Whether the key a receiver presents is the one this send means (SSH's known_hosts model).
 * Checked after the TLS handshake and before a byte of ours is written; once one connection
 * of a send is verified, every later one (retries, resumes) must present the same key.
 *
 * Order: a key already verified in this send; `--fingerprint`; what discovery announced; the
 * pins (by the receiver name asked for, else by address); and only then first contact, which
 * is trusted with `trust: 'new'`, asked about with a function, settled by the token proofs when
 * a token is given, and refused otherwise.
 */
import net from 'node:net';
import { FtError } from '../errors.js';
import { fingerprintMatches, shortFingerprint } from '../auth/fingerprint.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { shellWord } from '../discovery/pins.js';
import { hostPort } from '../host-port.js';

/** What a first contact is shown (and a trust function is given). */
export interface UnknownReceiver {
  fingerprint: string;
  host: string;
  port: number;
  /** The receiver name asked for (`--to NAME`), when discovery found it. */
  name?: string;
}

/**
 * First contact: 'pinned' refuses a receiver nothing vouches for (a token still does);
 * 'new' trusts it and pins it; a function decides (the terminal's question).
 */
export type TrustPolicy = 'pinned' | 'new' | ((receiver: UnknownReceiver) => boolean | Promise<boolean>);

/** The part of the trust store (auth/trust-store.ts) a send uses. */
export interface PinStore {
  lookup(query: { name?: string; address?: string }): Promise<{ byName?: { fingerprint: string; names: string[] }; byAddress?: { fingerprint: string } }>;
  record(contact: { fingerprint: string; name?: string; address?: string }): Promise<void>;
}

export interface ReceiverTrustOptions {
  host: string;
  port: number;
  /** Parsed --fingerprint (short or full, canonical). */
  fingerprint?: string;
  /** What discovery said: the name asked for (none when discovery picked the only receiver) and the key its beacon announced. */
  discovered?: { name?: string; fingerprint?: string };
  policy: TrustPolicy;
  store?: PinStore;
  token: boolean;
}

/** What the connection does next: go on, wait for the receiver's token proof, or ask first. */
export type TrustVerdict = 'trusted' | 'after-token-proof' | 'ask';

export function addressKey(host: string, port: number): string {
  return hostPort(host, port);
}

export class ReceiverTrust {
  /** The key this send's first verified connection presented. */
  private verified: string | undefined;
  /** Whether the last check met the key for the first time (no pin, no fingerprint): it is pinned once confirmed. */
  firstContact = false;
  /** Where the connection being checked goes (one of the receiver's addresses: fallbacks share its key). */
  private at: { host: string; port: number };
  /**
   * The receiver name whose pin applies: the one discovery found, or the host name sent to (a
   * pinned "nas" is still "nas" when DNS, not discovery, finds it: a receiver that is down or
   * slow to answer must not turn its name into a first contact for whoever holds its address).
   */
  private readonly pinnedName: string | undefined;

  constructor(private readonly options: ReceiverTrustOptions) {
    this.pinnedName = options.discovered?.name ?? (net.isIP(options.host) === 0 ? options.host : undefined);
    this.at = { host: options.host, port: options.port };
  }

  private get where(): string {
    const name = this.options.discovered?.name;
    const address = addressKey(this.at.host, this.at.port);
    return name !== undefined ? `"${escapeForDisplay(name)}" (${address})` : address;
  }

  /** `at`: the address connected to, when it is another than `host`:`port` (a fallback); its pin is the one looked up. */
  async check(presented: string, at: { host: string; port: number } = this.options): Promise<TrustVerdict> {
    const { options } = this;
    this.at = { host: at.host, port: at.port };
    this.firstContact = false;
    if (this.verified !== undefined) {
      if (presented === this.verified) return 'trusted';
      throw this.changed(presented, this.verified, 'in the middle of this send');
    }
    if (options.fingerprint !== undefined) {
      if (fingerprintMatches(presented, options.fingerprint)) return 'trusted';
      throw this.changed(presented, options.fingerprint, 'given with --fingerprint');
    }
    const announced = options.discovered?.fingerprint;
    if (announced !== undefined && announced !== presented) throw this.changed(presented, announced, 'its discovery beacon announced');
    const address = addressKey(at.host, at.port);
    const pins = await options.store?.lookup({ name: this.pinnedName, address });
    if (pins?.byName) {
      if (pins.byName.fingerprint === presented) return 'trusted';
      throw this.changed(presented, pins.byName.fingerprint, `pinned for "${escapeForDisplay(this.pinnedName!)}"`, this.pinnedName);
    }
    if (pins?.byAddress) {
      if (pins.byAddress.fingerprint === presented) return 'trusted';
      throw this.changed(presented, pins.byAddress.fingerprint, 'pinned for it', address);
    }
    this.firstContact = true;
    if (options.policy === 'new') return 'trusted';
    if (options.token) return 'after-token-proof';
    if (typeof options.policy === 'function') return 'ask';
    throw new FtError(
      'RECEIVER_UNKNOWN',
      `first contact with ${this.where}, key ${shortFingerprint(presented)}: nothing was sent. ` +
        'If that is the fingerprint `ft serve` printed there, send again with --fingerprint ' +
        `${shortFingerprint(presented)} (or --trust-new to trust it unchecked)`,
      { fingerprint: presented },
    );
  }

  /** First contact on a terminal: the user says yes (resolves) or no (RECEIVER_UNKNOWN). */
  async ask(presented: string): Promise<void> {
    const { policy, discovered } = this.options;
    const { host, port } = this.at;
    const yes = typeof policy === 'function' && (await policy({ fingerprint: presented, host, port, name: discovered?.name }));
    if (!yes) throw new FtError('RECEIVER_UNKNOWN', `${this.where} (key ${shortFingerprint(presented)}) was not trusted; nothing was sent`);
  }

  /**
   * The connection is verified (and, with a token, the receiver proved it): the rest of the
   * send holds this key, and it is pinned under the address and the name discovery found for
   * the name asked for. Never under the name a receiver calls itself: one trusted by address
   * could otherwise take a name (`nas`) that the real receiver of that name would then be
   * refused under; nor under a host name DNS resolved (two receivers on one host, on two ports,
   * are two receivers: that name:port is the address pinned).
   */
  async confirmed(presented: string): Promise<void> {
    this.verified = presented;
    const { store, discovered } = this.options;
    await store?.record({ fingerprint: presented, name: discovered?.name, address: addressKey(this.at.host, this.at.port) });
  }

  /** `forget`: the pin that refused it, which `ft trust forget` removes to accept a deliberate change. */
  private changed(presented: string, expected: string, what: string, forgetting?: string): FtError {
    const forget = forgetting ? `; if the receiver's key was changed on purpose, run \`ft trust forget ${shellWord(forgetting)}\` and send again` : '';
    return new FtError(
      'RECEIVER_KEY_CHANGED',
      `${this.where} presented key ${shortFingerprint(presented)}, not ${shortFingerprint(expected)} ${what}: it may be an impostor, and nothing was sent${forget}`,
      { fingerprint: presented, expected },
    );
  }
}
