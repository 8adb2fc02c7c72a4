/**
 * What crosses the wire: a real transfer (`ft serve` and `ft send` processes, with a token from a
 * token file) over loopback, captured with tcpdump on `lo`, port of that receiver only. The raw
 * capture must hold no plaintext of the file's content, its name, or the token. As a control,
 * the same transfer with --insecure-plaintext on both sides does show the content and the name
 * (so the search would find them), and still never the token (it is proved, never sent).
 * Needs root and tcpdump (Debian package `tcpdump`; .ci/run installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { killAllFt, runFt, startFtServe } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

function cannotCapture(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root (tcpdump needs it)';
  const probe = spawnSync('tcpdump', ['--version'], { stdio: 'pipe', timeout: 10_000 });
  if (probe.error || probe.status !== 0) return 'tcpdump is not installed (apt-get install tcpdump)';
  return undefined;
}
const skipReason = cannotCapture();

const captures = new Set<ChildProcess>();
afterEach(async () => {
  for (const child of captures) child.kill('SIGKILL');
  captures.clear();
  await killAllFt();
});
afterAll(removeTempDirs);

/** tcpdump on loopback for one TCP port, writing every packet to `file` as it comes; resolves once it listens. */
async function startCapture(port: number, file: string): Promise<{ stop(): Promise<Buffer>; log(): string }> {
  // --immediate-mode: each packet is handed over at once, not held in a kernel block until it fills or
  // times out (a SIGINT then loses what was held); -B: a 64 MiB buffer, so a burst is not dropped.
  const child = spawn('tcpdump', ['-i', 'lo', '--immediate-mode', '-U', '-n', '-s', '0', '-B', '65536', '-w', file, 'tcp', 'port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  captures.add(child);
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tcpdump did not start within 20 s: ${stderr}`)), 20_000);
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      if (/listening on/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tcpdump exited (${code}): ${stderr}`));
    });
  });
  return {
    log: () => stderr,
    async stop() {
      // Let the last packets (FIN, ACK) land, then stop it cleanly so the file is complete.
      await new Promise((resolve) => setTimeout(resolve, 500));
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      captures.delete(child);
      return readFile(file);
    },
  };
}

interface Transfer {
  pcap: Buffer;
  content: Buffer;
  marker: Buffer;
  name: string;
  token: string;
}

/** One `ft serve` / `ft send` transfer over 127.0.0.1 with a token file, captured; both sides plaintext when asked. */
async function capturedTransfer(plaintext: boolean): Promise<Transfer> {
  const dir = await tempDir('ft-capture-');
  const tag = randomBytes(6).toString('hex');
  const token = `capture-token-${tag}`;
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const name = `capture-canary-${tag}.txt`;
  const marker = Buffer.from(`FT-CAPTURE-CANARY-${tag}|`);
  // Distinctive and long (256 KiB of the marker), so it would show in any capture in the clear.
  const content = Buffer.concat(Array.from({ length: Math.ceil((256 * 1024) / marker.length) }, () => marker));
  const file = path.join(dir, name);
  await writeFile(file, content);
  const insecure = plaintext ? ['--insecure-plaintext'] : [];

  const receiver = await startFtServe(path.join(dir, 'inbox'), { args: ['--token-file', tokenFile, ...insecure], json: true });
  const capture = await startCapture(receiver.port, path.join(dir, 'transfer.pcap'));
  const sent = await runFt(['send', file, '--to', `127.0.0.1:${receiver.port}`, '--token-file', tokenFile, '--retries', '0', ...insecure], { timeoutMs: 60_000 });
  expect(sent.exit.code, sent.stderr).toBe(0);
  const pcap = await capture.stop();
  receiver.proc.kill('SIGTERM');
  await receiver.proc.exited;
  // The transfer really happened, and the capture saw it: at least the file's size on the wire.
  expect((await readFile(path.join(receiver.dir, name))).equals(content)).toBe(true);
  expect((await stat(path.join(dir, 'transfer.pcap'))).size, `tcpdump: ${capture.log()}`).toBeGreaterThan(content.length);
  return { pcap, content, marker, name, token };
}

describe.skipIf(skipReason !== undefined)(`a captured transfer${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('encrypted (the default): no plaintext of the content, the name or the token anywhere in the capture', async () => {
    const t = await capturedTransfer(false);
    expect(t.pcap.includes(t.marker), 'the file content is readable on the wire').toBe(false);
    expect(t.pcap.includes(t.content.subarray(0, 16)), 'a piece of the content is readable on the wire').toBe(false);
    expect(t.pcap.includes(Buffer.from(t.name)), 'the file name is readable on the wire').toBe(false);
    expect(t.pcap.includes(Buffer.from(`capture-canary-`)), 'the name prefix is readable on the wire').toBe(false);
    expect(t.pcap.includes(Buffer.from(t.token)), 'the token is readable on the wire').toBe(false);
    // Not even a frame of the protocol: the JSON of a hello or header would show as `"type"`.
    expect(t.pcap.includes(Buffer.from('"type"'))).toBe(false);
  });

  it('control: with --insecure-plaintext on both sides the same search does find the content and the name (and still not the token)', async () => {
    const t = await capturedTransfer(true);
    expect(t.pcap.includes(t.marker)).toBe(true);
    expect(t.pcap.includes(Buffer.from(t.name))).toBe(true);
    expect(t.pcap.includes(Buffer.from(t.token))).toBe(false);
  });
});
