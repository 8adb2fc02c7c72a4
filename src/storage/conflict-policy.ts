/**
 * What to do when a different file already has the name: keep both, replace it, or refuse.
 * A module of its own so that the command line can list the policies without loading storage.
 */
export type ConflictPolicy = 'rename' | 'overwrite' | 'reject';
export const CONFLICT_POLICIES: readonly ConflictPolicy[] = Object.freeze(['rename', 'overwrite', 'reject']);
