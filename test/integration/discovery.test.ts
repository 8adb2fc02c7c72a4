/**
 * Discovery over real UDP sockets, on LOOPBACK ONLY.
 *
 * This machine may have other interfaces (a LAN, a lab network) that tests must never send to.
 * So every receiver listens on 127.0.0.1 (a loopback-only receiver beacons only to
 * 127.255.255.255), every discover/watch/resolve is limited to interface 'lo', and this file
 * uses its own random discovery port so parallel test files never hear each other.
 * As a guard, dgram sends are wrapped for the whole file: a send to a non-loopback address is
 * refused (never reaches the network) and fails the file in afterAll.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DISCOVERY_MARKER, DISCOVERY_VERSION, encodeDatagram, decodeDatagram, QUERY_BYTES } from '../../src/discovery/codec.js';
import { discover, ReceiverWatcher, type FoundReceiver } from '../../src/discovery/discover.js';
import { broadcastTargets, isLoopbackAddress, LOOPBACK_BROADCAST } from '../../src/discovery/interfaces.js';
import { resolveReceiver } from '../../src/discovery/resolve.js';
import { FtError } from '../../src/errors.js';
import { send } from '../../src/transfer/sender.js';
import { serve, type Receiver } from '../../src/transfer/server.js';
import type { ReceiverEvent } from '../../src/transfer/events.js';
import { randomBuffer } from '../helpers/files.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const LO = 'lo';
/** This file's discovery port, picked in beforeAll. */
let P = 0;

// ---------------------------------------------------------------------------------------------
// Guard: no datagram from this test process may leave loopback.

const originalSend = dgram.Socket.prototype.send;
const sentTo: string[] = [];
const refused: string[] = [];

function installSendGuard(): void {
  (dgram.Socket.prototype as any).send = function guardedSend(this: dgram.Socket, ...args: any[]) {
    // send(msg, port, address?, cb?) or send(msg, offset, length, port, address?, cb?)
    const address = args.slice(1).find((a) => typeof a === 'string') as string | undefined;
    if (address !== undefined && !isLoopbackAddress(address) && address !== 'localhost') {
      refused.push(address);
      const callback = args.find((a) => typeof a === 'function');
      const error = new Error(`test guard: refused to send a datagram to non-loopback ${address}`);
      if (callback) process.nextTick(callback, error);
      return;
    }
    sentTo.push(address ?? '(default)');
    return (originalSend as any).apply(this, args);
  };
}

// ---------------------------------------------------------------------------------------------
// Resources, all closed after each test.

const receivers = new Set<Receiver>();
const watchers = new Set<ReceiverWatcher>();
const sockets = new Set<dgram.Socket>();

async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, () => resolve());
  });
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

interface Beacon {
  receiver: Receiver;
  name: string;
  id: string;
  /** TCP port of the transfer service. */
  port: number;
  warnings: string[];
}

/** A receiver on 127.0.0.1 that announces itself on this file's discovery port. */
async function startReceiver(options: { name?: string; token?: string; beaconInterval?: number } = {}): Promise<Beacon> {
  const dir = path.join(await tempDir('ft-disc-'), 'inbox');
  const name = options.name ?? `ft-test-${randomBytes(4).toString('hex')}`;
  const receiver = await serve({
    host: '127.0.0.1',
    port: 0,
    discoveryPort: P,
    dir,
    name,
    token: options.token,
    beaconInterval: options.beaconInterval ?? 3,
  });
  receivers.add(receiver);
  const warnings: string[] = [];
  receiver.on('event', (event: ReceiverEvent) => {
    if (event.type === 'warning') warnings.push(event.message);
  });
  expect(receiver.discoveryError).toBeUndefined();
  expect(receiver.announcer).toBeDefined();
  return { receiver, name, id: receiver.announcer!.info.id, port: receiver.address.port, warnings };
}

async function closeReceiver(receiver: Receiver): Promise<void> {
  receivers.delete(receiver);
  await receiver.close();
}

