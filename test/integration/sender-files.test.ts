/**
 * What the sender reads and believes (issue 9): symbolic links in folders it sends (point 12:
 * whoever can write into a folder must not be able to make `send` of it ship another file the
 * user can read), the budget for small files' bytes, and error codes a receiver may not send
 * (point 20).
 */
import { existsSync, promises as fs, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FtError, nodeFileSystem, send, type FileSystem, type SendEvent } from '../../src/index.js';
import { SYMLINK_NOT_FOLLOWED } from '../../src/sender/local-files.js';
import { PROTOCOL_VERSION } from '../../src/wire/messages.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { countingReads } from '../helpers/counting-fs.js';
import { closeAllFakeReceivers, startFakeReceiver } from '../helpers/fake-receiver.js';

afterEach(async () => {
  await closeAllReceivers();
  await closeAllFakeReceivers();
  await removeTempDirs();
});

const SECRET = 'PRIVATE KEY: do not ship\n';

/** A folder to send with one ordinary file, and a secret outside it (in a folder of its own). */
async function layout() {
  const root = await tempDir('ft-links-');
  const folder = path.join(root, 'photos');
  const outside = path.join(root, 'private');
  await fs.mkdir(folder);
  await fs.mkdir(outside);
  await fs.writeFile(path.join(folder, 'beach.jpg'), 'a real photo');
  await fs.writeFile(path.join(outside, 'id_ed25519'), SECRET);
  return { root, folder, outside, secret: path.join(outside, 'id_ed25519') };
}

/** Every file under `dir` (relative, `/`-separated), but the receiver's partial folder. */
function tree(dir: string, prefix = ''): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === '.ft-partial') return [];
    const name = prefix + entry.name;
    return entry.isDirectory() ? tree(path.join(dir, entry.name), `${name}/`) : [name];
  });
}

async function inboxHoldsSecret(dir: string): Promise<boolean> {
  for (const name of tree(dir)) if ((await fs.readFile(path.join(dir, name), 'utf8')) === SECRET) return true;
  return false;
}

describe('symbolic links inside a folder being sent', () => {
  it('are skipped with a note by default, links to files and to folders alike', async () => {
    const r = await startReceiver();
    const { folder, outside, secret } = await layout();
    await fs.symlink(secret, path.join(folder, 'holiday.jpg'));
    await fs.symlink(outside, path.join(folder, 'album'));
    const events: SendEvent[] = [];
    const report = await send([folder], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, onEvent: (e) => events.push(e) });
    expect(report.files.map((f) => [f.name, f.status])).toEqual([['photos/beach.jpg', 'sent']]);
    expect(report.ignored).toEqual([
      { path: path.join(folder, 'album'), name: 'photos/album', reason: SYMLINK_NOT_FOLLOWED },
      { path: path.join(folder, 'holiday.jpg'), name: 'photos/holiday.jpg', reason: SYMLINK_NOT_FOLLOWED },
    ]);
    expect(events.filter((e) => e.type === 'ignored').map((e) => (e as { name: string }).name)).toEqual(['photos/album', 'photos/holiday.jpg']);
    expect(SYMLINK_NOT_FOLLOWED).toBe('symbolic link, not followed (use --follow-symlinks)');
    expect(tree(r.dir)).toEqual(['photos/beach.jpg']);
    expect(await inboxHoldsSecret(r.dir)).toBe(false);
  });

  it('are followed with followSymlinks, to files and folders, without looping on a link to a folder above', async () => {
    const r = await startReceiver();
    const { folder, outside, secret } = await layout();
    await fs.symlink(secret, path.join(folder, 'holiday.jpg'));
    await fs.symlink(outside, path.join(folder, 'album'));
    await fs.mkdir(path.join(folder, 'sub'));
    await fs.symlink('..', path.join(folder, 'sub', 'loop'));
    const report = await send([folder], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, followSymlinks: true });
    expect(report.files.every((f) => f.status === 'sent')).toBe(true);
    expect(tree(r.dir).sort()).toEqual(['photos/album/id_ed25519', 'photos/beach.jpg', 'photos/holiday.jpg']);
    expect(await fs.readFile(path.join(r.dir, 'photos/holiday.jpg'), 'utf8')).toBe(SECRET);
    expect(report.ignored).toEqual([
      { path: path.join(folder, 'sub', 'loop'), name: 'photos/sub/loop', reason: 'symbolic link to a folder that contains it, not followed' },
    ]);
  });

  it('given on the command line are followed, to a file and to a folder', async () => {
    const r = await startReceiver();
    const { root, folder, secret } = await layout();
    await fs.symlink(secret, path.join(root, 'key-link'));
    await fs.symlink(folder, path.join(root, 'pictures'));
    const report = await send([path.join(root, 'key-link'), path.join(root, 'pictures')], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint });
    expect(report.files.map((f) => [f.name, f.status])).toEqual([
      ['key-link', 'sent'],
      ['pictures/beach.jpg', 'sent'],
    ]);
    expect(await fs.readFile(path.join(r.dir, 'key-link'), 'utf8')).toBe(SECRET);
  });
});

