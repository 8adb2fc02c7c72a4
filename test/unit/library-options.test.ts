/**
 * Every option of send(), serve(), discover() and ReceiverWatcher.start() is checked up front:
 * a bad value is rejected with USAGE and a message naming the option ("expected …, got …", the
 * words the command line uses), before any file, socket or folder is touched.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCount, parsePartialTtl, parsePort, parsePositiveCount, parseRate, parseSeconds, parseSize } from '../../src/cli/options.js';
import { discover, FtError, ReceiverWatcher, send, serve } from '../../src/index.js';
import { validateDiscoverOptions, validateSendOptions, validateServeOptions, validateWatchOptions } from '../../src/options.js';
import { nodeFileSystem } from '../../src/file-system.js';
import { generateIdentity } from '../../src/auth/identity.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterAll(removeTempDirs);

const TOO_BIG_INTEGER = 2 ** 53;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

async function usage(promise: Promise<unknown>): Promise<FtError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FtError);
  expect((error as FtError).code).toBe('USAGE');
  expect((error as FtError).message).not.toContain('\n');
  return error as FtError;
}

/** [option, bad value, what the message says after "got"] */
type Case = [string, unknown, string];

const portCases = (name: string, min: number): Case[] => [
  [name, '9527', '"9527"'],
  [name, Number.NaN, 'NaN'],
  [name, -1, '-1'],
  [name, min - 1, String(min - 1)],
  [name, 65536, '65536'],
  [name, 70000, '70000'],
  [name, 1.5, '1.5'],
  [name, Infinity, 'Infinity'],
  [name, null, 'null'],
];
const timeoutCases = (name: string): Case[] => [
  [name, '1000', '"1000"'],
  [name, Number.NaN, 'NaN'],
  [name, 0, '0'],
  [name, -1, '-1'],
  [name, HOUR_MS + 1, String(HOUR_MS + 1)],
  [name, Infinity, 'Infinity'],
  [name, true, 'true'],
];
const countCases = (name: string, min: number): Case[] => [
  [name, '5', '"5"'],
  [name, Number.NaN, 'NaN'],
  [name, -1, '-1'],
  [name, min - 1, String(min - 1)],
  [name, 1.5, '1.5'],
  [name, TOO_BIG_INTEGER, String(TOO_BIG_INTEGER)],
  [name, Infinity, 'Infinity'],
];
const textCases = (name: string): Case[] => [
  [name, '', '""'],
  [name, 42, '42'],
  [name, null, 'null'],
  [name, ['x'], 'an array'],
];
const functionCases = (name: string): Case[] => [
  [name, 'callback', '"callback"'],
  [name, {}, 'an object'],
];
const signalCases: Case[] = [
  ['signal', {}, 'an object'],
  ['signal', 'abort', '"abort"'],
];
const fsCases: Case[] = [
  ['fs', {}, 'an object'],
  ['fs', 'node:fs', '"node:fs"'],
  ['fs', null, 'null'],
];

