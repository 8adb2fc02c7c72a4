import dns from 'node:dns/promises';
import net from 'node:net';
import os from 'node:os';
import { DISCOVER_DEFAULTS } from '../defaults.js';
import { FtError } from '../errors.js';
import type { ReceiverInfo } from './codec.js';
import type { DiscoverOptions, FoundReceiver } from './discover.js';
import { isLoopbackAddress } from './interfaces.js';
import { describeKey, hasPinnedKey, shellWord, type PinLookup } from './pins.js';
import { MAX_RECEIVERS } from './sightings.js';

export interface ResolvedReceiver {
  host: string;
  port: number;
  /** How it was found: given as an address, by DNS, or by discovery. */
  via: 'address' | 'dns' | 'discovery';
  receiver?: FoundReceiver;
  /** Why DNS was used after discovery was asked, for the user to read (one line). */
  note?: string;
  /**
   * Found by discovery: the key fingerprint its answers claimed (absent when they claimed none,
   * a receiver in plaintext). A claim only: the TLS certificate must show this very key.
   */
  fingerprint?: string;
  /**
   * Found by discovery: the receiver's other endpoints (instances sharing its key and name), in
   * the order heard, to try in turn after `host`:`port`. Each must show the same key.
   */
  fallbacks?: Array<{ host: string; port: number }>;
}

export type ResolveOptions = Pick<DiscoverOptions, 'interface' | 'port' | 'signal' | 'timeout'> & {
  /** Every address DNS gives for a name, or undefined. @default the system resolver (tests pass their own) */
  lookup?: (host: string) => Promise<string[] | undefined>;
  /**
   * The fingerprint pinned for a receiver name, if any (the trust store). With a pin for the
   * name asked for, answers with any other key are set aside: never picked, never merged.
   */
  pinnedFingerprint?: PinLookup;
};

/** How long discovery waits for a name that DNS also knows (receivers answer within milliseconds). */
export const DNS_NAME_DISCOVERY_MS = 500;
const DISCOVERY_MS = 1000;

/**
 * Turns what the user typed after --to (or nothing) into an address. An IP address is used as
 * is, and so is `localhost`; a host name with an explicit port goes to DNS. Otherwise the name is looked up by
 * discovery, so a receiver on another port than the default is found by its name even when
 * DNS knows that name too (a receiver's default name is its host name); DNS and its default
 * port serve when no receiver of that name answers. Two receivers with one name, one id that
 * answers from addresses it does not list as its own, or a discovered receiver where DNS
 * points elsewhere are errors, never a silent pick. When the name is pinned to a key, only
 * answers with that key count; if only others claim the name, that is RECEIVER_KEY_CHANGED.
 */
export async function resolveReceiver(
  target: { host: string; port: number | undefined } | undefined,
  defaultPort: number,
  options: ResolveOptions = {},
): Promise<ResolvedReceiver> {
  if (target && net.isIP(target.host)) return { host: target.host, port: target.port ?? defaultPort, via: 'address' };
  // Always this host (RFC 6761): no receiver on the network can be meant, so no query goes out.
  if (target && /^(.+\.)?localhost\.?$/i.test(target.host)) return { host: target.host, port: target.port ?? defaultPort, via: 'dns' };
  const { lookup = lookupAll, pinnedFingerprint, ...discoverOptions } = options;
  const dnsAddresses = target ? await lookup(target.host) : undefined;
  if (target && dnsAddresses && target.port !== undefined) return { host: target.host, port: target.port, via: 'dns' };
  // Read before any query goes out: a trust store that cannot be read stops here.
  const pin = target && pinnedFingerprint ? await pinnedFingerprint(target.host) : undefined;
  const otherKey = pin === undefined ? undefined : (info: ReceiverInfo) => !hasPinnedKey(info.fingerprint, pin);

  const wanted = target?.host.toLowerCase();
  const matches = (r: FoundReceiver) => wanted === undefined || names(r).some((name) => name.toLowerCase() === wanted);
  const timeout = options.timeout ?? (dnsAddresses ? DNS_NAME_DISCOVERY_MS : DISCOVERY_MS);
  // Loaded only when a receiver is looked up: `--to address:port` starts without the discovery code.
  const { discoverAll } = await import('./discover.js');
  const { receivers: found, overflowed, setAside } = await discoverAll(
    { ...discoverOptions, timeout, until: (list) => wanted !== undefined && list.some(matches) },
    otherKey,
  );
  const candidates = found.filter(matches);
  const discoveryPort = options.port ?? DISCOVER_DEFAULTS.port;
  if (overflowed) {
    // Answers for more receivers than are kept: a flood may have pushed the real one out.
    throw new FtError(
      'USAGE',
      `more than ${MAX_RECEIVERS} receivers answered discovery, which looks like a flood; not choosing one: ` +
        'connect by address (--to <address:port>)',
    );
  }

  if (candidates.length === 0) {
    const otherKeys = setAside.filter(matches);
    if (target && pin !== undefined && otherKeys.length > 0) throw keyChanged(target.host, pin, otherKeys);
    if (target && dnsAddresses) {
      const note = `no receiver named "${target.host}" answered discovery; using DNS (${dnsAddresses.join(', ')}) and port ${defaultPort}`;
      return { host: target.host, port: defaultPort, via: 'dns', note };
    }
    const everyone = [...found, ...setAside];
    const seen = everyone.length > 0 ? ` Receivers found: ${describeAll(everyone)}.` : '';
    const what = target ? `no host or receiver named "${target.host}"` : 'no receiver found on the network';
    throw new FtError(
      'CONNECT_FAILED',
      `${what}.${seen} Discovery uses UDP broadcast on port ${discoveryPort}: a firewall dropping it, Wi-Fi client ` +
        'isolation or a network without broadcast hides receivers; connect by address instead (--to 192.168.1.20:9527).',
    );
  }
  if (candidates.length > 1) {
    const why = target ? `${candidates.length} receivers are named "${target.host}"` : `${candidates.length} receivers found`;
    throw new FtError('USAGE', `${why}: ${describeAll(candidates)}; pick one with --to <address:port>`, { candidates });
  }
  const receiver = candidates[0]!;
  if (receiver.conflict) {
    throw new FtError(
      'USAGE',
      `receiver "${receiver.name}" (id ${receiver.id}) answers from ${claimsOf(receiver)}, which it does not announce as its own ` +
        '(or with answers that disagree on its port, name or key): one of them may be an impostor; pick one with --to <address:port>',
      { candidates },
    );
  }
  if (!target && pinnedFingerprint) {
    // The only receiver there, but under a name pinned to another key: not the one it says.
    const pinned = await pinnedFingerprint(receiver.name);
    if (pinned !== undefined && !hasPinnedKey(receiver.fingerprint, pinned)) throw keyChanged(receiver.name, pinned, [receiver]);
  }
  const fingerprint = receiver.fingerprint === undefined ? {} : { fingerprint: receiver.fingerprint };
  // DNS knows the name too: use the discovered port only for a receiver DNS agrees with, so an
  // impostor on the LAN cannot take over a host name that used to go to DNS.
  const agreed = dnsAddresses ? (address: string) => dnsAddresses.some((known) => sameHost(known, address)) : () => true;
  const endpoints = endpointsOf(receiver, target?.port).filter((e) => agreed(e.host));
  const [first, ...rest] = endpoints;
  if (first) return { ...first, via: 'discovery', receiver, ...fingerprint, ...(rest.length > 0 && { fallbacks: rest }) };
  throw new FtError(
    'USAGE',
    `"${target!.host}" is ${describeAll([receiver])} by discovery, but DNS says ${dnsAddresses!.join(', ')}; ` +
      'pick one with --to <address:port>',
    { candidates },
  );
}

