import { FtError, type ErrorCode } from '../errors.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { escapeControls, escapeForDisplay, parseSafeName } from '../names/safe-name.js';
import { send, type FileResult } from '../sender/sender.js';
import type { StreamSource } from '../sender/stream-send.js';
import { jsonLine } from './format.js';
import { hostPort } from '../host-port.js';
import { createSendView } from './send-view.js';
import { parseTarget, readToken } from './options.js';
import { resolveReceiver } from '../discovery/resolve.js';
import { defaultHashCachePath } from '../sender/hash-cache.js';
import { defaultSenderKeyPath } from '../auth/owner-key.js';
import { SEND_DEFAULTS } from '../defaults.js';
import { parseFingerprint, shortFingerprint } from '../auth/fingerprint.js';
import { defaultTrustStorePath } from '../auth/trust-store.js';
import { pinnedByName } from './trust-command.js';
import type { TrustPolicy, UnknownReceiver } from '../sender/receiver-trust.js';

const PLAINTEXT_WARNING = '--insecure-plaintext: nothing is encrypted, so anyone on the network can read and change the files, and the receiver is not authenticated';

/**
 * First contact on a terminal: show the key and ask, as ssh does. Without one (a script, a
 * pipe) or with --json, nothing can be asked: refused unless --trust-new, --fingerprint or a token.
 */
function askOnTerminal(json: boolean): TrustPolicy {
  if (json || !process.stdin.isTTY || !process.stderr.isTTY) return 'pinned';
  return async (receiver: UnknownReceiver) => {
    const { createInterface } = await import('node:readline/promises');
    const where = receiver.name ? `"${escapeForDisplay(receiver.name)}" at ${receiver.host}:${receiver.port}` : `${receiver.host}:${receiver.port}`;
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    // Ctrl-C at the question is an interruption (exit 130), as anywhere else in a send.
    const interrupted = new Promise<never>((_, reject) => prompt.once('SIGINT', () => reject(new FtError('ABORTED', 'interrupted at the first-contact question'))));
    try {
      process.stderr.write(`ft: first contact with ${where}. Its key's fingerprint is\n\n    ${shortFingerprint(receiver.fingerprint)}\n\n`);
      // All in the question: readline redraws its prompt line, erasing anything written before it on that line.
      const answer = await Promise.race([prompt.question('ft: compare it with the one `ft serve` printed there. Is it the same, and do you trust it? [y/N] '), interrupted]);
      return /^y(es)?$/i.test(answer.trim());
    } catch (error) {
      // Ctrl-D (the end of input) at a yes/no question is a no: first contact refused, exit 7.
      if (error instanceof Error && error.name === 'AbortError') return false;
      throw error;
    } finally {
      prompt.close();
    }
  };
}

export interface SendCommandOptions {
  /** What followed --to: an address, a host name or a receiver name; undefined to discover. */
  to?: string;
  interface?: string;
  discoveryPort?: number;
  retries: number;
  hashCache: boolean;
  connectTimeout: number;
  idleTimeout: number;
  tokenFile?: string;
  fingerprint?: string;
  trustNew?: boolean;
  trustFile?: string;
  insecurePlaintext?: boolean;
  senderKey?: string;
  json?: boolean;
  followSymlinks?: boolean;
  /** Bytes per second. */
  limitRate?: number;
  preserveMode?: boolean;
  /** With the path `-`: the name standard input gets on the receiver. */
  as?: string;
}

/** `-` alone with `--as NAME`: standard input as one file; otherwise the paths as they are. */
function sourcesOf(paths: string[], as: string | undefined): string[] | [StreamSource] {
  if (!paths.includes('-')) {
    if (as !== undefined) throw new FtError('USAGE', '--as names standard input: use it with - as the only path');
    return paths;
  }
  if (paths.length !== 1) throw new FtError('USAGE', '- (standard input) must be the only path; a file named - can be given as ./-');
  if (as === undefined) throw new FtError('USAGE', '- (standard input) needs --as NAME: the name it gets on the receiver');
  try {
    parseSafeName(as);
  } catch (error) {
    throw new FtError('USAGE', `--as ${JSON.stringify(as)}: ${(error as Error).message}`);
  }
  return [{ stream: process.stdin, name: as }];
}

