/**
 * A real install: `npm pack`, then the tarball installed into an empty prefix and into a
 * script's own folder, outside the checkout and with no network at all (`unshare -n`, npm
 * `--offline`: the runtime dependencies come from an npm cache of the test's own, filled by
 * one install of the tarball from the registry first, so the run depends on no cache on the
 * machine). From there `ft --version`, `ft serve` + `ft send` over loopback, and a script
 * importing `ft-lan` by name, all inside the same network namespace; so are a stream from a pipe
 * (`ft send - --as`) under `--limit-rate`, and `ft status --json`.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const REPO = path.resolve(import.meta.dirname, '../..');
const VERSION = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const hasUnshare = (() => {
  try {
    execFileSync('unshare', ['-n', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

afterAll(removeTempDirs);

/** Runs a shell script in a new network namespace with only loopback up. */
function offline(script: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 120_000): string {
  return execFileSync('unshare', ['-n', 'sh', '-ec', `ip link set lo up 2>/dev/null || true\n${script}`], {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
}

describe.skipIf(!hasUnshare)('the packed tarball (needs unshare -n, as root)', () => {
  it('installs without network or checkout and ft serve, ft send and the library work from there', async () => {
    const work = await tempDir('ft-install-');
    execFileSync('npm', ['pack', '--pack-destination', work], { cwd: REPO, stdio: 'ignore', timeout: 120_000 });
    const tarball = path.join(work, `ft-lan-${VERSION}.tgz`);
    const listed = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    const tops = new Set(listed.map((entry) => entry.split('/')[1]));
    expect([...tops].sort()).toEqual(['LICENSE', 'README.md', 'bin', 'dist', 'docs', 'package.json']);
    // Source maps point at src/, which is not shipped.
    expect(listed.filter((entry) => entry.endsWith('.map'))).toEqual([]);

    const prefix = path.join(work, 'prefix');
    const config = path.join(work, 'config');
    const env = { XDG_CONFIG_HOME: config, XDG_CACHE_HOME: config, npm_config_update_notifier: 'false', npm_config_cache: path.join(work, 'npm-cache') };
    // With the network: what the tarball's dependencies resolve to today, into that cache.
    execFileSync('npm', ['install', '-g', '--no-audit', '--no-fund', '--prefix', path.join(work, 'warm'), tarball], {
      cwd: work,
      env: { ...process.env, ...env },
      stdio: 'ignore',
      timeout: 300_000,
    });
    offline(`npm install -g --offline --no-audit --no-fund --prefix '${prefix}' '${tarball}'`, work, env);
    const installed = path.join(prefix, 'lib', 'node_modules', 'ft-lan');
    expect(lstatSync(installed).isSymbolicLink()).toBe(false);
    expect(existsSync(path.join(installed, 'src'))).toBe(false);
    const ft = path.join(prefix, 'bin', 'ft');
    expect(offline(`'${ft}' --version`, work, env).trim()).toBe(VERSION);

    // ft serve and ft send, both from the installed copy, in one namespace.
    const inbox = path.join(work, 'inbox');
    writeFileSync(path.join(work, 'hello.txt'), 'installed and sent\n');
    const sent = offline(
      `'${ft}' serve '${inbox}' --host 127.0.0.1 --port 19733 --no-web --json > serve.log 2>&1 &\n` +
        `serve=$!\ntrap 'kill $serve' EXIT\n` +
        `for i in $(seq 50); do grep -q listening serve.log && break; sleep 0.2; done\n` +
        `'${ft}' send hello.txt --to 127.0.0.1:19733 --trust-new --json\n` +
        // The backup-script features from the installed copy too: a stream, a rate limit, and status.
        `printf 'from a pipe\\n' | '${ft}' send - --as piped.txt --to 127.0.0.1:19733 --limit-rate 1M --json\n` +
        `'${ft}' status '${inbox}' --json`,
      work,
      env,
    );
    expect(sent.match(/"event":"verified"/g)).toHaveLength(2);
    expect(sent).toMatch(/"event":"summary".*"partials":0/);
    expect(readFileSync(path.join(inbox, 'hello.txt'), 'utf8')).toBe('installed and sent\n');
    expect(readFileSync(path.join(inbox, 'piped.txt'), 'utf8')).toBe('from a pipe\n');

    // A backup script's folder: the package as a dependency, imported by name.
    const script = path.join(work, 'script');
    mkdirSync(script);
    writeFileSync(path.join(script, 'package.json'), '{"name":"backup-job","private":true,"type":"module"}');
    offline(`npm install --offline --no-audit --no-fund '${tarball}'`, script, env);
    writeFileSync(
      path.join(script, 'job.mjs'),
      `import { serve, send, loadOrCreateIdentity } from 'ft-lan';
import { writeFileSync } from 'node:fs';
const { identity } = await loadOrCreateIdentity('id');
const receiver = await serve({ dir: 'in', host: '127.0.0.1', port: 0, identity, web: false });
writeFileSync('a.txt', 'from a script\\n');
const report = await send(['a.txt'], { host: '127.0.0.1', port: receiver.address.port, fingerprint: receiver.fingerprint });
console.log(report.files.map((f) => f.status).join());
await receiver.close();
`,
    );
    expect(offline('node job.mjs', script, env).trim()).toBe('sent');
    expect(readdirSync(path.join(script, 'in')).filter((name) => !name.startsWith('.'))).toEqual(['a.txt']);
    expect(readFileSync(path.join(script, 'in', 'a.txt'), 'utf8')).toBe('from a script\n');
  });
});

// Keep the unit the README points to loadable by systemd where systemd-analyze exists.
describe('docs/ft.service', () => {
  it('names the command it runs and restarts on failure', () => {
    const unit = readFileSync(path.join(REPO, 'docs', 'ft.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/local\/bin\/ft serve \S+ --json/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
  });
});
