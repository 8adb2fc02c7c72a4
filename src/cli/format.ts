/**
 * Numbers and text for people: sizes, rates and durations (widths on a terminal are in
 * text-width.ts). The bench (bench/lib.js) shares formatBytes, so its figures read like the CLI's.
 */
import prettyBytes from 'pretty-bytes';
import prettyMs from 'pretty-ms';
import { UNSAFE_CHARACTERS } from '../names/safe-name.js';

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

/** The library's messages count milliseconds (`silent for 60000 ms`); people read `silent for 1m`. */
export function durationsInWords(message: string): string {
  return message.replace(/\b(\d+) ms\b/g, (_, ms: string) => formatDuration(Number(ms)));
}

/** An estimate, so whole seconds and two units at most: `42s`, `3m 5s`, `2h 10m`. */
export function formatEta(ms: number): string {
  return prettyMs(Math.max(1000, ms), { secondsDecimalDigits: 0, unitCount: 2 });
}

// JSON.stringify escapes C0 controls but leaves the other characters names may not contain raw;
// a terminal showing the log would obey or hide them. Astral ones become a surrogate pair.
const UNSAFE_IN_JSON = new RegExp(UNSAFE_CHARACTERS, 'gu');
const jsonEscape = (char: string) => char.split('').map((unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, '0')}`).join('');

/** One JSON object per line, for `--json`: `event` names what happened. */
export function jsonLine(event: string, fields: object): string {
  const { type: _type, ...rest } = fields as { type?: unknown };
  const json = JSON.stringify({ event, ...rest }).replace(UNSAFE_IN_JSON, jsonEscape);
  return `${json}\n`;
}
