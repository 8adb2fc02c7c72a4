/** Placement on file systems without hard links (FAT, exFAT, some network shares). */
import { Volume, createFsFromVolume } from 'memfs';
import { describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { fileSystemOf, type FileSystem } from '../../src/file-system.js';
import { Inbox, type ConflictPolicy } from '../../src/storage/local/inbox.js';
import { OWNER_A } from '../helpers/owners.js';

function noLinkFs(): { fs: FileSystem; vol: InstanceType<typeof Volume> } {
  const vol = new Volume();
  const fs: FileSystem = {
    ...fileSystemOf(createFsFromVolume(vol)),
    linkSync: () => {
      throw Object.assign(new Error('operation not permitted'), { code: 'EPERM' });
    },
  };
  return { fs, vol };
}

async function receive(inbox: Inbox, name: string, text: string): Promise<string> {
  const bytes = Buffer.from(text);
  const id = { size: bytes.length, hash: await hashBytes(bytes) };
  const partial = (await inbox.partials.acquire({ owner: OWNER_A, filename: name, ...id }, '127.0.0.1'))!;
  const handle = await partial.openForWrite(0);
  await handle.write(bytes, 0, bytes.length, 0);
  await handle.close();
  try {
    return (await inbox.place(partial, name.split('/'))).path;
  } finally {
    partial.release();
  }
}

describe('placement without hard links', () => {
  it.each<[ConflictPolicy, string, string]>([
    ['rename', 'a.txt', 'a (1).txt'],
    ['overwrite', 'a.txt', 'a.txt'],
  ])('with %s, falls back to a rename and never replaces a file it should keep', async (policy, first, second) => {
    const { fs, vol } = noLinkFs();
    const inbox = await Inbox.open('/inbox', fs, policy);
    expect(await receive(inbox, 'a.txt', 'first')).toBe(first);
    expect(await receive(inbox, 'a.txt', 'second')).toBe(second);
    const files = (vol.readdirSync('/inbox') as string[]).filter((f) => f !== '.ft-partial').sort();
    if (policy === 'rename') {
      expect(files).toEqual(['a (1).txt', 'a.txt']);
      expect(vol.readFileSync('/inbox/a.txt', 'utf8')).toBe('first');
      expect(vol.readFileSync('/inbox/a (1).txt', 'utf8')).toBe('second');
    } else {
      expect(files).toEqual(['a.txt']);
      expect(vol.readFileSync('/inbox/a.txt', 'utf8')).toBe('second');
    }
    expect(vol.readdirSync('/inbox/.ft-partial')).toEqual([]);
  });

  it('with reject, refuses a taken name with CONFLICT', async () => {
    const { fs } = noLinkFs();
    const inbox = await Inbox.open('/inbox', fs, 'reject');
    await receive(inbox, 'a.txt', 'first');
    await expect(receive(inbox, 'a.txt', 'second')).rejects.toMatchObject({ code: 'CONFLICT' });
  });
});
