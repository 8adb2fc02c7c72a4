/**
 * The receiver's web side over real sockets: one port for the TCP protocol and HTTPS, the page's
 * files and headers, access (codes, sessions, the token as a bearer, slowing down wrong ones),
 * and the bounds on connections and headers.
 */
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { send } from '../../src/index.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { sessionCookie, webRequest } from '../helpers/web.js';
import { freePort } from '../helpers/free-port.js';

afterEach(async () => {
  await closeAllReceivers();
  await removeTempDirs();
});

async function fileToSend(name = 'hello.txt', text = 'hello over the same port\n'): Promise<string> {
  const file = path.join(await tempDir(), name);
  await writeFile(file, text);
  return file;
}

function tlsConnection(port: number, alpn: string[]): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: alpn }, () => resolve(socket));
    socket.on('error', reject);
  });
}

const codeOf = (link: string) => /#code=([a-z2-9]+)$/.exec(link)![1]!;

describe('one port, two protocols', () => {
  it('ft send and HTTPS share the receiver port; the page presents the receiver identity', async () => {
    const r = await startReceiver();
    const report = await send([await fileToSend()], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(report.files[0]!.status).toBe('sent');
    for (const alpn of [undefined, ['http/1.1'], ['h2', 'http/1.1']]) {
      const page = await webRequest(r.port, '/', { alpn });
      expect(page.status).toBe(200);
      expect(page.fingerprint).toBe(r.fingerprint);
      expect(page.headers['content-type']).toMatch(/^text\/html/);
      expect(page.headers['content-security-policy']).toContain("default-src 'none'");
      expect(page.headers['content-security-policy']).toContain("frame-ancestors 'none'");
      expect(page.headers['x-content-type-options']).toBe('nosniff');
      expect(page.headers['referrer-policy']).toBe('no-referrer');
    }
    expect(r.receiver.webAddress?.port).toBe(r.port);
    expect(r.receiver.accessLink('127.0.0.1')).toBe(`https://127.0.0.1:${r.port}/`);
  });

  it('serves the browser libraries from the installed packages and 404s anything else', async () => {
    const r = await startReceiver();
    for (const route of ['/vendor/tus.min.js', '/vendor/xxhash-wasm.js', '/app.js']) {
      const res = await webRequest(r.port, route);
      expect(res.status, route).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/javascript/);
    }
    const again = await webRequest(r.port, '/vendor/tus.min.js', { headers: { 'if-none-match': (await webRequest(r.port, '/vendor/tus.min.js')).headers.etag! } });
    expect(again.status).toBe(304);
    expect((await webRequest(r.port, '/../../etc/passwd')).status).toBe(404);
    expect((await webRequest(r.port, '/.ft-partial/receipts.key')).status).toBe(404);
    expect((await webRequest(r.port, '/', { method: 'POST' })).status).toBe(405);
  });

  it('with web off, the port speaks only ft: an HTTPS client is refused in the handshake', async () => {
    const r = await startReceiver({ web: false });
    await expect(webRequest(r.port, '/', { alpn: ['http/1.1'] })).rejects.toThrow(/alpn|application protocol|socket hang up|disconnected|ECONNRESET/i);
    expect(r.receiver.webAddress).toBeUndefined();
    expect(r.receiver.accessLink()).toBeUndefined();
    const report = await send([await fileToSend()], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(report.files[0]!.status).toBe('sent');
  });

  it('in plaintext, the page is plain HTTP on a port of its own, and the ft port stays ft', async () => {
    const webPort = await freePort();
    const r = await startReceiver({ insecurePlaintext: true, webPort });
    expect(r.receiver.webAddress?.port).toBe(webPort);
    const page = await webRequest(webPort, '/', { plaintext: true });
    expect(page.status).toBe(200);
    const info = JSON.parse((await webRequest(webPort, '/api/info', { plaintext: true })).body);
    expect(info.fingerprint).toBeNull();
    expect(r.receiver.accessLink('127.0.0.1')).toBe(`http://127.0.0.1:${webPort}/`);
    const report = await send([await fileToSend()], { host: '127.0.0.1', port: r.port, insecurePlaintext: true });
    expect(report.files[0]!.status).toBe('sent');
    // A name that is not this machine's (DNS rebinding): refused; its own name and addresses answer.
    expect((await webRequest(webPort, '/api/info', { plaintext: true, headers: { host: `evil.example:${webPort}` } })).status).toBe(421);
    expect((await webRequest(webPort, '/api/info', { plaintext: true, headers: { host: `${os.hostname()}.local:${webPort}` } })).status).toBe(200);
    expect((await webRequest(webPort, '/api/info', { plaintext: true, headers: { host: `[::1]:${webPort}` } })).status).toBe(200);
  });
});

describe('what the page learns', () => {
  it('/api/info tells name, short fingerprint and access; an open receiver on every interface carries the warning', async () => {
    const loopback = await startReceiver({ name: 'den' });
    const info = JSON.parse((await webRequest(loopback.port, '/api/info')).body);
    expect(info).toMatchObject({ name: 'den', access: 'open', warning: null, tusPath: '/files/', allowUnverified: false, maxFileSize: null });
    expect(info.fingerprint).toMatch(/^([A-Z2-7]{4}-){7}[A-Z2-7]{4}$/);
    expect(loopback.fingerprint!.replace(/-/g, '').startsWith(info.fingerprint.replace(/-/g, ''))).toBe(true);
    const gated = await startReceiver({ token: 'sekrit', maxFileSize: 1000 });
    expect(JSON.parse((await webRequest(gated.port, '/api/info')).body)).toMatchObject({ access: 'token', warning: null, maxFileSize: 1000 });
  });

  it('an open receiver listening on every interface says so on the page', async () => {
    const { serve } = await import('../../src/index.js');
    const receiver = await serve({ dir: path.join(await tempDir(), 'inbox'), port: 0, host: '0.0.0.0', beacon: false });
    try {
      const info = JSON.parse((await webRequest(receiver.address.port, '/api/info')).body);
      expect(info.access).toBe('open');
      expect(info.warning).toMatch(/anyone on this network can upload/);
    } finally {
      await receiver.close();
    }
  });
});

describe('access with a token', () => {
  it('the tus endpoint answers 401 without a credential; OPTIONS needs none', async () => {
    const r = await startReceiver({ token: 'sekrit' });
    const denied = await webRequest(r.port, '/files/', { method: 'POST', headers: { 'tus-resumable': '1.0.0', 'upload-length': 1 } });
    expect(denied.status).toBe(401);
    expect(denied.headers['tus-resumable']).toBe('1.0.0');
    expect(denied.body).not.toContain(r.dir);
    expect((await webRequest(r.port, '/files/', { method: 'OPTIONS' })).status).not.toBe(401);
  });

  it('the one-time code in the printed link opens a session once; the session cookie is HttpOnly, Secure, SameSite=Strict', async () => {
    const r = await startReceiver({ token: 'sekrit' });
    const link = r.receiver.accessLink('127.0.0.1')!;
    expect(link).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:${r.port}/#code=[a-z2-9]{12}$`));
    const body = JSON.stringify({ code: codeOf(link) });
    const granted = await webRequest(r.port, '/api/session', { method: 'POST', body });
    expect(granted.status).toBe(204);
    const setCookie = granted.headers['set-cookie']![0]!;
    for (const attribute of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) expect(setCookie).toContain(attribute);
    expect((await r.waitFor('access')).via).toBe('code');
    const cookie = sessionCookie(granted);
    expect((await webRequest(r.port, '/files/nothing-here', { method: 'HEAD', headers: { cookie, 'tus-resumable': '1.0.0' } })).status).not.toBe(401);
    const reused = await webRequest(r.port, '/api/session', { method: 'POST', body });
    expect(reused.status).toBe(403);
    expect(JSON.parse(reused.body).code).toBe('AUTH_FAILED');
  });

  it('wrong codes are answered more slowly each time, as wrong token proofs are', async () => {
    const r = await startReceiver({ token: 'sekrit' });
    const timings: number[] = [];
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const res = await webRequest(r.port, '/api/session', { method: 'POST', body: JSON.stringify({ code: 'aaaaaaaaaaaa' }) });
      timings.push(performance.now() - started);
      expect(res.status).toBe(403);
    }
    // 100, 200, 400 ms at least (a slow machine only adds to them).
    expect(timings[0]).toBeGreaterThanOrEqual(90);
    expect(timings[2]).toBeGreaterThanOrEqual(390);
    const wrongBearer = performance.now();
    const res = await webRequest(r.port, '/files/', { method: 'POST', headers: { authorization: 'Bearer nope', 'tus-resumable': '1.0.0' } });
    expect(res.status).toBe(401);
    expect(performance.now() - wrongBearer).toBeGreaterThanOrEqual(790);
  });

  it('the token opens a session too, and the session outlives a restart of the receiver but not a new token', async () => {
    const dir = path.join(await tempDir(), 'inbox');
    const first = await startReceiver({ token: 'sekrit', dir });
    const cookie = sessionCookie(await webRequest(first.port, '/api/session', { method: 'POST', body: JSON.stringify({ token: 'sekrit' }) }));
    await first.close();
    const restarted = await startReceiver({ token: 'sekrit', dir });
    const probe = (port: number) => webRequest(port, '/files/x', { method: 'HEAD', headers: { cookie, 'tus-resumable': '1.0.0' } });
    expect((await probe(restarted.port)).status).not.toBe(401);
    await restarted.close();
    const rekeyed = await startReceiver({ token: 'another', dir });
    expect((await probe(rekeyed.port)).status).toBe(401);
  });
});

