/**
 * `node bin/ft.js` as a user runs it (bin/ft.js imports dist/: build first). Receivers listen
 * on 127.0.0.1 only, on ports found free just before.
 */
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadFixtures, type Fixtures } from '../helpers/fixtures.js';
import { digest, listFiles, partialBytes, randomFile, settledPartialBytes, waitUntil } from '../helpers/files.js';
import { freePort } from '../helpers/free-port.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { expectOneCleanErrorLine, killAllFt, REPO_ROOT, runFt, spawnFt, startFtServe, unprivilegedUser } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

let fx: Fixtures;
/** fixtures/three-body.txt as a user would type it (relative to the repository) when it exists. */
let threeBody: string;
/** The environment of `ft send` runs: a home of the tests' own (see homeIn). */
let home: NodeJS.ProcessEnv;

/**
 * `ft send` keeps an owner key (~/.config/ft) and hashes and receipts (~/.cache/ft) per user:
 * the tests give it a home of their own, so that they neither read nor write the runner's.
 */
function homeIn(root: string): NodeJS.ProcessEnv {
  return { HOME: root, XDG_CONFIG_HOME: path.join(root, 'config'), XDG_CACHE_HOME: path.join(root, 'cache') };
}

beforeAll(async () => {
  fx = await loadFixtures();
  home = homeIn(await tempDir('ft-cli-home-'));
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

  it.each([
    ['serve', ['--identity', '--insecure-plaintext'], '### `ft serve', '### `ft send'],
    ['send', ['--fingerprint', '--trust-new', '--trust-file', '--insecure-plaintext'], '### `ft send', '### `ft discover'],
  ])('ft %s --help and the README option table both list the TLS options', async (command, flags, from, to) => {
    const ft = await runFt([command, '--help']);
    expect(ft.exit.code).toBe(0);
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf(from), readme.indexOf(to));
    for (const flag of flags) {
      expect(ft.stdout).toMatch(new RegExp(`^ +${flag}\\b`, 'm'));
      expect(section, `${flag} in the README's ft ${command} options`).toMatch(new RegExp(`^\\| \`${flag}\\b[^|]*\` \\|`, 'm'));
    }
  });

  it('ft --version prints the package version and exits 0', async () => {
    const ft = await runFt(['--version']);
    expect(ft.exit.code).toBe(0);
    expect(ft.stdout.trim()).toBe(VERSION);
  });
});

