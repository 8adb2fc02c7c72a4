import type { Stats } from 'node:fs';
import { FtError } from '../../errors.js';

const STICKY = 0o1000;
const GROUP_OR_OTHER_WRITE = 0o022;

/**
 * Other local users must not be able to rename or replace what ft creates in the inbox (its
 * folders, .ft-partial): refuses a root they can write to, unless it is sticky (then they may
 * add entries but not rename or delete ours), and one owned by someone else (who could change
 * that at any time). Windows has neither the mode bits nor uids.
 */
export function refuseSharedInbox(stat: Stats, shown: string, uid = process.getuid?.(), platform = process.platform): void {
  if (platform === 'win32' || uid === undefined) return;
  if (stat.uid !== uid) {
    throw new FtError(
      'UNSAFE_PATH',
      `the inbox ${shown} belongs to another user (uid ${stat.uid}); run ft serve as that user, or give the folder to yourself (chown)`,
    );
  }
  const mode = stat.mode & 0o7777;
  if ((mode & GROUP_OR_OTHER_WRITE) !== 0 && (mode & STICKY) === 0) {
    const who = (mode & 0o002) !== 0 ? 'all users' : 'its group';
    throw new FtError(
      'UNSAFE_PATH',
      `the inbox ${shown} can be written by ${who} (mode ${mode.toString(8).padStart(4, '0')}); run chmod go-w ${shown} (or chmod +t ${shown} to make it sticky)`,
    );
  }
}
