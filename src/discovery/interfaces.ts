import os from 'node:os';
import { FtError } from '../errors.js';

export type InterfaceMap = ReturnType<typeof os.networkInterfaces>;

/** Where to broadcast on one IPv4 interface. */
export interface BroadcastTarget {
  interface: string;
  address: string;
  netmask: string;
  broadcast: string;
}

export const LOOPBACK_BROADCAST = '127.255.255.255';

export interface TargetOptions {
  /** An interface name (`eth0`) or one of its addresses; only that interface is used. */
  only?: string;
  /** Include the loopback interface (127.255.255.255). */
  includeLoopback: boolean;
}

/**
 * The broadcast address of every IPv4 interface that is up, e.g. 192.168.1.20/24 → 192.168.1.255.
 * Pure over the interface map, so it is tested without touching the machine's network.
 */
export function broadcastTargets(options: TargetOptions, interfaces: InterfaceMap = os.networkInterfaces()): BroadcastTarget[] {
  const targets: BroadcastTarget[] = [];
  let matchedOnly = options.only === undefined;
  for (const [name, addresses] of Object.entries(interfaces)) {
    for (const entry of addresses ?? []) {
      if (entry.family !== 'IPv4') continue;
      const selected = options.only === undefined || options.only === name || options.only === entry.address;
      if (!selected) continue;
      matchedOnly = true;
      if (entry.internal) {
        if (options.includeLoopback || options.only !== undefined) {
          targets.push({ interface: name, address: entry.address, netmask: entry.netmask, broadcast: LOOPBACK_BROADCAST });
        }
        continue;
      }
      const broadcast = broadcastOf(entry.address, entry.netmask);
      if (broadcast) targets.push({ interface: name, address: entry.address, netmask: entry.netmask, broadcast });
    }
  }
  if (!matchedOnly) {
    throw new FtError('USAGE', `no IPv4 interface named or addressed ${JSON.stringify(options.only)} (see \`ip addr\`)`);
  }
  // One datagram per broadcast address, even when two interfaces share a subnet.
  return targets.filter((t, i) => targets.findIndex((o) => o.broadcast === t.broadcast) === i);
}

/** undefined for /31 and /32 networks, which have no broadcast address. */
export function broadcastOf(address: string, netmask: string): string | undefined {
  const a = toInt(address);
  const m = toInt(netmask);
  if (a === undefined || m === undefined || m >>> 0 >= 0xfffffffe) return undefined;
  return fromInt((a | ~m) >>> 0);
}

function toInt(dotted: string): number | undefined {
  const parts = dotted.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function fromInt(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
}

/** Whether an IPv4 address is on the target's subnet (used to answer only where we announce). */
export function onSubnet(address: string, target: Pick<BroadcastTarget, 'address' | 'netmask'>): boolean {
  const a = toInt(address.replace(/^::ffff:/, ''));
  const own = toInt(target.address);
  const mask = toInt(target.netmask);
  return a !== undefined && own !== undefined && mask !== undefined && ((a ^ own) & mask) === 0;
}

export function isLoopbackAddress(address: string): boolean {
  return address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
}

/** One IPv4 address of this host. */
export interface OwnAddress {
  address: string;
  netmask: string;
}

/**
 * The IPv4 addresses a receiver may answer from: every address of the selected interfaces
 * (an interface named, or the one holding the address given), loopback included unless an
 * interface is selected; only loopback for a loopback-only receiver. The kernel picks an
 * answer's source address among these, so a receiver lists them all in its datagrams.
 */
export function answerAddresses(
  options: { only?: string; loopbackOnly: boolean },
  interfaces: InterfaceMap = os.networkInterfaces(),
): OwnAddress[] {
  const found: OwnAddress[] = [];
  for (const [name, entries] of Object.entries(interfaces)) {
    const v4 = (entries ?? []).filter((entry) => entry.family === 'IPv4');
    const selected = options.only === undefined || options.only === name || v4.some((entry) => entry.address === options.only);
    if (!selected) continue;
    for (const entry of v4) {
      if (options.loopbackOnly && !entry.internal && !isLoopbackAddress(entry.address)) continue;
      if (!found.some((f) => f.address === entry.address)) found.push({ address: entry.address, netmask: entry.netmask });
    }
  }
  return found;
}

/** Addresses on the subnet of `near` (the asker, or where a beacon goes) first, the others after. */
export function nearestFirst(addresses: OwnAddress[], near: string): string[] {
  const close = addresses.filter((a) => onSubnet(near, a));
  const far = addresses.filter((a) => !onSubnet(near, a));
  return [...close, ...far].map((a) => a.address);
}
