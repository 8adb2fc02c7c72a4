/**
 * What `ft serve` prints about its upload page, as a user sees it (bin/ft.js imports dist/:
 * build first): the address, a QR code of it, the fingerprint to compare with the browser's
 * warning, and with a token a one-time code that is renewed when a device uses it.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { killAllFt, startFtServe } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { webRequest } from '../helpers/web.js';

afterEach(killAllFt);
afterAll(removeTempDirs);

const QR_LINE = /^[▀▄█ ]{20,}$/;

describe('ft serve and its upload page', () => {
  it('prints the page address, a QR code of it and the fingerprint the page shows', async () => {
    const serve = await startFtServe(path.join(await tempDir(), 'inbox'));
    const line = await serve.proc.waitForLine(/^ft: upload page /);
    expect(line).toBe(`ft: upload page https://127.0.0.1:${serve.port}/`);
    const warning = await serve.proc.waitForLine(/^ft: browsers warn that the page's certificate is self-signed/);
    const lines = serve.proc.lines();
    const qr = lines.filter((l) => QR_LINE.test(l));
    // A version-2 code or larger, drawn two rows per line.
    expect(qr.length).toBeGreaterThanOrEqual(12);
    const page = await webRequest(serve.port, '/api/info');
    const info = JSON.parse(page.body);
    expect(info.fingerprint).toBe(serve.fingerprint);
    // What the browser's certificate details show is what the terminal says to compare with.
    expect(warning).toContain(page.certificateSha256);
    expect(info.certificateSha256).toBe(page.certificateSha256);
  });

  it('with a token, the link carries a one-time code; using it prints who did and a fresh link', async () => {
    const tokenFile = path.join(await tempDir(), 'token');
    await writeFile(tokenFile, 'sekrit\n', { mode: 0o600 });
    const serve = await startFtServe(path.join(await tempDir(), 'inbox'), { args: ['--token-file', tokenFile] });
    const line = await serve.proc.waitForLine(/^ft: upload page /);
    const code = /#code=([a-z2-9]{12}) \(its code works once/.exec(line)?.[1];
    expect(code, line).toBeDefined();
    const granted = await webRequest(serve.port, '/api/session', { method: 'POST', body: JSON.stringify({ code }) });
    expect(granted.status).toBe(204);
    const access = await serve.proc.waitForLine(/^access /);
    expect(access).toMatch(/^access +127\.0\.0\.1:\d+ opened the upload page with its one-time code; for another device: https:\/\/127\.0\.0\.1:\d+\/#code=[a-z2-9]{12}$/);
    const next = /#code=([a-z2-9]{12})$/.exec(access)![1];
    expect(next).not.toBe(code);
    expect((await webRequest(serve.port, '/api/session', { method: 'POST', body: JSON.stringify({ code: next }) })).status).toBe(204);
  });

  it('--no-web serves no page and prints none; --json gives the link in the listening event', async () => {
    const off = await startFtServe(path.join(await tempDir(), 'inbox'), { args: ['--no-web'], json: true });
    const listening = JSON.parse(off.proc.lines().find((l) => l.includes('"listening"'))!);
    expect(listening.web).toBeUndefined();
    await expect(webRequest(off.port, '/', { alpn: ['http/1.1'] })).rejects.toThrow();
    const on = await startFtServe(path.join(await tempDir(), 'inbox'), { json: true });
    const event = JSON.parse(on.proc.lines().find((l) => l.includes('"listening"'))!);
    expect(event.web).toBe(`https://127.0.0.1:${on.port}/`);
    expect(on.proc.lines().some((l) => QR_LINE.test(l))).toBe(false);
  });
});
