/**
 * listPartials(): the read-only listing behind `ft status`, against a real partial folder with
 * everything a crash, an older ft or a hostile local user can leave in it. Nothing may crash
 * the listing, be followed, or change on disk; each bad entry is one line of `unreadable`.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { listPartials } from '../../src/index.js';
import { fileSystemOf } from '../../src/file-system.js';
import { hashBytes } from '../../src/hashing.js';
import { SMALL_BODY_BYTES } from '../../src/storage/local/body-sink.js';
import { LocalUploadStore, type LocalUploadStoreOptions } from '../../src/storage/local/local-store.js';
import { partialKey, QUICK_EXPIRY_MS } from '../../src/storage/local/partials.js';
import type { UploadStore } from '../../src/storage/upload-store.js';
import { content, expectFtError } from '../contract/upload-store.contract.js';
import { OWNER_A, OWNER_B } from '../helpers/owners.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const PEER = '192.0.2.7';
const DAY_MS = 24 * 3600_000;
const LARGE = SMALL_BODY_BYTES + 300 * 1024;
const opened: LocalUploadStore[] = [];

afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
  await removeTempDirs();
});

async function openStore(dir: string, options: LocalUploadStoreOptions = {}): Promise<LocalUploadStore> {
  const store = await LocalUploadStore.open(dir, options);
  opened.push(store);
  return store;
}

/** Sends the first `cut` bytes of an upload of `bytes` under `name`, and lets go (a cut connection). */
async function leave(store: UploadStore, name: string, bytes: Buffer, cut: number, owner = OWNER_A): Promise<void> {
  const upload = await store.open({ owner, filename: name, size: bytes.length, hash: await hashBytes(bytes) }, { peer: PEER });
  const writer = await upload.append(0, bytes.length);
  for (let at = 0; at < cut; at += 64 * 1024) await writer.write(bytes.subarray(at, Math.min(cut, at + 64 * 1024)));
  await upload.abandon();
}

/** Every entry of the folder with its size and times: what must not change while listing. */
async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await fs.readdir(dir)).sort()) {
    const stat = await fs.lstat(path.join(dir, name));
    out.push(`${name} ${stat.mode} ${stat.size} ${stat.mtimeMs} ${stat.nlink}`);
  }
  return out;
}

const metaOf = (fields: Record<string, unknown>) =>
  JSON.stringify({ v: 1, owner: OWNER_A, filename: 'x.bin', size: 10, peer: PEER, createdAt: new Date().toISOString(), ...fields }) + '\n';