/** Where a receiver can be reached, first heard first: every endpoint, or each address on `port` when one was given. */
function endpointsOf(receiver: FoundReceiver, port: number | undefined): Array<{ host: string; port: number }> {
  if (port !== undefined) return receiver.addresses.map((host) => ({ host, port }));
  return receiver.endpoints.map((e) => ({ host: e.address, port: e.port }));
}

/** Only receivers with another key (or none) claim a pinned name: refused, naming both keys. */
function keyChanged(name: string, pinned: string, others: FoundReceiver[]): FtError {
  const claims = others.flatMap((r) =>
    r.claims
      ? r.claims.filter((c) => c.name.toLowerCase() === name.toLowerCase()).map((c) => ({ where: `${c.address}:${c.port}`, fingerprint: c.fingerprint }))
      : [{ where: endpointList(r), fingerprint: r.fingerprint }],
  );
  const keyed = [...new Set(claims.map((c) => `${c.where} with ${keyOf(c.fingerprint)}`))];
  const who = keyed.length === 1 ? `the only receiver answering as "${name}" is ${keyed[0]}` : `the receivers answering as "${name}" are ${keyed.join('; ')}`;
  return new FtError(
    'RECEIVER_KEY_CHANGED',
    `receiver "${name}" is pinned with key ${describeKey(pinned)}, but ${who}: it may be an impostor, so nothing is sent; ` +
      `if the receiver's key changed deliberately, run \`ft trust forget ${shellWord(name)}\` and send again`,
    { name, pinned, claimed: [...new Set(claims.map((c) => c.fingerprint ?? null))], candidates: others },
  );
}

function keyOf(fingerprint: string | undefined): string {
  return fingerprint === undefined ? 'no key (no encryption)' : `key ${describeKey(fingerprint)}`;
}

function names(receiver: FoundReceiver): string[] {
  return receiver.claims ? receiver.claims.map((c) => c.name) : [receiver.name];
}

function claimsOf(receiver: FoundReceiver): string {
  const keys = new Set((receiver.claims ?? []).map((c) => c.fingerprint));
  return (receiver.claims ?? [])
    .map((c) => `${c.address}:${c.port}${c.name === receiver.name ? '' : ` as "${c.name}"`}${keys.size > 1 ? ` with key ${describeKey(c.fingerprint)}` : ''}`)
    .join(', ');
}

function endpointList(receiver: FoundReceiver): string {
  return receiver.endpoints.map((e) => `${e.address}:${e.port}`).join(', ');
}

function describeAll(receivers: FoundReceiver[]): string {
  return receivers
    .map((r) =>
      r.conflict
        ? `${r.name} (conflicting answers from ${claimsOf(r)}, id ${r.id})`
        : `${r.name} (${endpointList(r)}, id ${r.id}, key ${describeKey(r.fingerprint)})`,
    )
    .join('; ');
}

/** Every address DNS (or /etc/hosts) gives for the name; undefined when it knows none. */
async function lookupAll(host: string): Promise<string[] | undefined> {
  try {
    const addresses = await dns.lookup(host, { all: true });
    return addresses.length > 0 ? addresses.map((a) => a.address) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The same address, or two addresses of this very host (/etc/hosts often maps the host name
 * to 127.0.1.1, while a receiver here answers from 127.0.0.1 or a LAN address).
 */
function sameHost(a: string, b: string): boolean {
  const plain = (address: string) => address.replace(/^::ffff:/, '');
  if (plain(a) === plain(b)) return true;
  return isOwnAddress(plain(a)) && isOwnAddress(plain(b));
}

function isOwnAddress(address: string): boolean {
  if (isLoopbackAddress(address)) return true;
  return Object.values(os.networkInterfaces()).some((entries) => (entries ?? []).some((entry) => entry.address === address));
}
