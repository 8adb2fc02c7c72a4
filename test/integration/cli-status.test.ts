/**
 * `ft status` as a user runs it (a real `ft` process; bin/ft.js imports dist/: build first),
 * against an inbox holding partials of every kind, made by real transfers cut mid-way (ft send
 * through a proxy, tus over HTTP) and by what a crash or a hostile local user leaves. And the
 * orphan a changed source leaves, cleaned up by the next complete send of the name.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { send } from '../../src/index.js';
import { hashBytes } from '../../src/hashing.js';
import { partialKey } from '../../src/storage/local/partials.js';
import { partialBytes, randomFile, settledPartialBytes, waitUntil } from '../helpers/files.js';
import { ownerFingerprint, sharedOwnerKey } from '../helpers/owners.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { expectOneCleanErrorLine, killAllFt, runFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { closeTusServers, metadata, startTusServer, TUS, tusRequest } from '../helpers/tus-server.js';

const MiB = 1024 * 1024;
const DAY_MS = 24 * 3600_000;

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
  await closeAllReceivers();
  await closeTusServers();
});
afterAll(removeTempDirs);

/** Sends `file` through a crawling proxy, cuts the connection once the receiver holds `cut` bytes, and waits for the partial to settle. */
async function sendCut(r: TestReceiver, file: string, cut: number, senderKeyFile: string): Promise<number> {
  const proxy = await startProxy({ targetPort: r.port, bytesPerSecond: 4 * MiB });
  const before = await partialBytes(r.dir);
  const sending = send([file], { host: '127.0.0.1', port: proxy.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile }).catch((error: unknown) => error);
  await waitUntil(async () => (await partialBytes(r.dir)) - before >= cut, `a partial of ${cut} bytes`);
  proxy.cutAll();
  expect(await sending).toMatchObject({ code: expect.stringMatching(/CONNECTION_LOST|TIMEOUT/) });
  await r.waitFor('connection-error', (e) => e.remote !== undefined, 10_000).catch(() => undefined);
  return (await settledPartialBytes(r.dir)) - before;
}

async function statusJson(dir: string, ...args: string[]) {
  const run = await runFt(['status', dir, '--json', ...args]);
  expect(run.exit.code, run.stderr).toBe(0);
  expect(run.stderr).toBe('');
  const lines = run.json();
  return { partials: lines.filter((l) => l.event === 'partial'), unreadable: lines.filter((l) => l.event === 'unreadable'), summary: lines.at(-1)! };
}

