/**
 * A local user who can write to the inbox attacks the partial folder (issue 9, point 7): links,
 * hard links and FIFOs planted at a partial's paths between the receiver's steps, and the
 * folder itself replaced. Real files in a temp dir: these are kernel behaviours (O_NOFOLLOW,
 * link counts, FIFOs) a memory file system only imitates.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { hashBytes } from '../../src/hashing.js';
import { BodyWriter } from '../../src/storage/local/body-writer.js';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { Inbox } from '../../src/storage/local/inbox.js';
import type { Partial, UploadId } from '../../src/storage/local/partials.js';
import { OWNER_A } from '../helpers/owners.js';

const MiB = 1024 * 1024;
const SIZE = 2 * MiB;
const PEER = '192.0.2.1';
const VICTIM = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIvictim victim@host\n';

let base: string;
let inbox: Inbox;
/** ~/.ssh/authorized_keys of the user running ft serve. */
let victim: string;
let bytes: Buffer;
let id: UploadId;

beforeEach(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'ft-partial-attacks-'));
  await fs.mkdir(path.join(base, 'home', '.ssh'), { recursive: true });
  victim = path.join(base, 'home', '.ssh', 'authorized_keys');
  await fs.writeFile(victim, VICTIM);
  inbox = await Inbox.open(path.join(base, 'inbox'), nodeFileSystem, 'rename');
  bytes = Buffer.alloc(SIZE);
  for (let i = 0; i < SIZE; i++) bytes[i] = (i * 7919) >>> 3;
  id = { owner: OWNER_A, filename: 'upload.bin', size: SIZE, hash: await hashBytes(bytes) };
});

afterEach(async () => {
  await fs.rm(base, { recursive: true, force: true });
});

async function writeBody(partial: Partial, data: Buffer, from = 0): Promise<void> {
  const handle = await partial.openForWrite(from);
  try {
    const writer = new BodyWriter(handle, from);
    writer.write(data);
    await writer.flush();
  } finally {
    await handle.close();
  }
}

/** A partial of the first `held` bytes, as a cut connection leaves it. */
async function leave(held: number): Promise<Partial> {
  const partial = await inbox.partials.acquire(id, PEER);
  await writeBody(partial!, bytes.subarray(0, held));
  partial!.release();
  return partial!;
}

async function expectVictimUntouched(): Promise<void> {
  expect(await fs.readFile(victim, 'utf8')).toBe(VICTIM);
  expect(statSync(victim).nlink).toBe(1);
}

async function replaceWith(file: string, plant: () => Promise<void>): Promise<void> {
  await fs.rm(file, { force: true });
  await plant();
}

async function expectFtError(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code).toBe(code);
}

/**
 * Plants a FIFO at `file` and a watchdog that opens its writing end after 20 s. A receiver that
 * opens the FIFO for reading without O_NONBLOCK would hang until then (even the event loop, for
 * a synchronous open); `opened()` says whether the watchdog had to, so a hang fails the test
 * instead of stalling the run.
 */
function plantFifo(file: string): { opened: () => boolean; stop: () => void } {
  execFileSync('mkfifo', [file]);
  const marker = `${file}.watchdog`;
  const child: ChildProcess = spawn('sh', ['-c', 'sleep 20; : > "$2"; exec 3>"$1"', 'sh', file, marker], { stdio: 'ignore' });
  return {
    opened: () => existsSync(marker),
    stop: () => {
      child.kill('SIGKILL');
    },
  };
}

