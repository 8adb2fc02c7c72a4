import { DISCOVER_DEFAULTS, SEND_DEFAULTS } from '../defaults.js';
import { discover, type FoundReceiver } from '../discovery/discover.js';
import { cachedPins, describeKey, hasPinnedKey, shellWord, type PinLookup } from '../discovery/pins.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { jsonLine } from './format.js';

export interface DiscoverCommandOptions {
  timeout: number;
  interface?: string;
  discoveryPort?: number;
  json?: boolean;
  /** The fingerprint pinned for a receiver name, if any (the trust store): a receiver claiming a pinned name with another key is a conflict. */
  pinnedFingerprint?: PinLookup;
}

/** A receiver whose name is pinned to another key than the one it claims (or to a key, while it claims none). */
export interface KeyConflict {
  /** The name it claims, as pinned. */
  name: string;
  /** The fingerprint pinned for that name. */
  pinned: string;
}

export async function discoverCommand(options: DiscoverCommandOptions): Promise<number> {
  const found = await discover({ timeout: options.timeout * 1000, interface: options.interface, port: options.discoveryPort });
  const conflicts = await keyConflicts(found, options.pinnedFingerprint);
  if (options.json) {
    for (const receiver of found) process.stdout.write(jsonLine('receiver', receiverJson(receiver, conflicts)));
    return 0;
  }
  if (found.length === 0) {
    process.stdout.write(
      'no receivers found.\n' +
        `Discovery broadcasts on UDP port ${options.discoveryPort ?? DISCOVER_DEFAULTS.port}: a firewall dropping it, Wi-Fi client isolation, or an interface\n` +
        'without a broadcast address (VPN, point-to-point) hides receivers. Try --interface <name>, a longer\n' +
        `--timeout, or send by address: ft send FILE --to 192.168.1.20:${SEND_DEFAULTS.port}\n`,
    );
    return 0;
  }
  process.stdout.write(receiverTable(found, conflicts));
  return 0;
}

/**
 * By receiver id, those that claim a pinned name with another key: every name an entry claims
 * (all claims of a conflicting id) is looked up once.
 */
export async function keyConflicts(found: FoundReceiver[], pinnedFingerprint: PinLookup | undefined): Promise<Map<string, KeyConflict>> {
  const conflicts = new Map<string, KeyConflict>();
  if (!pinnedFingerprint) return conflicts;
  const pinOf = cachedPins(pinnedFingerprint);
  for (const receiver of found) {
    for (const claim of receiver.claims ?? [receiver]) {
      const pinned = await pinOf(claim.name);
      if (pinned !== undefined && !hasPinnedKey(claim.fingerprint, pinned)) {
        conflicts.set(receiver.id, { name: claim.name, pinned });
        break;
      }
    }
  }
  return conflicts;
}

/** What `ft discover --json` says of one receiver: its entry (the full `fingerprint` among it), and whether its name is pinned to another key. */
export function receiverJson(receiver: FoundReceiver, keyConflicts: Map<string, KeyConflict>): object {
  const conflict = keyConflicts.get(receiver.id);
  return { ...receiver, keyConflict: conflict !== undefined, ...(conflict && { pinnedFingerprint: conflict.pinned }) };
}

/**
 * ADDRESSES and PORT of a receiver: its addresses and the port, or, when its instances (one
 * key, one name) listen on different ports, each address:port and `several`.
 */
function whereTo(r: FoundReceiver): [string, string] {
  if (r.endpoints.every((e) => e.port === r.port)) return [r.addresses.join(', '), String(r.port)];
  return [r.endpoints.map((e) => `${e.address}:${e.port}`).join(', '), 'several'];
}

/** The table `ft discover` prints, and a line under it for each id whose answers conflict. */
export function receiverTable(found: FoundReceiver[], keyConflicts: Map<string, KeyConflict> = new Map()): string {
  const key = (r: FoundReceiver) => {
    // A conflicting id: every key claimed with it.
    const keys = r.conflict ? [...new Set((r.claims ?? []).map((c) => describeKey(c.fingerprint)))].join(', ') : describeKey(r.fingerprint);
    return keyConflicts.has(r.id) ? `${keys} CONFLICT` : keys;
  };
  // A conflicting id: every address:port claimed with it, and no port to trust.
  const rows = found.map((r) =>
    r.conflict
      ? [escapeForDisplay(r.name), (r.claims ?? []).map((c) => `${c.address}:${c.port}`).join(', '), 'CONFLICT', r.auth ? 'yes' : 'no', key(r), r.id]
      : [escapeForDisplay(r.name), ...whereTo(r), r.auth ? 'yes' : 'no', key(r), r.id],
  );
  const header = ['NAME', 'ADDRESSES', 'PORT', 'TOKEN', 'KEY', 'ID'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  let text = '';
  for (const row of [header, ...rows]) text += row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  for (const r of found.filter((x) => x.conflict)) {
    text +=
      `CONFLICT: id ${r.id} answers from addresses or ports it does not announce as its own, or with answers that disagree; one of them may be an impostor ` +
      `(ft send --to ${escapeForDisplay(r.name)} refuses it; send by address)\n`;
  }
  for (const r of found) {
    const conflict = keyConflicts.get(r.id);
    if (!conflict) continue;
    const name = escapeForDisplay(conflict.name);
    const claimed = r.conflict ? 'it answers with another key' : r.fingerprint === undefined ? 'it has no key (no encryption)' : `it has key ${describeKey(r.fingerprint)}`;
    text +=
      `CONFLICT: "${name}" (id ${r.id}) is pinned with key ${describeKey(conflict.pinned)}, but ${claimed}: it may be an impostor ` +
      `(ft send --to ${name} ignores it); if its key changed deliberately, run ft trust forget ${shellWord(name)}\n`;
  }
  return text;
}
