/**
 * Numbers and text for people: sizes, rates, durations and terminal widths. The bench
 * (bench/lib.js) shares formatBytes, so its figures read like the CLI's.
 */
import prettyBytes from 'pretty-bytes';
import prettyMs from 'pretty-ms';
import stringWidth from 'string-width';

/** Binary units, three significant digits, as `ls -h`: `24.2 KiB`, `1 MiB` (never `1024.0 KiB`). */
export function formatBytes(bytes: number): string {
  return prettyBytes(Math.max(0, bytes), { binary: true });
}

/** Bytes per second over `ms`; `—` when no time has passed (a rate of nothing). */
export function formatRate(bytes: number, ms: number): string {
  if (!(ms > 0) || !Number.isFinite(bytes)) return '—';
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

/** `30ms`, `4.2s`, `1m 59.6s`, `2h 5m 3.1s` (never `1 min 60 s`). */
export function formatDuration(ms: number): string {
  return prettyMs(Math.max(0, ms), { secondsDecimalDigits: 1 });
}

/** An estimate, so whole seconds and two units at most: `42s`, `3m 5s`, `2h 10m`. */
export function formatEta(ms: number): string {
  return prettyMs(Math.max(1000, ms), { secondsDecimalDigits: 0, unitCount: 2 });
}

/** Columns the text takes on a terminal (wide characters count twice, combining marks not at all). */
export function displayWidth(text: string): number {
  return stringWidth(text);
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function splitGraphemes(text: string): string[] {
  return Array.from(graphemes.segment(text), (s) => s.segment);
}

/**
 * Fits `text` into `width` columns by cutting out its middle (`IMG_20240…_0042.jpg`): the start
 * and the extension both tell files apart. Cuts only between whole characters.
 */
export function shortenMiddle(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  if (width <= 0) return '';
  if (width === 1) return '…';
  const parts = splitGraphemes(text);
  let room = width - 1;
  const tailRoom = Math.floor(room / 2);
  let tail = '';
  for (let i = parts.length - 1; i >= 0; i -= 1) {
    const next = parts[i]! + tail;
    if (displayWidth(next) > tailRoom) break;
    tail = next;
  }
  room -= displayWidth(tail);
  let head = '';
  for (const part of parts) {
    const next = head + part;
    if (displayWidth(next) > room) break;
    head = next;
  }
  return `${head}…${tail}`;
}

/** Cuts `text` at the end to `width` columns (for lines that must stay on one row). */
export function truncateEnd(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  let out = '';
  for (const part of splitGraphemes(text)) {
    if (displayWidth(out + part) > width - 1) break;
    out += part;
  }
  return width > 0 ? `${out}…` : '';
}

/** Pads `text` with spaces to `width` columns. */
export function padEnd(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - displayWidth(text)));
}

// JSON.stringify escapes C0 controls but leaves these raw; a terminal showing the log would obey them.
const INVISIBLE_CONTROLS = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** One JSON object per line, for `--json`: `event` names what happened. */
export function jsonLine(event: string, fields: object): string {
  const { type: _type, ...rest } = fields as { type?: unknown };
  const json = JSON.stringify({ event, ...rest }).replace(INVISIBLE_CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${json}\n`;
}