describe('the .ft-partial folder', () => {
  it('is created owner-only (0700)', async () => {
    expect((await fs.lstat(inbox.partials.dir)).mode & 0o777).toBe(0o700);
  });

  it('is tightened to 0700 when it is ours but open to others', async () => {
    const dir = path.join(base, 'open-inbox', '.ft-partial');
    await fs.mkdir(dir, { recursive: true });
    await fs.chmod(dir, 0o777);
    await Inbox.open(path.dirname(dir), nodeFileSystem, 'rename');
    expect((await fs.lstat(dir)).mode & 0o777).toBe(0o700);
  });

  it("is refused with UNSAFE_PATH when it belongs to another user (who could have planted anything in it)", async () => {
    const dir = path.join(base, 'their-inbox', '.ft-partial');
    await fs.mkdir(dir, { recursive: true });
    const theirs: FileSystem = {
      ...nodeFileSystem,
      fstatSync: ((fd: number) => Object.assign(nodeFileSystem.fstatSync(fd), { uid: 4242 })) as FileSystem['fstatSync'],
    };
    await expectFtError(Inbox.open(path.dirname(dir), theirs, 'rename'), 'UNSAFE_PATH');
  });

  it('replaced by a symbolic link while serving: the next upload is refused UNSAFE_PATH, nothing is written through it', async () => {
    const elsewhere = path.dirname(victim);
    await fs.rename(inbox.partials.dir, path.join(base, 'moved'));
    await fs.symlink(elsewhere, inbox.partials.dir);
    await expectFtError(
      inbox.partials.acquire(id, PEER).then((partial) => writeBody(partial!, bytes.subarray(0, 100))),
      'UNSAFE_PATH',
    );
    expect(await fs.readdir(elsewhere)).toEqual(['authorized_keys']);
    await expectVictimUntouched();
  });

  it('deleted while serving: made again (0700), and uploads go on', async () => {
    await fs.rm(inbox.partials.dir, { recursive: true });
    const partial = await inbox.partials.acquire(id, PEER);
    await writeBody(partial!, bytes.subarray(0, 1000));
    expect((await fs.lstat(inbox.partials.dir)).mode & 0o777).toBe(0o700);
    expect((await fs.readFile(partial!.dataPath)).equals(bytes.subarray(0, 1000))).toBe(true);
  });
});

describe('a symbolic link planted at a partial', () => {
  it('at the .part between acquire and the body: the body goes to a new file of ours, never through the link', async () => {
    const partial = (await inbox.partials.acquire(id, PEER))!;
    await fs.symlink(victim, partial.dataPath);
    await writeBody(partial, bytes.subarray(0, 5000));
    await expectVictimUntouched();
    expect((await fs.lstat(partial.dataPath)).isFile()).toBe(true);
    expect((await fs.readFile(partial.dataPath)).equals(bytes.subarray(0, 5000))).toBe(true);
  });

  it('at the .part of a resume, after the prefix was hashed: the body is refused, the target untouched', async () => {
    await leave(20); // less than the target holds, so that it could be cut and appended to
    const partial = (await inbox.partials.acquire(id, PEER))!;
    expect(partial.offset).toBe(20);
    await partial.hashPrefix();
    await replaceWith(partial.dataPath, () => fs.symlink(victim, partial.dataPath));
    await expectFtError(partial.openForWrite(20), 'WRITE_FAILED');
    await expectVictimUntouched();
  });

  it('at the .part before the header: not offered (its target is neither measured nor hashed), and removed', async () => {
    const key = (await leave(10)).dataPath;
    await replaceWith(key, () => fs.symlink(victim, key));
    const partial = (await inbox.partials.acquire(id, PEER))!;
    expect(partial.offset).toBe(0);
    expect((await partial.hashPrefix()).prefixHash).toBe(await hashBytes(Buffer.alloc(0)));
    expect(existsSync(key)).toBe(false);
    await expectVictimUntouched();
  });

  it('at the .json between acquire and the body: the metadata replaces the link, the target is untouched', async () => {
    const partial = (await inbox.partials.acquire(id, PEER))!;
    await fs.symlink(victim, partial.metaPath);
    await writeBody(partial, bytes.subarray(0, 5000));
    await expectVictimUntouched();
    expect((await fs.lstat(partial.metaPath)).isFile()).toBe(true);
    expect(JSON.parse(await fs.readFile(partial.metaPath, 'utf8'))).toMatchObject({ v: 1, owner: OWNER_A, filename: 'upload.bin' });
  });

  it('at the .json of a partial being resumed: not read as metadata, and replaced, never written through', async () => {
    const left = await leave(500_000);
    await replaceWith(left.metaPath, () => fs.symlink(victim, left.metaPath));
    const partial = (await inbox.partials.acquire(id, PEER))!;
    expect(partial.offset).toBe(500_000);
    await partial.hashPrefix();
    await writeBody(partial, bytes.subarray(500_000), 500_000);
    await expectVictimUntouched();
    expect((await fs.lstat(partial.metaPath)).isFile()).toBe(true);
    expect((await fs.readFile(partial.dataPath)).equals(bytes)).toBe(true);
  });

  it('at the .part of a small body written in one go: never written through', async () => {
    const small = Buffer.from('a small file\n');
    const smallId = { owner: OWNER_A, filename: 'small.txt', size: small.length, hash: await hashBytes(small) };
    const partial = (await inbox.partials.acquire(smallId, PEER))!;
    await fs.symlink(victim, partial.dataPath);
    const file = partial.writeRest(0, [small]);
    await file.close();
    await expectVictimUntouched();
    expect(await fs.readFile(partial.dataPath, 'utf8')).toBe('a small file\n');
  });

  it('at the .part of a resume finished in one go: refused, never written through', async () => {
    await leave(20);
    const partial = (await inbox.partials.acquire(id, PEER))!;
    await partial.hashPrefix();
    await replaceWith(partial.dataPath, () => fs.symlink(victim, partial.dataPath));
    expect(() => partial.writeRest(20, [bytes.subarray(20)])).toThrow(FtError);
    await expectVictimUntouched();
  });
});

