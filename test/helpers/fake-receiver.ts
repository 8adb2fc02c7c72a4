/**
 * A receiver written by hand on net.createServer and the wire codec, to see exactly what a
 * sender puts on the wire and to misbehave in ways `serve` never would (stop reading, …).
 * Listens on 127.0.0.1 only.
 */
import net from 'node:net';
import { encodeFrame, FrameDecoder, type JsonObject } from '../../src/wire/frame.js';

export interface FakeSession {
  readonly socket: net.Socket;
  /** Every byte the sender has sent so far, exactly as it arrived. */
  received(): Buffer;
  /** Raw body bytes seen so far (after body frames). */
  readonly bodyBytes: number;
  /** The next frame from the sender; rejects on close or after timeoutMs. */
  next(timeoutMs?: number): Promise<JsonObject>;
  send(message: JsonObject): void;
  /** Stops reading from the socket for good (the kernel buffers fill, the sender blocks). */
  stopReading(): void;
}

export interface FakeReceiver {
  readonly port: number;
  readonly sessions: FakeSession[];
  close(): Promise<void>;
}

const open = new Set<FakeReceiver>();

export async function closeAllFakeReceivers(): Promise<void> {
  await Promise.all([...open].map((fake) => fake.close()));
}

/** Starts a fake receiver; `onSession` runs for every connection (errors in it close that connection). */
export async function startFakeReceiver(onSession: (session: FakeSession) => Promise<void> | void): Promise<FakeReceiver> {
  const sockets = new Set<net.Socket>();
  const sessions: FakeSession[] = [];
  const server = net.createServer((socket) => {
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
