/**
 * From the answers and announces heard to a list of receivers, without trusting any of them.
 *
 * Ids are not secret: anyone who hears a beacon can answer with the same id from another
 * address. So answers with one id make one receiver only when they agree:
 *  - with a key (`fp`): same name, auth and key. Several `ft serve` instances sharing one
 *    identity and one name (one store) answer so, each from its own address and port, and are
 *    one receiver with several endpoints. Merging on the key is safe because the key is what
 *    every connection is checked against: the sender's TLS check requires each endpoint to show
 *    that very key (src/sender/receiver-trust.ts), so an answer that copied it from elsewhere
 *    adds an endpoint that fails the check, never one that receives a byte. Answers with
 *    another key (or none) are never merged: a conflict, as below.
 *  - in plaintext: nothing vouches for anything, so also the same TCP port, and every address
 *    they came from is one the receiver itself lists in `addrs`, in every one of them: that is
 *    how one receiver on several interfaces tells us its addresses belong together.
 * Anything else is a conflict, shown as such and never connected to by name.
 * Pure: no sockets, no clock (callers pass the time), so it is unit-tested as it is.
 */
import type { ReceiverInfo } from './codec.js';

/** One datagram's worth of what a receiver said about itself, and where it came from. */
export interface Sighting {
  /** Source address of the datagram. */
  address: string;
  info: ReceiverInfo;
}

/** One of the claims heard for a conflicting id. */
export interface Claim {
  address: string;
  port: number;
  name: string;
  auth: boolean;
  /** The key fingerprint it claimed; absent for a claim of plaintext. */
  fingerprint?: string;
}

/** One address:port a receiver answered from (with the TCP port that answer gave). */
export interface Endpoint {
  address: string;
  port: number;
}

/** A receiver found on the network: one entry per id, however many interfaces (or instances) it answered on. */
export interface FoundReceiver {
  name: string;
  id: string;
  port: number;
  auth: boolean;
  /** Full fingerprint of its TLS key, as its answers claim it (`fp`); absent for a receiver in plaintext. */
  fingerprint?: string;
  /** Addresses it answered from, first answer first. */
  addresses: string[];
  /**
   * Each address:port it answered from, first answer first: one per interface, and one per
   * instance when several share its key and name (their ports may differ; `port` is the first's).
   */
  endpoints: Endpoint[];
  /**
   * Answers with this id disagree (another address, port, name, auth or key that the receiver does
   * not list as its own): one of them is likely an impostor that copied the id. Never connect
   * to such an entry by name; `claims` says who said what.
   */
  conflict: boolean;
  /** Present when `conflict` is: each distinct claim, first heard first. */
  claims?: Claim[];
}

/** Ids tracked at once: a flood of invented ids must not grow memory without bound. */
export const MAX_RECEIVERS = 256;
/** Distinct sightings kept per id; an id with more is a conflict anyway (or a flood). */
export const MAX_SIGHTINGS_PER_ID = 16;

interface Kept {
  sighting: Sighting;
  key: string;
  expires: number;
}

/** Whether the sightings of one id describe one receiver (see the module comment). */
export function consistent(sightings: Sighting[]): boolean {
  const [first, ...rest] = sightings;
  if (!first) return true;
  const sameClaim = (s: Sighting) => s.info.name === first.info.name && s.info.auth === first.info.auth && s.info.fingerprint === first.info.fingerprint;
  if (!rest.every(sameClaim)) return false;
  // One key: instances sharing it, wherever they answer from (each endpoint is checked against it).
  if (first.info.fingerprint !== undefined) return true;
  if (!rest.every((s) => s.info.port === first.info.port)) return false;
  const sources = new Set(sightings.map((s) => s.address));
  if (sources.size === 1) return true;
  return sightings.every((s) => [...sources].every((address) => s.info.addrs.includes(address)));
}

