/** A local file as a Source: read through openListed's checks, hashed by local-files.ts. */
import { escapeForDisplay } from '../names/safe-name.js';
import { FtError } from '../errors.js';
import { readRange, sameIdentity, type FileSystem } from '../file-system.js';
import type { FileIdentity } from './hash-cache.js';
import { dropContent, hashLocalFile, localFileError, openListed, type KeepBudget, type LocalFile } from './local-files.js';
import type { BlockConsumer, ReadOptions, Source } from './source.js';

export class FileSource implements LocalFile, Source {
  path: string;
  name: string;
  size: number;
  mtimeMs: number;
  mtimeNs?: bigint;
  mode?: number;
  hash = '';
  identity: FileIdentity | undefined;
  content?: Buffer;
  keptIn?: KeepBudget;
  listed?: { dev: number; ino: number };
  noFollow?: boolean;
  realPath?: string;
  /** A file can always be read again (it may have changed: `changed()` and the hash tell). */
  readonly rereadable = true;

  constructor(
    listed: LocalFile,
    private readonly fs: FileSystem,
  ) {
    this.path = listed.path;
    this.name = listed.name;
    this.size = listed.size;
    this.mtimeMs = listed.mtimeMs;
    this.hash = listed.hash;
    this.identity = listed.identity;
    this.listed = listed.listed;
    this.noFollow = listed.noFollow;
    this.realPath = listed.realPath;
  }

  async read(offset: number, consume: BlockConsumer, options: ReadOptions = {}): Promise<void> {
    const end = options.length === undefined ? this.size : offset + options.length;
    if (this.content) {
      // The bytes that were hashed, so they are exactly what the hash describes.
      options.signal?.throwIfAborted();
      await consume(this.content.subarray(offset, end));
      return;
    }
    const { handle } = await openListed(this, this.fs).catch((error: unknown) => {
      throw localFileError(this.path, error);
    });
    // An error of the consumer (the connection) is not a read error of ours.
    let theirs: unknown;
    try {
      const read = await readRange(
        handle,
        offset,
        end - offset,
        async (block) => {
          options.signal?.throwIfAborted();
          try {
            await consume(block);
          } catch (error) {
            theirs = error;
            throw error;
          }
        },
        { keepsBlocks: options.keepsBlocks },
      ).catch((error: unknown) => {
        throw error === theirs || options.signal?.aborted ? error : localFileError(this.path, error);
      });
      if (read < end - offset) throw new FtError('FILE_CHANGED', `${escapeForDisplay(this.path)} shrank while it was being read; run the command again`);
      if (options.checkUnchanged) {
        const now = await handle.stat().catch((error: unknown) => Promise.reject(localFileError(this.path, error)));
        if (this.identity === undefined || !sameIdentity(now, this.identity)) {
          throw new FtError('FILE_CHANGED', `${escapeForDisplay(this.path)} changed while it was being sent; run the command again`);
        }
      }
    } finally {
      await handle.close();
    }
  }

  async changed(): Promise<boolean> {
    let opened;
    try {
      opened = await openListed(this, this.fs);
    } catch (error) {
      if (error instanceof FtError && error.code === 'FILE_CHANGED') return true;
      throw localFileError(this.path, error);
    }
    try {
      return this.identity === undefined || !sameIdentity(opened.stat, this.identity);
    } finally {
      await opened.handle.close();
    }
  }

  async hashNow(signal?: AbortSignal): Promise<void> {
    this.release();
    await hashLocalFile(this, this.fs, { signal });
  }

  release(): void {
    dropContent(this);
  }
}
