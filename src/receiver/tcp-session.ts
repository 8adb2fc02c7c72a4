/**
 * One connection on the receiving side.
 *
 *  1. We greet with `hello` (protocol, version, auth method, a fresh nonce).
 *  2. The sender answers `hello` with its owner key and a signature over our nonce (and an HMAC
 *     proof when a token is set); only then does the connection take a main slot (Admission).
 *  3. For each `file` header we answer `accept` (with the offset of this owner's own partial),
 *     `skip` (only for a receipt we issued to this owner, for a file unchanged since) or
 *     `refuse`; nothing in the answer depends on other files in the inbox. Headers may run
 *     ahead of bodies (pipelining); each is answered in order.
 *  4. A `body` frame and its raw bytes follow for an accepted file; we reserve its space,
 *     count, hash and write them at no less than the minimum rate, then verify, fsync, place the
 *     file and answer `done` with a receipt (and the path, to token holders), or `failed`.
 *  5. `bye` ends the session. Protocol violations get an `error` frame and the connection closes.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FtError, isWireCode, toFtError, wireCodeOf, type ErrorCode } from '../errors.js';
import { createHasher, type Hasher } from '../hashing.js';
import { collisionKey, parseSafeName } from '../names/safe-name.js';
import { openBodySink, type BodySink } from '../storage/local/body-sink.js';
import type { OpenFile } from '../file-system.js';
import type { Inbox } from '../storage/local/inbox.js';
import type { Partial } from '../storage/local/partials.js';
import { sameIdentity } from '../storage/local/same-content.js';
import { encodeFrame, FrameDecoder, type Decoded } from '../wire/frame.js';
import {
  MAX_FILES_PER_CONNECTION,
  parseSenderMessage,
  PROTOCOL,
  PROTOCOL_VERSION,
  OUR_FEATURES,
  FEATURES,
  sharedFeatures,
  type Feature,
  type Body,
  type BodyHash,
  type FileHeader,
  type ReceiverMessage,
  type SenderHello,
} from '../wire/messages.js';
import type { Admission, Ticket } from './admission.js';
import type { DiskBudget, Reservation } from '../ingest/disk-budget.js';
import { makeNonce, verifyProof } from '../auth/token-proof.js';
import { verifyOwnerProof } from '../auth/owner-key.js';
import { receiptName, type ReceiptSealer } from '../ingest/receipts.js';
import { PROGRESS_INTERVAL_MS, type ReceiverEvent } from '../ingest/events.js';
import { NameTable } from '../ingest/name-table.js';
import { noteMessage, noteRead } from './gc-hints.js';

export interface SessionLimits {
  /** Largest file accepted, in bytes. */
  maxFileSize: number;
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
  inbox: Inbox;
  limits: SessionLimits;
  token: string | undefined;
  name: string;
  emit: (event: ReceiverEvent) => void;
  /** Free space on the inbox's disk, less what arriving bodies have reserved. */
  disk: DiskBudget;
  admission: Admission;
  receipts: ReceiptSealer;
}

/** An accepted file waiting for its body. */
interface PendingFile {
  header: FileHeader;
  components: string[];
  partial: Partial;
  offset: number;
  prefix: { hasher: Hasher; prefixHash: string } | undefined;
}

/** The body being received right now. */
interface ActiveBody {
  file: PendingFile;
  sink: BodySink;
  hasher: Hasher;
  reservation: Reservation;
  /** Where the reservation was last sized (an offset in the file). */
  reservedAt: number;
  startedAt: number;
  received: number;
  lastProgress: number;
}

/**
 * A body reserves at most this much of the free space ahead of what it has written, topped up as
 * it arrives: a slow body cannot hold space it may never fill (one trickled just above the
 * minimum rate would otherwise hold its whole size for weeks).
 */
const RESERVE_AHEAD_BYTES = 64 * 1024 * 1024;

/** What a peer is told when a file does not fit: not how much space the receiver has. */
const NO_SPACE_TEXT = 'not enough free space on the receiver for this file';

/** Windows over which a body's rate is judged: this much time spent waiting for the peer, at most. */
const RATE_WINDOW_MS = 10_000;

type State = 'hello' | 'ready' | 'closing';

/** Verified files whose fsync and placement may run at once, per connection. */
const MAX_FINALIZING = 32;

