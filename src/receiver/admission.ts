import net from 'node:net';
import { performance } from 'node:perf_hooks';

export interface AdmissionLimits {
  /** Connections past their greeting, in all. */
  maxConnections: number;
  /** Connections from one address (or one IPv6 /64), greeting or not. */
  maxPerAddress: number;
  /** Connections still greeting (not yet authenticated), in all. */
  maxGreeting: number;
}

/** One admitted connection: greeting until promoted, then active, until it leaves. */
export interface Ticket {
  readonly group: string;
  pool: 'greeting' | 'active' | 'gone';
  /** Called when a newer connection needs this one's greeting slot. */
  readonly evict: () => void;
  /** When it entered (monotonic ms). */
  readonly since: number;
  /** When it last moved a file forward (monotonic ms): a body byte, a file done or found already there. */
  lastProgress: number;
}

/**
 * When every main slot is taken, a connection that has moved no file forward for this long gives
 * its slot to a newcomer: on an open receiver anyone passes the greeting, and connections that
 * only trickle refused headers would otherwise keep every honest sender out.
 */
export const IDLE_SLOT_MS = 15_000;

/**
 * A greeting younger than this is never dropped for a newcomer (who is told BUSY instead): an
 * honest hello takes a round trip, and a burst of honest senders must not evict one another.
 */
export const MIN_GREETING_AGE_MS = 250;

/**
 * Who may hold a connection now, and how long a repeatedly failing address waits.
 *
 * Connections that have not authenticated yet live in their own, smaller pool: when it is full
 * the oldest greeting is dropped for the newcomer (unless it is too young to have had its round
 * trip), so peers that connect and never prove the token cannot lock out those who can (each
 * greeting also has a short deadline). Only a connection that passed its greeting takes one of
 * the main slots.
 */
export class Admission {
  private readonly activeTickets = new Set<Ticket>();
  /** Greeting tickets, oldest first (a Set keeps insertion order). */
  private readonly greeting = new Set<Ticket>();
  private readonly perGroup = new Map<string, number>();
  private readonly authFailures = new Map<string, { count: number; at: number }>();

  constructor(
    private readonly limits: AdmissionLimits,
    /** Milliseconds from a monotonic clock: a step of the wall clock changes no delay. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts a new connection in as greeting, or says why it must be turned away. */
  enter(address: string, evict: () => void): Ticket | string {
    const group = addressGroup(address);
    const mine = this.perGroup.get(group) ?? 0;
    if (mine >= this.limits.maxPerAddress) return `${address} already has ${this.limits.maxPerAddress} connections open`;
    const now = this.now();
    if (this.greeting.size >= this.limits.maxGreeting) {
      const oldest = this.greeting.values().next().value!;
      if (now - oldest.since < MIN_GREETING_AGE_MS) return `${this.limits.maxGreeting} connections are being greeted; try again shortly`;
      this.leave(oldest);
      oldest.evict();
    }
    const ticket: Ticket = { group, pool: 'greeting', evict, since: now, lastProgress: now };
    this.greeting.add(ticket);
    this.perGroup.set(group, mine + 1);
    return ticket;
  }

  /** The connection authenticated: it takes a main slot, or is told why there is none. */
  promote(ticket: Ticket): string | undefined {
    if (ticket.pool !== 'greeting') return ticket.pool === 'gone' ? 'the connection was closed' : undefined;
    const now = this.now();
    if (this.activeTickets.size >= this.limits.maxConnections) {
      const idlest = this.idlest();
      if (!idlest || now - idlest.lastProgress < IDLE_SLOT_MS) return `the receiver is at its limit of ${this.limits.maxConnections} connections`;
      this.leave(idlest);
      idlest.evict();
    }
    this.greeting.delete(ticket);
    ticket.pool = 'active';
    ticket.lastProgress = now;
    this.activeTickets.add(ticket);
    return undefined;
  }

  /** The connection moved a file forward (see IDLE_SLOT_MS). */
  progressed(ticket: Ticket): void {
    ticket.lastProgress = this.now();
  }

  private idlest(): Ticket | undefined {
    let idlest: Ticket | undefined;
    for (const ticket of this.activeTickets) if (!idlest || ticket.lastProgress < idlest.lastProgress) idlest = ticket;
    return idlest;
  }

  /** Idempotent: an evicted connection leaves again when its socket closes. */
  leave(ticket: Ticket): void {
    if (ticket.pool === 'gone') return;
    if (ticket.pool === 'active') this.activeTickets.delete(ticket);
    else this.greeting.delete(ticket);
    ticket.pool = 'gone';
    const left = (this.perGroup.get(ticket.group) ?? 1) - 1;
    if (left > 0) this.perGroup.set(ticket.group, left);
    else this.perGroup.delete(ticket.group);
  }

  /** Delay before answering a failed proof: 100 ms, doubling per recent failure, up to 5 s. */
  authFailed(address: string): number {
    const group = addressGroup(address);
    const now = this.now();
    const previous = this.authFailures.get(group);
    // Failures more than ten minutes apart start the count again.
    const count = previous && now - previous.at < 600_000 ? previous.count + 1 : 1;
    this.authFailures.delete(group);
    if (this.authFailures.size >= 4096) this.authFailures.delete(this.authFailures.keys().next().value!);
    this.authFailures.set(group, { count, at: now });
    return Math.min(100 * 2 ** (count - 1), 5000);
  }

  authSucceeded(address: string): void {
    this.authFailures.delete(addressGroup(address));
  }
}

/**
 * What counts as one peer for the per-address limits: an IPv4 address, or an IPv6 /64 (one
 * machine can pick any address of its /64 at will, so counting single addresses would let it
 * take every slot).
 */
export function addressGroup(address: string): string {
  const plain = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');
  if (!net.isIPv6(plain)) return plain;
  const [head = '', tail = ''] = plain.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = plain.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
