/**
 * Broadcast targets, computed from hand-made interface maps only: nothing here reads the
 * machine's real interfaces or touches the network.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import {
  answerAddresses,
  broadcastOf,
  broadcastTargets,
  isLoopbackAddress,
  LOOPBACK_BROADCAST,
  nearestFirst,
  onSubnet,
  type InterfaceMap,
} from '../../src/discovery/interfaces.js';

function v4(address: string, netmask: string, internal = false): NetworkInterfaceInfo {
  const bits = netmask.split('.').reduce((n, part) => n + Number(part).toString(2).replace(/0/g, '').length, 0);
  return { address, netmask, family: 'IPv4', mac: internal ? '00:00:00:00:00:00' : '02:00:00:00:00:01', internal, cidr: `${address}/${bits}` };
}

function v6(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal, cidr: `${address}/64`, scopeid: 0 };
}

const lo = [v4('127.0.0.1', '255.0.0.0', true), v6('::1', true)];

/** A typical laptop: loopback, Wi-Fi on a /24, wired on a /16, a point-to-point VPN and a host route. */
const laptop: InterfaceMap = {
  lo,
  wlan0: [v4('192.168.1.20', '255.255.255.0'), v6('fe80::1')],
  eth0: [v4('10.1.2.3', '255.255.0.0')],
  tun0: [v4('10.8.0.2', '255.255.255.254')],
  wg0: [v4('10.9.0.5', '255.255.255.255')],
};

const targets = (options: Parameters<typeof broadcastTargets>[0], map: InterfaceMap = laptop) => broadcastTargets(options, map);

function usageError(fn: () => unknown): FtError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(FtError);
    expect((error as FtError).code).toBe('USAGE');
    return error as FtError;
  }
  throw new Error('expected a USAGE FtError, nothing was thrown');
}

