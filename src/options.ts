/**
 * Up-front checks of every option of send(), serve() and discover(), so a bad value is a USAGE
 * error naming the option, never an INTERNAL failure deep inside (or a silently odd receiver).
 * The command line parses its flags with the same rules (src/cli/options.ts), so both say
 * "expected …, got …" with the same words.
 */
import { broadcastTargets } from './discovery/interfaces.js';
import { FtError } from './errors.js';
import { parseFingerprint } from './auth/fingerprint.js';
import { CONFLICT_POLICIES } from './storage/conflict-policy.js';
import { BandwidthLimit } from './bandwidth-limit.js';
import { SERVE_DEFAULTS } from './defaults.js';

/** What a value must be: `expected` completes "expected …, got …". */
export interface Rule {
  expected: string;
  ok(value: unknown): boolean;
}

const rule = (expected: string, ok: (value: unknown) => boolean): Rule => ({ expected, ok });
const isNumber = (value: unknown): value is number => typeof value === 'number' && !Number.isNaN(value);
const wholeFrom = (min: number, max = Number.MAX_SAFE_INTEGER) => (value: unknown) =>
  Number.isSafeInteger(value) && (value as number) >= min && (value as number) <= max;
const numberIn = (min: number, max: number, { minIncluded }: { minIncluded: boolean }) => (value: unknown) =>
  isNumber(value) && (minIncluded ? value >= min : value > min) && value <= max;

/** Longest timeout or delay: longer timers overflow Node's 32-bit milliseconds and fire at once. */
const MAX_SECONDS = 3600;
const DAY_MS = 86_400_000;

export const PORT = rule('a port from 1 to 65535', wholeFrom(1, 65535));
export const LISTEN_PORT = rule('a port from 0 to 65535 (0 picks a free one)', wholeFrom(0, 65535));
export const COUNT = rule('a whole number', wholeFrom(0));
export const POSITIVE_COUNT = rule('a whole number of at least 1', wholeFrom(1));
export const SECONDS = rule(`a number of seconds between 0 and ${MAX_SECONDS}`, numberIn(0, MAX_SECONDS, { minIncluded: false }));
export const TIMEOUT_MS = rule(
  `a number of milliseconds between 0 and ${MAX_SECONDS * 1000}`,
  numberIn(0, MAX_SECONDS * 1000, { minIncluded: false }),
);
export const DELAY_MS = rule(`a number of milliseconds from 0 to ${MAX_SECONDS * 1000}`, numberIn(0, MAX_SECONDS * 1000, { minIncluded: true }));
export const BYTES = rule('a whole number of bytes', wholeFrom(0));
/**
 * The slowest bandwidth limit: twice the rate below which ft receivers drop a body by default
 * (minBodyRate). A sender limited to that rate itself would be cut off mid-file: the receiver
 * judges each window of time by the bytes that arrived in it, and a window is a little longer
 * than the bytes that fit it at exactly that rate (measured: test/slow/rate-limit.test.ts).
 */
