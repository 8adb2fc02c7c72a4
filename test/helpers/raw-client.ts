import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { ephemeralOwnerKey, type OwnerKey } from '../../src/auth/owner-key.js';
import { makeNonce, receiverProof, senderProof, type ProofTranscript } from '../../src/auth/token-proof.js';
import { fingerprintOfCertificate } from '../../src/auth/fingerprint.js';
import { PLAINTEXT, TLS_PROFILE, tlsSecurity, type ChannelSecurity } from '../../src/transport/channel.js';
import { encodeFrame, FrameDecoder, type JsonObject } from '../../src/wire/frame.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';

/** The owner key raw clients prove unless told otherwise: they all look like one sender. */
export const RAW_OWNER = ephemeralOwnerKey();

/**
 * Speaks the wire protocol by hand, to do what `send` never would (unsafe names, lying
 * headers, extra body bytes). Frames from the receiver are queued and read with next().
 */
export class RawClient {
  private readonly decoder = new FrameDecoder();
  private readonly queue: JsonObject[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private failure: Error | undefined;
  readonly closed: Promise<void>;

  /** The receiver's nonce and ours, once handshake() ran: what token proofs are made over. */
  transcript: ProofTranscript | undefined;

  private constructor(
    readonly socket: Duplex,
    /** What carries the stream: its binding goes into the proofs, its peer fingerprint is the receiver's. */
    readonly security: ChannelSecurity = PLAINTEXT,
  ) {
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const item of this.decoder.push(chunk)) {
          // The receiver sends frames only; anything else is a decoding failure.
          if (item.kind === 'frame') this.queue.push(item.message);
          else this.failure = (item as { error?: Error }).error ?? new Error(`unexpected ${item.kind} from the receiver`);
        }
      } catch (error) {
        this.failure = error as Error;
      }
      this.waiter?.();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.waiter?.();
        resolve();
      }),
    );
  }

  /** Over any duplex byte stream (an in-memory transport, say), in plaintext. */
  static over(stream: Duplex): RawClient {
    return new RawClient(stream);
  }

  /**
   * TLS (as every receiver speaks unless started in plaintext), trusting whatever key it shows;
   * `localAddress` picks the source address (e.g. 127.0.0.2, to look like another machine).
   */
  static async connect(port: number, host = '127.0.0.1', { localAddress, plaintext = false }: { localAddress?: string; plaintext?: boolean } = {}): Promise<RawClient> {
    const socket = net.connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    if (plaintext) return new RawClient(socket);
    const secure = await tlsOver(socket);
    return new RawClient(secure, tlsSecurity(secure, fingerprintOfCertificate(secure.getPeerX509Certificate()!)));
  }

  /** The next frame from the receiver; rejects when the connection ends first or after timeoutMs. */
  async next(timeoutMs = 5000): Promise<JsonObject> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.failure) throw this.failure;
      if (this.ended) throw new Error('connection closed while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame from the receiver within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift()!;
  }

  /** Every frame until the receiver closes the connection (or timeoutMs passes). */
  async rest(timeoutMs = 5000): Promise<JsonObject[]> {
    const frames: JsonObject[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        frames.push(await this.next(Math.max(1, deadline - Date.now())));
      } catch (error) {
        if (this.ended) return frames;
        throw error;
      }
    }
  }

  send(message: JsonObject): void {
    this.socket.write(encodeFrame(message));
  }

  writeRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /**
   * Reads the receiver's hello and answers with ours, proving `owner`, and the token when given
   * (`fields` overrides any field); then reads the `welcome` if one comes (anything else, such
   * as an `error`, stays queued for next()).
   */
  async handshake(fields: JsonObject = {}, owner: OwnerKey = RAW_OWNER, { token }: { token?: string } = {}): Promise<JsonObject> {
    const hello = await this.next();
    if (hello.type !== 'hello') throw new Error(`expected hello, got ${JSON.stringify(hello)}`);
    const transcript: ProofTranscript = { binding: this.security.binding(), receiverNonce: hello.nonce as string, senderNonce: makeNonce() };
    this.transcript = transcript;
    const proof = token === undefined ? {} : { proof: senderProof(token, transcript) };
    this.send({ ...helloFrom(owner, transcript), ...proof, ...fields });
    try {
      const answer = await this.next();
      if (answer.type !== 'welcome') this.queue.unshift(answer);
      else if (token !== undefined && answer.proof !== receiverProof(token, transcript)) throw new Error('the welcome does not prove the token');
    } catch (error) {
      if (!this.ended) throw error;
    }
    return hello;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A sender hello proving `owner` over this connection (the receiver's nonce and the channel's binding). */
export function helloFrom(owner: OwnerKey, { receiverNonce, senderNonce, binding }: ProofTranscript): JsonObject {
  return {
    type: 'hello',
    protocol: 'ft',
    version: PROTOCOL_VERSION,
    nonce: senderNonce,
    owner: owner.publicHex,
    ownerProof: owner.prove(receiverNonce, binding),
    features: ['trailing-hash'],
  };
}

/** TLS over a connected socket, as a sender opens it (any key is taken). */
export async function tlsOver(socket: net.Socket): Promise<tls.TLSSocket> {
  const secure = tls.connect({ socket, ...TLS_PROFILE, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve);
    secure.once('error', reject);
  });
  return secure;
}

/** A connected TLS socket to a receiver on loopback. */
export async function connectTls(port: number, host = '127.0.0.1', options: { localAddress?: string } = {}): Promise<tls.TLSSocket> {
  const socket = net.connect({ port, host, ...options });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return tlsOver(socket);
}

/**
 * On a connected socket (TLS unless plaintext): reads the receiver's hello and answers with a
 * hello proving `owner` (for tests that then drive the socket themselves; the `welcome` is
 * theirs to read).
 */
export async function greetOn(socket: net.Socket, owner: OwnerKey = RAW_OWNER): Promise<void> {
  const decoder = new FrameDecoder();
  const nonce = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      for (const item of decoder.push(chunk)) {
        if (item.kind !== 'frame') continue;
        socket.off('data', onData);
        return resolve(item.message.nonce as string);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
  const binding = socket instanceof tls.TLSSocket ? tlsSecurity(socket).binding() : Buffer.alloc(0);
  socket.write(encodeFrame(helloFrom(owner, { receiverNonce: nonce, senderNonce: makeNonce(), binding })));
}
