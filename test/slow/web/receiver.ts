/**
 * The receiver the browser tests upload to, started inside their network namespace and
 * restartable on the same port over the same partial uploads. Not a test file itself.
 */
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { REPO_ROOT } from '../../helpers/spawn-ft.js';
import { spawnJson, type JsonChild, type Netns } from './browser.js';

const HARNESS = path.join(REPO_ROOT, 'test', 'slow', 'web', 'harness.mjs');

export interface ReceiverOptions {
  inbox: string;
  partials: string;
  token?: string;
  codes?: number;
  warning?: string | null;
  name?: string;
  maxFileSize?: number | null;
}

export interface Receiver {
  readonly url: string;
  readonly port: number;
  /** Full fingerprint of its key. */
  readonly fingerprint: string;
  /** SHA-256 of its certificate, as browsers show it (AB:CD:…). */
  readonly certificateSha256: string;
  /** One-time access codes it accepts (token mode). */
  readonly codes: string[];
  readonly proc: JsonChild;
  /** SIGKILL: open uploads are cut, as when a receiver dies. */
  kill(): Promise<void>;
  /** The same receiver again: same port, key, partial uploads and sessions. */
  restart(): Promise<Receiver>;
}

export async function startReceiver(netns: Netns, options: ReceiverOptions, previous?: { port: number; key: string; cert: string; sessions: string[] }): Promise<Receiver> {
  const settings = { ...options, port: previous?.port, key: previous?.key, cert: previous?.cert, sessions: previous?.sessions };
  const [command, args] = netns.wrap(process.execPath, [HARNESS, JSON.stringify(settings)]);
  const proc = spawnJson(command, args, 300_000);
  const listening = await proc.waitFor((event) => event.event === 'listening');
  const port = listening.port as number;
  const key = listening.key as string;
  const cert = listening.cert as string;
  const sessions = () => [...(previous?.sessions ?? []), ...proc.events('new-session').map((e) => e.session as string)];
  return {
    url: `https://127.0.0.1:${port}/`,
    port,
    fingerprint: listening.fingerprint as string,
    certificateSha256: new X509Certificate(cert).fingerprint256,
    codes: listening.codes as string[],
    proc,
    kill: () => proc.kill(),
    async restart() {
      await proc.kill();
      return startReceiver(netns, options, { port, key, cert, sessions: sessions() });
    },
  };
}
