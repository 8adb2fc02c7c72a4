/**
 * Every default the library applies and the `ft` command shows, in one place: serve(), send()
 * and discover() fall back to these, commander takes its default values (and the defaults its
 * --help shows) from them, and the options' @default comments say the same numbers
 * (test/unit/defaults.test.ts holds all three together). Frozen: a caller cannot change the
 * defaults of every later call. The CLI loads this module on every start, so it imports
 * constants only.
 */
import { DEFAULT_DISCOVERY_PORT } from './discovery/codec.js';
import type { ConflictPolicy } from './storage/conflict-policy.js';
import { DEFAULT_PORT } from './wire/messages.js';

const SECOND_MS = 1000;
const DAY_MS = 86_400_000;
const KiB = 1024;
const MiB = 1024 * KiB;

/** serve(): the options left out; those with no entry default to "none" (no limit, no token, all interfaces). */
export const SERVE_DEFAULTS = Object.freeze({
  dir: './inbox',
  port: DEFAULT_PORT,
  onConflict: 'rename' as ConflictPolicy,
  maxConnections: 64,
  maxConnectionsPerAddress: 8,
  maxUnauthenticated: 16,
  maxPartials: 8192,
  maxPartialsPerPeer: 64,
  helloTimeoutMs: 5 * SECOND_MS,
  idleTimeoutMs: 60 * SECOND_MS,
  /** Bytes per second. */
  minBodyRate: 16 * KiB,
  partialTtlMs: 7 * DAY_MS,
  beacon: true,
  /** Seconds. */
  beaconInterval: 3,
  discoveryPort: DEFAULT_DISCOVERY_PORT,
  web: true,
  allowUnverified: false,
});

/** send(): the options left out. */
export const SEND_DEFAULTS = Object.freeze({
  port: DEFAULT_PORT,
  retries: 5,
  retryDelayMs: 500,
  connectTimeoutMs: 10 * SECOND_MS,
  idleTimeoutMs: 60 * SECOND_MS,
  followSymlinks: false,
  keepContentBytes: 32 * MiB,
});

/** discover(): the options left out. */
export const DISCOVER_DEFAULTS = Object.freeze({
  /** Milliseconds. */
  timeout: SECOND_MS,
  port: DEFAULT_DISCOVERY_PORT,
  settleMs: 250,
});
