/**
 * `ft trust list` and `ft trust forget` as a user runs them (bin/ft.js imports dist/: build
 * first), on a trust file written by the store as `ft send` would.
 */
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { shortFingerprint } from '../../src/auth/fingerprint.js';
import { TrustStore } from '../../src/auth/trust-store.js';
import { expectOneCleanErrorLine, killAllFt, runFt, unprivilegedUser } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(killAllFt);
afterAll(removeTempDirs);

const LAPTOP = 'LAPTOPKEYAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const NAS = 'NASKEYBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB';
const DESK = 'DESKKEYCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC';
const ENV = { TZ: 'UTC' };

async function pinned(): Promise<string> {
  const file = path.join(await tempDir('ft-cli-trust-'), 'known-receivers.json');
  const times = ['2025-03-01T10:00:00.000Z', '2025-03-02T11:30:00.000Z', '2025-03-03T12:45:00.000Z', '2025-03-04T08:05:00.000Z'];
  let i = 0;
  const store = new TrustStore(file, { now: () => new Date(times[i++]!) });
  await store.record({ fingerprint: LAPTOP, name: 'laptop', address: '192.168.1.20:9527' });
  await store.record({ fingerprint: NAS, name: 'nas', address: '[fe80::2]:9527' });
  await store.record({ fingerprint: DESK, name: 'desk', address: '192.168.1.30:9000' });
  await store.record({ fingerprint: LAPTOP, address: '192.168.1.21:9527' });
  return file;
}

