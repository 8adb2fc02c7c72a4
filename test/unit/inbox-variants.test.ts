/**
 * Findings 4 and 5 of the attack review: under `rename`, taken numbered variants must neither
 * make a header cost work in proportion to their number nor run out, since "no free name"
 * before the body told a peer whether the name it asked for exists.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_COMPONENT_BYTES } from '../../src/names/safe-name.js';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { Inbox } from '../../src/storage/local/inbox.js';
import { folderSuffix, MAX_RENAME_ATTEMPTS, nameVariants, SEQUENTIAL_VARIANTS } from '../../src/storage/local/inbox-names.js';
import type { Partial } from '../../src/storage/local/partials.js';

const SUFFIXED = /^secret \(ft-[0-9a-f]{8}\)\.txt$/;

describe('nameVariants', () => {
  it('yields the name, its numbered variants up to 16, then a few random-suffixed ones, and no more', () => {
    const all = [...nameVariants('a.tar.gz')];
    expect(all.length).toBe(MAX_RENAME_ATTEMPTS);
    expect(all.slice(0, SEQUENTIAL_VARIANTS + 1)).toEqual(['a.tar.gz', ...Array.from({ length: SEQUENTIAL_VARIANTS }, (_, i) => `a (${i + 1}).tar.gz`)]);
    const suffixed = all.slice(SEQUENTIAL_VARIANTS + 1);
    expect(suffixed.length).toBeGreaterThan(0);
    for (const name of suffixed) expect(name).toMatch(/^a \(ft-[0-9a-f]{8}\)\.tar\.gz$/);
    expect(new Set(suffixed).size).toBe(suffixed.length);
    expect([...nameVariants('README')].at(-1)).toMatch(/^README \(ft-[0-9a-f]{8}\)$/);
  });

  it('derives the suffixes of a folder from its place and key: the same for every file, another elsewhere', () => {
    const key = Buffer.alloc(32, 7);
    const once = [...nameVariants('dir', folderSuffix(key, 'up', 'dir'))];
    expect([...nameVariants('dir', folderSuffix(key, 'up', 'dir'))]).toEqual(once);
    expect([...nameVariants('dir', folderSuffix(key, 'other', 'dir'))]).not.toEqual(once);
    expect([...nameVariants('dir', folderSuffix(Buffer.alloc(32, 8), 'up', 'dir'))]).not.toEqual(once);
  });

  it('keeps every variant of a 255-byte name within 255 bytes, characters whole', () => {
    for (const long of ['é'.repeat(120) + '.txt', 'x'.repeat(MAX_COMPONENT_BYTES), 'a.' + 'é'.repeat(126)]) {
      expect(Buffer.byteLength(long)).toBeLessThanOrEqual(MAX_COMPONENT_BYTES);
      for (const name of [...nameVariants(long)].slice(1)) {
        expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_COMPONENT_BYTES);
        expect(name.isWellFormed()).toBe(true);
        expect(name).not.toContain('\ufffd');
      }
    }
  });
});

/** `base` with its metadata calls counted: what a header's decision and placement cost. */
function countingCalls(base: FileSystem): { fs: FileSystem; calls: () => number; reset: () => void } {
  let calls = 0;
  const counted = ['lstatSync', 'statSync', 'openSync', 'linkSync', 'mkdirSync', 'readlinkSync', 'renameSync'] as const;
  const fs: FileSystem = { ...base };
  for (const name of counted) {
    const call = base[name] as (...args: unknown[]) => unknown;
    (fs as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      calls++;
      return call(...args);
    };
  }
  return { fs, calls: () => calls, reset: () => (calls = 0) };
}

