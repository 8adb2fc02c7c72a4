/**
 * Attacks on the web side found in review: each test is a way a peer on a hostile network
 * could get more out of the receiver than the TCP protocol lets it.
 */
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { hashBytes } from '../../src/hashing.js';
import { content } from '../contract/upload-store.contract.js';
import { webRequest } from '../helpers/web.js';
import { WebAccess } from '../../src/web/access.js';
import { WebServer, type TusHandler, type WebSlots } from '../../src/web/web-server.js';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs } from '../helpers/temp.js';

afterEach(async () => {
  await closeAllReceivers();
  await removeTempDirs();
});

/** Writes `raw` on one TLS connection (ALPN http/1.1) and collects what comes back until it closes or `ms` pass. */
function exchange(port: number, raw: string, ms: number): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => socket.write(raw));
    let text = '';
    let closed = false;
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve({ text, closed });
    });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed });
    }, ms);
  });
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));

describe('guessing codes and tokens', () => {
  it('pipelined wrong codes on one connection are not all tried at once: one wrong answer, then the connection goes', async () => {
    const r = await startReceiver({ token: 'sekrit' });
    const body = JSON.stringify({ code: 'aaaaaaaaaaaa' });
    const one = `POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const { text, closed } = await exchange(r.port, one.repeat(30), 8000);
    // The TCP protocol answers one wrong proof per connection, slowed down, then closes it.
    expect(statuses(text)).toEqual([403]);
    expect(closed).toBe(true);
  });

  it('pipelined wrong bearer tokens on one connection: one 401, then the connection goes', async () => {
    const r = await startReceiver({ token: 'sekrit' });
    const one = 'HEAD /files/x HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\nAuthorization: Bearer nope\r\n\r\n';
    const { text, closed } = await exchange(r.port, one.repeat(30), 8000);
    expect(statuses(text)).toEqual([401]);
    expect(closed).toBe(true);
  });
});

describe('slow bodies', () => {
  it('a PATCH trickling below the minimum body rate is ended, as a slow body on the TCP protocol is; what arrived is kept', async () => {
    const r = await startReceiver({ idleTimeoutMs: 2000, minBodyRate: 2000 });
    const bytes = content(64 * 1024, 31);
    const created = await webRequest(r.port, '/files/', {
      method: 'POST',
      headers: {
        'tus-resumable': '1.0.0',
        'upload-length': bytes.length,
        'upload-metadata': `filename ${Buffer.from('slow.bin').toString('base64')},hash ${Buffer.from(await hashBytes(bytes)).toString('base64')}`,
      },
    });
    expect(created.status, created.body).toBe(201);
    const location = created.headers.location!;
    const started = performance.now();
    // 20 bytes every 100 ms (200 B/s, a tenth of the minimum): never idle for the idle timeout.
    const ended = await new Promise<string>((resolve) => {
      const req = https.request({
        host: '127.0.0.1',
        port: r.port,
        method: 'PATCH',
        path: location,
        rejectUnauthorized: false,
        agent: false,
        headers: { 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': bytes.length },
      });
      let at = 0;
      const drip = setInterval(() => {
        if (at < bytes.length) req.write(bytes.subarray(at, (at += 20)));
      }, 100);
      const done = (how: string) => {
        clearInterval(drip);
        clearTimeout(limit);
        req.destroy();
        resolve(how);
      };
      const limit = setTimeout(() => done('still running'), 8000);
      req.on('response', (res) => done(`answered ${res.statusCode}`));
      req.on('error', () => done('cut'));
    });
    expect(ended).toBe('cut');
    expect(performance.now() - started).toBeLessThan(6000);
    const head = await webRequest(r.port, location, { method: 'HEAD', headers: { 'tus-resumable': '1.0.0' } });
    expect(head.status).toBe(200);
    expect(Number(head.headers['upload-offset'])).toBeGreaterThan(0);
  });
});

describe('connection slots', () => {
  it('requests that move no upload forward (a HEAD of a made-up id) do not keep a connection from being the idlest', async () => {
    let progressed = 0;
    const slots: WebSlots = {
      enter: () => ({}),
      promote: () => undefined,
      progressed: () => void progressed++,
      leave: () => undefined,
      authFailed: () => 0,
      authSucceeded: () => undefined,
    };
    const tus: TusHandler = {
      handle: (_req, res) => void res.writeHead(404, { 'content-length': '0' }).end(),
      close: async () => undefined,
    };
    const server = new WebServer({
      tus,
      access: new WebAccess({ secret: Buffer.alloc(32) }),
      slots,
      assets: new Map(),
      info: { name: 'r', fingerprint: null, certificateSha256: null, access: 'open', warning: null, tusPath: '/files/', allowUnverified: false, maxFileSize: null },
      tls: false,
      idleTimeoutMs: 5000,
    });
    const listener = net.createServer((socket) => server.accept(socket, '127.0.0.1', socket.remotePort ?? 0));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = listener.address() as net.AddressInfo;
      for (let i = 0; i < 3; i++) {
        const res = await webRequest(port, '/files/made-up', { method: 'HEAD', plaintext: true, headers: { 'tus-resumable': '1.0.0' } });
        expect(res.status).toBe(404);
      }
      // The TCP protocol counts a body byte or a file done as progress; a request that finds nothing is neither.
      expect(progressed).toBe(0);
    } finally {
      await server.close();
      await new Promise((resolve) => listener.close(resolve));
    }
  });
});