async function startWatcher(): Promise<ReceiverWatcher> {
  const watcher = await ReceiverWatcher.start({ interface: LO, port: P });
  watchers.add(watcher);
  return watcher;
}

/** A UDP socket bound to one loopback address (rate limits are per source address), recording what it gets. */
async function udpClient(address = '127.0.0.1'): Promise<{ socket: dgram.Socket; received: Buffer[]; send: (bytes: Buffer) => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  sockets.add(socket);
  const received: Buffer[] = [];
  socket.on('message', (bytes) => received.push(bytes));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => resolve());
  });
  const sendTo = (bytes: Buffer) =>
    new Promise<void>((resolve, reject) => socket.send(bytes, P, '127.0.0.1', (error) => (error ? reject(error) : resolve())));
  return { socket, received, send: sendTo };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const newQid = () => randomBytes(8).toString('hex');

/** Waits (bounded) until `check` returns something truthy. */
async function until<T>(check: () => T | undefined | false, what: string, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Answers (decoded) among what a client socket received. */
const answersIn = (received: Buffer[]) => received.map((b) => decodeDatagram(b)).filter((d) => d?.kind === 'answer');

/** A query JSON of exactly `total` bytes (padding adjusted), or unpadded when total is undefined. */
function queryOfSize(qid: string, total?: number): Buffer {
  const base = { m: DISCOVERY_MARKER, v: DISCOVERY_VERSION, kind: 'query', qid };
  if (total === undefined) return Buffer.from(JSON.stringify(base));
  const unpadded = Buffer.byteLength(JSON.stringify({ ...base, pad: '' }));
  const bytes = Buffer.from(JSON.stringify({ ...base, pad: ' '.repeat(total - unpadded) }));
  expect(bytes.length).toBe(total);
  return bytes;
}

function expectFtError(error: unknown, code: string): FtError {
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code).toBe(code);
  return error as FtError;
}

/** The receiver still answers discovery and still takes a file. */
async function expectHealthy(r: Beacon): Promise<void> {
  const found = await discover({ interface: LO, port: P, timeout: 3000, until: (list) => list.some((x) => x.id === r.id) });
  expect(found.find((x) => x.id === r.id)).toMatchObject({ name: r.name, port: r.port, addresses: ['127.0.0.1'] });
  const content = randomBuffer(100_000, r.id);
  const file = path.join(await tempDir('ft-disc-src-'), `after-${r.id}.bin`);
  await writeFile(file, content);
  const report = await send([file], { host: '127.0.0.1', port: r.port, retries: 0, connectTimeoutMs: 5000 });
  expect(report.files.map((f) => f.status)).toEqual(['sent']);
  expect((await readFile(path.join(r.receiver.dir, `after-${r.id}.bin`))).equals(content)).toBe(true);
  expect(r.warnings).toEqual([]);
}

beforeAll(async () => {
  P = await freeUdpPort();
  installSendGuard();
  // The precondition everything below relies on: interface 'lo' means 127.255.255.255 only.
  expect(broadcastTargets({ only: LO, includeLoopback: true }).map((t) => t.broadcast)).toEqual([LOOPBACK_BROADCAST]);
  expect(broadcastTargets({ only: '127.0.0.1', includeLoopback: true }).map((t) => t.broadcast)).toEqual([LOOPBACK_BROADCAST]);
});

afterEach(async () => {
  await Promise.all([...watchers].map((w) => w.close()));
  watchers.clear();
  await Promise.all([...receivers].map((r) => r.close()));
  receivers.clear();
  for (const socket of sockets) socket.close();
  sockets.clear();
});

afterAll(async () => {
  dgram.Socket.prototype.send = originalSend;
  await removeTempDirs();
  // The guard saw the traffic (so it was in place), and all of it stayed on loopback.
  expect(sentTo.length).toBeGreaterThan(0);
  expect(sentTo.filter((a) => !isLoopbackAddress(a) && a !== 'localhost')).toEqual([]);
  expect(refused).toEqual([]);
});

