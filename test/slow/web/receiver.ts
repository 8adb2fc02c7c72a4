/**
 * The receiver the browser tests upload to, started inside their network namespace and
 * restartable on the same port, key and partial uploads: a real `ft serve` once the build has
 * the web side and the tus endpoint, until then (or with FT_WEB_RECEIVER=harness) the stand-in
 * in harness.mjs (the reference tus server). Not a test file itself.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../helpers/free-port.js';
import { REPO_ROOT, spawnFt } from '../../helpers/spawn-ft.js';
import { jsonLines } from '../support.js';
import { spawnJson, type Netns } from './browser.js';

const HARNESS = path.join(REPO_ROOT, 'test', 'slow', 'web', 'harness.mjs');

/** Which receiver the tests run against (they say so in their titles). */
export const RECEIVER_KIND: 'ft serve' | 'stand-in' =
  process.env.FT_WEB_RECEIVER !== 'harness' &&
  existsSync(path.join(REPO_ROOT, 'dist', 'web', 'web-server.js')) &&
  existsSync(path.join(REPO_ROOT, 'dist', 'web', 'tus.js'))
    ? 'ft serve'
    : 'stand-in';

export interface ReceiverOptions {
  /** A folder of the test's own: the inbox, partial uploads, identity and token file go below it. */
  root: string;
  token?: string;
  name?: string;
  maxFileSize?: number;
  /** Listen on every address, with no token: the open-network warning (the namespace has only loopback). */
  openToNetwork?: boolean;
}

/** What the stand-in says on an open network (ft serve's own words come from ft). */
const STAND_IN_OPEN_WARNING = 'No token is set: anyone on this network can upload files here.';

export interface Receiver {
  /** The page's address, without any access code. */
  readonly url: string;
  readonly inbox: string;
  /** Full fingerprint of its key. */
  readonly fingerprint: string;
  /** SHA-256 of its certificate, as browsers show it (AB:CD:…). */
  readonly certificateSha256: string;
  /** A one-time access code it accepts (with a token). */
  readonly code: string | undefined;
  /** Its JSON events with this `event` name so far. */
  events(name: string): Array<Record<string, unknown>>;
  /** SIGKILL: open uploads are cut, as when a receiver dies. */
  kill(): Promise<void>;
  /** The same receiver again: same port, key and partial uploads (and sessions). */
  restart(): Promise<Receiver>;
}

export function startReceiver(netns: Netns, options: ReceiverOptions): Promise<Receiver> {
  return RECEIVER_KIND === 'ft serve' ? startFt(netns, options) : startStandIn(netns, options);
}

const LIFETIME_MS = 300_000;

async function startFt(netns: Netns, options: ReceiverOptions, port?: number): Promise<Receiver> {
  const inbox = path.join(options.root, 'inbox');
  const listenPort = port ?? (await freePort());
  const host = options.openToNetwork ? '0.0.0.0' : '127.0.0.1';
  const args = ['serve', inbox, '--json', '--no-beacon', '--host', host, '--port', String(listenPort)];
  args.push('--identity', path.join(options.root, 'identity'));
  if (options.token !== undefined) {
    const tokenFile = path.join(options.root, 'token');
    await writeFile(tokenFile, `${options.token}\n`, { mode: 0o600 });
    args.push('--token-file', tokenFile);
  }
  if (options.name !== undefined) args.push('--name', options.name);
  if (options.maxFileSize !== undefined) args.push('--max-file-size', String(options.maxFileSize));
  const proc = spawnFt(args, { prefix: netns.prefix, timeoutMs: LIFETIME_MS });
  const listening = await proc.waitForJson((e) => e.event === 'listening', 20_000);
  const link = new URL(listening.web as string);
  const code = new URLSearchParams(link.hash.slice(1)).get('code') ?? undefined;
  link.hash = '';
  link.hostname = '127.0.0.1'; // the link may name another address of this machine
  const kill = async () => {
    proc.kill('SIGKILL');
    await proc.exited;
  };
  return {
    url: link.href,
    inbox,
    fingerprint: listening.fingerprint as string,
    certificateSha256: listening.certificateSha256 as string,
    code,
    events: (name) => jsonLines(proc.stdout).filter((e) => e.event === name),
    kill,
    async restart() {
      await kill();
      return startFt(netns, options, listening.port as number);
    },
  };
}

interface StandInState {
  port: number;
  key: string;
  cert: string;
  sessions: string[];
}

async function startStandIn(netns: Netns, options: ReceiverOptions, previous?: StandInState): Promise<Receiver> {
  const inbox = path.join(options.root, 'inbox');
  const settings = {
    inbox,
    partials: path.join(options.root, 'partials'),
    token: options.token,
    codes: options.token === undefined ? 0 : 1,
    name: options.name,
    maxFileSize: options.maxFileSize,
    warning: options.openToNetwork ? STAND_IN_OPEN_WARNING : null,
    ...previous,
  };
  const [command, args] = netns.wrap(process.execPath, [HARNESS, JSON.stringify(settings)]);
  const proc = spawnJson(command, args, LIFETIME_MS);
  const listening = await proc.waitFor((event) => event.event === 'listening');
  const state = { port: listening.port as number, key: listening.key as string, cert: listening.cert as string };
  return {
    url: `https://127.0.0.1:${state.port}/`,
    inbox,
    fingerprint: listening.fingerprint as string,
    certificateSha256: new X509Certificate(state.cert).fingerprint256,
    code: (listening.codes as string[])[0],
    events: (name) => proc.events(name),
    kill: () => proc.kill(),
    async restart() {
      await proc.kill();
      const sessions = [...(previous?.sessions ?? []), ...proc.events('new-session').map((e) => e.session as string)];
      return startStandIn(netns, options, { ...state, sessions });
    },
  };
}
