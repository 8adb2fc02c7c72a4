// Helpers for bench/run.js: child processes (all tracked and killed at the end), loopback ports,
// listening checks, memory and CPU readings, statistics and formatting.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export class BenchError extends Error {}

/* ---------------------------------------------------------------- child processes */

const children = new Set();

/**
 * Spawns a child in its own process group (so `sh -c` wrappers die with their children) and
 * keeps the last `keep` bytes (default 64 KiB) of its stdout and stderr. `killTree: true` also
 * kills descendants that left the group (sshd puts each connection in a session of its own). Returns a handle with
 * `pid`, `stdout`, `stderr` (getters), `done` once it has exited, and `exited`, a promise of
 * { code, signal } that never rejects.
 */
export function start(name, command, args, options = {}) {
  const keep = options.keep ?? 65536;
  // `wrap`: e.g. a network namespace's `ip netns exec NS` (which execs in place: same pid).
  if (options.wrap) [command, args] = options.wrap(command, args);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const streams = { stdout: { chunks: [], bytes: 0 }, stderr: { chunks: [], bytes: 0 } };
  const text = (key) => {
    const stream = streams[key];
    if (stream.chunks.length > 1) stream.chunks = [Buffer.concat(stream.chunks)];
    return stream.chunks.length ? stream.chunks[0].toString() : '';
  };
  const proc = {
    name,
    child,
    pid: child.pid,
    killTree: options.killTree ?? false,
    done: undefined,
    lineWaiters: [],
    get stdout() {
      return text('stdout');
    },
    get stderr() {
      return text('stderr');
    },
  };
  children.add(proc);
  const collect = (key) => (chunk) => {
    const stream = streams[key];
    stream.chunks.push(chunk);
    stream.bytes += chunk.length;
    while (stream.bytes - stream.chunks[0].length >= keep) stream.bytes -= stream.chunks.shift().length;
    if (key === 'stdout') for (const waiter of proc.lineWaiters) waiter();
  };
  child.stdout.on('data', collect('stdout'));
  child.stderr.on('data', collect('stderr'));
  proc.exited = new Promise((resolve) => {
    child.once('error', (error) => {
      proc.done = { code: null, signal: null, error };
      children.delete(proc);
      resolve(proc.done);
    });
    child.once('close', (code, signal) => {
      proc.done ??= { code, signal };
      children.delete(proc);
      for (const waiter of proc.lineWaiters) waiter();
      resolve(proc.done);
    });
  });
  return proc;
}

/** What a process printed, for error messages. */
export function describeOutput(proc) {
  const parts = [];
  if (proc.stderr.trim()) parts.push(`stderr: ${proc.stderr.trim().slice(-2000)}`);
  if (proc.stdout.trim()) parts.push(`stdout: ${proc.stdout.trim().slice(-2000)}`);
  return parts.length ? `\n  ${parts.join('\n  ')}` : '';
}

function exitText(done) {
  if (done.error) return `could not start (${done.error.message})`;
  return done.signal ? `was killed by ${done.signal}` : `exited with code ${done.code}`;
}

/** Waits for the process to exit; fails on a timeout or a non-zero exit. */
export async function expectSuccess(proc, timeoutMs) {
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  const done = await Promise.race([proc.exited, timeout]);
  clearTimeout(timer);
  if (done === 'timeout') {
    kill(proc);
    throw new BenchError(`${proc.name} did not finish within ${Math.round(timeoutMs / 1000)} s${describeOutput(proc)}`);
  }
  if (done.error || done.code !== 0) throw new BenchError(`${proc.name} ${exitText(done)}${describeOutput(proc)}`);
  return done;
}

/**
 * Waits for a receiver to finish successfully; fails at once (instead of at the timeout) when the
 * sender exits with an error first.
 */
export async function expectTransfer(receiver, sender, timeoutMs) {
  const receiving = expectSuccess(receiver, timeoutMs);
  receiving.catch(() => undefined);
  const senderFailed = sender.exited.then((done) => (done.error || done.code !== 0 ? 'sender' : new Promise(() => undefined)));
  const first = await Promise.race([receiving.then(() => 'receiver'), senderFailed]);
  if (first === 'sender') {
    kill(receiver);
    await receiving.catch(() => undefined);
    await expectSuccess(sender, 1000); // throws, with the sender's output
  }
}

