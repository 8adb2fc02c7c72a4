import { partialKey } from '../../src/storage/partials.js';

/**
 * The owner every receiver session uses until the sender's hello proves a key (see the
 * TODO(lead) in receiver-session.ts): tests that look at a session's partials on disk use it.
 */
export const SESSION_OWNER = '0'.repeat(64);

/** Two senders' owner fingerprints, for tests of the storage alone. */
export const OWNER_A = 'a'.repeat(64);
export const OWNER_B = 'b'.repeat(64);

/** `.ft-partial/<key>` (relative to the inbox, as listFiles shows it) of a session's upload. */
export function sessionPartial(filename: string, size: number): string {
  return `.ft-partial/${partialKey({ owner: SESSION_OWNER, filename, size })}`;
}