describe('send() options', () => {
  const cases: Case[] = [
    ...textCases('host'),
    ...portCases('port', 1),
    ...signalCases,
    ...functionCases('onEvent'),
    ...functionCases('onProgress'),
    ...countCases('retries', 0),
    ['retryDelayMs', Number.NaN, 'NaN'],
    ['retryDelayMs', -1, '-1'],
    ['retryDelayMs', HOUR_MS + 1, String(HOUR_MS + 1)],
    ['retryDelayMs', '500', '"500"'],
    ...textCases('token'),
    ...timeoutCases('connectTimeoutMs'),
    ...timeoutCases('idleTimeoutMs'),
    ...textCases('hashCache'),
    ['followSymlinks', 'yes', '"yes"'],
    ['followSymlinks', 0, '0'],
    ...countCases('keepContentBytes', 0),
    ...textCases('senderKeyFile'),
    ...fsCases,
    ...functionCases('connect'),
    ['fingerprint', 'not a fingerprint', '"not a fingerprint"'],
    ['fingerprint', 'ABCD-EFGH', '"ABCD-EFGH"'],
    ['fingerprint', '1'.repeat(32), `"${'1'.repeat(32)}"`],
    ['fingerprint', 42, '42'],
    ['fingerprint', null, 'null'],
    ['trust', 'always', '"always"'],
    ['trust', true, 'true'],
    ['trust', null, 'null'],
    ...textCases('trustFile'),
    ['discovered', 'nas', '"nas"'],
    ['discovered', { name: 42 }, 'an object'],
    ['discovered', { name: 'nas', fingerprint: 'forged' }, 'an object'],
    ['discovered', null, 'null'],
    ['insecurePlaintext', 'yes', '"yes"'],
    ['insecurePlaintext', 1, '1'],
    ['insecurePlaintext', null, 'null'],
  ];

  it.each(cases)('%s = %o is USAGE, naming the option and the value', async (name, value, got) => {
    const options = { host: '127.0.0.1', [name]: value };
    // A path that does not exist: the check must come before anything looks at it.
    const error = await usage(send(['/nonexistent/ft-options-test'], options as never));
    expect(error.message).toMatch(new RegExp(`^send option ${name}: expected .+, got ${escape(got)}$`));
  });

  it.each([
    ['fingerprint', 'A'.repeat(52)],
    ['trust', 'new'],
    ['trustFile', '/tmp/known-receivers.json'],
    ['discovered', { name: 'nas' }],
  ])('insecurePlaintext with %s is USAGE: there is no key it could check', async (name, value) => {
    const error = await usage(send(['/nonexistent/ft-options-test'], { host: '127.0.0.1', insecurePlaintext: true, [name]: value } as never));
    expect(error.message).toBe(`send: insecurePlaintext has no receiver key to check, so ${name} cannot apply: leave one out`);
  });

  it('host is required, options must be an object, paths an array of strings', async () => {
    expect((await usage(send(['x'], {} as never))).message).toBe('send option host: expected a non-empty string, got undefined');
    expect((await usage(send(['x'], undefined as never))).message).toBe('send: expected an options object, got undefined');
    expect((await usage(send(['x'], 'localhost' as never))).message).toBe('send: expected an options object, got "localhost"');
    expect((await usage(send('file.txt' as never, { host: 'h' }))).message).toBe('send: expected an array of paths (strings), or of one stream ({ stream, name }), got "file.txt"');
    expect((await usage(send([1] as never, { host: 'h' }))).message).toBe('send: expected an array of paths (strings), or of one stream ({ stream, name }), got an array');
  });

  it('port 70000, the value from the issue, is USAGE with the CLI’s words (it was INTERNAL)', async () => {
    const error = await usage(send(['x'], { host: '127.0.0.1', port: 70000 }));
    expect(error.message).toBe('send option port: expected a port from 1 to 65535, got 70000');
    expect(() => parsePort('70000')).toThrow('expected a port from 1 to 65535, got "70000"');
  });
});

