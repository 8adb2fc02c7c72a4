import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { escapeControls, escapeForDisplay } from '../names/safe-name.js';
import type { ConflictPolicy } from '../storage/conflict-policy.js';
import type { ReceiverEvent } from '../ingest/events.js';
import { serve } from '../receiver/server.js';
import { durationsInWords, formatBytes, formatDuration, formatRate, jsonLine } from './format.js';
import { checkInbox, inboxError } from './inbox-check.js';
import { FtError } from '../errors.js';
import { readToken } from './options.js';
import { defaultIdentityDir, loadOrCreateIdentity } from '../auth/identity-store.js';
import { shortFingerprint } from '../auth/fingerprint.js';
import qrcode from 'qrcode-terminal';

export interface ServeCommandOptions {
  port: number;
  host?: string;
  onConflict: ConflictPolicy;
  maxFileSize?: number;
  partialTtl: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  maxUnauthenticated: number;
  maxPartials?: number;
  maxPartialsPerPeer?: number;
  minRate: number;
  /** Bytes per second. */
  limitRate?: number;
  idleTimeout: number;
  helloTimeout: number;
  name?: string;
  tokenFile?: string;
  identity?: string;
  insecurePlaintext?: boolean;
  web: boolean;
  webPort?: number;
  allowUnverified?: boolean;
  beacon: boolean;
  beaconInterval: number;
  interface?: string;
  discoveryPort?: number;
  json?: boolean;
  s3Endpoint?: string;
}

const isS3Url = (dir: string) => dir.startsWith('s3://');
const LOOPBACK = /^(127\.|::1$|localhost$)/;
const PLAINTEXT_WARNING = '--insecure-plaintext: nothing is encrypted, so anyone on the network can read and change the files, and senders cannot tell this receiver from an impostor';

/**
 * The receiver keeps its memory low with young-generation collections (receiver/gc-hints.ts).
 * The flag exposes `gc` in contexts created after it is set; only `ft serve` pays the few
 * milliseconds this takes, and the function goes to the receiver, not onto globalThis.
 */
function youngCollector(): () => void {
  const exposed = (globalThis as { gc?: (options: { type: 'minor' }) => void }).gc;
  if (exposed) return () => exposed({ type: 'minor' });
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (options: { type: 'minor' }) => void;
  return () => gc({ type: 'minor' });
}

export async function serveCommand(dir: string, options: ServeCommandOptions): Promise<number> {
  const collectGarbage = youngCollector();
  const token = readToken(options.tokenFile);
  const out = (text: string) => process.stdout.write(text);
  if (options.s3Endpoint !== undefined && !isS3Url(dir)) throw new FtError('USAGE', '--s3-endpoint is for an inbox in a bucket (s3://bucket/prefix)');
  // Loaded only for a bucket: the AWS SDK is large, and a folder inbox never needs it.
  const store = isS3Url(dir) ? await (await import('./s3-inbox.js')).openS3Inbox(dir, { endpoint: options.s3Endpoint, ...options }) : undefined;
  if (store === undefined) checkInbox(dir);
  const plaintext = options.insecurePlaintext === true;
  const loaded = plaintext ? undefined : await loadOrCreateIdentity(options.identity ?? defaultIdentityDir());
  const receiver = await serve({
    identity: loaded?.identity,
    insecurePlaintext: plaintext,
    ...(store !== undefined ? { store } : { dir }),
    collectGarbage,
    port: options.port,
    host: options.host,
    onConflict: options.onConflict,
    maxFileSize: options.maxFileSize,
    partialTtlMs: options.partialTtl,
    maxConnections: options.maxConnections,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress,
    maxUnauthenticated: options.maxUnauthenticated,
    maxPartials: options.maxPartials,
    maxPartialsPerPeer: options.maxPartialsPerPeer,
    minBodyRate: options.minRate,
    limitRate: options.limitRate,
    idleTimeoutMs: options.idleTimeout * 1000,
    helloTimeoutMs: options.helloTimeout * 1000,
    name: options.name,
    token,
    beacon: options.beacon,
    beaconInterval: options.beaconInterval,
    interface: options.interface,
    discoveryPort: options.discoveryPort,
    web: options.web,
    webPort: options.webPort,
    allowUnverified: options.allowUnverified === true,
  }).catch((error: unknown) => Promise.reject(inboxError(dir, error)));
  // Listen for Ctrl-C before saying we are ready, so a signal right after the address line stops us cleanly.
  const stopped = new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  const name = receiver.announcer?.info.name;
  const openToAll = token === undefined && !LOOPBACK.test(options.host ?? '');
  const openWarning = 'no token set, so anyone on the network can send files here (see --token-file)';
  // On stderr in both modes, so it is seen even when stdout goes to a log; every run, so it is never forgotten.
  if (openToAll) process.stderr.write(`ft: warning: ${openWarning}\n`);
  if (plaintext) process.stderr.write(`ft: warning: ${PLAINTEXT_WARNING}\n`);
  const { host, port } = receiver.address;
  const fingerprint = receiver.fingerprint;
  if (options.json) {
    out(
      jsonLine('listening', {
        dir: receiver.dir,
        host,
        port,
        auth: token !== undefined,
        name,
        id: receiver.announcer?.info.id,
        tls: !plaintext,
        ...(fingerprint ? { fingerprint, shortFingerprint: shortFingerprint(fingerprint), identityCreated: loaded!.created } : {}),
        ...(receiver.webAddress ? { web: receiver.accessLink(), ...(receiver.certificateSha256 ? { certificateSha256: receiver.certificateSha256 } : {}) } : {}),
      }),
    );
    if (openToAll) out(jsonLine('warning', { message: openWarning }));
    if (plaintext) out(jsonLine('warning', { message: PLAINTEXT_WARNING }));
    if (receiver.discoveryError) out(jsonLine('warning', { message: `discovery is off: ${receiver.discoveryError}` }));
    receiver.on('event', (event) => {
      const line = receiverEventJson(event);
      if (line !== undefined) out(line);
    });
  } else {
    const shownHost = host.includes(':') ? `[${host}]` : host;
    const announced = name ? ` as "${escapeForDisplay(name)}"` : '';
    out(`ft: receiving into ${receiver.dir} on ${shownHost}:${port}${announced}\n`);
    if (fingerprint) {
      const made = loaded!.created ? ' (a new identity)' : '';
      out(`ft: fingerprint ${shortFingerprint(fingerprint)}${made}: senders see it on first contact and can check it against this\n`);
    }
    if (receiver.discoveryError) {
      process.stderr.write(`ft: warning: discovery is off (${receiver.discoveryError}); senders need this address\n`);
    }
    if (receiver.webAddress) out(uploadPage(receiver.accessLink()!, receiver.certificateSha256, token !== undefined));
    receiver.on('event', (event) => {
      const line = event.type === 'access' ? accessLine(event.remote, event.via, receiver.accessLink()!) : describe(event);
      if (line) out(`${line}\n`);
    });
  }
  await stopped;
  await receiver.close();
  if (!options.json) out('ft: stopped; unfinished uploads are kept for resume\n');
  return 0;
}