/** node:fs, with `hook` run after each lstat or before each readdir of a path ending in `suffix`. */
function hooked(calls: { lstatSync?: [string, () => void]; readdirSync?: [string, () => void] }): FileSystem {
  return {
    ...nodeFileSystem,
    lstatSync: ((file: string, ...rest: unknown[]) => {
      const stat = (nodeFileSystem.lstatSync as (...a: unknown[]) => unknown)(file, ...rest);
      if (calls.lstatSync && String(file).endsWith(calls.lstatSync[0])) calls.lstatSync[1]();
      return stat;
    }) as FileSystem['lstatSync'],
    readdirSync: ((dir: string, ...rest: unknown[]) => {
      if (calls.readdirSync && String(dir).endsWith(calls.readdirSync[0])) calls.readdirSync[1]();
      return (nodeFileSystem.readdirSync as (...a: unknown[]) => unknown)(dir, ...rest);
    }) as FileSystem['readdirSync'],
  };
}

/** A file system that, the first time the walk looks at `victim`, lets `replace` swap it (between the walk and the read). */
function swappedOnce(victim: string, replace: () => void): { fs: FileSystem; swapped: () => boolean } {
  let swapped = false;
  const fs = hooked({
    lstatSync: [
      path.basename(victim),
      () => {
        if (swapped) return;
        swapped = true;
        nodeFileSystem.unlinkSync(victim);
        replace();
      },
    ],
  });
  return { fs, swapped: () => swapped };
}

describe('the file read is the file listed', () => {
  it('a file swapped for a symbolic link after the listing is not followed', async () => {
    const r = await startReceiver();
    const { folder, secret } = await layout();
    const victim = path.join(folder, 'notes.txt');
    await fs.writeFile(victim, 'my notes');
    // Between the walk and the read: the file becomes a link to the secret.
    const swap = swappedOnce(victim, () => symlinkSync(secret, victim));
    const report = await send([folder], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: swap.fs });
    expect(swap.swapped()).toBe(true);
    const notes = report.files.find((f) => f.name === 'photos/notes.txt')!;
    expect(notes.status).toBe('failed');
    expect(notes.code).toBe('LOCAL_FILE');
    expect(notes.message).toContain('symbolic link');
    expect(report.files.find((f) => f.name === 'photos/beach.jpg')!.status).toBe('sent');
    expect(await inboxHoldsSecret(r.dir)).toBe(false);
  });

  it('a file replaced by another after the listing is not sent in its place', async () => {
    const r = await startReceiver();
    const { folder, secret } = await layout();
    const victim = path.join(folder, 'notes.txt');
    await fs.writeFile(victim, 'my notes');
    // A hard link: a regular file, but not the one listed.
    const swap = swappedOnce(victim, () => nodeFileSystem.linkSync(secret, victim));
    const report = await send([folder], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: swap.fs });
    expect(swap.swapped()).toBe(true);
    const notes = report.files.find((f) => f.name === 'photos/notes.txt')!;
    expect([notes.status, notes.code]).toEqual(['failed', 'FILE_CHANGED']);
    expect(await inboxHoldsSecret(r.dir)).toBe(false);
  });

  it('a large file swapped for a symbolic link after the listing is not followed either', async () => {
    const r = await startReceiver();
    const { folder, outside } = await layout();
    const big = Buffer.alloc(2 * 1024 * 1024 + 5, 7);
    const bigSecret = path.join(outside, 'disk.img');
    await fs.writeFile(bigSecret, Buffer.concat([Buffer.from(SECRET), big]));
    const victim = path.join(folder, 'video.mp4');
    await fs.writeFile(victim, big);
    const swap = swappedOnce(victim, () => symlinkSync(bigSecret, victim));
    const report = await send([folder], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: swap.fs });
    expect(swap.swapped()).toBe(true);
    const video = report.files.find((f) => f.name === 'photos/video.mp4')!;
    expect([video.status, video.code]).toEqual(['failed', 'LOCAL_FILE']);
    expect(existsSync(path.join(r.dir, 'photos/video.mp4'))).toBe(false);
  });

  it.runIf(process.platform === 'linux')('a folder swapped for a symbolic link while it is listed is noticed when its files are opened', async () => {
    const r = await startReceiver();
    const { folder, outside } = await layout();
    const sub = path.join(folder, 'sub');
    await fs.mkdir(sub);
    await fs.writeFile(path.join(sub, 'id_ed25519'), 'an ordinary file of that name');
    let swapped = false;
    // The walk saw `sub` as a folder; just before it reads it, `sub` becomes a link to the
    // secret's folder, so the listing itself describes the secret (same device and inode).
    const fsSwapping = hooked({
      readdirSync: [
        `${path.sep}sub`,
        () => {
          if (swapped) return;
          swapped = true;
          nodeFileSystem.renameSync(sub, `${sub}.moved`);
          symlinkSync(outside, sub);
        },
      ],
    });
    const report = await send([folder], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: fsSwapping });
    expect(swapped).toBe(true);
    const key = report.files.find((f) => f.name === 'photos/sub/id_ed25519')!;
    expect([key.status, key.code]).toEqual(['failed', 'LOCAL_FILE']);
    expect(key.message).toContain('no longer inside the folder given');
    expect(await inboxHoldsSecret(r.dir)).toBe(false);
  });
});

