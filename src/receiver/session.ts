/**
 * One connection on the receiving side, over any duplex byte stream (TLS, or TCP in plaintext):
 * bytes in → frames (FrameDecoder) → the protocol state machine (protocol.ts) → the ingest
 * service → answers out. This module owns what is about the connection itself: the greeting
 * and its proofs, timers (hello deadline, idle timeout, minimum body rate), answers in header
 * order, backpressure, and how the connection ends.
 */
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { verifyOwnerProof } from '../auth/owner-key.js';
import { makeNonce, receiverProof, verifySenderProof, type ProofTranscript } from '../auth/token-proof.js';
import { PLAINTEXT, type ChannelSecurity } from '../transport/channel.js';
import { FtError, isWireCode, toFtError, wireCodeOf } from '../errors.js';
import type { ReceiverEvent } from '../ingest/events.js';
import { localFailure, type Decision, type Ingest, type IngestSession, type Outcome } from '../ingest/ingest.js';
import { encodeFrame, FrameDecoder } from '../wire/frame.js';
import { OUR_FEATURES, PROTOCOL, PROTOCOL_VERSION, sharedFeatures, type ReceiverMessage, type SenderHello } from '../wire/messages.js';
import type { Admission, Ticket } from './admission.js';
import type { GcHints } from './gc-hints.js';
import { initialMemory, transition, type Effect, type Input, type ProtocolState } from './protocol.js';
import { hostPort } from '../host-port.js';
import type { BandwidthLimit } from '../bandwidth-limit.js';

export interface SessionLimits {
  /** Headers a sender may have waiting for their bodies at once. */
  maxPendingFiles: number;
  /** Time allowed for the sender's hello, in ms. */
  helloTimeoutMs: number;
  /** Time a connection may stay silent (between or inside bodies), in ms. */
  idleTimeoutMs: number;
  /**
   * Slowest a body may arrive, in bytes per second, measured over windows of the time spent
   * waiting for the peer (not for our own disk): a body trickled just fast enough to beat the
   * idle timeout cannot hold its connection for ever.
   */
  minBodyRate: number;
}

export interface SessionContext {
  ingest: Ingest;
  admission: Admission;
  limits: SessionLimits;
  token: string | undefined;
  /** The receiver's name, in its hello. */
  name: string;
  emit: (event: ReceiverEvent) => void;
  /** Text no answer may contain (the inbox's location). */
  privateLocation: string;
  gc: GcHints;
  /** limitRate: what every session's bytes (after the greeting) and every tus body wait for. */
  bandwidth?: BandwidthLimit;
}

/** A connection as a transport hands it over. */
export interface Connection {
  stream: Duplex;
  /** The peer's address (IPv4-mapped IPv6 addresses as plain IPv4) and port. */
  address: string;
  port: number;
  /** What carries it. @default plaintext */
  security?: ChannelSecurity;
}

/** A TLS handshake record (content type 22, major version 3): what a TLS sender opens with. */
function looksLikeTls(chunk: Buffer): boolean {
  return chunk.length >= 2 && chunk[0] === 0x16 && chunk[1] === 0x03;
}

/** Windows over which a body's rate is judged: this much time spent waiting for the peer, at most. */
const RATE_WINDOW_MS = 10_000;

export class ReceiverSession {
  private readonly decoder = new FrameDecoder();
  private readonly nonce = makeNonce();
  private readonly remote: string;
  private readonly stream: Duplex;
  private state: ProtocolState = { name: 'hello' };
  private readonly memory = initialMemory();
  private files: IngestSession | undefined;
  /** Header decisions still being made, by file id; their answers go out in arrival order. */
  private readonly deciding = new Map<number, Promise<void>>();
  private answered: Promise<void> = Promise.resolve();
  /** Time spent waiting for the peer's bytes (not for our own work), for the body rate. */
  private peerWaitMs = 0;
  private waitingSince: number | undefined;
  /** The body arriving now, kept or dropped: its bytes so far, and where the current rate window began. */
  private arriving: { name: string; bytes: number; window: { waitMs: number; bytes: number } } | undefined;
  /** Names of accepted files, for the body rate's message (bounded by maxPendingFiles). */
  private readonly names = new Map<number, string>();
  private corked = false;
  /** Bytes read from the peer so far. */
  private peerBytes = 0;
  private idle: NodeJS.Timeout | undefined;
  /** Waiting under the bandwidth limit: our own wait, not the peer's silence. */
  private limited = false;
  /** Wakes that wait when the connection goes. */
  private readonly gone = new AbortController();

