/**
 * A real headless Chromium (Debian's, driven by playwright-core) and the receivers it talks to,
 * all inside one network namespace that has only loopback: Chromium phones home even when told
 * not to, and from there nothing can leave the machine. Playwright talks to the browser over a
 * pipe, so the test process itself stays outside. Not a test file itself.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { REPO_ROOT } from '../../helpers/spawn-ft.js';

export const CHROMIUM = '/usr/bin/chromium';

/** Why the browser tests cannot run here, or undefined when they can. */
export function browserSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux network namespaces';
  if (!existsSync(CHROMIUM)) return `no ${CHROMIUM} (apt-get install -y --no-install-recommends chromium)`;
  if (!existsSync(path.join(REPO_ROOT, 'node_modules', 'playwright-core'))) return 'playwright-core is not installed (npm install)';
  if (process.getuid?.() !== 0) return 'needs root for a loopback-only network namespace (unshare -n)';
  for (const tool of ['unshare', 'nsenter', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `no ${tool} (util-linux, iproute2)`;
  }
  const probe = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up'], { timeout: 5000 });
  if (probe.status !== 0) return `unshare -n does not work here: ${probe.stderr.toString().trim() || `exit ${probe.status}`}`;
  return undefined;
}

export interface Netns {
  /** What runs a command inside the namespace when put before it. */
  readonly prefix: string[];
  /** [command, args] that run `command args` inside the namespace. */
  wrap(command: string, args: string[]): [string, string[]];
  close(): void;
}

/** A namespace held open by a sleeping process; everything joins it with nsenter. */
export async function openNetns(): Promise<Netns> {
  const holder = spawn('unshare', ['-n', 'sh', '-c', 'ip link set lo up && echo ready && exec sleep 3600'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    holder.once('exit', (code) => reject(new Error(`the namespace holder exited (${code})`)));
    holder.stdout!.once('data', () => resolve());
  });
  const prefix = ['nsenter', `--net=/proc/${holder.pid!}/ns/net`, '--'];
  return {
    prefix,
    wrap: (command, args) => [prefix[0]!, [...prefix.slice(1), command, ...args]],
    close: () => void holder.kill('SIGKILL'),
  };
}

export async function launchBrowser(netns: Netns): Promise<{ browser: Browser; close(): Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ft-chromium-'));
  const wrapper = path.join(dir, 'chromium');
  const [command, args] = netns.wrap(CHROMIUM, []);
  writeFileSync(wrapper, `#!/bin/sh\nexec ${command} ${args.map((a) => `'${a}'`).join(' ')} "$@"\n`, { mode: 0o755 });
  const browser = await chromium.launch({
    executablePath: wrapper,
    headless: true,
    timeout: 30_000,
    // No name lookups at all: nothing but the receiver's loopback address is reachable anyway.
    args: ['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
export const DESKTOP = { viewport: { width: 1280, height: 800 } };

export interface Answer {
  method: string;
  path: string;
  status: number;
  body: string;
}

/** A context that accepts the receiver's self-signed certificate and records what goes wrong on the page. */
export async function newContext(
  browser: Browser,
  device: typeof PHONE | typeof DESKTOP = PHONE,
): Promise<{ context: BrowserContext; page: Page; problems: string[]; headOffsets: number[]; answers: Answer[] }> {
  const context = await browser.newContext({ ...device, ignoreHTTPSErrors: true, reducedMotion: 'reduce' });
  const page = await context.newPage();
  const problems: string[] = [];
  // What the receiver told the page an upload's offset was (tus HEAD): where a resume starts.
  const headOffsets: number[] = [];
  // And every answer to the page's own API and tus requests, with its text.
  const answers: Answer[] = [];
  page.on('response', (response) => {
    const method = response.request().method();
    const offset = response.headers()['upload-offset'];
    if (method === 'HEAD' && response.status() === 200 && offset !== undefined) headOffsets.push(Number(offset));
    const where = new URL(response.url()).pathname;
    if (!where.startsWith('/api/') && !where.startsWith('/files')) return;
    const answer: Answer = { method, path: where, status: response.status(), body: '' };
    answers.push(answer);
    if (method !== 'HEAD' && method !== 'PATCH') response.text().then((text) => (answer.body = text), () => undefined);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('dialog', (dialog) => {
    problems.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('console', (message) => {
    // A CSP violation or a script error shows up here; a failed request to a stopped receiver is expected.
    if (message.type() === 'error' && !/Failed to load resource|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET|net::ERR/.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  return { context, page, problems, headOffsets, answers };
}

/** Upload throughput in bytes per second through the DevTools protocol (undefined: no limit). */
export async function throttle(page: Page, bytesPerSecond: number | undefined): Promise<void> {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: bytesPerSecond ?? -1,
  });
}
