/**
 * Impersonation (issue 11, "Tests"): every way of standing in for a receiver ends with nothing
 * of the file sent (no `file` header, no name, no byte of content) and a clear error. Real
 * sockets, loopback only: receivers and fakes listen on 127.0.0.1, discovery runs on interface
 * 'lo' on this file's own UDP port, and a guard refuses any datagram to another address.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FtError, send, shortFingerprint, type SendOptions } from '../../src/index.js';
import { generateIdentity, type Identity } from '../../src/auth/identity.js';
import { receiverProof, verifySenderProof, type ProofTranscript } from '../../src/auth/token-proof.js';
import { Announcer } from '../../src/discovery/announcer.js';
import { isLoopbackAddress } from '../../src/discovery/interfaces.js';
import { resolveReceiver } from '../../src/discovery/resolve.js';
import { pinnedByName } from '../../src/cli/trust-command.js';
import { TLS_PROFILE, tlsSecurity } from '../../src/transport/channel.js';
import { FrameDecoder, type JsonObject } from '../../src/wire/frame.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import { closeAllFakeReceivers, startFakeReceiver, type FakeReceiver } from '../helpers/fake-receiver.js';
import { listFiles, partialBytes, randomBuffer } from '../helpers/files.js';
import { helloFrom, RawClient } from '../helpers/raw-client.js';
import { ephemeralOwnerKey } from '../../src/auth/owner-key.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { closeAllSwitchProxies, startSwitchProxy } from '../helpers/switch-proxy.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { rejection } from '../helpers/rejection.js';

const TOKEN = 'the token only the real receiver and its senders know';

// ---------------------------------------------------------------------------------------------
// Guard: no datagram from this file may leave loopback (discovery tests below).
const originalSend = dgram.Socket.prototype.send;
const refusedDatagrams: string[] = [];
beforeAll(() => {
  (dgram.Socket.prototype as any).send = function guardedSend(this: dgram.Socket, ...args: any[]) {
    const address = args.slice(1).find((a) => typeof a === 'string') as string | undefined;
    if (address !== undefined && !isLoopbackAddress(address)) {
      refusedDatagrams.push(address);
      const callback = args.find((a) => typeof a === 'function');
      if (callback) process.nextTick(callback, new Error(`test guard: no datagram to ${address}`));
      return;
    }
    return (originalSend as any).apply(this, args);
  };
});

const cleanups = new Set<() => Promise<void> | void>();
afterEach(async () => {
  await Promise.all([...cleanups].map((c) => c()));
  cleanups.clear();
  await closeAllSwitchProxies();
  await closeAllFakeReceivers();
  await closeAllReceivers();
});
afterAll(async () => {
  dgram.Socket.prototype.send = originalSend;
  await removeTempDirs();
  expect(refusedDatagrams).toEqual([]);
});

// ---------------------------------------------------------------------------------------------
// Helpers

/** A file with content and a name that are easy to look for in what an impostor got. */
async function secretFile(bytes = 64 * 1024): Promise<{ file: string; name: string; content: Buffer }> {
  const name = `secret-${randomBytes(4).toString('hex')}.bin`;
  const content = Buffer.concat([Buffer.from(`SECRET-CONTENT-${name}-`), randomBuffer(bytes, name)]);
  const file = path.join(await tempDir('ft-imp-src-'), name);
  await writeFile(file, content);
  return { file, name, content };
}

async function trustFile(): Promise<string> {
  return path.join(await tempDir('ft-imp-trust-'), 'known-receivers.json');
}

const base = (port: number): SendOptions => ({ host: '127.0.0.1', port, retries: 0, connectTimeoutMs: 10_000, idleTimeoutMs: 15_000 });

/** Every frame in a byte stream a sender wrote (body bytes skipped). */
function framesIn(bytes: Buffer): JsonObject[] {
  const frames: JsonObject[] = [];
  for (const item of new FrameDecoder().push(bytes)) {
    if (item.kind === 'frame') frames.push(item.message);
    if (item.kind === 'error') break;
  }
  return frames;
}

