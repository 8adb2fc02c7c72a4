import path from 'node:path';
import { serve, type Receiver, type ReceiverEvent, type ServeOptions } from '../../src/index.js';
import { tempDir } from './temp.js';

type EventName = ReceiverEvent['type'];
type EventOf<T extends EventName> = Extract<ReceiverEvent, { type: T }>;

export interface TestReceiver {
  receiver: Receiver;
  /** The inbox folder (as resolved by the receiver). */
  dir: string;
  port: number;
  /** The full fingerprint of its TLS key (undefined in plaintext): pass it as send()'s `fingerprint`. */
  fingerprint: string | undefined;
  /** Every event so far, in order. */
  events: ReceiverEvent[];
  eventsOf<T extends EventName>(type: T): Array<EventOf<T>>;
  /** Resolves with the first event (past or future) of this type that matches. */
  waitFor<T extends EventName>(type: T, match?: (event: EventOf<T>) => boolean, timeoutMs?: number): Promise<EventOf<T>>;
  close(): Promise<void>;
}

const open = new Set<TestReceiver>();

/** A library receiver on 127.0.0.1, port 0, without beacon, receiving into a fresh temp inbox unless `dir` (or a `store`) is given. */
export async function startReceiver(options: ServeOptions = {}): Promise<TestReceiver> {
  const dir = options.store ? undefined : (options.dir ?? path.join(await tempDir('ft-inbox-'), 'inbox'));
  // No discovery beacon: tests keep every packet on 127.0.0.1.
  const receiver = await serve({ beacon: false, ...options, dir, port: 0, host: '127.0.0.1' });
  const events: ReceiverEvent[] = [];
  receiver.on('event', (event) => events.push(event));
  const eventsOf = <T extends EventName>(type: T) => events.filter((e): e is EventOf<T> => e.type === type);
  const handle: TestReceiver = {
    receiver,
    dir: receiver.dir,
    port: receiver.address.port,
    fingerprint: receiver.fingerprint,
    events,
    eventsOf,
    waitFor(type, match = () => true, timeoutMs = 10_000) {
      const past = eventsOf(type).find(match);
      if (past) return Promise.resolve(past);
      return new Promise((resolve, reject) => {
        const listener = (event: ReceiverEvent) => {
          if (event.type === type && match(event as EventOf<typeof type>)) {
            clearTimeout(timer);
            receiver.off('event', listener);
            resolve(event as EventOf<typeof type>);
          }
        };
        const timer = setTimeout(() => {
          receiver.off('event', listener);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for receiver event "${type}"`));
        }, timeoutMs);
        receiver.on('event', listener);
      });
    },
    async close() {
      open.delete(handle);
      await receiver.close();
    },
  };
  open.add(handle);
  return handle;
}

/** Runs `fn` with a fresh receiver and closes it afterwards, whatever happens. */
export async function withReceiver<T>(options: ServeOptions, fn: (receiver: TestReceiver) => Promise<T>): Promise<T> {
  const receiver = await startReceiver(options);
  try {
    return await fn(receiver);
  } finally {
    await receiver.close();
  }
}

/** Closes every receiver still open (for afterEach). */
export async function closeAllReceivers(): Promise<void> {
  await Promise.all([...open].map((r) => r.close()));
}