describe('serve() options', () => {
  const cases: Case[] = [
    ...textCases('dir'),
    ...portCases('port', 0),
    ...textCases('host'),
    ['onConflict', 'keep', '"keep"'],
    ['onConflict', 1, '1'],
    ...textCases('token'),
    ['name', 42, '42'],
    ...countCases('maxFileSize', 0),
    ...countCases('maxConnections', 1),
    ...countCases('maxConnectionsPerAddress', 1),
    ...countCases('maxUnauthenticated', 1),
    ...countCases('maxPartials', 1),
    ...countCases('maxPartialsPerPeer', 1),
    ...countCases('minBodyRate', 0),
    ...timeoutCases('helloTimeoutMs'),
    ...timeoutCases('idleTimeoutMs'),
    ['partialTtlMs', 59_999, '59999'],
    ['partialTtlMs', -1, '-1'],
    ['partialTtlMs', Number.NaN, 'NaN'],
    ['partialTtlMs', 3650 * DAY_MS + 1, String(3650 * DAY_MS + 1)],
    ['partialTtlMs', Infinity, 'Infinity'],
    ['partialTtlMs', '7d', '"7d"'],
    ['beacon', 'yes', '"yes"'],
    ['beacon', 1, '1'],
    ['beaconInterval', 0, '0'],
    ['beaconInterval', -1, '-1'],
    ['beaconInterval', Number.NaN, 'NaN'],
    ['beaconInterval', 3601, '3601'],
    ['beaconInterval', '3', '"3"'],
    ...portCases('discoveryPort', 1),
    ...textCases('interface'),
    ...fsCases,
    ...signalCases,
    ['identity', '/path/to/identity', '"/path/to/identity"'],
    ['identity', {}, 'an object'],
    ['identity', { key: 'k', cert: 'c' }, 'an object'],
    ['identity', null, 'null'],
    ['insecurePlaintext', 'yes', '"yes"'],
    ['insecurePlaintext', 1, '1'],
    ['insecurePlaintext', null, 'null'],
  ];

  it.each(cases)('%s = %o is USAGE, naming the option and the value, and creates nothing', async (name, value, got) => {
    const dir = path.join(await tempDir('ft-options-'), 'inbox');
    const options = { dir, host: '127.0.0.1', port: 0, beacon: false, [name]: value };
    const error = await usage(serve(options as never));
    expect(error.message).toMatch(new RegExp(`^serve option ${name}: expected .+, got ${escape(got)}$`));
    expect(existsSync(dir)).toBe(false);
  });

  it('maxConnections -1 and 0, accepted before, are refused; the CLI refuses 0 with the same words', async () => {
    for (const value of [-1, 0]) {
      const error = await usage(serve({ host: '127.0.0.1', port: 0, beacon: false, maxConnections: value }));
      expect(error.message).toBe(`serve option maxConnections: expected a whole number of at least 1, got ${value}`);
    }
    expect(() => parsePositiveCount('0')).toThrow('expected a whole number of at least 1, got "0"');
  });

  it('an identity of the right shape that is no key and certificate is IDENTITY_INVALID; one whose fingerprint field lies is announced by its certificate\'s', async () => {
    const dir = path.join(await tempDir('ft-options-'), 'inbox');
    const garbage = await serve({ dir, host: '127.0.0.1', port: 0, beacon: false, identity: { key: 'k', cert: 'c', fingerprint: 'f' } }).catch((e: unknown) => e);
    expect(garbage).toMatchObject({ code: 'IDENTITY_INVALID' });
    const real = await generateIdentity();
    const other = await generateIdentity();
    const mismatched = await serve({ dir, host: '127.0.0.1', port: 0, beacon: false, identity: { key: real.key, cert: other.cert, fingerprint: other.fingerprint } }).catch((e: unknown) => e);
    expect(mismatched).toMatchObject({ code: 'IDENTITY_INVALID' });
    // The fingerprint printed and announced must be the key's own, or users would compare the wrong one.
    const receiver = await serve({ dir, host: '127.0.0.1', port: 0, beacon: false, identity: { ...real, fingerprint: other.fingerprint } });
    try {
      expect(receiver.fingerprint).toBe(real.fingerprint);
    } finally {
      await receiver.close();
    }
  });

  it('an interface that does not exist is USAGE before anything starts (moved here from serve())', async () => {
    const dir = path.join(await tempDir('ft-options-'), 'inbox');
    await usage(serve({ dir, host: '127.0.0.1', port: 0, interface: 'ft-no-such-if0' }));
    expect(existsSync(dir)).toBe(false);
  });
});

describe('discover() and ReceiverWatcher.start() options', () => {
  const cases: Case[] = [
    ...timeoutCases('timeout'),
    ...signalCases,
    ...textCases('interface'),
    ...portCases('port', 1),
    ...functionCases('until'),
    ['settleMs', -1, '-1'],
    ['settleMs', Number.NaN, 'NaN'],
    ['settleMs', HOUR_MS + 1, String(HOUR_MS + 1)],
    ['settleMs', '250', '"250"'],
  ];

  it.each(cases)('discover: %s = %o is USAGE', async (name, value, got) => {
    const error = await usage(discover({ [name]: value } as never));
    expect(error.message).toMatch(new RegExp(`^discover option ${name}: expected .+, got ${escape(got)}$`));
  });

  it.each(cases.filter(([name]) => name === 'port' || name === 'interface'))('ReceiverWatcher.start: %s = %o is USAGE', async (name, value) => {
    await usage(ReceiverWatcher.start({ [name]: value } as never));
  });

  it('options must be an object', async () => {
    expect((await usage(discover('fast' as never))).message).toBe('discover: expected an options object, got "fast"');
  });
});

