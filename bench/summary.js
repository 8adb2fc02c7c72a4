// Pure figures for bench/run.js's tables (no processes, no files): spreads, shares of a link,
// CPU per unit, memory. Kept apart so test/unit/bench-summary.test.ts can check them.

/** { min, max } of the finite numbers in `values`, or undefined when there are none. */
export function spread(values) {
  const finite = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (finite.length === 0) return undefined;
  return { min: Math.min(...finite), max: Math.max(...finite) };
}

/** Rounds to 3 significant digits for display, keeping integers above 1,000 whole. */
export function fmt(value, digits = 3) {
  if (value === undefined || value === null || !Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 10 ** digits) return Math.round(value).toLocaleString('en-US');
  return Number(value.toPrecision(digits)).toString();
}

/** "min–max" of a spread, "–" without one, the single value when there was one reading. */
export function rangeText(range) {
  if (!range) return '–';
  return range.min === range.max ? fmt(range.min) : `${fmt(range.min)}–${fmt(range.max)}`;
}

/** Share (0..100) of a link of `rateBits` bits/s that `mbps` (10^6 bytes/s of payload) fills. */
export function linkPercent(mbps, rateBits) {
  if (!Number.isFinite(mbps) || !(rateBits > 0)) return undefined;
  return ((mbps * 8e6) / rateBits) * 100;
}

/** CPU seconds per `unit` of work (GiB, 1,000 files): seconds × unit ÷ amount; undefined when unread. */
export function cpuPer(seconds, amount, unit) {
  if (seconds === undefined || !Number.isFinite(seconds) || !(amount > 0)) return undefined;
  return (seconds * unit) / amount;
}

/** Peak resident memory as whole MiB ("–" when not read). */
export function mibText(bytes) {
  return bytes ? `${(bytes / 1024 ** 2).toFixed(0)} MiB` : '–';
}

/** The cell that names a row: its label, and "(failed)" or "(failed K of N)" when rounds failed. */
export function toolCell(label, okRounds, failedRounds) {
  if (okRounds === 0) return `${label} (failed)`;
  if (failedRounds > 0) return `${label} (failed ${failedRounds} of ${okRounds + failedRounds})`;
  return label;
}
