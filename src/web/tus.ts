/**
 * The tus 1.0.0 endpoint (core, creation, creation-with-upload, termination, expiration,
 * checksum): resumable HTTP uploads into the same Ingest as the TCP protocol, so names, limits,
 * conflicts, free space, verification and events are exactly those of `ft send`.
 *
 * An upload id is a signed capability (upload-id.ts) naming the upload's store key: nothing is
 * remembered to find it again, so it survives a restart. An upload is held (its IngestSession
 * and writer open) from the request that opened it until HOLD_MS after its last request, so a
 * client sending chunks does not make the receiver hash the prefix again for each one.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorCode } from '../errors.js';
import type { ReceiverEvent } from '../ingest/events.js';
import type { WebPeer } from './web-server.js';
import type { Ingest, IngestSession, Outcome } from '../ingest/ingest.js';
import { BodyCut, BodyReader } from './body-reader.js';
import { byteCount, CHECKSUM_ALGORITHMS, encodeMetadata, header, parseChecksum, parseMetadata, TusRefusal } from './tus-headers.js';
import type { BandwidthLimit } from '../bandwidth-limit.js';
import { decodeUploadId, encodeUploadId, newUploadInfo, ownerOf, type UploadInfo } from './upload-id.js';

export type { WebPeer };

export interface TusOptions {
  ingest: Ingest;
  /** '/files' (no trailing slash); Location headers are `${mount}/${id}`. */
  mount: string;
  /** 32 bytes, stable across restarts: signs upload ids. */
  secret: Buffer;
  /** Tus-Max-Size when finite. */
  maxFileSize: number;
  /** Accept uploads without a `hash` metadata value (reported `verified: false`). */
  allowUnverified: boolean;
  /** What the store's sweep is given: Upload-Expires says when it may delete an upload. */
  partialTtlMs: number;
  emit: (event: ReceiverEvent) => void;
  /** A request body silent this long is ended (what arrived is kept). @default 60 000 */
  idleTimeoutMs?: number;
  /** Told the size of every body chunk taken: the receiver's young collections (see receiver/gc-hints.ts). */
  noteRead?: (bytes: number) => void;
  /** An upload is let go (kept for resume) this long after its last request. @default HOLD_MS */
  holdMs?: number;
  /** A request body arriving slower than this, in bytes per second, is ended (what arrived is kept). @default 0 (none) */
  minBodyRate?: number;
  /** What request bodies wait for (our own waits, which the minimum rate does not count). @default no limit */
  bandwidth?: BandwidthLimit;
}

const TUS_VERSION = '1.0.0';
const EXTENSIONS = 'creation,creation-with-upload,termination,expiration,checksum';
const OCTET_STREAM = 'application/offset+octet-stream';
/** Held uploads are let go this long after their last request (kept for resume). */
export const HOLD_MS = 30_000;
/** Uploads held at once; at the cap, the one idle longest is let go for a newcomer. */
export const MAX_HELD = 64;
/** A PATCH with Upload-Checksum is held in memory until checked: at most this much (413 above). */
export const MAX_CHECKSUM_BODY = 16 * 1024 * 1024;
/** All checksummed bodies held at once (503 while it is taken). */
export const CHECKSUM_BUDGET = 64 * 1024 * 1024;
/** What the uploads of one address may hold of it: slow bodies from one peer cannot take it all. */
export const CHECKSUM_BUDGET_PER_ADDRESS = CHECKSUM_BUDGET / 2;
/** Ids remembered as complete (HEAD then says so) or terminated (404), most recent first. */
const REMEMBERED = 4096;
/** Bytes handed to Ingest at once from a checked body. */
const WRITE_SLICE = 1024 * 1024;
const FILE_ID = 1;

/** The HTTP status for one of ft's error codes. */
function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'BAD_NAME':
    case 'BAD_MESSAGE':
    case 'NAME_COLLISION':
      return 400;
    case 'UNSAFE_PATH':
    case 'CONFLICT':
      return 403;
    case 'TOO_LARGE':
      return 413;
    case 'HASH_MISMATCH':
      return 422;
    case 'BUSY':
      return 503;
    case 'NO_SPACE':
      return 507;
    default:
      return 500;
  }
}