/** Nothing of the file in what a fake received: no header, not its name, not its content. */
function expectNothingOf(received: Buffer, secret: { name: string; content: Buffer }): void {
  expect(framesIn(received).filter((f) => f.type === 'file' || f.type === 'body')).toEqual([]);
  expect(received.includes(Buffer.from(secret.name))).toBe(false);
  expect(received.includes(secret.content.subarray(0, 64))).toBe(false);
}

/** A real receiver got nothing: no file started, nothing in its inbox (partials included). */
async function expectUntouched(receiver: TestReceiver): Promise<void> {
  expect(receiver.eventsOf('started')).toEqual([]);
  expect(receiver.eventsOf('received')).toEqual([]);
  expect(await listFiles(receiver.dir)).toEqual([]);
  expect(await partialBytes(receiver.dir)).toBe(0);
}

let otherIdentity: Promise<Identity> | undefined;
/** A second key, for impostors and men in the middle (a receiver's default key is its own per serve()). */
const impostorIdentity = () => (otherIdentity ??= generateIdentity());

// ---------------------------------------------------------------------------------------------

describe('a second receiver with another key on a pinned address', () => {
  it('the first send pins; a real receiver with another key at that host:port is refused with RECEIVER_KEY_CHANGED and gets nothing', async () => {
    const real = await startReceiver();
    const impostor = await startReceiver({ identity: await impostorIdentity() });
    expect(impostor.fingerprint).not.toBe(real.fingerprint);
    const address = await startSwitchProxy(real.port);
    const pins = await trustFile();

    const first = await secretFile();
    const report = await send([first.file], { ...base(address.port), trust: 'new', trustFile: pins });
    expect(report.files.map((f) => f.status)).toEqual(['sent']);

    // The address now answers with the impostor (same host, same port).
    address.target = impostor.port;
    const second = await secretFile();
    for (const trust of ['pinned', 'new'] as const) {
      // Even 'new' (trust a first contact) does not override a pin.
      const error = await rejection(send([second.file], { ...base(address.port), trust, trustFile: pins }));
      expect(error.code).toBe('RECEIVER_KEY_CHANGED');
      expect(error.message).toContain(shortFingerprint(impostor.fingerprint!));
      expect(error.message).toContain(shortFingerprint(real.fingerprint!));
      expect(error.message).toMatch(/nothing was sent/);
      expect(error.message).toContain('ft trust forget');
    }
    await expectUntouched(impostor);
    expect(address.accepted).toBe(3);
  });

  it('a hand-made impostor on the pinned address never receives a byte of ours inside TLS', async () => {
    const real = await startReceiver();
    const impostor = await startFakeReceiver((session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: randomBytes(16).toString('hex'), name: 'real', features: ['trailing-hash'] });
    });
    const address = await startSwitchProxy(real.port);
    const pins = await trustFile();
    await send([(await secretFile()).file], { ...base(address.port), trust: 'new', trustFile: pins });

    address.target = impostor.port;
    const secret = await secretFile();
    const error = await rejection(send([secret.file], { ...base(address.port), trustFile: pins }));
    expect(error.code).toBe('RECEIVER_KEY_CHANGED');
    expect(impostor.sessions).toHaveLength(1);
    // Not even our hello (it would carry our owner key): the key is checked before anything is written.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(impostor.sessions[0]!.received().length).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('an impostor claiming a pinned name through discovery', () => {
  let P = 0;
  beforeAll(async () => {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    P = socket.address().port;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  });

  /** A serve() receiver on 127.0.0.1 announcing itself (loopback only) on this file's discovery port. */
  async function announced(name: string, options: { identity?: Identity } = {}): Promise<TestReceiver> {
    return startReceiver({ beacon: true, name, discoveryPort: P, beaconInterval: 3, ...options });
  }

  /** What `ft send --to NAME` does: resolve by discovery with the trust file's name pins, then send with `discovered`. */
  async function sendToName(name: string, file: string, pins: string, trust: SendOptions['trust'] = 'pinned') {
    const target = await resolveReceiver({ host: name, port: undefined }, 9527, { interface: 'lo', port: P, timeout: 3000, pinnedFingerprint: pinnedByName(pins) });
    const discovered = target.receiver ? { name: target.receiver.name, fingerprint: target.fingerprint } : undefined;
    return send([file], { ...base(target.port), host: target.host, trust, trustFile: pins, discovered });
  }

  const uniqueName = () => `ft-imp-${randomBytes(3).toString('hex')}`;

  it('pinned by name: an impostor announcing that name with its own key is refused (RECEIVER_KEY_CHANGED) and never connected to', async () => {
    const name = uniqueName();
    const pins = await trustFile();
    const real = await announced(name);
    const first = await sendToName(name, (await secretFile()).file, pins, 'new');
    expect(first.files.map((f) => f.status)).toEqual(['sent']);

    await real.close();
    const impostor = await announced(name, { identity: await impostorIdentity() });
    const error = await rejection(sendToName(name, (await secretFile()).file, pins));
    expect(error.code).toBe('RECEIVER_KEY_CHANGED');
    expect(error.message).toContain(shortFingerprint(impostor.fingerprint!));
    expect(impostor.eventsOf('connection')).toEqual([]);
    await expectUntouched(impostor);

  });

  it('both claim the pinned name: only the receiver with the pinned key is used', async () => {
    const name = uniqueName();
    const pins = await trustFile();
    const identity = await generateIdentity();
    const real = await announced(name, { identity });
    await sendToName(name, (await secretFile()).file, pins, 'new');
    const impostor = await announced(name, { identity: await impostorIdentity() });
    for (let i = 0; i < 3; i += 1) {
      const secret = await secretFile();
      const report = await sendToName(name, secret.file, pins);
      expect(report.files.map((f) => f.status)).toEqual(['sent']);
      expect(await listFiles(real.dir)).toContain(secret.name);
    }
    expect(impostor.eventsOf('connection')).toEqual([]);
    await expectUntouched(impostor);
  });

  it("an announcement that copies the pinned name AND the pinned key, pointing at an impostor's port: the TLS key gives it away (with a pin, and on first contact)", async () => {
    const name = uniqueName();
    const real = await announced(name);
    const impostor = await startReceiver({ identity: await impostorIdentity() });
    const pinned = await trustFile();
    await sendToName(name, (await secretFile()).file, pinned, 'new');
    await real.close();
    // The impostor's beacon lies: the real receiver's name and fingerprint, its own port.
    const liar = await Announcer.start({ name, port: impostor.port, auth: false, fingerprint: real.fingerprint, interval: 3, discoveryPort: P, loopbackOnly: true });
    cleanups.add(() => liar.close());

    for (const [pins, trust] of [
      [pinned, 'pinned'],
      [await trustFile(), 'new'], // first contact, trusting new keys: the beacon's key is still checked
    ] as const) {
      const error = await rejection(sendToName(name, (await secretFile()).file, pins, trust));
      expect(error.code).toBe('RECEIVER_KEY_CHANGED');
      expect(error.message).toContain(shortFingerprint(impostor.fingerprint!));
      expect(error.message).toContain(shortFingerprint(real.fingerprint!));
    }
    await expectUntouched(impostor);
  });
});