describe('bounds', () => {
  it('headers over 16 KiB are refused with 431, and the receiver serves on', async () => {
    const r = await startReceiver();
    const res = await webRequest(r.port, '/api/info', { headers: { 'x-big': 'x'.repeat(20_000) } });
    expect(res.status).toBe(431);
    expect((await webRequest(r.port, '/api/info')).status).toBe(200);
  });

  it('an API body over its limit is refused; a bad one is a 400', async () => {
    const r = await startReceiver({ token: 'sekrit' });
    expect((await webRequest(r.port, '/api/session', { method: 'POST', body: 'x'.repeat(5000) })).status).toBe(413);
    expect((await webRequest(r.port, '/api/session', { method: 'POST', body: '{"code": 5}' })).status).toBe(400);
  });

  it('a connection that never finishes its TLS handshake is closed at the hello deadline', async () => {
    const r = await startReceiver({ helloTimeoutMs: 300 });
    const socket = net.connect(r.port, '127.0.0.1');
    const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(performance.now())));
    const started = performance.now();
    socket.on('error', () => undefined);
    socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, and no more
    expect((await closed) - started).toBeLessThan(5000);
    expect((await r.waitFor('connection-error')).code).toBe('TIMEOUT');
  });

  it('connections of the TCP protocol do not take HTTP clients slots, nor get them answered in ft frames', async () => {
    const r = await startReceiver({ maxConnectionsPerAddress: 2 });
    // Two ft connections that never say hello fill this address's slots of the TCP protocol.
    const held = await Promise.all([0, 1].map(() => tlsConnection(r.port, ['ft'])));
    const page = await webRequest(r.port, '/api/info');
    expect(page.status).toBe(200);
    for (const socket of held) socket.destroy();
  });

  it('an HTTPS client turned away while handshakes are full is told 503 in HTTP, not reset or answered in ft', async () => {
    const r = await startReceiver({ maxUnauthenticated: 1 });
    // A connection that never finishes its handshake holds the one handshake slot (too young to give way).
    const stuck = net.connect(r.port, '127.0.0.1');
    stuck.on('error', () => undefined);
    await new Promise((resolve) => stuck.once('connect', resolve));
    try {
      const res = await webRequest(r.port, '/api/info');
      expect(res.status).toBe(503);
      expect(res.body).toMatch(/being greeted/);
    } finally {
      stuck.destroy();
    }
  });

  it('web connections from one address are capped; the next is told 503 and the page serves on', async () => {
    const r = await startReceiver({ maxConnectionsPerAddress: 2 });
    const held = await Promise.all([0, 1].map(() => tlsConnection(r.port, ['http/1.1'])));
    // Each held connection is counted once the handshake is done and HTTP takes it over.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const turnedAway = await webRequest(r.port, '/api/info');
    expect(turnedAway.status).toBe(503);
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await webRequest(r.port, '/api/info')).status).toBe(200);
  });
});