describe('every option has a rule, and a name no rule knows is refused', () => {
  /** The option names of a library options interface, from its source. */
  function optionNames(file: string, iface: string): string[] {
    const source = readFileSync(new URL(`../../src/${file}`, import.meta.url), 'utf8');
    const body = source.slice(source.indexOf(`export interface ${iface} {`));
    const block = body.slice(0, body.indexOf('\n}\n'));
    return [...block.matchAll(/^ {2}(\w+)\??:/gm)].map((m) => m[1]!);
  }

  it.each([
    ['send', 'sender/sender.ts', 'SendOptions'],
    ['serve', 'receiver/server.ts', 'ServeOptions'],
    ['discover', 'discovery/discover.ts', 'DiscoverOptions'],
    ['ReceiverWatcher.start', 'discovery/discover.ts', 'WatchOptions'],
  ] as const)('%s: each option of %s %s is checked (a bad value of each is refused by its name)', (what, file, iface) => {
    const names = optionNames(file, iface);
    expect(names.length).toBeGreaterThan(1);
    const validate = { send: (o: object) => validateSendOptions([], { host: 'h', ...o }), serve: validateServeOptions, discover: validateDiscoverOptions, 'ReceiverWatcher.start': validateWatchOptions }[what];
    // A symbol is no valid value for any option: each must be refused as a bad value of its own, not as unknown.
    for (const name of names) expect(() => validate({ [name]: Symbol('bad') }), name).toThrow(new RegExp(`^${escape(what)} option ${name}: expected `));
  });

  it.each([
    ['send', () => send(['/nonexistent/ft-options-test'], { host: '127.0.0.1', retry: 3 } as never)],
    ['serve', async () => serve({ host: '127.0.0.1', port: 0, beacon: false, maxConection: 1 } as never)],
    // On 'lo' only, so that even a check that let them through would send nothing off this machine.
    ['discover', () => discover({ interface: 'lo', timeoutMs: 10 } as never)],
    ['ReceiverWatcher.start', () => ReceiverWatcher.start({ interface: 'lo', timeout: 10 } as never)],
  ])('%s: a misspelt option is USAGE naming it, not silently ignored', async (what, call) => {
    const error = await usage(call());
    expect(error.message).toMatch(new RegExp(`^${escape(what)}: unknown option "\\w+" \\(the options are [\\w, ]+\\)$`));
  });

  it('a misspelt serve() option creates nothing', async () => {
    const dir = path.join(await tempDir('ft-options-'), 'inbox');
    await usage(serve({ dir, host: '127.0.0.1', port: 0, beacon: false, onconflict: 'reject' } as never));
    expect(existsSync(dir)).toBe(false);
  });

  it('a bad senderKeyFile is refused before the key file is touched', async () => {
    const dir = await tempDir('ft-options-');
    const error = await usage(send([path.join(dir, 'missing')], { host: '127.0.0.1', senderKeyFile: '' }));
    expect(error.message).toBe('send option senderKeyFile: expected a non-empty string, got ""');
  });

  it('a long string is shown clipped: the message stays one short line', async () => {
    const error = await usage(serve({ host: '127.0.0.1', port: 0, beacon: false, onConflict: 'x'.repeat(10_000) } as never));
    expect(error.message.length).toBeLessThan(200);
  });
});