describe('a hard link planted at a partial', () => {
  it('before the header: another file is not offered (its hash would leak) and never appended to', async () => {
    const left = await leave(10);
    await replaceWith(left.dataPath, () => fs.link(victim, left.dataPath));
    const partial = (await inbox.partials.acquire(id, PEER))!;
    expect(partial.offset).toBe(0);
    await writeBody(partial, bytes.subarray(0, 5000));
    await expectVictimUntouched();
  });

  it('swapped in after the header was answered: the prefix hashed is nobody\'s, and nothing is appended', async () => {
    await leave(VICTIM.length + 10);
    const partial = (await inbox.partials.acquire(id, PEER))!;
    expect(partial.offset).toBe(VICTIM.length + 10);
    await replaceWith(partial.dataPath, () => fs.link(victim, partial.dataPath));
    const { prefixHash } = await partial.hashPrefix();
    expect(prefixHash).toBe(await hashBytes(Buffer.alloc(0)));
    expect(partial.offset).toBe(0);
    await writeBody(partial, bytes.subarray(0, 5000));
    await expectVictimUntouched();
  });

  it('swapped in after the prefix was hashed: the body is refused, the other file untouched', async () => {
    await leave(20);
    const partial = (await inbox.partials.acquire(id, PEER))!;
    await partial.hashPrefix();
    await replaceWith(partial.dataPath, () => fs.link(victim, partial.dataPath));
    await expectFtError(partial.openForWrite(20), 'WRITE_FAILED');
    await expectVictimUntouched();
  });

  it('planted between the header and a body from 0: unlinked first, never written through', async () => {
    const partial = (await inbox.partials.acquire(id, PEER))!;
    await fs.link(victim, partial.dataPath);
    await writeBody(partial, bytes.subarray(0, 5000));
    await expectVictimUntouched();
    expect((await fs.readFile(partial.dataPath)).equals(bytes.subarray(0, 5000))).toBe(true);
  });
});

describe('a FIFO planted at a partial', () => {
  it('as the .json of a partial: acquire does not wait on it, ignores it, and the next body replaces it', async () => {
    const left = await leave(500_000);
    await fs.rm(left.metaPath);
    const fifo = plantFifo(left.metaPath);
    try {
      const partial = (await inbox.partials.acquire(id, PEER))!;
      expect(fifo.opened()).toBe(false);
      expect(partial.offset).toBe(500_000);
      await partial.hashPrefix();
      await writeBody(partial, bytes.subarray(500_000), 500_000);
      expect((await fs.lstat(partial.metaPath)).isFile()).toBe(true);
    } finally {
      fifo.stop();
    }
  });

  it('as the .json at start: counting the partials does not wait on it', async () => {
    const left = await leave(500_000);
    await fs.rm(left.metaPath);
    const fifo = plantFifo(left.metaPath);
    try {
      const again = await Inbox.open(inbox.root, nodeFileSystem, 'rename');
      expect(fifo.opened()).toBe(false);
      expect(again.partials.count).toBe(1);
    } finally {
      fifo.stop();
    }
  });

  it('as the .part: not opened, not offered, removed', async () => {
    const left = await leave(10);
    await fs.rm(left.dataPath);
    const fifo = plantFifo(left.dataPath);
    try {
      const partial = (await inbox.partials.acquire(id, PEER))!;
      expect(fifo.opened()).toBe(false);
      expect(partial.offset).toBe(0);
      expect(existsSync(left.dataPath)).toBe(false);
    } finally {
      fifo.stop();
    }
  });
});

describe('a partial that is not ours', () => {
  it('a .part owned by another user is not resumed, and is deleted', async () => {
    const left = await leave(MiB);
    const theirs: FileSystem = {
      ...nodeFileSystem,
      lstatSync: ((file: string, options?: object) => {
        const stat = nodeFileSystem.lstatSync(file, options as never);
        return stat && file === left.dataPath ? Object.assign(stat, { uid: 4242 }) : stat;
      }) as FileSystem['lstatSync'],
    };
    const other = await Inbox.open(inbox.root, theirs, 'rename');
    const partial = (await other.partials.acquire(id, PEER))!;
    expect(partial.offset).toBe(0);
    expect(existsSync(left.dataPath)).toBe(false);
  });
});