/** One upload held open between its requests. */
interface Held {
  token: string;
  /** The address of the peer that opened it: who makes room when all are held. */
  address: string;
  info: UploadInfo;
  session: IngestSession;
  /** The body (from the offset to the end) is started in Ingest. */
  started: boolean;
  /** The PATCH running now, if any. */
  patch: { reader: BodyReader; done: Promise<void> } | undefined;
  timer: NodeJS.Timeout | undefined;
  /** Let go: nothing more may use it. */
  gone: boolean;
}

type Missing = { missing: true };

export class TusEndpoint {
  private readonly held = new Map<string, Held>();
  private readonly opening = new Map<string, Promise<Held | Missing>>();
  private readonly creating = new Set<Promise<void>>();
  /** Complete uploads by id, and terminated ones: bounded, oldest forgotten first. */
  private readonly remembered = new Map<string, 'complete' | 'terminated'>();
  private checksumBytes = 0;
  private readonly checksumByAddress = new Map<string, number>();
  private closed = false;
  private readonly idleTimeoutMs: number;
  private readonly holdMs: number;

  constructor(private readonly options: TusOptions) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.holdMs = options.holdMs ?? HOLD_MS;
  }

  /** `rest` is the path after the mount: '' or '/' for the collection, '/<id>' for an upload. */
  handle(req: IncomingMessage, res: ServerResponse, rest: string, peer: WebPeer): void {
    this.serve(req, res, rest, peer).catch((error: unknown) => {
      if (error instanceof TusRefusal) return this.refuse(req, res, error);
      this.options.emit({ type: 'warning', message: `tus: ${peer.remote}: ${(error as Error).message}` });
      this.refuse(req, res, new TusRefusal(500, 'INTERNAL', 'the receiver failed to handle this request'));
    });
  }

  /** Lets go of every held upload (kept for resume); requests after it are answered 503. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.opening.values(), ...this.creating].map((opening) => opening.catch(() => undefined)));
    await Promise.all([...this.held.values()].map((held) => this.letGo(held, true)));
  }

  private async serve(req: IncomingMessage, res: ServerResponse, rest: string, peer: WebPeer): Promise<void> {
    const override = header(req, 'x-http-method-override')?.toUpperCase();
    const method = req.method === 'POST' && override !== undefined ? override : req.method;
    const collection = rest === '' || rest === '/';
    if (method === 'OPTIONS') return this.answer(res, 204, this.capabilities());
    if (!collection && !/^\/[^/]+$/.test(rest)) throw new TusRefusal(404, 'BAD_MESSAGE', 'no such upload');
    if (header(req, 'tus-resumable') !== TUS_VERSION) {
      throw new TusRefusal(412, 'UNSUPPORTED_VERSION', `this endpoint speaks tus ${TUS_VERSION}: send Tus-Resumable: ${TUS_VERSION}`, {
        'Tus-Version': TUS_VERSION,
      });
    }
    if (this.closed) throw new TusRefusal(503, 'BUSY', 'the receiver is stopping', { 'Retry-After': '5' });
    if (collection) {
      if (method !== 'POST') throw new TusRefusal(405, 'BAD_MESSAGE', `${method} is not allowed here`, { Allow: 'OPTIONS, POST' });
      // Tracked: close() waits for a creation under way (the store closes after it).
      const creating = this.create(req, res, peer);
      this.creating.add(creating);
      return creating.finally(() => this.creating.delete(creating));
    }
    const token = rest.slice(1);
    const info = decodeUploadId(token, this.options.secret);
    if (info === undefined) throw new TusRefusal(404, 'BAD_MESSAGE', 'no such upload');
    switch (method) {
      case 'HEAD':
        return this.head(res, token, info, peer);
      case 'PATCH':
        return this.patch(req, res, token, info, peer);
      case 'DELETE':
        return this.terminate(res, token, info, peer);
      default:
        throw new TusRefusal(405, 'BAD_MESSAGE', `${method} is not allowed here`, { Allow: 'OPTIONS, HEAD, PATCH, DELETE' });
    }
  }

  private capabilities(): Record<string, string> {
    const { maxFileSize } = this.options;
    return {
      'Tus-Version': TUS_VERSION,
      'Tus-Extension': EXTENSIONS,
      'Tus-Checksum-Algorithm': CHECKSUM_ALGORITHMS.join(','),
      ...(Number.isSafeInteger(maxFileSize) && maxFileSize < Number.MAX_SAFE_INTEGER ? { 'Tus-Max-Size': String(maxFileSize) } : {}),
    };
  }

  /** POST: a new upload, recorded at once; with a body (creation-with-upload), its first bytes too. */
  private async create(req: IncomingMessage, res: ServerResponse, peer: WebPeer): Promise<void> {
    if (header(req, 'upload-defer-length') !== undefined) throw new TusRefusal(400, 'BAD_MESSAGE', 'Upload-Defer-Length is not supported: send Upload-Length');
    const size = byteCount(req, 'upload-length');
    if (size === undefined) throw new TusRefusal(400, 'BAD_MESSAGE', 'Upload-Length is required');
    if (size > this.options.maxFileSize) throw new TusRefusal(413, 'TOO_LARGE', `${size} bytes is over this receiver's limit of ${this.options.maxFileSize}`);
    const { name, hash } = parseMetadata(header(req, 'upload-metadata'));
    if (name === undefined) throw new TusRefusal(400, 'BAD_NAME', 'Upload-Metadata has no filename');
    if (hash === undefined && !this.options.allowUnverified) {
      const message = 'this receiver accepts only verified uploads: send the file’s XXH64 in Upload-Metadata as hash (xxh64:<16 hex digits>)';
      // In the log too: whoever runs the receiver sees why a browser's or a client's upload did not come.
      this.options.emit({ type: 'refused', remote: peer.remote, name, code: 'BAD_MESSAGE', message });
      throw new TusRefusal(400, 'BAD_MESSAGE', message);
    }
    const withBody = bodyFollows(req);
    if (withBody) this.checkPatchHeaders(req, 0, size);
    await this.makeRoom();
    const info = newUploadInfo(name, size, hash);
    const session = this.options.ingest.session(this.peerOf(info, peer));
    const opened = await session.open({ id: FILE_ID, filename: name, size, ...(hash !== undefined ? { hash } : {}) }, 'create');
    const { decision, announce } = opened!;
    if (decision.kind !== 'accept') {
      await session.close();
      const refusal = decision.kind === 'refuse' ? new TusRefusal(statusOf(decision.code), decision.code, decision.message) : new TusRefusal(500, 'INTERNAL', 'unexpected');
      this.refuse(req, res, refusal);
      announce();
      return;
    }
    if (this.closed) {
      // Closed while it was being recorded: nobody will get its id, so nothing is kept.
      await session.discard(FILE_ID);
      await session.close();
      throw new TusRefusal(503, 'BUSY', 'the receiver is stopping', { 'Retry-After': '5' });
    }
    const token = encodeUploadId(info, this.options.secret);
    const held: Held = { token, address: peer.address, info, session, started: false, patch: undefined, timer: undefined, gone: false };
    this.held.set(token, held);
    const location = { Location: `${this.options.mount}/${token}` };
    if (withBody) return this.receive(req, res, held, 201, location);
    if (size === 0) {
      const failure = await this.finish(held);
      if (failure) return this.refuse(req, res, failure);
    }
    this.release(held);
    this.answer(res, 201, { ...location, ...this.progressHeaders(held) });
  }

  /** HEAD: the offset the server holds (the authority), never cached. */
  private async head(res: ServerResponse, token: string, info: UploadInfo, peer: WebPeer): Promise<void> {
    const complete = { 'Upload-Offset': String(info.size), 'Upload-Length': String(info.size), 'Cache-Control': 'no-store' };
    if (this.recall(token) === 'complete') return this.answer(res, 200, { ...complete, 'Upload-Metadata': this.metadataOf(info) });
    const held = await this.acquire(token, info, peer);
    // A PATCH may be running: its progress so far is what is held.
    const state = held.session.state(FILE_ID, this.options.partialTtlMs);
    if (state?.offset === info.size && !held.patch) {
      // Every byte is here but it was never placed (a crash, a failed commit): place it now, or say why not.
      const failure = await this.finish(held);
      if (failure) throw failure;
      return this.answer(res, 200, { ...complete, 'Upload-Metadata': this.metadataOf(info) });
    }
    const headers = { ...this.progressHeaders(held), 'Upload-Length': String(info.size), 'Upload-Metadata': this.metadataOf(info) };
    this.release(held);
    this.answer(res, 200, headers);
  }

  private async patch(req: IncomingMessage, res: ServerResponse, token: string, info: UploadInfo, peer: WebPeer): Promise<void> {
    const offset = this.checkPatchHeaders(req, undefined, info.size);
    if (this.recall(token) === 'complete') {
      if (offset === info.size && !bodyFollows(req)) return this.answer(res, 204, { 'Upload-Offset': String(info.size) });
      throw new TusRefusal(409, 'UNEXPECTED_MESSAGE', `the upload is complete at ${info.size} bytes`);
    }
    const held = await this.acquire(token, info, peer);
    if (held.patch) throw new TusRefusal(423, 'BUSY', 'another PATCH of this upload is running');
    const at = held.session.state(FILE_ID, this.options.partialTtlMs)?.offset ?? 0;
    if (offset !== at) {
      this.release(held);
      throw new TusRefusal(409, 'UNEXPECTED_MESSAGE', `Upload-Offset is ${offset}, but the upload holds ${at} bytes`);
    }
    await this.receive(req, res, held, 204, {});
  }

  /** The body of a PATCH (or of a POST with creation-with-upload), then the answer. */
  private async receive(req: IncomingMessage, res: ServerResponse, held: Held, status: number, extra: Record<string, string>): Promise<void> {
    const reader = new BodyReader(req, this.idleTimeoutMs, this.options.minBodyRate, this.options.noteRead, this.options.bandwidth);
    let settle!: () => void;
    held.patch = { reader, done: new Promise<void>((resolve) => (settle = resolve)) };
    clearTimeout(held.timer);
    let failure: TusRefusal | undefined;
    try {
      failure = await this.take(req, held, reader);
      if (!failure && this.offsetOf(held) === held.info.size) failure = await this.finish(held);
    } catch (error) {
      // Cut, idle or stopped: what arrived is kept, and nobody is left to answer.
      if (error instanceof BodyCut) {
        if (!held.gone) await this.letGoIfBroken(held);
        return;
      }
      if (!(error instanceof TusRefusal)) {
        await this.letGo(held);
        throw error;
      }
      failure = error;
    } finally {
      held.patch = undefined;
      settle();
      if (!held.gone) this.release(held);
    }
    if (failure) return this.refuse(req, res, failure);
    this.answer(res, status, { ...extra, ...this.progressHeaders(held) });
  }

  /** Reads the body into Ingest: streamed with backpressure, or, with Upload-Checksum, checked first. */
  private async take(req: IncomingMessage, held: Held, reader: BodyReader): Promise<TusRefusal | undefined> {
    const checksum = parseChecksum(header(req, 'upload-checksum'));
    const rest = held.info.size - this.offsetOf(held);
    const start = await this.start(held);
    if (start) return start;
    if (checksum) {
      const declared = byteCount(req, 'content-length');
      const bound = Math.min(declared ?? MAX_CHECKSUM_BODY, MAX_CHECKSUM_BODY, rest);
      if ((declared ?? 0) > MAX_CHECKSUM_BODY) {
        return new TusRefusal(413, 'TOO_LARGE', `a PATCH with Upload-Checksum may carry at most ${MAX_CHECKSUM_BODY} bytes`);
      }
      const mine = this.checksumByAddress.get(held.address) ?? 0;
      if (this.checksumBytes + bound > CHECKSUM_BUDGET || mine + bound > CHECKSUM_BUDGET_PER_ADDRESS) {
        return new TusRefusal(503, 'BUSY', 'too many checksummed bodies at once', { 'Retry-After': '1' });
      }
      this.checksumBytes += bound;
      this.checksumByAddress.set(held.address, mine + bound);
      try {
        const chunks: Buffer[] = [];
        let length = 0;
        for (let chunk = await reader.next(); chunk !== null; chunk = await reader.next()) {
          length += chunk.length;
          if (length > bound) return new TusRefusal(413, 'TOO_LARGE', `the body is longer than ${bound} bytes`);
          chunks.push(chunk);
        }
        const body = Buffer.concat(chunks, length);
        if (!createHash(checksum.algorithm).update(body).digest().equals(checksum.digest)) {
          return new TusRefusal(460, 'HASH_MISMATCH', `the body does not match its Upload-Checksum (${checksum.algorithm}); nothing of it was kept`);
        }
        for (let at = 0; at < body.length; at += WRITE_SLICE) {
          const failed = await held.session.write(body.subarray(at, at + WRITE_SLICE));
          if (failed) return this.failedBody(held, failed);
        }
      } finally {
        this.checksumBytes -= bound;
        const left = (this.checksumByAddress.get(held.address) ?? bound) - bound;
        if (left > 0) this.checksumByAddress.set(held.address, left);
        else this.checksumByAddress.delete(held.address);
      }
      return undefined;
    }
    let room = rest;
    for (let chunk = await reader.next(); chunk !== null; chunk = await reader.next()) {
      if (chunk.length > room) {
        // Take what fits (a body may be cut anywhere), refuse the rest.
        if (room > 0) {
          const failed = await held.session.write(chunk.subarray(0, room));
          if (failed) return this.failedBody(held, failed);
        }
        return new TusRefusal(413, 'TOO_LARGE', `the body goes past Upload-Length (${held.info.size})`);
      }
      room -= chunk.length;
      const failed = await held.session.write(chunk);
      if (failed) return this.failedBody(held, failed);
    }
    return undefined;
  }

  /** Starts the body in Ingest (from the held offset to the end) if it is not yet. */
  private async start(held: Held): Promise<TusRefusal | undefined> {
    if (held.started) return undefined;
    const offset = this.offsetOf(held);
    const outcome = await held.session.startBody(FILE_ID, offset, held.info.size - offset);
    if (outcome) return this.failedBody(held, outcome);
    held.started = true;
    return undefined;
  }

  /** The last byte is in: verified against the announced hash (or not, where allowed), placed. */
  private async finish(held: Held): Promise<TusRefusal | undefined> {
    const started = await this.start(held);
    if (started) return started;
    const ended = await held.session.endBody();
    if (ended) return this.failedBody(held, ended);
    const outcome = await new Promise<Outcome>((resolve, reject) => void held.session.complete(FILE_ID, held.info.hash, resolve).catch(reject));
    this.remember(held.token, outcome.kind === 'done' ? 'complete' : undefined);
    await this.letGo(held);
    return outcome.kind === 'done' ? undefined : new TusRefusal(statusOf(outcome.code), outcome.code, outcome.message);
  }

  private async failedBody(held: Held, outcome: Outcome): Promise<TusRefusal> {
    await this.letGo(held);
    const { code, message } = outcome.kind === 'failed' ? outcome : { code: 'INTERNAL' as const, message: 'unexpected' };
    return new TusRefusal(statusOf(code), code, message, code === 'BUSY' ? { 'Retry-After': '1' } : {});
  }

  /** DELETE: the partial is gone (a running PATCH of it is ended first). */
  private async terminate(res: ServerResponse, token: string, info: UploadInfo, peer: WebPeer): Promise<void> {
    if (this.recall(token) === 'complete') throw new TusRefusal(403, 'CONFLICT', 'the upload is complete: the received file stays');
    const held = await this.acquire(token, info, peer);
    if (held.patch) {
      // A body still arriving is ended; one whose last byte is in is being placed: its answer goes out.
      if (!held.patch.reader.finished) held.patch.reader.stop('terminated');
      await held.patch.done;
      if (this.recall(token) === 'complete') throw new TusRefusal(403, 'CONFLICT', 'the upload is complete: the received file stays');
    }
    if (!held.gone) {
      held.gone = true;
      this.held.delete(token);
      clearTimeout(held.timer);
      await held.session.discard(FILE_ID);
      await held.session.close();
    }
    this.remember(token, 'terminated');
    this.answer(res, 204, {});
  }

  /** The held upload of `token`, opened from the store if need be; a missing one is answered 404/410. */
  private async acquire(token: string, info: UploadInfo, peer: WebPeer): Promise<Held> {
    const found = this.held.get(token) ?? (await this.open(token, info, peer));
    if ('missing' in found || found.gone) {
      // We signed it, so it was made: terminated here (404), or gone since (expired, or failed): 410.
      if (this.recall(token) === 'terminated') throw new TusRefusal(404, 'BAD_MESSAGE', 'no such upload (it was terminated)');
      throw new TusRefusal(410, 'BAD_MESSAGE', 'this upload is gone (it expired, or failed); start a new one');
    }
    clearTimeout(found.timer);
    return found;
  }

  /** One open per id at a time: two at once would take the upload from each other. */
  private open(token: string, info: UploadInfo, peer: WebPeer): Promise<Held | Missing> {
    let opening = this.opening.get(token);
    if (!opening) {
      opening = (async (): Promise<Held | Missing> => {
        await this.makeRoom();
        const session = this.options.ingest.session(this.peerOf(info, peer));
        const offer = { id: FILE_ID, filename: info.name, size: info.size, ...(info.hash !== undefined ? { hash: info.hash } : {}) };
        const opened = await session.open(offer, 'existing');
        if (opened === undefined) {
          await session.close();
          return { missing: true };
        }
        if (opened.decision.kind !== 'accept') {
          await session.close();
          const { code, message } = opened.decision.kind === 'refuse' ? opened.decision : { code: 'INTERNAL' as const, message: 'unexpected' };
          throw new TusRefusal(statusOf(code), code, message);
        }
        const held: Held = { token, address: peer.address, info, session, started: false, patch: undefined, timer: undefined, gone: false };
        this.held.set(token, held);
        if (this.closed) await this.letGo(held);
        return held;
      })().finally(() => this.opening.delete(token));
      this.opening.set(token, opening);
    }
    return opening;
  }

  /** At MAX_HELD, lets go of the upload idle longest; when every one is in use, 503. */
  /**
   * At the cap, lets go of the least recently used idle upload of the address holding the most
   * (as the store's partial caps do): a peer keeping many uploads fresh makes room out of its own,
   * not by pushing others' out (each would re-hash its prefix when it comes back).
   */
  private async makeRoom(): Promise<void> {
    if (this.held.size + this.opening.size < MAX_HELD) return;
    const idle = new Map<string, Held[]>();
    for (const held of this.held.values()) {
      if (held.patch) continue;
      const mine = idle.get(held.address) ?? [];
      mine.push(held);
      idle.set(held.address, mine);
    }
    let largest: Held[] | undefined;
    for (const mine of idle.values()) if (!largest || mine.length > largest.length) largest = mine;
    // Oldest first: the map is in order of last use.
    if (largest) return this.letGo(largest[0]!);
    throw new TusRefusal(503, 'BUSY', `${MAX_HELD} uploads are in progress here; try again shortly`, { 'Retry-After': '1' });
  }

  /** The request is over: the upload stays held for HOLD_MS, then is let go (kept for resume). */
  private release(held: Held): void {
    if (held.gone) return;
    clearTimeout(held.timer);
    // Most recently used last: makeRoom lets go of the first idle one.
    this.held.delete(held.token);
    this.held.set(held.token, held);
    // A HEAD during a PATCH: the PATCH releases it when it ends.
    if (held.patch) return;
    held.timer = setTimeout(() => void this.letGo(held), this.holdMs);
    held.timer.unref();
  }

  private async letGo(held: Held, stopPatch = false): Promise<void> {
    if (stopPatch && held.patch) {
      held.patch.reader.stop('the receiver is stopping');
      await held.patch.done;
    }
    if (held.gone) return;
    held.gone = true;
    clearTimeout(held.timer);
    if (this.held.get(held.token) === held) this.held.delete(held.token);
    await held.session.close();
  }

  /** After a body was cut: Ingest may have let go of it (a failed write); then so do we. */
  private async letGoIfBroken(held: Held): Promise<void> {
    if (held.session.state(FILE_ID, this.options.partialTtlMs) === undefined) await this.letGo(held);
  }

  /** What is remembered of an id, by a digest of it (an id may be kilobytes long). */
  private recall(token: string): 'complete' | 'terminated' | undefined {
    return this.remembered.get(digestOf(token));
  }

  private remember(token: string, what: 'complete' | 'terminated' | undefined): void {
    const digest = digestOf(token);
    this.remembered.delete(digest);
    if (what === undefined) return;
    this.remembered.set(digest, what);
    if (this.remembered.size > REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
  }

  private offsetOf(held: Held): number {
    return held.session.state(FILE_ID, this.options.partialTtlMs)?.offset ?? 0;
  }

  private progressHeaders(held: Held): Record<string, string> {
    const state = held.session.state(FILE_ID, this.options.partialTtlMs);
    const offset = held.gone && this.recall(held.token) === 'complete' ? held.info.size : (state?.offset ?? 0);
    return {
      'Upload-Offset': String(offset),
      'Cache-Control': 'no-store',
      ...(state?.keptUntil !== undefined ? { 'Upload-Expires': new Date(state.keptUntil).toUTCString() } : {}),
    };
  }

  private metadataOf(info: UploadInfo): string {
    const filename = info.name.slice(info.name.lastIndexOf('/') + 1);
    return encodeMetadata({ filename, relativePath: info.name.includes('/') ? info.name : undefined, hash: info.hash });
  }

  private peerOf(info: UploadInfo, peer: WebPeer) {
    return { owner: ownerOf(info), address: peer.address, remote: peer.remote, progressed: () => peer.progressed(), protocol: 'tus' as const };
  }

  /** Checks a body's headers; returns the Upload-Offset (or `offset` for a POST's body). */
  private checkPatchHeaders(req: IncomingMessage, offset: number | undefined, size: number): number {
    const type = header(req, 'content-type')?.split(';')[0]?.trim().toLowerCase();
    if (type !== OCTET_STREAM) throw new TusRefusal(415, 'BAD_MESSAGE', `the body must be ${OCTET_STREAM}`);
    const at = offset ?? byteCount(req, 'upload-offset');
    if (at === undefined) throw new TusRefusal(400, 'BAD_MESSAGE', 'Upload-Offset is required');
    const length = byteCount(req, 'content-length');
    if (length !== undefined && at + length > size) throw new TusRefusal(413, 'TOO_LARGE', `the body goes past Upload-Length (${size})`);
    return at;
  }

  private answer(res: ServerResponse, status: number, headers: Record<string, string>): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'Tus-Resumable': TUS_VERSION, ...headers, ...(status === 204 || status === 200 ? {} : { 'Content-Length': '0' }) });
    res.end();
  }

  /** A short text answer (`CODE: message`; never a receiver path); a body left unread closes the connection. */
  private refuse(req: IncomingMessage, res: ServerResponse, refusal: TusRefusal): void {
    if (res.headersSent || res.destroyed) return;
    const text = req.method === 'HEAD' ? '' : `${refusal.code}: ${refusal.message}\n`;
    const unread = !req.readableEnded && bodyFollows(req);
    res.writeHead(refusal.status, {
      'Tus-Resumable': TUS_VERSION,
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(text)),
      'Cache-Control': 'no-store',
      ...(unread ? { Connection: 'close' } : {}),
      // Busy is for a moment: clients that honour it come back instead of giving up.
      ...(refusal.status === 503 ? { 'Retry-After': '1' } : {}),
      ...refusal.headers,
    });
    res.end(text);
  }
}

function digestOf(token: string): string {
  return createHash('sha256').update(token).digest('base64url').slice(0, 22);
}

function bodyFollows(req: IncomingMessage): boolean {
  const length = header(req, 'content-length');
  return (length !== undefined && length !== '0') || header(req, 'transfer-encoding') !== undefined;
}
