/**
 * The upload page in a real headless Chromium (Debian's, driven by playwright-core), inside a
 * network namespace with only loopback: several files and a folder from a phone-sized screen,
 * resume after the receiver dies and after a page reload, a hostile file name, and the access
 * code. Files are given as paths (a buffer would get a new lastModified, and so a new tus
 * fingerprint); resumes stay in one browser context, where tus-js-client keeps its localStorage.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { randomFile } from '../helpers/files.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { MiB, sameContent } from './support.js';
import { browserSkipReason, DESKTOP, launchBrowser, newContext, openNetns, throttle, type Answer, type Netns } from './web/browser.js';
import { startReceiver, type Receiver, type ReceiverOptions } from './web/receiver.js';

// The functions given to page.evaluate and waitForFunction run in the page, where these exist.
declare const document: any;
declare const DataTransfer: any;
declare const DragEvent: any;
declare const File: any;
declare const localStorage: any;
declare const MutationObserver: any;

const skipReason = browserSkipReason();

/** From now on, the states the rows are seen in (at each DOM mutation batch, repeats folded); call before choosing files. */
async function noteStates(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (globalThis as { ftStates?: string[] }).ftStates = seen;
    const observer = new MutationObserver((records: Array<{ target: { getAttribute(name: string): string | null } }>) => {
      for (const record of records) {
        const state = record.target.getAttribute('data-state');
        if (state && seen.at(-1) !== state) seen.push(state);
      }
    });
    observer.observe(document.querySelector('#files'), { subtree: true, attributes: true, attributeFilter: ['data-state'] });
  });
  return () => page.evaluate(() => (globalThis as { ftStates?: string[] }).ftStates ?? []);
}

async function waitForAllDone(page: Page, count: number, timeoutMs = 60_000): Promise<void> {
  await page.waitForFunction(
    (n) => {
      const rows = [...document.querySelectorAll('#files li')];
      return rows.length === n && rows.every((row) => row.getAttribute('data-state') === 'done');
    },
    count,
    { timeout: timeoutMs, polling: 100 },
  );
}

/** The percentage the first row shows while uploading (0 when it shows none). */
async function uploadedPercent(page: Page, row = 0): Promise<number> {
  const text = (await page.locator('#files li .file-status').nth(row).textContent()) ?? '';
  return Number(/Uploading (\d+)%/.exec(text)?.[1] ?? 0);
}

async function waitForPercent(page: Page, atLeast: number, row = 0): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await uploadedPercent(page, row)) < atLeast) {
    if (Date.now() > deadline) throw new Error(`the upload never reached ${atLeast}%`);
    await page.waitForTimeout(100);
  }
}

/** The one file went on from where the receiver had it (well past 0, short of the end) and landed whole. */
async function expectResumed(page: Page, offsets: number[], r: Receiver, source: string, inbox: string): Promise<void> {
  const size = (await stat(source)).size;
  expect(await page.locator('#files li .file-status').textContent()).toMatch(/resumed at \d/);
  console.log(`resumed at ${offsets.join(', ')} of ${size} bytes`);
  expect(offsets).toHaveLength(1);
  expect(offsets[0]).toBeGreaterThan(MiB);
  expect(offsets[0]).toBeLessThan(size);
  expect(await sameContent(source, path.join(inbox, path.basename(source)))).toBe(true);
  expect(r.events('received')).toMatchObject([{ name: path.basename(source), size, verified: true }]);
}