describe('ft serve and ft send', () => {
  // The second time the receipt kept in the cache answers "already there"; without the cache the
  // file is sent again and stored once (no "already there" from a header: issue 9, point 3).
  it('serves, sends a file, and stores it once when it is sent a second time', async () => {
    const dir = await inbox();
    const port = await freePort();
    const serve = await startFtServe(dir, { port });
    expect(serve.port).toBe(port);
    expect(serve.proc.lines()[0]).toMatch(new RegExp(`^ft: receiving into ${escapeRegExp(dir)} on 127\\.0\\.0\\.1:${port}\\b`));
    expect(serve.proc.stderr).toBe(''); // no "anyone can send" warning on loopback

    const first = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
    expect(first.exit.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^sent +three-body\.txt: .* verified$/m);
    expect(first.stdout).toMatch(/^ft: 1 sent, 0 already there; /m);
    expect(await digest(path.join(dir, 'three-body.txt'))).toEqual(await digest(fx.file('three-body.txt')));
    await serve.proc.waitForLine(/^received three-body\.txt /);

    const second = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
    expect(second.exit.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^skipped +three-body\.txt: already there$/m);
    expect(second.stdout).toMatch(/^ft: 0 sent, 1 already there; /m);
    expect(await listFiles(dir)).toEqual(['three-body.txt']);

    // No receipts without the cache: the file goes again, and the receiver keeps one copy.
    const third = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--no-hash-cache'], { env: home });
    expect(third.exit.code, third.stderr).toBe(0);
    expect(third.stdout).toMatch(/^sent +three-body\.txt: .* verified$/m);
    expect(third.stdout).toMatch(/^ft: 1 sent, 0 already there; /m);
    const receivedLines = () => serve.proc.lines().filter((line) => /^received three-body\.txt /.test(line));
    await serve.proc.waitForLine(() => receivedLines().length === 2);
    expect(await listFiles(dir)).toEqual(['three-body.txt']);
    expect(await digest(path.join(dir, 'three-body.txt'))).toEqual(await digest(fx.file('three-body.txt')));
  });

  it('send --json prints one JSON object per line, each run ending with a summary', async () => {
    const serve = await startFtServe(await inbox());
    const to = `127.0.0.1:${serve.port}`;

    const first = await runFt(['send', threeBody, '--to', to, '--fingerprint', serve.fingerprint!, '--json'], { env: home });
    expect(first.exit.code, first.stderr).toBe(0);
    const events = first.json();
    expect(first.lines().length).toBe(events.length);
    expect(events.map((e) => e.event)).toContain('verified');
    expect(events.find((e) => e.event === 'verified')).toMatchObject({ name: 'three-body.txt', resumedFrom: 0 });
    // An open receiver tells no one where it stored a file: no remotePath, not even a null one.
    expect(events.filter((e) => Object.hasOwn(e, 'remotePath'))).toEqual([]);
    expect(events.at(-1)).toMatchObject({ event: 'summary', sent: 1, skipped: 0, failed: 0, refused: 0 });

    const second = await runFt(['send', threeBody, '--to', to, '--fingerprint', serve.fingerprint!, '--json'], { env: home });
    expect(second.exit.code, second.stderr).toBe(0);
    const again = second.json();
    expect(again.map((e) => e.event)).toEqual(['collected', 'skipped', 'summary']);
    expect(again[0]).toMatchObject({ files: 1, bytes: (await digest(fx.file('three-body.txt'))).size });
    expect(again[1]).toMatchObject({ name: 'three-body.txt' });
    expect(again[1]).not.toHaveProperty('remotePath');
    expect(again[2]).toMatchObject({ sent: 0, skipped: 1, bytes: 0, unsent: 0 });
  });

  it('serve --json prints a listening line first, then one line per received file', async () => {
    const dir = await inbox();
    const serve = await startFtServe(dir, { json: true });
    const send = await runFt(['send', threeBody, fx.file('binary.bin'), '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
    expect(send.exit.code, send.stderr).toBe(0);
    await serve.proc.waitForJson((e) => e.event === 'received' && e.name === 'binary.bin');
    await serve.proc.waitForJson((e) => e.event === 'received' && e.name === 'three-body.txt');

    const events = serve.proc.json();
    expect(events[0]).toMatchObject({ event: 'listening', host: '127.0.0.1', port: serve.port, auth: false, tls: true, shortFingerprint: serve.fingerprint });
    expect(events[0]!.fingerprint).toBe(serve.fullFingerprint);
    // Files are made durable in parallel, so they may be reported in either order.
    const received = events.filter((e) => e.event === 'received');
    expect(received.map((e) => e.name).sort()).toEqual(['binary.bin', 'three-body.txt']);
    expect(received.find((e) => e.name === 'binary.bin')).toMatchObject({ path: 'binary.bin', size: (await digest(fx.file('binary.bin'))).size, resumedFrom: 0 });
  });

  it('stops ft serve cleanly on SIGINT (exit 0) after it has received a file', async () => {
    const serve = await startFtServe(await inbox());
    const send = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
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
  it('a missing path fails alone, in words, and exits 2 without connecting when nothing is left to send', async () => {
    const port = await freePort(); // nothing listens: a connection attempt would exit 5
    const ft = await runFt(['send', path.join(await tempDir(), 'no-such-file.txt'), '--to', `127.0.0.1:${port}`], { env: home });
    expect(ft.exit.code, ft.stderr).toBe(2);
    expect(ft.lines()).toEqual([
      expect.stringMatching(/^failed +no-such-file\.txt: LOCAL_FILE: cannot send .*no-such-file\.txt: no such file or folder$/),
      expect.stringMatching(/^ft: 0 sent, 0 already there, 1 failed; 0 B in /),
    ]);
    expect(ft.stderr).toBe('');
  });

  it('a missing path among others fails alone: the others are sent, and the exit code is 2', async () => {
    const dir = await inbox();
    const serve = await startFtServe(dir);
    const ft = await runFt(['send', path.join(await tempDir(), 'typo.txt'), threeBody, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
    expect(ft.exit.code, ft.stderr).toBe(2);
    expect(ft.stdout).toMatch(/^failed +typo\.txt: LOCAL_FILE: cannot send .*typo\.txt: no such file or folder$/m);
    expect(ft.stdout).toMatch(/^sent +three-body\.txt: 24\.2 KiB verified$/m);
    expect(ft.stdout).toMatch(/^ft: 1 sent, 0 already there, 1 failed; /m);
    expect(await listFiles(dir)).toEqual(['three-body.txt']);
  });

  it.each([
    ['127.0.0.1:99999', /port must be from 1 to 65535, not 99999/],
    ['127.0.0.1:abc', /port must be a number from 1 to 65535, not "abc"/],
    ['127.0.0.1:', /ends with ":" but no port/],
    [':21527', /has no host before the port/],
    ['[::1]:', /ends with ":" but no port/],
    ['', /--to is empty/],
  ])('--to %j: one line saying what is wrong, exit 2', async (to, message) => {
    const ft = await runFt(['send', threeBody, '--to', to], { env: home });
    expect(ft.exit.code).toBe(2);
    expectOneCleanErrorLine(ft.stderr);
    expect(ft.stderr).toMatch(message);
    expect(ft.stdout).toBe('');
  });

  it('exits 5 when nothing listens at the address', async () => {
    const port = await freePort();
    const started = Date.now();
    const ft = await runFt(['send', threeBody, '--to', `127.0.0.1:${port}`], { env: home });
    expect(ft.exit.code).toBe(5);
    expectOneCleanErrorLine(ft.stderr);
    // A refused connection is not retried with back-off.
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('exits 2 for an unknown option', async () => {
    const ft = await runFt(['send', threeBody, '--to', '127.0.0.1:9', '--no-such-option'], { env: home });
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

    const ft = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
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

    const ft = await runFt(['send', big, small, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--json'], { env: home });
    expect(ft.exit.code).toBe(4);
    const events = ft.json();
    expect(events.find((e) => e.event === 'refused')).toMatchObject({ name: 'big.bin', code: 'TOO_LARGE' });
    expect(events.at(-1)).toMatchObject({ event: 'summary', sent: 1, refused: 1 });
    expect(await listFiles(dir)).toEqual(['small.txt']);
  });
});

describe('ft serve into a folder it cannot use', () => {
  it('a path that is a file: one line, exit 2', async () => {
    const file = path.join(await tempDir(), 'notes.txt');
    await writeFile(file, 'not a folder\n');
    const ft = await runFt(['serve', file, '--port', String(await freePort()), '--host', '127.0.0.1', '--no-beacon']);
    expect(ft.exit.code).toBe(2);
    expectOneCleanErrorLine(ft.stderr);
    expect(ft.stderr.trimEnd()).toMatch(/^ft: cannot receive into .*notes\.txt: it is a file, not a folder$/);
  });

  it('a path under a file: one line, exit 2', async () => {
    const file = path.join(await tempDir(), 'notes.txt');
    await writeFile(file, 'not a folder\n');
    const ft = await runFt(['serve', path.join(file, 'inbox'), '--port', String(await freePort()), '--host', '127.0.0.1', '--no-beacon']);
    expect(ft.exit.code).toBe(2);
    expectOneCleanErrorLine(ft.stderr);
    expect(ft.stderr.trimEnd()).toMatch(/^ft: cannot create .*notes\.txt\/inbox: .*notes\.txt is a file, not a folder$/);
  });

  it('a symbolic link to nothing: one line, exit 2', async () => {
    const link = path.join(await tempDir(), 'inbox');
    await symlink(path.join(path.dirname(link), 'gone'), link);
    const ft = await runFt(['serve', link, '--port', String(await freePort()), '--host', '127.0.0.1', '--no-beacon']);
    expect(ft.exit.code).toBe(2);
    expectOneCleanErrorLine(ft.stderr);
    expect(ft.stderr.trimEnd()).toMatch(/^ft: cannot receive into .*inbox: it is a symbolic link to something that does not exist$/);
  });

  const user = unprivilegedUser();
  it.skipIf(typeof user === 'string')(`a folder this user may not write, or create a folder in: one line each, exit 2${typeof user === 'string' ? ` (skipped: ${user})` : ''}`, async () => {
    const { uid } = user as { uid: number | undefined };
    const parent = await tempDir();
    const locked = path.join(parent, 'locked');
    await mkdir(locked);
    // Readable and searchable by all, writable by no one but its owner (the tests' user, not `uid`).
    await chmod(parent, 0o755);
    await chmod(locked, uid === undefined ? 0o555 : 0o755);
    const args = ['--port', String(await freePort()), '--host', '127.0.0.1', '--no-beacon'];
    const [into, under] = await Promise.all([runFt(['serve', locked, ...args], { uid }), runFt(['serve', path.join(locked, 'inbox'), ...args], { uid })]);
    for (const ft of [into, under]) {
      expect(ft.exit.code, ft.stderr).toBe(2);
      expectOneCleanErrorLine(ft.stderr);
    }
    expect(into.stderr.trimEnd()).toMatch(/^ft: cannot receive into .*locked: this user \(.*\) may not write there$/);
    expect(under.stderr.trimEnd()).toMatch(/^ft: cannot create .*locked\/inbox in .*locked: this user \(.*\) may not write there$/);
  });
});

describe('local files that cannot be read', () => {
  const user = unprivilegedUser();
  it.skipIf(typeof user === 'string')(`an unreadable file fails alone, in words, exit 2; the others are sent${typeof user === 'string' ? ` (skipped: ${user})` : ''}`, async () => {
    const { uid } = user as { uid: number | undefined };
    const dir = await inbox();
    const serve = await startFtServe(dir);
    const src = await tempDir();
    await chmod(src, 0o755);
    const secret = path.join(src, 'secret.txt');
    const open = path.join(src, 'open.txt');
    await writeFile(secret, 'private\n');
    await writeFile(open, 'public\n');
    await chmod(secret, 0o000);
    await chmod(open, 0o644);
    // A home that user may write to, for its owner key (the runner's home is not that user's).
    const userHome = path.join(src, 'home');
    await mkdir(userHome);
    if (uid !== undefined) await chown(userHome, uid, uid);
    const ft = await runFt(['send', secret, open, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--no-hash-cache'], { uid, env: homeIn(userHome) });
    expect(ft.exit.code, ft.stdout + ft.stderr).toBe(2);
    expect(ft.stdout).toMatch(/^failed +secret\.txt: LOCAL_FILE: cannot read .*secret\.txt: permission denied$/m);
    expect(ft.stdout).not.toMatch(/EACCES|open '/);
    expect(ft.stdout).toMatch(/^sent +open\.txt: 7 B verified$/m);
    expect(ft.stdout).toMatch(/^ft: 1 sent, 0 already there, 1 failed; /m);
    expect(await listFiles(dir)).toEqual(['open.txt']);
  });
});

describe('when retries run out, and the next run', () => {
  afterEach(closeAllProxies);

  it('prints the summary and says to run the command again; that run says "resuming at" first, and resumes', async () => {
    const dir = await inbox();
    const serve = await startFtServe(dir);
    const proxy = await startProxy({ targetPort: serve.port, bytesPerSecond: 1024 * 1024 });
    const src = await tempDir();
    const big = await randomFile(path.join(src, 'big.bin'), 8 * 1024 * 1024);

    const first = spawnFt(['send', big, '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', serve.fingerprint!, '--retries', '1'], { env: home });
    // Mid-body, the path to the receiver goes away for good: the connection drops and the retry finds nothing.
    await waitUntil(async () => (await partialBytes(dir)) > 256 * 1024, 'part of big.bin to arrive');
    await proxy.close();
    const exit = await first.exited;
    expect(exit.code, first.stdout + first.stderr).toBe(5);
    expect(first.lines()).toEqual([expect.stringMatching(/^ft: 0 sent, 0 already there, 1 not sent; [\d.]+ \w+ in /)]);
    // The back-off is 500 ms lengthened by up to as much again at random (jitter).
    expect(first.stderr).toMatch(/^retry +.*; attempt 1 in [5-9]\d\dms$/m);
    expect(first.stderr.trimEnd().split('\n').at(-1)).toMatch(/^ft: .*; run the same command again to resume$/);

    // The receiver says so in words.
    const dropped = await serve.proc.waitForLine(/^dropped /);
    expect(dropped).toMatch(/^dropped +127\.0\.0\.1:\d+: the sender went away/);
    expect(dropped).not.toMatch(/ECONNRESET|Premature close|"bye"/);

    const kept = await settledPartialBytes(dir);
    const again = await runFt(['send', big, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
    expect(again.exit.code, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/^resuming big\.bin at [\d.]+ \w+ of 8 MiB$/m);
    expect(again.stdout).toMatch(/^sent +big\.bin: 8 MiB verified, resumed at [\d.]+ \w+$/m);
    expect(again.stdout).not.toMatch(/resuming/);
    expect(kept).toBeGreaterThan(0);
    expect(await digest(path.join(dir, 'big.bin'))).toEqual(await digest(big));
  });
});

describe('standard output read by a program that stops early', () => {
  it('`ft send … | head -1`: the transfer goes on to the end, without a stack trace', async () => {
    const dir = await inbox();
    const serve = await startFtServe(dir);
    const src = path.join(await tempDir(), 'many');
    await mkdir(src);
    await Promise.all(Array.from({ length: 200 }, (_, i) => writeFile(path.join(src, `f${i}.txt`), `${i}\n`)));
    const ft = spawnFt(['send', src, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], { env: home });
    await ft.waitForLine(/^sent /);
    ft.child.stdout!.destroy(); // the reader goes away, as head does after its line
    const exit = await ft.exited;
    expect(exit.code, ft.stderr).toBe(0);
    expect(ft.stderr).not.toMatch(/EPIPE|    at /);
    expect((await listFiles(dir)).length).toBe(200);
  });
});

/** An inbox that received nothing: no file, finished or partial (the sender sent no header). */
async function expectNothingReceived(dir: string, serve: { proc: { stdout: string } }): Promise<void> {
  expect(await listFiles(dir).catch(() => [])).toEqual([]);
  expect(await partialBytes(dir)).toBe(0);
  expect(serve.proc.stdout).not.toMatch(/^(started|received|restarted) /m);
}

describe("ft send and the receiver's key (TLS, pins)", () => {
  /** A trust file and identity folder of this test's own, so pins of other tests do not apply. */
  async function setup() {
    const root = await tempDir('ft-cli-tls-');
    return { trustFile: path.join(root, 'known-receivers.json'), identity: (name: string) => path.join(root, name) };
  }

  it('first contact without a terminal exits 7 naming the key; --trust-new sends and pins; another key on that address exits 6 naming both; after ft trust forget, --trust-new works again', async () => {
    const { trustFile, identity } = await setup();
    const port = await freePort();
    const firstDir = await inbox();
    const first = await startFtServe(firstDir, { port, args: ['--identity', identity('first')] });
    const to = `127.0.0.1:${port}`;

    const refused = await runFt(['send', threeBody, '--to', to, '--trust-file', trustFile], { env: home });
    expect(refused.exit.code, refused.stderr).toBe(7);
    expectOneCleanErrorLine(refused.stderr);
    expect(refused.stderr).toContain(first.fingerprint!);
    expect(refused.stderr).toContain('--fingerprint');
    expect(refused.stderr).toContain('--trust-new');
    await expectNothingReceived(firstDir, first);
    // A refused first contact pins nothing.
    expect((await runFt(['trust', 'list', '--json', '--trust-file', trustFile])).stdout).toBe('');

    const trusted = await runFt(['send', threeBody, '--to', to, '--trust-new', '--trust-file', trustFile], { env: home });
    expect(trusted.exit.code, trusted.stderr).toBe(0);
    expect(await digest(path.join(firstDir, 'three-body.txt'))).toEqual(await digest(fx.file('three-body.txt')));
    const list = await runFt(['trust', 'list', '--trust-file', trustFile]);
    expect(list.exit.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`^${first.fingerprint!}\\s.*\\b${escapeRegExp(to)}\\b`, 'm'));
    // Pinned now: the next send needs no --trust-new.
    const again = await runFt(['send', threeBody, '--to', to, '--trust-file', trustFile, '--no-hash-cache'], { env: home });
    expect(again.exit.code, again.stderr).toBe(0);

    // Another receiver, with another key, on the same address.
    first.proc.kill('SIGINT');
    await first.proc.exited;
    const otherDir = await inbox();
    const other = await startFtServe(otherDir, { port, args: ['--identity', identity('other')] });
    expect(other.fingerprint).not.toBe(first.fingerprint);
    for (const extra of [[], ['--trust-new']]) {
      // --trust-new is for first contact only: it never overrides a pin.
      const changed = await runFt(['send', threeBody, '--to', to, '--trust-file', trustFile, ...extra], { env: home });
      expect(changed.exit.code, changed.stderr).toBe(6);
      expectOneCleanErrorLine(changed.stderr);
      expect(changed.stderr).toContain(first.fingerprint!);
      expect(changed.stderr).toContain(other.fingerprint!);
      expect(changed.stderr).toContain(`ft trust forget ${to}`);
      await expectNothingReceived(otherDir, other);
    }

    const forget = await runFt(['trust', 'forget', to, '--trust-file', trustFile]);
    expect(forget.exit.code, forget.stderr).toBe(0);
    expect(forget.stdout).toContain(first.fingerprint!);
    const refusedAgain = await runFt(['send', threeBody, '--to', to, '--trust-file', trustFile], { env: home });
    expect(refusedAgain.exit.code, refusedAgain.stderr).toBe(7);
    await expectNothingReceived(otherDir, other);
    const renewed = await runFt(['send', threeBody, '--to', to, '--trust-new', '--trust-file', trustFile], { env: home });
    expect(renewed.exit.code, renewed.stderr).toBe(0);
    expect(await digest(path.join(otherDir, 'three-body.txt'))).toEqual(await digest(fx.file('three-body.txt')));
    const relisted = await runFt(['trust', 'list', '--trust-file', trustFile]);
    expect(relisted.stdout).toContain(other.fingerprint!);
    expect(relisted.stdout).not.toContain(first.fingerprint!);
  });

  it('--fingerprint: the right one in any spelling sends (and pins); a wrong one exits 6, nothing sent', async () => {
    const { trustFile, identity } = await setup();
    const dir = await inbox();
    const serve = await startFtServe(dir, { args: ['--identity', identity('receiver')] });
    const to = `127.0.0.1:${serve.port}`;
    const fp = serve.fingerprint!;
    // Another valid fingerprint: the first character changed.
    const wrong = `${fp[0] === 'A' ? 'B' : 'A'}${fp.slice(1)}`;

    const refused = await runFt(['send', threeBody, '--to', to, '--fingerprint', wrong, '--trust-file', trustFile], { env: home });
    expect(refused.exit.code, refused.stderr).toBe(6);
    expectOneCleanErrorLine(refused.stderr);
    expect(refused.stderr).toContain(fp);
    expect(refused.stderr).toContain(wrong);
    await expectNothingReceived(dir, serve);
    // --trust-new does not soften a wrong --fingerprint.
    const both = await runFt(['send', threeBody, '--to', to, '--fingerprint', wrong, '--trust-new', '--trust-file', trustFile], { env: home });
    expect(both.exit.code, both.stderr).toBe(6);
    await expectNothingReceived(dir, serve);
    expect((await runFt(['trust', 'list', '--json', '--trust-file', trustFile])).stdout).toBe('');

    const lowercase = fp.replace(/-/g, '').toLowerCase();
    const sent = await runFt(['send', threeBody, '--to', to, '--fingerprint', lowercase, '--trust-file', trustFile], { env: home });
    expect(sent.exit.code, sent.stderr).toBe(0);
    expect(await digest(path.join(dir, 'three-body.txt'))).toEqual(await digest(fx.file('three-body.txt')));
    expect((await runFt(['trust', 'list', '--trust-file', trustFile])).stdout).toContain(fp);
  });

  it('--json: first contact refused is an error event RECEIVER_UNKNOWN naming the key, exit 7', async () => {
    const { trustFile } = await setup();
    const dir = await inbox();
    const serve = await startFtServe(dir);
    const ft = await runFt(['send', threeBody, '--to', `127.0.0.1:${serve.port}`, '--json', '--trust-file', trustFile], { env: home });
    expect(ft.exit.code, ft.stderr).toBe(7);
    const error = ft.json().find((e) => e.event === 'error');
    expect(error).toMatchObject({ code: 'RECEIVER_UNKNOWN' });
    expect(String(error!.message)).toContain(serve.fingerprint!);
    await expectNothingReceived(dir, serve);
  });

  it('an --identity that cannot be used: one line naming it, exit 2, nothing listening', async () => {
    const { identity } = await setup();
    const corrupt = identity('corrupt');
    await mkdir(corrupt, { mode: 0o700 });
    await writeFile(path.join(corrupt, 'identity.pem'), 'garbage\n', { mode: 0o600 });
    const port = await freePort();
    const ft = await runFt(['serve', await inbox(), '--port', String(port), '--host', '127.0.0.1', '--no-beacon', '--identity', corrupt]);
    expect(ft.exit.code, ft.stderr).toBe(2);
    expectOneCleanErrorLine(ft.stderr);
    expect(ft.stderr).toContain(path.join(corrupt, 'identity.pem'));
    expect(ft.stdout).not.toMatch(/receiving into/);
    // Left alone: never replaced by a new key behind the user's back.
    expect(await readFile(path.join(corrupt, 'identity.pem'), 'utf8')).toBe('garbage\n');
  });

  it('ft serve prints the same fingerprint on every start with one --identity, and --json listening has it', async () => {
    const { identity } = await setup();
    const dir = await inbox();
    const args = ['--identity', identity('kept')];
    const starts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const serve = await startFtServe(dir, { args });
      const line = serve.proc.lines().find((l) => l.startsWith('ft: fingerprint '))!;
      expect(line).toMatch(i === 0 ? /\(a new identity\)/ : /^ft: fingerprint [A-Z2-7-]+: /);
      starts.push(serve.fingerprint!);
      serve.proc.kill('SIGINT');
      expect((await serve.proc.exited).code).toBe(0);
    }
    const json = await startFtServe(dir, { args, json: true });
    const listening = json.proc.json()[0]!;
    expect(listening).toMatchObject({ event: 'listening', tls: true, shortFingerprint: starts[0], identityCreated: false });
    expect(listening.fingerprint).toMatch(/^[A-Z2-7]{52}$/);
    expect(String(listening.fingerprint).startsWith(starts[0]!.replace(/-/g, ''))).toBe(true);
    expect(starts[1]).toBe(starts[0]);
    // The key is kept owner-only.
    const files = await readdir(identity('kept'));
    expect(files.length).toBeGreaterThan(0);
    for (const name of files) expect((await stat(path.join(identity('kept'), name))).mode & 0o077).toBe(0);
    expect((await stat(identity('kept'))).mode & 0o077).toBe(0);
    // Another folder is another key.
    const other = await startFtServe(dir, { args: ['--identity', identity('another')] });
    expect(other.fingerprint).not.toBe(starts[0]);
  });
});

describe('--insecure-plaintext', () => {
  const PLAIN = /^ft: warning: --insecure-plaintext: nothing is encrypted/m;

  it('both sides give it: the file goes, and each side warns on every run', async () => {
    const dir = await inbox();
    const port = await freePort();
    for (let run = 0; run < 2; run++) {
      const serve = await startFtServe(dir, { port, args: ['--insecure-plaintext'] });
      expect(serve.fingerprint).toBeUndefined();
      expect(serve.proc.stdout).not.toMatch(/^ft: fingerprint /m);
      expect(serve.proc.stderr).toMatch(PLAIN);
      const send = await runFt(['send', threeBody, '--to', `127.0.0.1:${port}`, '--insecure-plaintext', '--no-hash-cache'], { env: home });
      expect(send.exit.code, send.stderr).toBe(0);
      expect(send.stderr).toMatch(PLAIN);
      expect(send.stdout).toMatch(/^sent +three-body\.txt: .* verified$/m);
      serve.proc.kill('SIGINT');
      await serve.proc.exited;
    }
    expect(await digest(path.join(dir, 'three-body.txt'))).toEqual(await digest(fx.file('three-body.txt')));
    // No key, so nothing pinned.
    const pins = await runFt(['trust', 'list', '--json'], { env: home });
    expect(pins.stdout).not.toContain(`127.0.0.1:${port}`);
    const json = await startFtServe(dir, { port, args: ['--insecure-plaintext'], json: true });
    await json.proc.waitForJson((e) => e.event === 'warning' && /--insecure-plaintext/.test(String(e.message)));
    expect(json.proc.json()[0]).toMatchObject({ event: 'listening', tls: false });
    expect(json.proc.json()[0]).not.toHaveProperty('fingerprint');
  });

  it('only one side gives it: exit 5 (TLS_FAILED) with a line saying what to do, nothing received', async () => {
    const { trustFile } = { trustFile: path.join(await tempDir('ft-cli-tls-'), 'known-receivers.json') };
    const plainDir = await inbox();
    const plain = await startFtServe(plainDir, { args: ['--insecure-plaintext'] });
    const tlsSender = await runFt(['send', threeBody, '--to', `127.0.0.1:${plain.port}`, '--trust-new', '--trust-file', trustFile], { env: home });
    expect(tlsSender.exit.code, tlsSender.stderr).toBe(5);
    expectOneCleanErrorLine(tlsSender.stderr);
    expect(tlsSender.stderr).toMatch(/TLS/);
    expect(tlsSender.stderr).toContain('--insecure-plaintext');
    await expectNothingReceived(plainDir, plain);
    expect((await runFt(['trust', 'list', '--json', '--trust-file', trustFile])).stdout).toBe('');

    const tlsDir = await inbox();
    const tls = await startFtServe(tlsDir);
    const plainSender = await runFt(['send', threeBody, '--to', `127.0.0.1:${tls.port}`, '--insecure-plaintext'], { env: home });
    expect(plainSender.exit.code, plainSender.stderr).toBe(5);
    // The warning, then one line saying what went wrong.
    const lines = plainSender.stderr.trimEnd().split('\n');
    expect(lines, plainSender.stderr).toHaveLength(2);
    expect(lines[0]).toMatch(PLAIN);
    expect(lines[1]).toMatch(/^ft: /);
    expect(lines[1]).toMatch(/TLS/);
    expect(lines[1]).toContain('--insecure-plaintext');
    expect(plainSender.stderr).not.toContain('    at ');
    await expectNothingReceived(tlsDir, tls);
  });
});
