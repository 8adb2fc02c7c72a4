import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { freePort } from './free-port.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FT_BIN = path.join(REPO_ROOT, 'bin', 'ft.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface FtProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Complete stdout lines so far. */
  lines(): string[];
  /** Complete stdout lines parsed as JSON (throws on a line that is not JSON). */
  json(): Array<Record<string, unknown>>;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<Exit>;
  /** Resolves with the first complete stdout line matching; rejects on exit or timeout. */
  waitForLine(match: RegExp | ((line: string) => boolean), timeoutMs?: number): Promise<string>;
  /** Resolves with the first JSON stdout line for which `match` is true. */
  waitForJson(match: (event: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): void;
}

export interface SpawnFtOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** The process is SIGKILLed after this long, so no test can hang on it. @default 30000 */
  timeoutMs?: number;
  /** Run as this user id (and group id) through setpriv, e.g. 65534 (nobody) when the tests run as root. */
  uid?: number;
  /** Run through this command first, e.g. nsenter into a network namespace. */
  prefix?: string[];
  /** Standard input: another child's output (a pipe, as `producer | ft send -`). @default none */
  stdin?: Readable;
}

const running = new Set<FtProcess>();

let configHome: string | undefined;
/** One config folder per test file (process), removed when it exits. */
export function testConfigHome(): string {
  if (configHome === undefined) {
    configHome = mkdtempSync(path.join(os.tmpdir(), 'ft-config-'));
    const made = configHome;
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  return configHome;
}

/** Runs `node bin/ft.js ...args` the way a user would, collecting its output. */
export function spawnFt(args: string[], options: SpawnFtOptions = {}): FtProcess {
  // A token in the test runner's own environment must not leak in; one given in options.env is meant.
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.FT_TOKEN;
  // The receiver's identity, the sender's key and its pinned receivers go to this test run's own
  // config folder, never the user's (a test's own XDG_CONFIG_HOME wins).
  env.XDG_CONFIG_HOME = testConfigHome();
  Object.assign(env, options.env);
  delete env.NODE_OPTIONS; // vitest's loaders must not leak into the CLI
  const command = [process.execPath, FT_BIN, ...args];
  const asUser = options.uid === undefined ? [] : ['setpriv', `--reuid=${options.uid}`, `--regid=${options.uid}`, '--clear-groups'];
  const [program, ...programArgs] = [...(options.prefix ?? []), ...asUser, ...command] as [string, ...string[]];
  const child = spawn(program, programArgs, {
    cwd: options.cwd ?? REPO_ROOT,
    env,
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
  });
  const killTimer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  let hasExited = false;
  const exited = new Promise<Exit>((resolve) => {
    // 'close' comes after the output streams ended, so stdout/stderr are complete.
    child.once('close', (code, signal) => {
      hasExited = true;
      clearTimeout(killTimer);
      running.delete(proc);
      notify();
      resolve({ code, signal });
    });
    child.once('error', () => {
      hasExited = true;
      clearTimeout(killTimer);
      running.delete(proc);
      notify();
      resolve({ code: null, signal: null });
    });
  });
  const lines = () => {
    const all = stdout.split('\n');
    all.pop(); // the unfinished tail
    return all;
  };
  const waitForLine = (match: RegExp | ((line: string) => boolean), timeoutMs = 10_000) =>
    new Promise<string>((resolve, reject) => {
      const test = typeof match === 'function' ? match : (line: string) => match.test(line);
      const done = (error?: Error, line?: string) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(line!);
      };
      const check = () => {
        const found = lines().find(test);
        if (found !== undefined) return done(undefined, found);
        if (hasExited) done(new Error(`ft ${args.join(' ')} exited before printing ${match}\nstdout: ${stdout}\nstderr: ${stderr}`));
      };
      const timer = setTimeout(
        () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${match} from ft ${args.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`)),
        timeoutMs,
      );
      waiters.add(check);
      check();
    });
  const parse = (line: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  const proc: FtProcess = {
    child,
    pid: child.pid!,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    lines,
    json: () =>
      lines().map((line) => {
        const value = parse(line);
        if (!value) throw new Error(`not a JSON line: ${line}`);
        return value;
      }),
    exited,
    waitForLine,
    async waitForJson(match, timeoutMs) {
      const line = await waitForLine((l) => {
        const value = parse(l);
        return value !== undefined && match(value);
      }, timeoutMs);
      return JSON.parse(line) as Record<string, unknown>;
    },
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (!hasExited) child.kill(signal);
    },
  };
  running.add(proc);
  return proc;
}

/** Kills (SIGKILL) every ft process this file started that is still running, and waits for them. */
export async function killAllFt(): Promise<void> {
  const procs = [...running];
  for (const proc of procs) proc.kill('SIGKILL');
  await Promise.all(procs.map((proc) => proc.exited));
}

/** Runs ft to completion. */
export async function runFt(args: string[], options: SpawnFtOptions = {}): Promise<FtProcess & { exit: Exit }> {
  const proc = spawnFt(args, options);
  const exit = await proc.exited;
  return Object.assign(proc, { exit });
}

export interface FtServe {
  proc: FtProcess;
  port: number;
  /** The folder the receiver reports (resolved). */
  dir: string;
  /** Its key's fingerprint, short form as printed (`XXXX-XXXX-…`); undefined with --insecure-plaintext. */
  fingerprint?: string;
  /** The full form, from the json `listening` event (with `json` only). */
  fullFingerprint?: string;
}

/**
 * Starts `ft serve DIR --port P --host 127.0.0.1 --no-beacon [...args]` on a free port (or `port`) and waits
 * until it listens. With `json`, adds --json and waits for the `listening` line.
 */
export async function startFtServe(
  dir: string,
  { port, args = [], json = false, env }: { port?: number; args?: string[]; json?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<FtServe> {
  const listenPort = port ?? (await freePort());
  // --no-beacon: tests keep every packet on 127.0.0.1 (no LAN discovery traffic).
  const proc = spawnFt(['serve', dir, '--port', String(listenPort), '--host', '127.0.0.1', '--no-beacon', ...args, ...(json ? ['--json'] : [])], {
    env,
  });
  if (json) {
    const listening = await proc.waitForJson((e) => e.event === 'listening');
    return {
      proc,
      port: listening.port as number,
      dir: listening.dir as string,
      fingerprint: listening.shortFingerprint as string | undefined,
      fullFingerprint: listening.fingerprint as string | undefined,
    };
  }
  const line = await proc.waitForLine(/^ft: receiving into /);
  const match = /^ft: receiving into (.*) on 127\.0\.0\.1:(\d+)\b/.exec(line);
  if (!match) throw new Error(`unexpected address line: ${line}`);
  // The fingerprint line follows the address line, except in plaintext (no key).
  const fingerprint = args.includes('--insecure-plaintext') ? undefined : parseFingerprintLine(await proc.waitForLine(/^ft: fingerprint /));
  return { proc, port: Number(match[2]), dir: match[1]!, fingerprint };
}

/** The short fingerprint in `ft serve`'s line `ft: fingerprint XXXX-…-XXXX …`. */
export function parseFingerprintLine(line: string): string {
  const match = /^ft: fingerprint ((?:[A-Z2-7]{4}-){7}[A-Z2-7]{4})\b/.exec(line);
  if (!match) throw new Error(`unexpected fingerprint line: ${line}`);
  return match[1]!;
}

/**
 * A user id other than ours whose permissions the file system enforces, for tests of "not
 * readable" and "not writable": as root (which may read and write anything) that is nobody,
 * through setpriv; otherwise undefined (our own user is bound by permissions already).
 * Returns a string saying why such tests cannot run here, instead, when they cannot.
 */
export function unprivilegedUser(): { uid: number | undefined } | string {
  if (process.getuid?.() !== 0) return { uid: undefined };
  const probe = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(FT_BIN)})`]);
  if (probe.error || probe.status !== 0) return `running as root, and setpriv cannot run ${process.execPath} on ${FT_BIN} as uid 65534`;
  return { uid: 65534 };
}

/** Why ft cannot be run on a pseudo-terminal here, or undefined when it can (`script` from util-linux). */
export function terminalUnavailable(): string | undefined {
  const probe = spawnSync('script', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0 || !/util-linux/.test(probe.stdout)) {
    return 'needs script(1) from util-linux to run ft on a pseudo-terminal (apt-get install util-linux)';
  }
  return undefined;
}

export interface TerminalRun {
  /** Everything the terminal received (standard output and error together, with escape sequences). */
  output: string;
  /** null when ft had not exited after `timeoutMs` and was killed. */
  code: number | null;
  timedOut: boolean;
}

/**
 * Runs `ft ...args` with standard output and error on a pseudo-terminal of `columns` columns,
 * as in a terminal window (through `script`). Killed after `timeoutMs`, so a hang is a result.
 */
export function runFtOnTerminal(
  args: string[],
  {
    columns = 80,
    timeoutMs = 20_000,
    cwd = REPO_ROOT,
    env = {} as NodeJS.ProcessEnv,
    answer,
  }: {
    columns?: number;
    timeoutMs?: number;
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    /** Typed on the terminal's keyboard once the output matches `when` (e.g. "y\r" at a question). */
    answer?: { when: RegExp; text: string };
  } = {},
): Promise<TerminalRun> {
  const quote = (word: string) => `'${word.replace(/'/g, `'\\''`)}'`;
  const command = `stty cols ${columns} rows 40 && exec ${[process.execPath, FT_BIN, ...args].map(quote).join(' ')}`;
  // As spawnFt: identity, sender key and pins in this test run's config folder (a test's own env wins).
  const childEnv: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: testConfigHome(), ...env, TERM: 'xterm-256color' };
  delete childEnv.FT_TOKEN;
  delete childEnv.NODE_OPTIONS;
  // detached: script and the shell are one process group, killed together on a timeout.
  // With an answer to type, script's input stays open (a pipe) until ft exits.
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd, env: childEnv, stdio: [answer ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  let answered = false;
  const typeAnswer = () => {
    if (!answer || answered || !answer.when.test(output)) return;
    answered = true;
    child.stdin!.write(answer.text);
  };
  child.stdin?.on('error', () => {}); // ft may be gone before the answer is typed
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    output += text;
    typeAnswer();
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    output += text;
    typeAnswer();
  });
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      child.stdin?.destroy();
      resolve({ output, code: timedOut ? null : code, timedOut });
    });
  });
}

/** A user mistake or refusal: one `ft: …` line on standard error, and no stack trace. */
export function expectOneCleanErrorLine(stderr: string): void {
  const lines = stderr.trimEnd().split('\n');
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^ft: /);
  expect(stderr).not.toContain('    at ');
}