// ---------------------------------------------------------------------------------------------

/**
 * A man in the middle on loopback that terminates TLS on both sides: its own certificate to the
 * sender, its own TLS connection to the real receiver. It sees everything the sender writes in
 * the clear (recorded by the fake), which is what the tests look into.
 */
interface Mitm {
  fake: FakeReceiver;
  /** Per connection: the binding of its leg to the real receiver. */
  upstreamBindings: Buffer[];
  /** Every decrypted byte from the sender, over all connections. */
  fromSender(): Buffer;
}

/**
 * Relays everything unchanged, both ways (hello, proofs, welcome, files), or, with `resign`,
 * swaps the sender's owner proof (bound to the sender's leg, so the receiver refuses it
 * relayed) for one of its own key over its leg to the receiver, then relays the rest.
 */
async function startRelayMitm(realPort: number, { resign = false } = {}): Promise<Mitm> {
  const upstreamBindings: Buffer[] = [];
  const fake = await startFakeReceiver(
    async (session) => {
      const upstream = await RawClient.connect(realPort);
      const raw = upstream.socket;
      upstreamBindings.push(upstream.security.binding());
      raw.on('error', () => session.socket.destroy());
      raw.on('close', () => session.socket.destroy());
      session.socket.on('close', () => upstream.destroy());
      const relay = () => {
        raw.on('data', (chunk: Buffer) => session.socket.write(chunk));
        session.socket.on('data', (chunk: Buffer) => raw.write(chunk));
      };
      if (!resign) return relay();
      const hello = await upstream.next();
      session.send(hello);
      const senderHello = await session.next();
      const transcript = { binding: upstream.security.binding(), receiverNonce: hello.nonce as string, senderNonce: senderHello.nonce as string };
      upstream.send({ ...senderHello, ...helloFrom(MITM_OWNER, transcript) });
      relay();
    },
    { identity: await impostorIdentity() },
  );
  return { fake, upstreamBindings, fromSender: () => Buffer.concat(fake.sessions.map((s) => s.received())) };
}

