import { readFileSync } from 'node:fs';
import net from 'node:net';
import { InvalidArgumentError } from 'commander';
import { SEND_DEFAULTS } from '../defaults.js';
import { FtError } from '../errors.js';
import { BYTES, COUNT, expectation, LIMIT_RATE, PARTIAL_TTL_MS, PORT, POSITIVE_COUNT, SECONDS, type Rule } from '../options.js';

/** The library's rule for the option, with the flag's text as typed in the message. */
function checked(rule: Rule, value: number, typed: string): number {
  if (!rule.ok(value)) throw new InvalidArgumentError(expectation(rule, `"${typed}"`));
  return value;
}

const digitsOnly = (value: string) => (/^\d+$/.test(value) ? Number(value) : NaN);

export function parsePort(value: string): number {
  return checked(PORT, digitsOnly(value), value);
}

export function parseCount(value: string): number {
  return checked(COUNT, digitsOnly(value), value);
}

/** A count where 0 makes no sense (connection limits). */
export function parsePositiveCount(value: string): number {
  return checked(POSITIVE_COUNT, digitsOnly(value), value);
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `500`, `64k`, `10M`, `2G`, `1T` (binary units; an optional trailing `B` or `iB` is allowed). */
export function parseSize(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(value.trim());
  if (!match) throw new InvalidArgumentError(`expected a size such as 500M or 2G, got "${value}"`);
  return checked(BYTES, Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]!), value);
}

/** `--limit-rate`: a size per second (`20M`, `512K`, `1.5M`, optionally `/s`), at least the floor receivers hold senders to. */
export function parseRate(value: string): number {
  return checked(LIMIT_RATE, parseSize(value.replace(/\/s$/i, '')), value);
}

/**
 * What follows --to: `host`, `host:port`, `[v6]:port` or a bare IPv6 address; the port is
 * undefined when not given. Every malformed value gets a message saying what is wrong with it.
 */
export function parseTarget(value: string): { host: string; port: number | undefined } {
  const text = value.trim();
  const shown = JSON.stringify(value);
  if (text === '') throw new InvalidArgumentError('--to is empty: give an address, a host name or a name from `ft discover`');
  if (text.startsWith('[')) {
    const bracketed = /^\[([^\]]*)\](?::(.*))?$/s.exec(text);
    if (!bracketed || !net.isIPv6(bracketed[1]!)) {
      throw new InvalidArgumentError(`--to ${shown} is not [IPv6 address] or [IPv6 address]:port, e.g. [fe80::1]:9527`);
    }
    return { host: bracketed[1]!, port: bracketed[2] === undefined ? undefined : targetPort(bracketed[2], shown) };
  }
  if (net.isIPv6(text)) return { host: text, port: undefined };
  const colon = text.lastIndexOf(':');
  if (colon === -1) return { host: text, port: undefined };
  const host = text.slice(0, colon);
  if (host === '') throw new InvalidArgumentError(`--to ${shown} has no host before the port: write ADDRESS:PORT, e.g. 127.0.0.1${text}`);
  if (host.includes(':')) throw new InvalidArgumentError(`--to ${shown} is not host:port; write an IPv6 address in brackets, e.g. [fe80::1]:9527`);
  return { host, port: targetPort(text.slice(colon + 1), shown) };
}

function targetPort(text: string, shown: string): number {
  if (text === '') throw new InvalidArgumentError(`--to ${shown} ends with ":" but no port: add one (1 to 65535), or leave out the colon for ${SEND_DEFAULTS.port}`);
  if (!/^\d+$/.test(text)) throw new InvalidArgumentError(`--to ${shown}: the port must be a number from 1 to 65535, not ${JSON.stringify(text)}`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw new InvalidArgumentError(`--to ${shown}: the port must be from 1 to 65535, not ${text}`);
  return port;
}

/**
 * The shared secret comes from a file or the FT_TOKEN variable, never from the command line,
 * where any user could read it in the process list.
 */
export function readToken(tokenFile: string | undefined): string | undefined {
  let token: string | undefined;
  if (tokenFile !== undefined) {
    try {
      token = readFileSync(tokenFile, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new FtError('USAGE', `cannot read token file ${tokenFile}: ${(error as Error).message}`);
    }
  } else {
    token = process.env.FT_TOKEN;
  }
  if (token === undefined) return undefined;
  if (token.length === 0) throw new FtError('USAGE', 'the token is empty: put a secret in the token file or FT_TOKEN');
  return token;
}

export function parseSeconds(value: string): number {
  return checked(SECONDS, Number(value), value);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `12h`, `7d` (a bare number is seconds); returns milliseconds. */
export function parseDuration(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (!match) throw new InvalidArgumentError(`expected a duration such as 90s, 30m, 12h or 7d, got "${value}"`);
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 's']!);
}

/** `--partial-ttl`: a duration within the library's bounds for partialTtlMs. */
export function parsePartialTtl(value: string): number {
  return checked(PARTIAL_TTL_MS, parseDuration(value), value);
}

/** Milliseconds as the seconds a flag takes (the library counts in ms, the command line in s). */
export function seconds(ms: number): number {
  return ms / 1000;
}

/** Milliseconds in the largest unit --partial-ttl takes that writes them whole: `7d`, `12h`, `90s`. */
export function durationText(ms: number): string {
  const [unit, size] = Object.entries(DURATION_UNITS)
    .sort(([, a], [, b]) => b - a)
    .find(([, size]) => ms % size === 0)!;
  return `${ms / size}${unit}`;
}
