import type { FileSystem } from '../../src/file-system.js';

/** `base` with every byte read counted, through open handles and through readSync alike. */
export function countingReads(base: FileSystem): { fs: FileSystem; bytesRead: () => number } {
  let bytes = 0;
  const fs: FileSystem = {
    ...base,
    open: (async (...args: Parameters<FileSystem['open']>) => {
      const handle = await base.open(...args);
      const read = handle.read.bind(handle) as (...a: unknown[]) => Promise<{ bytesRead: number }>;
      (handle as unknown as { read: unknown }).read = async (...a: unknown[]) => {
        const result = await read(...a);
        bytes += result.bytesRead;
        return result;
      };
      return handle;
    }) as FileSystem['open'],
    readSync: ((...args: Parameters<FileSystem['readSync']>) => {
      const bytesRead = base.readSync(...args);
      bytes += bytesRead;
      return bytesRead;
    }) as FileSystem['readSync'],
  };
  return { fs, bytesRead: () => bytes };
}