describe.each([true, false])('taken variants under rename (folder handles: %s)', (folderHandles) => {
  let base: string;
  const opened: Inbox[] = [];
  beforeEach(async () => {
    base = await mkdtemp(path.join(os.tmpdir(), 'ft-inbox-variants-'));
  });
  afterEach(async () => {
    for (const inbox of opened.splice(0)) inbox.close();
    await rm(base, { recursive: true, force: true });
  });

  async function openInbox(fs: FileSystem = nodeFileSystem): Promise<Inbox> {
    const inbox = await Inbox.open(path.join(base, 'inbox'), fs, 'rename', { folderHandles });
    opened.push(inbox);
    return inbox;
  }

  let uploads = 0;
  /** A complete partial holding `text`, as the receiver leaves it before placement. */
  async function partialOf(inbox: Inbox, text: string): Promise<Partial> {
    const dataPath = path.join(inbox.partials.dir, `upload-${++uploads}.part`);
    await writeFile(dataPath, text);
    return {
      dataPath,
      id: { size: Buffer.byteLength(text) },
      size: Buffer.byteLength(text),
      forgetMeta: () => undefined,
      discard: () => rm(dataPath, { force: true }),
    } as unknown as Partial;
  }

  /** Files at `stem (1)ext` … `stem (count)ext` (and at the name itself if `withBase`) in `dir`. */
  async function takeVariants(dir: string, stem: string, ext: string, count: number, withBase: boolean): Promise<void> {
    await mkdir(dir, { recursive: true });
    if (withBase) await writeFile(path.join(dir, `${stem}${ext}`), 'base');
    for (let n = 1; n <= count; n++) await writeFile(path.join(dir, `${stem} (${n})${ext}`), `taken ${n}`);
  }

  it.each([true, false])('accepts a header whatever variants are taken, the same answer whether the name exists or not (it exists: %s)', async (withBase) => {
    const inbox = await openInbox();
    await takeVariants(path.join(inbox.root, 'docs'), 'secret', '.txt', 999, withBase);
    expect(await inbox.inspect(['docs', 'secret.txt'])).toEqual({ kind: 'free' });
    const placed = await inbox.place(await partialOf(inbox, 'uploaded'), ['docs', 'secret.txt']);
    if (withBase) expect(placed.path).toMatch(new RegExp(`^docs/${SUFFIXED.source.slice(1)}`));
    else expect(placed.path).toBe('docs/secret.txt');
    expect(placed.deduplicated).toBe(false);
    expect(await readFile(path.join(inbox.root, placed.path), 'utf8')).toBe('uploaded');
    if (withBase) expect(await readFile(path.join(inbox.root, 'docs', 'secret.txt'), 'utf8')).toBe('base');
  });

  it('goes to a random-suffixed name once the name and its first 16 variants are taken', async () => {
    const inbox = await openInbox();
    await takeVariants(inbox.root, 'secret', '.txt', SEQUENTIAL_VARIANTS, true);
    const first = await inbox.place(await partialOf(inbox, 'one'), ['secret.txt']);
    const second = await inbox.place(await partialOf(inbox, 'two'), ['secret.txt']);
    expect(first.path).toMatch(SUFFIXED);
    expect(second.path).toMatch(SUFFIXED);
    expect(second.path).not.toBe(first.path);
    expect(await readFile(path.join(inbox.root, first.path), 'utf8')).toBe('one');
    expect(await readFile(path.join(inbox.root, second.path), 'utf8')).toBe('two');
    expect(await readFile(path.join(inbox.root, `secret (${SEQUENTIAL_VARIANTS}).txt`), 'utf8')).toBe(`taken ${SEQUENTIAL_VARIANTS}`);
  });

  it('puts every file of a folder blocked by its first 17 names into one suffixed folder', async () => {
    const inbox = await openInbox();
    await takeVariants(inbox.root, 'dir', '', 999, true);
    const a = await inbox.place(await partialOf(inbox, 'a'), ['dir', 'a.txt']);
    const b = await inbox.place(await partialOf(inbox, 'b'), ['dir', 'sub', 'b.txt']);
    const [folder] = a.path.split('/');
    expect(folder).toMatch(/^dir \(ft-[0-9a-f]{8}\)$/);
    expect(a.path).toBe(`${folder}/a.txt`);
    expect(b.path).toBe(`${folder}/sub/b.txt`);
    expect((await readdir(path.join(inbox.root, folder!))).sort()).toEqual(['a.txt', 'sub']);
    expect(await readFile(path.join(inbox.root, 'dir'), 'utf8')).toBe('base');
  });

  it('places a 255-byte name that is taken under a shortened variant, not a name too long for the disk', async () => {
    const inbox = await openInbox();
    const long = `${'x'.repeat(MAX_COMPONENT_BYTES - 4)}.txt`;
    await writeFile(path.join(inbox.root, long), 'old');
    const placed = await inbox.place(await partialOf(inbox, 'new'), [long]);
    expect(placed.path).toMatch(/^x+ \(1\)\.txt$/);
    expect(Buffer.byteLength(placed.path)).toBeLessThanOrEqual(MAX_COMPONENT_BYTES);
    expect(await readFile(path.join(inbox.root, placed.path), 'utf8')).toBe('new');
  });

  it('costs a header and its placement a bounded number of look-ups, however many variants are taken', async () => {
    const counting = countingCalls(nodeFileSystem);
    const inbox = await openInbox(counting.fs);
    /** One header whose folder is blocked, one whose name is: both decided and placed. */
    const cost = async (folder: string, taken: number): Promise<{ calls: number; paths: string[] }> => {
      await takeVariants(path.join(inbox.root, folder), 'secret', '.txt', taken, true);
      await takeVariants(path.join(inbox.root, folder), 'dir', '', taken, true);
      const headers = [[folder, 'dir', 'x.txt'], [folder, 'secret.txt']];
      const partials = [await partialOf(inbox, `x in ${folder}`), await partialOf(inbox, `secret in ${folder}`)];
      counting.reset();
      const paths: string[] = [];
      for (const [i, header] of headers.entries()) {
        expect(await inbox.inspect(header)).toEqual({ kind: 'free' });
        paths.push((await inbox.place(partials[i]!, header)).path);
      }
      return { calls: counting.calls(), paths };
    };
    const few = await cost('few', SEQUENTIAL_VARIANTS);
    // 998: numbered names were still left here before the fix, so the difference is the cost alone.
    const many = await cost('many', 998);
    // A few calls per name tried, for the folder and for the file: a constant, not 1,000s.
    expect(few.calls).toBeLessThanOrEqual(8 * MAX_RENAME_ATTEMPTS);
    expect(many.calls).toBe(few.calls);
    for (const [folder, placed] of [['few', few], ['many', many]] as const) {
      expect(placed.paths[0]).toMatch(new RegExp(`^${folder}/dir \\(ft-[0-9a-f]{8}\\)/x\\.txt$`));
      expect(placed.paths[1]).toMatch(new RegExp(`^${folder}/secret \\(ft-[0-9a-f]{8}\\)\\.txt$`));
    }
  });
});