  constructor(
    private readonly connection: Connection,
    private readonly ctx: SessionContext,
    private readonly ticket: Ticket,
  ) {
    const { address, port } = connection;
    this.stream = connection.stream;
    this.remote = hostPort(address, port);
  }

  async run(): Promise<void> {
    const { stream, ctx } = this;
    ctx.emit({ type: 'connection', remote: this.remote });
    // Errors surface through the read loop; one arriving after it (a late EPIPE) must not crash the receiver.
    stream.on('error', () => undefined);
    const idle = setTimeout(() => (this.limited ? idle.refresh() : stream.destroy(new FtError('TIMEOUT', `no data for ${ctx.limits.idleTimeoutMs} ms`))), ctx.limits.idleTimeoutMs);
    // Silence both ways, as a socket's timeout counts it: answers still going out (a slow disk
    // finishing files one by one) keep the connection, as bytes coming in do.
    this.idle = idle;
    // A deadline, not an idle timer: trickling bytes cannot hold a connection in the greeting.
    const helloDeadline = setTimeout(() => {
      if (this.state.name === 'hello' || this.state.name === 'authenticating') {
        stream.destroy(new FtError('TIMEOUT', `no hello within ${ctx.limits.helloTimeoutMs} ms`));
      }
    }, ctx.limits.helloTimeoutMs);
    const rateCheck = setInterval(() => this.checkBodyRate(), this.rateWindowMs / 4);
    for (const timer of [idle, helloDeadline, rateCheck]) timer.unref();
    // On 'close', or when the session ends: a transport's stream need not emit 'close' (emitClose: false).
    const stopTimers = () => {
      clearTimeout(idle);
      clearTimeout(helloDeadline);
      clearInterval(rateCheck);
    };
    stream.once('close', stopTimers);
    stream.once('close', () => this.gone.abort());
    this.send({
      type: 'hello',
      protocol: PROTOCOL,
      version: PROTOCOL_VERSION,
      auth: ctx.token === undefined ? 'none' : 'hmac-sha256',
      nonce: this.nonce,
      name: ctx.name,
      features: [...OUR_FEATURES],
    });
    let failure: FtError | undefined;
    try {
      this.waitingSince = performance.now();
      // destroyOnReturn: false keeps the stream open after a throw, so the error frame can go out.
      for await (const chunk of stream.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        this.peerWaitMs += performance.now() - this.waitingSince;
        this.waitingSince = undefined;
        // Not reading makes TCP push back; counted by neither the body rate nor the idle timer.
        if (ctx.bandwidth && this.files) await this.underLimit(ctx.bandwidth, chunk.length);
        idle.refresh();
        ctx.gc.noteRead(chunk.length);
        if (this.peerBytes === 0 && (this.connection.security ?? PLAINTEXT).kind === 'plaintext' && looksLikeTls(chunk)) {
          throw new FtError('TLS_FAILED', 'the sender speaks TLS, and this receiver runs with --insecure-plaintext');
        }
        this.peerBytes += chunk.length;
        try {
          for (const item of this.decoder.push(chunk)) {
            if (item.kind === 'body-chunk') this.arriving!.bytes += item.data.length;
            else if (item.kind === 'frame') ctx.gc.noteMessage();
            await this.step(item);
          }
        } catch (error) {
          // Errors of our own handling, told apart from the stream's (which come from the iterator).
          throw localFailure(error);
        }
        // A peer that does not read our answers is not read either: memory stays bounded.
        if (stream.writableNeedDrain) await drainedOrClosed(stream);
        this.waitingSince = performance.now();
      }
      if (this.state.name !== 'closing') {
        const body = this.files?.activeBody;
        const kept = body?.resumable ? '; the part received is kept for resume' : '';
        throw new FtError('CONNECTION_LOST', `the sender went away${body ? ` in the middle of ${body.name}${kept}` : ' before it was done'}`);
      }
    } catch (error) {
      failure = streamFailure(error);
      // Files verified before the violation still get their `done`, ahead of the error.
      await this.answered;
      await this.files?.settled();
      this.closeWithError(failure);
    }
    // Report a failure only once the bytes already received are stored: the partial is final by then.
    await this.answered;
    await this.files?.close();
    stopTimers();
    // The slot too (idempotent; the server also gives it back on 'close').
    ctx.admission.leave(this.ticket);
    if (failure) ctx.emit({ type: 'connection-error', remote: this.remote, code: failure.code, message: failure.message });
  }

