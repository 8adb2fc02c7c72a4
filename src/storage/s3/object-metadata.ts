/**
 * What an object placed by the S3 store carries as user metadata (`x-amz-meta-…`), since an
 * object has no modification time or permission bits of its own to set:
 *
 *   ft-id     the upload's random token (a replacement of the object shows)
 *   ft-hash   the whole file's hash, so "already there" and status need no download
 *   ft-mtime  the sender's modification time (PROTOCOL §9.5), in nanoseconds since the epoch
 *   ft-mode   the permission bits as the local store would apply them, in octal (`640`)
 *
 * A tool restoring files from the bucket (a future `ft get`) gives them these.
 */
import { OWNER_READ, PERMISSION_BITS } from '../local/file-metadata.js';
import type { FileMetadata } from '../upload-store.js';

const MTIME = /^-?(0|[1-9][0-9]{0,21})$/;
const MODE = /^[0-7]{1,4}$/;

/** The user metadata an object of this upload is given. */
export function objectMetadata(token: string, hash: string | undefined, file: FileMetadata | undefined, umask: number): Record<string, string> {
  return {
    'ft-id': token,
    ...(hash !== undefined ? { 'ft-hash': hash } : {}),
    ...(file?.mtimeNs !== undefined ? { 'ft-mtime': file.mtimeNs.toString() } : {}),
    ...(file?.mode !== undefined ? { 'ft-mode': ((file.mode & PERMISSION_BITS & ~umask) | OWNER_READ).toString(8) } : {}),
  };
}

/** Whether an object's metadata is `wanted` exactly (ft's keys; another tool's are left alone). */
export function sameFtMetadata(found: Record<string, string> | undefined, wanted: Record<string, string>): boolean {
  const ours = (m: Record<string, string>) => Object.keys(m).filter((k) => k.startsWith('ft-')).sort();
  const have = found ?? {};
  const keys = ours(wanted);
  return keys.join() === ours(have).join() && keys.every((k) => have[k] === wanted[k]);
}

/** The file metadata an object carries (ignoring values ft would not have written). */
export function fileMetadataOf(metadata: Record<string, string> | undefined): FileMetadata {
  const mtime = metadata?.['ft-mtime'];
  const mode = metadata?.['ft-mode'];
  return {
    ...(mtime !== undefined && MTIME.test(mtime) ? { mtimeNs: BigInt(mtime) } : {}),
    ...(mode !== undefined && MODE.test(mode) ? { mode: parseInt(mode, 8) & PERMISSION_BITS } : {}),
  };
}
