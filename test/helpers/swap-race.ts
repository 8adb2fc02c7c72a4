/**
 * The swap attack on placement (issue 9, point 8): a local user who can write to the inbox
 * swaps a folder for a symbolic link to an outside folder and back in a tight loop, in another
 * thread, while uploads are placed into that folder. Nothing may land outside.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync, lstatSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { FtError } from '../../src/errors.js';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { Inbox, type ConflictPolicy } from '../../src/storage/local/inbox.js';
import type { Partial } from '../../src/storage/local/partials.js';
import { tempDir } from './temp.js';

// Whatever stands at d (the real folder, or one the inbox created while d was missing) is
// moved aside, a link to the outside folder takes its place for a moment, and the folder comes
// back. Folders that could not come back (d was taken meanwhile) stay aside, inside the inbox.
const SWAPPER = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const { dir, outside, shared, deadline, holdUs } = workerData;
const state = new Int32Array(shared);
// Each state lasts about as long as the gap between two of the inbox's calls.
const hold = (us) => { const until = process.hrtime.bigint() + BigInt(us) * 1000n; while (process.hrtime.bigint() < until); };
for (let k = 0; Atomics.load(state, 0) === 0 && Date.now() < deadline; k++) {
  const aside = dir + '.aside-' + k;
  let moved = false;
  try { fs.renameSync(dir, aside); moved = true; } catch {}
  try { fs.symlinkSync(outside, dir); } catch {}
  Atomics.add(state, 1, 1);
  hold(holdUs);
  try { if (fs.lstatSync(dir).isSymbolicLink()) fs.unlinkSync(dir); } catch {}
  if (moved) try { fs.renameSync(aside, dir); } catch {}
  hold(holdUs);
}
try { if (fs.lstatSync(dir).isSymbolicLink()) fs.unlinkSync(dir); } catch {}
`;

export interface RaceResult {
  attempts: number;
  placed: number;
  refused: number;
  swaps: number;
  /** Entries in the outside folder that were not there before. */
  outsideAdded: string[];
  /** Outside files whose content changed. */
  outsideChanged: string[];
  /** Uploaded files found anywhere in the inbox afterwards (links not followed). */
  inInbox: number;
  /** Errors other than a refusal (UNSAFE_PATH, CONFLICT) or WRITE_FAILED. */
  unexpectedErrors: string[];
  folderMode: string;
}

/**
 * Places up to `placements` uploads into `d/f-<n>` while `d` is swapped, for at most `maxMs`.
 * Partials are written straight into .ft-partial (the race is the inbox's, not the partial store's).
 */
export async function swapRace(policy: ConflictPolicy, placements: number, maxMs: number, folderHandles = true): Promise<RaceResult> {
  const base = await tempDir('ft-swap-race-');
  const dir = path.join(base, 'inbox');
  const outside = path.join(base, 'outside');
  mkdirSync(dir, { mode: 0o755 });
  mkdirSync(outside);
  mkdirSync(path.join(dir, 'd'));
  // Files of the uploads' names outside: overwrite must never replace them.
  const before = new Map<string, string>();
  for (let n = 0; n < Math.min(placements, 200); n++) before.set(`f-${n}`, `outside ${n}\n`);
  before.set('keep.txt', 'precious\n');
  for (const [name, text] of before) writeFileSync(path.join(outside, name), text);

  const inbox = await Inbox.open(dir, sluggish(nodeFileSystem), policy, { folderHandles });
  const shared = new SharedArrayBuffer(8);
  const state = new Int32Array(shared);
  const worker = new Worker(SWAPPER, {
    eval: true,
    workerData: { dir: path.join(dir, 'd'), outside, holdUs: SLOW_CALL_US, shared, deadline: Date.now() + maxMs + 30_000 },
  });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  let attempts = 0;
  let placed = 0;
  let refused = 0;
  const unexpected = new Set<string>();
  try {
    // The loop is running before the first placement.
    while (Atomics.load(state, 1) === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    const started = Date.now();
    const batch = 16;
    for (let n = 0; n < placements && Date.now() - started < maxMs; n += batch) {
      const round = Array.from({ length: Math.min(batch, placements - n) }, (_, i) => n + i);
      await Promise.all(
        round.map(async (i) => {
          attempts++;
          const partial = fakePartial(inbox, i);
          try {
            await inbox.place(partial, ['d', `f-${i}`]);
            placed++;
          } catch (error) {
            // Refused, or its folder kept being removed: allowed, as long as nothing lands outside.
            refused++;
            const code = error instanceof FtError ? error.code : `${(error as Error).message}`;
            if (!['UNSAFE_PATH', 'CONFLICT', 'WRITE_FAILED'].includes(code)) unexpected.add(code);
          }
        }),
      );
    }
  } finally {
    Atomics.store(state, 0, 1);
    await exited;
    inbox.close();
  }
  const outsideNow = readdirSync(outside);
  return {
    attempts,
    placed,
    refused,
    swaps: Atomics.load(state, 1),
    outsideAdded: outsideNow.filter((name) => !before.has(name)),
    outsideChanged: [...before].filter(([name, text]) => !outsideNow.includes(name) || readFileSync(path.join(outside, name), 'utf8') !== text).map(([name]) => name),
    inInbox: countUploads(dir),
    unexpectedErrors: [...unexpected],
    folderMode: inbox.folderMode,
  };
}

/**
 * Every metadata call takes a little longer, as on a slow or busy disk: the gaps between a
 * check and a use get wide enough for the swapping thread to hit them often.
 */
const SLOW_CALL_US = 30;

function sluggish(fs: FileSystem): FileSystem {
  const slowed = { ...fs };
  for (const name of ['lstatSync', 'statSync', 'realpathSync', 'linkSync', 'renameSync', 'mkdirSync', 'openSync'] as const) {
    const call = fs[name] as (...args: unknown[]) => unknown;
    (slowed as Record<string, unknown>)[name] = (...args: unknown[]) => {
      const result = call(...args);
      const until = process.hrtime.bigint() + BigInt(SLOW_CALL_US) * 1000n;
      while (process.hrtime.bigint() < until);
      return result;
    };
  }
  return slowed;
}

/** A complete partial as place() sees one: its data file, its size, and how to drop it. */
function fakePartial(inbox: Inbox, n: number): Partial {
  const bytes = Buffer.from(`upload ${n}\n`);
  const dataPath = path.join(inbox.partials.dir, `race-${n}.part`);
  writeFileSync(dataPath, bytes);
  return {
    dataPath,
    id: { size: bytes.length },
    size: bytes.length,
    forgetMeta: () => undefined,
    discard: () => undefined,
  } as unknown as Partial;
}

function countUploads(dir: string): number {
  let count = 0;
  for (const name of readdirSync(dir)) {
    if (name === '.ft-partial') continue;
    const full = path.join(dir, name);
    const stat = lstatSync(full);
    if (stat.isDirectory()) count += countUploads(full);
    else if (stat.isFile() && /^f-[0-9]+/.test(name)) count++;
  }
  return count;
}
