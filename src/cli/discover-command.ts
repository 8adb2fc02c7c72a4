import { DISCOVER_DEFAULTS, SEND_DEFAULTS } from '../defaults.js';
import { discover, type FoundReceiver } from '../discovery/discover.js';
import { escapeForDisplay } from '../names/safe-name.js';
import { jsonLine } from './format.js';

export interface DiscoverCommandOptions {
  timeout: number;
  interface?: string;
  json?: boolean;
}

export async function discoverCommand(options: DiscoverCommandOptions): Promise<number> {
  const found = await discover({ timeout: options.timeout * 1000, interface: options.interface });
  if (options.json) {
    for (const receiver of found) process.stdout.write(jsonLine('receiver', receiver));
    return 0;
  }
  if (found.length === 0) {
    process.stdout.write(
      'no receivers found.\n' +
        `Discovery broadcasts on UDP port ${DISCOVER_DEFAULTS.port}: a firewall dropping it, Wi-Fi client isolation, or an interface\n` +
        'without a broadcast address (VPN, point-to-point) hides receivers. Try --interface <name>, a longer\n' +
        `--timeout, or send by address: ft send FILE --to 192.168.1.20:${SEND_DEFAULTS.port}\n`,
    );
    return 0;
  }
  process.stdout.write(receiverTable(found));
  return 0;
}

/** The table `ft discover` prints, and a line under it for each id whose answers conflict. */
export function receiverTable(found: FoundReceiver[]): string {
  // A conflicting id: every address:port claimed with it, and no port to trust.
  const rows = found.map((r) =>
    r.conflict
      ? [escapeForDisplay(r.name), (r.claims ?? []).map((c) => `${c.address}:${c.port}`).join(', '), 'CONFLICT', r.auth ? 'yes' : 'no', r.id]
      : [escapeForDisplay(r.name), r.addresses.join(', '), String(r.port), r.auth ? 'yes' : 'no', r.id],
  );
  const header = ['NAME', 'ADDRESSES', 'PORT', 'TOKEN', 'ID'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  let text = '';
  for (const row of [header, ...rows]) text += row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd() + '\n';
  for (const r of found.filter((x) => x.conflict)) {
    text +=
      `CONFLICT: id ${r.id} answers from addresses or ports it does not announce as its own; one of them may be an impostor ` +
      `(ft send --to ${escapeForDisplay(r.name)} refuses it; send by address)\n`;
  }
  return text;
}
