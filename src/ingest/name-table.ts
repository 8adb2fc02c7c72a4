import { createHash } from 'node:crypto';

/**
 * The names one connection has used, for the collision rule (two names that differ only by
 * case or normalisation may not share a batch): per collision key, which exact name used it.
 * Kept as 64-bit digests in an open-addressing table of typed arrays, about 20 bytes a name
 * whatever the names' length — a V8 Map of strings costs several times that per entry, and a
 * hostile peer decides how many entries there are (up to the header cap on every connection).
 */
export class NameTable {
  /** Per slot: the key digest's two halves, then the exact name's digest; a zero key half marks an empty slot. */
  private slots = new Uint32Array(3 * 256);
  private size = 0;

  /**
   * Records `exact` under `key`; returns false when `key` is already taken by another exact
   * name (a 64-bit digest collision between two names of one connection is out of reach).
   */
  claim(key: string, exact: string): boolean {
    const [k0, k1] = digest64(key);
    const [name] = digest64(exact);
    let slot = this.find(k0, k1);
    if (this.slots[slot * 3] !== 0) return this.slots[slot * 3 + 2] === name;
    if ((this.size + 1) * 2 > this.capacity) {
      this.grow();
      slot = this.find(k0, k1);
    }
    this.slots.set([k0, k1, name], slot * 3);
    this.size += 1;
    return true;
  }

  get count(): number {
    return this.size;
  }

  private get capacity(): number {
    return this.slots.length / 3;
  }

  /** The slot holding (k0, k1), or the empty slot where it would go. */
  private find(k0: number, k1: number): number {
    const mask = this.capacity - 1;
    for (let slot = (k0 ^ k1) & mask; ; slot = (slot + 1) & mask) {
      const at = this.slots[slot * 3]!;
      if (at === 0 || (at === k0 && this.slots[slot * 3 + 1] === k1)) return slot;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    for (let i = 0; i < old.length; i += 3) {
      if (old[i] === 0) continue;
      this.slots.set(old.subarray(i, i + 3), this.find(old[i]!, old[i + 1]!) * 3);
    }
  }
}

/** Two 32-bit halves of SHA-256; the first is never 0 (0 marks an empty slot). */
function digest64(text: string): [number, number] {
  const hash = createHash('sha256').update(text).digest();
  return [hash.readUInt32BE(0) || 1, hash.readUInt32BE(4)];
}
