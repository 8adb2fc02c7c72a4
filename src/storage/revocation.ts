import { FtError } from '../errors.js';

/**
 * An upload's "a newer holder took it over": a signal for those who await, and plain callbacks
 * for the rest. Not listeners on the signal: Node's EventTarget costs about 5 µs and 100 bytes
 * a listener, which a flood of headers (each one an upload held) multiplies.
 */
export class Revocation {
  private readonly controller = new AbortController();
  private readonly listeners = new Set<() => void>();

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts the signal and calls each listener once; later calls do nothing. */
  revoke(reason: FtError = new FtError('BUSY', 'a newer upload of this file took it over')): void {
    if (this.controller.signal.aborted) return;
    this.controller.abort(reason);
    const listeners = [...this.listeners];
    this.listeners.clear();
    for (const listener of listeners) listener();
  }

  /** Calls `listener` once when revoked (at once if it is already); returns what stops that. */
  onRevoked(listener: () => void): () => void {
    if (this.controller.signal.aborted) {
      listener();
      return () => undefined;
    }
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