  /** Closes from the outside (receiver shutting down): partial data is kept for resume. */
  abort(): void {
    this.gone.abort();
    this.stream.destroy();
  }

  /** Waits for `bytes` of the bandwidth limit; a connection that goes meanwhile ends its read loop as it would anyway. */
  private async underLimit(bandwidth: BandwidthLimit, bytes: number): Promise<void> {
    this.limited = true;
    await bandwidth.takeInTurns(bytes, this.gone.signal).catch(() => undefined);
    this.limited = false;
  }

  /** Feeds one input to the state machine and carries out its effects, in order. */
  private async step(input: Input): Promise<void> {
    const { state, effects } = transition(this.state, input, this.memory, this.ctx.limits);
    this.state = state;
    for (const effect of effects) await this.perform(effect);
  }

  private async perform(effect: Effect): Promise<void> {
    const files = this.files!;
    switch (effect.kind) {
      case 'hello':
        return this.greet(effect.hello);
      case 'header': {
        const { header } = effect;
        this.names.set(header.id, header.filename);
        const decision = 'folder' in header ? files.decideFolder(header) : files.decide(header);
        const answered = this.answered.then(async () => {
          const { decision: told, announce } = await decision;
          this.deciding.delete(header.id);
          this.answer(header.id, told);
          announce();
          if (told.kind !== 'accept') {
            this.names.delete(header.id);
            await this.step({ kind: 'settled', id: header.id });
          }
        });
        this.answered = answered.catch(() => undefined);
        this.deciding.set(header.id, answered);
        return;
      }
      case 'body': {
        const { id, offset, length } = effect.body;
        await this.deciding.get(id);
        const name = this.names.get(id) ?? String(id);
        this.names.delete(id);
        // Judged from its first byte on, whether it is kept or read and dropped.
        this.arriving = { name, bytes: 0, window: { waitMs: this.peerWaitNow(), bytes: 0 } };
        // A stream's first frame: its length is not the file's, which only its end tells.
        return this.unlessFailed(id, await files.startBody(id, offset, effect.stream ? undefined : length));
      }
      case 'chunk': {
        const failed = await files.write(effect.data);
        return failed && this.state.name === 'receiving' ? this.unlessFailed(this.state.id, failed) : undefined;
      }
      case 'body-end': {
        // Between a stream's frames its body is still arriving: the rate and idle checks go on.
        if (effect.stream) return;
        this.arriving = undefined;
        if (effect.dropped) return;
        const failed = await files.endBody();
        if (failed) return this.unlessFailed(effect.id, failed);
        if (effect.hash !== undefined) await this.complete(effect.id, effect.hash);
        return;
      }
      case 'hash': {
        // No body: it could not be written, and the sender was told.
        if (effect.size === undefined) return effect.dropped ? undefined : this.complete(effect.id, effect.hash);
        // The end of a stream: its size is known now.
        this.arriving = undefined;
        if (effect.dropped) return;
        const failed = await files.endBody(effect.size);
        if (failed) return this.tell(effect.id, failed);
        return this.complete(effect.id, effect.hash);
      }
      case 'cancel':
        await this.deciding.get(effect.id);
        this.names.delete(effect.id);
        return files.cancel(effect.id);
      case 'bye':
        await this.answered;
        if (files.waiting > 0) throw new FtError('UNEXPECTED_MESSAGE', `"bye" with ${files.waiting} accepted files unsent`);
        await files.settled();
        this.stream.end();
        return;
    }
  }

