/**
 * Receiver names pinned to keys (the sender's trust store, looked up through a function so that
 * discovery does not depend on the store): what discovery's `fp` claims is compared with them.
 */
import { fingerprintMatches, shortFingerprint } from '../auth/fingerprint.js';

/** The fingerprint pinned for a receiver name, if any (full, or at least the short form). */
export type PinLookup = (name: string) => Promise<string | undefined>;

/** Whether a claimed fingerprint is the pinned one; a receiver in plaintext (none) never is. */
export function hasPinnedKey(claimed: string | undefined, pinned: string): boolean {
  return claimed !== undefined && fingerprintMatches(claimed, pinned);
}

/** What people compare: the short form, or that there is no key at all. */
export function describeKey(fingerprint: string | undefined): string {
  return fingerprint === undefined ? 'none (no encryption)' : shortFingerprint(fingerprint);
}

/** A receiver name as one shell word, for a command to copy (`ft trust forget 'my laptop'`). */
export function shellWord(text: string): string {
  return /^[\w.@%+=:,/-]+$/u.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/** One lookup per name (case-insensitive) however many receivers share it. */
export function cachedPins(lookup: PinLookup): PinLookup {
  const seen = new Map<string, Promise<string | undefined>>();
  return (name) => {
    const key = name.toLowerCase();
    if (!seen.has(key)) seen.set(key, lookup(name));
    return seen.get(key)!;
  };
}
