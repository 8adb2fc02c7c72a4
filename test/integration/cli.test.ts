/**
 * `node bin/ft.js` as a user runs it (bin/ft.js imports dist/: build first). Receivers listen
 * on 127.0.0.1 only, on ports found free just before.
 */
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadFixtures, type Fixtures } from '../helpers/fixtures.js';
import { digest, listFiles, randomFile } from '../helpers/files.js';
import { freePort } from '../helpers/free-port.js';
import { killAllFt, REPO_ROOT, runFt, startFtServe } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let fx: Fixtures;
/** fixtures/three-body.txt as a user would type it (relative to the repository) when it exists. */
let threeBody: string;

beforeAll(async () => {
  fx = await loadFixtures();
  const file = fx.file('three-body.txt');
  const relative = path.relative(REPO_ROOT, file);
  threeBody = relative.startsWith('..') ? file : relative;
});
afterEach(killAllFt);
afterAll(removeTempDirs);

async function inbox(): Promise<string> {
  return path.join(await tempDir('ft-cli-'), 'inbox');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function expectOneCleanErrorLine(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^ft: /);
  expect(stderr).not.toContain('    at ');
}

describe('ft help and version', () => {
  it('ft --help lists both commands and exits 0', async () => {
    const ft = await runFt(['--help']);
    expect(ft.exit.code).toBe(0);
    expect(ft.stdout).toMatch(/Usage: ft/);
    expect(ft.stdout).toMatch(/\bserve\b/);
    expect(ft.stdout).toMatch(/\bsend\b/);
  });

  it('ft send --help documents --to and exits 0', async () => {
    const ft = await runFt(['send', '--help']);
    expect(ft.exit.code).toBe(0);
    expect(ft.stdout).toContain('--to');
    expect(ft.stdout).toContain('--retries');
  });

  it('ft --version prints the package version and exits 0', async () => {
    const ft = await runFt(['--version']);
    expect(ft.exit.code).toBe(0);
    expect(ft.stdout.trim()).toBe(VERSION);
  });
});

