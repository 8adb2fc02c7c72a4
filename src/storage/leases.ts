import { FtError } from '../errors.js';
import { Revocation } from './revocation.js';

/** How long open() waits by default for an older holder of the same key to let go. */
export const TAKEOVER_WAIT_MS = 10_000;

/**
 * A key's lock, owned by the upload that took it (never by a connection). A newer take() of
 * the key revokes it: `revoked` aborts, and the holder is expected to let go soon.
 */
export interface Lease {
  readonly key: string;
  readonly revoked: AbortSignal;
  /** Calls `listener` once when the lease is revoked (at once if it is already); returns what stops that. */
  onRevoked(listener: () => void): () => void;
  /**
   * While pinned (a commit in progress), a newer take() waits without revoking: a commit is
   * never interrupted. Returns the unpin.
   */
  pin(): () => void;
  /** Lets go of the key; the newest waiter, if any, gets it at once. Idempotent. */
  release(): void;
}

export interface TakeOptions {
  /** Gives up waiting (FtError BUSY). Already aborted: a held key is BUSY at once, and nobody is revoked. */
  signal?: AbortSignal;
  /** At most this long; then FtError BUSY. */
  waitMs?: number;
}

interface Held {
  lease: LeaseOf;
  /** The one open() waiting for this key: a newer one supersedes it. */
  waiter: Waiter | undefined;
}

interface Waiter {
  grant(lease: LeaseOf): void;
  supersede(): void;
}

class LeaseOf implements Lease {
  private readonly revocation = new Revocation();
  private pins = 0;
  private done = false;

  constructor(
    readonly key: string,
    private readonly onRelease: (lease: LeaseOf) => void,
  ) {}

  get revoked(): AbortSignal {
    return this.revocation.signal;
  }

  get released(): boolean {
    return this.done;
  }

  revoke(): void {
    if (this.pins === 0) this.revocation.revoke();
  }

  onRevoked(listener: () => void): () => void {
    return this.revocation.onRevoked(listener);
  }

  pin(): () => void {
    this.pins++;
    let unpinned = false;
    return () => {
      if (unpinned) return;
      unpinned = true;
      this.pins--;
    };
  }

  release(): void {
    if (this.done) return;
    this.done = true;
    this.onRelease(this);
  }
}

/**
 * Locks by key where the newest asker wins, as with tus-node-server's Locker: taking a held key
 * revokes its holder and waits (bounded) for it to let go. At most one asker waits per key; a
 * newer one supersedes it (BUSY), so a stale request never queues up behind a live one.
 * State of one store instance: nothing here is shared between stores.
 */
export class Leases {
  private readonly held = new Map<string, Held>();

  has(key: string): boolean {
    return this.held.has(key);
  }

  async take(key: string, options: TakeOptions = {}): Promise<Lease> {
    const { signal, waitMs = TAKEOVER_WAIT_MS } = options;
    const current = this.held.get(key);
    if (!current) return this.grant(key);
    if (signal?.aborted) throw busy();
    current.waiter?.supersede();
    current.lease.revoke();
    return new Promise<Lease>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const entry = this.held.get(key);
        if (entry?.waiter === waiter) entry.waiter = undefined;
      };
      const giveUp = (error: FtError) => {
        if (settled) return;
        settle();
        reject(error);
      };
      const onAbort = () => giveUp(busy());
      const waiter: Waiter = {
        grant: (lease) => {
          settle();
          resolve(lease);
        },
        supersede: () => giveUp(new FtError('BUSY', 'a newer upload of this file is waiting for it; try again shortly')),
      };
      const timer = setTimeout(() => giveUp(busy()), waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      current.waiter = waiter;
    });
  }

  private grant(key: string): LeaseOf {
    const lease = new LeaseOf(key, (released) => this.released(released));
    this.held.set(key, { lease, waiter: undefined });
    return lease;
  }

  /** Hands the key straight to the waiter, so nobody can slip in between. */
  private released(lease: LeaseOf): void {
    const entry = this.held.get(lease.key);
    if (entry?.lease !== lease) return;
    this.held.delete(lease.key);
    const { waiter } = entry;
    if (waiter) waiter.grant(this.grant(lease.key));
  }
}

function busy(): FtError {
  return new FtError('BUSY', 'another upload of this file is in progress and did not let go; try again shortly');
}