  /** A failed file: told at once, and the rest of its body (and its hash) read and dropped. */
  private async unlessFailed(id: number, outcome: Outcome | undefined): Promise<void> {
    if (!outcome) return;
    this.tell(id, outcome);
    await this.step({ kind: 'drop' });
  }

  private async complete(id: number, hash: string): Promise<void> {
    await this.files!.complete(id, hash, (outcome) => {
      this.tell(id, outcome);
    });
  }

  private async greet(hello: SenderHello): Promise<void> {
    const { ctx } = this;
    if (hello.version !== PROTOCOL_VERSION) {
      throw new FtError('UNSUPPORTED_VERSION', `this receiver speaks version ${PROTOCOL_VERSION}, not ${hello.version}`);
    }
    if (hello.nonce === undefined) throw new FtError('BAD_MESSAGE', '"hello" has no nonce (required since version 5)');
    // Keying material from this TLS session: the proofs below are valid on this channel only.
    const binding = (this.connection.security ?? PLAINTEXT).binding();
    const transcript: ProofTranscript = { binding, receiverNonce: this.nonce, senderNonce: hello.nonce };
    if (ctx.token !== undefined) {
      const { address } = this.connection;
      if (!verifySenderProof(ctx.token, transcript, hello.proof)) {
        // Guessing gets slower with every wrong answer from the same address.
        await new Promise((resolve) => setTimeout(resolve, ctx.admission.authFailed(address)));
        throw new FtError('AUTH_FAILED', 'the token proof is missing or wrong');
      }
      ctx.admission.authSucceeded(address);
    }
    if (hello.owner === undefined || hello.ownerProof === undefined) {
      throw new FtError('BAD_MESSAGE', '"hello" has no owner key and proof (required since version 3)');
    }
    const owner = verifyOwnerProof(hello.owner, this.nonce, hello.ownerProof, binding);
    if (owner === undefined) throw new FtError('AUTH_FAILED', 'the owner key proof does not verify');
    // Only now does the connection take one of the main slots (see Admission).
    const refusal = ctx.admission.promote(this.ticket);
    if (refusal) throw new FtError('BUSY', refusal);
    this.files = ctx.ingest.session({
      owner,
      address: this.connection.address,
      remote: this.remote,
      progressed: () => ctx.admission.progressed(this.ticket),
      protocol: 'ft',
    });
    // Only a sender that proved the token is told the receiver knows it too.
    this.send(ctx.token === undefined ? { type: 'welcome' } : { type: 'welcome', proof: receiverProof(ctx.token, transcript) });
    await this.step({ kind: 'authenticated', features: sharedFeatures(OUR_FEATURES, hello.features) });
  }

  private answer(id: number, decision: Decision): void {
    switch (decision.kind) {
      case 'accept':
        return this.send(
          decision.prefixHash !== undefined ? { type: 'accept', id, offset: decision.offset, prefixHash: decision.prefixHash } : { type: 'accept', id, offset: 0 },
        );
      case 'skip':
        return this.send({ type: 'skip', id, reason: 'already-there', ...(decision.path !== undefined ? { path: decision.path } : {}) });
      case 'folder':
        // A folder header's one answer (PROTOCOL.md §9.5): no hash, no receipt.
        return this.send({ type: 'done', id, ...(decision.path !== undefined ? { path: decision.path } : {}) });
      case 'refuse':
        return this.send({ type: 'refuse', id, code: wireCodeOf(decision.code), message: decision.message });
    }
  }