/** Waits until the process prints a stdout line matching `test`; returns that line. */
export async function waitForLine(proc, test, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = proc.stdout.split('\n').find((l) => l.trim() && test(l));
    if (line !== undefined) return line;
    if (proc.done) throw new BenchError(`${proc.name} ${exitText(proc.done)} before it was ready${describeOutput(proc)}`);
    const left = deadline - Date.now();
    if (left <= 0) throw new BenchError(`${proc.name} was not ready within ${timeoutMs / 1000} s${describeOutput(proc)}`);
    await new Promise((resolve) => {
      const timer = setTimeout(done, Math.min(left, 1000));
      function done() {
        clearTimeout(timer);
        proc.lineWaiters = proc.lineWaiters.filter((w) => w !== done);
        resolve();
      }
      proc.lineWaiters.push(done);
    });
  }
}

/** SIGKILLs the process group of a child (it was spawned detached, so the group id is its pid). */
export function kill(proc, signal = 'SIGKILL') {
  if (proc.done) return;
  if (proc.killTree) {
    for (const pid of descendantsOf(proc.pid, processTable())) {
      try {
        process.kill(pid, signal);
      } catch {
        /* already gone */
      }
    }
  }
  try {
    process.kill(-proc.pid, signal);
  } catch {
    try {
      proc.child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** Asks politely (SIGTERM), then SIGKILLs after `graceMs`; resolves once it has exited. */
export async function stop(proc, graceMs = 3000) {
  if (proc.done) return proc.done;
  kill(proc, 'SIGTERM');
  const timer = setTimeout(() => kill(proc, 'SIGKILL'), graceMs);
  const done = await proc.exited;
  clearTimeout(timer);
  return done;
}

/** Kills every child still running; synchronous so it can run from signal and exit handlers. */
export function killAll() {
  for (const proc of children) kill(proc, 'SIGKILL');
}

/* ---------------------------------------------------------------- ports and listening */

const usedPorts = new Set();

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close), never the same one twice per run. */
export async function freePort() {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address();
        server.close(() => resolve(port));
      });
    });
    if (!usedPorts.has(port)) {
      usedPorts.add(port);
      return port;
    }
  }
  throw new BenchError('could not find a free port on 127.0.0.1');
}

/** True when /proc/net/tcp lists a socket in LISTEN state on 127.0.0.1:port (or 0.0.0.0:port). */
function listeningInProc(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const table = fs.readFileSync('/proc/net/tcp', 'utf8');
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    const [address, localPort] = fields[1].split(':');
    if (localPort === hexPort && fields[3] === '0A' && (address === '0100007F' || address === '00000000')) return true;
  }
  return false;
}

function connectOnce(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * True when the network namespace of `pid` has a TCP socket listening on `port` (any address).
 * /proc/PID/net/tcp shows the sockets of that process's namespace, unlike /proc/net/tcp.
 */
function listeningInNamespaceOf(pid, port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of [`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`]) {
    let table;
    try {
      table = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of table.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length >= 4 && fields[1].split(':')[1] === hexPort && fields[3] === '0A') return true;
    }
  }
  return false;
}

const haveProcNetTcp = fs.existsSync('/proc/net/tcp');

/**
 * Waits until something listens on 127.0.0.1:port. On Linux this reads /proc/net/tcp, which does
 * not disturb the server: a probe connection would be taken by a one-shot listener such as
 * `socat TCP-LISTEN` (without fork) as *the* transfer. Elsewhere it poll-connects, but only when
 * `probeSafe` says the server survives a probe; otherwise it just waits a moment. `namespaced`:
 * the server runs in a network namespace of its own; then /proc/PID/net/tcp (its namespace's
 * table) is read instead, for a listener on any address.
 */
