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
import net from 'node:net';
import os from 'node:os';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DISCOVERY_MARKER, DISCOVERY_VERSION, encodeDatagram, decodeDatagram, QUERY_BYTES, type ReceiverInfo } from '../../src/discovery/codec.js';
import { discover, discoverAll, ReceiverWatcher, type FoundReceiver } from '../../src/discovery/discover.js';
import { Announcer } from '../../src/discovery/announcer.js';
import { fingerprintOfPublicKey, shortFingerprint } from '../../src/auth/fingerprint.js';
import { answerAddresses, broadcastTargets, isLoopbackAddress, LOOPBACK_BROADCAST } from '../../src/discovery/interfaces.js';
import { resolveReceiver } from '../../src/discovery/resolve.js';
import { FtError } from '../../src/errors.js';
import { send } from '../../src/sender/sender.js';
import { serve, type Receiver } from '../../src/receiver/server.js';
import type { ReceiverEvent } from '../../src/ingest/events.js';
import { randomBuffer } from '../helpers/files.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { keyConflicts, receiverJson, receiverTable } from '../../src/cli/discover-command.js';

const LO = 'lo';
/** What a loopback-only receiver lists as its addresses: the IPv4 addresses of this host's loopback interface. */
const LOOPBACK_ADDRESSES = answerAddresses({ loopbackOnly: true }).map((a) => a.address);
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
const servers = new Set<net.Server>();

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
  /** Its TLS key's fingerprint (full form), which it announces. */
  fingerprint: string;
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
  return { receiver, name, id: receiver.announcer!.info.id, port: receiver.address.port, fingerprint: receiver.fingerprint!, warnings };
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
  expect(found.find((x) => x.id === r.id)).toMatchObject({ name: r.name, port: r.port, addresses: ['127.0.0.1'], conflict: false });
  const content = randomBuffer(100_000, r.id);
  const file = path.join(await tempDir('ft-disc-src-'), `after-${r.id}.bin`);
  await writeFile(file, content);
  const report = await send([file], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0, connectTimeoutMs: 5000 });
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
  vi.useRealTimers();
  await Promise.all([...watchers].map((w) => w.close()));
  watchers.clear();
  await Promise.all([...receivers].map((r) => r.close()));
  receivers.clear();
  for (const socket of sockets) socket.close();
  sockets.clear();
  await Promise.all([...servers].map((server) => new Promise((resolve) => server.close(resolve))));
  servers.clear();
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
// Impostors and other hosts, emulated on other loopback addresses (127.0.0.x).

/** A TCP listener that only counts the connections it gets (where a fooled sender would go). */
async function tcpTrap(host: string, port = 0): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  servers.add(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => resolve());
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

/** A UDP socket bound to 0.0.0.0:P beside the receivers (SO_REUSEADDR): it hears beacons and queries. */
async function discoveryListener(onDatagram: (bytes: Buffer, from: dgram.RemoteInfo) => void): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  sockets.add(socket);
  socket.on('message', onDatagram);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(P, () => resolve());
  });
  return socket;
}

interface Impostor {
  /** The TCP port it claims (a trap on its own address). */
  trap: { port: number; connections: () => number };
  /** Answers it sent. */
  answers: () => number;
}

/**
 * A hostile host at `address`: it learns the real receiver's id, name and addresses from its
 * beacon, then answers every query at once, with that id, from its own address, claiming its
 * own TCP port (`samePort`: the real receiver's port number, on its own address).
 */
async function startImpostor(
  victim: string,
  options: { address?: string; samePort?: number; addrs?: (real: string[], own: string) => string[]; fingerprint?: string } = {},
): Promise<Impostor & { learned: Promise<ReceiverInfo> }> {
  const address = options.address ?? '127.0.0.2';
  const trap = await tcpTrap(address, options.samePort ?? 0);
  const out = await udpClient(address);
  let copied: ReceiverInfo | undefined;
  let learn!: (info: ReceiverInfo) => void;
  const learned = new Promise<ReceiverInfo>((resolve) => (learn = resolve));
  let answers = 0;
  await discoveryListener((bytes, from) => {
    const datagram = decodeDatagram(bytes);
    if (datagram?.kind === 'announce' && datagram.name === victim && !copied) {
      const { kind: _kind, ...info } = datagram;
      copied = info;
      learn(info);
    }
    if (datagram?.kind === 'query' && copied) {
      const addrs = options.addrs ? options.addrs(copied.addrs, address) : copied.addrs;
      const key = options.fingerprint === undefined ? {} : { fingerprint: options.fingerprint };
      const answer = encodeDatagram({ kind: 'answer', qid: datagram.qid, ...copied, ...key, port: trap.port, addrs });
      answers += 1;
      out.socket.send(answer, from.port, from.address);
    }
  });
  return { trap, answers: () => answers, learned };
}

// ---------------------------------------------------------------------------------------------