  private tell(id: number, outcome: Outcome): void {
    if (outcome.kind === 'failed') return this.send({ type: 'failed', id, code: wireCodeOf(outcome.code), message: outcome.message });
    this.send({ type: 'done', id, hash: outcome.hash, receipt: outcome.receipt, ...(outcome.path !== undefined ? { path: outcome.path } : {}) });
  }

  /**
   * Ends a connection whose body arrives slower than the minimum rate. Only time spent waiting
   * for the peer counts, so a slow disk on our side never gets an honest sender cut off.
   */
  private checkBodyRate(): void {
    const arriving = this.arriving;
    if (!arriving) return;
    const waitMs = this.peerWaitNow() - arriving.window.waitMs;
    if (waitMs < this.rateWindowMs) return;
    const rate = ((arriving.bytes - arriving.window.bytes) * 1000) / waitMs;
    const { minBodyRate } = this.ctx.limits;
    if (rate < minBodyRate) {
      this.stream.destroy(new FtError('TIMEOUT', `the body of ${arriving.name} arrived at ${Math.round(rate)} B/s, below this receiver's minimum of ${minBodyRate} B/s`));
      return;
    }
    arriving.window = { waitMs: this.peerWaitNow(), bytes: arriving.bytes };
  }

  /** Shorter idle timeouts judge over shorter windows: a trickle is caught before the idle timer could. */
  private get rateWindowMs(): number {
    return Math.min(RATE_WINDOW_MS, this.ctx.limits.idleTimeoutMs / 2);
  }

  private peerWaitNow(): number {
    return this.peerWaitMs + (this.waitingSince === undefined ? 0 : performance.now() - this.waitingSince);
  }

  private send(message: ReceiverMessage): void {
    const { stream } = this;
    // A last guard: whatever a message says, it never names where the inbox is on this machine.
    if ('message' in message) message.message = clip(message.message.replaceAll(this.ctx.privateLocation, '<inbox>'));
    // After the peer's FIN our side may be ended too: nothing more can be said.
    if (stream.destroyed || !stream.writable) return;
    this.idle?.refresh();
    // Answers written in one tick leave in one segment (many small files make many answers).
    if (!this.corked) {
      this.corked = true;
      stream.cork();
      process.nextTick(() => {
        this.corked = false;
        stream.uncork();
      });
    }
    stream.write(encodeFrame(message as unknown as Record<string, unknown>));
  }

  private closeWithError(error: FtError): void {
    const { stream } = this;
    if (!stream.destroyed && stream.writable) {
      // A local code (the peer went away, a timeout) is no news for the peer: the stream just closes.
      if (isWireCode(error.code)) this.send({ type: 'error', code: error.code, message: error.message });
      stream.end();
    }
    setTimeout(() => stream.destroy(), 1000).unref();
  }
}

/** Texts on the wire stay well inside the 4096-byte field limit, whatever name they quote. */
function clip(text: string): string {
  if (Buffer.byteLength(text) <= 1024) return text;
  const chars = [...text.slice(0, 1000)];
  while (Buffer.byteLength(chars.join('')) > 1000) chars.pop();
  return `${chars.join('')}…`;
}

function drainedOrClosed(stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/**
 * What a connection's stream failing means: the peer went away, or did not set up TLS (a
 * plaintext sender, one that refused our certificate, no ALPN "ft"); our own errors are coded already.
 */
export function streamFailure(error: unknown): FtError {
  return /^ERR_SSL_/.test((error as NodeJS.ErrnoException)?.code ?? '')
    ? new FtError('TLS_FAILED', `no TLS 1.3 connection with the sender: ${String((error as Error).message).split('\n')[0]}`)
    : toFtError(error, 'CONNECTION_LOST');
}
