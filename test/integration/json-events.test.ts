/**
 * The README's "`--json` output" tables against what ft prints: every line of real runs (and of
 * every event type the library can emit, each with all its optional fields) must be a
 * documented event whose fields are documented with the type they have, carry every field not
 * marked optional, and every documented event must be seen.
 */
import { readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { PinnedReceiver } from '../../src/auth/trust-store.js';
import { receiverJson } from '../../src/cli/discover-command.js';
import { jsonLine } from '../../src/cli/format.js';
import { createSendView } from '../../src/cli/send-view.js';
import { receiverEventJson } from '../../src/cli/serve-command.js';
import { statusJson } from '../../src/cli/status-command.js';
import type { PartialUpload } from '../../src/storage/upload-store.js';
import type { FoundReceiver } from '../../src/discovery/sightings.js';
import type { ReceiverEvent, SendEvent } from '../../src/ingest/events.js';
import type { FileResult } from '../../src/sender/sender.js';
import { partialBytes, randomFile, waitUntil } from '../helpers/files.js';
import { freePort } from '../helpers/free-port.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, REPO_ROOT, runFt, spawnFt, startFtServe } from '../helpers/spawn-ft.js';
import { startProducer } from '../helpers/stream-producer.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

type Command = 'any' | 'send' | 'serve' | 'discover' | 'trust list' | 'status';

interface Field {
  type: string;
  optional: boolean;
}

/** command → event → field (nested ones as `files[].path`) → its documented type. */
type Doc = Map<Command, Map<string, Map<string, Field>>>;

const README = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');

function parseDoc(): Doc {
  const start = README.indexOf('### `--json` output');
  expect(start, 'README section "### `--json` output"').toBeGreaterThan(0);
  const end = README.indexOf('\n### ', start + 1);
  const lines = README.slice(start, end).split('\n');
  const doc: Doc = new Map();
  /** Rows whose type is "as in `event`" / "as above", resolved once every table is read. */
  const references: Array<{ command: Command; event: string; fields: string[]; from: string }> = [];
  let command: Command | undefined;
  let event = '';
  for (const line of lines) {
    const heading = /^`ft (send|serve|discover|trust list|status)`:$/.exec(line);
    if (heading) command = heading[1] as Command;
    else if (line.startsWith('Any command')) command = 'any';
    if (!line.startsWith('| ') || line.startsWith('| event') || command === undefined) continue;
    const [eventCell, fieldCell, typeCell] = line.split('|').slice(1, -1).map((cell) => cell.trim()) as [string, string, string];
    if (eventCell !== '') event = eventCell.replace(/`/g, '');
    const events = doc.get(command) ?? doc.set(command, new Map()).get(command)!;
    const fields = events.get(event) ?? events.set(event, new Map()).get(event)!;
    const names = [...fieldCell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    const reference = /^as (?:in `(\w[\w-]*)`|above)$/.exec(typeCell);
    if (reference) {
      references.push({ command, event, fields: names, from: reference[1] ?? '' });
      continue;
    }
    expect(typeCell, `type of ${command} ${event} ${fieldCell}`).toMatch(/^(string|number|boolean|string\[\]|object\[\])( or null)?\??$/);
    for (const name of names) fields.set(name, { type: typeCell.replace(/\?$/, ''), optional: typeCell.endsWith('?') });
  }
  for (const { command, event, fields, from } of references) {
    // "as above" is the table for any command; "as in `x`" is event x of this command's table, else of any table.
    const sources = from === '' ? [doc.get('any')!.get('error')!] : [doc.get(command)!.get(from), ...[...doc.values()].map((e) => e.get(from))];
    for (const name of fields) {
      expect(sources.some((s) => s?.has(name)), `${command} ${event}: ${name} refers to a documented field`).toBe(true);
      // A field borrowed for an event that may lack its source (resolved's receiver) is optional there.
      const target = doc.get(command)!.get(event)!;
      const source = sources.find((s) => s?.has(name))!;
      // The fields of its objects come along (`claims` brings `claims[].address`, …).
      for (const [key, field] of source) {
        if (key === name || key.startsWith(`${name}[].`)) target.set(key, { ...field, optional: field.optional || event === 'resolved' });
      }
    }
  }
  return doc;
}

function typeOf(value: unknown): string {
  if (Array.isArray(value)) return value.every((v) => typeof v === 'string') && value.length > 0 ? 'string[]' : 'array';
  return value === null ? 'null' : typeof value;
}

/** Whether a value fits a documented type (an empty array fits either array type). */
function fits(type: string, value: unknown): boolean {
  // `number or null`: a stream's size, unknown until it ends.
  if (type.endsWith(' or null')) return value === null || fits(type.slice(0, -' or null'.length), value);
  if (type === 'string[]') return Array.isArray(value) && value.every((v) => typeof v === 'string');
  if (type === 'object[]') return Array.isArray(value) && value.every((v) => typeOf(v) === 'object');
  return typeOf(value) === type;
}

const seen = new Map<Command, Set<string>>();

/** Checks one printed line of `command` against the doc (errors of any command are in the `any` table). */
function check(doc: Doc, command: Command, line: Record<string, unknown>): void {
  const name = String(line.event);
  const fields = doc.get(command)?.get(name) ?? (name === 'error' ? doc.get('any')!.get('error') : undefined);
  expect(fields, `${command} --json event ${name} is documented: ${JSON.stringify(line)}`).toBeDefined();
  (seen.get(command) ?? seen.set(command, new Set()).get(command)!).add(name);
  checkFields(fields!, line, `${command} ${name}`, '', ['event']);
}

function checkFields(fields: Map<string, Field>, object: Record<string, unknown>, where: string, prefix: string, skip: string[] = []): void {
  for (const [key, value] of Object.entries(object)) {
    if (skip.includes(key)) continue;
    const field = fields.get(prefix + key);
    expect(field, `${where}: field ${prefix}${key} is documented (${JSON.stringify(value)})`).toBeDefined();
    expect(fits(field!.type, value), `${where}: ${prefix}${key} is ${field!.type}, not ${JSON.stringify(value)}`).toBe(true);
    if (field!.type === 'object[]') {
      for (const item of value as Array<Record<string, unknown>>) checkFields(fields, item, where, `${prefix}${key}[].`);
    }
  }
  for (const [key, field] of fields) {
    const nested = key.slice(prefix.length);
    if (!key.startsWith(prefix) || nested.includes('.') || field.optional) continue;
    expect(object, `${where}: ${key} is not marked optional, so it is always there`).toHaveProperty(nested);
  }
}

function linesOf(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

// Every event type, each with every optional field (Required<>): a field added to an event type
// and not here fails the type check, and one not in the README fails the test.
type Full<U extends { type: string }> = { [K in U['type']]: Required<Extract<U, { type: K }>> };
const sendEvents: Full<SendEvent> = {
  collected: { type: 'collected', files: 2, bytes: 10 },
  connected: { type: 'connected', host: '127.0.0.1', port: 9527, attempt: 1, fingerprint: 'A'.repeat(52), firstContact: true },
  started: { type: 'started', path: 'a', name: 'a', size: 10, offset: 5 },
  restarted: { type: 'restarted', path: 'a', name: 'a', discarded: 5, reason: 'receiver partial differs from this file' },
  progress: { type: 'progress', path: 'a', name: 'a', bytes: 7, size: 10 },
  verified: { type: 'verified', path: 'a', name: 'a', size: 10, hash: '0123456789abcdef', remotePath: 'a (1)', resumedFrom: 5 },
  skipped: { type: 'skipped', path: 'a', name: 'a', remotePath: 'a' },
  folder: { type: 'folder', path: 'd/e', name: 'd/e', remotePath: 'd/e (1)' },
  ignored: { type: 'ignored', path: 'd/l', name: 'd/l', reason: 'symbolic link, not followed' },
  refused: { type: 'refused', path: 'a', name: 'a', code: 'TOO_LARGE', message: 'too large' },
  failed: { type: 'failed', path: 'a', name: 'a', code: 'LOCAL_FILE', message: 'gone' },
  retrying: { type: 'retrying', attempt: 2, delayMs: 500, code: 'CONNECTION_LOST', message: 'lost', host: '192.0.2.2', port: 9528, switching: false },
};
const receiverEvents: Full<ReceiverEvent> = {
  connection: { type: 'connection', remote: '127.0.0.1:5000' },
  started: { type: 'started', remote: '127.0.0.1:5000', name: 'a', size: 10, offset: 0 },
  restarted: { type: 'restarted', remote: '127.0.0.1:5000', name: 'a', discarded: 5 },
  progress: { type: 'progress', remote: '127.0.0.1:5000', name: 'a', bytes: 5, size: 10 },
  received: {
    type: 'received',
    remote: '127.0.0.1:5000',
    name: 'a',
    path: 'a',
    size: 10,
    hash: '0123456789abcdef',
    resumedFrom: 0,
    durationMs: 3,
    protocol: 'tus',
    verified: true,
  },
  skipped: { type: 'skipped', remote: '127.0.0.1:5000', name: 'a', path: 'a' },
  folder: { type: 'folder', remote: '127.0.0.1:5000', name: 'd/e', path: 'd/e' },
  refused: { type: 'refused', remote: '127.0.0.1:5000', name: 'a', code: 'CONFLICT', message: 'taken' },
  failed: { type: 'failed', remote: '127.0.0.1:5000', name: 'a', code: 'HASH_MISMATCH', message: 'differs' },
  'connection-error': { type: 'connection-error', remote: '127.0.0.1:5000', code: 'TIMEOUT', message: 'idle' },
  access: { type: 'access', remote: '127.0.0.1:5000', via: 'code' },
  warning: { type: 'warning', message: 'careful' },
};
const fileResult: Required<FileResult> = {
  path: 'a',
  name: 'a',
  size: 10,
  hash: '0123456789abcdef',
  status: 'refused',
  folder: false,
  remotePath: 'a',
  resumedFrom: 0,
  bytesSent: 0,
  code: 'TOO_LARGE',
  message: 'too large',
};
const found: Required<FoundReceiver> = {
  name: 'nas',
  id: '0123456789abcdef',
  port: 9527,
  auth: true,
  fingerprint: 'A'.repeat(52),
  addresses: ['192.0.2.1'],
  endpoints: [{ address: '192.0.2.1', port: 9527 }],
  conflict: true,
  claims: [{ address: '192.0.2.1', port: 9527, name: 'nas', auth: true, fingerprint: 'A'.repeat(52) }],
};
const pinned: Required<PinnedReceiver> = {
  fingerprint: 'A'.repeat(52),
  names: ['nas'],
  addresses: ['192.0.2.1:9527'],
  added: new Date(0).toISOString(),
  lastSeen: new Date(0).toISOString(),
};

const partial: Required<PartialUpload> = {
  name: 'a',
  owner: 'a'.repeat(64),
  size: 10,
  bytes: 5,
  kind: 'tus',
  createdAt: 0,
  lastWriteAt: 1,
  expiresAt: 2,
  peer: '192.0.2.1',
  inUse: false,
};

let doc: Doc;
beforeAll(() => {
  doc = parseDoc();
});
afterEach(async () => {
  await closeAllProxies();
  killAllFt();
});
afterAll(removeTempDirs);

describe('README "--json output"', () => {
  it('documents every event type the library emits, with all its fields', async () => {
    let printed = '';
    const out = { write: (text: string) => (printed += text) };
    const view = await createSendView(true, { out, err: { write: () => true } });
    for (const event of Object.values(sendEvents)) view.event(event);
    // A stream's: its size unknown until it ends.
    view.event({ ...sendEvents.started, offset: 0, size: null });
    view.event({ ...sendEvents.progress, size: null });
    view.event({ ...sendEvents.collected, bytes: null });
    const report = { files: [fileResult], ignored: [], bytesSent: 0, durationMs: 1 };
    view.stopped(report, { code: 'CONNECTION_LOST', message: 'lost' }, true);
    for (const line of linesOf(printed)) check(doc, 'send', line);
    check(doc, 'send', JSON.parse(jsonLine('resolved', { ...found, host: '192.0.2.1', port: 9527, via: 'discovery', note: 'why' })));
    expect(seen.get('send')).toContain('resumed');

    for (const event of [...Object.values(receiverEvents), { ...receiverEvents.started, size: null }, { ...receiverEvents.progress, size: null }]) {
      const line = receiverEventJson(event);
      if (line !== undefined) check(doc, 'serve', JSON.parse(line));
    }
    check(doc, 'discover', JSON.parse(jsonLine('receiver', receiverJson(found, new Map([[found.id, { name: 'nas', pinned: 'B'.repeat(52) }]])))));
    check(doc, 'trust list', JSON.parse(jsonLine('pinned', pinned)));
    const listing = { partials: [partial], unreadable: [{ entry: `${'0'.repeat(32)}.part`, reason: 'a symbolic link' }], truncated: true };
    for (const line of linesOf(statusJson('inbox', listing, 7 * 24 * 3600_000, Date.now()))) check(doc, 'status', line);
  });

  it('matches every line of real ft send, ft serve, ft trust list and ft status runs', { timeout: 60_000 }, async () => {
    const root = await tempDir('ft-json-');
    const env = { HOME: root, XDG_CONFIG_HOME: path.join(root, 'config'), XDG_CACHE_HOME: path.join(root, 'cache') };
    const tokenFile = path.join(root, 'token');
    await writeFile(tokenFile, 'a shared secret of some length\n', { mode: 0o600 });
    const serve = await startFtServe(path.join(root, 'inbox'), { json: true, args: ['--max-file-size', '6M', '--token-file', tokenFile], env });
    const to = ['--to', `127.0.0.1:${serve.port}`, '--token-file', tokenFile, '--json'];

    const folder = path.join(root, 'photos');
    await mkdir(folder);
    await randomFile(path.join(folder, 'a.bin'), 10_000);
    await randomFile(path.join(folder, 'too-big.bin'), 7 * 1024 * 1024);
    await symlink('a.bin', path.join(folder, 'link'));
    await mkdir(path.join(folder, 'empty'));
    const first = await runFt(['send', folder, ...to, '--trust-new'], { env });
    expect(first.exit.code, first.stderr).toBe(4); // too-big.bin refused
    const again = await runFt(['send', folder, ...to], { env });
    expect(again.exit.code, again.stderr).toBe(4); // a.bin already there, too-big.bin refused again

    // A resume: the path to the receiver goes away mid-body, and the next run continues.
    const proxy = await startProxy({ targetPort: serve.port, bytesPerSecond: 1024 * 1024 });
    const big = await randomFile(path.join(root, 'big.bin'), 5 * 1024 * 1024);
    const cut = spawnFt(['send', big, '--to', `127.0.0.1:${proxy.port}`, '--token-file', tokenFile, '--json', '--retries', '0'], { env });
    await waitUntil(async () => (await partialBytes(serve.dir)) > 256 * 1024, 'part of big.bin to arrive');
    await proxy.close();
    expect((await cut.exited).code, cut.stderr).toBe(5);
    const status = await runFt(['status', serve.dir, '--json'], { env });
    expect(status.exit.code, status.stderr).toBe(0);
    expect(linesOf(status.stdout).map((l) => l.event)).toEqual(['partial', 'summary']);
    const resumed = await runFt(['send', big, ...to], { env });
    expect(resumed.exit.code, resumed.stderr).toBe(0);
    // A stream: sizes unknown until it ends.
    const producer = startProducer(2 * 1024 * 1024);
    const streamed = await runFt(['send', '-', '--as', 'streamed.bin', ...to], { env, stdin: producer.child.stdout! });
    expect(streamed.exit.code, streamed.stderr).toBe(0);
    expect(linesOf(streamed.stdout).find((l) => l.event === 'started')).toMatchObject({ size: null });

    const closed = await runFt(['send', big, '--to', `127.0.0.1:${await freePort()}`, '--json', '--retries', '0'], { env });
    expect(closed.exit.code).toBe(5);
    const usage = await runFt(['send', '--json', '--to', '127.0.0.1:1'], { env });
    expect(usage.exit.code).toBe(2);
    const pins = await runFt(['trust', 'list', '--json'], { env });
    expect(pins.exit.code).toBe(0);

    serve.proc.kill('SIGINT');
    await serve.proc.exited;
    const sends = [first, again, cut, resumed, streamed, closed, usage].flatMap((run) => linesOf(run.stdout));
    for (const line of sends) check(doc, 'send', line);
    for (const line of linesOf(serve.proc.stdout)) check(doc, 'serve', line);
    for (const line of linesOf(pins.stdout)) check(doc, 'trust list', line);
    for (const line of linesOf(status.stdout)) check(doc, 'status', line);
    const events = (lines: Array<Record<string, unknown>>) => new Set(lines.map((l) => l.event));
    // The runs did reach what they were meant to: each of these was printed at least once.
    expect([...events(sends)].sort()).toEqual(
      expect.arrayContaining(['collected', 'connected', 'error', 'folder', 'ignored', 'progress', 'refused', 'resumed', 'skipped', 'started', 'summary', 'verified']),
    );
    expect([...events(linesOf(serve.proc.stdout))]).toEqual(expect.arrayContaining(['folder', 'listening', 'received', 'refused', 'skipped', 'started']));
    expect(linesOf(pins.stdout).map((l) => l.event)).toEqual(['pinned']);
  });

  it('lists no event ft never prints', () => {
    for (const [command, events] of doc) {
      if (command === 'any') continue;
      expect([...(seen.get(command) ?? [])].sort(), `${command}: documented events`).toEqual([...events.keys()].sort());
    }
  });
});
