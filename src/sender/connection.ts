import type { Duplex } from 'node:stream';
import { once } from 'node:events';
import { FtError, toFtError } from '../errors.js';
import { encodeFrame, FrameDecoder } from '../wire/frame.js';
import {
  parseReceiverMessage,
  PROTOCOL,
  PROTOCOL_VERSION,
  OUR_FEATURES,
  sharedFeatures,
  type Feature,
  type Accept,
  type Body,
  type FileHeader,
  type FolderHeader,
  type Done,
  type Failed,
  type ReceiverHello,
  type Refuse,
  type SenderHello,
  type SenderMessage,
  type Skip,
  type Welcome,
} from '../wire/messages.js';
import { makeNonce, senderProof, verifyReceiverProof, type ProofTranscript } from '../auth/token-proof.js';
import type { OwnerKey } from '../auth/owner-key.js';
import type { Connector } from '../transport/connector.js';
import { PLAINTEXT, type Channel, type ChannelSecurity } from '../transport/channel.js';
import { tcpConnector } from '../transport/tcp-connector.js';
import { tlsConnector } from '../transport/tls-connector.js';
import type { ReceiverTrust } from './receiver-trust.js';

export type Decision = Accept | Skip | Refuse;
/** A body's verdict: its `done` always has the hash. */
export type Outcome = (Done & { hash: string }) | Failed;
/** The answer to a folder header (`metadata`): `done` without hash, or `refuse`. */
export type FolderDecision = Done | Refuse;

/** Body bytes handed to the stream per write: the idle timer learns of progress this often. */
const ACTIVITY_SLICE_BYTES = 64 * 1024;

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: FtError) => void;
}

export interface ConnectOptions {
  host: string;
  port: number;
  token: string | undefined;
  ownerKey: OwnerKey;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal | undefined;
  /** How the byte stream is opened. @default TLS (plain TCP with insecurePlaintext) */
  connect?: Connector;
  /** Accept a channel without TLS (the receiver must have chosen it too). */
  insecurePlaintext: boolean;
  /** Decides whether the receiver's key is the one meant; absent only in plaintext. */
  trust: ReceiverTrust | undefined;
}

/**
 * The sender's side of one connection, over any duplex byte stream a connector opened: the
 * greeting, then frames out and replies routed back to whoever waits for that file id. Any
 * failure fails every waiter with one FtError.
 */
export class SenderConnection {
  private readonly decoder = new FrameDecoder();
  private readonly decisions = new Map<number, Waiter<Decision>>();
  private readonly outcomes = new Map<number, Waiter<Outcome>>();
  private readonly folders = new Map<number, Waiter<FolderDecision>>();
  private failure: FtError | undefined;
  private rejectFailed: (error: FtError) => void = () => undefined;
  /** Rejects when the connection fails, for racing against waits on the stream. */
  private readonly failed = new Promise<never>((_, reject) => (this.rejectFailed = reject));
  private helloWaiter: Waiter<ReceiverHello> | undefined;
  private welcomeWaiter: Waiter<Welcome> | undefined;
  /** The stream's own timers are not ours to set (it need not be a socket): one idle timer of our own. */
  private idleTimer: NodeJS.Timeout | undefined;
  private idleMs = 0;
  private lastActivity = 0;
  private readonly onIdle: () => void;
  receiverName: string | undefined;
  /** The receiver's key (undefined in plaintext), and whether this send met it for the first time. */
  fingerprint: string | undefined;
  firstContact = false;
  /** What this connection may use: the features both hellos listed. */
  features = new Set<Feature>();

  private received = false;

  private constructor(
    private readonly socket: Duplex,
    private readonly plaintext: boolean,
    timeoutMessage: (idleMs: number) => string,
  ) {
    this.failed.catch(() => undefined);
    this.onIdle = () => {
      this.idleTimer = undefined;
      if (this.failure) return;
      const quiet = performance.now() - this.lastActivity;
      if (quiet < this.idleMs) return this.armIdle(this.idleMs - quiet);
      this.socket.destroy(new FtError('TIMEOUT', timeoutMessage(this.idleMs)));
    };
  }

  static async open(options: ConnectOptions): Promise<SenderConnection> {
    for (;;) {
      const opened = await SenderConnection.attempt(options);
      if (opened !== 'asked') return opened;
      // First contact on a terminal: the user was asked with the connection closed (the
      // receiver would not wait), said yes, and the key is now this send's to expect.
    }
  }

