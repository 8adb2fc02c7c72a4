/**
 * A receiver written by hand on net.createServer and the wire codec, to see exactly what a
 * sender puts on the wire (inside TLS) and to misbehave in ways `serve` never would (stop
 * reading, …). Listens on 127.0.0.1 only; speaks TLS with an identity of its own unless told
 * to run in plaintext.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { verifyOwnerProof } from '../../src/auth/owner-key.js';
import { generateIdentity, type Identity } from '../../src/auth/identity.js';
import { PLAINTEXT, TLS_PROFILE, tlsSecurity, type ChannelSecurity } from '../../src/transport/channel.js';
import { encodeFrame, FrameDecoder, type JsonObject } from '../../src/wire/frame.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';

let sharedIdentity: Promise<Identity> | undefined;
/** One identity for every fake in a test file (making one costs a few milliseconds, not more). */
export function fakeIdentity(): Promise<Identity> {
  return (sharedIdentity ??= generateIdentity());
}

export interface FakeReceiverOptions {
  /** No TLS (a sender must be in plaintext too). @default false */
  plaintext?: boolean;
  /** @default fakeIdentity() */
  identity?: Identity;
}

export interface FakeSession {
  readonly socket: net.Socket;
  readonly security: ChannelSecurity;
  /** Every byte the sender has sent so far, exactly as it arrived. */
  received(): Buffer;
  /** Raw body bytes seen so far (after body frames). */
  readonly bodyBytes: number;
  /** The next frame from the sender; rejects on close or after timeoutMs. */
  next(timeoutMs?: number): Promise<JsonObject>;
  send(message: JsonObject): void;
  /** Stops reading from the socket for good (the kernel buffers fill, the sender blocks). */
  stopReading(): void;
  /** Resolves once `bodyBytes` reaches `total`; rejects on close or after timeoutMs. */
  waitForBodyBytes(total: number, timeoutMs?: number): Promise<void>;
}

export interface FakeReceiver {
  readonly port: number;
  /** The key's fingerprint senders see (undefined in plaintext): pass it as send()'s `fingerprint`. */
  readonly fingerprint: string | undefined;
  readonly sessions: FakeSession[];
  close(): Promise<void>;
}

const open = new Set<FakeReceiver>();

export async function closeAllFakeReceivers(): Promise<void> {
  await Promise.all([...open].map((fake) => fake.close()));
}