describe('ft trust', () => {
  it('list on a file that does not exist yet: says nothing is pinned (and creates nothing); --json prints nothing', async () => {
    const file = path.join(await tempDir('ft-cli-trust-'), 'none', 'known-receivers.json');
    const run = await runFt(['trust', 'list', '--trust-file', file]);
    expect(run.exit.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^no receivers pinned \(.*known-receivers\.json\)/);
    const json = await runFt(['trust', 'list', '--json', '--trust-file', file]);
    expect(json.exit.code).toBe(0);
    expect(json.stdout).toBe('');
    await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('list: a table of short fingerprints, names, addresses, first pinned and last seen; --json the entries', async () => {
    const file = await pinned();
    const run = await runFt(['trust', 'list', '--trust-file', file], { env: ENV });
    expect(run.exit.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^FINGERPRINT +NAMES +ADDRESSES +PINNED +LAST SEEN$/);
    expect(lines[1]).toMatch(new RegExp(`^${shortFingerprint(LAPTOP)} +laptop +192\\.168\\.1\\.21:9527, 192\\.168\\.1\\.20:9527 +2025-03-01 10:00 +2025-03-04 08:05$`));
    expect(lines[2]).toMatch(new RegExp(`^${shortFingerprint(NAS)} +nas +\\[fe80::2\\]:9527 +2025-03-02 11:30 +2025-03-02 11:30$`));
    expect(lines[3]).toContain(shortFingerprint(DESK));
    expect(lines).toHaveLength(4);
    const json = await runFt(['trust', 'list', '--json', '--trust-file', file]);
    expect(json.exit.code).toBe(0);
    expect(json.json()).toEqual((await new TrustStore(file).list()).map((entry) => ({ event: 'pinned', ...entry })));
  });

  it('forget by name, by address, by a short fingerprint and by a full one: says what it removed, and it is gone', async () => {
    const file = await pinned();
    const byName = await runFt(['trust', 'forget', 'LAPTOP', '--trust-file', file]);
    expect(byName.exit.code, byName.stderr).toBe(0);
    expect(byName.stdout).toContain(`forgot ${shortFingerprint(LAPTOP)} (laptop; 192.168.1.21:9527, 192.168.1.20:9527)`);
    expect(byName.stdout).toMatch(/first contact/);
    const byAddress = await runFt(['trust', 'forget', '[FE80::2]:9527', '--trust-file', file]);
    expect(byAddress.exit.code, byAddress.stderr).toBe(0);
    expect(byAddress.stdout).toContain(`forgot ${shortFingerprint(NAS)} (nas; [fe80::2]:9527)`);
    expect((await new TrustStore(file).list()).map((e) => e.fingerprint)).toEqual([DESK]);
    const byShort = await runFt(['trust', 'forget', shortFingerprint(DESK).toLowerCase(), '--trust-file', file]);
    expect(byShort.exit.code, byShort.stderr).toBe(0);
    expect(byShort.stdout).toContain(`forgot ${shortFingerprint(DESK)} (desk; 192.168.1.30:9000)`);
    expect(await new TrustStore(file).list()).toEqual([]);

    const again = await pinned();
    const byFull = await runFt(['trust', 'forget', NAS, '--trust-file', again]);
    expect(byFull.exit.code, byFull.stderr).toBe(0);
    expect(byFull.stdout).toContain(`forgot ${shortFingerprint(NAS)}`);
    expect((await new TrustStore(again).list()).map((e) => e.fingerprint)).toEqual([LAPTOP, DESK]);
  });

  it('forget that matches nothing: exit 2, one line, the file unchanged', async () => {
    const file = await pinned();
    const before = await readFile(file, 'utf8');
    for (const what of ['toaster', '10.9.9.9:9527', shortFingerprint('Z'.repeat(52))]) {
      const run = await runFt(['trust', 'forget', what, '--trust-file', file]);
      expect(run.exit.code).toBe(2);
      expectOneCleanErrorLine(run.stderr);
      expect(run.stderr).toMatch(/^ft: no pinned receiver has the name, address or fingerprint .* \(see ft trust list\)$/m);
    }
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('a corrupt file: list and forget exit 2 with one line naming the file and the problem, and leave it alone', async () => {
    const file = path.join(await tempDir('ft-cli-trust-'), 'known-receivers.json');
    const corrupt = JSON.stringify({ version: 1, receivers: [{ fingerprint: 'nope', names: [], addresses: [], added: '2025-01-01T00:00:00.000Z', lastSeen: '2025-01-01T00:00:00.000Z' }] });
    await writeFile(file, corrupt, { mode: 0o600 });
    for (const args of [['list'], ['list', '--json'], ['forget', 'laptop']]) {
      const run = await runFt(['trust', ...args, '--trust-file', file]);
      expect(run.exit.code, args.join(' ')).toBe(2);
      expectOneCleanErrorLine(run.stderr);
      expect(run.stderr).toContain(file);
      expect(run.stderr).toContain('receivers[0].fingerprint');
      if (args.includes('--json')) expect(run.json()).toEqual([expect.objectContaining({ event: 'error', code: 'TRUST_STORE_INVALID' })]);
    }
    await writeFile(file, '{"version":1,"receivers":[');
    const truncated = await runFt(['trust', 'list', '--trust-file', file]);
    expect(truncated.exit.code).toBe(2);
    expect(truncated.stderr).toMatch(/^ft: the trust file .* is invalid: not JSON/);
    await writeFile(file, corrupt);
    expect(await readFile(file, 'utf8')).toBe(corrupt);
  });

  const user = unprivilegedUser();
  it.skipIf(typeof user === 'string')(`a user who may read the file but not write it: list works, forget says so in one line${typeof user === 'string' ? ` (skipped: ${user})` : ''}`, async () => {
    const { uid } = user as { uid: number | undefined };
    const dir = await tempDir('ft-cli-trust-');
    const folder = path.join(dir, 'ro');
    await mkdir(folder);
    const file = path.join(folder, 'known-receivers.json');
    await new TrustStore(file).record({ fingerprint: LAPTOP, name: 'laptop', address: '192.168.1.20:9527' });
    await chmod(dir, 0o755);
    if (uid !== undefined) {
      await chown(folder, uid, uid);
      await chown(file, uid, uid);
    }
    // The folder too: no lock file can be made beside it.
    await chmod(file, 0o400);
    await chmod(folder, 0o500);
    const before = await readFile(file, 'utf8');
    const list = await runFt(['trust', 'list', '--trust-file', file], { uid });
    expect(list.exit.code, list.stderr).toBe(0);
    expect(list.stdout).toContain(shortFingerprint(LAPTOP));
    const forget = await runFt(['trust', 'forget', 'laptop', '--trust-file', file], { uid });
    expect(forget.exit.code).toBe(2);
    expectOneCleanErrorLine(forget.stderr);
    expect(forget.stderr).toMatch(/cannot change the trust file .*: (permission denied|it is read-only)/);
    expect(await readFile(file, 'utf8')).toBe(before);
  });
});
