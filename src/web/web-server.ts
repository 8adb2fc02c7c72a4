/**
 * The receiver's HTTP side: the upload page, its small API, and the tus endpoint, on
 * connections the receiver hands over (TLS with ALPN http/1.1 on the receiver's own port, or a
 * plain TCP port in plaintext). Every connection holds a slot in the web admission pool; a
 * request only gets to the endpoint once access allows it.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import type { Assets } from './assets.js';
import { SESSION_COOKIE, type Credential, type WebAccess } from './access.js';
import { hostPort } from '../host-port.js';

/** What the tus endpoint offers the server (src/web/tus.ts). */
export interface TusHandler {
  /** `rest`: the path after the mount ('' or '/<id>'). */
  handle(req: IncomingMessage, res: ServerResponse, rest: string, peer: WebPeer): void;
  close(): Promise<void>;
}

export interface WebPeer {
  address: string;
  /** How events name the peer: address and port. */
  remote: string;
  /** The connection moved an upload forward (it keeps its slot). */
  progressed(): void;
}

/** The receiver's connection slots, as the web side uses them (receiver/admission.ts). */
export interface WebSlots {
  /** A slot for a new connection, or why there is none. */
  enter(address: string, evict: () => void): WebTicket | string;
  /** The connection's first authorised request: it takes a main slot, or is told why not. */
  promote(ticket: WebTicket): string | undefined;
  progressed(ticket: WebTicket): void;
  leave(ticket: WebTicket): void;
  /** Delay before answering a wrong credential (grows with each). */
  authFailed(address: string): number;
  authSucceeded(address: string): void;
}
export type WebTicket = object;

/** What the page shows about the receiver (GET /api/info). */
export interface PageInfo {
  name: string;
  /** Short form, as `ft serve` prints it; null in plaintext. */
  fingerprint: string | null;
  /**
   * SHA-256 of the certificate as browsers show it (`AB:CD:…`). The page shows it for comparing
   * with the browser's certificate details (a page can claim anything; the certificate cannot).
   */
  certificateSha256: string | null;
  access: 'open' | 'token';
  /** Shown on the page when set (an open receiver on the network). */
  warning: string | null;
  tusPath: string;
  allowUnverified: boolean;
  maxFileSize: number | null;
}

export interface WebServerOptions {
  tus: TusHandler;
  access: WebAccess;
  slots: WebSlots;
  assets: Assets;
  info: PageInfo;
  /** Whether connections are TLS (cookies are then Secure). */
  tls: boolean;
  /** A connection silent this long is closed, in ms. */
  idleTimeoutMs: number;
  /**
   * Which Host headers are answered (all when undefined). In plaintext, a web page elsewhere
   * could point its own name at this receiver (DNS rebinding) and upload through a visitor's
   * browser as if it were the page's origin; over TLS the certificate already stops that.
   */
  hostAllowed?: (host: string) => boolean;
  /** A redeemed access code or token, for the receiver's log. */
  onAccess?: (remote: string, via: 'code' | 'token') => void;
  onWarning?: (message: string) => void;
}

export const TUS_MOUNT = '/files';
const MAX_HEADER_BYTES = 16 * 1024;
/** Time to send a request's headers, in ms (slowloris). */
const HEADERS_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_MS = 5_000;
/** Largest body of an API request (a code or token as JSON). */
const MAX_API_BODY = 2048;

/** script-src allows wasm compilation (xxhash-wasm) and nothing inline. */
const PAGE_POLICY =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

interface Client {
  ticket: WebTicket;
  address: string;
  remote: string;
  /** Holds a main slot (after its first authorised request). */
  promoted: boolean;
  /**
   * A code or token is being checked, or was wrong: nothing more is tried on this connection.
   * HTTP/1.1 lets a client pipeline thousands of guesses on one connection, each slowed down
   * at once; like a wrong proof on the TCP protocol, a wrong one closes the connection.
   */
  guessing: boolean;
}

