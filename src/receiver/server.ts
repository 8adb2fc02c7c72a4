import { EventEmitter } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import { FtError } from '../errors.js';
import { Announcer } from '../discovery/announcer.js';
import { cleanReceiverName } from '../discovery/codec.js';
import { isLoopbackAddress } from '../discovery/interfaces.js';
import { nodeFileSystem, type FileSystem } from '../file-system.js';
import { DiskBudget } from '../ingest/disk-budget.js';
import type { ReceiverEvent } from '../ingest/events.js';
import { Ingest } from '../ingest/ingest.js';
import { ReceiptSealer } from '../ingest/receipts.js';
import { validateServeOptions } from '../options.js';
import type { ConflictPolicy } from '../storage/conflict-policy.js';
import { LocalUploadStore } from '../storage/local/local-store.js';
import type { UploadStore } from '../storage/upload-store.js';
import type { IncomingConnection, Listener, ListenerFactory } from '../transport/listener.js';
import { listenTcp } from '../transport/tcp-listener.js';
import { negotiatedProtocol, tlsListener } from '../transport/tls-listener.js';
import { ALPN } from '../transport/channel.js';
import { TLSSocket } from 'node:tls';
import { randomBytes, X509Certificate } from 'node:crypto';
import { startWebSide, type WebSide } from './web-side.js';
import { generateIdentity, identityFrom, type Identity } from '../auth/identity.js';
import { encodeFrame } from '../wire/frame.js';
import { SERVE_DEFAULTS } from '../defaults.js';
import { Admission } from './admission.js';
import { GcHints } from './gc-hints.js';
import { ReceiverSession, streamFailure, type SessionLimits } from './session.js';
import { hostPort } from '../host-port.js';
import { BandwidthLimit } from '../bandwidth-limit.js';

export interface ServeOptions {
  /** Folder to receive into, created if missing. @default './inbox' */
  dir?: string;
  /**
   * Where files go instead of `dir`: an UploadStore, such as an S3UploadStore (an inbox in an
   * S3 bucket); the receiver closes it when it closes. Its receipts' key is then derived from
   * the identity's key (so receivers sharing a bucket and an identity honour each other's).
   */
  store?: UploadStore;
  /** TCP port; 0 picks a free one. @default 9527 */
  port?: number;
  /** Address to listen on. @default all interfaces */
  host?: string;
  /** When a different file already has the name. @default 'rename' (keep both) */
  onConflict?: ConflictPolicy;
  /**
   * Shared secret senders must prove, and the receiver proves back (HMAC over keying material
   * of this TLS connection: docs/PROTOCOL.md §3.4).
   */
  token?: string;
  /**
   * The key and certificate TLS presents: its fingerprint is what senders pin. Use
   * loadOrCreateIdentity(defaultIdentityDir()) to keep one from run to run (as `ft serve`
   * does), or identityFrom(key, cert) for your own. @default a new identity for this call
   * (senders that pinned it will refuse the next one)
   */
  identity?: Identity;
  /**
   * No TLS: every byte, the token proof aside, is readable and changeable by anyone on the
   * network, and senders cannot tell this receiver from another. Senders must choose it too.
   * @default false
   */
  insecurePlaintext?: boolean;
  /** Name announced to senders. @default the host name */
  name?: string;
  /** Largest file accepted, in bytes. @default no limit but free space */
  maxFileSize?: number;
  /** Concurrent connections. @default 64 */
  maxConnections?: number;
  /** Concurrent connections from one address (an IPv6 /64 counts as one). @default 8 */
  maxConnectionsPerAddress?: number;
  /**
   * Connections not yet past their greeting (token proof); when full, the oldest is dropped
   * for a newcomer, so peers that never authenticate cannot lock out those who can. @default 16
   */
  maxUnauthenticated?: number;
  /** Time a new connection has to say hello, in ms. @default 5000 */
  helloTimeoutMs?: number;
  /** Time a connection may stay silent, in ms. @default 60000 */
  idleTimeoutMs?: number;
  /** Slowest rate at which a body may arrive, in bytes per second (0: no minimum). @default 16384 */
  minBodyRate?: number;
  /** Partial uploads kept, in all; at the cap the least recently used one not in use makes room. @default 8192 */
  maxPartials?: number;
  /** Partial uploads kept per peer (an IPv4 address or an IPv6 /64). @default 64 */
  maxPartialsPerPeer?: number;
  /** Partial uploads untouched this long are deleted, in ms. @default 7 days */
  partialTtlMs?: number;
  /** Announce on the LAN with a UDP beacon and answer discovery queries. @default true */
  beacon?: boolean;
  /** Seconds between beacons. @default 3 */
  beaconInterval?: number;
  /** UDP port for beacons and queries. @default 9527 */
  discoveryPort?: number;
  /** Announce on this interface only (name or address). */
  interface?: string;
  /** File system to write to. @default node:fs */
  fs?: FileSystem;
  /** How connections arrive (a test's in-memory pipes, say). @default TLS over TCP on `host` and `port` (plain TCP with insecurePlaintext) */
  listen?: ListenerFactory;
  /**
   * Asks the runtime for a young-generation garbage collection; the receiver calls it every few
   * megabytes read (see receiver/gc-hints.ts). `ft serve` passes one; undefined: never called.
   */
  collectGarbage?: () => void;
  /**
   * Also serve the upload page and the tus endpoint (docs/WEB.md): on the same port over TLS
   * (ALPN tells them apart), or on `webPort` in plaintext. @default true
   */
  web?: boolean;
  /** With insecurePlaintext: the port for plain HTTP. @default port + 1 (any free port with port 0) */
  webPort?: number;
  /**
   * Accept web and tus uploads that carry no whole-file hash (reported `verified: false`).
   * @default false
   */
  allowUnverified?: boolean;
  /**
   * Bandwidth limit for all uploads together (ft senders and tus), in bytes per second (at
   * least 32 KiB/s); or a BandwidthLimit, to share one limit with other receivers or senders.
   * The receiver's own waits under it count against no sender's minimum rate. @default no limit
   */
  limitRate?: number | BandwidthLimit;
  /** Closes the receiver when aborted. */
  signal?: AbortSignal;
}