export async function sendCommand(paths: string[], options: SendCommandOptions): Promise<number> {
  const sources = sourcesOf(paths, options.as);
  // Standard input carries the data: nothing can be asked on it.
  const stream = typeof sources[0] === 'object';
  const token = readToken(options.tokenFile);
  const plaintext = options.insecurePlaintext === true;
  if (plaintext && (options.fingerprint !== undefined || options.trustNew)) {
    throw new FtError('USAGE', '--insecure-plaintext has no receiver key to check: leave out --fingerprint and --trust-new');
  }
  const fingerprint = options.fingerprint === undefined ? undefined : parseFingerprint(options.fingerprint);
  const trustFile = options.trustFile ?? defaultTrustStorePath();
  if (plaintext) process.stderr.write(`ft: warning: ${PLAINTEXT_WARNING}\n`);
  const target = await resolveReceiver(options.to === undefined ? undefined : parseTarget(options.to), SEND_DEFAULTS.port, {
    interface: options.interface,
    port: options.discoveryPort,
    // A beacon claiming a pinned name with another key is set aside (resolve.ts).
    pinnedFingerprint: plaintext ? undefined : pinnedByName(trustFile),
  });
  // Pins go under a name the user typed, never one a receiver picked alone on the network called itself.
  const discovered =
    target.receiver && !plaintext ? { ...(options.to !== undefined && { name: target.receiver.name }), fingerprint: target.fingerprint } : undefined;
  if (target.receiver || target.note) {
    // Say where the files go when discovery chose it (or was asked and DNS chose instead).
    const others = target.fallbacks ? `; also at ${target.fallbacks.map((f) => hostPort(f.host, f.port)).join(', ')}, tried in turn` : '';
    const line = target.receiver
      ? `ft: sending to ${escapeForDisplay(target.receiver.name)} at ${target.host}:${target.port} (found by discovery${others})`
      : `ft: ${escapeControls(target.note!)}`;
    const { host, port, via, note, fallbacks } = target;
    if (options.json) process.stdout.write(jsonLine('resolved', { ...target.receiver, host, port, via, note, fallbacks }));
    else process.stderr.write(`${line}\n`);
  }
  const view = await createSendView(options.json === true);
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const started = Date.now();
  let connected = false;
  try {
    const report = await send(sources, {
      host: target.host,
      port: target.port,
      fallbacks: target.fallbacks,
      retries: options.retries,
      connectTimeoutMs: options.connectTimeout * 1000,
      idleTimeoutMs: options.idleTimeout * 1000,
      hashCache: options.hashCache ? defaultHashCachePath() : undefined,
      followSymlinks: options.followSymlinks,
      preserveMode: options.preserveMode,
      senderKeyFile: options.senderKey ?? defaultSenderKeyPath(),
      token,
      fingerprint,
      trust: plaintext ? undefined : options.trustNew ? 'new' : askOnTerminal(options.json === true || stream),
      trustFile: plaintext ? undefined : trustFile,
      discovered,
      insecurePlaintext: plaintext,
      limitRate: options.limitRate,
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === 'connected') connected = true;
        view.event(event);
      },
    });
    view.summary(report);
    return exitCodeOf(report.files);
  } catch (error) {
    const results = error instanceof FtError ? (error.details.results as FileResult[] | undefined) : undefined;
    // The batch stopped after it began (retries ran out, the token was refused…): say what was done, and how to go on.
    if (error instanceof FtError && error.code !== 'ABORTED' && results && connected) {
      const bytesSent = results.reduce((sum, r) => sum + r.bytesSent, 0);
      view.stopped({ files: results, bytesSent, durationMs: Date.now() - started, ignored: [] }, error, RESUMABLE.has(error.code));
      return exitCodeFor(error.code);
    }
    view.stop();
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

/** Errors that end a batch which the same command, run again, takes up where it stopped. */
const RESUMABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['CONNECTION_LOST', 'CONNECT_FAILED', 'TIMEOUT', 'BUSY']);

/**
 * The exit code of a batch that ran to its end: of the files that did not arrive, the most
 * telling kind wins: 3 (content did not verify), 4 (refused by the receiver), 5 (connection),
 * 2 (a local path that cannot be sent), then 1 (anything else). The receiver's and the
 * network's problems come before local ones, whose lines already name the path to fix.
 */
export function exitCodeOf(files: FileResult[]): number {
  const codes = new Set(files.filter((f) => f.status === 'refused' || f.status === 'failed').map((f) => exitCodeFor(f.code ?? 'INTERNAL')));
  if (codes.size === 0) return EXIT.OK;
  return [EXIT.VERIFY_FAILED, EXIT.REFUSED, EXIT.CONNECTION, EXIT.USAGE].find((code) => codes.has(code)) ?? EXIT.OTHER;
}
