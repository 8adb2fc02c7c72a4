import { UNSAFE_CHARACTERS } from '../names/safe-name.js';

/** Human-readable sizes and rates for terminal output (binary units, as `ls -h`). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${bytes} B`;
  return `${Number.isInteger(value) ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

export function formatRate(bytes: number, ms: number): string {
  if (ms <= 0) return '—';
  return `${formatBytes((bytes * 1000) / ms)}/s`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
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
