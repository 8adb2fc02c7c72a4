/**
 * The end of a session over a transport whose streams never emit 'close' (a Duplex may be made
 * with emitClose: false): what the connection held is given back when its session ends, not
 * only on 'close'.
 */
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, expect, it, vi } from 'vitest';
import { fileSystemOf } from '../../src/file-system.js';
import { serve, type Receiver } from '../../src/receiver/server.js';
import { memoryTransport } from '../helpers/memory-transport.js';
import { RawClient } from '../helpers/raw-client.js';

const receivers: Receiver[] = [];

/** Sessions still running (the receiver's own count; no event marks a clean end). */
function liveSessions(receiver: Receiver): number {
  return (receiver as unknown as { sessions: Set<unknown> }).sessions.size;
}
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

it('connections that ended free their slot even if their stream never emits close: the ninth and tenth from one address are greeted', async () => {
  // Regression: the slot (and the session's timers) were let go only on 'close'; after eight
  // finished connections from one address, every later one was turned away BUSY.
  const transport = memoryTransport({ emitClose: false });
  const receiver = await serve({ dir: '/inbox', fs: fileSystemOf(createFsFromVolume(new Volume())), listen: transport.listen, beacon: false, port: 0 });
  receivers.push(receiver);
  for (let i = 0; i < 10; i++) {
    const client = RawClient.over(transport.dial('198.51.100.4'));
    expect(await client.handshake()).toMatchObject({ type: 'hello' });
    client.send({ type: 'bye' });
    await client.closed;
    // The receiver's side finishes its session a moment after the client sees the end.
    await vi.waitFor(() => expect(liveSessions(receiver)).toBe(0), { timeout: 10_000 });
  }
});
