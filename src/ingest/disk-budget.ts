import { performance } from 'node:perf_hooks';

/** Bytes set aside for a body that is arriving; given back once it has been written (or not). */
export interface Reservation {
  /** Holds `bytes` from now on (the ones written meanwhile are on the disk itself); false when they do not fit. */
  resize(bytes: number): Promise<boolean>;
  release(): void;
}

/**
 * The inbox disk's free space, minus what bodies already on their way will take: an announced
 * size reserves nothing, a started body does, so peers cannot each be promised the same space.
 */
export class DiskBudget {
  private reserved = 0;
  private last: { at: number; free: Promise<number | undefined> } | undefined;

  /** `freeSpace`: what the store has free, or undefined when it cannot tell. */
  constructor(private readonly freeSpace: () => Promise<number | undefined>) {}

  /**
   * Free bytes not reserved, or undefined when the file system cannot tell. Asked of the disk
   * at most every 250 ms (many small files ask often); `fresh` asks now, so that a refusal
   * never rests on an old answer.
   */
  async available(fresh = false): Promise<number | undefined> {
    const free = await this.free(fresh);
    return free === undefined ? undefined : Math.max(0, free - this.reserved);
  }

  /**
   * Whether the disk, asked now, still has room for every reservation (false once it filled up,
   * by others or by the bodies' own bytes): for a body of unknown size, which no header checked.
   */
  async covered(): Promise<boolean> {
    const free = await this.free(true);
    return free === undefined || free >= this.reserved;
  }

  private async free(fresh: boolean): Promise<number | undefined> {
    const now = performance.now();
    if (fresh || !this.last || now - this.last.at > 250) {
      this.last = { at: now, free: this.freeSpace().catch(() => undefined) };
    }
    return this.last.free;
  }

  /** What is missing for `bytes` to fit (0 when they do), asking the disk afresh before saying no. */
  async shortfall(bytes: number): Promise<{ missing: number; available: number | undefined }> {
    let available = await this.available();
    if (available !== undefined && bytes > available) available = await this.available(true);
    return { missing: available === undefined ? 0 : Math.max(0, bytes - available), available };
  }

  /** Sets `bytes` aside, or says how many are available when they do not fit. */
  async reserve(bytes: number): Promise<Reservation | { available: number }> {
    const { missing, available } = await this.shortfall(bytes);
    if (missing > 0) return { available: available! };
    this.reserved += bytes;
    let held = bytes;
    let released = false;
    return {
      resize: async (want) => {
        if (released) return false;
        if (want > held && (await this.shortfall(want - held)).missing > 0) return false;
        this.reserved += want - held;
        held = want;
        return true;
      },
      release: () => {
        if (released) return;
        released = true;
        this.reserved -= held;
      },
    };
  }
}