describe('discover()', () => {
  it('finds a receiver with its name, id, TCP port, auth flag and address, well before the timeout', async () => {
    const r = await startReceiver({ token: 'sesame' });
    const started = Date.now();
    const found = await discover({ interface: LO, port: P, timeout: 5000, until: (list) => list.some((x) => x.name === r.name) });
    const elapsed = Date.now() - started;
    expect(found).toEqual([{ name: r.name, id: r.id, port: r.port, auth: true, fingerprint: r.fingerprint, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: r.port }], conflict: false }]);
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
      { name: 'ft-test-alpha', id: a.id, port: a.port, auth: true, fingerprint: a.fingerprint, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: a.port }], conflict: false },
      { name: 'ft-test-bravo', id: b.id, port: b.port, auth: false, fingerprint: b.fingerprint, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: b.port }], conflict: false },
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
    expect(up).toEqual({ name: r.name, id: r.id, port: r.port, auth: false, fingerprint: r.fingerprint, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: r.port }], conflict: false });
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
    expect(up).toEqual({ name: r.name, id: r.id, port: r.port, auth: true, fingerprint: r.fingerprint, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: r.port }], conflict: false });
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
      fingerprint: r.fingerprint,
      receiver: { name: r.name, id: r.id, port: r.port, auth: false, fingerprint: r.fingerprint, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: r.port }], conflict: false },
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
      encodeDatagram({ kind: 'announce', name: 'spoof', id: 'aaaaaaaaaaaaaaaa', port: 1, auth: false, interval: 1, addrs: [] }),
      encodeDatagram({ kind: 'answer', qid: newQid(), name: 'spoof', id: 'aaaaaaaaaaaaaaaa', port: 1, auth: false, interval: 1, addrs: [] }),
    ];
    for (const bytes of garbage) await client.send(bytes);
    await sleep(400);
    expect(client.received).toEqual([]);

    // Control: the same socket gets an answer to a real query, so the silence above meant something.
    const qid = newQid();
    await client.send(encodeDatagram({ kind: 'query', qid }));
    await until(() => client.received.length > 0, 'an answer');
    // A loopback-only receiver answers from, and lists, loopback addresses only.
    expect(answersIn(client.received)).toEqual([
      { kind: 'answer', qid, name: r.name, id: r.id, port: r.port, auth: false, interval: 3, fingerprint: r.fingerprint, addrs: LOOPBACK_ADDRESSES },
    ]);

    await expectHealthy(r);
  });

  it('never answers with more bytes than the query had (no amplification), dropping addresses first', async () => {
    const r = await startReceiver();
    const info = r.receiver.announcer!.info;
    const answerBytes = encodeDatagram({ kind: 'answer', qid: newQid(), ...info, addrs: LOOPBACK_ADDRESSES }).length;
    const bareBytes = encodeDatagram({ kind: 'answer', qid: newQid(), ...info, addrs: [] }).length;
    expect(answerBytes).toBeLessThan(QUERY_BYTES);
    expect(bareBytes).toBeLessThan(answerBytes);
    const client = await udpClient('127.0.0.3');

    // Smaller than even an answer without addresses: nothing.
    const unpadded = queryOfSize(newQid());
    expect(unpadded.length).toBeLessThan(bareBytes);
    await client.send(unpadded);
    await client.send(queryOfSize(newQid(), bareBytes - 1));
    await sleep(400);
    expect(client.received).toEqual([]);

    // Room for the answer but not its addresses: an answer without them, never larger than the query.
    const short = newQid();
    await client.send(queryOfSize(short, answerBytes - 1));
    await until(() => client.received.length > 0, 'an answer without addresses');
    expect(client.received.map((b) => b.length)).toEqual([bareBytes]);
    expect(answersIn(client.received)).toMatchObject([{ qid: short, id: r.id, addrs: [] }]);

    // Exactly as large as the whole answer is enough for all of it.
    const qid = newQid();
    await client.send(queryOfSize(qid, answerBytes));
    await until(() => client.received.length > 1, 'a whole answer');
    expect(client.received.map((b) => b.length)).toEqual([bareBytes, answerBytes]);
    expect(answersIn(client.received.slice(1))).toMatchObject([{ qid, id: r.id, addrs: LOOPBACK_ADDRESSES }]);

    await expectHealthy(r);
  });

  it('rate-limits a flood of queries from one source to a handful of answers, per source address', async () => {
    const r = await startReceiver();
    const flooder = await udpClient('127.0.0.4');
    for (let i = 0; i < 200; i++) await flooder.send(encodeDatagram({ kind: 'query', qid: newQid() }));
    await sleep(500);
    const answered = answersIn(flooder.received).length;
    expect(answered).toBeGreaterThanOrEqual(1);
    expect(answered).toBeLessThanOrEqual(6);

    // One query id replayed: answered at most 3 times (a sender's own repeats), however often it comes.
    const replayer = await udpClient('127.0.0.6');
    const replayed = encodeDatagram({ kind: 'query', qid: newQid() });
    for (let i = 0; i < 200; i++) await replayer.send(replayed);
    await sleep(500);
    expect(answersIn(replayer.received).length).toBeGreaterThanOrEqual(1);
    expect(answersIn(replayer.received).length).toBeLessThanOrEqual(3);

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


describe('impostors: one id from an address or port its receiver does not announce, with another key, is a conflict', () => {
  it('an impostor that copies the id (and address list) with its own key and answers first is never merged or picked', async () => {
    const name = `ft-test-victim-${randomBytes(3).toString('hex')}`;
    // Same TCP port number as the real receiver, on its own address: only the address tells them apart.
    const realPort = (await tcpTrap('127.0.0.1')).port;
    await Promise.all([...servers].map((server) => new Promise((resolve) => server.close(resolve))));
    servers.clear();
    const impostor = await startImpostor(name, { samePort: realPort, fingerprint: fingerprintOfPublicKey(randomBytes(32)) });
    const dir = path.join(await tempDir('ft-disc-'), 'inbox');
    const receiver = await serve({ host: '127.0.0.1', port: realPort, discoveryPort: P, dir, name, beaconInterval: 3 });
    receivers.add(receiver);
    const real = receiver.announcer!.info;
    expect((await impostor.learned).id).toBe(real.id);

    const found = await discover({ interface: LO, port: P, timeout: 800 });
    expect(impostor.answers()).toBeGreaterThan(0);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ id: real.id, name, conflict: true });
    expect(found[0]!.claims!.map((c) => `${c.address}:${c.port}`).sort()).toEqual([`127.0.0.1:${realPort}`, `127.0.0.2:${realPort}`]);

    // Several tries (the impostor won 8 of 10 before): every one is refused, naming both addresses.
    // (Each lookup costs the real receiver one answer token for our address: 5, then 1 per second.)
    for (let i = 0; i < 4; i++) {
      const error = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 }).catch((e: unknown) => e);
      const ft = expectFtError(error, 'USAGE');
      expect(ft.message).toContain(`127.0.0.1:${realPort}`);
      expect(ft.message).toContain(`127.0.0.2:${realPort}`);
      expect(ft.message).toMatch(/impostor/);
      expect(ft.message).not.toContain('\n');
    }
    // Without --to, the only receiver found is the conflicting one: refused as well.
    const anyone = await resolveReceiver(undefined, 9527, { interface: LO, port: P, timeout: 600 }).catch((e: unknown) => e);
    expect(expectFtError(anyone, 'USAGE').message).toContain('127.0.0.2');
    expect(impostor.trap.connections()).toBe(0);

    // What `ft discover` prints says so too.
    const table = receiverTable(found);
    expect(table).toMatch(new RegExp(`${name}\\s+127\\.0\\.0\\.[12]:${realPort}, 127\\.0\\.0\\.[12]:${realPort}\\s+CONFLICT`));
    expect(table).toContain(`CONFLICT: id ${real.id}`);
  });

  it('an impostor that lists its own address beside the real ones, on another port, with its own key, conflicts as well', async () => {
    const name = `ft-test-victim-${randomBytes(3).toString('hex')}`;
    const own = fingerprintOfPublicKey(randomBytes(32));
    const impostor = await startImpostor(name, { addrs: (realAddrs, address) => [address, ...realAddrs], fingerprint: own });
    const r = await startReceiver({ name });
    await impostor.learned;
    const found = await discover({ interface: LO, port: P, timeout: 800 });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ id: r.id, conflict: true });
    expect(found[0]!.claims).toEqual(
      expect.arrayContaining([
        { address: '127.0.0.1', port: r.port, name, auth: false, fingerprint: r.fingerprint },
        { address: '127.0.0.2', port: impostor.trap.port, name, auth: false, fingerprint: own },
      ]),
    );
    const error = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 }).catch((e: unknown) => e);
    expectFtError(error, 'USAGE');
    expect(impostor.trap.connections()).toBe(0);
  });

  it('an impostor that copies the id and the key is one more endpoint, which must prove the key: a send meeting it first moves on, and the file reaches only the real receiver', async () => {
    const name = `ft-test-victim-${randomBytes(3).toString('hex')}`;
    // It copies everything, key included; its port only takes a TCP connection and drops it (it cannot do TLS with a key it lacks).
    const impostor = await startImpostor(name, { addrs: (realAddrs, address) => [address, ...realAddrs] });
    const r = await startReceiver({ name });
    await impostor.learned;
    const found = await discover({ interface: LO, port: P, timeout: 800 });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ id: r.id, fingerprint: r.fingerprint, conflict: false });
    expect(found[0]!.endpoints).toEqual(
      expect.arrayContaining([
        { address: '127.0.0.1', port: r.port },
        { address: '127.0.0.2', port: impostor.trap.port },
      ]),
    );
    const resolved = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 });
    const all = [{ host: resolved.host, port: resolved.port }, ...(resolved.fallbacks ?? [])];
    expect(all).toEqual(expect.arrayContaining([{ host: '127.0.0.1', port: r.port }, { host: '127.0.0.2', port: impostor.trap.port }]));
    // The impostor first, whatever order discovery heard them in: its endpoint fails, the next is the real one.
    const [first, ...rest] = [{ host: '127.0.0.2', port: impostor.trap.port }, { host: '127.0.0.1', port: r.port }];
    const file = path.join(await tempDir('ft-disc-src-'), 'for-the-real-one.bin');
    const bytes = randomBuffer(64 * 1024, 'impostor-endpoint');
    await writeFile(file, bytes);
    const events: string[] = [];
    const report = await send([file], {
      ...first!,
      fallbacks: rest,
      discovered: { name, fingerprint: resolved.fingerprint },
      trust: 'new',
      retries: 0,
      onEvent: (event) => {
        if (event.type === 'connected' || event.type === 'retrying') events.push(`${event.type} ${event.host}:${event.port}`);
      },
    });
    expect(report.files.map((f) => f.status)).toEqual(['sent']);
    expect(impostor.trap.connections()).toBe(1);
    expect(events).toEqual([`retrying 127.0.0.1:${r.port}`, `connected 127.0.0.1:${r.port}`]);
    expect(await readFile(path.join(r.receiver.dir, 'for-the-real-one.bin'))).toEqual(bytes);
  });

  it('a flood of answers with invented ids (to push the real receiver out of the list) makes a lookup by name refuse', async () => {
    const name = `ft-test-flooded-${randomBytes(3).toString('hex')}`;
    await startReceiver({ name });
    const out = await udpClient('127.0.0.2');
    let floods = 0;
    await discoveryListener((bytes, from) => {
      const datagram = decodeDatagram(bytes);
      if (datagram?.kind !== 'query') return;
      floods += 1;
      // An impostor under the wanted name (another id), drowned in 300 invented receivers.
      for (let i = 0; i <= 300; i++) {
        const fields = i === 0 ? { name, port: 1 } : { name: `noise-${i}`, port: 1000 + i };
        const answer = encodeDatagram({ kind: 'answer', qid: datagram.qid, id: randomBytes(8).toString('hex'), auth: false, interval: 3, addrs: [], ...fields });
        out.socket.send(answer, from.port, from.address);
      }
    });
    const error = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 }).catch((e: unknown) => e);
    expect(floods).toBeGreaterThan(0);
    expect(expectFtError(error, 'USAGE').message).toMatch(/more than 256 receivers answered discovery, which looks like a flood/);
    // discover() itself lists what it kept, bounded.
    const found = await discover({ interface: LO, port: P, timeout: 600 });
    expect(found.length).toBeLessThanOrEqual(256);
  });

  it('one receiver answering from two addresses it announces together is one entry, not a conflict', async () => {
    // Emulates a host with two interfaces (127.0.0.2 and 127.0.0.3): each answer lists both.
    const id = randomBytes(8).toString('hex');
    const name = `ft-test-multi-${randomBytes(3).toString('hex')}`;
    const trap = await tcpTrap('127.0.0.2');
    const addrs = ['127.0.0.2', '127.0.0.3'];
    const outs = await Promise.all(addrs.map((a) => udpClient(a)));
    await discoveryListener((bytes, from) => {
      const datagram = decodeDatagram(bytes);
      if (datagram?.kind !== 'query') return;
      for (const out of outs) {
        const answer = encodeDatagram({ kind: 'answer', qid: datagram.qid, name, id, port: trap.port, auth: false, interval: 3, addrs });
        out.socket.send(answer, from.port, from.address);
      }
    });
    const found = await discover({ interface: LO, port: P, timeout: 800 });
    expect(found).toHaveLength(1);
    expect(found[0]).toEqual({ name, id, port: trap.port, auth: false, addresses: expect.arrayContaining(addrs), endpoints: expect.arrayContaining(addrs.map((address) => ({ address, port: trap.port }))), conflict: false });
    expect(found[0]!.addresses).toHaveLength(2);
    const resolved = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 });
    expect(resolved).toMatchObject({ via: 'discovery', port: trap.port });
    expect(addrs).toContain(resolved.host);
    expect(receiverTable(found)).not.toContain('CONFLICT');
  });

  it('ReceiverWatcher reports the conflict while the impostor announces, and clears it once it falls silent', async () => {
    const watcher = await startWatcher();
    const conflicts: FoundReceiver[] = [];
    const updates: FoundReceiver[] = [];
    watcher.on('conflict', (r: FoundReceiver) => conflicts.push(r));
    watcher.on('update', (r: FoundReceiver) => updates.push(r));
    const r = await startReceiver({ beaconInterval: 0.2 });
    await until(() => watcher.receivers.find((x) => x.id === r.id), 'the real receiver');
    expect(watcher.receivers.find((x) => x.id === r.id)!.conflict).toBe(false);

    // The impostor announces the copied id from its own address, with a short interval so it is forgotten soon.
    const out = await udpClient('127.0.0.2');
    const info = { ...r.receiver.announcer!.info, interval: 0.2, addrs: LOOPBACK_ADDRESSES, fingerprint: fingerprintOfPublicKey(randomBytes(32)) };
    const forged = encodeDatagram({ kind: 'announce', ...info, port: 1 });
    const announceTo = () => new Promise<void>((resolve) => out.socket.send(forged, P, LOOPBACK_BROADCAST, () => resolve()));
    out.socket.setBroadcast(true);
    await announceTo();
    const conflict = await until(() => conflicts.find((x) => x.id === r.id), "'conflict'");
    expect(conflict.claims!.map((c) => `${c.address}:${c.port}`)).toEqual(expect.arrayContaining([`127.0.0.1:${r.port}`, '127.0.0.2:1']));
    expect(watcher.receivers.find((x) => x.id === r.id)!.conflict).toBe(true);
    // One 'conflict' however often the impostor repeats itself.
    await announceTo();
    await sleep(100);
    expect(conflicts.filter((x) => x.id === r.id)).toHaveLength(1);

    // Silent for 3 × 0.2 s + 1 s: its sighting expires, the real receiver stays, plain again.
    await until(() => updates.find((x) => x.id === r.id && !x.conflict), 'the conflict to clear', 5000);
    expect(watcher.receivers.find((x) => x.id === r.id)).toEqual({ name: r.name, id: r.id, port: r.port, auth: false, fingerprint: r.fingerprint, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: r.port }], conflict: false });
  });
});