describe('ft serve and ft send', () => {
  // The second time the file is sent again and stored once (no "already there" from a header: issue 9, point 3).
  it('serves, sends a file, and stores it once when it is sent a second time', async () => {
    const dir = await inbox();
    const port = await freePort();
    const serve = await startFtServe(dir, { port });
    expect(serve.port).toBe(port);
    expect(serve.proc.lines()[0]).toMatch(new RegExp(`^ft: receiving into ${escapeRegExp(dir)} on 127\\.0\\.0\\.1:${port}\\b`));
    expect(serve.proc.stderr).toBe(''); // no "anyone can send" warning on loopback

    const first = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`]);
    expect(first.exit.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^sent +three-body\.txt: .* verified$/m);
    expect(first.stdout).toMatch(/^ft: 1 sent, 0 already there; /m);
    expect(await digest(path.join(dir, 'three-body.txt'))).toEqual(await digest(fx.file('three-body.txt')));
    await serve.proc.waitForLine(/^received three-body\.txt /);

    const second = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`]);
    expect(second.exit.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^sent +three-body\.txt: .* verified$/m);
    expect(second.stdout).toMatch(/^ft: 1 sent, 0 already there; /m);
    expect(await listFiles(dir)).toEqual(['three-body.txt']);
  });

  it('send --json prints one JSON object per line, each run ending with a summary', async () => {
    const serve = await startFtServe(await inbox());
    const to = `127.0.0.1:${serve.port}`;

    const first = await runFt(['send', threeBody, '--to', to, '--json']);
    expect(first.exit.code, first.stderr).toBe(0);
    const events = first.json();
    expect(first.lines().length).toBe(events.length);
    expect(events.map((e) => e.event)).toContain('verified');
    expect(events.find((e) => e.event === 'verified')).toMatchObject({ name: 'three-body.txt', remotePath: 'three-body.txt', resumedFrom: 0 });
    expect(events.at(-1)).toMatchObject({ event: 'summary', sent: 1, skipped: 0, failed: 0, refused: 0 });

    const second = await runFt(['send', threeBody, '--to', to, '--json']);
    expect(second.exit.code, second.stderr).toBe(0);
    const again = second.json();
    expect(second.lines().length).toBe(again.length);
    expect(again.find((e) => e.event === 'verified')).toMatchObject({ name: 'three-body.txt', remotePath: 'three-body.txt' });
    expect(again.at(-1)).toMatchObject({ event: 'summary', sent: 1, skipped: 0, failed: 0, refused: 0 });
  });

  it('serve --json prints a listening line first, then one line per received file', async () => {
    const dir = await inbox();
    const serve = await startFtServe(dir, { json: true });
    const send = await runFt(['send', threeBody, fx.file('binary.bin'), '--to', `127.0.0.1:${serve.port}`]);
    expect(send.exit.code, send.stderr).toBe(0);
    await serve.proc.waitForJson((e) => e.event === 'received' && e.name === 'binary.bin');
    await serve.proc.waitForJson((e) => e.event === 'received' && e.name === 'three-body.txt');

    const events = serve.proc.json();
    expect(events[0]).toMatchObject({ event: 'listening', host: '127.0.0.1', port: serve.port, auth: false });
    // Files are made durable in parallel, so they may be reported in either order.
    const received = events.filter((e) => e.event === 'received');
    expect(received.map((e) => e.name).sort()).toEqual(['binary.bin', 'three-body.txt']);
    expect(received.find((e) => e.name === 'binary.bin')).toMatchObject({ path: 'binary.bin', size: (await digest(fx.file('binary.bin'))).size, resumedFrom: 0 });
  });

  it('stops ft serve cleanly on SIGINT (exit 0) after it has received a file', async () => {
    const serve = await startFtServe(await inbox());
    const send = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`]);
    expect(send.exit.code, send.stderr).toBe(0);
    await serve.proc.waitForLine(/^received three-body\.txt /);
    serve.proc.kill('SIGINT');
    const exit = await serve.proc.exited;
    expect(exit, serve.proc.stdout + serve.proc.stderr).toEqual({ code: 0, signal: null });
    expect(serve.proc.stdout).toMatch(/^ft: stopped/m);
    expect(serve.proc.stderr).toBe('');
  });

  it('stops ft serve cleanly on SIGINT (exit 0) sent as soon as it prints its address', async () => {
    // The address line says "ready": a script may interrupt the receiver right after reading it.
    // The window this probes is small, so several receivers are tried at once.
    const serves = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const serve = await startFtServe(await inbox());
        serve.proc.kill('SIGINT');
        return serve;
      }),
    );
    const exits = await Promise.all(serves.map((serve) => serve.proc.exited));
    expect(exits).toEqual(serves.map(() => ({ code: 0, signal: null })));
    for (const serve of serves) expect(serve.proc.stdout).toMatch(/^ft: stopped/m);
  });
});

describe('ft exit codes', () => {
  it('exits 2 with one line on stderr for a missing file', async () => {
    const port = await freePort();
    const ft = await runFt(['send', path.join(await tempDir(), 'no-such-file.txt'), '--to', `127.0.0.1:${port}`]);
    expect(ft.exit.code).toBe(2);
    expectOneCleanErrorLine(ft.stderr);
    expect(ft.stderr).toContain('no-such-file.txt');
  });

  it('exits 5 when nothing listens at the address', async () => {
    const port = await freePort();
    const started = Date.now();
    const ft = await runFt(['send', threeBody, '--to', `127.0.0.1:${port}`]);
    expect(ft.exit.code).toBe(5);
    expectOneCleanErrorLine(ft.stderr);
    // A refused connection is not retried with back-off.
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('exits 2 for an unknown option', async () => {
    const ft = await runFt(['send', threeBody, '--to', '127.0.0.1:9', '--no-such-option']);
    expect(ft.exit.code).toBe(2);
    expect(ft.stderr).toContain('--no-such-option');
    expect(ft.stderr).not.toContain('    at ');
  });

  it('exits 2 for a bad option value (port 0)', async () => {
    const ft = await runFt(['serve', await inbox(), '--port', '0']);
    expect(ft.exit.code).toBe(2);
    expect(ft.stderr).not.toContain('    at ');
  });

  it('exits 4 when the receiver refuses a conflicting file under --on-conflict reject', async () => {
    const dir = await inbox();
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'three-body.txt'), 'a different three-body.txt\n');
    const serve = await startFtServe(dir, { args: ['--on-conflict', 'reject'] });

    const ft = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`]);
    expect(ft.exit.code).toBe(4);
    expect(ft.stdout).toMatch(/^refused +three-body\.txt: CONFLICT: /m);
    expect(await readFile(path.join(dir, 'three-body.txt'), 'utf8')).toBe('a different three-body.txt\n');
    expect(await listFiles(dir)).toEqual(['three-body.txt']);
  });

  it('exits 4 when a file is over --max-file-size, and still delivers the others', async () => {
    const dir = await inbox();
    const serve = await startFtServe(dir, { args: ['--max-file-size', '10k'], json: true });
    const src = await tempDir();
    const big = await randomFile(path.join(src, 'big.bin'), 20_000);
    const small = path.join(src, 'small.txt');
    await writeFile(small, 'small\n');

    const ft = await runFt(['send', big, small, '--to', `127.0.0.1:${serve.port}`, '--json']);
    expect(ft.exit.code).toBe(4);
    const events = ft.json();
    expect(events.find((e) => e.event === 'refused')).toMatchObject({ name: 'big.bin', code: 'TOO_LARGE' });
    expect(events.at(-1)).toMatchObject({ event: 'summary', sent: 1, refused: 1 });
    expect(await listFiles(dir)).toEqual(['small.txt']);
  });
});