describe('ft status', () => {
  it('lists the unfinished uploads of every kind, and each broken or planted entry in a line; changes nothing', async () => {
    const base = await tempDir('ft-status-');
    const dir = path.join(base, 'inbox');
    const owner = await sharedOwnerKey();
    const src = await tempDir('ft-status-src-');
    const big = await randomFile(path.join(src, 'video.mp4'), 8 * MiB);

    // An ft send cut mid-way, and ft status beside the receiver still running.
    const r = await startReceiver({ dir });
    const held = await sendCut(r, big, 2 * MiB, owner.senderKeyFile);
    expect(held).toBeGreaterThanOrEqual(2 * MiB);
    const beside = await statusJson(dir);
    expect(beside.partials.map((p) => [p.name, p.bytes, p.size, p.kind, p.owner])).toEqual([
      ['video.mp4', held, 8 * MiB, 'send', ownerFingerprint(owner.key)],
    ]);
    await r.close();

    // tus uploads: one created, nothing sent yet (under 1 MiB: kept an hour), one of 3 MiB with
    // 1.5 MiB sent, made old (its TTL nearly over).
    const tus = await startTusServer({ dir });
    const tusUpload = async (name: string, size: number, sent: number) => {
      const bytes = Buffer.alloc(size, name.length);
      const created = await tusRequest(tus, 'POST', '/files/', { ...TUS, 'Upload-Length': String(size), 'Upload-Metadata': metadata({ filename: name, hash: await hashBytes(bytes) }) });
      expect(created.status, created.text).toBe(201);
      if (sent === 0) return;
      const patched = await tusRequest(tus, 'PATCH', created.headers.location!, { ...TUS, 'Content-Type': 'application/offset+octet-stream', 'Upload-Offset': '0' }, bytes.subarray(0, sent));
      expect(patched.status, patched.text).toBe(204);
    };
    await tusUpload('web/small note.txt', 400 * 1024, 0);
    await tusUpload('web/old.iso', 3 * MiB, 1.5 * MiB);
    await tus.close();
    const partialDir = path.join(dir, '.ft-partial');
    const byName = async (name: string) => {
      for (const entry of await fs.readdir(partialDir)) {
        if (!entry.endsWith('.json')) continue;
        if (JSON.parse(await fs.readFile(path.join(partialDir, entry), 'utf8')).filename === name) return entry.replace(/\.json$/, '');
      }
      throw new Error(`no partial of ${name}`);
    };
    const oldKey = await byName('web/old.iso');
    const sixDaysAgo = new Date(Date.now() - 6.9 * DAY_MS);
    // As the receiver would have left it a week ago: created then, and last written then.
    const oldMeta = path.join(partialDir, `${oldKey}.json`);
    await fs.writeFile(oldMeta, JSON.stringify({ ...JSON.parse(await fs.readFile(oldMeta, 'utf8')), createdAt: sixDaysAgo.toISOString() }) + '\n');
    await fs.utimes(path.join(partialDir, `${oldKey}.part`), sixDaysAgo, sixDaysAgo);

    // What a crash or a local user leaves: torn metadata, metadata alone, data alone, a planted link.
    const secret = path.join(base, 'secret');
    await fs.writeFile(secret, 'keep out\n');
    const key = (n: number) => n.toString(16).padStart(32, 'e');
    await fs.writeFile(path.join(partialDir, `${key(1)}.part`), 'abc');
    await fs.writeFile(path.join(partialDir, `${key(1)}.json`), '{"v":1,"owner":"');
    await fs.writeFile(path.join(partialDir, `${key(2)}.json`), '{}');
    await fs.writeFile(path.join(partialDir, `${key(3)}.part`), 'abcdef');
    await fs.symlink(secret, path.join(partialDir, `${key(4)}.part`));
    const before = (await fs.readdir(partialDir)).sort();

    const now = Date.now();
    const { partials, unreadable, summary } = await statusJson(dir, '--partial-ttl', '7d');
    expect(partials.map((p) => [p.name, p.bytes, p.size, p.kind])).toEqual([
      ['video.mp4', held, 8 * MiB, 'send'],
      ['web/old.iso', 1.5 * MiB, 3 * MiB, 'tus'],
      ['web/small note.txt', 0, 400 * 1024, 'tus'],
    ]);
    const [video, old, small] = partials as Array<Record<string, unknown>>;
    const expiresIn = (p: Record<string, unknown>) => Date.parse(p.expiresAt as string) - now;
    expect(expiresIn(video!)).toBeGreaterThan(7 * DAY_MS - 120_000);
    expect(expiresIn(old!)).toBeLessThan(0.2 * DAY_MS);
    expect(expiresIn(old!)).toBeGreaterThan(0);
    expect(expiresIn(small!)).toBeLessThanOrEqual(3600_000);
    expect(expiresIn(small!)).toBeGreaterThan(3600_000 - 120_000);
    for (const p of partials) {
      expect(p.peer).toBe('127.0.0.1');
      expect(typeof p.ageMs).toBe('number');
      expect(Date.parse(p.createdAt as string)).toBeLessThanOrEqual(now);
      expect(Object.keys(p).sort()).toEqual(['ageMs', 'bytes', 'createdAt', 'event', 'expiresAt', 'kind', 'lastWriteAt', 'name', 'owner', 'peer', 'size']);
    }
    expect(unreadable.map((u) => u.entry)).toEqual([`${key(1)}.json`, `${key(2)}.json`, `${key(3)}.part`, `${key(4)}.part`]);
    expect(summary).toEqual({
      event: 'summary',
      dir,
      partials: 3,
      bytes: held + 1.5 * MiB,
      size: 8 * MiB + 3 * MiB + 400 * 1024,
      unreadable: 4,
      truncated: false,
      partialTtlMs: 7 * DAY_MS,
    });
    // A shorter TTL (the receiver's --partial-ttl) moves every expiry.
    const shorter = await statusJson(dir, '--partial-ttl', '1d');
    expect(Date.parse(shorter.partials[0]!.expiresAt as string) - now).toBeLessThan(DAY_MS);
    expect(shorter.partials.map((p) => p.name)).toEqual(['video.mp4', 'web/old.iso', 'web/small note.txt']);

    // For people: a table, the unreadable entries, a summary line.
    const table = await runFt(['status', dir]);
    expect(table.exit.code, table.stderr).toBe(0);
    const lines = table.lines();
    expect(lines[0]).toMatch(/^NAME\s+HELD\s+AGE\s+EXPIRES\s+KIND\s+FROM$/);
    expect(lines[1]).toMatch(/^video\.mp4\s+\d[\d.]* MiB of 8 MiB \(\d+%\)\s+\S+\s+in 6d 23h\s+send\s+127\.0\.0\.1$/);
    expect(lines[2]).toMatch(/^web\/old\.iso\s+1\.5 MiB of 3 MiB \(50%\)\s+6d 2[13]h\s+in \d+h \d+m\s+tus\s+127\.0\.0\.1$/);
    expect(lines[3]).toMatch(/^"web\/small note\.txt"\s+0 B of 400 KiB \(0%\)\s+\S+\s+in (59m|1h)/);
    expect(lines[4]).toMatch(new RegExp(`^unreadable: ${key(1)}\\.json: metadata not valid \\(torn, or not ft's\\), so the upload's name is unknown`));
    expect(lines[7]).toMatch(new RegExp(`^unreadable: ${key(4)}\\.part: a symbolic link: not an upload of ours, never followed`));
    expect(lines.at(-1)).toMatch(new RegExp(`^3 unfinished uploads in ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, holding [\\d.]+ MiB of 11.4 MiB; 4 unreadable entries$`));
    expect(lines).toHaveLength(9);
    expect(await fs.readFile(secret, 'utf8')).toBe('keep out\n');
    expect((await fs.readdir(partialDir)).sort()).toEqual(before);
  });

  it('exits 0 for an inbox with nothing unfinished, 2 with one line for a folder that is not an inbox or does not exist', async () => {
    const base = await tempDir('ft-status-');
    const r = await startReceiver({ dir: path.join(base, 'inbox') });
    await r.close();
    const empty = await runFt(['status', path.join(base, 'inbox')]);
    expect(empty.exit.code).toBe(0);
    expect(empty.stdout).toBe(`no unfinished uploads in ${path.join(base, 'inbox')}\n`);
    await fs.mkdir(path.join(base, 'photos'));
    for (const [folder, message] of [
      ['photos', /^ft: .*photos is not an ft inbox: it has no \.ft-partial folder \(ft serve makes one\)$/],
      ['nowhere', /^ft: .*nowhere does not exist$/],
    ] as const) {
      const run = await runFt(['status', path.join(base, folder)]);
      expect(run.exit.code).toBe(2);
      expectOneCleanErrorLine(run.stderr);
      expect(run.stderr.trimEnd()).toMatch(message);
      expect(run.stdout).toBe('');
      const json = await runFt(['status', path.join(base, folder), '--json']);
      expect(json.exit.code).toBe(2);
      expect(json.json()).toEqual([{ event: 'error', code: 'LOCAL_FILE', message: expect.stringContaining(folder) }]);
    }
    // The default folder is ft serve's: ./inbox.
    const here = await runFt(['status'], { cwd: base });
    expect(here.exit.code).toBe(0);
    expect(here.stdout).toBe('no unfinished uploads in ./inbox\n');
    const bad = await runFt(['status', base, '--partial-ttl', '5s']);
    expect(bad.exit.code).toBe(2);
    expectOneCleanErrorLine(bad.stderr);
  });
});