describe('listPartials', () => {
  it('lists a real upload and reports each planted or broken entry in one line, following nothing and changing nothing', async () => {
    const base = await tempDir('ft-status-');
    const inbox = path.join(base, 'inbox');
    const store = await openStore(inbox);
    const bytes = content(LARGE, 1);
    await leave(store, 'photos/kept.jpg', bytes, SMALL_BODY_BYTES + 1024);
    await store.close();
    const dir = path.join(inbox, '.ft-partial');
    const secret = path.join(base, 'secret.txt');
    await fs.writeFile(secret, 'not for a listing\n');
    const key = (n: number) => n.toString(16).padStart(32, '0');
    // A link planted where a partial's data would be, and one where its metadata would be.
    await fs.symlink(secret, path.join(dir, `${key(1)}.part`));
    await fs.writeFile(path.join(dir, `${key(2)}.part`), 'abc');
    await fs.symlink(secret, path.join(dir, `${key(2)}.json`));
    // Torn metadata (a power cut), metadata too long to be ours, metadata without data, data without metadata.
    await fs.writeFile(path.join(dir, `${key(3)}.part`), 'abc');
    await fs.writeFile(path.join(dir, `${key(3)}.json`), '{"v":1,"own');
    await fs.writeFile(path.join(dir, `${key(4)}.part`), 'abc');
    await fs.writeFile(path.join(dir, `${key(4)}.json`), ' '.repeat(5000));
    await fs.writeFile(path.join(dir, `${key(5)}.json`), metaOf({}));
    await fs.writeFile(path.join(dir, `${key(6)}.part`), 'abcdef');
    // FIFOs: opening one for reading would wait for a writer forever.
    execFileSync('mkfifo', [path.join(dir, `${key(7)}.part`)]);
    await fs.writeFile(path.join(dir, `${key(8)}.part`), 'abc');
    execFileSync('mkfifo', [path.join(dir, `${key(8)}.json`)]);
    // A hard link to a file elsewhere, and a folder, named like data.
    await fs.link(secret, path.join(dir, `${key(9)}.part`));
    await fs.mkdir(path.join(dir, `${key(10)}.part`));
    // Metadata of another upload than its key says, and metadata naming a path out of the inbox under its own key.
    await fs.writeFile(path.join(dir, `${key(11)}.part`), 'abc');
    await fs.writeFile(path.join(dir, `${key(11)}.json`), metaOf({}));
    const evil = { owner: OWNER_B, filename: '../../.ssh/authorized_keys', size: 10 };
    await fs.writeFile(path.join(dir, `${partialKey(evil)}.part`), 'abc');
    await fs.writeFile(path.join(dir, `${partialKey(evil)}.json`), metaOf(evil));
    // Not partials this ft resumes: a stream's, metadata being written, a private copy, ft 0.1's, anything else.
    for (const name of [`${key(12)}.stream`, `${key(13)}.json.0badc0de.tmp`, `${key(14)}~0badc0de.part`, '0123456789abcdef-42.part', 'notes.txt']) {
      await fs.writeFile(path.join(dir, name), 'x');
    }
    const before = await snapshot(dir);

    const listing = await listPartials(inbox);

    expect(await snapshot(dir)).toEqual(before);
    expect(await fs.readFile(secret, 'utf8')).toBe('not for a listing\n');
    expect(listing.truncated).toBe(false);
    expect(listing.partials.map((p) => [p.name, p.bytes, p.size, p.kind, p.peer, p.owner])).toEqual([
      ['photos/kept.jpg', SMALL_BODY_BYTES + 1024, LARGE, 'send', PEER, OWNER_A],
    ]);
    expect(listing.partials[0]!.inUse).toBeUndefined();
    const reasons = Object.fromEntries(listing.unreadable.map(({ entry, reason }) => [entry, reason]));
    expect(reasons).toEqual({
      [`${key(1)}.part`]: expect.stringMatching(/^a symbolic link: not an upload of ours, never followed/),
      [`${key(2)}.json`]: expect.stringMatching(/^metadata not a regular file, so the upload's name is unknown \(holds 3 bytes, deleted from /),
      [`${key(3)}.json`]: expect.stringMatching(/^metadata not valid \(torn, or not ft's\)/),
      [`${key(4)}.json`]: expect.stringMatching(/^metadata longer than 4096 bytes/),
      [`${key(5)}.json`]: 'metadata without data (the sweep deletes it)',
      [`${key(6)}.part`]: expect.stringMatching(/^data without metadata, so its name is unknown \(holds 6 bytes, deleted from \d{4}-/),
      [`${key(7)}.part`]: expect.stringMatching(/^not a regular file: not an upload of ours/),
      [`${key(8)}.json`]: expect.stringMatching(/^metadata not a regular file of ours with one link/),
      [`${key(9)}.part`]: expect.stringMatching(/^a file with other hard links/),
      [`${key(10)}.part`]: expect.stringMatching(/^not a regular file/),
      [`${key(11)}.json`]: expect.stringMatching(/^metadata of another upload than its name says/),
      [`${partialKey(evil)}.json`]: expect.stringMatching(/^metadata with the unsafe name \.\.\/\.\.\/\.ssh\/authorized_keys \(holds 3 bytes/),
    });
  });

  it('expiry follows the sweep: the TTL from the last write, or at most an hour for a partial under 1 MiB; partialTtlMs sets the TTL', async () => {
    const inbox = path.join(await tempDir('ft-status-'), 'inbox');
    const store = await openStore(inbox);
    const big = content(LARGE, 2);
    await leave(store, 'big.bin', big, SMALL_BODY_BYTES + 4096);
    await leave(store, 'tiny.bin', content(LARGE, 3), 64 * 1024);
    const ttl = 3 * DAY_MS;
    const [bigOne, tinyOne] = (await listPartials(inbox, { partialTtlMs: ttl })).partials;
    expect(bigOne!.name).toBe('big.bin');
    expect(bigOne!.expiresAt).toBe(Math.ceil(bigOne!.lastWriteAt + ttl));
    expect(tinyOne!.expiresAt).toBe(Math.ceil(tinyOne!.lastWriteAt + QUICK_EXPIRY_MS));
    // A TTL under the hour is the rule for both.
    const short = (await listPartials(inbox, { partialTtlMs: 120_000 })).partials;
    expect(short.map((p) => p.expiresAt - Math.ceil(p.lastWriteAt))).toEqual([120_000, 120_000]);
    // The default is the receiver's.
    expect((await listPartials(inbox)).partials[0]!.expiresAt).toBe(Math.ceil(bigOne!.lastWriteAt + 7 * DAY_MS));
    // The receiver's own listing says the same, and whether each is in use.
    const own = await store.listPartials(ttl);
    expect(own.partials.map((p) => [p.name, p.expiresAt, p.inUse])).toEqual([
      ['big.bin', bigOne!.expiresAt, false],
      ['tiny.bin', tinyOne!.expiresAt, false],
    ]);
    await expectFtError(listPartials(inbox, { partialTtlMs: 5 }), 'USAGE');
    await expectFtError(listPartials(inbox, { partialTTL: 5 } as never), 'USAGE');
  });

  it('refuses, in one line, a folder that is not an ft inbox of this user', async () => {
    const base = await tempDir('ft-status-');
    await fs.mkdir(path.join(base, 'plain'));
    await fs.writeFile(path.join(base, 'file'), 'x');
    await fs.mkdir(path.join(base, 'linked', 'elsewhere'), { recursive: true });
    await fs.symlink(path.join(base, 'linked', 'elsewhere'), path.join(base, 'linked', '.ft-partial'));
    await fs.mkdir(path.join(base, 'filed'));
    await fs.writeFile(path.join(base, 'filed', '.ft-partial'), 'x');
    const cases: Array<[string, RegExp]> = [
      ['missing', /missing does not exist$/],
      ['file', /file is not a folder$/],
      ['plain', /plain is not an ft inbox: it has no \.ft-partial folder \(ft serve makes one\)$/],
      ['linked', /linked is not an ft inbox: its \.ft-partial is not a real folder \(a link or a file\)$/],
      ['filed', /filed is not an ft inbox: its \.ft-partial is not a real folder/],
    ];
    for (const [name, message] of cases) {
      const error = await expectFtError(listPartials(path.join(base, name)), 'LOCAL_FILE');
      expect(error.message).toMatch(message);
      expect(error.message).not.toContain('\n');
    }
    // An inbox reached through a link to it is an inbox (ft serve takes one too).
    await openStore(path.join(base, 'real'));
    await fs.symlink(path.join(base, 'real'), path.join(base, 'alias'));
    expect((await listPartials(path.join(base, 'alias'))).partials).toEqual([]);
  });

  it('reads another file system given as fs (memfs)', async () => {
    const volume = createFsFromVolume(new Volume());
    const ft = fileSystemOf(volume);
    const store = await openStore('/inbox', { fs: ft });
    await leave(store, 'on-memfs.bin', content(LARGE, 4), SMALL_BODY_BYTES + 10);
    const listing = await listPartials('/inbox', { fs: ft });
    expect(listing.partials.map((p) => [p.name, p.bytes])).toEqual([['on-memfs.bin', SMALL_BODY_BYTES + 10]]);
    await expectFtError(listPartials('/nowhere', { fs: ft }), 'LOCAL_FILE');
  });
});

describe('orphans after a restart', () => {
  it('a receiver started again still finds, by what the metadata says, the partial a changed source left', async () => {
    const inbox = path.join(await tempDir('ft-status-'), 'inbox');
    const first = await openStore(inbox);
    await leave(first, 'grown.log', content(LARGE, 5), SMALL_BODY_BYTES + 10);
    await leave(first, 'grown.log', content(LARGE, 6), SMALL_BODY_BYTES + 10, OWNER_B);
    await first.close();
    const again = await openStore(inbox);
    const grown = content(LARGE + 100, 7);
    const upload = await again.open({ owner: OWNER_A, filename: 'grown.log', size: grown.length, hash: await hashBytes(grown) }, { peer: PEER });
    const writer = await upload.append(0, grown.length);
    await writer.write(grown);
    await upload.commit(['grown.log'], await writer.end());
    expect((await listPartials(inbox)).partials.map((p) => [p.name, p.owner])).toEqual([['grown.log', OWNER_B]]);
  });
});