describe('broadcastTargets', () => {
  it('gives the directed broadcast address of each IPv4 interface, skipping /31, /32 and loopback', () => {
    expect(targets({ includeLoopback: false })).toMatchObject([
      { interface: 'wlan0', address: '192.168.1.20', broadcast: '192.168.1.255' },
      { interface: 'eth0', address: '10.1.2.3', broadcast: '10.1.255.255' },
    ]);
  });

  it('adds loopback (127.255.255.255) with includeLoopback', () => {
    const all = targets({ includeLoopback: true });
    expect(all).toContainEqual({ interface: 'lo', address: '127.0.0.1', netmask: '255.0.0.0', broadcast: LOOPBACK_BROADCAST });
    expect(LOOPBACK_BROADCAST).toBe('127.255.255.255');
    expect(all.map((t) => t.broadcast).sort()).toEqual(['10.1.255.255', '127.255.255.255', '192.168.1.255']);
  });

  it('ignores IPv6 addresses entirely', () => {
    const map: InterfaceMap = { lo: [v6('::1', true)], eth0: [v6('fd00::2'), v6('fe80::fc:ff:fe00:1')] };
    expect(broadcastTargets({ includeLoopback: true }, map)).toEqual([]);
    // An interface with only IPv6 cannot be selected for IPv4 broadcast.
    usageError(() => broadcastTargets({ only: 'eth0', includeLoopback: false }, map));
  });

  it('skips /31 and /32 networks, which have no broadcast address', () => {
    expect(targets({ includeLoopback: false, only: 'tun0' })).toEqual([]);
    expect(targets({ includeLoopback: false, only: 'wg0' })).toEqual([]);
  });

  it('skips interfaces without addresses (undefined entries)', () => {
    const map: InterfaceMap = { dummy: undefined, eth0: [v4('172.16.5.4', '255.240.0.0')] };
    expect(broadcastTargets({ includeLoopback: true }, map)).toMatchObject([{ interface: 'eth0', address: '172.16.5.4', broadcast: '172.31.255.255' }]);
  });

  it('selects one interface by name', () => {
    expect(targets({ includeLoopback: false, only: 'eth0' })).toMatchObject([{ interface: 'eth0', address: '10.1.2.3', broadcast: '10.1.255.255' }]);
  });

  it('selects one interface by address', () => {
    expect(targets({ includeLoopback: false, only: '192.168.1.20' })).toMatchObject([
      { interface: 'wlan0', address: '192.168.1.20', broadcast: '192.168.1.255' },
    ]);
  });

  it('selects only the matching address of an interface with several', () => {
    const map: InterfaceMap = { eth0: [v4('192.168.1.20', '255.255.255.0'), v4('10.0.0.7', '255.0.0.0')] };
    expect(broadcastTargets({ includeLoopback: false, only: '10.0.0.7' }, map)).toMatchObject([
      { interface: 'eth0', address: '10.0.0.7', broadcast: '10.255.255.255' },
    ]);
    expect(broadcastTargets({ includeLoopback: false, only: 'eth0' }, map).map((t) => t.broadcast)).toEqual(['192.168.1.255', '10.255.255.255']);
  });

  it('includes loopback when `only` selects it, even without includeLoopback', () => {
    const expected = [{ interface: 'lo', address: '127.0.0.1', broadcast: LOOPBACK_BROADCAST }];
    expect(targets({ includeLoopback: false, only: 'lo' })).toMatchObject(expected);
    expect(targets({ includeLoopback: false, only: '127.0.0.1' })).toMatchObject(expected);
  });

  it('`only` excludes loopback and every other interface it does not name', () => {
    expect(targets({ includeLoopback: true, only: 'wlan0' }).map((t) => t.interface)).toEqual(['wlan0']);
  });

  it.each(['eth9', '192.168.1.21', 'WLAN0', '', 'fe80::1'])('`only` matching no IPv4 interface (%j) is a USAGE error', (only) => {
    const error = usageError(() => targets({ includeLoopback: true, only }));
    expect(error.message).toContain(JSON.stringify(only));
  });

  it('deduplicates broadcast addresses shared by two interfaces (first one kept)', () => {
    const map: InterfaceMap = {
      eth0: [v4('192.168.1.20', '255.255.255.0')],
      wlan0: [v4('192.168.1.21', '255.255.255.0')],
      br0: [v4('192.168.1.22', '255.255.255.0'), v4('10.0.0.1', '255.255.255.0')],
      lo,
      lo2: [v4('127.0.0.2', '255.0.0.0', true)],
    };
    expect(broadcastTargets({ includeLoopback: true }, map)).toMatchObject([
      { interface: 'eth0', address: '192.168.1.20', broadcast: '192.168.1.255' },
      { interface: 'br0', address: '10.0.0.1', broadcast: '10.0.0.255' },
      { interface: 'lo', address: '127.0.0.1', broadcast: LOOPBACK_BROADCAST },
    ]);
  });

  it('does not read the real machine when a map is given', () => {
    expect(broadcastTargets({ includeLoopback: true }, {})).toEqual([]);
  });
});

describe('broadcastOf', () => {
  it.each([
    ['192.168.1.20', '255.255.255.0', '192.168.1.255'],
    ['10.1.2.3', '255.255.0.0', '10.1.255.255'],
    ['10.1.2.3', '255.0.0.0', '10.255.255.255'],
    ['172.16.5.4', '255.240.0.0', '172.31.255.255'],
    ['192.168.1.130', '255.255.255.128', '192.168.1.255'],
    ['192.168.1.20', '255.255.255.128', '192.168.1.127'],
    ['192.168.1.9', '255.255.255.252', '192.168.1.11'],
    ['255.255.255.254', '255.255.255.0', '255.255.255.255'],
    ['1.2.3.4', '0.0.0.0', '255.255.255.255'],
  ])('%s / %s → %s', (address, netmask, broadcast) => {
    expect(broadcastOf(address, netmask)).toBe(broadcast);
  });

  it.each([
    ['/31', '10.8.0.2', '255.255.255.254'],
    ['/32', '10.9.0.5', '255.255.255.255'],
    ['a bad address', '192.168.1', '255.255.255.0'],
    ['an out-of-range octet', '192.168.1.256', '255.255.255.0'],
    ['a bad netmask', '192.168.1.20', '255.255.255'],
    ['an IPv6 address', 'fe80::1', '255.255.255.0'],
    ['garbage', 'a.b.c.d', '255.255.255.0'],
  ])('undefined for %s', (_what, address, netmask) => {
    expect(broadcastOf(address, netmask)).toBeUndefined();
  });
});