/** Starts a fake receiver; `onSession` runs for every connection (errors in it close that connection). */
export async function startFakeReceiver(
  onSession: (session: FakeSession) => Promise<void> | void,
  options: FakeReceiverOptions = {},
): Promise<FakeReceiver> {
  const sockets = new Set<net.Socket>();
  const sessions: FakeSession[] = [];
  const identity = options.plaintext ? undefined : (options.identity ?? (await fakeIdentity()));
  const secureContext = identity && tls.createSecureContext({ key: identity.key, cert: identity.cert, ...TLS_PROFILE });
  const server = net.createServer((tcp) => {
    const socket = secureContext ? new tls.TLSSocket(tcp, { isServer: true, secureContext, ALPNProtocols: TLS_PROFILE.ALPNProtocols }) : tcp;
    const security = socket instanceof tls.TLSSocket ? tlsSecurity(socket) : PLAINTEXT;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const decoder = new FrameDecoder();
    const chunks: Buffer[] = [];
    const queue: JsonObject[] = [];
    let bodyBytes = 0;
    let ended = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const onData = (chunk: Buffer) => {
      chunks.push(Buffer.from(chunk));
      for (const item of decoder.push(chunk)) {
        if (item.kind === 'frame') queue.push(item.message);
        else if (item.kind === 'body-chunk') bodyBytes += item.data.length;
        else if (item.kind === 'error') failure = item.error;
      }
      wake?.();
    };
    socket.on('data', onData);
    socket.once('close', () => {
      ended = true;
      wake?.();
    });
    const session: FakeSession = {
      socket,
      security,
      received: () => Buffer.concat(chunks),
      get bodyBytes() {
        return bodyBytes;
      },
      async next(timeoutMs = 5000) {
        const deadline = Date.now() + timeoutMs;
        while (queue.length === 0) {
          if (failure) throw failure;
          if (ended) throw new Error('the sender closed the connection');
          const left = deadline - Date.now();
          if (left <= 0) throw new Error(`no frame from the sender within ${timeoutMs} ms`);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, left);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
        return queue.shift()!;
      },
      send(message) {
        if (!socket.destroyed) socket.write(encodeFrame(message));
      },
      stopReading() {
        socket.off('data', onData);
        socket.pause();
      },
      async waitForBodyBytes(total, timeoutMs = 10_000) {
        const deadline = Date.now() + timeoutMs;
        while (bodyBytes < total) {
          if (failure) throw failure;
          if (ended) throw new Error('the sender closed the connection');
          if (Date.now() > deadline) throw new Error(`only ${bodyBytes} of ${total} body bytes within ${timeoutMs} ms`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      },
    };
    sessions.push(session);
    Promise.resolve()
      .then(() => onSession(session))
      .catch(() => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1' }, resolve);
  });
  const fake: FakeReceiver = {
    port: (server.address() as net.AddressInfo).port,
    fingerprint: identity?.fingerprint,
    sessions,
    async close() {
      open.delete(fake);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  open.add(fake);
  return fake;
}

/** What a receipt of the protocol-3 fake stands for. */
export interface FakeClaims {
  owner: string;
  filename: string;
  size: number;
  hash: string;
}

export interface Protocol3Options extends FakeReceiverOptions {
  name?: string;
  /** More headers than this on one connection is an `error` (as the real receiver does). */
  maxFilesPerConnection?: number;
  /** Tell `done.path` and `skip.path` (a real receiver does only to token holders). @default false */
  withPaths?: boolean;
  /** Issue a receipt with each `done`. @default true */
  receipts?: boolean;
  /** Answers `failed` instead of `done` when this returns a code (e.g. HASH_MISMATCH). */
  failBody?: (header: JsonObject, session: number) => string | undefined;
  /** Stops answering (but keeps reading) after this many `done` in all. */
  stallAfterDone?: number;
  /** What its hello lists (it answers folder headers `done` when this has `metadata`). @default ['trailing-hash'] */
  features?: string[];
}

export interface Protocol3Receiver extends FakeReceiver {
  /** Per connection: the sender's hello, and every header in order. */
  readonly hellos: JsonObject[];
  readonly headers: JsonObject[][];
  /** Body bytes per connection. */
  bodyBytes(): number;
  readonly claims: Map<string, FakeClaims>;
}

/**
 * A protocol-3 receiver written by hand: it checks the owner proof, accepts every file at
 * offset 0 (no partials), believes the hash it is told (it does not hash), issues a receipt
 * with each `done`, and answers `skip` to a header whose receipt it issued to that owner for
 * that name, size and hash. Enough to see what the sender puts on the wire, and to drive it.
 */
export async function startProtocol3Receiver(options: Protocol3Options = {}): Promise<Protocol3Receiver> {
  const hellos: JsonObject[] = [];
  const headers: JsonObject[][] = [];
  const claims = new Map<string, FakeClaims>();
  let dones = 0;
  const fake = await startFakeReceiver(async (session) => {
    const index = headers.length;
    const mine: JsonObject[] = [];
    headers.push(mine);
    const nonce = randomBytes(16).toString('hex');
    session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce, name: options.name ?? 'fake', features: options.features ?? ['trailing-hash'] });
    const hello = await session.next();
    hellos[index] = hello;
    const owner = verifyOwnerProof(String(hello.owner), nonce, String(hello.ownerProof), session.security.binding());
    if (hello.type !== 'hello' || hello.version !== PROTOCOL_VERSION || owner === undefined) {
      session.send({ type: 'error', code: 'AUTH_FAILED', message: 'owner proof' });
      session.socket.end();
      return;
    }
    session.send({ type: 'welcome' });
    const accepted = new Map<number, JsonObject>();
    let bodyTotal = 0;
    for (;;) {
      const frame = await session.next(30_000);
      if (frame.type === 'bye') {
        session.socket.end();
        return;
      }
      if (options.stallAfterDone !== undefined && dones >= options.stallAfterDone) continue;
      if (frame.type === 'file') {
        mine.push(frame);
        if (frame.folder === true) {
          session.send({ type: 'done', id: frame.id });
          continue;
        }
        if (options.maxFilesPerConnection !== undefined && mine.length > options.maxFilesPerConnection) {
          session.send({ type: 'error', code: 'UNEXPECTED_MESSAGE', message: 'too many files on one connection' });
          session.socket.end();
          return;
        }
        const held = typeof frame.receipt === 'string' ? claims.get(frame.receipt) : undefined;
        const holds =
          held && held.owner === owner && held.filename === frame.filename && held.size === frame.size && (frame.hash === undefined || frame.hash === held.hash);
        if (holds) {
          session.send({ type: 'skip', id: frame.id, reason: 'already-there', ...(options.withPaths ? { path: frame.filename } : {}) });
        } else {
          accepted.set(frame.id as number, frame);
          session.send({ type: 'accept', id: frame.id, offset: 0 });
        }
      } else if (frame.type === 'body') {
        const header = accepted.get(frame.id as number)!;
        accepted.delete(frame.id as number);
        bodyTotal += frame.length as number;
        await session.waitForBodyBytes(bodyTotal);
        const hash = header.hash ?? (await session.next()).hash;
        const failed = options.failBody?.(header, index);
        if (failed) {
          session.send({ type: 'failed', id: frame.id, code: failed, message: 'the fake says so' });
          continue;
        }
        dones += 1;
        const done: JsonObject = { type: 'done', id: frame.id, hash: hash as string };
        if (options.withPaths) done.path = header.filename as string;
        if (options.receipts ?? true) {
          const receipt = randomBytes(24).toString('base64url');
          claims.set(receipt, { owner, filename: header.filename as string, size: header.size as number, hash: hash as string });
          done.receipt = receipt;
        }
        session.send(done);
      }
    }
  }, options);
  return Object.assign(fake, { hellos, headers, claims, bodyBytes: () => fake.sessions.reduce((sum, s) => sum + s.bodyBytes, 0) });
}