export { SERVE_DEFAULTS };

type EventName = ReceiverEvent['type'];
type EventOf<T extends EventName> = Extract<ReceiverEvent, { type: T }>;

/**
 * A running receiver. Each event is emitted under its `type` ('received', 'skipped', 'refused',
 * 'failed', 'started', 'restarted', 'progress', 'connection', 'connection-error', 'access', 'warning') and also as
 * 'event'. Problems with one connection never stop the receiver.
 */
export class Receiver extends EventEmitter {
  private readonly sessions = new Set<ReceiverSession>();
  private readonly running = new Set<Promise<void>>();
  private closing: Promise<void> | undefined;
  private expiry: NodeJS.Timeout | undefined;
  /** @internal The upload page and tus endpoint, when served. */
  web: WebSide | undefined;
  /** Present while the receiver announces itself on the LAN. */
  announcer: Announcer | undefined;
  /** Why the receiver could not announce itself, when discovery was asked for and failed. */
  discoveryError: string | undefined;

  constructor(
    private readonly listener: Listener,
    /** Where received files go. */
    readonly store: UploadStore,
    /** The full fingerprint of the key senders see; undefined in plaintext. */
    readonly fingerprint: string | undefined,
    /**
     * SHA-256 of the whole certificate, as browsers show it (`AB:CD:…`): what a person checks
     * the upload page's certificate warning against. Undefined in plaintext.
     */
    readonly certificateSha256: string | undefined = undefined,
  ) {
    super();
  }

  /** The address and port actually listened on (useful with port 0). */
  get address(): { host: string; port: number; family: string } {
    return { ...this.listener.address };
  }

  /** Where the upload page is served (the receiver's own address in TLS), when it is. */
  get webAddress(): { host: string; port: number; family: string } | undefined {
    return this.web && { ...this.web.address };
  }

  /**
   * The page's address as a person opens it, at `host` (default: an address of this machine
   * others can reach), with a new one-time access code when the receiver has a token.
   */
  accessLink(host?: string): string | undefined {
    return this.web?.link(host);
  }

  /** The inbox folder (its real path). */
  get dir(): string {
    return this.store.privateLocation;
  }

  override on<T extends EventName>(event: T, listener: (event: EventOf<T>) => void): this;
  override on(event: 'event', listener: (event: ReceiverEvent) => void): this;
  override on(event: string | symbol, listener: (...args: any[]) => void): this {
    return super.on(event, listener);
  }

  /** @internal */
  publish(event: ReceiverEvent): void {
    // A throwing listener is the caller's bug; it must not break a transfer or the receiver.
    for (const name of [event.type, 'event']) {
      try {
        this.emit(name, event);
      } catch {
        // Ignored on purpose.
      }
    }
  }

  /** @internal */
  track(session: ReceiverSession): void {
    this.sessions.add(session);
    const run = session.run().finally(() => {
      this.sessions.delete(session);
      this.running.delete(run);
    });
    this.running.add(run);
  }

  /** @internal */
  scheduleExpiry(ttlMs: number): void {
    const sweep = () => {
      // An unreadable folder: the next sweep tries again.
      this.store.expire(ttlMs).catch(() => undefined);
    };
    sweep();
    // Often enough that an abandoned tiny upload goes soon after its hour.
    this.expiry = setInterval(sweep, Math.min(ttlMs, this.store.sweepIntervalMs)).unref();
  }