/** The entry for one id, from its sightings in the order they were first heard. */
export function describe(sightings: Sighting[], overflowed = false): FoundReceiver {
  const first = sightings[0]!;
  const { name, id, port, auth } = first.info;
  const key = withFingerprint(first.info.fingerprint);
  const addresses = [...new Set(sightings.map((s) => s.address))];
  const endpoints: Endpoint[] = [];
  for (const { address, info } of sightings) {
    if (!endpoints.some((e) => e.address === address && e.port === info.port)) endpoints.push({ address, port: info.port });
  }
  const conflict = overflowed || !consistent(sightings);
  if (!conflict) return { name, id, port, auth, ...key, addresses, endpoints, conflict };
  const claims: Claim[] = [];
  for (const { address, info } of sightings) {
    const claim: Claim = { address, port: info.port, name: info.name, auth: info.auth, ...withFingerprint(info.fingerprint) };
    const same = (c: Claim) => c.address === address && c.port === claim.port && c.name === claim.name && c.auth === claim.auth && c.fingerprint === claim.fingerprint;
    if (!claims.some(same)) claims.push(claim);
  }
  return { name, id, port, auth, ...key, addresses, endpoints, conflict, claims };
}

/** The field only when there is a fingerprint: a plaintext receiver's entry has none (and its JSON no null). */
function withFingerprint(fingerprint: string | undefined): { fingerprint?: string } {
  return fingerprint === undefined ? {} : { fingerprint };
}

function keyOf({ address, info }: Sighting): string {
  return JSON.stringify([address, info.name, info.port, info.auth, info.fingerprint ?? null, [...info.addrs].sort()]);
}

export type Change = 'new' | 'changed' | 'same' | 'ignored';

/**
 * Sightings grouped by id, each kept until its `expires` (a one-shot discovery never expires
 * them; a watcher passes "now + a few beacon intervals").
 */
export class ReceiverTable {
  private readonly byId = new Map<string, { kept: Kept[]; overflowed: boolean }>();
  /** Some id was ignored because the table was full: what is listed may not be everyone. */
  overflowed = false;

  /** Records a sighting: a new id, a change to a known one, a refresh, or ignored (table full). */
  add(sighting: Sighting, expires = Infinity): Change {
    const { id } = sighting.info;
    const key = keyOf(sighting);
    let entry = this.byId.get(id);
    if (!entry) {
      if (this.byId.size >= MAX_RECEIVERS) {
        this.overflowed = true;
        return 'ignored';
      }
      entry = { kept: [], overflowed: false };
      this.byId.set(id, entry);
      entry.kept.push({ sighting, key, expires });
      return 'new';
    }
    const known = entry.kept.find((k) => k.key === key);
    if (known) {
      known.expires = Math.max(known.expires, expires);
      return 'same';
    }
    const before = this.describe(id)!;
    if (entry.kept.length >= MAX_SIGHTINGS_PER_ID) entry.overflowed = true;
    else entry.kept.push({ sighting, key, expires });
    return sameEntry(before, this.describe(id)!) ? 'same' : 'changed';
  }

  /** Drops sightings expired at `now`; returns the ids gone entirely and those that changed. */
  expire(now: number): { gone: FoundReceiver[]; changed: FoundReceiver[] } {
    const gone: FoundReceiver[] = [];
    const changed: FoundReceiver[] = [];
    for (const [id, entry] of this.byId) {
      const live = entry.kept.filter((k) => k.expires > now);
      if (live.length === entry.kept.length) continue;
      const before = this.describe(id)!;
      if (live.length === 0) {
        this.byId.delete(id);
        gone.push(before);
        continue;
      }
      entry.kept = live;
      // Room again: what overflowed will be heard again if it is still there.
      entry.overflowed = false;
      const after = this.describe(id)!;
      if (!sameEntry(before, after)) changed.push(after);
    }
    return { gone, changed };
  }

  describe(id: string): FoundReceiver | undefined {
    const entry = this.byId.get(id);
    return entry && describe(entry.kept.map((k) => k.sighting), entry.overflowed);
  }

  receivers(): FoundReceiver[] {
    return [...this.byId.keys()].map((id) => this.describe(id)!);
  }
}

function sameEntry(a: FoundReceiver, b: FoundReceiver): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