const MITM_OWNER = ephemeralOwnerKey();

async function connectTlsTo(port: number): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, ...TLS_PROFILE, rejectUnauthorized: false, servername: '' });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

describe('a TLS man in the middle that terminates both sides', () => {
  it('with a pin (or --fingerprint) and no token: refused before any frame (RECEIVER_KEY_CHANGED)', async () => {
    const real = await startReceiver();
    const mitm = await startRelayMitm(real.port);
    const secret = await secretFile();
    const pins = await trustFile();
    await send([(await secretFile()).file], { ...base(real.port), trust: 'new', trustFile: pins });
    // The pin is for the real address; the MITM is met at its own: --fingerprint is what pins it there.
    const error = await rejection(send([secret.file], { ...base(mitm.fake.port), fingerprint: shortFingerprint(real.fingerprint!) }));
    expect(error.code).toBe('RECEIVER_KEY_CHANGED');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(mitm.fromSender().length).toBe(0);
    // Only the first (direct) send reached the real receiver.
    expect(real.eventsOf('received')).toHaveLength(1);
    expect(await listFiles(real.dir)).toHaveLength(1);
  });

  it('the documented limit of first contact: with trust "new", no pin and no token, the man in the middle wins and reads the file', async () => {
    const real = await startReceiver();
    // Relayed unchanged, the sender's owner proof (bound to its own leg) is refused by the
    // receiver; a MITM that proves an owner key of its own instead is taken as an open sender.
    const relayed = await startRelayMitm(real.port);
    expect((await rejection(send([(await secretFile()).file], { ...base(relayed.fake.port), trust: 'new' }))).code).toBe('AUTH_FAILED');
    const mitm = await startRelayMitm(real.port, { resign: true });
    const secret = await secretFile();
    const report = await send([secret.file], { ...base(mitm.fake.port), trust: 'new' });
    expect(report.files.map((f) => f.status)).toEqual(['sent']);
    // The file reached the real receiver, through a party that read it all in the clear.
    expect(await listFiles(real.dir)).toEqual([secret.name]);
    const seen = mitm.fromSender();
    expect(framesIn(seen).find((f) => f.type === 'file')).toMatchObject({ filename: secret.name });
    expect(seen.includes(secret.content)).toBe(true);
  });

  it('with a token and no pin, relaying everything unchanged: the receiver refuses the relayed sender proof, nothing is sent', async () => {
    const real = await startReceiver({ token: TOKEN });
    const mitm = await startRelayMitm(real.port);
    for (const trust of ['pinned', 'new'] as const) {
      const secret = await secretFile();
      const error = await rejection(send([secret.file], { ...base(mitm.fake.port), token: TOKEN, trust }));
      expect(['AUTH_FAILED', 'RECEIVER_NOT_AUTHENTIC']).toContain(error.code);
      expectNothingOf(mitm.fromSender(), secret);
    }
    // The sender's proof did reach the receiver, which refused it.
    const hellos = framesIn(mitm.fromSender()).filter((f) => f.type === 'hello');
    expect(hellos).toHaveLength(2);
    expect(hellos.every((h) => typeof h.proof === 'string')).toBe(true);
    expect(real.eventsOf('connection-error').map((e) => e.code)).toEqual(['AUTH_FAILED', 'AUTH_FAILED']);
    await expectUntouched(real);
    expect(mitm.fromSender().includes(Buffer.from(TOKEN))).toBe(false);
  });

  /**
   * The man in the middle answers the sender itself, with the welcome proof the real receiver
   * gives on the other leg. (A real receiver never gives one to it, since it cannot prove the
   * token there; the test, which knows the token, makes the very proof the receiver would, over
   * the MITM's leg to it: the best a relaying MITM could ever hold.)
   */
  async function startAnsweringMitm(realPort: number, leg: 'upstream' | 'sender'): Promise<Mitm> {
    const upstreamBindings: Buffer[] = [];
    const fake = await startFakeReceiver(
      async (session) => {
        const upstream = await RawClient.connect(realPort);
        cleanups.add(() => upstream.destroy());
        session.socket.once('close', () => upstream.destroy());
        upstreamBindings.push(upstream.security.binding());
        const hello = await upstream.next();
        session.send(hello);
        const senderHello = await session.next();
        const transcript: ProofTranscript = {
          binding: leg === 'upstream' ? upstream.security.binding() : session.security.binding(),
          receiverNonce: hello.nonce as string,
          senderNonce: senderHello.nonce as string,
        };
        session.send({ type: 'welcome', proof: receiverProof(TOKEN, transcript) });
        await session.next(10_000); // what the sender says next is recorded; then the line drops
        session.socket.destroy();
      },
      { identity: await impostorIdentity() },
    );
    return { fake, upstreamBindings, fromSender: () => Buffer.concat(fake.sessions.map((s) => s.received())) };
  }

  it("with a token and no pin, answering the sender with the real receiver's welcome proof from the other leg: the sender refuses it (RECEIVER_NOT_AUTHENTIC)", async () => {
    const real = await startReceiver({ token: TOKEN });
    const mitm = await startAnsweringMitm(real.port, 'upstream');
    const secret = await secretFile();
    const error = await rejection(send([secret.file], { ...base(mitm.fake.port), token: TOKEN }));
    expect(error.code).toBe('RECEIVER_NOT_AUTHENTIC');
    expect(error.message).toMatch(/nothing was sent/);
    expectNothingOf(mitm.fromSender(), secret);
    await expectUntouched(real);
  });

  it('control: the same proof made over the sender\'s own leg is accepted (so only the channel binding stops the relay)', async () => {
    const real = await startReceiver({ token: TOKEN });
    const mitm = await startAnsweringMitm(real.port, 'sender');
    const secret = await secretFile();
    await rejection(send([secret.file], { ...base(mitm.fake.port), token: TOKEN }));
    expect(framesIn(mitm.fromSender()).find((f) => f.type === 'file')).toMatchObject({ filename: secret.name });
  });
});