export class ReceiverSession {
  private readonly decoder = new FrameDecoder();
  private readonly nonce = makeNonce();
  private readonly remote: string;
  /** The peer's address, without the port: what its partial uploads count against. */
  private readonly address: string;
  private state: State = 'hello';
  /** Fingerprint of the owner key the sender proved: its partials and receipts are its own. */
  private owner = '';
  /** What this connection may use: the features both hellos listed. */
  private features = new Set<Feature>();
  private readonly pending = new Map<number, PendingFile>();
  /** File ids must increase, so no set of every id seen is needed. */
  private lastId = 0;
  /** Headers seen on this connection (at most MAX_FILES_PER_CONNECTION). */
  private headers = 0;
  /** For the collision rule: digests, not names (with the header cap, ~200 KB at most). */
  private readonly batchNames = new NameTable();
  /** Time spent waiting for the peer's bytes (not for our own work), for the body rate. */
  private peerWaitMs = 0;
  private waitingSince: number | undefined;
  /** The body arriving now, kept or dropped: its bytes so far, and where the current rate window began. */
  private arriving: { name: string; bytes: number; window: { waitMs: number; bytes: number } } | undefined;
  /** Header decisions still being made, by file id; their answers go out in arrival order. */
  private readonly deciding = new Map<number, Promise<void>>();
  private answered: Promise<void> = Promise.resolve();
  private body: ActiveBody | undefined;
  /**
   * The file whose hash the sender sends next: a body complete but for it, or (no body) one that
   * could not be written, whose hash is only read.
   */
  private awaitingHash: { id: number; body: ActiveBody; hash: string } | { id: number; body?: undefined } | undefined;
  /** The body in progress could not be written: its remaining bytes are read and dropped. */
  private dropping: FileHeader | undefined;
  /** Complete, verified files being fsync'd and placed. */
  private readonly finalizing = new Set<Promise<void>>();
  private corked = false;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: SessionContext,
    private readonly ticket: Ticket,
  ) {
    const address = (socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
    this.address = address;
    this.remote = address.includes(':') ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
  }

  async run(): Promise<void> {
    const { socket, ctx } = this;
    ctx.emit({ type: 'connection', remote: this.remote });
    // Errors surface through the read loop; one arriving after it (a late EPIPE) must not crash the receiver.
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    socket.setTimeout(ctx.limits.idleTimeoutMs);
    socket.on('timeout', () => socket.destroy(new FtError('TIMEOUT', `no data for ${ctx.limits.idleTimeoutMs} ms`)));
    // A deadline, not an idle timer: trickling bytes cannot hold a connection in the greeting.
    const helloDeadline = setTimeout(() => {
      if (this.state === 'hello') socket.destroy(new FtError('TIMEOUT', `no hello within ${ctx.limits.helloTimeoutMs} ms`));
    }, ctx.limits.helloTimeoutMs);
    helloDeadline.unref();
    const rateCheck = setInterval(() => this.checkBodyRate(), this.rateWindowMs / 4);
    rateCheck.unref();
    socket.once('close', () => {
      clearTimeout(helloDeadline);
      clearInterval(rateCheck);
    });
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
      // destroyOnReturn: false keeps the socket open after a throw, so the error frame can go out.
      this.waitingSince = performance.now();
      for await (const chunk of socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        this.peerWaitMs += performance.now() - this.waitingSince;
        this.waitingSince = undefined;
        noteRead(chunk.length);
        try {
          for (const item of this.decoder.push(chunk)) await this.handle(item);
        } catch (error) {
          // Errors of our own handling, told apart from the socket's (which come from the iterator).
          throw localFailure(error);
        }
        // A peer that does not read our answers is not read either: memory stays bounded.
        if (socket.writableNeedDrain) await drainedOrClosed(socket);
        this.waitingSince = performance.now();
      }
      if (this.state !== 'closing') {
        const kept = this.body?.file.partial.resumable ? '; the part received is kept for resume' : '';
        const where = this.body ? ` in the middle of ${this.body.file.header.filename}${kept}` : ' before it was done';
        throw new FtError('CONNECTION_LOST', `the sender went away${where}`);
      }
    } catch (error) {
      // Our own failures are coded already; anything else came from the socket: the peer went away.
      failure = toFtError(error, 'CONNECTION_LOST');
      // Files verified before the violation still get their `done`, ahead of the error.
      await this.answered;
      await Promise.all(this.finalizing);
      this.closeWithError(failure);
    }
    // Report a failure only once the bytes already received are on disk: the partial is final by then.
    await this.releaseAll();
    if (failure) ctx.emit({ type: 'connection-error', remote: this.remote, code: failure.code, message: failure.message });
  }

  /** Closes from the outside (receiver shutting down): partial data is kept for resume. */
  abort(): void {
    this.socket.destroy();
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
    if (rate < this.ctx.limits.minBodyRate) {
      this.socket.destroy(
        new FtError('TIMEOUT', `the body of ${arriving.name} arrived at ${Math.round(rate)} B/s, below this receiver's minimum of ${this.ctx.limits.minBodyRate} B/s`),
      );
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
    // A last guard: whatever a message says, it never names where the inbox is on this machine.
    if ('message' in message) message.message = clip(message.message.replaceAll(this.ctx.inbox.root, '<inbox>'));
    // After the peer's FIN our side may be ended too: nothing more can be said.
    if (this.socket.destroyed || !this.socket.writable) return;
    // Answers written in one tick leave in one segment (many small files make many answers).
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(encodeFrame(message as unknown as Record<string, unknown>));
  }

  private closeWithError(error: FtError): void {
    const { code, message } = error;
    if (!this.socket.destroyed && this.socket.writable) {
      // A local code (a timeout, the peer gone) closes without a frame (PROTOCOL.md §14.3).
      if (isWireCode(code)) this.send({ type: 'error', code, message });
      this.socket.end();
      this.socket.destroySoon();
    }
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private async handle(item: Decoded): Promise<void> {
    if (item.kind === 'body-chunk') return this.bodyChunk(item.data);
    if (item.kind === 'body-end') return this.bodyEnd();
    if (item.kind === 'error') throw item.error;
    noteMessage();
    const message = parseSenderMessage(item.message);
    if (this.state === 'closing') throw new FtError('UNEXPECTED_MESSAGE', `"${message.type}" after "bye"`);
    if (this.state === 'hello') {
      if (message.type !== 'hello') throw new FtError('UNEXPECTED_MESSAGE', `expected "hello", got "${message.type}"`);
      return this.hello(message);
    }
    if (this.awaitingHash && message.type !== 'hash') {
      throw new FtError('UNEXPECTED_MESSAGE', `expected the "hash" of file ${this.awaitingHash.id}, got "${message.type}"`);
    }
    switch (message.type) {
      case 'hash':
        return this.bodyHash(message);
      case 'file':
        return this.header(message);
      case 'body':
        return this.startBody(message);
      case 'cancel':
        return this.release(await this.takePending(message.id));
      case 'bye':
        await this.answered;
        if (this.pending.size > 0) throw new FtError('UNEXPECTED_MESSAGE', `"bye" with ${this.pending.size} accepted files unsent`);
        this.state = 'closing';
        await Promise.all(this.finalizing);
        this.socket.end();
        return;
      default:
        throw new FtError('UNEXPECTED_MESSAGE', `"${message.type}" is not allowed after the greeting`);
    }
  }

  private async hello(message: SenderHello): Promise<void> {
    if (message.version !== PROTOCOL_VERSION) {
      throw new FtError('UNSUPPORTED_VERSION', `this receiver speaks version ${PROTOCOL_VERSION}, not ${message.version}`);
    }
    if (this.ctx.token !== undefined) {
      const address = this.socket.remoteAddress ?? '';
      if (!verifyProof(this.ctx.token, this.nonce, message.proof)) {
        // Guessing gets slower with every wrong answer from the same address.
        await new Promise((resolve) => setTimeout(resolve, this.ctx.admission.authFailed(address)));
        throw new FtError('AUTH_FAILED', 'the token proof is missing or wrong');
      }
      this.ctx.admission.authSucceeded(address);
    }
    if (message.owner === undefined || message.ownerProof === undefined) {
      throw new FtError('BAD_MESSAGE', '"hello" has no owner key and proof (required since version 3)');
    }
    const owner = verifyOwnerProof(message.owner, this.nonce, message.ownerProof);
    if (owner === undefined) throw new FtError('AUTH_FAILED', 'the owner key proof does not verify');
    this.owner = owner;
    this.features = sharedFeatures(OUR_FEATURES, message.features);
    // Only now does the connection take one of the main slots (see Admission).
    const refusal = this.ctx.admission.promote(this.ticket);
    if (refusal) throw new FtError('BUSY', refusal);
    this.state = 'ready';
  }

  /**
   * Checks what must be checked in arrival order, then decides in the background: the next
   * headers' disk look-ups overlap with this one's, and the answers still go out in order.
   */
  private header(header: FileHeader): void {
    if (header.id <= this.lastId) throw new FtError('UNEXPECTED_MESSAGE', `file id ${header.id} is not above the previous one (${this.lastId})`);
    if (++this.headers > MAX_FILES_PER_CONNECTION) {
      throw new FtError('UNEXPECTED_MESSAGE', `more than ${MAX_FILES_PER_CONNECTION} files on one connection; open another`);
    }
    // Open headers: accepted and waiting for a body, or not answered yet (an id can be both for a moment).
    const open = this.pending.size + [...this.deciding.keys()].filter((id) => !this.pending.has(id)).length;
    if (open >= this.ctx.limits.maxPendingFiles) {
      throw new FtError('UNEXPECTED_MESSAGE', `more than ${this.ctx.limits.maxPendingFiles} headers are waiting for bodies`);
    }
    if (header.hash === undefined && !this.features.has(FEATURES.TRAILING_HASH)) {
      throw new FtError('BAD_MESSAGE', `the header of file ${header.id} has no hash, and "${FEATURES.TRAILING_HASH}" was not agreed in the hellos`);
    }
    this.lastId = header.id;
    const decision = this.decide(header);
    const answered = this.answered.then(async () => {
      const { reply, event } = await decision;
      this.deciding.delete(header.id);
      this.send(reply);
      if (event) this.ctx.emit(event);
    });
    this.answered = answered.catch(() => undefined);
    this.deciding.set(header.id, answered);
  }

  /** accept, skip or refuse; never throws (a problem with one file is that file's refusal). */
  private async decide(header: FileHeader): Promise<{ reply: ReceiverMessage; event?: ReceiverEvent }> {
    const { id, filename: name } = header;
    /** `logged` is what the receiver's own log says, when the peer is told less. */
    const refuse = (code: ErrorCode, message: string, logged = message) => ({
      reply: { type: 'refuse', id, code: wireCodeOf(code), message } as const,
      event: { type: 'refused', remote: this.remote, name, code, message: logged } as const,
    });
    let partial: Partial | undefined;
    try {
      const components = parseSafeName(name);
      if (!this.batchNames.claim(collisionKey(name), name)) {
        return refuse('NAME_COLLISION', `"${name}" and a name sent earlier on this connection differ only by case or normalisation`);
      }
      if (header.size > this.ctx.limits.maxFileSize) {
        return refuse('TOO_LARGE', `${header.size} bytes is over this receiver's limit of ${this.ctx.limits.maxFileSize}`);
      }
      const stored = header.receipt === undefined ? undefined : this.redeem(header, header.receipt);
      if (stored !== undefined) {
        this.ctx.admission.progressed(this.ticket);
        return {
          reply: { type: 'skip', id, reason: 'already-there', ...(this.entitled ? { path: stored } : {}) },
          event: { type: 'skipped', remote: this.remote, name, path: stored },
        };
      }
      const target = await this.ctx.inbox.inspect(components);
      if (target.kind === 'conflict') return refuse('CONFLICT', target.reason);
      const upload = { owner: this.owner, filename: name, size: header.size, hash: header.hash };
      partial = await this.ctx.inbox.partials.acquire(upload, this, this.address);
      if (!partial) return refuse('BUSY', 'another connection of yours is uploading this file; try again shortly');
      const needed = header.size - partial.offset;
      const { missing, available } = await this.ctx.disk.shortfall(needed);
      if (missing > 0) {
        partial.release();
        return refuse('NO_SPACE', NO_SPACE_TEXT, `${needed} bytes needed, ${available} free`);
      }
      const prefix = partial.offset > 0 ? await partial.hashPrefix() : undefined;
      this.pending.set(id, { header, components, partial, offset: partial.offset, prefix });
      // The receiver is the authority on the offset; the sender checks prefixHash against its own bytes.
      const reply: ReceiverMessage =
        prefix && partial.offset > 0
          ? { type: 'accept', id, offset: partial.offset, prefixHash: prefix.prefixHash }
          : { type: 'accept', id, offset: 0 };
      return { reply };
    } catch (error) {
      // Whatever went wrong with this one file (a name the disk cannot hold, a permission), the
      // connection and the other files go on.
      partial?.release();
      const { code, message } = this.logged(localFailure(error), name);
      return refuse(code, message);
    }
  }

  /**
   * What a peer is told of a failure of ours: our own errors say what is wrong with the file,
   * system errors only their code (their text names the receiver's paths); the receiver's log
   * gets the whole text.
   */
  private logged(error: FtError, name: string): { code: ErrorCode; message: string } {
    const cause = error.cause as NodeJS.ErrnoException | undefined;
    if (cause === undefined || typeof cause.code !== 'string') return { code: error.code, message: error.message };
    this.ctx.emit({ type: 'warning', message: `${this.remote}: ${name}: ${error.message}` });
    return { code: error.code, message: `the receiver could not store this file (${cause.code})` };
  }

  /**
   * Only a sender that proved the receiver's token may learn where files are stored: on an
   * open receiver, a name it landed under would tell that another file has the name.
   */
  private get entitled(): boolean {
    return this.ctx.token !== undefined;
  }

  /**
   * The stored path a receipt vouches for, when it was issued to this owner for this name and
   * size and the file there is unchanged since; otherwise undefined (the upload goes ahead).
   */
  private redeem(header: FileHeader, receipt: string): string | undefined {
    const claims = this.ctx.receipts.open(receipt);
    if (!claims || claims.owner !== this.owner || claims.name !== receiptName(header.filename) || claims.size !== header.size) return undefined;
    if (header.hash !== undefined && header.hash !== claims.hash) return undefined;
    const now = this.ctx.inbox.statPlaced(claims.path);
    return now !== undefined && sameIdentity(now, claims) ? claims.path : undefined;
  }

  private async takePending(id: number): Promise<PendingFile> {
    await this.deciding.get(id);
    const file = this.pending.get(id);
    if (!file) throw new FtError('UNEXPECTED_MESSAGE', `no accepted file with id ${id}`);
    this.pending.delete(id);
    return file;
  }

  private async startBody(message: Body): Promise<void> {
    const file = await this.takePending(message.id);
    const { header } = file;
    // A resume must start at the offset we offered; 0 means the sender found our prefix wrong.
    if (message.offset !== file.offset && message.offset !== 0) {
      this.release(file);
      throw new FtError('BAD_MESSAGE', `body for ${header.filename} starts at ${message.offset}, but ${file.offset} was offered`);
    }
    if (message.length !== header.size - message.offset) {
      this.release(file);
      throw new FtError('BAD_MESSAGE', `body length ${message.length} does not match size ${header.size} minus offset ${message.offset}`);
    }
    if (message.offset === 0 && file.offset > 0) {
      this.ctx.emit({ type: 'restarted', remote: this.remote, name: header.filename, discarded: file.offset });
    }
    // A body that starts is progress (an empty file has no byte to show for it).
    this.ctx.admission.progressed(this.ticket);
    // Judged from its first byte on, whether it is kept or (below) read and dropped.
    this.arriving = { name: header.filename, bytes: 0, window: { waitMs: this.peerWaitNow(), bytes: 0 } };
    const resumed = message.offset > 0 && file.prefix !== undefined;
    const hasher = resumed ? file.prefix!.hasher : await createHasher();
    // The announced size reserved nothing; the body about to arrive does.
    const reservation = await this.ctx.disk.reserve(Math.min(message.length, RESERVE_AHEAD_BYTES));
    if (!('release' in reservation)) {
      this.release(file);
      this.send({ type: 'failed', id: header.id, code: 'NO_SPACE', message: NO_SPACE_TEXT });
      const logged = `${message.length} bytes needed, ${reservation.available} free`;
      this.ctx.emit({ type: 'failed', remote: this.remote, name: header.filename, code: 'NO_SPACE', message: logged });
      this.dropping = header;
      return;
    }
    let sink: BodySink;
    try {
      sink = await openBodySink(file.partial, message.offset, message.length);
    } catch (error) {
      reservation.release();
      this.release(file);
      this.reportWriteFailure(file, error);
      this.dropping = header;
      return;
    }
    file.offset = message.offset;
    const now = performance.now();
    this.body = { file, sink, hasher, reservation, reservedAt: message.offset, startedAt: now, received: message.offset, lastProgress: now };
    this.ctx.emit({ type: 'started', remote: this.remote, name: header.filename, size: header.size, offset: message.offset });
  }

  private async bodyChunk(data: Buffer): Promise<void> {
    this.arriving!.bytes += data.length;
    if (this.dropping) return;
    this.ctx.admission.progressed(this.ticket);
    const body = this.body!;
    body.received += data.length;
    body.hasher.update(data);
    try {
      await body.sink.write(data);
      if (body.received - body.reservedAt >= RESERVE_AHEAD_BYTES / 2) await this.reserveAhead(body);
    } catch (error) {
      await this.abandonBody(body, error);
      this.dropping = body.file.header;
      return;
    }
    const now = performance.now();
    if (now - body.lastProgress >= PROGRESS_INTERVAL_MS) {
      body.lastProgress = now;
      const { filename: name, size } = body.file.header;
      this.ctx.emit({ type: 'progress', remote: this.remote, name, bytes: body.received, size });
    }
  }

  /** Tops up the body's reservation; a disk that has no room left for it ends the body as a full disk would. */
  private async reserveAhead(body: ActiveBody): Promise<void> {
    body.reservedAt = body.received;
    const ahead = Math.min(body.file.header.size - body.received, RESERVE_AHEAD_BYTES);
    if (!(await body.reservation.resize(ahead))) throw Object.assign(new Error('no room left for the rest of the body'), { code: 'ENOSPC' });
  }

  /** A full disk or an I/O error mid-body: keep what was written for resume, and say why. */
  private async abandonBody(body: ActiveBody, error: unknown): Promise<void> {
    this.body = undefined;
    await body.sink.abandon();
    body.reservation.release();
    this.release(body.file);
    this.reportWriteFailure(body.file, error);
  }

  /** This one file failed; the connection and the other files go on. */
  private reportWriteFailure(file: PendingFile, error: unknown): void {
    const errno = (error as NodeJS.ErrnoException).code;
    const code: ErrorCode = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'NO_SPACE' : localFailure(error).code;
    const { filename } = file.header;
    // The peer learns what happened, not where: system errors name the receiver's paths.
    const told = error instanceof FtError ? error.message : `could not write ${filename}${errno ? ` (${errno})` : ''}`;
    this.send({ type: 'failed', id: file.header.id, code: wireCodeOf(code), message: told });
    this.ctx.emit({ type: 'failed', remote: this.remote, name: filename, code, message: `could not write ${filename}: ${(error as Error).message}` });
  }

  private async bodyEnd(): Promise<void> {
    this.arriving = undefined;
    if (this.dropping) {
      const { id, hash } = this.dropping;
      this.dropping = undefined;
      // The sender learns of the failure only from our answer: a hash it sends after the body is read and ignored.
      if (hash === undefined) this.awaitingHash = { id };
      return;
    }
    const body = this.body!;
    this.body = undefined;
    // Every byte is with the sink now; what it still has to write is covered by the file's own blocks.
    body.reservation.release();
    const hash = body.hasher.digest();
    const { header } = body.file;
    if (header.hash === undefined) {
      // The sender hashed while it sent: its hash is the next message.
      this.awaitingHash = { id: header.id, body, hash };
      return;
    }
    return this.verify(body, hash, header.hash);
  }

  private async bodyHash(message: BodyHash): Promise<void> {
    const awaiting = this.awaitingHash;
    if (awaiting?.id !== message.id) {
      throw new FtError('UNEXPECTED_MESSAGE', `"hash" for file ${message.id}, which has no body waiting for its hash`);
    }
    this.awaitingHash = undefined;
    // No body: it could not be written, and the sender was told.
    if (awaiting.body) await this.verify(awaiting.body, awaiting.hash, message.hash);
  }

  /** Compares the hash of the bytes received with the sender's, then writes out and finalizes. */
  private async verify(body: ActiveBody, hash: string, expected: string): Promise<void> {
    const { file, sink } = body;
    const { header } = file;
    if (hash !== expected) {
      // The bytes we hold are not the announced content, and we cannot tell which are wrong. If
      // deleting them fails, the next resume's prefix check still refuses them.
      await sink.discard();
      try {
        file.partial.discard();
      } catch {
        // See above.
      }
      this.release(file);
      const message = `content of ${header.filename} hashes to ${hash}, not ${expected}; nothing was kept`;
      this.send({ type: 'failed', id: header.id, code: 'HASH_MISMATCH', message });
      this.ctx.emit({ type: 'failed', remote: this.remote, name: header.filename, code: 'HASH_MISMATCH', message });
      return;
    }
    // Every byte is written now (a small body in one go), so no body stays in memory.
    let written: OpenFile;
    try {
      written = await sink.finish();
    } catch (error) {
      return this.abandonBody(body, error);
    }
    // Durability and placement run in the background while the next body streams in; many
    // small files then share fsyncs (and the journal commits behind them).
    if (this.finalizing.size >= MAX_FINALIZING) await Promise.race(this.finalizing);
    const finalizing = this.finalize(body, written, hash).finally(() => this.finalizing.delete(finalizing));
    this.finalizing.add(finalizing);
  }

  /** fsync, atomic placement, then `done`: the file exists under its name only once durable. */
  private async finalize(body: ActiveBody, written: OpenFile, hash: string): Promise<void> {
    const { file } = body;
    const { header } = file;
    try {
      await written.sync();
      await written.close();
      const placed = await this.ctx.inbox.place(file.partial, file.components);
      this.release(file);
      const claims = { owner: this.owner, name: receiptName(header.filename), path: placed.path, hash, ...placed.identity };
      const receipt = this.ctx.receipts.seal(claims, header.filename);
      this.send({ type: 'done', id: header.id, hash, receipt, ...(this.entitled ? { path: placed.path } : {}) });
      this.ctx.admission.progressed(this.ticket);
      this.ctx.emit({
        type: 'received',
        remote: this.remote,
        name: header.filename,
        path: placed.path,
        size: header.size,
        hash,
        resumedFrom: file.offset,
        durationMs: Math.round(performance.now() - body.startedAt),
      });
    } catch (error) {
      await written.close().catch(() => undefined);
      this.release(file);
      const failure = localFailure(error);
      const told = this.logged(failure, header.filename);
      this.send({ type: 'failed', id: header.id, code: wireCodeOf(told.code), message: told.message });
      this.ctx.emit({ type: 'failed', remote: this.remote, name: header.filename, code: failure.code, message: failure.message });
    }
  }

  private release(file: PendingFile): void {
    file.partial.release();
  }

  /** On any end of the connection: what was written stays on disk as a resumable partial. */
  private async releaseAll(): Promise<void> {
    await this.answered;
    await Promise.all(this.finalizing);
    // A body still waiting for its hash is complete on disk: a resume offers all of it.
    const bodies = [this.body, this.awaitingHash?.body];
    this.body = undefined;
    this.awaitingHash = undefined;
    for (const body of bodies) {
      if (!body) continue;
      body.reservation.release();
      await body.sink.abandon();
      this.release(body.file);
    }
    for (const file of this.pending.values()) this.release(file);
    this.pending.clear();
  }
}

/** Texts on the wire stay well inside the 4096-byte field limit, whatever name they quote. */
function clip(text: string): string {
  if (Buffer.byteLength(text) <= 1024) return text;
  const chars = [...text.slice(0, 1000)];
  while (Buffer.byteLength(chars.join('')) > 1000) chars.pop();
  return `${chars.join('')}…`;
}

/**
 * Errors from our own work on a frame: a file-system error is WRITE_FAILED, anything else is
 * our bug (INTERNAL). Kept apart from socket errors, which mean the peer went away.
 */
function localFailure(error: unknown): FtError {
  if (error instanceof FtError) return error;
  const code = (error as NodeJS.ErrnoException)?.code;
  const systemError = typeof code === 'string' && !code.startsWith('ERR_');
  return toFtError(error, systemError ? 'WRITE_FAILED' : 'INTERNAL');
}

function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}