  /** Stops listening and drops open connections; their partial data stays for resume. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.expiry);
      await this.announcer?.close();
      const closed = this.listener.close();
      await this.web?.close();
      for (const session of this.sessions) session.abort();
      await Promise.all([closed, ...this.running]);
      // The store's handles (after the sessions, which may still be placing files).
      await this.store.close();
    })();
    return this.closing;
  }
}

export async function serve(options: ServeOptions = {}): Promise<Receiver> {
  validateServeOptions(options);
  const fs = options.fs ?? nodeFileSystem;
  const port = options.port ?? SERVE_DEFAULTS.port;
  const partialTtlMs = options.partialTtlMs ?? SERVE_DEFAULTS.partialTtlMs;
  const store = options.store ?? await LocalUploadStore.open(options.dir ?? SERVE_DEFAULTS.dir, {
    fs,
    onConflict: options.onConflict ?? SERVE_DEFAULTS.onConflict,
    partialLimits: {
      maxPartials: options.maxPartials ?? SERVE_DEFAULTS.maxPartials,
      maxPartialsPerPeer: options.maxPartialsPerPeer ?? SERVE_DEFAULTS.maxPartialsPerPeer,
    },
  });
  const webOn = options.web ?? SERVE_DEFAULTS.web;
  let listener: Listener;
  let fingerprint: string | undefined;
  let certificateSha256: string | undefined;
  try {
    let listen = options.listen;
    if (listen === undefined && options.insecurePlaintext === true) listen = listenTcp;
    if (listen === undefined) {
      // A given identity's fingerprint is the certificate's, never the field it came with (which
      // would be printed and announced): identityFrom recomputes it and checks key and certificate.
      const identity = options.identity ? identityFrom(options.identity.key, options.identity.cert) : await generateIdentity();
      fingerprint = identity.fingerprint;
      certificateSha256 = new X509Certificate(identity.cert).fingerprint256;
      listen = tlsListener(identity, webOn ? [ALPN, 'http/1.1'] : [ALPN]);
    }
    listener = await listen({ port, host: options.host });
  } catch (error) {
    await store.close();
    throw error;
  }
  const limits: SessionLimits = {
    maxPendingFiles: 64,
    helloTimeoutMs: options.helloTimeoutMs ?? SERVE_DEFAULTS.helloTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs,
    minBodyRate: options.minBodyRate ?? SERVE_DEFAULTS.minBodyRate,
  };
  const admission = new Admission({
    maxConnections: options.maxConnections ?? SERVE_DEFAULTS.maxConnections,
    maxPerAddress: options.maxConnectionsPerAddress ?? SERVE_DEFAULTS.maxConnectionsPerAddress,
    maxGreeting: options.maxUnauthenticated ?? SERVE_DEFAULTS.maxUnauthenticated,
  });
  const receiver = new Receiver(listener, store, fingerprint, certificateSha256);
  const name = cleanReceiverName(options.name ?? os.hostname());
  const emit = (event: ReceiverEvent) => receiver.publish(event);
  // The key lives with the partial uploads: the receiver's own, owner-only folder.
  const receipts = store instanceof LocalUploadStore ? ReceiptSealer.open(store.stateDir, fs) : ReceiptSealer.derivedFrom(options.identity?.key ?? randomBytes(32));
  const ingest = new Ingest({
    store,
    receipts,
    // A store that cannot tell its free space is not asked (a full disk then ends a body as it fills).
    disk: new DiskBudget(store.capabilities.freeSpace ? () => store.freeSpace() : async () => undefined),
    maxFileSize: options.maxFileSize ?? Number.MAX_SAFE_INTEGER,
    tellPaths: options.token !== undefined,
    emit,
  });
  const gc = new GcHints(options.collectGarbage);
  const { limitRate } = options;
  const bandwidth = typeof limitRate === 'number' ? new BandwidthLimit({ bytesPerSecond: limitRate }) : limitRate;
  const context = {
    ingest,
    admission,
    limits,
    token: options.token,
    name,
    emit,
    privateLocation: store.privateLocation,
    gc,
    bandwidth,
  };
  if (webOn) {
    try {
      receiver.web = await startWebSide({ serve: options, receiver, ingest, admission, gc, receipts, name, emit, fingerprint, bandwidth });
    } catch (error) {
      await listener.close();
      await store.close();
      throw error;
    }
  }
  // Over TLS with the web side on, a connection's protocol is known only once ALPN has settled
  // it: until then it holds a handshake slot (a greeting slot by another name: as many, dropped
  // oldest first, for at most the hello timeout), and only then joins its protocol's pool, which
  // turns it away in its own words.
  const handshakes = new Admission({
    maxConnections: options.maxConnections ?? SERVE_DEFAULTS.maxConnections,
    maxPerAddress: options.maxConnectionsPerAddress ?? SERVE_DEFAULTS.maxConnectionsPerAddress,
    maxGreeting: options.maxUnauthenticated ?? SERVE_DEFAULTS.maxUnauthenticated,
  });
  const startSession = (connection: IncomingConnection) => {
    const ticket = admission.enter(connection.address, () => connection.stream.destroy());
    if (typeof ticket === 'string') return turnAway(connection, ticket);
    connection.stream.once('close', () => admission.leave(ticket));
    receiver.track(new ReceiverSession(connection, context, ticket));
  };
  const web = receiver.web;
  listener.onConnection((connection: IncomingConnection) => {
    const socket = connection.stream;
    if (!web || !(socket instanceof TLSSocket)) return startSession(connection);
    const pending = handshakes.enter(connection.address, () => socket.destroy());
    // Over the limits, a connection is still told so in its own protocol, if its handshake is
    // done within TURN_AWAY_MS; it holds no slot meanwhile.
    const refusal = typeof pending === 'string' ? pending : undefined;
    if (typeof pending !== 'string') socket.once('close', () => handshakes.leave(pending));
    const { helloTimeoutMs } = context.limits;
    const waitMs = refusal === undefined ? helloTimeoutMs : TURN_AWAY_MS;
    const deadline = setTimeout(() => socket.destroy(new FtError('TIMEOUT', `no hello within ${waitMs} ms`)), waitMs).unref();
    negotiatedProtocol(socket).then(
      (protocol) => {
        clearTimeout(deadline);
        if (typeof pending !== 'string') handshakes.leave(pending);
        if (protocol === ALPN) return refusal === undefined ? startSession(connection) : turnAway(connection, refusal);
        if (refusal === undefined) web.accept(socket, connection.address, connection.port);
        else web.turnAway(socket, refusal);
      },
      (error: unknown) => {
        clearTimeout(deadline);
        socket.destroy();
        if (refusal !== undefined) return;
        const remote = hostPort(connection.address, connection.port);
        const failure = streamFailure(error);
        emit({ type: 'connection', remote });
        emit({ type: 'connection-error', remote, code: failure.code, message: failure.message });
      },
    );
  });
  receiver.scheduleExpiry(partialTtlMs);
  if (options.beacon ?? SERVE_DEFAULTS.beacon) await announce(receiver, options, name, fingerprint);
  if (options.signal) {
    if (options.signal.aborted) await receiver.close();
    else options.signal.addEventListener('abort', () => void receiver.close(), { once: true });
  }
  return receiver;
}

/**
 * Starts the beacon where senders can reach the address actually listened on: everywhere for
 * a wildcard, loopback only for 127.x, that one interface for a specific IPv4 address. Discovery
 * is IPv4 broadcast, so a receiver on an IPv6 address only is not announced (and says why).
 */
async function announce(receiver: Receiver, options: ServeOptions, name: string, fingerprint?: string): Promise<void> {
  const bound = receiver.address.host;
  const wildcard = bound === '::' || bound === '0.0.0.0';
  if (!wildcard && net.isIPv6(bound) && !bound.startsWith('::ffff:')) {
    receiver.discoveryError = `discovery uses IPv4 broadcast, and this receiver listens on ${bound} only`;
    return;
  }
  const loopbackOnly = !wildcard && isLoopbackAddress(bound);
  const iface = options.interface ?? (wildcard || loopbackOnly ? undefined : bound.replace(/^::ffff:/, ''));
  try {
    receiver.announcer = await Announcer.start({
      name,
      port: receiver.address.port,
      auth: options.token !== undefined,
      // The identity's key, so senders can tell an impostor by name (none in plaintext).
      fingerprint,
      interval: options.beaconInterval ?? SERVE_DEFAULTS.beaconInterval,
      discoveryPort: options.discoveryPort ?? SERVE_DEFAULTS.discoveryPort,
      interface: iface,
      loopbackOnly,
      onError: (error) => receiver.publish({ type: 'warning', message: `discovery: ${error.message}` }),
    });
  } catch (error) {
    // Transfers work without discovery; the caller can say why senders will need the address.
    receiver.discoveryError = (error as Error).message;
  }
}

/** How long a connection turned away has to finish its TLS handshake and read why. */
const TURN_AWAY_MS = 1000;

/** Over a connection limit: say so in the protocol (code BUSY) rather than resetting. */
function turnAway({ stream }: IncomingConnection, message: string): void {
  stream.on('error', () => undefined);
  stream.end(encodeFrame({ type: 'error', code: 'BUSY', message }));
  setTimeout(() => stream.destroy(), TURN_AWAY_MS).unref();
}
