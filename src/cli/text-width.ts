/**
 * Columns of text on a terminal. Loaded only when ft draws on one: string-width takes tens of
 * milliseconds to load, which piped and --json runs need not pay.
 */
import stringWidth from 'string-width';

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