export class WebServer {
  private readonly server: http.Server;
  private readonly sockets = new Set<Duplex>();
  private readonly clients = new WeakMap<Duplex, Client>();

  constructor(private readonly options: WebServerOptions) {
    this.server = http.createServer(
      {
        maxHeaderSize: MAX_HEADER_BYTES,
        // Bodies of any length (a PATCH of a whole file): the idle timeout bounds them instead.
        requestTimeout: 0,
        headersTimeout: HEADERS_TIMEOUT_MS,
        keepAliveTimeout: KEEP_ALIVE_MS,
        requireHostHeader: true,
      },
      (req, res) => this.route(req, res),
    );
    this.server.timeout = options.idleTimeoutMs;
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
      if (!socket.writable || error.code === 'ECONNRESET') return socket.destroy();
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    });
  }

  /** Serves HTTP on a connection handed over by the listener. */
  accept(stream: Duplex, address: string, port: number): void {
    stream.on('error', () => undefined);
    const ticket = this.options.slots.enter(address, () => stream.destroy());
    if (typeof ticket === 'string') return this.turnAway(stream, ticket);
    const remote = hostPort(address, port);
    this.clients.set(stream, { ticket, address, remote, promoted: false, guessing: false });
    this.sockets.add(stream);
    stream.once('close', () => {
      this.sockets.delete(stream);
      this.options.slots.leave(ticket);
    });
    this.server.emit('connection', stream);
  }

  /** Over a connection limit: a 503 saying why, then the connection goes. */
  turnAway(stream: Duplex, reason: string): void {
    stream.on('error', () => undefined);
    stream.end(busyResponse(reason));
    setTimeout(() => stream.destroy(), 1000).unref();
  }

  async close(): Promise<void> {
    const closed = once(this.server, 'close').catch(() => undefined);
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
    await this.options.tus.close();
    // http.Server only emits 'close' once it was listening; connections handed over are ours to end.
    if (this.server.listening) await closed;
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    const client = this.clients.get(req.socket);
    if (!client) {
      res.writeHead(500).end();
      return;
    }
    if (client.guessing) {
      res.shouldKeepAlive = false;
      return void plain(res, 429, 'one access code or token at a time: this connection is closing');
    }
    const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1').toLowerCase();
    if (this.options.hostAllowed && !this.options.hostAllowed(host)) {
      return void plain(res, 421, 'this receiver answers to its addresses and its host name only');
    }
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://receiver').pathname;
    } catch {
      return void plain(res, 400, 'bad request target');
    }
    try {
      if (path === TUS_MOUNT || path.startsWith(`${TUS_MOUNT}/`)) return void this.tus(req, res, path.slice(TUS_MOUNT.length), client);
      if (path === '/api/info') return void this.info(req, res);
      if (path === '/api/session') return void this.session(req, res, client).catch((error) => this.failed(res, error));
      this.asset(req, res, path);
    } catch (error) {
      this.failed(res, error);
    }
  }

  private failed(res: ServerResponse, error: unknown): void {
    this.options.onWarning?.(`web: ${(error as Error).message}`);
    if (!res.headersSent) plain(res, 500, 'internal error');
    else res.destroy();
  }

  private tus(req: IncomingMessage, res: ServerResponse, rest: string, client: Client): void {
    const { access, slots, tus } = this.options;
    res.setHeader('cache-control', 'no-store');
    // OPTIONS tells what the endpoint supports, nothing about uploads: no credential needed.
    const allowed = req.method === 'OPTIONS' ? 'yes' : access.check(req.headers);
    if (allowed !== 'yes') {
      if (allowed === 'wrong') client.guessing = true;
      const deny = () => {
        if (allowed === 'wrong') res.shouldKeepAlive = false;
        res.setHeader('tus-resumable', '1.0.0');
        res.setHeader('www-authenticate', 'Bearer realm="ft"');
        plain(res, 401, 'this receiver needs its access code or token (see the page, or send Authorization: Bearer <token>)');
      };
      if (allowed === 'wrong') setTimeout(deny, slots.authFailed(client.address)).unref();
      else deny();
      return;
    }
    if (!client.promoted && req.method !== 'OPTIONS') {
      const refusal = slots.promote(client.ticket);
      if (refusal) {
        res.setHeader('retry-after', '2');
        res.setHeader('tus-resumable', '1.0.0');
        res.shouldKeepAlive = false;
        return void plain(res, 503, refusal);
      }
      client.promoted = true;
    }
    // Only an upload moving forward counts as progress (Ingest calls it): a connection that only
    // asks about made-up ids would otherwise never be the idlest, and could hold its slot for ever.
    tus.handle(req, res, rest, { address: client.address, remote: client.remote, progressed: () => slots.progressed(client.ticket) });
  }

  private info(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return void methodNotAllowed(res, 'GET, HEAD');
    res.setHeader('cache-control', 'no-store');
    json(res, 200, this.options.info, req.method === 'HEAD');
  }

  private async session(req: IncomingMessage, res: ServerResponse, client: Client): Promise<void> {
    res.setHeader('cache-control', 'no-store');
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
    const { access, slots } = this.options;
    // Set before the body is read: a request pipelined behind this one is routed meanwhile.
    client.guessing = !access.open;
    const body = await readSmallBody(req, MAX_API_BODY);
    const credential = body === undefined ? undefined : parseCredential(body);
    if (body === undefined || (!credential && !access.open)) client.guessing = false;
    if (body === undefined) return json(res, 413, { code: 'BAD_MESSAGE', message: 'the request body is too large' });
    if (access.open) return void res.writeHead(204).end();
    if (!credential) return json(res, 400, { code: 'BAD_MESSAGE', message: 'expected {"code": "…"} or {"token": "…"}' });
    const granted = access.redeem(credential);
    if (!granted) {
      await new Promise((resolve) => setTimeout(resolve, slots.authFailed(client.address)).unref());
      res.shouldKeepAlive = false;
      return json(res, 403, { code: 'AUTH_FAILED', message: 'that access code or token is wrong, used or expired' });
    }
    slots.authSucceeded(client.address);
    client.guessing = false;
    this.options.onAccess?.(client.remote, granted.via);
    const secure = this.options.tls ? '; Secure' : '';
    res.setHeader('set-cookie', `${SESSION_COOKIE}=${granted.session}; Path=/; Max-Age=${access.sessionSeconds}; HttpOnly; SameSite=Strict${secure}`);
    res.writeHead(204).end();
  }

  private asset(req: IncomingMessage, res: ServerResponse, path: string): void {
    const asset = this.options.assets.get(path === '/index.html' ? '/' : path);
    if (!asset) return void plain(res, 404, 'not found');
    if (req.method !== 'GET' && req.method !== 'HEAD') return void methodNotAllowed(res, 'GET, HEAD');
    res.setHeader('content-type', asset.type);
    res.setHeader('etag', asset.etag);
    // Revalidated every time: a new version of ft serves a new page at once.
    res.setHeader('cache-control', 'no-cache');
    if (asset.type.startsWith('text/html')) res.setHeader('content-security-policy', PAGE_POLICY);
    if (req.headers['if-none-match'] === asset.etag) return void res.writeHead(304).end();
    res.setHeader('content-length', asset.body.length);
    res.writeHead(200);
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  }
}

function plain(res: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown, headOnly = false): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(headOnly ? undefined : body);
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.setHeader('allow', allow);
  plain(res, 405, 'method not allowed');
}

function busyResponse(reason: string): string {
  const body = `${reason}\n`;
  return `HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 2\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** The body as text, or undefined when it is over `limit` bytes. */
async function readSmallBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limit) {
      req.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseCredential(body: string): Credential | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { code, token } = value as { code?: unknown; token?: unknown };
  if (typeof code === 'string' && code.length > 0) return { code };
  if (typeof token === 'string' && token.length > 0) return { token };
  return undefined;
}