describe('isLoopbackAddress', () => {
  it.each(['127.0.0.1', '127.0.0.2', '127.255.255.255', '::1', '::ffff:127.0.0.1'])('%s is loopback', (address) => {
    expect(isLoopbackAddress(address)).toBe(true);
  });

  it.each(['192.0.2.2', '10.127.0.1', '0.0.0.0', '::', '::ffff:192.168.1.1', 'fe80::1', '128.0.0.1', '1.127.0.0'])('%s is not', (address) => {
    expect(isLoopbackAddress(address)).toBe(false);
  });
});

describe('onSubnet', () => {
  const lan = { address: '192.168.1.20', netmask: '255.255.255.0' };
  it('accepts addresses on the interface subnet, IPv4-mapped or not', () => {
    expect(onSubnet('192.168.1.77', lan)).toBe(true);
    expect(onSubnet('::ffff:192.168.1.1', lan)).toBe(true);
  });
  it('refuses addresses on other subnets and non-IPv4 text', () => {
    expect(onSubnet('192.168.2.77', lan)).toBe(false);
    expect(onSubnet('10.0.0.1', lan)).toBe(false);
    expect(onSubnet('fe80::1', lan)).toBe(false);
  });
  it('treats all of 127/8 as the loopback subnet', () => {
    expect(onSubnet('127.0.0.5', { address: '127.0.0.1', netmask: '255.0.0.0' })).toBe(true);
  });
});

describe('answerAddresses (what a receiver lists in addrs)', () => {
  const addresses = (options: Parameters<typeof answerAddresses>[0], map: InterfaceMap = laptop) => answerAddresses(options, map).map((a) => a.address);

  it('a wildcard receiver lists every IPv4 address, loopback and /31, /32 links included (it may answer from any)', () => {
    expect(addresses({ loopbackOnly: false })).toEqual(['127.0.0.1', '192.168.1.20', '10.1.2.3', '10.8.0.2', '10.9.0.5']);
  });

  it('a loopback-only receiver lists loopback only', () => {
    expect(addresses({ loopbackOnly: true })).toEqual(['127.0.0.1']);
  });

  it('one interface, by name or by one of its addresses, lists all of that interface’s IPv4 addresses', () => {
    const twoAddresses: InterfaceMap = { ...laptop, eth0: [v4('10.1.2.3', '255.255.0.0'), v4('10.1.2.4', '255.255.0.0')] };
    expect(addresses({ only: 'eth0', loopbackOnly: false }, twoAddresses)).toEqual(['10.1.2.3', '10.1.2.4']);
    // The kernel may pick the interface's first address as the source even for a receiver bound to the second.
    expect(addresses({ only: '10.1.2.4', loopbackOnly: false }, twoAddresses)).toEqual(['10.1.2.3', '10.1.2.4']);
    expect(addresses({ only: 'nope0', loopbackOnly: false })).toEqual([]);
  });

  it('lists an address shared by two interfaces once', () => {
    expect(addresses({ loopbackOnly: false }, { a: [v4('10.0.0.1', '255.0.0.0')], b: [v4('10.0.0.1', '255.0.0.0')] })).toEqual(['10.0.0.1']);
  });
});

describe('nearestFirst', () => {
  const own = [
    { address: '127.0.0.1', netmask: '255.0.0.0' },
    { address: '192.168.1.20', netmask: '255.255.255.0' },
    { address: '10.1.2.3', netmask: '255.255.0.0' },
  ];

  it('puts the addresses on the asker’s subnet first and keeps the others in order', () => {
    expect(nearestFirst(own, '10.1.99.7')).toEqual(['10.1.2.3', '127.0.0.1', '192.168.1.20']);
    expect(nearestFirst(own, '127.0.0.1')).toEqual(['127.0.0.1', '192.168.1.20', '10.1.2.3']);
    expect(nearestFirst(own, '172.16.0.1')).toEqual(['127.0.0.1', '192.168.1.20', '10.1.2.3']);
  });
});
