#!/usr/bin/env node
// Benchmark harness for ft (not a test): ft against plain copies on loopback.
//
//   npm run bench                      # build, then the full run (1 GiB, 3 rounds, 10,000 small files)
//   node bench/run.js --quick          # 256 MiB, 1 round, 2,000 small files
//   node bench/run.js --help           # all options
//
// Everything runs on 127.0.0.1. Work files live in a temporary folder that is removed at the
// end (also on Ctrl-C), and every child process is killed. Progress goes to stderr; the result
// (a Markdown table, or JSON with --json) goes to stdout.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  BenchError,
  capture,
  cpuBusy,
  describeOutput,
  expectSuccess,
  expectTransfer,
  fmt,
  formatBytes,
  freePort,
  killAll,
  listFiles,
  median,
  parseSize,
  peakRss,
  pollPeakRss,
  start,
  stop,
  waitForLine,
  waitForListen,
  which,
} from './lib.js';

const ROOT = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const FT = path.join(ROOT, 'bin', 'ft.js');
const FT_DIST = path.join(ROOT, 'dist', 'cli', 'main.js');
const NODE_COPY = path.join(ROOT, 'bench', 'node-copy.js');
const NODE = process.execPath;
const LATENCY_TARGET_MS = 150;
const SOCAT_BLOCK = '131072';
/** Warn when more than this share of the CPU time is in use before the benchmark starts. */
const BUSY_WARNING = 0.25;

const HELP = `usage: node bench/run.js [options]      (npm run bench -- [options] builds first)

Benchmarks ft on 127.0.0.1 against a plain Node socket copy, socat, socat+fsync and an rsync
daemon (with and without --fsync), alternating the tools round by round and reporting medians.

  --rounds N          rounds for the large-file and small-files parts (default 3)
  --size SIZE         large file size, binary units: 256M, 1G (default 1G)
  --small-count N     number of small files (default 10000)
  --small-size SIZE   size of each small file (default 4k)
  --latency-runs N    timed runs of "ft send small.txt" (default 10)
  --only PARTS        large, small, latency or a comma list (default: all)
  --quick             256M, 1 round, 2000 small files (explicit options still win)
  --dir DIR           create the work folder under DIR (an existing folder) instead of ${os.tmpdir()}
  --json              print the results as JSON instead of Markdown
  -h, --help          this help
`;

const log = (text) => process.stderr.write(`${text}\n`);

/* ================================================================ options */

function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        rounds: { type: 'string' },
        size: { type: 'string' },
        'small-count': { type: 'string' },
        'small-size': { type: 'string' },
        'latency-runs': { type: 'string' },
        only: { type: 'string' },
        quick: { type: 'boolean', default: false },
        dir: { type: 'string' },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new BenchError(`${error.message}\n\n${HELP}`);
  }
  const v = parsed.values;
  if (v.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const count = (name, text, min) => {
    if (!/^\d+$/.test(text) || Number(text) < min) throw new BenchError(`--${name} expects a whole number >= ${min}, got "${text}"`);
    return Number(text);
  };
  const parts = (v.only ?? 'large,small,latency').split(',').map((p) => p.trim()).filter(Boolean);
  for (const part of parts) {
    if (!['large', 'small', 'latency'].includes(part)) throw new BenchError(`--only expects large, small or latency (or a comma list), got "${part}"`);
  }
  return {
    rounds: count('rounds', v.rounds ?? (v.quick ? '1' : '3'), 1),
    size: parseSize(v.size ?? (v.quick ? '256M' : '1G')),
    smallCount: count('small-count', v['small-count'] ?? (v.quick ? '2000' : '10000'), 1),
    smallSize: parseSize(v['small-size'] ?? '4k'),
    latencyRuns: count('latency-runs', v['latency-runs'] ?? '10', 1),
    parts: new Set(parts),
    quick: v.quick,
    dir: v.dir,
    json: v.json,
  };
}

/* ================================================================ environment */

function machineInfo() {
  const cpus = os.cpus();
  return {
    nproc: Number(capture('nproc', [])) || os.availableParallelism?.() || cpus.length,
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    loadAverage: os.loadavg().map((x) => Number(x.toFixed(2))),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    arch: os.arch(),
  };
}