describe('orphaned partials', () => {
  it('a source that changed and was sent again in full: the partial of its old size goes; another sender’s of the name stays', async () => {
    const dir = path.join(await tempDir('ft-status-'), 'inbox');
    const me = await sharedOwnerKey();
    const someoneElse = await sharedOwnerKey();
    const src = await tempDir('ft-status-src-');
    const r = await startReceiver({ dir });
    const file = await randomFile(path.join(src, 'db.sql'), 6 * MiB, 'old');
    await sendCut(r, file, 1.5 * MiB, me.senderKeyFile);
    const other = await randomFile(path.join(await tempDir('ft-status-src-'), 'db.sql'), 5 * MiB, 'other');
    await sendCut(r, other, 1.5 * MiB, someoneElse.senderKeyFile);
    const oldKey = partialKey({ owner: ownerFingerprint(me.key), filename: 'db.sql', size: 6 * MiB });
    const othersKey = partialKey({ owner: ownerFingerprint(someoneElse.key), filename: 'db.sql', size: 5 * MiB });
    // The same name: the one written least recently first.
    expect((await statusJson(dir)).partials.map((p) => [p.name, p.size])).toEqual([
      ['db.sql', 6 * MiB],
      ['db.sql', 5 * MiB],
    ]);
    // The source grew: another size, so another upload, sent from the start, to the end.
    await randomFile(file, 7 * MiB, 'new');
    const report = await send([file], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, retries: 0, senderKeyFile: me.senderKeyFile });
    expect(report.files.map((f) => f.status)).toEqual(['sent']);
    const left = await fs.readdir(path.join(dir, '.ft-partial'));
    expect(left).not.toContain(`${oldKey}.part`);
    expect(left).not.toContain(`${oldKey}.json`);
    expect(left).toContain(`${othersKey}.part`);
    expect((await statusJson(dir)).partials.map((p) => [p.name, p.size, p.owner])).toEqual([['db.sql', 5 * MiB, ownerFingerprint(someoneElse.key)]]);
  });
});