  private static async attempt(options: ConnectOptions): Promise<SenderConnection | 'asked'> {
    const { host, port, signal } = options;
    signal?.throwIfAborted();
    const connect = options.connect ?? (options.insecurePlaintext ? tcpConnector : tlsConnector);
    let opened: Duplex | Channel;
    try {
      opened = await connect({ host, port }, { signal, timeoutMs: options.connectTimeoutMs });
    } catch (error) {
      if (signal?.aborted) throw new FtError('ABORTED', 'send was cancelled');
      if (error instanceof FtError) throw error;
      throw new FtError('CONNECT_FAILED', `${host}:${port}: ${(error as Error)?.message ?? String(error)}`, {}, { cause: error });
    }
    const { stream, security } = 'security' in opened ? opened : { stream: opened, security: PLAINTEXT };
    if (stream.destroyed) throw new FtError('CONNECT_FAILED', `${host}:${port}: the connection closed as it opened`);
    const verdict = await SenderConnection.vet(stream, security, options);
    if (verdict === 'ask') {
      stream.destroy();
      await options.trust!.ask(security.peerFingerprint!);
      await options.trust!.confirmed(security.peerFingerprint!);
      return 'asked';
    }
    const connection: SenderConnection = new SenderConnection(stream, security.kind === 'plaintext', (ms: number): string =>
      connection.helloWaiter || connection.welcomeWaiter ? `${host}:${port} did not answer within ${ms} ms` : `${host}:${port} was silent for ${ms} ms`,
    );
    if (signal?.aborted) {
      stream.destroy();
      throw new FtError('ABORTED', 'send was cancelled');
    }
    const onAbort = () => stream.destroy(new FtError('ABORTED', 'send was cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.once('close', () => {
      signal?.removeEventListener('abort', onAbort);
      connection.stopIdle();
    });
    const hello = new Promise<ReceiverHello>((resolve, reject) => (connection.helloWaiter = { resolve, reject }));
    connection.listen(host, port);
    connection.startIdle(options.connectTimeoutMs);
    const greeting = await hello;
    if (greeting.version !== PROTOCOL_VERSION) {
      connection.close();
      throw new FtError('UNSUPPORTED_VERSION', `receiver speaks protocol version ${greeting.version}, this ft speaks ${PROTOCOL_VERSION}`);
    }
    if (greeting.auth === 'hmac-sha256' && options.token === undefined) {
      connection.close();
      throw new FtError('AUTH_FAILED', `${host}:${port} requires a token: set FT_TOKEN or use --token-file`);
    }
    if (greeting.auth !== 'hmac-sha256' && options.token !== undefined) {
      // We expected a receiver that checks a token; one that does not may be an impostor that
      // took its name or address. Nothing of ours has been sent yet: stop before our hello.
      connection.close();
      throw new FtError(
        'RECEIVER_NOT_AUTHENTIC',
        `${host}:${port}: this receiver does not ask for a token; it may be an impostor, and nothing was sent (send without a token only if it is meant to be open)`,
      );
    }
    connection.receiverName = greeting.name;
    const transcript: ProofTranscript = { binding: security.binding(), receiverNonce: greeting.nonce, senderNonce: makeNonce() };
    const reply: SenderHello = {
      type: 'hello',
      protocol: PROTOCOL,
      version: PROTOCOL_VERSION,
      client: 'ft',
      nonce: transcript.senderNonce,
      owner: options.ownerKey.publicHex,
      ownerProof: options.ownerKey.prove(greeting.nonce, transcript.binding),
      features: [...OUR_FEATURES],
    };
    connection.features = sharedFeatures(OUR_FEATURES, greeting.features);
    if (greeting.auth === 'hmac-sha256') reply.proof = senderProof(options.token!, transcript);
    const welcomed = new Promise<Welcome>((resolve, reject) => (connection.welcomeWaiter = { resolve, reject }));
    connection.write(reply);
    const welcome = await welcomed;
    // Mutual: a receiver that cannot prove the token (one that accepts any proof, say) is not the one meant.
    if (options.token !== undefined && !verifyReceiverProof(options.token, transcript, welcome.proof)) {
      connection.close();
      throw new FtError('RECEIVER_NOT_AUTHENTIC', `${host}:${port} did not prove that it knows the token: it may be an impostor, and nothing was sent`);
    }
    if (security.peerFingerprint !== undefined) {
      connection.fingerprint = security.peerFingerprint;
      connection.firstContact = options.trust?.firstContact ?? false;
      try {
        await options.trust?.confirmed(security.peerFingerprint);
      } catch (error) {
        // The pin could not be written (a trust file gone bad): nothing is sent, and the connection goes now.
        connection.close();
        throw error;
      }
    }
    connection.startIdle(options.idleTimeoutMs);
    return connection;
  }