// ---------------------------------------------------------------------------------------------

describe('a receiver that accepts any token proof', () => {
  const proofs: Array<[string, (sent: JsonObject, transcript: ProofTranscript) => string | undefined]> = [
    ['no proof', () => undefined],
    ['a random proof', () => randomBytes(32).toString('hex')],
    ['an empty proof', () => ''], // malformed: BAD_MESSAGE
    ["the sender's own proof, reflected", (sent) => sent.proof as string],
    ['a proof made with the token but over no channel binding', (_sent, transcript) => receiverProof(TOKEN, { ...transcript, binding: Buffer.alloc(0) })],
  ];
  for (const [what, proofOf] of proofs) {
    it(`welcome with ${what} → RECEIVER_NOT_AUTHENTIC, no header sent`, async () => {
      const fake = await startFakeReceiver(async (session) => {
        const nonce = randomBytes(16).toString('hex');
        session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'hmac-sha256', nonce, name: 'fake', features: ['trailing-hash'] });
        const hello = await session.next();
        const proof = proofOf(hello, { binding: session.security.binding(), receiverNonce: nonce, senderNonce: hello.nonce as string });
        session.send(proof === undefined ? { type: 'welcome' } : { type: 'welcome', proof });
        await session.next(10_000).catch(() => undefined);
      });
      const secret = await secretFile();
      // First contact (no pin): the token proof is all that vouches for the receiver.
      const error = await rejection(send([secret.file], { ...base(fake.port), token: TOKEN }));
      expect(error.code).toBe(what === 'an empty proof' ? 'BAD_MESSAGE' : 'RECEIVER_NOT_AUTHENTIC');
      const received = fake.sessions[0]!.received();
      expect(framesIn(received).map((f) => f.type)).toEqual(['hello']);
      expectNothingOf(received, secret);
      expect(received.includes(Buffer.from(TOKEN))).toBe(false);
    });
  }
});

