import dns from 'node:dns/promises';
import net from 'node:net';
import { FtError } from '../errors.js';
import { discover, type DiscoverOptions, type FoundReceiver } from './discover.js';

export interface ResolvedReceiver {
  host: string;
  port: number;
  /** How it was found: given as an address, by DNS, or by discovery. */
  via: 'address' | 'dns' | 'discovery';
  receiver?: FoundReceiver;
}

export type ResolveOptions = Pick<DiscoverOptions, 'interface' | 'port' | 'signal' | 'timeout'>;

/**
 * Turns what the user typed after --to (or nothing) into an address: an IP address is used
 * as is, then a host name DNS knows, then a receiver name found by discovery. Two receivers
 * with one name are an error, never a silent pick.
 */
export async function resolveReceiver(
  target: { host: string; port: number | undefined } | undefined,
  defaultPort: number,
  options: ResolveOptions = {},
): Promise<ResolvedReceiver> {
  if (target && net.isIP(target.host)) return { host: target.host, port: target.port ?? defaultPort, via: 'address' };
  if (target && (await resolvesByDns(target.host))) return { host: target.host, port: target.port ?? defaultPort, via: 'dns' };

  const wanted = target?.host.toLowerCase();
  const matches = (r: FoundReceiver) => wanted === undefined || r.name.toLowerCase() === wanted;
  const found = await discover({ ...options, until: (list) => wanted !== undefined && list.some(matches) });
  const candidates = found.filter(matches);
  if (candidates.length === 1) {
    const receiver = candidates[0]!;
    return { host: receiver.addresses[0]!, port: target?.port ?? receiver.port, via: 'discovery', receiver };
  }
  if (candidates.length === 0) {
    const seen = found.length > 0 ? ` Receivers found: ${describeAll(found)}.` : '';
    const what = target ? `no host or receiver named "${target.host}"` : 'no receiver found on the network';
    throw new FtError(
      'CONNECT_FAILED',
      `${what}.${seen} Discovery uses UDP broadcast on port ${options.port ?? 9527}: a firewall dropping it, Wi-Fi client ` +
        'isolation or a network without broadcast hides receivers; connect by address instead (--to 192.168.1.20:9527).',
    );
  }
  const why = target ? `${candidates.length} receivers are named "${target.host}"` : `${candidates.length} receivers found`;
  throw new FtError('USAGE', `${why}: ${describeAll(candidates)}; pick one with --to <address:port>`, { candidates });
}

function describeAll(receivers: FoundReceiver[]): string {
  return receivers.map((r) => `${r.name} (${r.addresses.map((a) => `${a}:${r.port}`).join(', ')}, id ${r.id})`).join('; ');
}

async function resolvesByDns(host: string): Promise<boolean> {
  try {
    await dns.lookup(host);
    return true;
  } catch {
    return false;
  }
}