export const MIN_LIMIT_RATE = 2 * SERVE_DEFAULTS.minBodyRate;
export const LIMIT_RATE = rule(
  `a rate of at least ${MIN_LIMIT_RATE / 1024} KiB/s (${MIN_LIMIT_RATE} bytes per second: receivers drop slower bodies)`,
  (value) => isNumber(value) && Number.isFinite(value) && value >= MIN_LIMIT_RATE,
);
/** The library also takes a BandwidthLimit, to share one limit between calls. */
const LIMIT = rule(`${LIMIT_RATE.expected}, or a BandwidthLimit`, (value) => value instanceof BandwidthLimit || LIMIT_RATE.ok(value));
export const PARTIAL_TTL_MS = rule('a duration from 1 minute to 3650 days', numberIn(60_000, 3650 * DAY_MS, { minIncluded: true }));
export const TEXT = rule('a non-empty string', (value) => typeof value === 'string' && value.length > 0);
const ANY_TEXT = rule('a string', (value) => typeof value === 'string');
const BOOLEAN = rule('true or false', (value) => typeof value === 'boolean');
const FUNCTION = rule('a function', (value) => typeof value === 'function');
const SIGNAL = rule('an AbortSignal', (value) => {
  const signal = value as AbortSignal | null;
  return typeof signal === 'object' && signal !== null && typeof signal.aborted === 'boolean' && typeof signal.addEventListener === 'function';
});
const FILE_SYSTEM = rule('a FileSystem (see fileSystemOf)', (value) => {
  const fs = value as Record<string, unknown> | null;
  return typeof fs === 'object' && fs !== null && ['open', 'lstatSync', 'openSync'].every((call) => typeof fs[call] === 'function');
});
const UPLOAD_STORE = rule('an UploadStore (an S3UploadStore, say)', (value) => {
  const store = value as Record<string, unknown> | null;
  return typeof store === 'object' && store !== null && ['inspect', 'open', 'resume', 'expire', 'close'].every((call) => typeof store[call] === 'function');
});
const CONFLICT_POLICY = rule(`one of ${CONFLICT_POLICIES.join(', ')}`, (value) => CONFLICT_POLICIES.includes(value as never));
const FINGERPRINT = rule('a receiver fingerprint (32 to 52 letters A-Z and digits 2-7, dashes allowed)', (value) => {
  if (typeof value !== 'string') return false;
  try {
    parseFingerprint(value);
    return true;
  } catch {
    return false;
  }
});
const TRUST_POLICY = rule("'pinned', 'new' or a function", (value) => value === 'pinned' || value === 'new' || typeof value === 'function');
const IDENTITY = rule('an identity ({ key, cert, fingerprint }: see loadOrCreateIdentity and identityFrom)', (value) => {
  const identity = value as Record<string, unknown> | null;
  return typeof identity === 'object' && identity !== null && ['key', 'cert', 'fingerprint'].every((field) => typeof identity[field] === 'string');
});
const DISCOVERED = rule('{ name?, fingerprint? } as discovery found the receiver', (value) => {
  const found = value as Record<string, unknown> | null;
  if (typeof found !== 'object' || found === null) return false;
  return (found.name === undefined || typeof found.name === 'string') && (found.fingerprint === undefined || FINGERPRINT.ok(found.fingerprint));
});
/** Most fallbacks one send takes: instances of one receiver, not a scan of a network. */
export const MAX_FALLBACKS = 32;
const FALLBACKS = rule(`an array of at most ${MAX_FALLBACKS} { host, port? } (other addresses of the same receiver)`, (value) => {
  if (!Array.isArray(value) || value.length > MAX_FALLBACKS) return false;
  return value.every((entry: unknown) => {
    const e = entry as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return false;
    const keys = Object.keys(e);
    return TEXT.ok(e.host) && (e.port === undefined || PORT.ok(e.port)) && keys.every((k) => k === 'host' || k === 'port');
  });
});
/** A stream to send as one file (see StreamSource): a name, and bytes to iterate. */
const isStream = (value: unknown) => {
  const source = value as { name?: unknown; stream?: { [Symbol.asyncIterator]?: unknown } } | null;
  return typeof source === 'object' && source !== null && typeof source.name === 'string' && typeof source.stream?.[Symbol.asyncIterator] === 'function';
};
const PATHS = rule(
  'an array of paths (strings), or of one stream ({ stream, name })',
  (value) => Array.isArray(value) && (value.every((p) => typeof p === 'string') || (value.length === 1 && isStream(value[0]))),
);
const OPTIONS = rule('an options object', (value) => typeof value === 'object' && value !== null && !Array.isArray(value));

/** Longest string shown in a message: the message stays one short line whatever was passed. */
const MAX_SHOWN = 60;