/**
 * The page's address, a QR code of it for a phone's camera, and what to compare the browser's
 * certificate warning with: the certificate's own SHA-256, which every browser's certificate
 * details show (the page shows it too, but a page can claim anything).
 */
function uploadPage(link: string, certificateSha256: string | undefined, gated: boolean): string {
  const once = gated ? ' (its code works once: the next device gets a new link, or types the token)' : '';
  let text = `ft: upload page ${link}${once}\n`;
  qrcode.generate(link, { small: true }, (drawn) => {
    text += `${drawn}\n`;
  });
  if (certificateSha256) {
    text += `ft: browsers warn that the page's certificate is self-signed; it is this receiver's if its SHA-256 fingerprint is ${certificateSha256}\n`;
  } else {
    text += 'ft: warning: the page is plain HTTP (--insecure-plaintext): anyone on the network can read and change uploads\n';
  }
  return text;
}

function accessLine(remote: string, via: 'code' | 'token', next: string): string {
  if (via === 'token') return `access   ${remote} opened the upload page with the token`;
  return `access   ${remote} opened the upload page with its one-time code; for another device: ${next}`;
}

function describe(event: ReceiverEvent): string | undefined {
  const name = 'name' in event ? escapeForDisplay(event.name) : '';
  switch (event.type) {
    case 'received': {
      const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
      const renamed = event.path !== event.name ? ` as ${escapeForDisplay(event.path)}` : '';
      const rate = formatRate(event.size - event.resumedFrom, event.durationMs);
      // Never passed off as verified: a tus upload without a hash, where the receiver allows it.
      const unverified = event.verified ? '' : ' UNVERIFIED (no hash was sent)';
      const by = event.protocol === 'tus' ? ' by tus' : '';
      return `received ${name}${renamed} (${formatBytes(event.size)} in ${formatDuration(event.durationMs)}, ${rate}${resumed}) from ${event.remote}${by}${unverified}`;
    }
    case 'skipped':
      return `skipped  ${name}: already there`;
    case 'folder':
      return `folder   ${escapeForDisplay(event.path)}/ (empty) from ${event.remote}`;
    case 'refused':
      return `refused  ${name} from ${event.remote}: ${event.code}: ${escapeControls(event.message)}`;
    case 'failed':
      return `failed   ${name} from ${event.remote}: ${event.code}: ${escapeControls(event.message)}`;
    case 'restarted':
      return `restart  ${name}: the sender's file differs from the ${formatBytes(event.discarded)} held; starting over`;
    case 'connection-error':
      return event.code === 'CONNECTION_LOST'
        ? `dropped  ${event.remote}: ${escapeControls(socketErrorInWords(event.message))}`
        : `error    ${event.remote}: ${event.code}: ${escapeControls(durationsInWords(event.message))}`;
    case 'warning':
      return `warning  ${escapeControls(event.message)}`;
    default:
      return undefined;
  }
}

/** Node's words for a socket that went away (`Premature close`, `read ECONNRESET`), as a person says it. */
export function socketErrorInWords(message: string): string {
  if (message === 'Premature close') return 'the sender went away';
  const errno = /^(?:read|write|connect) (E[A-Z]+)$/.exec(message)?.[1];
  if (errno === 'ECONNRESET') return 'the sender went away (the connection was reset)';
  if (errno === 'EPIPE') return 'the sender went away (it stopped reading)';
  if (errno === 'ETIMEDOUT' || errno === 'EHOSTUNREACH' || errno === 'ENETUNREACH') return 'the network to the sender stopped working';
  return message;
}

/** `ft serve --json`'s line for an event (none for a bare connection); README "`--json` output" lists the fields. */
export function receiverEventJson(event: ReceiverEvent): string | undefined {
  if (event.type === 'connection') return undefined;
  return jsonLine(event.type === 'connection-error' ? 'error' : event.type, event);
}