describe('key fingerprints: discovery cannot redirect a sender to another key', () => {
  const announcers = new Set<Announcer>();
  afterEach(async () => {
    await Promise.all([...announcers].map((a) => a.close()));
    announcers.clear();
  });
  const newKey = () => fingerprintOfPublicKey(randomBytes(32));
  const uniqueName = (what: string) => `ft-test-${what}-${randomBytes(3).toString('hex')}`;
  /** What the trust store would say: `name` pinned to `key`, nothing else. */
  const pinning = (name: string, key: string) => async (asked: string) => (asked.toLowerCase() === name.toLowerCase() ? key : undefined);

  /** A receiver's discovery side on loopback, announcing a key (as serve() will the identity's), or none (plaintext); its TCP port is a trap. */
  async function keyedReceiver(name: string, fingerprint: string | undefined) {
    const trap = await tcpTrap('127.0.0.1');
    const announcer = await Announcer.start({ name, port: trap.port, auth: false, fingerprint, interval: 3, discoveryPort: P, loopbackOnly: true });
    announcers.add(announcer);
    return { id: announcer.info.id, port: trap.port, fingerprint, trap };
  }

  it('the announcer sends its fingerprint in beacons and answers; discover() reports it, and a malformed one is refused at start', async () => {
    const key = newKey();
    const watcher = await startWatcher();
    const r = await keyedReceiver(uniqueName('keyed'), key);
    const found = await discover({ interface: LO, port: P, timeout: 3000, until: (list) => list.some((x) => x.id === r.id) });
    expect(found).toEqual([expect.objectContaining({ id: r.id, fingerprint: key, conflict: false })]);
    // The watcher lists it from a beacon or an answer: either carries the key.
    expect(await until(() => watcher.receivers.find((x) => x.id === r.id), 'the watcher to list it')).toMatchObject({ fingerprint: key });
    const plain = await keyedReceiver(uniqueName('plain'), undefined);
    const both = await discover({ interface: LO, port: P, timeout: 800 });
    expect(Object.hasOwn(both.find((x) => x.id === plain.id)!, 'fingerprint')).toBe(false);
    for (const bad of [key.toLowerCase(), shortFingerprint(key), key.slice(0, 51)]) {
      await expect(Announcer.start({ name: 'x', port: 1, auth: false, fingerprint: bad, interval: 3, discoveryPort: P, loopbackOnly: true })).rejects.toThrow(/fingerprint/);
    }
  });

  it('a pinned name: a receiver claiming it with another key (its own id) is ignored, the pinned one chosen; without a pin, both are refused', async () => {
    const name = uniqueName('pinned');
    const [key, other] = [newKey(), newKey()];
    const real = await keyedReceiver(name, key);
    const impostor = await keyedReceiver(name, other);
    // Pinned in full, or by the short form's 160 bits (as parseFingerprint gives it); the name in any case.
    for (const pin of [key, key.slice(0, 32)]) {
      const resolved = await resolveReceiver({ host: name.toUpperCase(), port: undefined }, 9527, { interface: LO, port: P, timeout: 3000, pinnedFingerprint: pinning(name, pin) });
      expect(resolved).toMatchObject({ host: '127.0.0.1', port: real.port, via: 'discovery', fingerprint: key, receiver: { id: real.id, fingerprint: key, conflict: false } });
    }
    // No pin (first contact): two keys under one name are never a silent pick; both keys are named.
    const error = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 }).catch((e: unknown) => e);
    const ft = expectFtError(error, 'USAGE');
    expect(ft.message).toContain(`2 receivers are named "${name}"`);
    for (const [r, k] of [[real, key], [impostor, other]] as const) {
      expect(ft.message).toContain(`127.0.0.1:${r.port}`);
      expect(ft.message).toContain(shortFingerprint(k));
    }
    // A store lookup that knows nothing of the name is no pin either.
    const unpinned = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000, pinnedFingerprint: async () => undefined }).catch((e: unknown) => e);
    expectFtError(unpinned, 'USAGE');
    expect(real.trap.connections() + impostor.trap.connections()).toBe(0);
  });

  it('an impostor that copies the id and answers with its own key from its own address: set aside with a pin (not even a conflict), a conflict naming both keys without', async () => {
    const name = uniqueName('copied');
    const [key, other] = [newKey(), newKey()];
    const impostor = await startImpostor(name, { fingerprint: other });
    const real = await keyedReceiver(name, key);
    expect((await impostor.learned).id).toBe(real.id);

    // What discovery heard: the real receiver alone and plain, the impostor's claim kept apart.
    const heard = await discoverAll({ interface: LO, port: P, timeout: 800 }, (info) => info.fingerprint !== key);
    expect(impostor.answers()).toBeGreaterThan(0);
    expect(heard.receivers).toEqual([{ name, id: real.id, port: real.port, auth: false, fingerprint: key, addresses: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port: real.port }], conflict: false }]);
    expect(heard.setAside).toEqual([expect.objectContaining({ id: real.id, fingerprint: other, addresses: ['127.0.0.2'] })]);

    const before = impostor.answers();
    const resolved = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000, pinnedFingerprint: pinning(name, key) });
    expect(impostor.answers()).toBeGreaterThan(before);
    expect(resolved).toMatchObject({ host: '127.0.0.1', port: real.port, fingerprint: key, receiver: { id: real.id, conflict: false } });

    const error = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 }).catch((e: unknown) => e);
    const ft = expectFtError(error, 'USAGE');
    expect(ft.message).toMatch(/impostor/);
    expect(ft.message).toContain(`127.0.0.2:${impostor.trap.port} with key ${shortFingerprint(other)}`);
    expect(ft.message).toContain(`127.0.0.1:${real.port} with key ${shortFingerprint(key)}`);
    expect(impostor.trap.connections()).toBe(0);
  });

  it('the same id, address and port with another key (a forged source address) is a conflict, never picked', async () => {
    const name = uniqueName('forged');
    const [key, other] = [newKey(), newKey()];
    const real = await keyedReceiver(name, key);
    // The forger sends from 127.0.0.1 too, claiming the real receiver's id and port with its own key.
    const forger = await udpClient('127.0.0.1');
    await discoveryListener((bytes, from) => {
      const datagram = decodeDatagram(bytes);
      if (datagram?.kind !== 'query') return;
      const answer = encodeDatagram({ kind: 'answer', qid: datagram.qid, name, id: real.id, port: real.port, auth: false, interval: 3, fingerprint: other, addrs: LOOPBACK_ADDRESSES });
      forger.socket.send(answer, from.port, from.address);
    });
    const found = await discover({ interface: LO, port: P, timeout: 800 });
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ id: real.id, conflict: true });
    expect(found[0]!.claims!.map((c) => c.fingerprint).sort()).toEqual([key, other].sort());
    const error = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 }).catch((e: unknown) => e);
    expect(expectFtError(error, 'USAGE').message).toContain(shortFingerprint(other));
    expect(receiverTable(found)).toMatch(new RegExp(`${name}\\s+127\\.0\\.0\\.1:${real.port}, 127\\.0\\.0\\.1:${real.port}\\s+CONFLICT`));
  });

  it('a pinned name answered only with another key, or with none: RECEIVER_KEY_CHANGED naming both keys and how to accept a change, even when DNS knows the name', async () => {
    const name = uniqueName('changed');
    const [key, other] = [newKey(), newKey()];
    const impostor = await keyedReceiver(name, other);
    for (const lookup of [async () => undefined, async () => ['127.0.0.1']]) {
      const started = Date.now();
      const error = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: LO, port: P, timeout: 1000, lookup, pinnedFingerprint: pinning(name, key) }).catch((e: unknown) => e);
      expect(Date.now() - started).toBeLessThan(5000);
      const ft = expectFtError(error, 'RECEIVER_KEY_CHANGED');
      expect(ft.message).toContain(`receiver "${name}" is pinned with key ${shortFingerprint(key)}`);
      expect(ft.message).toContain(`127.0.0.1:${impostor.port} with key ${shortFingerprint(other)}`);
      expect(ft.message).toContain(`ft trust forget ${name}`);
      expect(ft.message).not.toContain('\n');
      expect(ft.details).toMatchObject({ name, pinned: key, claimed: [other] });
    }

    // A receiver in plaintext under a pinned name: no downgrade by beacon either.
    const plainName = uniqueName('plain');
    await keyedReceiver(plainName, undefined);
    const plain = await resolveReceiver({ host: plainName, port: undefined }, 9527, { interface: LO, port: P, timeout: 1000, pinnedFingerprint: pinning(plainName, key) }).catch((e: unknown) => e);
    expect(expectFtError(plain, 'RECEIVER_KEY_CHANGED').message).toContain('with no key (no encryption)');
    expect(impostor.trap.connections()).toBe(0);
  });

  it('without --to, the only receiver found is refused when its name is pinned to another key', async () => {
    const name = uniqueName('only');
    const [key, other] = [newKey(), newKey()];
    await keyedReceiver(name, other);
    const error = await resolveReceiver(undefined, 9527, { interface: LO, port: P, timeout: 600, pinnedFingerprint: pinning(name, key) }).catch((e: unknown) => e);
    expect(expectFtError(error, 'RECEIVER_KEY_CHANGED').message).toContain(shortFingerprint(other));
    // Pinned to its own key, it is used, with the key it claimed.
    const resolved = await resolveReceiver(undefined, 9527, { interface: LO, port: P, timeout: 600, pinnedFingerprint: pinning(name, other) });
    expect(resolved).toMatchObject({ via: 'discovery', fingerprint: other });
  });

  it('a trust store that cannot be read stops the lookup before any query goes out', async () => {
    const before = sentTo.length;
    const broken = async () => {
      throw new FtError('TRUST_STORE_INVALID', 'known-receivers.json: not JSON');
    };
    const error = await resolveReceiver({ host: uniqueName('x'), port: undefined }, 9527, { interface: LO, port: P, timeout: 600, pinnedFingerprint: broken }).catch((e: unknown) => e);
    expectFtError(error, 'TRUST_STORE_INVALID');
    expect(sentTo.length).toBe(before);
  });

  it('ft discover shows short fingerprints, marks plaintext, and shows a receiver claiming a pinned name with another key as a conflict', async () => {
    const name = uniqueName('shown');
    const plainName = uniqueName('plain');
    const [key, other] = [newKey(), newKey()];
    const real = await keyedReceiver(name, key);
    const impostor = await keyedReceiver(name, other);
    const plain = await keyedReceiver(plainName, undefined);
    const found = await discover({ interface: LO, port: P, timeout: 800 });
    expect(found.map((r) => r.id).sort()).toEqual([real.id, impostor.id, plain.id].sort());
    let lookups = 0;
    const pins = pinning(name, key);
    const conflicts = await keyConflicts(found, async (asked) => {
      lookups += 1;
      return pins(asked);
    });
    expect(lookups).toBe(2);
    expect([...conflicts.keys()]).toEqual([impostor.id]);
    const lines = receiverTable(found, conflicts).split('\n');
    const row = (id: string) => lines.find((line) => line.endsWith(id))!;
    expect(lines[0]).toMatch(/^NAME\s+ADDRESSES\s+PORT\s+TOKEN\s+KEY\s+ID$/);
    expect(row(real.id)).toContain(shortFingerprint(key));
    expect(row(real.id)).not.toContain('CONFLICT');
    expect(row(impostor.id)).toContain(`${shortFingerprint(other)} CONFLICT`);
    expect(row(plain.id)).toContain('none (no encryption)');
    const explained = lines.filter((line) => line.startsWith('CONFLICT:'));
    expect(explained).toHaveLength(1);
    expect(explained[0]).toContain(`"${name}" (id ${impostor.id}) is pinned with key ${shortFingerprint(key)}, but it has key ${shortFingerprint(other)}`);
    expect(explained[0]).toContain(`ft trust forget ${name}`);
    // Without pins: keys shown, no conflict.
    expect(receiverTable(found)).not.toContain('CONFLICT');

    // --json: the full fingerprint, and the conflict with the pinned key.
    const json = (id: string) => JSON.parse(JSON.stringify(receiverJson(found.find((r) => r.id === id)!, conflicts)));
    expect(json(real.id)).toMatchObject({ id: real.id, fingerprint: key, keyConflict: false });
    expect(json(real.id).pinnedFingerprint).toBeUndefined();
    expect(json(impostor.id)).toMatchObject({ fingerprint: other, keyConflict: true, pinnedFingerprint: key });
    expect(Object.hasOwn(json(plain.id), 'fingerprint')).toBe(false);
  });
});

