/**
 * The live progress line of `ft send` on a terminal, as pure functions of the numbers and the
 * terminal's width: what to show when it does not all fit is decided here, and tested alone.
 */
import { formatBytes, formatEta } from './format.js';
import { displayWidth, padEnd, shortenMiddle, truncateEnd } from './text-width.js';

export interface Progress {
  /** A file's name (escaped for display), or the batch's `3/10 files`. */
  label: string;
  bytes: number;
  /** Null when unknown (a stream): the amount sent is shown, without percent, bar or ETA. */
  size: number | null;
  /** Bytes per second lately; undefined until it can be measured. */
  rate: number | undefined;
}

/** Below this many columns for the name the fields are packed tighter, then the name goes. */
const MIN_LABEL = 8;
/** The name may take this much before the bar gets any room. */
const LABEL_FIRST = 30;
const MAX_BAR = 30;
const MIN_BAR = 7;

/** `1.2/2.8 GiB` when both amounts have the same unit, else `900 MiB/2.8 GiB`. */
export function formatAmounts(bytes: number, size: number): string {
  const done = formatBytes(bytes);
  const total = formatBytes(size);
  const [doneNumber, doneUnit] = done.split(' ');
  const [totalNumber, totalUnit] = total.split(' ');
  return doneUnit === totalUnit ? `${doneNumber}/${totalNumber} ${totalUnit}` : `${done}/${total}`;
}

/** Percent, amounts, rate and ETA: the fields every width keeps. */
export function progressFields(p: Progress): string[] {
  const rate = p.rate === undefined ? '–/s' : `${formatBytes(p.rate)}/s`;
  if (p.size === null) return ['', formatBytes(p.bytes), rate, ''];
  const percent = p.size > 0 ? Math.floor((Math.min(p.bytes, p.size) * 100) / p.size) : 100;
  const remaining = Math.max(0, p.size - p.bytes);
  const eta = remaining === 0 ? 'ETA 0s' : p.rate ? `ETA ${formatEta((remaining / p.rate) * 1000)}` : 'ETA –';
  return [`${percent}%`.padStart(4), formatAmounts(p.bytes, p.size), rate, eta];
}

function bar(fraction: number, width: number): string {
  const inner = width - 2;
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * inner);
  return `[${'#'.repeat(filled)}${'.'.repeat(inner - filled)}]`;
}

/**
 * Rows of at most `columns - 1` columns each (the last column would make some terminals wrap),
 * laid out as one table: the fields first, each in a column as wide as its widest value, then
 * the names (shortened in the middle), then a bar with what is left.
 */
export function progressLines(items: Progress[], columns: number): string[] {
  const room = Math.max(1, columns - 1);
  const rows = items.map(progressFields);
  const widths = [0, 1, 2, 3].map((i) => Math.max(0, ...rows.map((fields) => displayWidth(fields[i]!))));
  const statsOf = (separator: string) =>
    rows.map((fields) => fields.map((field, i) => (i === 3 ? padEnd(field, widths[i]!) : ' '.repeat(widths[i]! - displayWidth(field)) + field)).join(separator).trimEnd());
  let separator = '  ';
  let stats = statsOf(separator);
  const statsWidth = () => Math.max(0, ...stats.map(displayWidth));
  if (room - statsWidth() - separator.length < MIN_LABEL) {
    separator = ' ';
    stats = statsOf(separator);
  }
  const labelRoom = room - statsWidth() - separator.length;
  if (labelRoom < 4) return stats.map((line) => truncateEnd(line.trimStart(), room));
  const labelColumns = Math.max(0, ...items.map((p) => displayWidth(p.label)));
  const barRoom = labelRoom - separator.length - Math.min(labelColumns, LABEL_FIRST);
  const barWidth = barRoom >= MIN_BAR ? Math.min(MAX_BAR, barRoom) : 0;
  // No wider than the widest label: on a wide terminal the numbers stay near the names.
  const nameWidth = Math.min(barWidth ? labelRoom - barWidth - separator.length : labelRoom, Math.max(labelColumns, MIN_LABEL));
  return items.map((p, i) => {
    const name = padEnd(shortenMiddle(p.label, nameWidth), nameWidth);
    const drawn = !barWidth ? '' : p.size === null ? `${separator}${' '.repeat(barWidth)}` : `${separator}${bar(p.size > 0 ? p.bytes / p.size : 1, barWidth)}`;
    return `${name}${drawn}${separator}${stats[i]}`;
  });
}

/** One row alone (see progressLines). */
export function progressLine(p: Progress, columns: number): string {
  return progressLines([p], columns)[0]!;
}

/**
 * Bytes per second over the last few seconds (a whole-transfer average hides a stall; one
 * interval's jumps about).
 */
export class RateMeter {
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  constructor(private readonly windowMs = 5000) {}

  /** Notes that `bytes` had moved in all at time `at` (ms). */
  add(at: number, bytes: number): void {
    const last = this.samples.at(-1);
    if (last && at <= last.at) {
      last.bytes = bytes;
      return;
    }
    this.samples.push({ at, bytes });
    // Keep one sample older than the window, so the window is always covered.
    while (this.samples.length > 2 && this.samples[1]!.at <= at - this.windowMs) this.samples.shift();
  }

  /** Undefined until the samples span a quarter of a second. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.at - first.at < 250) return undefined;
    return Math.max(0, ((last.bytes - first.bytes) * 1000) / (last.at - first.at));
  }
}