function findTools() {
  const socat = which('socat');
  const rsync = which('rsync');
  const time = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
  return {
    socat,
    socatVersion: socat ? /socat version (\S+)/.exec(capture(socat, ['-V']) ?? '')?.[1] : undefined,
    rsync,
    rsyncVersion: rsync ? /rsync\s+version\s+(\S+)/.exec(capture(rsync, ['--version']) ?? '')?.[1] : undefined,
    rsyncXxh128: rsync ? /\bxxh128\b/.test(capture(rsync, ['--version']) ?? '') : false,
    rsyncFsync: rsync ? /--fsync\b/.test(capture(rsync, ['--help']) ?? '') : false,
    sync: which('sync'),
    cmp: which('cmp'),
    time: time && capture(time, ['-f', '%M', 'true']) !== undefined ? time : undefined,
  };
}

/* ================================================================ work folder and cleanup */

let workDir;
let cleanedUp = false;

/** Synchronous so it also works from signal and exit handlers. */
function cleanupSync() {
  if (cleanedUp) return;
  cleanedUp = true;
  killAll();
  if (workDir) {
    try {
      fs.rmSync(workDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch (error) {
      log(`bench: could not remove ${workDir}: ${error.message}`);
    }
  }
}

function installCleanup() {
  process.on('exit', cleanupSync);
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(signal, () => {
      log(`\nbench: ${signal}; stopping child processes and removing ${workDir ?? 'the work folder'}`);
      cleanupSync();
      process.exit(code);
    });
  }
}

function makeWorkDir(base) {
  const parent = path.resolve(base ?? os.tmpdir());
  if (!fs.statSync(parent, { throwIfNoEntry: false })?.isDirectory()) throw new BenchError(`--dir ${parent} is not an existing folder`);
  workDir = fs.mkdtempSync(path.join(parent, 'ft-bench-'));
  return workDir;
}

function checkFreeSpace(dir, needed) {
  if (!fs.statfsSync) return;
  const stats = fs.statfsSync(dir);
  const free = stats.bavail * stats.bsize;
  if (free < needed) {
    throw new BenchError(`not enough free space in ${dir}: ${formatBytes(free)} free, about ${formatBytes(needed)} needed (try --size or --dir)`);
  }
}

/* ================================================================ files */

async function writeRandomFile(file, size) {
  const handle = await fs.promises.open(file, 'w');
  try {
    const block = Buffer.allocUnsafe(Math.min(size, 16 * 1024 * 1024));
    for (let written = 0; written < size; ) {
      const length = Math.min(block.length, size - written);
      crypto.randomFillSync(block, 0, length);
      await handle.write(block, 0, length, written);
      written += length;
    }
  } finally {
    await handle.close();
  }
}

/**
 * Puts files in the page cache before the first round. Written back first, then read twice:
 * the first read of freshly written pages was measured 2-3x slower than later ones, which
 * penalised whichever tool ran first in round 1.
 */
function readThrough(files, tools) {
  settle(tools);
  const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (const file of [...files, ...files]) {
    const fd = fs.openSync(file, 'r');
    try {
      while (fs.readSync(fd, buffer, 0, buffer.length, null) > 0);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function sameBytesNode(a, b) {
  const size = fs.statSync(a).size;
  if (fs.statSync(b).size !== size) return false;
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.allocUnsafe(4 * 1024 * 1024);
    const bb = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (let at = 0; at < size; ) {
      const n = fs.readSync(fa, ba, 0, ba.length, at);
      const m = fs.readSync(fb, bb, 0, bb.length, at);
      if (n !== m || n === 0 || !ba.subarray(0, n).equals(bb.subarray(0, m))) return false;
      at += n;
    }
    return true;
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** Byte-for-byte comparison with cmp (or in Node when cmp is missing); outside timed regions. */
async function sameBytes(tools, a, b) {
  if (!tools.cmp) return sameBytesNode(a, b);
  const proc = start('cmp', tools.cmp, ['-s', a, b]);
  const done = await proc.exited;
  if (done.code === 0) return true;
  if (done.code === 1) return false;
  throw new BenchError(`cmp ${a} ${b} failed${describeOutput(proc)}`);
}

/**
 * The contenders in a different order each round, so that none always runs first: on this VM a
 * proactive reclaimer (DAMON) evicts page-cache pages between runs, and the first run of a round
 * pays most often for reading them back.
 */
function rotated(list, by) {
  const start = by % list.length;
  return [...list.slice(start), ...list.slice(0, start)];
}

/** Flushes the work folder's file system between runs so one tool's dirty pages do not slow the next. */
function settle(tools) {
  if (tools.sync) capture(tools.sync, ['-f', workDir]);
}

function elapsedSeconds(t0) {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function transferTimeoutMs(bytes) {
  return Math.max(120_000, (bytes / 5e6) * 1000); // never slower than 5 MB/s
}

/* ================================================================ the tools */

/** Extra `ft serve` flags: no LAN discovery beacons when this build has them (traffic stays on loopback). */
let serveExtraArgs;
function ftServeExtraArgs() {
  serveExtraArgs ??= /--no-beacon\b/.test(capture(NODE, [FT, 'serve', '--help']) ?? '') ? ['--no-beacon'] : [];
  return serveExtraArgs;
}

async function startFtServe(inbox) {
  const port = await freePort();
  const args = [FT, 'serve', inbox, '--port', String(port), '--host', '127.0.0.1', ...ftServeExtraArgs(), '--json'];
  const serve = start('ft serve', NODE, args);
  await waitForLine(serve, (line) => {
    try {
      return JSON.parse(line).event === 'listening';
    } catch {
      return false;
    }
  });
  return { serve, port };
}

/** Runs `ft send` (under /usr/bin/time -f %M when available, for the peak RSS). */
async function ftSend(tools, paths, port, scratch, timeoutMs) {
  // --no-hash-cache: every round measures a first send, which hashes each file (a large one at rest while sending it).
  const args = [FT, 'send', ...paths, '--to', `127.0.0.1:${port}`, '--json', '--no-hash-cache'];
  const timeFile = path.join(scratch, 'ft-send.time');
  const t0 = process.hrtime.bigint();
  // Keep enough output for the summary line, which lists every file.
  const keep = 64 * 1024 * 1024;
  const send = tools.time ? start('ft send', tools.time, ['-f', '%M', '-o', timeFile, NODE, ...args], { keep }) : start('ft send', NODE, args, { keep });
  const poller = tools.time ? undefined : pollPeakRss(send);
  try {
    await expectSuccess(send, timeoutMs);
  } finally {
    poller?.stop();
  }
  const seconds = elapsedSeconds(t0);
  let senderPeak = poller?.stop();
  if (tools.time) {
    const kb = fs.readFileSync(timeFile, 'utf8').trim().split('\n').filter((l) => /^\d+$/.test(l.trim())).pop();
    senderPeak = kb ? Number(kb) * 1024 : undefined;
  }
  let internalMs;
  for (const line of send.stdout.split('\n')) {
    try {
      const event = JSON.parse(line);
      if (event.event === 'summary') internalMs = event.durationMs;
    } catch {
      /* not JSON */
    }
  }
  return { seconds, senderPeak, internalMs };
}

function rsyncConf(outDir, dest) {
  const conf = path.join(outDir, 'rsyncd.conf');
  const root = process.getuid?.() === 0;
  fs.writeFileSync(
    conf,
    [
      'use chroot = no',
      'reverse lookup = no',
      `log file = ${path.join(outDir, 'rsyncd.log')}`,
      '[bench]',
      `  path = ${dest}`,
      '  read only = no',
      '  use chroot = no',
      // A root daemon would otherwise switch to "nobody", who cannot write to our folder.
      ...(root ? ['  uid = 0', '  gid = 0'] : []),
      '',
    ].join('\n'),
  );
  return conf;
}

async function startRsyncDaemon(tools, outDir, dest) {
  const port = await freePort();
  const conf = rsyncConf(outDir, dest);
  const daemon = start('rsync daemon', tools.rsync, ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1']);
  await waitForListen(daemon, port, { probeSafe: true });
  return { daemon, port };
}

function rsyncClientArgs(tools, source, port, fsync) {
  const checksum = tools.rsyncXxh128 ? ['--checksum-choice=xxh128'] : [];
  return ['-a', '--whole-file', ...checksum, ...(fsync ? ['--fsync'] : []), source, `rsync://127.0.0.1:${port}/bench/`];
}

/** rsync and, where it has --fsync (3.2.4 and later), rsync+fsync: a contender each. */
function rsyncContenders(tools, run) {
  if (!tools.rsync) return [];
  const list = [{ id: 'rsync', label: 'rsync', run: run(false) }];
  if (tools.rsyncFsync) list.push({ id: 'rsync+fsync', label: 'rsync+fsync', run: run(true) });
  return list;
}

/** Large-file contenders: each run() returns { seconds, file, ...extras } and leaves nothing running. */
function largeContenders(tools) {
  const list = [];
  list.push({
    id: 'ft',
    label: 'ft',
    async run({ src, outDir, bytes }) {
      const inbox = path.join(outDir, 'inbox');
      const { serve, port } = await startFtServe(inbox);
      try {
        const sent = await ftSend(tools, [src], port, outDir, transferTimeoutMs(bytes));
        const receiverPeak = peakRss(serve.pid);
        return { ...sent, receiverPeak, file: path.join(inbox, path.basename(src)) };
      } finally {
        await stop(serve);
      }
    },
  });
  list.push({
    id: 'node-copy',
    label: 'node-copy',
    async run({ src, outDir, bytes }) {
      const port = await freePort();
      const file = path.join(outDir, path.basename(src));
      const receiver = start('node-copy receiver', NODE, [NODE_COPY, 'receive', String(port), file]);
      try {
        await waitForLine(receiver, (line) => line.trim() === 'listening');
        const t0 = process.hrtime.bigint();
        const sender = start('node-copy sender', NODE, [NODE_COPY, 'send', String(port), src]);
        await expectTransfer(receiver, sender, transferTimeoutMs(bytes));
        const seconds = elapsedSeconds(t0);
        await expectSuccess(sender, 10_000);
        return { seconds, file };
      } finally {
        await stop(receiver);
      }
    },
  });
  const socatRun = (fsync) => async ({ src, outDir, bytes }) => {
    const port = await freePort();
    const name = path.basename(src);
    const listen = `TCP-LISTEN:${port},reuseaddr,bind=127.0.0.1`;
    // Relative names (cwd) so no path needs socat address escaping.
    const receiver = fsync
      ? start('socat+fsync receiver', 'sh', ['-c', `"$0" -b${SOCAT_BLOCK} -u ${listen} OPEN:${name},creat,trunc && "$1" ${name} .`, tools.socat, tools.sync], { cwd: outDir })
      : start('socat receiver', tools.socat, [`-b${SOCAT_BLOCK}`, '-u', listen, `OPEN:${name},creat,trunc`], { cwd: outDir });
    try {
      await waitForListen(receiver, port);
      const t0 = process.hrtime.bigint();
      const sender = start('socat sender', tools.socat, [`-b${SOCAT_BLOCK}`, '-u', `OPEN:${name}`, `TCP:127.0.0.1:${port}`], { cwd: path.dirname(src) });
      await expectTransfer(receiver, sender, transferTimeoutMs(bytes));
      const seconds = elapsedSeconds(t0);
      await expectSuccess(sender, 10_000);
      return { seconds, file: path.join(outDir, name) };
    } finally {
      await stop(receiver);
    }
  };
  if (tools.socat) {
    list.push({ id: 'socat', label: 'socat', run: socatRun(false) });
    if (tools.sync) list.push({ id: 'socat+fsync', label: 'socat+fsync', run: socatRun(true) });
  }
  list.push(
    ...rsyncContenders(tools, (fsync) => async ({ src, outDir, bytes }) => {
      const dest = path.join(outDir, 'dest');
      fs.mkdirSync(dest);
      const { daemon, port } = await startRsyncDaemon(tools, outDir, dest);
      try {
        const t0 = process.hrtime.bigint();
        const client = start('rsync client', tools.rsync, rsyncClientArgs(tools, src, port, fsync));
        await expectSuccess(client, transferTimeoutMs(bytes));
        const seconds = elapsedSeconds(t0);
        return { seconds, file: path.join(dest, path.basename(src)) };
      } finally {
        await stop(daemon);
      }
    }),
  );
  return list;
}

const COLUMNS = ['ft', 'node-copy', 'socat', 'socat+fsync', 'rsync', 'rsync+fsync'];
const SMALL_COLUMNS = ['ft', 'rsync', 'rsync+fsync'];

function skippedNotes(tools) {
  const notes = {};
  if (!tools.socat) {
    notes.socat = 'socat not installed (apt-get install socat)';
    notes['socat+fsync'] = notes.socat;
  }
  else if (!tools.sync) notes['socat+fsync'] = 'coreutils sync not found';
  if (!tools.rsync) notes.rsync = 'rsync not installed (apt-get install rsync)';
  if (!tools.rsyncFsync) notes['rsync+fsync'] = notes.rsync ?? 'this rsync has no --fsync (3.2.4 and later)';
  return notes;
}

/* ================================================================ part 1: one large file */

async function benchLarge(opts, tools) {
  const srcDir = path.join(workDir, 'large-src');
  fs.mkdirSync(srcDir);
  const src = path.join(srcDir, 'big.bin');
  log(`large: writing ${formatBytes(opts.size)} of random data`);
  await writeRandomFile(src, opts.size);
  // A file at rest, as one sent from disk usually is: ft hashes a file written within the last
  // minute before sending it (it may be changing still), and any other while sending it.
  const anHourAgo = new Date(Date.now() - 3600_000);
  fs.utimesSync(src, anHourAgo, anHourAgo);
  readThrough([src], tools);
  const contenders = largeContenders(tools);
  const runs = Object.fromEntries(contenders.map((c) => [c.id, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    for (const contender of rotated(contenders, round - 1)) {
      const outDir = path.join(workDir, `large-${contender.id.replace(/\W/g, '_')}-${round}`);
      fs.mkdirSync(outDir);
      settle(tools);
      const result = await contender.run({ src, outDir, bytes: opts.size });
      let size;
      try {
        size = fs.statSync(result.file).size;
      } catch {
        throw new BenchError(`${contender.label}: ${result.file} was not created`);
      }
      if (size !== opts.size) throw new BenchError(`${contender.label}: received ${size} bytes, expected ${opts.size}`);
      if (!(await sameBytes(tools, src, result.file))) throw new BenchError(`${contender.label}: the received file differs from the original`);
      fs.rmSync(outDir, { recursive: true, force: true });
      const mbps = opts.size / 1e6 / result.seconds;
      runs[contender.id].push({ ...result, file: undefined, mbps });
      const extra = result.internalMs !== undefined ? `, ft's own timer ${(result.internalMs / 1000).toFixed(2)} s` : '';
      log(`large: round ${round}/${opts.rounds} ${contender.label.padEnd(11)} ${fmt(mbps).padStart(6)} MB/s (${result.seconds.toFixed(2)} s${extra})`);
    }
  }
  fs.rmSync(srcDir, { recursive: true, force: true });
  const results = {};
  for (const [id, list] of Object.entries(runs)) {
    results[id] = {
      runs: list,
      seconds: median(list.map((r) => r.seconds)),
      mbps: median(list.map((r) => r.mbps)),
    };
  }
  for (const result of Object.values(results)) result.ftRatio = results.ft.mbps / result.mbps;
  const ft = runs.ft;
  return {
    bytes: opts.size,
    rounds: opts.rounds,
    tools: results,
    memory: {
      receiverPeak: Math.max(...ft.map((r) => r.receiverPeak ?? 0)) || undefined,
      senderPeak: Math.max(...ft.map((r) => r.senderPeak ?? 0)) || undefined,
      senderMethod: tools.time ? '/usr/bin/time -f %M' : 'polling /proc/PID/status VmHWM',
    },
  };
}

/* ================================================================ part 2: many small files */

function makeSmallFiles(dir, count, size) {
  fs.mkdirSync(dir, { recursive: true });
  const width = String(count - 1).length;
  const batch = 1024;
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    const data = crypto.randomBytes(n * size);
    for (let j = 0; j < n; j++) {
      fs.writeFileSync(path.join(dir, `f${String(i + j).padStart(width, '0')}.bin`), data.subarray(j * size, (j + 1) * size));
    }
  }
}

function checkSmallCopy(label, srcDir, destDir) {
  const expected = listFiles(srcDir);
  let got;
  try {
    got = listFiles(destDir);
  } catch {
    throw new BenchError(`${label}: ${destDir} was not created`);
  }
  if (got.length !== expected.length) throw new BenchError(`${label}: received ${got.length} files, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    if (got[i] !== expected[i]) throw new BenchError(`${label}: unexpected file ${got[i]} (expected ${expected[i]})`);
    if (!fs.readFileSync(path.join(srcDir, expected[i])).equals(fs.readFileSync(path.join(destDir, got[i])))) {
      throw new BenchError(`${label}: ${got[i]} differs from the original`);
    }
  }
}

async function benchSmall(opts, tools) {
  const srcParent = path.join(workDir, 'small-src');
  const srcDir = path.join(srcParent, 'files');
  log(`small: writing ${opts.smallCount} files of ${formatBytes(opts.smallSize)}`);
  makeSmallFiles(srcDir, opts.smallCount, opts.smallSize);
  readThrough(listFiles(srcDir).map((f) => path.join(srcDir, f)), tools);
  const totalBytes = opts.smallCount * opts.smallSize;
  const timeoutMs = Math.max(transferTimeoutMs(totalBytes), opts.smallCount * 50);
  const contenders = [
    {
      id: 'ft',
      label: 'ft',
      async run(outDir) {
        const inbox = path.join(outDir, 'inbox');
        const { serve, port } = await startFtServe(inbox);
        try {
          const sent = await ftSend(tools, [srcDir], port, outDir, timeoutMs);
          return { ...sent, receiverPeak: peakRss(serve.pid), dest: path.join(inbox, 'files') };
        } finally {
          await stop(serve);
        }
      },
    },
  ];
  contenders.push(
    ...rsyncContenders(tools, (fsync) => async (outDir) => {
      const dest = path.join(outDir, 'dest');
      fs.mkdirSync(dest);
      const { daemon, port } = await startRsyncDaemon(tools, outDir, dest);
      try {
        const t0 = process.hrtime.bigint();
        const client = start('rsync client', tools.rsync, rsyncClientArgs(tools, srcDir, port, fsync));
        await expectSuccess(client, timeoutMs);
        return { seconds: elapsedSeconds(t0), dest: path.join(dest, 'files') };
      } finally {
        await stop(daemon);
      }
    }),
  );
  const runs = Object.fromEntries(contenders.map((c) => [c.id, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    for (const contender of rotated(contenders, round - 1)) {
      const outDir = path.join(workDir, `small-${contender.id}-${round}`);
      fs.mkdirSync(outDir);
      settle(tools);
      const result = await contender.run(outDir);
      checkSmallCopy(contender.label, srcDir, result.dest);
      fs.rmSync(outDir, { recursive: true, force: true });
      const filesPerSecond = opts.smallCount / result.seconds;
      runs[contender.id].push({ ...result, dest: undefined, filesPerSecond, mbps: totalBytes / 1e6 / result.seconds });
      log(`small: round ${round}/${opts.rounds} ${contender.label.padEnd(11)} ${fmt(filesPerSecond).padStart(6)} files/s (${result.seconds.toFixed(2)} s)`);
    }
  }
  fs.rmSync(srcParent, { recursive: true, force: true });
  const results = {};
  for (const [id, list] of Object.entries(runs)) {
    results[id] = {
      runs: list,
      seconds: median(list.map((r) => r.seconds)),
      filesPerSecond: median(list.map((r) => r.filesPerSecond)),
      mbps: median(list.map((r) => r.mbps)),
    };
  }
  for (const result of Object.values(results)) result.ftRatio = results.ft.filesPerSecond / result.filesPerSecond;
  return {
    count: opts.smallCount,
    size: opts.smallSize,
    rounds: opts.rounds,
    tools: results,
    memory: {
      receiverPeak: Math.max(...runs.ft.map((r) => r.receiverPeak ?? 0)) || undefined,
      senderPeak: Math.max(...runs.ft.map((r) => r.senderPeak ?? 0)) || undefined,
    },
  };
}

/* ================================================================ part 3: one small file, end to end */

async function timeCommand(name, args, runs) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await expectSuccess(start(name, NODE, args), 30_000);
    times.push(elapsedSeconds(t0) * 1000);
  }
  return times;
}

async function benchLatency(opts) {
  const dir = path.join(workDir, 'latency');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'small.txt');
  fs.writeFileSync(file, 'a small file for the ft latency benchmark\n'.repeat(5));
  const bytes = fs.statSync(file).size;
  const inbox = path.join(dir, 'inbox');
  const { serve, port } = await startFtServe(inbox);
  const times = [];
  try {
    const args = [FT, 'send', file, '--to', `127.0.0.1:${port}`];
    for (let i = 0; i <= opts.latencyRuns; i++) {
      const t0 = process.hrtime.bigint();
      await expectSuccess(start('ft send small.txt', NODE, args), 30_000);
      const ms = elapsedSeconds(t0) * 1000;
      const received = path.join(inbox, 'small.txt');
      if (!fs.existsSync(received) || fs.statSync(received).size !== bytes) throw new BenchError(`ft send small.txt: ${received} missing or wrong size`);
      fs.rmSync(received); // so the next run really sends instead of finding it already there
      if (i > 0) times.push(ms); // run 0 warms the disk cache and is not counted
      log(`latency: ${i === 0 ? 'warm-up' : `run ${i}/${opts.latencyRuns}`} ${ms.toFixed(1)} ms`);
    }
  } finally {
    await stop(serve);
  }
  const nodeStartup = await timeCommand('node -e 0', ['-e', '0'], opts.latencyRuns);
  const ftVersion = await timeCommand('ft --version', [FT, '--version'], opts.latencyRuns);
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    bytes,
    runs: times,
    medianMs: median(times),
    minMs: Math.min(...times),
    maxMs: Math.max(...times),
    targetMs: LATENCY_TARGET_MS,
    nodeStartupMs: median(nodeStartup),
    ftVersionMs: median(ftVersion),
  };
}

/* ================================================================ report */

function markdown(results, opts) {
  const lines = [];
  const notes = results.skipped;
  const row = (cells) => lines.push(`| ${cells.join(' | ')} |`);
  const cell = (id, value, measured = true) => (notes[id] && measured ? 'skipped' : value);
  const rounds = `median of ${opts.rounds}`;
  row(['what', ...COLUMNS]);
  row(['---', ...COLUMNS.map(() => '---:')]);
  if (results.large) {
    const { tools: t, bytes } = results.large;
    const size = formatBytes(bytes);
    row([`${size} file, MB/s (${rounds})`, ...COLUMNS.map((id) => cell(id, fmt(t[id]?.mbps)))]);
    row([`${size} file, seconds`, ...COLUMNS.map((id) => cell(id, t[id] ? t[id].seconds.toFixed(2) : '–'))]);
    row(['ratio ft / tool (MB/s)', ...COLUMNS.map((id) => cell(id, t[id] ? t[id].ftRatio.toFixed(2) : '–'))]);
  }
  if (results.small) {
    const { tools: t, count, size } = results.small;
    const what = `${count.toLocaleString('en-US')} × ${formatBytes(size)} files`;
    row([`${what}, files/s (${rounds})`, ...COLUMNS.map((id) => cell(id, t[id] ? fmt(t[id].filesPerSecond) : '–', SMALL_COLUMNS.includes(id)))]);
    row([`${what}, seconds`, ...COLUMNS.map((id) => cell(id, t[id] ? t[id].seconds.toFixed(2) : '–', SMALL_COLUMNS.includes(id)))]);
    row(['ratio ft / tool (files/s)', ...COLUMNS.map((id) => cell(id, t[id] ? t[id].ftRatio.toFixed(2) : '–', SMALL_COLUMNS.includes(id)))]);
  }
  lines.push('');

  const extra = [];
  if (results.latency) {
    const l = results.latency;
    const verdict = l.medianMs < l.targetMs ? 'meets' : 'MISSES';
    extra.push([`\`ft send\` of one ${l.bytes} B file, start to exit (median of ${l.runs.length})`, `${l.medianMs.toFixed(0)} ms (min ${l.minMs.toFixed(0)}, max ${l.maxMs.toFixed(0)}; ${verdict} the < ${l.targetMs} ms target)`]);
    extra.push(['for reference: `node -e 0` / `ft --version`', `${l.nodeStartupMs.toFixed(0)} ms / ${l.ftVersionMs.toFixed(0)} ms`]);
  }
  const mem = (value) => (value ? `${(value / 1024 ** 2).toFixed(0)} MiB` : 'n/a');
  if (results.large) {
    const m = results.large.memory;
    extra.push([`ft receiver peak RSS, ${formatBytes(results.large.bytes)} file`, mem(m.receiverPeak)]);
    extra.push([`ft sender peak RSS, ${formatBytes(results.large.bytes)} file`, mem(m.senderPeak)]);
  }
  if (results.small) {
    const m = results.small.memory;
    extra.push([`ft receiver / sender peak RSS, ${results.small.count.toLocaleString('en-US')} small files`, `${mem(m.receiverPeak)} / ${mem(m.senderPeak)}`]);
  }
  if (extra.length) {
    lines.push('| ft | value |', '| --- | --- |');
    for (const [what, value] of extra) lines.push(`| ${what} | ${value} |`);
    lines.push('');
  }

  const perRound = (part, key, unit) => {
    for (const [id, r] of Object.entries(part.tools)) lines.push(`- ${id}: ${r.runs.map((x) => fmt(x[key])).join(', ')} ${unit}`);
  };
  if (results.large && opts.rounds > 1) {
    lines.push('Per round, large file:');
    perRound(results.large, 'mbps', 'MB/s');
  }
  if (results.small && opts.rounds > 1) {
    lines.push('Per round, small files:');
    perRound(results.small, 'filesPerSecond', 'files/s');
  }
  if (opts.rounds > 1 && (results.large || results.small)) lines.push('');

  const m = results.machine;
  const versions = [`node ${m.node}`];
  if (results.versions.socat) versions.push(`socat ${results.versions.socat}`);
  if (results.versions.rsync) versions.push(`rsync ${results.versions.rsync}`);
  const busy = results.busyBefore === undefined ? '' : `${(results.busyBefore * 100).toFixed(0)}% CPU in use before the run, `;
  const load = `${busy}load average ${m.loadAverage.join(' ')} at the start`;
  if (results.busyBefore > BUSY_WARNING) {
    lines.push(`Warning: ${(results.busyBefore * 100).toFixed(0)}% of the CPU time was in use by other work just before the run; treat these figures as noisy.`, '');
  }
  lines.push(`Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memoryGiB} GiB RAM, ${m.kernel} ${m.arch}; ${versions.join(', ')}; ${load}. Date: ${results.date}.`);
  lines.push('');
  lines.push(
    'All traffic on 127.0.0.1, source files in the page cache, tools alternated round by round, each round starting with the next tool. MB/s = 10^6 bytes per second of wall time, from starting the sender to the data being on the receiving side. ' +
      'ft: `ft send` from process start to exit (the receiver hashes with xxh64, fsyncs and renames each file before confirming; the large file, last modified an hour before, is hashed by the sender as it is sent). ' +
      'node-copy: Node socket piped into fs.createWriteStream, no hash, no fsync. ' +
      `socat: \`socat -b${SOCAT_BLOCK} -u\`, no fsync; socat+fsync adds \`sync FILE DIR\` (fsync of the file and its folder) on the receiver. ` +
      'rsync: daemon on loopback, `rsync -a --whole-file --checksum-choice=xxh128` into an empty folder (whole-file checksum, temp file + rename, no fsync); rsync+fsync adds `--fsync` (fsync of each file, not of its folder). ' +
      'Ratio = ft ÷ tool: below 1 means ft is slower.',
  );
  for (const [id, note] of Object.entries(notes)) lines.push('', `Note: ${id} skipped: ${note}.`);
  return lines.join('\n') + '\n';
}

/* ================================================================ main */

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  installCleanup();
  if (!fs.existsSync(FT_DIST)) throw new BenchError(`${FT_DIST} is missing: build first (npm run build, or use npm run bench)`);
  const tools = findTools();
  const skipped = skippedNotes(tools);
  for (const [id, note] of Object.entries(skipped)) log(`bench: skipping ${id}: ${note}`);
  if (tools.rsync && !tools.rsyncXxh128) log('bench: this rsync has no xxh128; using its default checksum');
  if (process.platform !== 'linux') log('bench: not Linux; peak memory readings and listening checks may be unavailable');

  const busyBefore = await cpuBusy();
  if (busyBefore > BUSY_WARNING) log(`bench: warning: ${(busyBefore * 100).toFixed(0)}% of the CPU time is already in use; other work on this machine will make the figures noisy`);

  makeWorkDir(opts.dir);
  log(`bench: work folder ${workDir}`);
  let needed = 64 * 1024 ** 2;
  if (opts.parts.has('large')) needed += opts.size * 2.2;
  if (opts.parts.has('small')) needed += opts.smallCount * Math.max(opts.smallSize, 4096) * 2.5;
  checkFreeSpace(workDir, needed);

  const results = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: { socat: tools.socatVersion, rsync: tools.rsyncVersion },
    settings: { rounds: opts.rounds, size: opts.size, smallCount: opts.smallCount, smallSize: opts.smallSize, latencyRuns: opts.latencyRuns, parts: [...opts.parts], quick: opts.quick },
    skipped,
    busyBefore,
  };
  if (opts.parts.has('large')) results.large = await benchLarge(opts, tools);
  if (opts.parts.has('small')) results.small = await benchSmall(opts, tools);
  if (opts.parts.has('latency')) results.latency = await benchLatency(opts);
  cleanupSync();
  process.stdout.write(opts.json ? `${JSON.stringify(results, null, 2)}\n` : `\n${markdown(results, opts)}`);
}

main().catch((error) => {
  const message = error instanceof BenchError ? error.message : (error?.stack ?? String(error));
  log(`bench: error: ${message}`);
  cleanupSync();
  process.exitCode = 1;
});
