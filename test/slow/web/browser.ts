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

export interface JsonChild {
  readonly child: ChildProcess;
  events(name?: string): Array<Record<string, unknown>>;
  waitFor(match: (event: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGKILL (a receiver that dies, not one that shuts down) and wait for the exit. */
  kill(): Promise<void>;
}

/** A child printing JSON lines, killed after `lifetimeMs` whatever happens. */
export function spawnJson(command: string, args: string[], lifetimeMs: number): JsonChild {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: REPO_ROOT });
  const events: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    buffered += text;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        events.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not JSON
      }
    }
    for (const wake of waiters.splice(0)) wake();
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const timer = setTimeout(() => child.kill('SIGKILL'), lifetimeMs);
  void exited.then(() => {
    clearTimeout(timer);
    for (const wake of waiters.splice(0)) wake();
  });
  return {
    child,
    events: (name) => (name === undefined ? events : events.filter((e) => e.event === name)),
    async waitFor(match, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find(match);
        if (found) return found;
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${command} exited first: ${stderr.slice(-2000)}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for an event; stderr: ${stderr.slice(-2000)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
