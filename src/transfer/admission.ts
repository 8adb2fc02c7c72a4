/** Who may open a connection now, and how long a repeatedly failing address waits. */
export class Admission {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private readonly authFailures = new Map<string, { count: number; at: number }>();

  constructor(
    private readonly maxConnections: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Counts the connection in, or says why it must be turned away. */
  enter(address: string): string | undefined {
    if (this.total >= this.maxConnections) return `the receiver is at its limit of ${this.maxConnections} connections`;
    const mine = this.perAddress.get(address) ?? 0;
    if (mine >= this.maxPerAddress) return `${address} already has ${this.maxPerAddress} connections open`;
    this.total += 1;
    this.perAddress.set(address, mine + 1);
    return undefined;
  }

  leave(address: string): void {
    this.total -= 1;
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left > 0) this.perAddress.set(address, left);
    else this.perAddress.delete(address);
  }

  /** Delay before answering a failed proof: 100 ms, doubling per recent failure, up to 5 s. */
  authFailed(address: string, now = Date.now()): number {
    const previous = this.authFailures.get(address);
    // Failures more than ten minutes apart start the count again.
    const count = previous && now - previous.at < 600_000 ? previous.count + 1 : 1;
    this.authFailures.delete(address);
    if (this.authFailures.size >= 4096) this.authFailures.delete(this.authFailures.keys().next().value!);
    this.authFailures.set(address, { count, at: now });
    return Math.min(100 * 2 ** (count - 1), 5000);
  }

  authSucceeded(address: string): void {
    this.authFailures.delete(address);
  }
}