/** A value as the message shows it: numbers and strings as written, anything else by its kind. */
export function shown(value: unknown): string {
  if (typeof value === 'string') return value.length > MAX_SHOWN ? `${JSON.stringify(value.slice(0, MAX_SHOWN))}…` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** "expected …, got …": the words the command line and the library share. */
export function expectation(check: Rule, got: string): string {
  return `expected ${check.expected}, got ${got}`;
}

type Rules = Record<string, Rule>;

/**
 * Checks the options present (undefined means the default); `required` ones must be present.
 * A name no rule knows is a mistake too (a misspelt option would otherwise be ignored without a
 * word, where the command line says "unknown option").
 */
function validate(what: string, options: unknown, rules: Rules, required: string[] = []): void {
  if (options === undefined && required.length === 0) return;
  if (!OPTIONS.ok(options)) throw new FtError('USAGE', `${what}: ${expectation(OPTIONS, shown(options))}`);
  const values = options as Record<string, unknown>;
  const unknown = Object.keys(values).find((name) => !Object.hasOwn(rules, name));
  if (unknown !== undefined) {
    throw new FtError('USAGE', `${what}: unknown option ${shown(unknown)} (the options are ${Object.keys(rules).join(', ')})`);
  }
  for (const [name, check] of Object.entries(rules)) {
    const value = values[name];
    if (value === undefined && !required.includes(name)) continue;
    if (!check.ok(value)) throw new FtError('USAGE', `${what} option ${name}: ${expectation(check, shown(value))}`);
  }
}

const SEND_RULES: Rules = {
  host: TEXT,
  port: PORT,
  fallbacks: FALLBACKS,
  signal: SIGNAL,
  onEvent: FUNCTION,
  onProgress: FUNCTION,
  retries: COUNT,
  retryDelayMs: DELAY_MS,
  token: TEXT,
  connectTimeoutMs: TIMEOUT_MS,
  idleTimeoutMs: TIMEOUT_MS,
  hashCache: TEXT,
  followSymlinks: BOOLEAN,
  preserveMode: BOOLEAN,
  keepContentBytes: BYTES,
  senderKeyFile: TEXT,
  fs: FILE_SYSTEM,
  fingerprint: FINGERPRINT,
  trust: TRUST_POLICY,
  trustFile: TEXT,
  discovered: DISCOVERED,
  insecurePlaintext: BOOLEAN,
  connect: FUNCTION,
  limitRate: LIMIT,
};

export function validateSendOptions(paths: unknown, options: unknown): void {
  if (!PATHS.ok(paths)) throw new FtError('USAGE', `send: ${expectation(PATHS, shown(paths))}`);
  validate('send', options, SEND_RULES, ['host']);
  // In plaintext there is no key to check: a fingerprint or a trust choice would be silently ignored.
  const values = options as Record<string, unknown>;
  const checking = ['fingerprint', 'trust', 'trustFile', 'discovered'].find((name) => values[name] !== undefined);
  if (values.insecurePlaintext === true && checking !== undefined) {
    throw new FtError('USAGE', `send: insecurePlaintext has no receiver key to check, so ${checking} cannot apply: leave one out`);
  }
}

const SERVE_RULES: Rules = {
  dir: TEXT,
  port: LISTEN_PORT,
  host: TEXT,
  onConflict: CONFLICT_POLICY,
  token: TEXT,
  name: ANY_TEXT,
  maxFileSize: BYTES,
  maxConnections: POSITIVE_COUNT,
  maxConnectionsPerAddress: POSITIVE_COUNT,
  maxUnauthenticated: POSITIVE_COUNT,
  maxPartials: POSITIVE_COUNT,
  maxPartialsPerPeer: POSITIVE_COUNT,
  minBodyRate: BYTES,
  helloTimeoutMs: TIMEOUT_MS,
  idleTimeoutMs: TIMEOUT_MS,
  partialTtlMs: PARTIAL_TTL_MS,
  beacon: BOOLEAN,
  beaconInterval: SECONDS,
  discoveryPort: PORT,
  interface: TEXT,
  fs: FILE_SYSTEM,
  store: UPLOAD_STORE,
  signal: SIGNAL,
  listen: FUNCTION,
  identity: IDENTITY,
  insecurePlaintext: BOOLEAN,
  collectGarbage: FUNCTION,
  web: BOOLEAN,
  webPort: LISTEN_PORT,
  allowUnverified: BOOLEAN,
  limitRate: LIMIT,
};

export function validateServeOptions(options: unknown): void {
  validate('serve', options, SERVE_RULES);
  const { dir, store } = (options ?? {}) as { dir?: string; store?: unknown };
  if (dir !== undefined && store !== undefined) throw new FtError('USAGE', 'Expected dir or store, not both (a store says where files go)');
  const { interface: only, beacon } = (options ?? {}) as { interface?: string; beacon?: boolean };
  // An interface that does not exist is a typo to report now, not a warning every few seconds.
  if (only !== undefined && (beacon ?? true)) broadcastTargets({ only, includeLoopback: true });
}

const LIST_PARTIALS_RULES: Rules = { partialTtlMs: PARTIAL_TTL_MS, fs: FILE_SYSTEM };

/** For listPartials(): the serve options its expiry times follow. */
export function validateListPartialsOptions(options: unknown): void {
  validate('listPartials', options, LIST_PARTIALS_RULES);
}

const DISCOVER_RULES: Rules = {
  timeout: TIMEOUT_MS,
  signal: SIGNAL,
  interface: TEXT,
  port: PORT,
  until: FUNCTION,
  settleMs: DELAY_MS,
};

/** For discover(), and the subset resolveReceiver() takes. */
export function validateDiscoverOptions(options: unknown): void {
  validate('discover', options, DISCOVER_RULES);
}

const WATCH_RULES: Rules = { interface: DISCOVER_RULES.interface!, port: DISCOVER_RULES.port! };

/** For ReceiverWatcher.start(), which listens until stopped (no timeout, no `until`). */
export function validateWatchOptions(options: unknown): void {
  validate('ReceiverWatcher.start', options, WATCH_RULES);
}
