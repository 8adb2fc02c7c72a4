import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ephemeralOwnerKey, type OwnerKey } from '../../src/auth/owner-key.js';
import { encodeFrame, FrameDecoder, type JsonObject } from '../../src/wire/frame.js';

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

  private constructor(readonly socket: Duplex) {
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

  /** Over any duplex byte stream (an in-memory transport, say). */
  static over(stream: Duplex): RawClient {
    return new RawClient(stream);
  }

  /** `localAddress` picks the source address (e.g. 127.0.0.2, to look like another machine). */
  static async connect(port: number, host = '127.0.0.1', { localAddress }: { localAddress?: string } = {}): Promise<RawClient> {
    const socket = net.connect({ port, host, localAddress });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawClient(socket);
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
   * Reads the receiver's hello and answers with ours, proving `owner` (no token unless `fields`
   * adds a proof).
   */
  async handshake(fields: JsonObject = {}, owner: OwnerKey = RAW_OWNER): Promise<JsonObject> {
    const hello = await this.next();
    if (hello.type !== 'hello') throw new Error(`expected hello, got ${JSON.stringify(hello)}`);
    this.send({ ...helloFrom(owner, hello.nonce as string), ...fields });
    return hello;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** A protocol-3 sender hello proving `owner` over the receiver's nonce. */
export function helloFrom(owner: OwnerKey, nonce: string): JsonObject {
  return { type: 'hello', protocol: 'ft', version: 4, owner: owner.publicHex, ownerProof: owner.prove(nonce), features: ['trailing-hash'] };
}

/**
 * On a bare socket: reads the receiver's hello and answers with a protocol-3 hello proving
 * `owner` (for tests that then drive the socket themselves).
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
  socket.write(encodeFrame(helloFrom(owner, nonce)));
}