  /** The channel's verdict before anything of ours is written: TLS unless plaintext was chosen, and the key trusted. */
  private static async vet(stream: Duplex, security: ChannelSecurity, options: ConnectOptions): Promise<'go' | 'ask'> {
    const where = `${options.host}:${options.port}`;
    try {
      if (security.kind === 'plaintext') {
        if (!options.insecurePlaintext) throw new FtError('TLS_FAILED', `${where}: the channel is not encrypted, and --insecure-plaintext was not given`);
        return 'go';
      }
      if (options.trust === undefined || security.peerFingerprint === undefined) throw new FtError('TLS_FAILED', `${where}: the receiver's key is unknown`);
      // 'after-token-proof': go on; the welcome's proof settles it before any file is announced.
      return (await options.trust.check(security.peerFingerprint, options)) === 'ask' ? 'ask' : 'go';
    } catch (error) {
      stream.destroy();
      throw error;
    }
  }

  /** A timeout of no bytes in either direction (what net.Socket#setTimeout measured). */
  private startIdle(ms: number): void {
    this.idleMs = ms;
    this.touch();
    this.stopIdle();
    this.armIdle(ms);
  }

  private armIdle(ms: number): void {
    if (this.failure) return;
    this.idleTimer = setTimeout(this.onIdle, ms);
  }

  private stopIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private touch(): void {
    this.lastActivity = performance.now();
  }

  private listen(host: string, port: number): void {
    const { socket } = this;
    socket.on('data', (chunk: Buffer) => {
      this.touch();
      this.received = true;
      try {
        for (const item of this.decoder.push(chunk)) {
          if (item.kind === 'error') throw item.error;
          if (item.kind !== 'frame') throw new FtError('BAD_FRAME', 'the receiver sent raw bytes');
          this.route(parseReceiverMessage(item.message));
        }
      } catch (error) {
        socket.destroy(toFtError(error, 'BAD_FRAME'));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error instanceof FtError) return this.failAll(error);
      const connecting = this.helloWaiter !== undefined || this.welcomeWaiter !== undefined;
      const code = connecting ? 'CONNECT_FAILED' : 'CONNECTION_LOST';
      const what = error.code === 'ECONNREFUSED' ? 'connection refused (is `ft serve` running there?)' : error.message;
      this.failAll(new FtError(code, `${host}:${port}: ${what}`, {}, { cause: error }));
    });
    socket.on('close', () => {
      if (this.plaintext && !this.received) {
        // A TLS receiver waits for a ClientHello that a plaintext sender never sends, then gives up.
        const why = 'closed the connection without a word: it probably runs with TLS (the default); send without --insecure-plaintext';
        return this.failAll(new FtError('TLS_FAILED', `${host}:${port} ${why}`));
      }
      this.failAll(new FtError(this.helloWaiter || this.welcomeWaiter ? 'CONNECT_FAILED' : 'CONNECTION_LOST', `${host}:${port} closed the connection`));
    });
  }

  private route(message: ReturnType<typeof parseReceiverMessage>): void {
    switch (message.type) {
      case 'hello': {
        const waiter = this.helloWaiter;
        if (!waiter) throw new FtError('UNEXPECTED_MESSAGE', 'second "hello" from the receiver');
        this.helloWaiter = undefined;
        return waiter.resolve(message);
      }
      case 'welcome': {
        const waiter = this.welcomeWaiter;
        if (!waiter || this.helloWaiter) throw new FtError('UNEXPECTED_MESSAGE', '"welcome" before our hello, or a second one');
        this.welcomeWaiter = undefined;
        return waiter.resolve(message);
      }
      case 'error':
        // The receiver explains why it closes; keep its code (AUTH_FAILED, BAD_MESSAGE, …).
        return this.failAll(new FtError(message.code, `receiver: ${message.message}`));
      case 'refuse':
        if (this.folders.has(message.id)) return this.deliver(this.folders, message.id, message);
        return this.deliver(this.decisions, message.id, message);
      case 'accept':
      case 'skip':
        return this.deliver(this.decisions, message.id, message);
      case 'done':
        if (this.folders.has(message.id)) return this.deliver(this.folders, message.id, message);
        if (message.hash === undefined) throw new FtError('BAD_MESSAGE', `"done" for file id ${message.id} has no hash`);
        return this.deliver(this.outcomes, message.id, message as Outcome);
      case 'failed':
        return this.deliver(this.outcomes, message.id, message);
    }
  }

