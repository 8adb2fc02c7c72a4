/**
 * Screenshots of the upload page at phone (390×844) and desktop (1280×800) sizes, mid-transfer:
 * finished files, one uploading with its rate and time left, one refused. `npm run screenshots`
 * writes them to docs/web-phone.png and docs/web-desktop.png (for the README); in the slow suite
 * they go to a temporary folder, so the suite checks that they can be made without touching docs/.
 */
import { mkdir, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { randomFile } from '../helpers/files.js';
import { REPO_ROOT } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { MiB } from './support.js';
import { browserSkipReason, DESKTOP, launchBrowser, newContext, openNetns, PHONE, throttle, type Netns } from './web/browser.js';
import { startReceiver, type Receiver } from './web/receiver.js';

// The functions given to page.evaluate and waitForFunction run in the page, where there is a document.
declare const document: any;

const skipReason = browserSkipReason();
const intoDocs = process.env.FT_WRITE_SCREENSHOTS === '1';

describe.skipIf(skipReason !== undefined)(`screenshots of the upload page${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  let netns: Netns;
  let browser: Browser;
  let closeBrowser: () => Promise<void>;
  let receiver: Receiver;
  let files: string;
  let out: string;

  beforeAll(async () => {
    const root = await tempDir('ft-shots-');
    files = path.join(root, 'files');
    await mkdir(path.join(files, 'holiday'), { recursive: true });
    await randomFile(path.join(files, 'holiday', 'IMG_2041.jpg'), 2_412_331);
    await randomFile(path.join(files, 'holiday', 'IMG_2042.jpg'), 3_104_877);
    await randomFile(path.join(files, 'report-2026.pdf'), 851_200);
    await randomFile(path.join(files, 'talk-recording.mp4'), 48 * MiB);
    // Sparse: too large for this receiver's limit, refused before a byte is read.
    await randomFile(path.join(files, 'backup.iso'), 0);
    await truncate(path.join(files, 'backup.iso'), 3 * 1024 * MiB);
    out = intoDocs ? path.join(REPO_ROOT, 'docs') : root;
    netns = await openNetns();
    ({ browser, close: closeBrowser } = await launchBrowser(netns));
    receiver = await startReceiver(netns, {
      root,
      name: "Anna's laptop",
      maxFileSize: 2 * 1024 * MiB,
    });
  });

  afterAll(async () => {
    await closeBrowser?.();
    await receiver?.kill();
    netns?.close();
    await removeTempDirs();
  });

  for (const [label, device] of [['phone', PHONE], ['desktop', DESKTOP]] as const) {
    it(`at ${label} size, mid-transfer`, async () => {
      const { context, page, problems } = await newContext(browser, device);
      await page.goto(receiver.url);
      await page.locator('#picker').waitFor({ state: 'visible' });
      await throttle(page, 6 * MiB);
      await page.setInputFiles('#folder-input', path.join(files, 'holiday'));
      await page.setInputFiles('#file-input', ['report-2026.pdf', 'talk-recording.mp4', 'backup.iso'].map((n) => path.join(files, n)));
      // Three finished, the recording a good way in (with a rate and a time left), the image refused.
      await page.waitForFunction(
        () => {
          const rows = [...document.querySelectorAll('#files li')];
          const states = rows.map((row) => row.getAttribute('data-state'));
          const recording = rows[3]?.querySelector('.file-status')?.textContent ?? '';
          return states.filter((s) => s === 'done').length === 3 && / left$/.test(recording) && Number(/(\d+)%/.exec(recording)?.[1]) >= 35;
        },
        undefined,
        { timeout: 60_000, polling: 100 },
      );
      const file = path.join(out, `web-${label}.png`);
      await page.screenshot({ path: file, fullPage: label === 'phone', animations: 'disabled' });
      expect((await stat(file)).size).toBeGreaterThan(10_000);
      expect(problems).toEqual([]);
      await context.close();
    });
  }
});