describe('resolveReceiver: a name DNS knows too', () => {
  const dnsSays = (addresses: string[] | undefined) => async () => addresses;

  it('uses the discovered port when the receiver answers from an address DNS gives (the default name is the host name)', async () => {
    const r = await startReceiver({ name: `ft-test-dns-${randomBytes(3).toString('hex')}` });
    const resolved = await resolveReceiver({ host: r.name, port: undefined }, 9527, { interface: LO, port: P, lookup: dnsSays(['127.0.0.1']) });
    expect(resolved).toMatchObject({ host: '127.0.0.1', port: r.port, via: 'discovery', receiver: { id: r.id } });
  });

  it("this host's real name, as the system resolver knows it, goes to the discovered port", async () => {
    // On many systems /etc/hosts maps the host name to 127.0.0.1 or 127.0.1.1: DNS alone would say port 9527.
    const r = await startReceiver({ name: os.hostname() });
    const resolved = await resolveReceiver({ host: os.hostname(), port: undefined }, 9527, { interface: LO, port: P, timeout: 3000 });
    expect(resolved).toMatchObject({ port: r.port, via: 'discovery', receiver: { id: r.id } });
    expect(isLoopbackAddress(resolved.host)).toBe(true);
  });

  it('treats any two addresses of this host as the same host (127.0.1.1 in /etc/hosts, a receiver answering from 127.0.0.1)', async () => {
    const r = await startReceiver({ name: `ft-test-dns-${randomBytes(3).toString('hex')}` });
    const resolved = await resolveReceiver({ host: r.name, port: undefined }, 9527, { interface: LO, port: P, lookup: dnsSays(['127.0.1.1']) });
    expect(resolved).toMatchObject({ host: '127.0.0.1', port: r.port, via: 'discovery' });
  });

  it('falls back to DNS and the default port, with a note, when no receiver of that name answers within the short wait', async () => {
    await startReceiver({ name: 'ft-test-someone-else' });
    const started = Date.now();
    const resolved = await resolveReceiver({ host: 'nas.example', port: undefined }, 9527, { interface: LO, port: P, lookup: dnsSays(['198.51.100.7']) });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(resolved).toMatchObject({ host: 'nas.example', port: 9527, via: 'dns' });
    expect(resolved.note).toContain('no receiver named "nas.example" answered discovery; using DNS (198.51.100.7) and port 9527');
  });

  it('refuses a discovered receiver where DNS points elsewhere (an impostor taking over a host name)', async () => {
    const r = await startReceiver({ name: `ft-test-dns-${randomBytes(3).toString('hex')}` });
    const error = await resolveReceiver({ host: r.name, port: undefined }, 9527, { interface: LO, port: P, lookup: dnsSays(['198.51.100.7']) }).catch(
      (e: unknown) => e,
    );
    const ft = expectFtError(error, 'USAGE');
    expect(ft.message).toContain(`127.0.0.1:${r.port}`);
    expect(ft.message).toContain('DNS says 198.51.100.7');
  });

  it('a host name with an explicit port goes to DNS without discovery', async () => {
    const before = sentTo.length;
    const resolved = await resolveReceiver({ host: 'nas.example', port: 4242 }, 9527, { interface: LO, port: P, lookup: dnsSays(['198.51.100.7']) });
    expect(resolved).toEqual({ host: 'nas.example', port: 4242, via: 'dns' });
    expect(sentTo.length).toBe(before);
  });
});