describe.skipIf(skipReason !== undefined)(`the upload page in Chromium, uploading to ft serve${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let netns: Netns;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  const receivers: Receiver[] = [];

  async function receiver(options: Partial<ReceiverOptions> = {}): Promise<{ r: Receiver; inbox: string; files: string }> {
    const root = await tempDir('ft-web-');
    const files = path.join(root, 'files');
    await mkdir(files);
    const r = await startReceiver(netns, { root, ...options });
    receivers.push(r);
    return { r, inbox: r.inbox, files };
  }

  beforeAll(async () => {
    netns = await openNetns();
    ({ browser, close: closeBrowser } = await launchBrowser(netns));
  });

  afterAll(async () => {
    await closeBrowser?.();
    await Promise.all(receivers.map((r) => r.kill()));
    netns?.close();
    await removeTempDirs();
  });

  it('on a phone-sized screen, uploads several files and a folder; each lands byte-identical and verified', async () => {
    const { r, inbox, files } = await receiver();
    const { context, page, problems } = await newContext(browser);
    const chosen = ['photo.jpg', 'notes.txt', 'empty.bin', 'video.mp4'];
    const sizes = [1_234_567, 999, 0, 9 * MiB + 7];
    for (const [i, name] of chosen.entries()) await randomFile(path.join(files, name), sizes[i]!);
    const folder = path.join(files, 'album');
    await mkdir(path.join(folder, 'day 2'), { recursive: true });
    await randomFile(path.join(folder, 'a.jpg'), 300_001);
    await randomFile(path.join(folder, 'day 2', 'b.jpg'), 2 * MiB);

    await page.goto(r.url);
    await page.locator('#picker').waitFor({ state: 'visible' });
    // The fingerprint shown is the receiver's key (its short form starts the full one).
    const shown = ((await page.locator('#fingerprint').textContent()) ?? '').replace(/-/g, '');
    expect(shown.length).toBe(32);
    expect(r.fingerprint.startsWith(shown)).toBe(true);
    // And the certificate's SHA-256, as the browser's certificate details show it.
    expect(await page.locator('#certificate').textContent()).toBe(r.certificateSha256);
    expect(await page.locator('#warning').isHidden()).toBe(true);

    await page.setInputFiles('#file-input', chosen.map((name) => path.join(files, name)));
    await page.setInputFiles('#folder-input', folder);
    await waitForAllDone(page, 6);

    const expected = [...chosen, 'album/a.jpg', 'album/day 2/b.jpg'];
    for (const name of expected) {
      expect(await sameContent(path.join(files, name), path.join(inbox, name)), name).toBe(true);
    }
    const received = r.events('received');
    expect(received.map((e) => e.name).sort()).toEqual([...expected].sort());
    expect(received.every((e) => e.verified === true)).toBe(true);
    expect(await page.locator('#total-text').textContent()).toContain('6 of 6 files done');
    // The layout fits the phone: nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('an upload cut by the receiver dying resumes from its offset when the same file is chosen again after the restart', async () => {
    let { r, inbox, files } = await receiver();
    const source = await randomFile(path.join(files, 'big.bin'), 24 * MiB);
    const { context, page, problems, headOffsets } = await newContext(browser);
    await page.goto(r.url);
    await throttle(page, 4 * MiB);
    await page.setInputFiles('#file-input', source);
    await waitForPercent(page, 25);
    await r.kill();
    // tus-js-client tries again a few times, then the page says it failed.
    await page.locator('#files li[data-state="failed"]').waitFor({ timeout: 30_000 });
    expect(await page.locator('#files li .file-status').textContent()).toMatch(/cannot be reached/);

    r = await r.restart();
    receivers.push(r);
    await throttle(page, undefined);
    await page.setInputFiles('#file-input', source);
    await waitForAllDone(page, 1);
    await expectResumed(page, headOffsets, r, source, inbox);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('after a page reload mid-upload, choosing the same file again resumes it (no new hash, no new upload)', async () => {
    const { r, inbox, files } = await receiver();
    const source = await randomFile(path.join(files, 'reload.bin'), 20 * MiB);
    const { context, page, problems, headOffsets } = await newContext(browser);
    await page.goto(r.url);
    await throttle(page, 4 * MiB);
    await page.setInputFiles('#file-input', source);
    await waitForPercent(page, 30);
    await page.reload();
    await throttle(page, undefined);
    await expect.poll(() => page.locator('#picker').isVisible()).toBe(true);
    const states = await noteStates(page);
    await page.setInputFiles('#file-input', source);
    await waitForAllDone(page, 1);
    // It looks for the earlier upload before hashing anything: it never hashes this time.
    expect(await states()).toEqual(['checking', 'resuming', 'uploading', 'done']);
    await expectResumed(page, headOffsets, r, source, inbox);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('when the receiver no longer has the earlier upload, the same file starts again from 0, hashed', async () => {
    const { r, inbox, files } = await receiver();
    const source = await randomFile(path.join(files, 'gone.bin'), 12 * MiB);
    const { context, page, problems, headOffsets, answers } = await newContext(browser);
    await page.goto(r.url);
    await throttle(page, 4 * MiB);
    await page.setInputFiles('#file-input', source);
    await waitForPercent(page, 20);
    await page.reload();
    await throttle(page, undefined);
    await page.locator('#picker').waitFor({ state: 'visible' });
    // The upload the page remembers is ended on the receiver (tus termination), as an expired one would be.
    const deleted = await page.evaluate(async () => {
      const key = Object.keys(localStorage).find((k) => k.startsWith('tus::'));
      const { uploadUrl } = JSON.parse(localStorage.getItem(key));
      return (await fetch(uploadUrl, { method: 'DELETE', headers: { 'Tus-Resumable': '1.0.0' } })).status;
    });
    expect(deleted).toBe(204);
    const states = await noteStates(page);
    await page.setInputFiles('#file-input', source);
    await waitForAllDone(page, 1);
    // It looked for the old upload (gone), hashed the file, and made a new one with the hash.
    expect(answers.some((a) => a.method === 'HEAD' && a.status === 404)).toBe(true);
    expect(headOffsets).toEqual([]);
    expect(await states()).toEqual(['checking', 'resuming', 'hashing', 'uploading', 'done']);
    expect(await page.locator('#files li .file-status').textContent()).toBe('Done, verified');
    expect(await sameContent(source, path.join(inbox, 'gone.bin'))).toBe(true);
    expect(r.events('received')).toMatchObject([{ name: 'gone.bin', verified: true }]);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('hostile names (of a file, of the receiver) are shown as text and nothing in them runs', async () => {
    const receiverName = '<script>alert(2)</script><img src=x onerror=alert(3)>';
    const { r, inbox, files } = await receiver({ name: receiverName });
    const hostile = '<img src=x onerror=alert(1)>.txt';
    const source = path.join(files, hostile);
    await writeFile(source, 'harmless\n');
    const { context, page, problems } = await newContext(browser);
    await page.goto(r.url);
    await page.setInputFiles('#file-input', source);
    await waitForAllDone(page, 1);
    expect(await page.locator('#receiver-name').textContent()).toBe(receiverName);
    expect(await page.title()).toContain(receiverName);
    expect(await page.locator('#files li .file-name').textContent()).toBe(hostile);
    expect(await page.locator('#files img').count()).toBe(0);
    expect(await page.evaluate(() => document.querySelectorAll('img').length)).toBe(0);
    expect(await sameContent(source, path.join(inbox, hostile))).toBe(true);
    expect(problems).toEqual([]); // no alert dialog, no script error
    await context.close();
  });

  it('files dropped on the page upload too; an open receiver shows its warning', async () => {
    const { r, inbox } = await receiver({ openToNetwork: true });
    const { context, page, problems, answers } = await newContext(browser, DESKTOP);
    await page.goto(r.url);
    await page.locator('#picker').waitFor({ state: 'visible' });
    const info = JSON.parse(answers.find((a) => a.path === '/api/info')!.body) as { warning: string | null };
    expect(info.warning).toMatch(/anyone/);
    expect(await page.locator('#warning').textContent()).toBe(info.warning);
    // What a drop delivers, made in the page (a synthetic drop carries files, not folder entries).
    await page.evaluate(() => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(['dropped one\n'], 'dropped-1.txt', { type: 'text/plain' }));
      transfer.items.add(new File([new Uint8Array(70_000).fill(7)], 'dropped-2.bin'));
      document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    });
    await waitForAllDone(page, 2);
    expect(await readFile(path.join(inbox, 'dropped-1.txt'), 'utf8')).toBe('dropped one\n');
    expect(await readFile(path.join(inbox, 'dropped-2.bin'))).toEqual(Buffer.alloc(70_000, 7));
    expect(problems).toEqual([]);
    await context.close();
  });

  it('a file the receiver refuses fails with the receiver\'s words, and the others still land', async () => {
    const { r, inbox, files } = await receiver();
    await writeFile(path.join(files, 'CON.txt'), 'refused\n');
    const fine = await randomFile(path.join(files, 'fine.bin'), 50_000);
    const { context, page, problems, answers } = await newContext(browser);
    await page.goto(r.url);
    await page.setInputFiles('#file-input', [path.join(files, 'CON.txt'), fine]);
    await page.locator('#files li[data-state="failed"]').waitFor();
    await page.locator('#files li[data-state="done"]').waitFor();
    // The page says what the receiver said when it refused the upload, word for word.
    const refusal = answers.find((a) => a.method === 'POST' && a.path.startsWith('/files') && a.status >= 400);
    expect(refusal?.status).toBe(400);
    await expect.poll(() => refusal?.body).not.toBe('');
    expect(await page.locator('#files li[data-state="failed"] .file-status').textContent()).toBe(`Failed: ${refusal!.body.trim()}`);
    expect(await page.locator('#total-text').textContent()).toMatch(/1 of 2 files done .* 1 failed/);
    expect(await sameContent(fine, path.join(inbox, 'fine.bin'))).toBe(true);
    expect(r.events('received').map((e) => e.name)).toEqual(['fine.bin']);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('with a token: the #code link works once and leaves the address bar, a wrong code is refused, the token unlocks', async () => {
    const { r, inbox, files } = await receiver({ token: 'correct horse battery staple' });
    const source = await randomFile(path.join(files, 'secret.bin'), 100_000);
    const code = r.code!;

    const first = await newContext(browser);
    await first.page.goto(`${r.url}#code=${code}`);
    await first.page.locator('#picker').waitFor({ state: 'visible' });
    expect(new URL(first.page.url()).hash).toBe('');
    expect(await first.page.locator('#access').isHidden()).toBe(true);
    await first.page.setInputFiles('#file-input', source);
    await waitForAllDone(first.page, 1);
    expect(await sameContent(source, path.join(inbox, 'secret.bin'))).toBe(true);
    // The session outlives a reload: the page does not ask again.
    await first.page.reload();
    await first.page.locator('#picker').waitFor({ state: 'visible' });
    expect(first.problems).toEqual([]);
    await first.context.close();

    // The same link a second time (another browser): the code is spent.
    const second = await newContext(browser);
    await second.page.goto(`${r.url}#code=${code}`);
    await second.page.locator('#access').waitFor({ state: 'visible' });
    expect(await second.page.locator('#access-error').textContent()).toMatch(/did not work/);
    expect(await second.page.locator('#picker').isHidden()).toBe(true);
    await second.context.close();

    // No code: the page asks; a wrong one is refused with the receiver's words; the token works.
    const third = await newContext(browser);
    await third.page.goto(r.url);
    await third.page.locator('#access').waitFor({ state: 'visible' });
    await third.page.fill('#access-input', 'abcd-efgh-jkmn');
    await third.page.click('#access-submit');
    // In the receiver's words (the message of its 403), once both tries were refused.
    await expect.poll(() => third.answers.filter((a) => a.path === '/api/session' && a.body !== '').length).toBe(2);
    const refusal = JSON.parse(third.answers.at(-1)!.body) as { code: string; message: string };
    expect(refusal.code).toBe('AUTH_FAILED');
    await expect.poll(() => third.page.locator('#access-error').textContent()).toBe(refusal.message);
    expect(await third.page.locator('#picker').isHidden()).toBe(true);
    await third.page.fill('#access-input', 'correct horse battery staple');
    await third.page.click('#access-submit');
    await third.page.locator('#picker').waitFor({ state: 'visible' });
    const sessions = (answers: Answer[]) => answers.filter((a) => a.path === '/api/session').map((a) => a.status);
    expect(sessions(first.answers)).toEqual([204]);
    expect(sessions(second.answers)).toEqual([403]);
    // The wrong code is tried as a code and then as the token (a token may look like a code).
    expect(sessions(third.answers)).toEqual([403, 403, 204]);
    await third.context.close();
  });
});
