import { shortFingerprint } from '../auth/fingerprint.js';
import { defaultTrustStorePath, TrustStore, type PinnedReceiver } from '../auth/trust-store.js';
import { FtError } from '../errors.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { jsonLine } from './format.js';

export interface TrustListOptions {
  json?: boolean;
  trustFile?: string;
}

export interface TrustForgetOptions {
  trustFile?: string;
}

function storeOf(options: { trustFile?: string }): TrustStore {
  return new TrustStore(options.trustFile ?? defaultTrustStorePath());
}

/** `ft trust list`: a table of the pins, or one JSON line for each. */
export async function trustListCommand(options: TrustListOptions): Promise<number> {
  const store = storeOf(options);
  const entries = await store.list();
  if (options.json) {
    for (const entry of entries) process.stdout.write(jsonLine('pinned', entry));
    return 0;
  }
  if (entries.length === 0) {
    process.stdout.write(`no receivers pinned (${escapeForDisplay(store.file)}); ft send pins a receiver on first contact\n`);
    return 0;
  }
  process.stdout.write(pinnedTable(entries));
  return 0;
}

/** `ft trust forget <name|address|fingerprint>`: removes the entries it names, says which. */
export async function trustForgetCommand(what: string, options: TrustForgetOptions): Promise<number> {
  const store = storeOf(options);
  const removed = await store.forget(what);
  if (removed.length === 0) {
    throw new FtError('USAGE', `no pinned receiver has the name, address or fingerprint ${escapeForDisplay(what)} (see ft trust list)`);
  }
  for (const entry of removed) {
    process.stdout.write(`forgot ${shortFingerprint(entry.fingerprint)}${describeHolder(entry)}\n`);
  }
  process.stdout.write('the next ft send to it treats it as first contact: check the fingerprint the receiver prints\n');
  return 0;
}

function describeHolder(entry: PinnedReceiver): string {
  const parts = [entry.names.map(escapeForDisplay).join(', '), entry.addresses.join(', ')].filter((part) => part !== '');
  return parts.length ? ` (${parts.join('; ')})` : '';
}

/** Local time to the minute: when a pin was made or last used. */
function when(iso: string): string {
  const d = new Date(iso);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

export function pinnedTable(entries: PinnedReceiver[]): string {
  const header = ['FINGERPRINT', 'NAMES', 'ADDRESSES', 'PINNED', 'LAST SEEN'];
  const rows = entries.map((e) => [shortFingerprint(e.fingerprint), e.names.map(escapeForDisplay).join(', ') || '-', e.addresses.join(', ') || '-', when(e.added), when(e.lastSeen)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  let text = '';
  for (const row of [header, ...rows]) text += row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  return text;
}

/** The fingerprint pinned for a receiver name in the trust file, for discovery to compare beacons with. */
export function pinnedByName(trustFile: string): (name: string) => Promise<string | undefined> {
  const store = new TrustStore(trustFile);
  return async (name) => (await store.lookup({ name })).byName?.fingerprint;
}
