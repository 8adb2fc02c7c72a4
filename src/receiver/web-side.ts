/**
 * The receiver's web side put together: access, the upload page, the tus endpoint, and (in
 * plaintext only) the HTTP port of its own. Over TLS the page shares the receiver's port and
 * identity, so the browser's certificate warning is about the fingerprint `ft serve` prints.
 */
import os from 'node:os';
import net from 'node:net';
import { isLoopbackAddress } from '../discovery/interfaces.js';
import type { ReceiverEvent } from '../ingest/events.js';
import type { Ingest } from '../ingest/ingest.js';
import type { ReceiptSealer } from '../ingest/receipts.js';
import { shortFingerprint } from '../auth/fingerprint.js';
import { listenTcp } from '../transport/tcp-listener.js';
import type { Listener } from '../transport/listener.js';
import { WebAccess } from '../web/access.js';
import { loadAssets } from '../web/assets.js';
import { TusEndpoint } from '../web/tus.js';
import { TUS_MOUNT, WebServer, type WebSlots } from '../web/web-server.js';
import { SERVE_DEFAULTS } from '../defaults.js';
import { Admission, type Ticket } from './admission.js';
import type { GcHints } from './gc-hints.js';
import type { Receiver, ServeOptions } from './server.js';
import type { BandwidthLimit } from '../bandwidth-limit.js';

export interface WebSide {
  readonly address: { host: string; port: number; family: string };
  accept: WebServer['accept'];
  turnAway: WebServer['turnAway'];
  link(host?: string): string;
  close(): Promise<void>;
}

export interface WebSideOptions {
  serve: ServeOptions;
  receiver: Receiver;
  ingest: Ingest;
  /** The TCP protocol's admission: wrong codes and tokens count with its wrong proofs. */
  admission: Admission;
  /** The receiver's garbage-collection hints, shared with the TCP protocol's sessions. */
  gc: GcHints;
  /** The receiver's kept key, from which the web side's secrets are derived. */
  receipts: ReceiptSealer;
  name: string;
  emit: (event: ReceiverEvent) => void;
  /** The receiver's identity (undefined in plaintext). */
  fingerprint: string | undefined;
  /** The receiver's bandwidth limit, shared with the TCP protocol's sessions. */
  bandwidth: BandwidthLimit | undefined;
}

export const OPEN_WARNING = 'No token is set: anyone on this network can upload files here.';

export async function startWebSide(options: WebSideOptions): Promise<WebSide> {
  const { serve, receiver, ingest, receipts, emit, fingerprint } = options;
  const access = new WebAccess({ token: serve.token, secret: receipts.deriveSecret('web-sessions') });
  const maxFileSize = serve.maxFileSize ?? Number.MAX_SAFE_INTEGER;
  const allowUnverified = serve.allowUnverified ?? SERVE_DEFAULTS.allowUnverified;
  const tus = new TusEndpoint({
    ingest,
    mount: TUS_MOUNT,
    secret: receipts.deriveSecret('tus-ids'),
    maxFileSize,
    allowUnverified,
    partialTtlMs: serve.partialTtlMs ?? SERVE_DEFAULTS.partialTtlMs,
    idleTimeoutMs: serve.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs,
    noteRead: (bytes) => options.gc.noteRead(bytes),
    minBodyRate: serve.minBodyRate ?? SERVE_DEFAULTS.minBodyRate,
    bandwidth: options.bandwidth,
    emit,
  });
  // Web connections have a pool of their own, as large as the TCP protocol's, so neither side
  // can take the other's slots; a wrong code or token counts as a wrong token proof does, so
  // guessing on both sides at once is no faster.
  const pool = new Admission({
    maxConnections: serve.maxConnections ?? SERVE_DEFAULTS.maxConnections,
    maxPerAddress: serve.maxConnectionsPerAddress ?? SERVE_DEFAULTS.maxConnectionsPerAddress,
    maxGreeting: serve.maxUnauthenticated ?? SERVE_DEFAULTS.maxUnauthenticated,
  });
  const slots: WebSlots = {
    enter: (address, evict) => pool.enter(address, evict),
    promote: (ticket) => pool.promote(ticket as Ticket),
    progressed: (ticket) => pool.progressed(ticket as Ticket),
    leave: (ticket) => pool.leave(ticket as Ticket),
    authFailed: (address) => options.admission.authFailed(address),
    authSucceeded: (address) => options.admission.authSucceeded(address),
  };
  const bound = receiver.address;
  const openToAll = access.open && !isLoopbackAddress(bound.host);
  const server = new WebServer({
    tus,
    access,
    slots,
    assets: loadAssets(),
    info: {
      name: options.name,
      fingerprint: fingerprint ? shortFingerprint(fingerprint) : null,
      certificateSha256: receiver.certificateSha256 ?? null,
      access: access.open ? 'open' : 'token',
      warning: openToAll ? OPEN_WARNING : null,
      tusPath: `${TUS_MOUNT}/`,
      allowUnverified,
      maxFileSize: Number.isSafeInteger(maxFileSize) && maxFileSize < Number.MAX_SAFE_INTEGER ? maxFileSize : null,
    },
    tls: fingerprint !== undefined,
    idleTimeoutMs: serve.idleTimeoutMs ?? SERVE_DEFAULTS.idleTimeoutMs,
    ...(fingerprint === undefined ? { hostAllowed: ownHostName } : {}),
    onAccess: (remote, via) => emit({ type: 'access', remote, via }),
    onWarning: (message) => emit({ type: 'warning', message }),
  });
  let address = bound;
  let plainListener: Listener | undefined;
  if (fingerprint === undefined) {
    const port = serve.webPort ?? (bound.port === 0 ? 0 : bound.port + 1);
    plainListener = await listenTcp({ port, host: serve.host });
    plainListener.onConnection(({ stream, address: from, port: fromPort }) => server.accept(stream, from, fromPort));
    address = plainListener.address;
  }
  const scheme = fingerprint === undefined ? 'http' : 'https';
  return {
    address,
    accept: (stream, from, port) => server.accept(stream, from, port),
    turnAway: (stream, reason) => server.turnAway(stream, reason),
    link: (host = linkHost(address.host)) => {
      const shown = net.isIPv6(host) ? `[${host}]` : host;
      const fragment = access.open ? '' : `#code=${access.newCode()}`;
      return `${scheme}://${shown}:${address.port}/${fragment}`;
    },
    close: async () => {
      await plainListener?.close();
      await server.close();
    },
  };
}

/** An address, localhost, or this machine's own name (also under .local, .lan, .home.arpa). */
export function ownHostName(host: string): boolean {
  if (net.isIP(host) || host === 'localhost') return true;
  const own = os.hostname().toLowerCase();
  return [own, `${own}.local`, `${own}.lan`, `${own}.home.arpa`].includes(host);
}

/**
 * An address of this machine a phone on the same network can reach: the bound one, or for a
 * wildcard the first IPv4 address of an interface that is up and not loopback (loopback when
 * there is none).
 */
export function linkHost(bound: string, interfaces = os.networkInterfaces()): string {
  const plain = bound.replace(/^::ffff:/, '');
  if (plain !== '::' && plain !== '0.0.0.0') return plain;
  for (const entries of Object.values(interfaces)) {
    for (const entry of entries ?? []) if (entry.family === 'IPv4' && !entry.internal) return entry.address;
  }
  return '127.0.0.1';
}
