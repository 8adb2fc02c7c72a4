/**
 * One set of defaults (src/defaults.ts): the command line's option defaults and its --help,
 * the library options' @default comments and the README say the same numbers. (That the
 * library applies them: test/integration/defaults-applied.test.ts.)
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { DISCOVER_DEFAULTS, SEND_DEFAULTS, SERVE_DEFAULTS } from '../../src/defaults.js';
import { durationText } from '../../src/cli/options.js';

const DAY_MS = 86_400_000;
const KiB = 1024;
const MiB = 1024 * KiB;

function command(name: string): Command {
  const program = buildProgram(() => undefined, new Set());
  return program.commands.find((c) => c.name() === name)!;
}

/** What each flag of a command defaults to, by its option name in commander (`maxConnections`). */
function flagDefaults(name: string): Record<string, unknown> {
  return Object.fromEntries(command(name).options.map((option) => [option.attributeName(), option.defaultValue]));
}

/** `--flag …  (default: X)` from the command's help, by flag. */
function helpDefaults(name: string): Record<string, string> {
  const help = command(name).helpInformation().replace(/\n\s{10,}/g, ' ');
  return Object.fromEntries([...help.matchAll(/^\s+(?:-\w, )?(--[\w-]+)[^\n]*?(?:\(|, )default: ([^)]+)\)\s*$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** Flag of the command line ↔ option of the library, and how the flag's unit converts. */
const SERVE_FLAGS: Array<[flag: string, option: keyof typeof SERVE_DEFAULTS, fromFlag: (v: number) => number]> = [
  ['--port', 'port', (v) => v],
  ['--max-connections', 'maxConnections', (v) => v],
  ['--max-connections-per-address', 'maxConnectionsPerAddress', (v) => v],
  ['--max-unauthenticated', 'maxUnauthenticated', (v) => v],
  ['--max-partials', 'maxPartials', (v) => v],
  ['--max-partials-per-peer', 'maxPartialsPerPeer', (v) => v],
  ['--min-rate', 'minBodyRate', (v) => v],
  ['--idle-timeout', 'idleTimeoutMs', (v) => v * 1000],
  ['--hello-timeout', 'helloTimeoutMs', (v) => v * 1000],
  ['--beacon-interval', 'beaconInterval', (v) => v],
  ['--partial-ttl', 'partialTtlMs', (v) => v],
  ['--discovery-port', 'discoveryPort', (v) => v],
];
const SEND_FLAGS: Array<[string, keyof typeof SEND_DEFAULTS, (v: number) => number]> = [
  ['--retries', 'retries', (v) => v],
  ['--connect-timeout', 'connectTimeoutMs', (v) => v * 1000],
  ['--idle-timeout', 'idleTimeoutMs', (v) => v * 1000],
];
const DISCOVER_FLAGS: Array<[string, keyof typeof DISCOVER_DEFAULTS, (v: number) => number]> = [
  ['--timeout', 'timeout', (v) => v * 1000],
  ['--discovery-port', 'port', (v) => v],
];

const camel = (flag: string) => flag.replace(/^--/, '').replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

describe('the command line takes its defaults from src/defaults.ts', () => {
  it.each([
    ['serve', SERVE_FLAGS, SERVE_DEFAULTS],
    ['send', SEND_FLAGS, SEND_DEFAULTS],
    ['discover', DISCOVER_FLAGS, DISCOVER_DEFAULTS],
  ] as const)('ft %s: each flag defaults to the library default, and --help shows it', (name, flags, defaults) => {
    const values = flagDefaults(name);
    const shown = helpDefaults(name);
    for (const [flag, option, fromFlag] of flags) {
      const value = values[camel(flag)] as number;
      expect([flag, fromFlag(value)]).toEqual([flag, (defaults as Record<string, number>)[option]]);
      expect([flag, shown[flag]]).toEqual([flag, flag === '--partial-ttl' ? durationText(value) : String(value)]);
    }
  });

  it('the serve command: the folder, the conflict policy and the beacon too', () => {
    const serve = command('serve');
    expect(serve.registeredArguments[0]!.defaultValue).toBe(SERVE_DEFAULTS.dir);
    expect(flagDefaults('serve')).toMatchObject({ onConflict: SERVE_DEFAULTS.onConflict });
    // --no-beacon: commander sets beacon to true unless it is given, as the library's default is.
    expect(SERVE_DEFAULTS.beacon).toBe(true);
    expect(command('serve').options.find((o) => o.long === '--no-beacon')!.negate).toBe(true);
    expect(helpDefaults('serve')['--on-conflict']).toBe(`"${SERVE_DEFAULTS.onConflict}"`);
    expect(serve.helpInformation()).toContain(`(default: "${SERVE_DEFAULTS.dir}")`);
    expect(helpDefaults('serve')['--partial-ttl']).toBe('7d');
  });

  it('durationText writes a duration in its largest whole unit', () => {
    expect([7 * DAY_MS, 12 * 3_600_000, 90_000, 1500].map(durationText)).toEqual(['7d', '12h', '90s', '1500ms']);
  });
});

/** `@default X` of each option of a library options interface, as values where they are values. */
function docDefaults(file: string, iface: string): Record<string, unknown> {
  const source = readFileSync(new URL(`../../src/${file}`, import.meta.url), 'utf8');
  const body = source.slice(source.indexOf(`export interface ${iface} {`));
  const block = body.slice(0, body.indexOf('\n}\n'));
  const found: Record<string, unknown> = {};
  for (const m of block.matchAll(/\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*(\w+)\??:/g)) {
    const text = /@default\s+([^\n*]+)/.exec(m[1]!)?.[1]?.trim();
    if (text !== undefined) found[m[2]!] = docValue(text);
  }
  return found;
}

function docValue(text: string): unknown {
  if (/^\d[\d_]*$/.test(text)) return Number(text.replaceAll('_', ''));
  const quoted = /^'([^']*)'/.exec(text);
  if (quoted) return quoted[1];
  if (text === 'true' || text === 'false') return text === 'true';
  const sized = /^(\d+) (days|MiB)$/.exec(text);
  if (sized) return Number(sized[1]) * (sized[2] === 'days' ? DAY_MS : MiB);
  return text;
}

describe('the library options say the same numbers in their @default', () => {
  it.each([
    ['receiver/server.ts', 'ServeOptions', SERVE_DEFAULTS],
    ['sender/sender.ts', 'SendOptions', SEND_DEFAULTS],
    ['discovery/discover.ts', 'DiscoverOptions', DISCOVER_DEFAULTS],
    ['discovery/discover.ts', 'WatchOptions', { port: DISCOVER_DEFAULTS.port }],
  ] as const)('%s %s', (file, iface, defaults) => {
    const documented = docDefaults(file, iface);
    for (const [option, value] of Object.entries(defaults)) expect([option, documented[option]]).toEqual([option, value]);
  });
});

describe('the README says the same numbers', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  /** `| `-p, --port <n>` | `9527` |` rows of a command's option table. */
  function readmeTable(heading: string): Record<string, string> {
    const section = readme.slice(readme.indexOf(heading));
    const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| option |')));
    return Object.fromEntries([...table.matchAll(/^\| `(?:-\w, )?(--[\w-]+)[^`]*` \| `([^`]+)` \|/gm)].map((m) => [m[1]!, m[2]!]));
  }

  it.each([
    ['### `ft serve', 'serve'],
    ['### `ft send', 'send'],
    ['### `ft discover', 'discover'],
  ])('the option table under %s', (heading, name) => {
    const documented = readmeTable(heading);
    const shown = helpDefaults(name);
    // Flags whose default commander applies (not a "(default: …)" written into the description).
    const applied = flagDefaults(name);
    const compared = Object.keys(documented).filter((flag) => flag in shown && applied[camel(flag)] !== undefined);
    expect(compared.length).toBeGreaterThan(0);
    for (const flag of compared) expect([flag, documented[flag]]).toEqual([flag, shown[flag]!.replace(/^"(.*)"$/, '$1')]);
  });

  it('the library section', () => {
    const library = readme.slice(readme.indexOf('## Library'), readme.indexOf('## Security'));
    const inWords = (value: number, option: string): string[] => {
      if (/TtlMs$/.test(option)) return [`${value / DAY_MS} days`];
      if (/Ms$|^timeout$/.test(option)) return [String(value), `${value / 1000} s`];
      if (option === 'beaconInterval') return [`${value} s`];
      if (option === 'minBodyRate') return [`${value / KiB} KiB/s`];
      return [String(value)];
    };
    const checked: string[] = [];
    for (const defaults of [SERVE_DEFAULTS, SEND_DEFAULTS, DISCOVER_DEFAULTS]) {
      for (const [option, value] of Object.entries(defaults)) {
        if (typeof value !== 'number') continue;
        for (const m of library.matchAll(new RegExp(`\`${option}\` \\(([^)]+)\\)`, 'g'))) {
          // "`port` (0 picks a free one)" says what a value means, not the default.
          if (!/^\d+(\.\d+)? ?(s|days|KiB\/s)?$/.test(m[1]!)) continue;
          checked.push(option);
          expect(inWords(value, option), option).toContain(m[1]);
        }
      }
    }
    expect(checked).toEqual(expect.arrayContaining(['maxConnections', 'maxPartials', 'retries', 'retryDelayMs', 'connectTimeoutMs', 'partialTtlMs']));
  });
});