describe('what a fake receiver that asks for a token learns', () => {
  async function tokenAskingFake() {
    const seen: Array<{ binding?: Buffer; receiverNonce: string; hello?: JsonObject }> = [];
    const fake = await startFakeReceiver(async (session) => {
      const receiverNonce = randomBytes(16).toString('hex');
      const mine: (typeof seen)[number] = { receiverNonce };
      seen.push(mine);
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'hmac-sha256', nonce: receiverNonce, name: 'fake', features: ['trailing-hash'] });
      mine.hello = await session.next(10_000).catch(() => undefined);
      // The handshake is over once the sender wrote: the binding can be read.
      if (mine.hello) mine.binding = session.security.binding();
      session.socket.destroy();
    });
    return Object.assign(fake, { seen });
  }

  /**
   * The documented limit of a token on first contact: the sender proves first, so an impostor
   * it has no pin for gets one HMAC of the token over that impostor's own channel, against which
   * it can test guesses offline. Only a strong token (not a PIN, not a word) stands that; a pin
   * or --fingerprint avoids it (next test). Asserted so the docs stay honest.
   */
  it('first contact (no pin): the impostor gets a sender proof that confirms a guessed token offline, and nothing of the file', async () => {
    const fake = await tokenAskingFake();
    const secret = await secretFile();
    const error = await rejection(send([secret.file], { ...base(fake.port), token: TOKEN }));
    expect(['CONNECT_FAILED', 'CONNECTION_LOST']).toContain(error.code);
    const session = fake.sessions[0]!;
    expectNothingOf(session.received(), secret);
    const { binding, receiverNonce, hello } = fake.seen[0]!;
    expect(hello).toMatchObject({ type: 'hello', proof: expect.any(String) });
    // The proof is over that fake's own channel and nonces: it tells a right guess from a wrong one.
    const transcript = { binding: binding!, receiverNonce, senderNonce: hello!.nonce as string };
    expect(verifySenderProof(TOKEN, transcript, hello!.proof as string)).toBe(true);
    expect(verifySenderProof(`${TOKEN}?`, transcript, hello!.proof as string)).toBe(false);
  });

  it('with a pin (or --fingerprint) an impostor on that address gets no proof at all: not a byte after TLS', async () => {
    const real = await startReceiver({ token: TOKEN });
    const address = await startSwitchProxy(real.port);
    const pins = await trustFile();
    await send([(await secretFile()).file], { ...base(address.port), token: TOKEN, trustFile: pins });
    const fake = await tokenAskingFake();
    address.target = fake.port;
    const error = await rejection(send([(await secretFile()).file], { ...base(address.port), token: TOKEN, trustFile: pins }));
    expect(error.code).toBe('RECEIVER_KEY_CHANGED');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(fake.sessions[0]!.received().length).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------

describe('downgrade to plaintext', () => {
  it('a receiver answering in plaintext: a default sender fails with TLS_FAILED and writes nothing but its TLS ClientHello', async () => {
    const fake = await startFakeReceiver(
      (session) => {
        session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: randomBytes(16).toString('hex'), name: 'plain', features: ['trailing-hash'] });
      },
      { plaintext: true },
    );
    const secret = await secretFile();
    for (const trust of ['pinned', 'new'] as const) {
      const error = await rejection(send([secret.file], { ...base(fake.port), trust }));
      expect(error.code).toBe('TLS_FAILED');
    }
    for (const session of fake.sessions) {
      const received = session.received();
      // A TLS handshake record (0x16), or nothing at all: never a frame.
      if (received.length > 0) expect(received[0]).toBe(0x16);
      expect(received.includes(Buffer.from(secret.name))).toBe(false);
      expect(received.includes(Buffer.from('"hello"'))).toBe(false);
    }
  });

  it('a man in the middle that strips TLS (plaintext to the sender, TLS to the real receiver) cannot make a default sender speak plaintext', async () => {
    const real = await startReceiver();
    const fromSender: Buffer[] = [];
    const clients = new Set<net.Socket>();
    const stripper = net.createServer(async (client) => {
      clients.add(client);
      client.on('error', () => undefined);
      client.on('data', (chunk: Buffer) => fromSender.push(chunk));
      const upstream = await connectTlsTo(real.port).catch(() => undefined);
      if (!upstream) return client.destroy();
      upstream.on('error', () => client.destroy());
      client.once('close', () => upstream.destroy());
      upstream.on('data', (chunk: Buffer) => client.write(chunk)); // the receiver's hello, in the clear
    });
    await new Promise<void>((resolve) => stripper.listen(0, '127.0.0.1', resolve));
    cleanups.add(() => {
      for (const client of clients) client.destroy();
      return new Promise<void>((resolve) => stripper.close(() => resolve()));
    });
    const secret = await secretFile();
    for (const trust of ['pinned', 'new'] as const) {
      const error = await rejection(send([secret.file], { ...base((stripper.address() as net.AddressInfo).port), trust }));
      expect(error.code).toBe('TLS_FAILED');
    }
    const bytes = Buffer.concat(fromSender);
    expect(bytes.includes(Buffer.from(secret.name))).toBe(false);
    expect(bytes.includes(Buffer.from('"hello"'))).toBe(false);
    await expectUntouched(real);
  });

  for (const [what, options] of [
    ['TLS 1.2 at most', { maxVersion: 'TLSv1.2' as const, minVersion: 'TLSv1.2' as const, ALPNProtocols: ['ft'] }],
    ['no ALPN "ft"', { ALPNProtocols: ['http/1.1'] }],
  ] as const) {
    it(`a TLS receiver offering ${what} is refused (TLS_FAILED) before any frame`, async () => {
      const identity = await impostorIdentity();
      const got: Buffer[] = [];
      const server = tls.createServer({ key: identity.key, cert: identity.cert, ...options }, (socket) => {
        socket.on('error', () => undefined);
        socket.on('data', (chunk: Buffer) => got.push(chunk));
        socket.write(JSON.stringify({ type: 'hello' }));
      });
      server.on('tlsClientError', () => undefined);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
      const error = await rejection(send([(await secretFile()).file], { ...base((server.address() as net.AddressInfo).port), trust: 'new' }));
      expect(error.code).toBe('TLS_FAILED');
      expect(Buffer.concat(got).length).toBe(0);
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe("a certificate that changes between a resume's two connections", () => {
  for (const withStore of [false, true]) {
    it(`trust "new"${withStore ? ' with a trust file' : ', no trust file'}: the first connection is cut mid-body, the address then serves another key → the retry is refused (RECEIVER_KEY_CHANGED), the file completed nowhere`, async () => {
      const first = await startReceiver();
      const second = await startReceiver({ identity: await impostorIdentity() });
      const address = await startSwitchProxy(first.port);
      address.cutAfter = 1024 * 1024;
      address.onCut = () => {
        address.target = second.port;
        address.cutAfter = undefined;
      };
      const secret = await secretFile(8 * 1024 * 1024);
      const events: string[] = [];
      const error = await rejection(
        send([secret.file], {
          ...base(address.port),
          trust: 'new',
          trustFile: withStore ? await trustFile() : undefined,
          retries: 3,
          retryDelayMs: 20,
          onEvent: (event) => events.push(event.type),
        }),
      );
      expect(address.cuts).toBe(1);
      expect(events).toContain('started');
      expect(events).toContain('retrying');
      expect(error.code).toBe('RECEIVER_KEY_CHANGED');
      expect(error.message).toContain(shortFingerprint(second.fingerprint!));
      // Refused without a new round of retries against the impostor, and it got nothing.
      expect(address.accepted).toBe(2);
      await expectUntouched(second);
      // The real receiver holds the first part, unfinished.
      expect((await listFiles(first.dir)).filter((f) => !f.startsWith('.ft-partial/'))).toEqual([]);
      expect(await partialBytes(first.dir)).toBeGreaterThan(0);
      expect(await partialBytes(first.dir)).toBeLessThanOrEqual(1024 * 1024);
      expect(first.eventsOf('received')).toEqual([]);
    });
  }
});