// ---------------------------------------------------------------------------------------------

describe('discover()', () => {
  it('finds a receiver with its name, id, TCP port, auth flag and address, well before the timeout', async () => {
    const r = await startReceiver({ token: 'sesame' });
    const started = Date.now();
    const found = await discover({ interface: LO, port: P, timeout: 5000, until: (list) => list.some((x) => x.name === r.name) });
    const elapsed = Date.now() - started;
    expect(found).toEqual([{ name: r.name, id: r.id, port: r.port, auth: true, addresses: ['127.0.0.1'] }]);
    expect(r.port).not.toBe(P);
    expect(elapsed).toBeLessThan(1000);
  });

  it('lists two receivers with different names, one row each, and auth false without a token', async () => {
    const a = await startReceiver({ name: 'ft-test-alpha', token: 'sesame' });
    const b = await startReceiver({ name: 'ft-test-bravo' });
    // No `until`: all three queries go out and each receiver answers each one.
    const found = await discover({ interface: '127.0.0.1', port: P, timeout: 800 });
    const byName = [...found].sort((x, y) => x.name.localeCompare(y.name));
    expect(byName).toEqual([
      { name: 'ft-test-alpha', id: a.id, port: a.port, auth: true, addresses: ['127.0.0.1'] },
      { name: 'ft-test-bravo', id: b.id, port: b.port, auth: false, addresses: ['127.0.0.1'] },
    ]);
    expect(a.id).not.toBe(b.id);
  });

  it('returns an empty list after the timeout when nobody answers', async () => {
    const started = Date.now();
    expect(await discover({ interface: LO, port: P, timeout: 400 })).toEqual([]);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(350);
    expect(elapsed).toBeLessThan(2000);
  });

  it('ignores a receiver that does not beacon (beacon: false)', async () => {
    const silent = await serve({ host: '127.0.0.1', port: 0, discoveryPort: P, beacon: false, dir: path.join(await tempDir('ft-disc-'), 'inbox') });
    receivers.add(silent);
    expect(silent.announcer).toBeUndefined();
    expect(await discover({ interface: LO, port: P, timeout: 400 })).toEqual([]);
  });

  it('rejects with ABORTED promptly when its signal is aborted', async () => {
    await startReceiver();
    const controller = new AbortController();
    const started = Date.now();
    const pending = discover({ interface: LO, port: P, timeout: 5000, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    const error = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    expectFtError(error, 'ABORTED');
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('rejects an interface that does not exist with USAGE, sending nothing', async () => {
    const before = sentTo.length;
    const error = await discover({ interface: 'ft-no-such-if0', port: P, timeout: 300 }).catch((e: unknown) => e);
    expectFtError(error, 'USAGE');
    expect(sentTo.length).toBe(before);
  });
});

describe('ReceiverWatcher', () => {
  it("emits 'up' when a receiver appears and 'down' soon after it is closed", async () => {
    const watcher = await startWatcher();
    const ups: FoundReceiver[] = [];
    const downs: FoundReceiver[] = [];
    watcher.on('up', (r: FoundReceiver) => ups.push(r));
    watcher.on('down', (r: FoundReceiver) => downs.push(r));

    const r = await startReceiver({ beaconInterval: 0.2 });
    const up = await until(() => ups.find((x) => x.id === r.id), "'up'");
    expect(up).toEqual({ name: r.name, id: r.id, port: r.port, auth: false, addresses: ['127.0.0.1'] });
    expect(watcher.receivers.map((x) => x.id)).toEqual([r.id]);

    // Several more beacons: still one 'up', no 'down'.
    await sleep(700);
    expect(ups.filter((x) => x.id === r.id)).toHaveLength(1);
    expect(downs).toEqual([]);

    await closeReceiver(r.receiver);
    const closedAt = Date.now();
    const down = await until(() => downs.find((x) => x.id === r.id), "'down'", 4000);
    const elapsed = Date.now() - closedAt;
    expect(down.name).toBe(r.name);
    // Three missed 0.2 s intervals plus a second of grace: about 1.6-1.9 s.
    expect(elapsed).toBeGreaterThan(1000);
    expect(elapsed).toBeLessThan(2500);
    expect(watcher.receivers).toEqual([]);
  });

  it('lists a receiver that was already running at once, from its answer to the start-up query', async () => {
    // Beacons every 3 s: its first beacon is gone before the watcher starts, the next one is
    // seconds away, so an 'up' within a second can only come from the watcher's query.
    const r = await startReceiver({ beaconInterval: 3, token: 't' });
    await sleep(300);
    const started = Date.now();
    const watcher = await startWatcher();
    const ups: FoundReceiver[] = [];
    watcher.on('up', (x: FoundReceiver) => ups.push(x));
    const up = await until(() => ups.find((x) => x.id === r.id), "'up'", 2000);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(up).toEqual({ name: r.name, id: r.id, port: r.port, auth: true, addresses: ['127.0.0.1'] });
  });
});

describe('resolveReceiver', () => {
  it('resolves a receiver name by discovery to its address and TCP port', async () => {
    const r = await startReceiver({ name: `ft-test-named-${randomBytes(3).toString('hex')}` });
    // Names that merely start with, or contain, the wanted one are different receivers.
    await startReceiver({ name: `${r.name}-2` });
    await startReceiver({ name: `x${r.name}` });
    const started = Date.now();
    const resolved = await resolveReceiver({ host: r.name, port: undefined }, 9527, { interface: LO, port: P, timeout: 5000 });
    expect(Date.now() - started).toBeLessThan(1500);
    expect(resolved).toEqual({
      host: '127.0.0.1',
      port: r.port,
      via: 'discovery',
      receiver: { name: r.name, id: r.id, port: r.port, auth: false, addresses: ['127.0.0.1'] },
    });
  });

  it('matches the name case-insensitively and keeps an explicit port', async () => {
    const r = await startReceiver({ name: 'ft-test-MixedCase' });
    const resolved = await resolveReceiver({ host: 'FT-TEST-mixedcase', port: 4242 }, 9527, { interface: LO, port: P, timeout: 3000 });
    expect(resolved).toMatchObject({ host: '127.0.0.1', port: 4242, via: 'discovery', receiver: { id: r.id } });
  });

  it('refuses to pick between two receivers with the same name (USAGE, both listed)', async () => {
    const a = await startReceiver({ name: 'ft-test-twin' });
    const b = await startReceiver({ name: 'ft-test-twin' });
    const error = await resolveReceiver({ host: 'ft-test-twin', port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 }).catch(
      (e: unknown) => e,
    );
    const ft = expectFtError(error, 'USAGE');
    expect(ft.message).toContain('2 receivers are named "ft-test-twin"');
    for (const r of [a, b]) {
      expect(ft.message).toContain(r.id);
      expect(ft.message).toContain(`127.0.0.1:${r.port}`);
    }
    const candidates = ft.details.candidates as FoundReceiver[];
    expect(candidates.map((c) => c.id).sort()).toEqual([a.id, b.id].sort());
  });

  it('fails an unknown name with CONNECT_FAILED that explains broadcast/firewall and connecting by address', async () => {
    const other = await startReceiver({ name: 'ft-test-present' });
    const wanted = `ft-test-absent-${randomBytes(3).toString('hex')}`;
    const started = Date.now();
    const error = await resolveReceiver({ host: wanted, port: undefined }, 9527, { interface: LO, port: P, timeout: 600 }).catch(
      (e: unknown) => e,
    );
    expect(Date.now() - started).toBeLessThan(3000);
    const ft = expectFtError(error, 'CONNECT_FAILED');
    expect(ft.message).toContain(`no host or receiver named "${wanted}"`);
    expect(ft.message).toMatch(/firewall/i);
    expect(ft.message).toMatch(/broadcast/i);
    expect(ft.message).toMatch(/connect by address/i);
    expect(ft.message).toContain(`port ${P}`);
    // What was found is listed, to spot a typo.
    expect(ft.message).toContain(other.name);
  });

  it('with no target and exactly one receiver, picks it; with none, fails with CONNECT_FAILED', async () => {
    const none = await resolveReceiver(undefined, 9527, { interface: LO, port: P, timeout: 400 }).catch((e: unknown) => e);
    expect(expectFtError(none, 'CONNECT_FAILED').message).toContain('no receiver found on the network');
    const r = await startReceiver();
    const resolved = await resolveReceiver(undefined, 9527, { interface: LO, port: P, timeout: 600 });
    expect(resolved).toMatchObject({ host: '127.0.0.1', port: r.port, via: 'discovery', receiver: { id: r.id } });
  });

  it('with no target and two receivers, refuses to pick (USAGE)', async () => {
    await startReceiver({ name: 'ft-test-one' });
    await startReceiver({ name: 'ft-test-two' });
    const error = await resolveReceiver(undefined, 9527, { interface: LO, port: P, timeout: 600 }).catch((e: unknown) => e);
    expect(expectFtError(error, 'USAGE').message).toContain('2 receivers found');
  });

  it.each([
    ['127.0.0.1', 4000, 4000],
    ['127.0.0.1', undefined, 9527],
    ['::1', 5000, 5000],
    ['198.51.100.7', undefined, 9527],
  ])('an IP address (%s, port %s) is used as is, without discovery', async (host, port, expected) => {
    const before = sentTo.length;
    const resolved = await resolveReceiver({ host, port }, 9527, { interface: LO, port: P, timeout: 3000 });
    expect(resolved).toEqual({ host, port: expected, via: 'address' });
    expect(sentTo.length).toBe(before);
  });

  it("'localhost' resolves by DNS, without discovery", async () => {
    const before = sentTo.length;
    const resolved = await resolveReceiver({ host: 'localhost', port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 });
    expect(resolved).toEqual({ host: 'localhost', port: 9527, via: 'dns' });
    expect(sentTo.length).toBe(before);
  });
});

describe('the announcer under hostile datagrams', () => {
  it('ignores garbage, oversized and wrong-marker datagrams, then still answers a real query', async () => {
    const r = await startReceiver();
    const client = await udpClient('127.0.0.2');
    const garbage: Buffer[] = [
      ...Array.from({ length: 20 }, (_, i) => randomBytes(1 + i * 37)),
      Buffer.alloc(0),
      // A valid query padded to 2000 bytes: over MAX_DATAGRAM_BYTES, dropped unread.
      queryOfSize(newQid(), 2000),
      // Valid JSON, wrong marker / version / kind.
      Buffer.from(JSON.stringify({ m: 'ft-discovery-x', v: DISCOVERY_VERSION, kind: 'query', qid: newQid(), pad: ' '.repeat(QUERY_BYTES) })),
      Buffer.from(JSON.stringify({ m: DISCOVERY_MARKER, v: 2, kind: 'query', qid: newQid(), pad: ' '.repeat(QUERY_BYTES) })),
      Buffer.from(JSON.stringify({ m: DISCOVERY_MARKER, v: DISCOVERY_VERSION, kind: 'ping', qid: newQid(), pad: ' '.repeat(QUERY_BYTES) })),
      Buffer.from(JSON.stringify([{ m: DISCOVERY_MARKER, v: DISCOVERY_VERSION, kind: 'query', qid: newQid() }])),
      Buffer.from('{"__proto__":' + encodeDatagram({ kind: 'query', qid: newQid() }).toString() + '}'),
      // Well-formed, but not queries: nothing to answer.
      encodeDatagram({ kind: 'announce', name: 'spoof', id: 'aaaaaaaaaaaaaaaa', port: 1, auth: false, interval: 1 }),
      encodeDatagram({ kind: 'answer', qid: newQid(), name: 'spoof', id: 'aaaaaaaaaaaaaaaa', port: 1, auth: false, interval: 1 }),
    ];
    for (const bytes of garbage) await client.send(bytes);
    await sleep(400);
    expect(client.received).toEqual([]);

    // Control: the same socket gets an answer to a real query, so the silence above meant something.
    const qid = newQid();
    await client.send(encodeDatagram({ kind: 'query', qid }));
    await until(() => client.received.length > 0, 'an answer');
    expect(answersIn(client.received)).toEqual([{ kind: 'answer', qid, name: r.name, id: r.id, port: r.port, auth: false, interval: 3 }]);

    await expectHealthy(r);
  });

  it('never answers a query smaller than the answer (no amplification)', async () => {
    const r = await startReceiver();
    const answerBytes = encodeDatagram({ kind: 'answer', qid: newQid(), ...r.receiver.announcer!.info }).length;
    expect(answerBytes).toBeLessThan(QUERY_BYTES);
    const client = await udpClient('127.0.0.3');

    const unpadded = queryOfSize(newQid());
    expect(unpadded.length).toBeLessThan(answerBytes);
    await client.send(unpadded);
    await client.send(queryOfSize(newQid(), answerBytes - 1));
    await sleep(400);
    expect(client.received).toEqual([]);

    // Exactly as large as the answer is enough.
    const qid = newQid();
    await client.send(queryOfSize(qid, answerBytes));
    await until(() => client.received.length > 0, 'an answer');
    expect(client.received.map((b) => b.length)).toEqual([answerBytes]);
    expect(answersIn(client.received)).toMatchObject([{ qid, id: r.id }]);

    await expectHealthy(r);
  });

  it('rate-limits a flood of queries from one source to a handful of answers, per source address', async () => {
    const r = await startReceiver();
    const flooder = await udpClient('127.0.0.4');
    const query = encodeDatagram({ kind: 'query', qid: newQid() });
    for (let i = 0; i < 200; i++) await flooder.send(query);
    await sleep(500);
    const answered = answersIn(flooder.received).length;
    expect(answered).toBeGreaterThanOrEqual(1);
    expect(answered).toBeLessThanOrEqual(6);

    // Another source is not held back by the flooder's limit…
    const other = await udpClient('127.0.0.5');
    await other.send(encodeDatagram({ kind: 'query', qid: newQid() }));
    await until(() => other.received.length > 0, 'an answer to another source', 1000);

    // …and the flooder itself is answered again once its bucket refills (one per second).
    const before = flooder.received.length;
    await sleep(1200);
    expect(flooder.received.length).toBe(before);
    await flooder.send(encodeDatagram({ kind: 'query', qid: newQid() }));
    await until(() => flooder.received.length > before, 'an answer after the refill', 1000);

    await expectHealthy(r);
  });
});

describe('end to end', () => {
  it('sends a file to a receiver found by name', async () => {
    const r = await startReceiver({ name: `ft-test-e2e-${randomBytes(3).toString('hex')}`, token: 'e2e-secret' });
    await startReceiver({ name: 'ft-test-bystander' });
    const target = await resolveReceiver({ host: r.name, port: undefined }, 9527, { interface: LO, port: P, timeout: 5000 });
    expect(target).toMatchObject({ via: 'discovery', host: '127.0.0.1', port: r.port });
    expect(target.receiver?.auth).toBe(true);

    const content = randomBuffer(512 * 1024, 'e2e');
    const file = path.join(await tempDir('ft-disc-src-'), 'photo.bin');
    await writeFile(file, content);
    const report = await send([file], { host: target.host, port: target.port, token: 'e2e-secret', retries: 0 });
    expect(report.files).toMatchObject([{ name: 'photo.bin', status: 'sent', size: content.length }]);
    expect((await readFile(path.join(r.receiver.dir, 'photo.bin'))).equals(content)).toBe(true);
  });
});