  private deliver<T extends Decision | Outcome | FolderDecision>(waiters: Map<number, Waiter<T>>, id: number, message: T): void {
    const waiter = waiters.get(id);
    if (!waiter) throw new FtError('UNEXPECTED_MESSAGE', `"${message.type}" for file id ${id}, which expects none`);
    waiters.delete(id);
    waiter.resolve(message);
  }

  /** Registers interest before the frame goes out, so an early reply is never missed. */
  private expect<T>(waiters: Map<number, Waiter<T>>, id: number): Promise<T> {
    const promise = this.failure ? Promise.reject(this.failure) : new Promise<T>((resolve, reject) => waiters.set(id, { resolve, reject }));
    // A connection failure rejects every waiter at once; the caller may not be awaiting this one yet.
    promise.catch(() => undefined);
    return promise;
  }

  /** Sends a file header; resolves with the receiver's accept, skip or refuse. */
  sendHeader(header: FileHeader): Promise<Decision> {
    const decision = this.expect(this.decisions, header.id);
    this.write(header);
    return decision;
  }

  /** Announces an empty folder (`metadata`); resolves with the receiver's done or refuse. */
  sendFolder(header: FolderHeader): Promise<FolderDecision> {
    const decision = this.expect(this.folders, header.id);
    this.write(header);
    return decision;
  }

  /** Takes back an accepted file whose body will not come (the receiver answers nothing). */
  cancel(id: number): void {
    this.write({ type: 'cancel', id });
  }

  /** Sends the body frame; the caller streams the bytes; resolves with done or failed. */
  startBody(body: Body): Promise<Outcome> {
    const outcome = this.expect(this.outcomes, body.id);
    this.write(body);
    return outcome;
  }

  private failAll(error: FtError): void {
    if (this.failure) return;
    this.failure = error;
    this.rejectFailed(error);
    this.helloWaiter?.reject(error);
    this.helloWaiter = undefined;
    this.welcomeWaiter?.reject(error);
    this.welcomeWaiter = undefined;
    for (const waiters of [this.decisions, this.outcomes, this.folders] as Map<number, Waiter<unknown>>[]) {
      for (const waiter of waiters.values()) waiter.reject(error);
      waiters.clear();
    }
    this.stopIdle();
    this.socket.destroy();
  }

  /** Throws the connection's failure, if any. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /** Bytes handed on by the stream count as activity, as they did for the socket's timeout. */
  private readonly written = (error?: Error | null) => {
    if (!error) this.touch();
  };

  /** Writes a frame; false means the socket buffer is full (await `drain`). */
  write(message: SenderMessage): boolean {
    this.check();
    // Frames written in one tick (a run of pipelined headers) leave in one segment.
    if (!this.socket.writableCorked) {
      this.socket.cork();
      process.nextTick(() => this.socket.uncork());
    }
    return this.socket.write(encodeFrame(message as unknown as Record<string, unknown>), this.written);
  }

  /** Writes raw body bytes, waiting while the receiver is slower than we are. */
  async writeRaw(data: Buffer): Promise<void> {
    this.check();
    // In slices, each counted as activity as it leaves: a receiver reading slowly (one under a
    // bandwidth limit) is not taken for a silent one while a 1 MiB block drains.
    let room = true;
    for (let at = 0; at < data.length; at += ACTIVITY_SLICE_BYTES) room = this.socket.write(data.subarray(at, at + ACTIVITY_SLICE_BYTES), this.written);
    if (!room) await this.drain();
  }

  async drain(): Promise<void> {
    if (!this.socket.writableNeedDrain) return;
    await Promise.race([once(this.socket, 'drain'), this.failed]);
    this.check();
  }

  /** Says goodbye and waits for the receiver to close its side. */
  async finish(): Promise<void> {
    this.write({ type: 'bye' });
    this.socket.end();
    if (!this.socket.closed) await once(this.socket, 'close').catch(() => undefined);
  }

  /** Drops the connection at once (abort, local read error). */
  close(error?: FtError): void {
    if (error) this.failAll(error);
    this.socket.destroy();
  }
}