export async function waitForListen(proc, port, { timeoutMs = 15000, probeSafe = false, namespaced = false } = {}) {
  const deadline = Date.now() + timeoutMs;
  if (namespaced) {
    for (;;) {
      if (proc.done) throw new BenchError(`${proc.name} ${exitText(proc.done)} before it was listening${describeOutput(proc)}`);
      if (listeningInNamespaceOf(proc.pid, port)) return;
      if (Date.now() > deadline) throw new BenchError(`${proc.name} was not listening on port ${port} within ${timeoutMs / 1000} s${describeOutput(proc)}`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  if (!haveProcNetTcp && !probeSafe) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    return;
  }
  for (;;) {
    if (proc.done) throw new BenchError(`${proc.name} ${exitText(proc.done)} before it was listening${describeOutput(proc)}`);
    if (haveProcNetTcp ? listeningInProc(port) : await connectOnce(port)) return;
    if (Date.now() > deadline) throw new BenchError(`${proc.name} was not listening on 127.0.0.1:${port} within ${timeoutMs / 1000} s${describeOutput(proc)}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/* ---------------------------------------------------------------- memory */

/** Peak resident set size (VmHWM) of a live process in bytes, or undefined when unreadable. */
export function peakRss(pid) {
  try {
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Polls VmHWM of a running process every `everyMs` and keeps the highest reading. */
export function pollPeakRss(proc, everyMs = 5) {
  let peak;
  const read = () => {
    const value = peakRss(proc.pid);
    if (value !== undefined && (peak === undefined || value > peak)) peak = value;
  };
  read();
  const timer = setInterval(read, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}

/* ---------------------------------------------------------------- CPU time */

// How CPU time is read (see also the README's Performance section):
// - A process that exits by itself (every sender, socat, node-copy's receiver) runs under
//   `/usr/bin/time -f '%U %S %M'` (startTimed), whose wait4() rusage covers the process and every
//   descendant it waited for (scp's and rsync's ssh, sh -c's socat and sync).
// - A server that outlives the transfer (ft serve, the rsync daemon, sshd) is read from /proc:
//   utime + stime + cutime + cstime of the process and of its live descendants, once when it is
//   ready and again after the transfer, once every child it forked for the connection has
//   exited and been reaped (cutime/cstime then hold their CPU). That is only complete when each
//   process in the chain waits for its children; watchTreeCpu checks it by polling the tree
//   during the transfer and refuses a reading that is smaller than what it saw the children use.

let clockTicks;
function ticksPerSecond() {
  clockTicks ??= Number(capture('getconf', ['CLK_TCK'])) || 100;
  return clockTicks;
}

/** pid -> { ppid, own, reaped } from /proc/PID/stat; own = utime+stime, reaped = cutime+cstime (ticks). */
export function processTable() {
  const table = new Map();
  let names;
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return table;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let text;
    try {
      text = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // After "pid (comm) ": state ppid ... ; utime is field 14 of stat(5), so fields[14 - 3].
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    table.set(Number(name), {
      ppid: Number(fields[1]),
      own: Number(fields[11]) + Number(fields[12]),
      reaped: Number(fields[13]) + Number(fields[14]),
    });
  }
  return table;
}

/** Every live descendant of pid (children, grandchildren, ...) in a process table. */
export function descendantsOf(pid, table) {
  const children = new Map();
  for (const [child, info] of table) {
    if (!children.has(info.ppid)) children.set(info.ppid, []);
    children.get(info.ppid).push(child);
  }
  const out = [];
  const stack = [...(children.get(pid) ?? [])];
  while (stack.length) {
    const next = stack.pop();
    out.push(next);
    stack.push(...(children.get(next) ?? []));
  }
  return out;
}

/** CPU seconds of a live process and its live descendants, including the children each has reaped; undefined when unreadable. */
export function treeCpuSeconds(pid) {
  const table = processTable();
  if (!table.has(pid)) return undefined;
  let ticks = 0;
  for (const p of [pid, ...descendantsOf(pid, table)]) ticks += table.get(p).own + table.get(p).reaped;
  return ticks / ticksPerSecond();
}

/** Waits until pid has no descendants other than `keep` (pids that were there before). */
async function waitForNoNewDescendants(pid, keep, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (descendantsOf(pid, processTable()).every((p) => keep.has(p))) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Measures the CPU a long-lived server (and every child it forks) spends from now until
 * finish(), which waits until the children forked meanwhile have exited and been reaped
 * (children that were already there keep running and are read live). finish() resolves to
 * { seconds, peakRss } or { seconds: undefined, reason, peakRss } when the reading cannot be
 * trusted; peakRss is the highest VmHWM of the server or of one child seen meanwhile.
 */
export async function watchTreeCpu(pid, everyMs = 100) {
  const before = treeCpuSeconds(pid);
  const seen = new Map(); // descendant pid -> highest utime+stime seen (ticks)
  const start = processTable();
  const already = new Map(descendantsOf(pid, start).map((p) => [p, start.get(p).own])); // counted in `before`
  let peak = peakRss(pid); // the highest VmHWM of the server or any one of its children
  const poll = () => {
    const table = processTable();
    for (const p of descendantsOf(pid, table)) {
      seen.set(p, Math.max(seen.get(p) ?? 0, table.get(p).own));
      peak = Math.max(peak ?? 0, peakRss(p) ?? 0) || undefined;
    }
  };
  const timer = setInterval(poll, everyMs);
  timer.unref(); // a transfer that fails never calls finish()
  return {
    async finish(timeoutMs = 10_000) {
      // Keep polling until the connection's children are gone: they may still be working.
      const gone = await waitForNoNewDescendants(pid, already, timeoutMs);
      clearInterval(timer);
      const peakRssBytes = Math.max(peak ?? 0, peakRss(pid) ?? 0) || undefined;
      const result = (fields) => ({ ...fields, peakRss: peakRssBytes });
      if (before === undefined) return result({ seconds: undefined, reason: 'its /proc entry was unreadable' });
      if (!gone) return result({ seconds: undefined, reason: `its child processes were still running ${timeoutMs / 1000} s after the transfer` });
      const after = treeCpuSeconds(pid);
      if (after === undefined) return result({ seconds: undefined, reason: 'it exited before the end of the transfer' });
      const seconds = after - before;
      const seenTicks = [...seen].reduce((sum, [p, ticks]) => sum + ticks - (already.get(p) ?? 0), 0);
      const seenSeconds = seenTicks / ticksPerSecond();
      // Each seen tick must be in the reading once reaped; allow 2 ticks of rounding per process.
      if (seenSeconds > seconds + (2 * seen.size) / ticksPerSecond()) {
        return result({ seconds: undefined, reason: `its child processes used at least ${seenSeconds.toFixed(2)} s but only ${seconds.toFixed(2)} s came back to it (a child was not reaped by its parent)` });
      }
      return result({ seconds });
    },
  };
}

/**
 * Like start(), under `/usr/bin/time -f '%U %S %M'` when `time` is given; `usage()` then reads
 * { cpuSeconds, maxRss } once the process has exited (undefined without time or on failure).
 */
export function startTimed(time, timeFile, name, command, args, options = {}) {
  if (!time) return Object.assign(start(name, command, args, options), { usage: () => undefined });
  const proc = start(name, time, ['-f', '%U %S %M', '-o', timeFile, command, ...args], options);
  proc.usage = () => {
    let text;
    try {
      text = fs.readFileSync(timeFile, 'utf8');
    } catch {
      return undefined;
    }
    // time writes "Command exited with non-zero status N" first when it did; the numbers come last.
    const line = text.trim().split('\n').filter((l) => /^\d+(\.\d+)? \d+(\.\d+)? \d+$/.test(l.trim())).pop();
    if (!line) return undefined;
    const [user, system, kb] = line.trim().split(' ').map(Number);
    return { cpuSeconds: user + system, maxRss: kb * 1024 };
  };
  return proc;
}

/* ---------------------------------------------------------------- machine load */

function cpuTimes() {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]; // "cpu  user nice system idle iowait irq softirq steal ..."
  const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const idle = values[3] + values[4];
  return { idle, total: values.reduce((a, b) => a + b, 0) };
}

/**
 * Share of all CPUs busy with other work over `ms` (0..1), from /proc/stat; undefined when
 * unavailable. The load average lags by minutes, so a previous benchmark run would show in it.
 */
export async function cpuBusy(ms = 1000) {
  try {
    const a = cpuTimes();
    await new Promise((resolve) => setTimeout(resolve, ms));
    const b = cpuTimes();
    const total = b.total - a.total;
    return total > 0 ? 1 - (b.idle - a.idle) / total : undefined;
  } catch {
    return undefined;
  }
}

/* ---------------------------------------------------------------- tools and files */

/** Absolute path of an executable on PATH (or on `searchPath`), or undefined. */
export function which(command, searchPath = process.env.PATH ?? '') {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Runs a short command synchronously; returns trimmed stdout or undefined on failure. */
export function capture(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 10000 });
  if (result.status !== 0 || result.error) return undefined;
  return `${result.stdout}`.trim();
}

/** All regular files under `dir` as relative paths (sorted), skipping names starting with '.ft-'. */
export function listFiles(dir) {
  const out = [];
  const walk = (relative) => {
    for (const entry of fs.readdirSync(path.join(dir, relative), { withFileTypes: true })) {
      const rel = relative ? path.join(relative, entry.name) : entry.name;
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.ft-')) walk(rel);
      } else if (entry.isFile()) out.push(rel);
    }
  };
  walk('');
  return out.sort();
}

/* ---------------------------------------------------------------- numbers */

export function median(values) {
  const sorted = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const UNITS = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `4096`, `4k`, `256M`, `1G` (binary units, as ft's own --max-file-size). */
export function parseSize(text) {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(String(text).trim());
  if (!match) throw new BenchError(`expected a size such as 4k, 256M or 1G, got "${text}"`);
  const bytes = Math.floor(Number(match[1]) * UNITS[match[2].toLowerCase()]);
  if (bytes < 1) throw new BenchError(`size must be at least 1 byte, got "${text}"`);
  return bytes;
}

// The same units as the ft command prints (npm run bench builds dist/ first).
export { formatBytes } from '../dist/cli/format.js';

export { fmt } from './summary.js';
