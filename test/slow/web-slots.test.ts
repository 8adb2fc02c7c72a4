/**
 * A web connection that only asks about made-up uploads moves nothing forward: when every slot
 * is taken, it gives its slot to a newcomer after IDLE_SLOT_MS, as an idle TCP connection does.
 */
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { IDLE_SLOT_MS } from '../../src/receiver/admission.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs } from '../helpers/temp.js';
import { webRequest } from '../helpers/web.js';

afterEach(async () => {
  await closeAllReceivers();
  await removeTempDirs();
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const HEAD = 'HEAD /files/made-up HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n\r\n';

describe('web connection slots', () => {
  it('a connection sending only HEADs of made-up ids loses its slot to a newcomer once idle', async () => {
    const r = await startReceiver({ maxConnections: 1 });
    const holder = tls.connect({ host: '127.0.0.1', port: r.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    holder.on('error', () => undefined);
    let answers = '';
    holder.on('data', (chunk: Buffer) => (answers += chunk.toString('latin1')));
    await new Promise((resolve) => holder.once('secureConnect', resolve));
    try {
      // A HEAD every 2 s (inside the keep-alive timeout): the connection never goes quiet.
      const until = performance.now() + IDLE_SLOT_MS + 2000;
      while (performance.now() < until && !holder.destroyed) {
        holder.write(HEAD);
        await sleep(2000);
      }
      expect(answers).toMatch(/^HTTP\/1\.1 404/);
      const newcomer = await webRequest(r.port, '/files/made-up', { method: 'HEAD', headers: { 'tus-resumable': '1.0.0' } });
      expect(newcomer.status).toBe(404);
    } finally {
      holder.destroy();
    }
  });
});