describe('valid options pass the checks unchanged', () => {
  it('every option at a good value, at the edges of its range', () => {
    const controller = new AbortController();
    expect(() =>
      validateSendOptions(['a', 'b'], {
        host: 'nas.local',
        port: 65535,
        signal: controller.signal,
        onEvent: () => undefined,
        onProgress: () => undefined,
        retries: 0,
        retryDelayMs: 0,
        token: 't',
        connectTimeoutMs: HOUR_MS,
        idleTimeoutMs: 0.5,
        hashCache: '/tmp/h.json',
        followSymlinks: true,
        keepContentBytes: 0,
        senderKeyFile: '/tmp/k.pem',
        fs: nodeFileSystem,
      }),
    ).not.toThrow();
    expect(() =>
      validateServeOptions({
        dir: 'in',
        port: 0,
        host: '::',
        onConflict: 'overwrite',
        token: 't',
        name: '',
        maxFileSize: 0,
        maxConnections: 1,
        maxConnectionsPerAddress: TOO_BIG_INTEGER - 1,
        maxUnauthenticated: 1,
        maxPartials: 1,
        maxPartialsPerPeer: 1,
        minBodyRate: 0,
        helloTimeoutMs: 1,
        idleTimeoutMs: HOUR_MS,
        partialTtlMs: 60_000,
        beacon: false,
        beaconInterval: 3600,
        discoveryPort: 1,
        interface: 'lo',
        fs: nodeFileSystem,
        signal: controller.signal,
      }),
    ).not.toThrow();
    expect(() => validateDiscoverOptions({ timeout: 1, port: 9527, until: () => true, settleMs: 0, interface: 'lo', signal: controller.signal })).not.toThrow();
    // undefined means "the default", for every option.
    expect(() => validateServeOptions({ port: undefined, maxConnections: undefined })).not.toThrow();
    expect(() => validateServeOptions(undefined)).not.toThrow();
    expect(() => validateDiscoverOptions(undefined)).not.toThrow();
  });
});

describe('the command line parses with the same rules', () => {
  it.each([
    [parsePort, '0', 'expected a port from 1 to 65535, got "0"'],
    [parsePort, '1.5', 'expected a port from 1 to 65535, got "1.5"'],
    [parseCount, '-1', 'expected a whole number, got "-1"'],
    [parseCount, '99999999999999999999', 'expected a whole number, got "99999999999999999999"'],
    [parsePositiveCount, '0', 'expected a whole number of at least 1, got "0"'],
    [parseSeconds, '0', 'expected a number of seconds between 0 and 3600, got "0"'],
    [parseSeconds, 'NaN', 'expected a number of seconds between 0 and 3600, got "NaN"'],
    [parseSeconds, '3601', 'expected a number of seconds between 0 and 3600, got "3601"'],
    [parseSize, '99999999999T', 'expected a whole number of bytes, got "99999999999T"'],
    [parsePartialTtl, '30s', 'expected a duration from 1 minute to 3650 days, got "30s"'],
    [parsePartialTtl, '3651d', 'expected a duration from 1 minute to 3650 days, got "3651d"'],
    [parseRate, '31K', 'expected a rate of at least 32 KiB/s (32768 bytes per second: receivers drop slower bodies), got "31K"'],
    [parseRate, '20M/min', 'expected a size such as 500M or 2G, got "20M/min"'],
  ] as const)('%o(%j) says: %s', (parse, value, message) => {
    expect(() => parse(value)).toThrow(message);
  });

  it('and accepts what it accepted before', () => {
    expect(parsePort('9527')).toBe(9527);
    expect(parseCount('0')).toBe(0);
    expect(parsePositiveCount('64')).toBe(64);
    expect(parseSeconds('0.5')).toBe(0.5);
    expect(parseSize('10G')).toBe(10 * 1024 ** 3);
    expect(parsePartialTtl('7d')).toBe(7 * DAY_MS);
  });

  it('takes a bandwidth limit in units of 1024, as curl and rsync do, with or without /s', () => {
    expect([parseRate('20M'), parseRate('20MiB'), parseRate('20MB/s'), parseRate('20m/s')]).toEqual(Array(4).fill(20 * 1024 ** 2));
    expect([parseRate('512K'), parseRate('1.5M'), parseRate('1G'), parseRate('32768')]).toEqual([512 * 1024, 1.5 * 1024 ** 2, 1024 ** 3, 32768]);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
