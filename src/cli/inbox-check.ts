/**
 * Why `ft serve DIR` cannot receive into DIR, in one line, before it starts: a file where the
 * folder should be or above it, a folder this user cannot write, a read-only file system.
 */
import { accessSync, constants, lstatSync, statSync, type Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FtError } from '../errors.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { describeFsError } from '../sender/local-files.js';

function statOf(file: string): Stats | NodeJS.ErrnoException {
  try {
    return statSync(file);
  } catch (error) {
    return error as NodeJS.ErrnoException;
  }
}

function whoAmI(): string {
  try {
    return os.userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? '?'}`;
  }
}

/** Undefined when this user can write into `folder`, else why not. */
function notWritable(folder: string): string | undefined {
  try {
    accessSync(folder, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return 'the file system is read-only';
    if (code === 'EACCES' || code === 'EPERM') return `this user (${whoAmI()}) may not write there`;
    return describeFsError(error);
  }
}

/** The line to print (after `ft: `) when `dir` cannot be an inbox; undefined when it can. */
export function inboxProblem(dir: string): string | undefined {
  const target = path.resolve(dir);
  const shown = escapeForDisplay(dir);
  const stat = statOf(target);
  if (!(stat instanceof Error)) {
    if (!stat.isDirectory()) return `cannot receive into ${shown}: ${stat.isFile() ? 'it is a file, not a folder' : 'it is not a folder'}`;
    const why = notWritable(target);
    return why && `cannot receive into ${shown}: ${why}`;
  }
  if (stat.code !== 'ENOENT' && stat.code !== 'ENOTDIR') return `cannot receive into ${shown}: ${describeFsError(stat)}`;
  const link = (() => {
    try {
      return lstatSync(target).isSymbolicLink();
    } catch {
      return false;
    }
  })();
  if (link) return `cannot receive into ${shown}: it is a symbolic link to something that does not exist`;
  // Missing: the nearest thing that exists above it decides whether it can be created.
  for (let above = path.dirname(target); ; above = path.dirname(above)) {
    const found = statOf(above);
    if (found instanceof Error) {
      if (found.code !== 'ENOENT' && found.code !== 'ENOTDIR') return `cannot create ${shown}: ${describeFsError(found)}`;
      if (above === path.dirname(above)) return undefined;
      continue;
    }
    if (!found.isDirectory()) return `cannot create ${shown}: ${escapeForDisplay(above)} is a file, not a folder`;
    const why = notWritable(above);
    return why && `cannot create ${shown} in ${escapeForDisplay(above)}: ${why}`;
  }
}

/** The same, as the error `ft serve` exits with (code 2). */
export function checkInbox(dir: string): void {
  const problem = inboxProblem(dir);
  if (problem) throw new FtError('LOCAL_FILE', problem, { path: dir });
}

/** A file-system error from starting the receiver (a race past checkInbox), in words. */
export function inboxError(dir: string, error: unknown): unknown {
  const { code, syscall, path: where } = (error ?? {}) as NodeJS.ErrnoException;
  if (error instanceof FtError || !code || !syscall) return error;
  const on = where && path.resolve(where) !== path.resolve(dir) ? ` (${escapeForDisplay(where)})` : '';
  return new FtError('LOCAL_FILE', `cannot receive into ${escapeForDisplay(dir)}: ${describeFsError(error)}${on}`, { path: dir }, { cause: error });
}