describe('small files kept in memory (issue 9, point 20)', () => {
  it('a batch larger than the budget is read once: the budget is given back as files are sent', async () => {
    const r = await startReceiver();
    const { folder } = await layout();
    const sizes: number[] = [];
    for (let i = 0; i < 40; i++) {
      const size = 20 * 1024 + i;
      sizes.push(size);
      await fs.writeFile(path.join(folder, `f${String(i).padStart(2, '0')}.bin`), Buffer.alloc(size, i));
    }
    const total = sizes.reduce((sum, size) => sum + size, 'a real photo'.length);
    const budget = 128 * 1024; // room for 6 of the 40 files at a time
    const { fs: counting, bytesRead } = countingReads(nodeFileSystem);
    const report = await send([folder], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: counting, keepContentBytes: budget });
    expect(report.files).toHaveLength(41);
    expect(report.files.every((f) => f.status === 'sent')).toBe(true);
    expect(bytesRead()).toBe(total);
    for (let i = 0; i < 40; i++) {
      const stored = await fs.readFile(path.join(r.dir, 'photos', `f${String(i).padStart(2, '0')}.bin`));
      expect(stored.equals(Buffer.alloc(sizes[i]!, i))).toBe(true);
    }
  });
});

describe('keepContentBytes', () => {
  it.each([-1, Number.NaN, 1.5, Number.POSITIVE_INFINITY])('%s is refused up front as USAGE', async (keepContentBytes) => {
    const { folder } = await layout();
    const error = await send([folder], { host: '127.0.0.1', port: 9, keepContentBytes }).catch((e: unknown) => e);
    expect((error as FtError).code).toBe('USAGE');
  });
});

describe('error codes a receiver may not send (issue 9, point 20)', () => {
  it.each(['ABORTED', 'CONNECTION_LOST', 'TIMEOUT'])('an error with %s is no cancellation and asks for no retry: it is INTERNAL', async (code) => {
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: '0'.repeat(32), name: 'fake', features: ['trailing-hash'] });
      await session.next();
      session.send({ type: 'welcome' });
      session.send({ type: 'error', code, message: 'not really' });
      session.socket.end();
    });
    const { folder } = await layout();
    const error = await send([folder], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 3, retryDelayMs: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FtError);
    expect((error as FtError).code).toBe('INTERNAL');
    expect(fake.sessions).toHaveLength(1);
  });

  it('a refusal with LOCAL_FILE does not pass the sender\'s file off as unreadable', async () => {
    const fake = await startFakeReceiver(async (session) => {
      session.send({ type: 'hello', protocol: 'ft', version: PROTOCOL_VERSION, auth: 'none', nonce: '0'.repeat(32), name: 'fake', features: ['trailing-hash'] });
      await session.next();
      session.send({ type: 'welcome' });
      const header = await session.next();
      session.send({ type: 'refuse', id: header.id as number, code: 'LOCAL_FILE', message: 'your disk is broken' });
      const bye = await session.next();
      expect(bye.type).toBe('bye');
      session.socket.end();
    });
    const { folder } = await layout();
    const report = await send([folder], { host: '127.0.0.1', port: fake.port, fingerprint: fake.fingerprint, retries: 0 });
    expect(report.files[0]).toMatchObject({ status: 'refused', code: 'INTERNAL' });
  });
});