describe('a step of the wall clock changes nothing (monotonic clock)', () => {
  const HOUR = 3_600_000;
  /** Fakes Date only (timers and performance.now() stay real) and moves it by `ms`. */
  const stepClock = (ms: number) => {
    vi.useFakeTimers({ toFake: ['Date'], shouldAdvanceTime: true });
    vi.setSystemTime(Date.now() + ms);
  };

  it('the announcer answers again a second after its rate limit, although the clock went back an hour', async () => {
    const r = await startReceiver();
    const asker = await udpClient('127.0.0.7');
    // Use up this source's answers: distinct query ids, one token each.
    for (let i = 0; i < 20; i++) await asker.send(encodeDatagram({ kind: 'query', qid: newQid() }));
    await sleep(300);
    const before = asker.received.length;
    expect(before).toBeGreaterThanOrEqual(1);
    expect(before).toBeLessThanOrEqual(6);
    stepClock(-HOUR);
    await sleep(1200);
    await asker.send(encodeDatagram({ kind: 'query', qid: newQid() }));
    await until(() => asker.received.length > before, 'an answer after the refill, despite the step', 2000);
    await expectHealthy(r);
  });

  it("ReceiverWatcher: a forward step does not mark receivers 'down'; after a backward step a closed one still goes 'down'", async () => {
    const watcher = await startWatcher();
    const downs: FoundReceiver[] = [];
    watcher.on('down', (x: FoundReceiver) => downs.push(x));
    const r = await startReceiver({ beaconInterval: 0.2 });
    await until(() => watcher.receivers.find((x) => x.id === r.id), 'the receiver');

    stepClock(HOUR);
    await sleep(1000);
    expect(downs).toEqual([]);
    expect(watcher.receivers.map((x) => x.id)).toEqual([r.id]);

    vi.setSystemTime(Date.now() - 2 * HOUR);
    await closeReceiver(r.receiver);
    // Three missed 0.2 s intervals plus a second of grace: about 1.6-1.9 s, not an hour.
    await until(() => downs.find((x) => x.id === r.id), "'down'", 4000);
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
