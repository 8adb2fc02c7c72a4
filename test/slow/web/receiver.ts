/**
 * The receiver the browser tests upload to: a real `ft serve`, started inside their network
 * namespace and restartable on the same port, key and partial uploads. Not a test file itself.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../../helpers/free-port.js';
import { spawnFt } from '../../helpers/spawn-ft.js';
import { jsonLines } from '../support.js';
import type { Netns } from './browser.js';


export interface ReceiverOptions {
  /** A folder of the test's own: the inbox, partial uploads, identity and token file go below it. */
  root: string;
  token?: string;
  name?: string;
  maxFileSize?: number;
  /** Listen on every address, with no token: the open-network warning (the namespace has only loopback). */
  openToNetwork?: boolean;
}


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
  return startFt(netns, options);
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
