/**
 * Small helpers shared by the slow fault and load tests (not a test file itself).
 */
import { statSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { freePort } from '../helpers/free-port.js';
import { spawnFt, type FtProcess } from '../helpers/spawn-ft.js';

export const MiB = 1024 * 1024;

export interface Rng {
  readonly seed: number;
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [min, max). */
  between(min: number, max: number): number;
  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number;
}

/**
 * A seeded PRNG (mulberry32). The seed comes from FT_SLOW_SEED when set, else from the clock;
 * it is printed so that a failing run can be repeated exactly.
 */
export function seededRng(label: string): Rng {
  const fromEnv = process.env.FT_SLOW_SEED;
  const seed = fromEnv !== undefined && /^\d+$/.test(fromEnv) ? Number(fromEnv) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
  console.log(`${label}: random seed ${seed} (run again with FT_SLOW_SEED=${seed} to repeat the same choices)`);
  let state = seed;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    seed,
    next,
    between: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor((max - min + 1) * next()),
  };
}

/**
 * Polls the final name every `intervalMs`: it must never exist with a size other than `size`
 * (the receiver places a file only once it is complete and verified).
 */
export function watchFinal(final: string, size: number, intervalMs = 3): { stop(): void; badSizes: number[]; polls: () => number } {
  const badSizes: number[] = [];
  let polls = 0;
  const timer = setInterval(() => {
    polls += 1;
    try {
      const seen = statSync(final).size;
      if (seen !== size) badSizes.push(seen);
    } catch {
      // not there (yet)
    }
  }, intervalMs);
  return { stop: () => clearInterval(timer), badSizes, polls: () => polls };
}

export interface ServeProcess {
  proc: FtProcess;
  port: number;
  dir: string;
  /** Its key's full fingerprint (what `ft send --fingerprint` takes); undefined in plaintext. */
  fingerprint: string | undefined;
  /** JSON events printed so far with this `event` name. */
  events(name: string): Array<Record<string, unknown>>;
}

/**
 * `ft serve DIR --json --no-beacon --host 127.0.0.1 --port P [...args]`, waiting for `listening`.
 * Unlike startFtServe it takes a lifetime (`timeoutMs`, after which it is SIGKILLed), since
 * these tests run far longer than the default 30 s.
 */
export async function startServe(
  dir: string,
  { port, args = [], timeoutMs, env }: { port?: number; args?: string[]; timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<ServeProcess> {
  const listenPort = port ?? (await freePort());
  const proc = spawnFt(['serve', dir, '--port', String(listenPort), '--host', '127.0.0.1', '--no-beacon', '--json', ...args], { timeoutMs, env });
  const listening = await proc.waitForJson((e) => e.event === 'listening', 20_000);
  return {
    proc,
    port: listening.port as number,
    dir: listening.dir as string,
    fingerprint: listening.fingerprint as string | undefined,
    events: (name) => jsonLines(proc.stdout).filter((e) => e.event === name),
  };
}

/** The JSON objects among complete lines of `text` (other lines are ignored). */
export function jsonLines(text: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const lines = text.split('\n');
  lines.pop();
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not JSON
    }
  }
  return out;
}

/** A field of /proc/PID/status in bytes (VmHWM = peak resident set size, VmRSS = current), or undefined. */
export async function procStatusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Keeps the highest VmHWM seen for a process, polling every `intervalMs` until stopped or it exits. */
export function trackPeakRss(pid: number, intervalMs = 100): { stop(): Promise<number | undefined>; peak(): number | undefined } {
  let peak: number | undefined;
  let stopped = false;
  const poll = async () => {
    const value = await procStatusBytes(pid, 'VmHWM');
    if (value !== undefined) peak = Math.max(peak ?? 0, value);
  };
  const loop = (async () => {
    while (!stopped) {
      await poll();
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      await poll();
      stopped = true;
      await loop;
      return peak;
    },
    peak: () => peak,
  };
}

/** Stops `ft serve` with SIGTERM (a clean shutdown) and waits; SIGKILL if it lingers. */
export async function stopServe(proc: FtProcess): Promise<void> {
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await proc.exited;
  clearTimeout(timer);
}

export function mb(bytes: number | undefined): string {
  return bytes === undefined ? 'unknown' : `${(bytes / 1e6).toFixed(1)} MB`;
}

/** True when both files have the same size and bytes (compared 4 MiB at a time, no hashing). */
export async function sameContent(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const [sa, sb] = await Promise.all([ha.stat(), hb.stat()]);
    if (sa.size !== sb.size) return false;
    const ba = Buffer.allocUnsafe(4 * MiB);
    const bb = Buffer.allocUnsafe(4 * MiB);
    for (let position = 0; position < sa.size; ) {
      const want = Math.min(ba.length, sa.size - position);
      const [ra, rb] = await Promise.all([ha.read(ba, 0, want, position), hb.read(bb, 0, want, position)]);
      if (ra.bytesRead !== want || rb.bytesRead !== want) return false;
      if (!ba.subarray(0, want).equals(bb.subarray(0, want))) return false;
      position += want;
    }
    return true;
  } finally {
    await Promise.all([ha.close(), hb.close()]);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
