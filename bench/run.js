#!/usr/bin/env node
// Benchmark harness for ft (not a test): ft against plain copies and SSH-encrypted peers on loopback,
// and ft's tus endpoint against @tus/server, both driven by tus-js-client.
//
//   npm run bench                      # build, then the full run (1 GiB, 3 rounds, 10,000 small files)
//   node bench/run.js --quick          # 256 MiB, 1 round, 2,000 small files
//   node bench/run.js --link 1gbit     # also over a 1 Gbit/s link between two namespaces (root)
//   node bench/run.js --help           # all options
//
// Everything runs on 127.0.0.1 or in network namespaces the bench creates (bench/netns.js:
// magic-wormhole's, with only loopback, and --link's shaped veth pair), removed at the end. Work
// files live in a temporary folder that is removed at the end (also on Ctrl-C), and every child
// process is killed (a private sshd with its connections too). Progress goes to stderr; the result (Markdown tables, or JSON with --json) goes to stdout.
// How CPU time is measured: see the comment above processTable in lib.js.
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
  formatBytes,
  freePort,
  killAll,
  listFiles,
  median,
  parseSize,
  pollPeakRss,
  start,
  startTimed,
  stop,
  treeCpuSeconds,
  waitForLine,
  watchTreeCpu,
  waitForListen,
  which,
} from './lib.js';
import { LINK_CLIENT_ADDRESS, createLink, netnsMissing, parseRate } from './netns.js';
import { GCM_CIPHER, findSshTools, startSshd } from './sshd.js';
import { cpuPer, fmt, linkPercent, mibText, rangeText, spread, toolCell } from './summary.js';
import { findWormhole, startWormholeServers, wormholeContender } from './wormhole.js';

const ROOT = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
let FT = path.join(ROOT, 'bin', 'ft.js'); // --ft may point at another build
const FT_DIST = path.join(ROOT, 'dist', 'cli', 'main.js');
const NODE_COPY = path.join(ROOT, 'bench', 'node-copy.js');
const TUS_CLIENT = path.join(ROOT, 'bench', 'tus-client.js');
const TUS_SERVER = path.join(ROOT, 'bench', 'tus-server.js');
/** Uploads at once from the one tus client process (small files), to every tus server alike. */
const TUS_CONCURRENCY = 8;
const NODE = process.execPath;
const LATENCY_TARGET_MS = 150;
/** Width of the tool names in progress lines. */
const LABEL_WIDTH = 42;
const SOCAT_BLOCK = '131072';
/** Warn when more than this share of the CPU time is in use before the benchmark starts. */
const BUSY_WARNING = 0.25;

const SSH_IDS = ['rsync-ssh-gcm', 'rsync-ssh', 'scp-gcm', 'scp'];
const TUS_IDS = ['tus-ft', 'tus-ft-plain', 'tus-node', 'tus-node-tls'];

/**
 * Every row in table order: id, the label it has when skipped, and what the tool promises about
 * the received file: durable (fsync'd before the tool reports success), verified (a whole-file
 * checksum compared end to end), encrypted (on the wire).
 */
const ROWS = [
  ['ft', 'ft', { durable: 'yes', verified: 'xxh64', encrypted: 'TLS 1.3' }],
  ['ft-plain', 'ft (plaintext)', { durable: 'yes', verified: 'xxh64', encrypted: 'no' }],
  ['ft-fresh', 'ft (TLS), source just written', { durable: 'yes', verified: 'xxh64', encrypted: 'TLS 1.3' }],
  ['node-copy', 'node-copy', { durable: 'no', verified: 'no', encrypted: 'no' }],
  ['socat', 'socat', { durable: 'no', verified: 'no', encrypted: 'no' }],
  ['socat+fsync', 'socat+fsync', { durable: 'yes', verified: 'no', encrypted: 'no' }],
  ['rsync', 'rsync', { durable: 'no', verified: 'yes', encrypted: 'no' }],
  ['rsync+fsync', 'rsync+fsync', { durable: 'file, not folder', verified: 'yes', encrypted: 'no' }],
  ['rsync-ssh-gcm', 'rsync -e ssh (AES-GCM)', { durable: 'no', verified: 'yes', encrypted: 'ssh' }],
  ['rsync-ssh', 'rsync -e ssh (default cipher)', { durable: 'no', verified: 'yes', encrypted: 'ssh' }],
  ['scp-gcm', 'scp (AES-GCM)', { durable: 'no', verified: 'no', encrypted: 'ssh' }],
  ['scp', 'scp (default cipher)', { durable: 'no', verified: 'no', encrypted: 'ssh' }],
  ['tus-ft', 'tus → ft (HTTPS)', { durable: 'yes', verified: 'xxh64', encrypted: 'TLS 1.3' }],
  ['tus-ft-plain', 'tus → ft (HTTP, plaintext)', { durable: 'yes', verified: 'xxh64', encrypted: 'no' }],
  ['tus-node', 'tus → @tus/server (HTTP)', { durable: 'no', verified: 'no', encrypted: 'no' }],
  ['tus-node-tls', 'tus → @tus/server (HTTPS)', { durable: 'no', verified: 'no', encrypted: 'TLS 1.3' }],
  ['wormhole', 'magic-wormhole', { durable: 'no', verified: 'sha256', encrypted: 'SPAKE2 + SecretBox' }],
];
const ROW_PROPS = Object.fromEntries(ROWS.map(([id, , props]) => [id, props]));
const ROW_IDS_TEXT = ROWS.map(([id]) => id).join(', ');

const HELP = `usage: node bench/run.js [options]      (npm run bench -- [options] builds first)

Benchmarks ft on 127.0.0.1 against a plain Node socket copy, socat, socat+fsync, an rsync
daemon (with and without --fsync), and scp and rsync -e ssh (AES-GCM and default cipher) to a
private sshd, alternating the tools round by round and reporting medians and CPU time per side.
When this ft has --insecure-plaintext, ft runs twice: with TLS (its default) and in plaintext.
When ft serve has its tus endpoint, tus-js-client uploads the same data to it (HTTPS, and HTTP in
plaintext) and to @tus/server with @tus/file-store (HTTP and HTTPS). As root, magic-wormhole runs
with a local mailbox server and transit relay in a network namespace with only loopback up.
The ft (TLS) row runs again on a large file written just before the send (ft hashes it first).

  --rounds N          rounds for the large-file and small-files parts (default 3)
  --size SIZE         large file size, binary units: 256M, 1G (default 1G)
  --small-count N     number of small files (default 10000)
  --small-size SIZE   size of each small file (default 4k)
  --latency-runs N    timed runs of "ft send small.txt" (default 10)
  --only PARTS        large, small, latency or a comma list (default: all)
  --tools IDS         only these rows, a comma list of ids (ft always runs: the ratios
                      refer to it): ${ROW_IDS_TEXT}
  --link RATE         also run ft, socat, rsync (daemon) and scp / rsync -e ssh (AES-GCM) over a
                      veth pair between two network namespaces, shaped to RATE (tc tbf on
                      both ends: 1gbit, 100mbit), the large file and the small files; reports
                      MB/s and % of the link. Needs root; off by default
  --quick             256M, 1 round, 2000 small files (explicit options still win)
  --dir DIR           create the work folder under DIR (an existing folder) instead of ${os.tmpdir()}
  --ft FILE           the ft entry point to run (default: this checkout's bin/ft.js)
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
        tools: { type: 'string' },
        quick: { type: 'boolean', default: false },
        link: { type: 'string' },
        dir: { type: 'string' },
        ft: { type: 'string' },
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
  const ids = ROWS.map(([id]) => id);
  const wanted = v.tools === undefined ? undefined : new Set(['ft', ...v.tools.split(',').map((t) => t.trim()).filter(Boolean)]);
  for (const id of wanted ?? []) {
    if (!ids.includes(id)) throw new BenchError(`--tools: unknown row "${id}" (known: ${ids.join(', ')})`);
  }
  return {
    rounds: count('rounds', v.rounds ?? (v.quick ? '1' : '3'), 1),
    size: parseSize(v.size ?? (v.quick ? '256M' : '1G')),
    smallCount: count('small-count', v['small-count'] ?? (v.quick ? '2000' : '10000'), 1),
    smallSize: parseSize(v['small-size'] ?? '4k'),
    latencyRuns: count('latency-runs', v['latency-runs'] ?? '10', 1),
    parts: new Set(parts),
    tools: wanted,
    quick: v.quick,
    linkBits: v.link === undefined ? undefined : parseRate(v.link),
    linkText: v.link,
    dir: v.dir,
    ft: v.ft,
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
    ssh: findSshTools(),
    wormhole: findWormhole(),
  };
}

/* ================================================================ work folder and cleanup */

let workDir;
let cleanedUp = false;
const cleanupHooks = [];

/** Runs `hook` (synchronous) at the end, after every child process was killed. */
function onCleanup(hook) {
  cleanupHooks.push(hook);
}

/** Synchronous so it also works from signal and exit handlers. */
function cleanupSync() {
  if (cleanedUp) return;
  cleanedUp = true;
  killAll();
  for (const hook of cleanupHooks.splice(0)) hook();
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

/**
 * What this ft build's help offers, so one bench works before and after TLS arrived:
 * --no-beacon (keeps traffic on loopback), --insecure-plaintext (both sides; then ft runs twice),
 * --trust-new and --trust-file (first contact without a terminal), --identity (serve).
 */
let features;
function ftFeatures() {
  if (!features) {
    const serveHelp = capture(NODE, [FT, 'serve', '--help']) ?? '';
    const sendHelp = capture(NODE, [FT, 'send', '--help']) ?? '';
    features = {
      noBeacon: /--no-beacon\b/.test(serveHelp),
      plaintext: /--insecure-plaintext\b/.test(serveHelp) && /--insecure-plaintext\b/.test(sendHelp),
      trustNew: /--trust-new\b/.test(sendHelp),
      trustFile: /--trust-file\b/.test(sendHelp),
      identity: /--identity\b/.test(serveHelp),
      tus: /--no-web\b/.test(serveHelp), // the upload page and its tus endpoint
      webPort: /--web-port\b/.test(serveHelp),
    };
  }
  return features;
}

/**
 * The ft rows: `ft` with default options (TLS once ft has it) and, when the build has
 * --insecure-plaintext, `ft-plain` with it on both sides.
 */
function ftVariants() {
  if (!ftFeatures().plaintext) return [{ id: 'ft', label: 'ft', plaintext: false }];
  return [
    { id: 'ft', label: 'ft (TLS)', plaintext: false },
    { id: 'ft-plain', label: 'ft (plaintext)', plaintext: true },
  ];
}

/** ft with default options on a source written just before the send (the large file only). */
function ftFreshVariant() {
  return { id: 'ft-fresh', label: `${ftVariants()[0].label}, source just written`, plaintext: false, fresh: true };
}

/**
 * ft's config folder (sender key, identity, trust store) lives in the work folder, so the bench
 * neither reads nor pins anything in the user's own (a new port every round would otherwise add
 * a pin each time). FT_TOKEN is dropped: the bench measures ft without a token.
 */
function ftEnv() {
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(workDir, 'ft-config') };
  delete env.FT_TOKEN;
  return env;
}

/**
 * Where a row's traffic goes: loopback, or with --link the veth pair (the receiving side in one
 * namespace at `host`, the sender in the other; `serverWrap` / `clientWrap` start a process in each).
 */
const LOOPBACK = { link: false, host: '127.0.0.1', serverWrap: undefined, clientWrap: undefined };

async function startFtServe(inbox, { plaintext = false, keep, net = LOOPBACK } = {}) {
  const port = await freePort();
  const f = ftFeatures();
  const args = [FT, 'serve', inbox, '--port', String(port), '--host', net.host, '--json'];
  if (f.noBeacon) args.push('--no-beacon');
  // One identity for the whole run; a plaintext receiver has no use for one.
  if (f.identity && !plaintext) args.push('--identity', path.join(workDir, 'ft-identity'));
  if (plaintext) args.push('--insecure-plaintext');
  // In plaintext the page has a port of its own (--port + 1 unless told): one known to be free.
  if (plaintext && f.webPort) args.push('--web-port', String(await freePort()));
  const serve = start('ft serve', NODE, args, { env: ftEnv(), keep, wrap: net.serverWrap });
  const line = await waitForLine(serve, (text) => {
    try {
      return JSON.parse(text).event === 'listening';
    } catch {
      return false;
    }
  });
  // `web`: the upload page's address (no token, so no access code in it).
  return { serve, port, web: JSON.parse(line).web };
}

/** `ft send` flags for the variant: plaintext, or what first contact over TLS needs without a terminal. */
function ftSendArgs({ plaintext = false } = {}) {
  const f = ftFeatures();
  if (plaintext) return ['--insecure-plaintext']; // no certificate, so nothing to trust or pin
  const args = [];
  if (f.trustNew) args.push('--trust-new');
  if (f.trustFile) args.push('--trust-file', path.join(workDir, 'ft-known-receivers.json'));
  return args;
}

/**
 * Runs a sending Node process to its end (under /usr/bin/time when available, for its CPU time
 * and peak RSS): { proc, seconds, senderPeak, senderCpu }.
 */
async function runSender(tools, scratch, name, args, timeoutMs, options = {}) {
  const t0 = process.hrtime.bigint();
  const proc = startTimed(tools.time, path.join(scratch, `${name.replace(/\W/g, '-')}.time`), name, NODE, args, options);
  const poller = tools.time ? undefined : pollPeakRss(proc);
  let polledPeak;
  try {
    await expectSuccess(proc, timeoutMs);
  } finally {
    polledPeak = poller?.stop();
  }
  const seconds = elapsedSeconds(t0);
  const usage = proc.usage();
  return { proc, seconds, senderPeak: usage ? usage.maxRss : polledPeak, senderCpu: usage?.cpuSeconds };
}

/** Runs `ft send`; adds ft's own timer (the summary's durationMs). */
async function ftSend(tools, paths, port, scratch, timeoutMs, variant, net = LOOPBACK) {
  // --no-hash-cache: every round measures a first send, which hashes each file (a large one at rest while sending it).
  const args = [FT, 'send', ...paths, '--to', `${net.host}:${port}`, '--json', '--no-hash-cache', ...ftSendArgs(variant)];
  // Keep enough output for the summary line, which lists every file.
  const { proc: send, seconds, senderPeak, senderCpu } = await runSender(tools, scratch, 'ft send', args, timeoutMs, { keep: 64 * 1024 * 1024, env: ftEnv(), wrap: net.clientWrap });
  let internalMs;
  for (const line of send.stdout.split('\n')) {
    try {
      const event = JSON.parse(line);
      if (event.event === 'summary') internalMs = event.durationMs;
    } catch {
      /* not JSON */
    }
  }
  return { seconds, senderPeak, senderCpu, internalMs };
}

/**
 * Runs `send()` against a receiver process that is ready: the sender's figures, with the
 * receiver's CPU from now until `check()` is done and its children are reaped, and its peak RSS.
 */
async function measured(pid, send, check = async () => undefined) {
  const cpu = await watchTreeCpu(pid);
  const sent = await send();
  await check();
  const receiver = await cpu.finish();
  return { ...sent, receiverPeak: receiver.peakRss, receiverCpu: receiver.seconds, cpuNote: receiver.reason };
}

/**
 * One ft row: ft serve, then ft send; the receiver's CPU from ready to the sender's exit.
 * `variant.fresh`: the source is first copied to a new file (outside the timed part, not synced:
 * its pages are dirty in the page cache and its mtime is now), so ft hashes it before sending.
 */
function ftContender(tools, variant, { paths, received, timeoutMs }) {
  return {
    id: variant.id,
    label: variant.label,
    async run(ctx) {
      const inbox = path.join(ctx.outDir, 'inbox');
      const net = ctx.net ?? LOOPBACK;
      const sources = variant.fresh ? paths(ctx).map((file) => freshCopy(file, path.join(ctx.outDir, 'fresh'))) : paths(ctx);
      const { serve, port } = await startFtServe(inbox, { ...variant, net });
      try {
        const sent = await measured(serve.pid, () => ftSend(tools, sources, port, ctx.outDir, timeoutMs(ctx), variant, net));
        return { ...sent, ...received(inbox, ctx) };
      } finally {
        await stop(serve);
      }
    },
  };
}

/** Copies a file into `dir` through user space with plain writes (no fsync, no reflink); returns the copy. */
function freshCopy(file, dir) {
  fs.mkdirSync(dir, { recursive: true });
  const copy = path.join(dir, path.basename(file));
  const buffer = Buffer.allocUnsafe(8 * 1024 * 1024);
  const from = fs.openSync(file, 'r');
  const to = fs.openSync(copy, 'w');
  try {
    for (let n; (n = fs.readSync(from, buffer, 0, buffer.length, null)) > 0; ) fs.writeSync(to, buffer, 0, n);
  } finally {
    fs.closeSync(from);
    fs.closeSync(to);
  }
  return copy;
}

/**
 * tus-js-client (bench/tus-client.js, under time) uploading `source` to `endpoint`: the sender's
 * side of a tus row. --insecure: the servers' certificates are self-signed.
 */
async function tusUpload(tools, endpoint, source, scratch, timeoutMs) {
  const args = [TUS_CLIENT, '--endpoint', endpoint, '--concurrency', String(TUS_CONCURRENCY), '--insecure', source];
  const { proc: client, seconds, senderPeak, senderCpu } = await runSender(tools, scratch, 'tus client', args, timeoutMs);
  let summary = {};
  try {
    summary = JSON.parse(client.stdout.trim().split('\n').pop());
  } catch {
    /* no summary: the figures below stay unset */
  }
  if (summary.retries) log(`bench: tus client retried ${summary.retries} request(s) against ${endpoint}`);
  return { seconds, senderPeak, senderCpu, hashMs: summary.hashMs, retries: summary.retries };
}

/** tus-js-client to ft serve's own tus endpoint: HTTPS on ft's port, or its HTTP port in plaintext. */
function ftTusContender(tools, { id, label, plaintext }, part) {
  return {
    id,
    label,
    async run(ctx) {
      const inbox = path.join(ctx.outDir, 'inbox');
      // Enough output for a `received` event per file.
      const { serve, web } = await startFtServe(inbox, { plaintext, keep: 64 * 1024 * 1024 });
      try {
        if (!web) throw new BenchError(`ft serve printed no upload page address${describeOutput(serve)}`);
        const endpoint = new URL('files/', web).href;
        const sent = await measured(
          serve.pid,
          () => tusUpload(tools, endpoint, part.paths(ctx)[0], ctx.outDir, part.timeoutMs(ctx)),
          () => expectVerified(serve, part.files),
        );
        return { ...sent, ...part.received(inbox, ctx) };
      } finally {
        await stop(serve);
      }
    },
  };
}

/**
 * Every upload was received by tus and verified, as ft serve's `received` events say (they are
 * printed as the last PATCH is answered, so allow a moment for the pipe).
 */
async function expectVerified(serve, files) {
  const count = () => {
    let verified = 0;
    let unverified = 0;
    for (const line of serve.stdout.split('\n')) {
      if (!line.startsWith('{"event":"received"')) continue;
      const event = JSON.parse(line);
      if (event.protocol === 'tus' && event.verified === true) verified += 1;
      else unverified += 1;
    }
    return { verified, unverified };
  };
  const deadline = Date.now() + 5000;
  let seen = count();
  while (seen.verified + seen.unverified < files && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    seen = count();
  }
  if (seen.verified !== files || seen.unverified) {
    throw new BenchError(`ft serve reported ${seen.verified} verified tus uploads and ${seen.unverified} other received files, expected ${files} verified${describeOutput(serve)}`);
  }
}

/** tus-js-client to @tus/server + @tus/file-store (bench/tus-server.js), over HTTP or HTTPS. */
function tusServerContender(tools, { id, label, tls }, part) {
  return {
    id,
    label,
    async run(ctx) {
      const store = path.join(ctx.outDir, 'store');
      fs.mkdirSync(store);
      const port = await freePort();
      const server = start('@tus/server', NODE, [TUS_SERVER, store, String(port), ...(tls ? ['--tls'] : [])]);
      try {
        await waitForLine(server, (line) => line.trim() === 'listening');
        const endpoint = `${tls ? 'https' : 'http'}://127.0.0.1:${port}/files/`;
        const sent = await measured(server.pid, () => tusUpload(tools, endpoint, part.paths(ctx)[0], ctx.outDir, part.timeoutMs(ctx)));
        return { ...sent, ...part.receivedTusStore(store, ctx) };
      } finally {
        await stop(server);
      }
    },
  };
}

/** Whether a package the tus rows need is installed (they are devDependencies). */
function installed(name) {
  try {
    import.meta.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** Why tus rows cannot run here, by row id. */
function tusSkippedNotes() {
  const notes = {};
  const client = installed('tus-js-client') ? undefined : 'tus-js-client is not installed (npm install)';
  const server = ['@tus/server', '@tus/file-store'].every(installed) ? undefined : '@tus/server and @tus/file-store are not installed (devDependencies: npm install)';
  if (client || !ftFeatures().tus) notes['tus-ft'] = notes['tus-ft-plain'] = client ?? 'this ft serve has no tus endpoint (no --no-web in `ft serve --help`)';
  else if (!ftFeatures().plaintext) notes['tus-ft-plain'] = 'this ft has no --insecure-plaintext';
  if (client || server) notes['tus-node'] = notes['tus-node-tls'] = client ?? server;
  return notes;
}

/** The tus rows: ft's endpoint (HTTPS; HTTP when ft has plaintext) and @tus/server (HTTP, HTTPS). */
function tusContenders(tools, part) {
  const notes = tusSkippedNotes();
  return [
    ftTusContender(tools, { id: 'tus-ft', label: 'tus → ft (HTTPS)', plaintext: false }, part),
    ftTusContender(tools, { id: 'tus-ft-plain', label: 'tus → ft (HTTP, plaintext)', plaintext: true }, part),
    tusServerContender(tools, { id: 'tus-node', label: 'tus → @tus/server (HTTP)', tls: false }, part),
    tusServerContender(tools, { id: 'tus-node-tls', label: 'tus → @tus/server (HTTPS)', tls: true }, part),
  ].filter((c) => !notes[c.id]);
}

/**
 * What a @tus/file-store folder holds: name (relativePath, else filename, from `<id>.json`) ->
 * the upload's data file. Read after the run, outside the timed part.
 */
function tusStoreFiles(store) {
  const files = new Map();
  for (const entry of fs.readdirSync(store)) {
    if (!entry.endsWith('.json')) continue;
    const info = JSON.parse(fs.readFileSync(path.join(store, entry), 'utf8'));
    files.set(info.metadata?.relativePath ?? info.metadata?.filename, path.join(store, info.id));
  }
  return files;
}

/**
 * A receiver that exits by itself (under time): its CPU from when it was ready, so that its
 * start-up does not count, as for the servers.
 */
function receiverCpuSince(proc, baseline) {
  const usage = proc.usage();
  if (!usage || baseline === undefined) return undefined;
  return Math.max(0, usage.cpuSeconds - baseline);
}

/** A sender's CPU and peak RSS from /usr/bin/time (unset without it). */
function clientUsage(client) {
  const usage = client.usage();
  return { senderCpu: usage?.cpuSeconds, senderPeak: usage?.maxRss };
}

/** A long-lived receiver's CPU, peak RSS and why its CPU was not read, from watchTreeCpu's finish(). */
function serverUsage(receiver) {
  return { receiverCpu: receiver.seconds, receiverPeak: receiver.peakRss, cpuNote: receiver.reason };
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

async function startRsyncDaemon(tools, outDir, dest, net = LOOPBACK) {
  const port = await freePort();
  const conf = rsyncConf(outDir, dest);
  const daemon = start('rsync daemon', tools.rsync, ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, `--address=${net.host}`], { wrap: net.serverWrap });
  await waitForListen(daemon, port, { probeSafe: true, namespaced: Boolean(net.serverWrap) });
  return { daemon, port };
}

function rsyncArgs(tools, fsync) {
  const checksum = tools.rsyncXxh128 ? ['--checksum-choice=xxh128'] : [];
  return ['-a', '--whole-file', ...checksum, ...(fsync ? ['--fsync'] : [])];
}

/** rsync and, where it has --fsync (3.2.4 and later), rsync+fsync, to a daemon: a contender each. */
function rsyncContenders(tools, part) {
  if (!tools.rsync) return [];
  const run = (fsync) => async (ctx) => {
    const dest = path.join(ctx.outDir, 'dest');
    fs.mkdirSync(dest);
    const net = ctx.net ?? LOOPBACK;
    const { daemon, port } = await startRsyncDaemon(tools, ctx.outDir, dest, net);
    try {
      const cpu = await watchTreeCpu(daemon.pid);
      const t0 = process.hrtime.bigint();
      const args = [...rsyncArgs(tools, fsync), part.paths(ctx)[0], `rsync://${net.host}:${port}/bench/`];
      const client = startTimed(tools.time, path.join(ctx.outDir, 'rsync.time'), 'rsync client', tools.rsync, args, { wrap: net.clientWrap });
      await expectSuccess(client, part.timeoutMs(ctx));
      const seconds = elapsedSeconds(t0);
      const receiver = await cpu.finish();
      return { seconds, ...clientUsage(client), ...serverUsage(receiver), ...part.received(dest, ctx) };
    } finally {
      await stop(daemon);
    }
  };
  const list = [{ id: 'rsync', label: 'rsync', run: run(false) }];
  if (tools.rsyncFsync) list.push({ id: 'rsync+fsync', label: 'rsync+fsync', run: run(true) });
  return list;
}


function cipherName(cipher) {
  return cipher ? cipher.replace(/@openssh\.com$/, '') : 'unknown';
}

/**
 * scp and rsync -e ssh to the private sshd, with -c aes128-gcm@openssh.com and with the default
 * ciphers. The receiver's CPU is everything sshd's connection processes did (key exchange, login,
 * decryption, rsync's or SFTP's server side writing the files).
 */
function sshContenders(tools, sshd, part) {
  if (!sshd) return [];
  const list = [];
  const variants = [
    ...(tools.ssh.gcm ? [{ suffix: '-gcm', cipher: GCM_CIPHER, what: 'AES-GCM' }] : []),
    { suffix: '', cipher: undefined, what: `default: ${cipherName(sshd.defaultCipher)}` },
  ];
  const run = (tool, cipher) => async (ctx) => {
    const dest = path.join(ctx.outDir, 'dest');
    fs.mkdirSync(dest);
    const cipherArgs = cipher ? ['-c', cipher] : [];
    const source = part.paths(ctx)[0];
    const args =
      tool === 'scp'
        ? ['-F', sshd.configFile, ...cipherArgs, '-q', '-p', ...(fs.statSync(source).isDirectory() ? ['-r'] : []), source, sshd.remote(`${dest}/`)]
        : [...rsyncArgs(tools, false), '-e', [tools.ssh.ssh, '-F', sshd.configFile, ...cipherArgs].join(' '), source, sshd.remote(`${dest}/`)];
    const cpu = await watchTreeCpu(sshd.proc.pid);
    const t0 = process.hrtime.bigint();
    const client = startTimed(tools.time, path.join(ctx.outDir, `${tool}.time`), tool === 'scp' ? 'scp' : 'rsync -e ssh', tool === 'scp' ? tools.ssh.scp : tools.rsync, args, { wrap: sshd.clientWrap });
    await expectSuccess(client, part.timeoutMs(ctx));
    const seconds = elapsedSeconds(t0);
    const receiver = await cpu.finish();
    return { seconds, ...clientUsage(client), ...serverUsage(receiver), ...part.received(dest, ctx) };
  };
  if (tools.rsync) {
    for (const v of variants) list.push({ id: `rsync-ssh${v.suffix}`, label: `rsync -e ssh (${v.what})`, run: run('rsync', v.cipher) });
  }
  for (const v of variants) list.push({ id: `scp${v.suffix}`, label: `scp (${v.what})`, run: run('scp', v.cipher) });
  return list;
}

/** Rows that also run over --link (the others need loopback or a namespace of their own). */
const LINK_ROWS = ['ft', 'ft-plain', 'socat', 'rsync', 'rsync-ssh-gcm', 'scp-gcm'];

/**
 * Large-file contenders: each run() returns { seconds, file, ...extras } and leaves nothing running.
 * `peers`: { wormhole } servers when that row runs.
 */
function largeContenders(tools, sshd, peers = {}) {
  const part = {
    paths: (ctx) => [ctx.src],
    received: (dir, ctx) => ({ file: path.join(dir, path.basename(ctx.src)) }),
    files: 1,
    receivedTusStore: (store, ctx) => ({ file: tusStoreFiles(store).get(path.basename(ctx.src)) ?? path.join(store, '(no upload named big.bin)') }),
    timeoutMs: (ctx) => transferTimeoutMs(ctx.bytes),
  };
  const list = [...ftVariants(), ftFreshVariant()].map((variant) => ftContender(tools, variant, part));
  list.push({
    id: 'node-copy',
    label: 'node-copy',
    async run({ src, outDir, bytes }) {
      const port = await freePort();
      const file = path.join(outDir, path.basename(src));
      const receiver = startTimed(tools.time, path.join(outDir, 'receiver.time'), 'node-copy receiver', NODE, [NODE_COPY, 'receive', String(port), file]);
      try {
        await waitForLine(receiver, (line) => line.trim() === 'listening');
        const baseline = treeCpuSeconds(receiver.pid);
        const t0 = process.hrtime.bigint();
        const sender = startTimed(tools.time, path.join(outDir, 'sender.time'), 'node-copy sender', NODE, [NODE_COPY, 'send', String(port), src]);
        await expectTransfer(receiver, sender, transferTimeoutMs(bytes));
        const seconds = elapsedSeconds(t0);
        await expectSuccess(sender, 10_000);
        return { seconds, ...clientUsage(sender), receiverCpu: receiverCpuSince(receiver, baseline), receiverPeak: receiver.usage()?.maxRss, file };
      } finally {
        await stop(receiver);
      }
    },
  });
  const socatRun = (fsync) => async ({ src, outDir, bytes, net = LOOPBACK }) => {
    const port = await freePort();
    const name = path.basename(src);
    const listen = `TCP-LISTEN:${port},reuseaddr,bind=${net.host}`;
    const timeFile = path.join(outDir, 'receiver.time');
    // Relative names (cwd) so no path needs socat address escaping.
    const receiver = fsync
      ? startTimed(tools.time, timeFile, 'socat+fsync receiver', 'sh', ['-c', `"$0" -b${SOCAT_BLOCK} -u ${listen} OPEN:${name},creat,trunc && "$1" ${name} .`, tools.socat, tools.sync], { cwd: outDir, wrap: net.serverWrap })
      : startTimed(tools.time, timeFile, 'socat receiver', tools.socat, [`-b${SOCAT_BLOCK}`, '-u', listen, `OPEN:${name},creat,trunc`], { cwd: outDir, wrap: net.serverWrap });
    try {
      await waitForListen(receiver, port, { namespaced: Boolean(net.serverWrap) });
      const baseline = treeCpuSeconds(receiver.pid);
      const t0 = process.hrtime.bigint();
      const sender = startTimed(tools.time, path.join(outDir, 'sender.time'), 'socat sender', tools.socat, [`-b${SOCAT_BLOCK}`, '-u', `OPEN:${name}`, `TCP:${net.host}:${port}`], { cwd: path.dirname(src), wrap: net.clientWrap });
      await expectTransfer(receiver, sender, transferTimeoutMs(bytes));
      const seconds = elapsedSeconds(t0);
      await expectSuccess(sender, 10_000);
      return { seconds, ...clientUsage(sender), receiverCpu: receiverCpuSince(receiver, baseline), receiverPeak: receiver.usage()?.maxRss, file: path.join(outDir, name) };
    } finally {
      await stop(receiver);
    }
  };
  if (tools.socat) {
    list.push({ id: 'socat', label: 'socat', run: socatRun(false) });
    if (tools.sync) list.push({ id: 'socat+fsync', label: 'socat+fsync', run: socatRun(true) });
  }
  list.push(...rsyncContenders(tools, part), ...sshContenders(tools, sshd, part), ...tusContenders(tools, part));
  if (peers.wormhole) list.push(wormholeContender(tools, peers.wormhole, part));
  return list;
}

const SMALL_ROWS = ['ft', 'ft-plain', 'rsync', 'rsync+fsync', ...SSH_IDS, ...TUS_IDS, 'wormhole'];

/** The contenders --tools asks for (all by default; ft always). */
function chosen(opts, contenders) {
  return opts.tools ? contenders.filter((c) => opts.tools.has(c.id)) : contenders;
}

function skippedNotes(tools) {
  const notes = {};
  if (!tools.socat) {
    notes.socat = 'socat not installed (apt-get install socat)';
    notes['socat+fsync'] = notes.socat;
  }
  else if (!tools.sync) notes['socat+fsync'] = 'coreutils sync not found';
  if (!tools.rsync) notes.rsync = 'rsync not installed (apt-get install rsync)';
  if (!tools.rsyncFsync) notes['rsync+fsync'] = notes.rsync ?? 'this rsync has no --fsync (3.2.4 and later)';
  if (tools.ssh.missing) for (const id of SSH_IDS) notes[id] = tools.ssh.missing;
  else {
    if (!tools.rsync) notes['rsync-ssh-gcm'] = notes['rsync-ssh'] = notes.rsync;
    if (!tools.ssh.gcm) notes['scp-gcm'] = notes['rsync-ssh-gcm'] = `this ssh has no ${GCM_CIPHER}`;
  }
  if (tools.wormhole.missing) notes.wormhole = tools.wormhole.missing;
  if (!tools.time) notes.cpu = 'CPU time of the senders and of socat and node-copy receivers not measured: /usr/bin/time not installed (apt-get install time)';
  return notes;
}

/* ================================================================ part 1: one large file */

/**
 * Medians over the rounds: time, rate (`rateKey`, with its min-max) and each side's CPU seconds
 * (rounds without a reading left out), and each side's highest peak RSS.
 */
function summarise(list, extra, rateKey) {
  const cpuNotes = [...new Set(list.map((r) => r.cpuNote).filter(Boolean))];
  return {
    runs: list,
    seconds: median(list.map((r) => r.seconds)),
    ...extra,
    [rateKey]: median(list.map((r) => r[rateKey])),
    range: spread(list.map((r) => r[rateKey])),
    senderCpu: median(list.map((r) => r.senderCpu)),
    receiverCpu: median(list.map((r) => r.receiverCpu)),
    senderPeak: peakOf(list, 'senderPeak'),
    receiverPeak: peakOf(list, 'receiverPeak'),
    ...(cpuNotes.length ? { cpuNote: `receiver CPU not measured in ${list.filter((r) => r.receiverCpu === undefined).length} of ${list.length} rounds: ${cpuNotes.join('; ')}` } : {}),
  };
}

/** The highest reading of `key` over the rounds, or undefined when none was taken. */
function peakOf(list, key) {
  return Math.max(0, ...list.map((r) => r[key] ?? 0)) || undefined;
}

/**
 * A round a tool failed: logged with the tool's output, and kept (first line) for the report,
 * where the row stays and says so. The other tools go on.
 */
function failed(part, round, opts, contender, error) {
  const message = error instanceof BenchError ? error.message : (error?.stack ?? String(error));
  log(`${part}: round ${round}/${opts.rounds} ${contender.label.padEnd(LABEL_WIDTH)} FAILED: ${message}`);
  return message.split('\n')[0].slice(0, 300);
}

function cpuText(result) {
  const text = (s) => (s === undefined ? '–' : `${s.toFixed(2)} s`);
  return `CPU ${text(result.senderCpu)} / ${text(result.receiverCpu)}`;
}

/**
 * `where`: { net, tag, peers } — over --link: the link's net, 'link large' in logs and folder
 * names, and only LINK_ROWS; peers: servers some rows need (wormhole).
 */
async function benchLarge(opts, tools, sshd, where = {}) {
  const { net = LOOPBACK, tag = 'large', peers = {} } = where;
  const srcDir = path.join(workDir, `${tag.replace(/\W/g, '-')}-src`);
  fs.mkdirSync(srcDir);
  const src = path.join(srcDir, 'big.bin');
  log(`${tag}: writing ${formatBytes(opts.size)} of random data`);
  await writeRandomFile(src, opts.size);
  // A file at rest, as one sent from disk usually is: ft hashes a file written within the last
  // minute before sending it (it may be changing still), and any other while sending it.
  const anHourAgo = new Date(Date.now() - 3600_000);
  fs.utimesSync(src, anHourAgo, anHourAgo);
  readThrough([src], tools);
  const contenders = chosen(opts, largeContenders(tools, sshd, peers)).filter((c) => !net.link || LINK_ROWS.includes(c.id));
  const runs = Object.fromEntries(contenders.map((c) => [c.id, []]));
  const failures = Object.fromEntries(contenders.map((c) => [c.id, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    for (const contender of rotated(contenders, round - 1)) {
      const outDir = path.join(workDir, `${tag.replace(/\W/g, '-')}-${contender.id.replace(/\W/g, '_')}-${round}`);
      fs.mkdirSync(outDir);
      settle(tools);
      let result;
      try {
        result = await contender.run({ src, outDir, bytes: opts.size, net });
        let size;
        try {
          size = fs.statSync(result.file).size;
        } catch {
          throw new BenchError(`${contender.label}: ${result.file} was not created`);
        }
        if (size !== opts.size) throw new BenchError(`${contender.label}: received ${size} bytes, expected ${opts.size}`);
        if (!(await sameBytes(tools, src, result.file))) throw new BenchError(`${contender.label}: the received file differs from the original`);
      } catch (error) {
        failures[contender.id].push(failed(tag, round, opts, contender, error));
        continue;
      } finally {
        fs.rmSync(outDir, { recursive: true, force: true });
      }
      const mbps = opts.size / 1e6 / result.seconds;
      runs[contender.id].push({ ...result, file: undefined, mbps });
      const extra = result.internalMs !== undefined ? `, ft's own timer ${(result.internalMs / 1000).toFixed(2)} s` : '';
      log(`${tag}: round ${round}/${opts.rounds} ${contender.label.padEnd(LABEL_WIDTH)} ${fmt(mbps).padStart(6)} MB/s (${result.seconds.toFixed(2)} s${extra}; ${cpuText(result)})`);
      if (result.cpuNote) log(`${tag}: ${contender.label}: receiver CPU not measured: ${result.cpuNote}`);
    }
  }
  fs.rmSync(srcDir, { recursive: true, force: true });
  const results = {};
  const gib = opts.size / 1024 ** 3;
  for (const contender of contenders) {
    const list = runs[contender.id];
    const result = summarise(list, { label: contender.label, failures: failures[contender.id] }, 'mbps');
    result.senderCpuPerGiB = cpuPer(result.senderCpu, gib, 1);
    result.receiverCpuPerGiB = cpuPer(result.receiverCpu, gib, 1);
    if (net.link) result.linkPercent = linkPercent(result.mbps, net.rateBits);
    results[contender.id] = result;
  }
  for (const result of Object.values(results)) result.ftRatio = results.ft.mbps / result.mbps;
  const ft = runs.ft;
  return {
    ...(net.link ? { linkBits: net.rateBits } : {}),
    bytes: opts.size,
    rounds: opts.rounds,
    tools: results,
    memory: {
      receiverPeak: peakOf(ft, 'receiverPeak'),
      senderPeak: peakOf(ft, 'senderPeak'),
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

/** As checkSmallCopy, for a @tus/file-store folder: every file there under `files/<name>`, same bytes. */
function checkTusStore(label, srcDir, store) {
  const expected = listFiles(srcDir);
  const got = tusStoreFiles(store);
  if (got.size !== expected.length) throw new BenchError(`${label}: received ${got.size} files, expected ${expected.length}`);
  for (const name of expected) {
    const file = got.get(`${path.basename(srcDir)}/${name}`);
    if (!file) throw new BenchError(`${label}: no upload of ${name}`);
    if (!fs.readFileSync(path.join(srcDir, name)).equals(fs.readFileSync(file))) throw new BenchError(`${label}: ${name} differs from the original`);
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

/** `where`: as for benchLarge. */
async function benchSmall(opts, tools, sshd, where = {}) {
  const { net = LOOPBACK, tag = 'small', peers = {} } = where;
  const srcParent = path.join(workDir, `${tag.replace(/\W/g, '-')}-src`);
  const srcDir = path.join(srcParent, 'files');
  log(`${tag}: writing ${opts.smallCount} files of ${formatBytes(opts.smallSize)}`);
  makeSmallFiles(srcDir, opts.smallCount, opts.smallSize);
  readThrough(listFiles(srcDir).map((f) => path.join(srcDir, f)), tools);
  const totalBytes = opts.smallCount * opts.smallSize;
  const timeoutMs = Math.max(transferTimeoutMs(totalBytes), opts.smallCount * 50);
  const part = {
    paths: () => [srcDir],
    received: (dir) => ({ dest: path.join(dir, 'files') }),
    receivedTusStore: (store) => ({ tusStore: store }),
    files: opts.smallCount,
    timeoutMs: () => timeoutMs,
  };
  const contenders = chosen(opts, [
    ...ftVariants().map((variant) => ftContender(tools, variant, part)),
    ...rsyncContenders(tools, part),
    ...sshContenders(tools, sshd, part),
    ...tusContenders(tools, part),
    ...(peers.wormhole ? [wormholeContender(tools, peers.wormhole, part)] : []),
  ]).filter((c) => !net.link || LINK_ROWS.includes(c.id));
  const runs = Object.fromEntries(contenders.map((c) => [c.id, []]));
  const failures = Object.fromEntries(contenders.map((c) => [c.id, []]));
  for (let round = 1; round <= opts.rounds; round++) {
    for (const contender of rotated(contenders, round - 1)) {
      const outDir = path.join(workDir, `${tag.replace(/\W/g, '-')}-${contender.id.replace(/\W/g, '_')}-${round}`);
      fs.mkdirSync(outDir);
      settle(tools);
      let result;
      try {
        result = await contender.run({ outDir, net });
        if (result.tusStore) checkTusStore(contender.label, srcDir, result.tusStore);
        else checkSmallCopy(contender.label, srcDir, result.dest);
      } catch (error) {
        failures[contender.id].push(failed(tag, round, opts, contender, error));
        continue;
      } finally {
        fs.rmSync(outDir, { recursive: true, force: true });
      }
      const filesPerSecond = opts.smallCount / result.seconds;
      runs[contender.id].push({ ...result, dest: undefined, filesPerSecond, mbps: totalBytes / 1e6 / result.seconds });
      log(`${tag}: round ${round}/${opts.rounds} ${contender.label.padEnd(LABEL_WIDTH)} ${fmt(filesPerSecond).padStart(6)} files/s (${result.seconds.toFixed(2)} s; ${cpuText(result)})`);
      if (result.cpuNote) log(`${tag}: ${contender.label}: receiver CPU not measured: ${result.cpuNote}`);
    }
  }
  fs.rmSync(srcParent, { recursive: true, force: true });
  const results = {};
  for (const contender of contenders) {
    const list = runs[contender.id];
    const result = summarise(list, { label: contender.label, failures: failures[contender.id], mbps: median(list.map((r) => r.mbps)), mbpsRange: spread(list.map((r) => r.mbps)) }, 'filesPerSecond');
    // CPU seconds per 1,000 files (numerically the same as milliseconds per file).
    result.senderCpuPer1000 = cpuPer(result.senderCpu, opts.smallCount, 1000);
    result.receiverCpuPer1000 = cpuPer(result.receiverCpu, opts.smallCount, 1000);
    if (net.link) result.linkPercent = linkPercent(result.mbps, net.rateBits);
    results[contender.id] = result;
  }
  for (const result of Object.values(results)) result.ftRatio = results.ft.filesPerSecond / result.filesPerSecond;
  return {
    ...(net.link ? { linkBits: net.rateBits } : {}),
    count: opts.smallCount,
    size: opts.smallSize,
    rounds: opts.rounds,
    tools: results,
    memory: {
      receiverPeak: peakOf(runs.ft, 'receiverPeak'),
      senderPeak: peakOf(runs.ft, 'senderPeak'),
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
    const args = [FT, 'send', file, '--to', `127.0.0.1:${port}`, ...ftSendArgs()];
    for (let i = 0; i <= opts.latencyRuns; i++) {
      const t0 = process.hrtime.bigint();
      await expectSuccess(start('ft send small.txt', NODE, args, { env: ftEnv() }), 30_000);
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
  const tls = ftFeatures().plaintext; // then the default is TLS
  fs.rmSync(dir, { recursive: true, force: true });
  return {
    tls,
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

/* ================================================================ targets (issues 11 and 12) */

const TARGETS = [
  { issue: 11, part: 'large', ref: 'ft', peer: 'rsync-ssh-gcm', min: 1.2 },
  { issue: 11, part: 'large', ref: 'ft', peer: 'scp-gcm', min: 1.5 },
  { issue: 11, part: 'large', ref: 'ft', peer: 'scp', min: 1.5 },
  // "No slower than plain ft by more than 10 %": files/s with TLS >= 0.9 x files/s in plaintext.
  { issue: 11, part: 'small', ref: 'ft', peer: 'ft-plain', min: 0.9 },
  // ft's tus endpoint at least as fast as @tus/server while also verifying (and fsyncing): the
  // same client, and the same wire (HTTPS against HTTPS, HTTP against HTTP).
  { issue: 12, part: 'large', ref: 'tus-ft', peer: 'tus-node-tls', min: 1 },
  { issue: 12, part: 'small', ref: 'tus-ft', peer: 'tus-node-tls', min: 1 },
  { issue: 12, part: 'large', ref: 'tus-ft-plain', peer: 'tus-node', min: 1 },
  { issue: 12, part: 'small', ref: 'tus-ft-plain', peer: 'tus-node', min: 1 },
];

const rowLabel = (id) => ROWS.find(([known]) => known === id)?.[1] ?? id;

/** Each target's ratio (ref ÷ peer) with met / not met, or why it was not measured. */
function targets(results, opts) {
  const list = [];
  for (const target of TARGETS) {
    const part = results[target.part];
    if (!part) continue;
    if (opts.tools && !(opts.tools.has(target.ref) && opts.tools.has(target.peer))) continue;
    const isLarge = target.part === 'large';
    const what = isLarge ? `${formatBytes(part.bytes)} file` : `${part.count.toLocaleString('en-US')} × ${formatBytes(part.size)} files`;
    const aimedAt = isLarge ? part.bytes === 1024 ** 3 : part.count === 2000 && part.size === 4096;
    const ref = part.tools[target.ref];
    const peer = part.tools[target.peer];
    const entry = {
      issue: target.issue,
      part: target.part,
      what,
      unit: isLarge ? 'MB/s' : 'files/s',
      ref: target.ref,
      peer: target.peer,
      refLabel: ref?.label ?? rowLabel(target.ref),
      peerLabel: peer?.label ?? rowLabel(target.peer),
      min: target.min,
      aimedAt: aimedAt ? undefined : isLarge ? 'the 1 GiB file' : '2,000 × 4 KiB files',
    };
    const rate = (r) => (isLarge ? r.mbps : r.filesPerSecond);
    const missing = (id, r) => (!r ? `${id} skipped: ${results.skipped[id] ?? 'not run'}` : rate(r) === undefined ? `${r.label} failed in every round` : undefined);
    if (target.issue === 11 && !ftFeatures().plaintext) entry.reason = 'this ft has no TLS yet (no --insecure-plaintext in `ft serve --help`)';
    else entry.reason = missing(target.ref, ref) ?? missing(target.peer, peer);
    if (!entry.reason) {
      entry.ratio = rate(ref) / rate(peer);
      entry.met = entry.ratio >= target.min;
    }
    list.push(entry);
  }
  return list;
}

/* ================================================================ report */

function markdown(results, opts) {
  const lines = [];
  const notes = results.skipped;
  const row = (cells) => lines.push(`| ${cells.join(' | ')} |`);
  const rounds = `median of ${opts.rounds} round${opts.rounds === 1 ? '' : 's'}`;
  const seconds = (v) => (v === undefined ? '–' : v.toFixed(2));
  const ratio = (v) => (Number.isFinite(v) ? v.toFixed(2) : '–');
  const refLabel = (part) => part.tools.ft.label;
  const promises = ['durable', 'verified', 'encrypted'];
  const table = (part, ids, headers, cells, partNotes = notes) => {
    const heads = [...headers, 'sender peak RSS', 'receiver peak RSS'];
    row(['tool', ...heads, 'durable', 'verifies', 'encrypts']);
    row(['---', ...heads.map(() => '---:'), ...promises.map(() => '---')]);
    for (const [id, label, props] of ROWS) {
      if (!ids.includes(id) || (opts.tools && !opts.tools.has(id))) continue;
      const r = part.tools[id];
      const marks = promises.map((key) => props[key]);
      // A tool that failed keeps its row and says so (the reason is in a note below); its
      // figures are those of the rounds that worked.
      if (r) row([toolCell(r.label, r.runs.length, r.failures?.length ?? 0), ...cells(r), mibText(r.senderPeak), mibText(r.receiverPeak), ...marks]);
      else if (partNotes[id]) row([label, 'skipped', ...heads.slice(1).map(() => '–'), ...marks]);
    }
    lines.push('');
  };
  const cpu = (v) => (v === undefined ? '–' : v.toFixed(2));
  const percent = (v) => (v === undefined ? '–' : `${v.toFixed(0)} %`);
  const linkNotes = { ...notes, ...results.link?.skipped };
  const largeTable = (part, ids, link) =>
    table(part, ids, ['MB/s', 'min–max', ...(link ? ['% of link'] : []), 'seconds', `${refLabel(part)} ÷ tool`, 'sender CPU-s/GiB', 'receiver CPU-s/GiB'], (r) => [
      fmt(r.mbps),
      rangeText(r.range),
      ...(link ? [percent(r.linkPercent)] : []),
      seconds(r.seconds),
      ratio(r.ftRatio),
      cpu(r.senderCpuPerGiB),
      cpu(r.receiverCpuPerGiB),
    ], link ? linkNotes : notes);
  const smallTable = (part, ids, link) =>
    table(part, ids, ['files/s', 'min–max', ...(link ? ['MB/s', '% of link'] : []), 'seconds', `${refLabel(part)} ÷ tool`, 'sender CPU-s/1,000 files', 'receiver CPU-s/1,000 files'], (r) => [
      fmt(r.filesPerSecond),
      rangeText(r.range),
      ...(link ? [fmt(r.mbps), percent(r.linkPercent)] : []),
      seconds(r.seconds),
      ratio(r.ftRatio),
      cpu(r.senderCpuPer1000),
      cpu(r.receiverCpuPer1000),
    ], link ? linkNotes : notes);
  if (results.large) {
    lines.push(`${formatBytes(results.large.bytes)} file, ${rounds}:`, '');
    largeTable(results.large, ROWS.map(([id]) => id), false);
  }
  if (results.small) {
    const part = results.small;
    lines.push(`${part.count.toLocaleString('en-US')} × ${formatBytes(part.size)} files, ${rounds}:`, '');
    smallTable(part, SMALL_ROWS, false);
  }
  const link = results.link;
  if (link?.error) lines.push(`Over a ${link.rate} link: not measured, ${link.error}.`, '');
  if (link?.large) {
    lines.push(`Over a ${link.rate} link (veth pair between two network namespaces, tbf on both ends), ${formatBytes(link.large.bytes)} file, ${rounds}:`, '');
    largeTable(link.large, LINK_ROWS, true);
  }
  if (link?.small) {
    lines.push(`Over the ${link.rate} link, ${link.small.count.toLocaleString('en-US')} × ${formatBytes(link.small.size)} files, ${rounds}:`, '');
    smallTable(link.small, LINK_ROWS, true);
  }

  const targetHeads = {
    11: 'Targets of issue 11 (encrypted ft = ft with its default options):',
    12: "Targets of issue 12 (ft's tus endpoint, which verifies each file's XXH64 and fsyncs it, against @tus/server with its file store, which does neither; the same tus-js-client, the same wire):",
  };
  for (const issue of [11, 12]) {
    const list = (results.targets ?? []).filter((t) => t.issue === issue);
    if (!list.length) continue;
    lines.push(targetHeads[issue], '');
    for (const t of list) {
      const head = `- ${t.refLabel} ÷ ${t.peerLabel}, ${t.what}, ${t.unit}`;
      const caveat = t.aimedAt ? ` (the target is set for ${t.aimedAt})` : '';
      lines.push(t.reason ? `${head}: not measured, ${t.reason}` : `${head}: ${t.ratio.toFixed(2)}, target ≥ ${t.min}: ${t.met ? 'met' : 'NOT MET'}${caveat}`);
    }
    const t = results.large?.tools;
    if (issue === 11 && t?.['ft-plain']) {
      lines.push(`- for reference, ft (TLS) ÷ ft (plaintext), ${formatBytes(results.large.bytes)} file, MB/s: ${ratio(t.ft.mbps / t['ft-plain'].mbps)} (no target)`);
    }
    if (issue === 12 && t?.['tus-ft'] && t.ft) {
      lines.push(`- for reference, tus → ft (HTTPS) ÷ ft send (TLS), ${formatBytes(results.large.bytes)} file, MB/s: ${ratio(t['tus-ft'].mbps / t.ft.mbps)} (no target)`);
    }
    lines.push('');
  }

  const extra = [];
  if (results.latency) {
    const l = results.latency;
    const verdict = l.medianMs < l.targetMs ? 'meets' : 'MISSES';
    extra.push([`\`ft send\`${l.tls ? ' (TLS)' : ''} of one ${l.bytes} B file, start to exit (median of ${l.runs.length})`, `${l.medianMs.toFixed(0)} ms (min ${l.minMs.toFixed(0)}, max ${l.maxMs.toFixed(0)}; ${verdict} the < ${l.targetMs} ms target)`]);
    extra.push(['for reference: `node -e 0` / `ft --version`', `${l.nodeStartupMs.toFixed(0)} ms / ${l.ftVersionMs.toFixed(0)} ms`]);
  }
  const mem = (value) => (value ? `${(value / 1024 ** 2).toFixed(0)} MiB` : 'n/a');
  if (results.large) {
    const m = results.large.memory;
    extra.push([`${refLabel(results.large)} receiver peak RSS, ${formatBytes(results.large.bytes)} file`, mem(m.receiverPeak)]);
    extra.push([`${refLabel(results.large)} sender peak RSS, ${formatBytes(results.large.bytes)} file`, mem(m.senderPeak)]);
  }
  if (results.small) {
    const m = results.small.memory;
    extra.push([`${refLabel(results.small)} receiver / sender peak RSS, ${results.small.count.toLocaleString('en-US')} small files`, `${mem(m.receiverPeak)} / ${mem(m.senderPeak)}`]);
  }
  // The tus rows' memory: ft serve's endpoint beside @tus/server, each with the client's.
  for (const [part, what] of [[results.large, results.large && `${formatBytes(results.large.bytes)} file`], [results.small, results.small && `${results.small.count.toLocaleString('en-US')} small files`]]) {
    for (const id of ['tus-ft', 'tus-node-tls']) {
      const r = part?.tools[id];
      if (r?.runs.length) extra.push([`${r.label}: receiver / client peak RSS, ${what}`, `${mem(peakOf(r.runs, 'receiverPeak'))} / ${mem(peakOf(r.runs, 'senderPeak'))}`]);
    }
  }
  if (extra.length) {
    lines.push('| ft | value |', '| --- | --- |');
    for (const [what, value] of extra) lines.push(`| ${what} | ${value} |`);
    lines.push('');
  }

  const perRound = (part, key, unit) => {
    for (const r of Object.values(part.tools)) lines.push(`- ${r.label}: ${r.runs.map((x) => fmt(x[key])).join(', ')} ${unit}`);
  };
  const perRoundParts = [
    [results.large, 'large file', 'mbps', 'MB/s'],
    [results.small, 'small files', 'filesPerSecond', 'files/s'],
    [link?.large, 'large file over the link', 'mbps', 'MB/s'],
    [link?.small, 'small files over the link', 'filesPerSecond', 'files/s'],
  ].filter(([part]) => part && opts.rounds > 1);
  for (const [part, what, key, unit] of perRoundParts) {
    lines.push(`Per round, ${what}:`);
    perRound(part, key, unit);
  }
  if (perRoundParts.length) lines.push('');

  const m = results.machine;
  const versions = [`node ${m.node}`];
  if (results.versions.socat) versions.push(`socat ${results.versions.socat}`);
  if (results.versions.rsync) versions.push(`rsync ${results.versions.rsync}`);
  if (results.versions.openssh) versions.push(results.versions.openssh);
  const busy = results.busyBefore === undefined ? '' : `${(results.busyBefore * 100).toFixed(0)}% CPU in use before the run, `;
  const load = `${busy}load average ${m.loadAverage.join(' ')} at the start`;
  if (results.busyBefore > BUSY_WARNING) {
    lines.push(`Warning: ${(results.busyBefore * 100).toFixed(0)}% of the CPU time was in use by other work just before the run; treat these figures as noisy.`, '');
  }
  lines.push(`Machine: ${m.nproc} CPUs (${m.cpu}), ${m.memoryGiB} GiB RAM, ${m.kernel} ${m.arch}; ${versions.join(', ')}; ${load}. Date: ${results.date}.`);
  lines.push('');
  lines.push(
    'All traffic on 127.0.0.1, source files in the page cache, tools alternated round by round, each round starting with the next tool. MB/s = 10^6 bytes per second of wall time, from starting the sender to the data being on the receiving side. ' +
      'ft: `ft send` from process start to exit (the receiver hashes with xxh64, fsyncs and renames each file before confirming; the large file, last modified an hour before, is hashed by the sender as it is sent); ' +
      'ft (TLS) runs with default options, ft (plaintext) with `--insecure-plaintext` on both sides. ' +
      'node-copy: Node socket piped into fs.createWriteStream, no hash, no fsync. ' +
      `socat: \`socat -b${SOCAT_BLOCK} -u\`, no fsync; socat+fsync adds \`sync FILE DIR\` (fsync of the file and its folder) on the receiver. ` +
      'rsync: daemon on loopback, `rsync -a --whole-file --checksum-choice=xxh128` into an empty folder (whole-file checksum, temp file + rename, no fsync); rsync+fsync adds `--fsync` (fsync of each file, not of its folder). ' +
      `rsync -e ssh and scp (\`scp -p\`, -r for folders; SFTP protocol): to a private sshd on loopback (own host and client keys, empty HOME), with \`-c ${GCM_CIPHER}\` (AES-GCM) or ssh's default cipher negotiation, nothing fsynced. ` +
      'ft (TLS), source just written: the same, but the large file is first copied to a new file with plain writes (outside the timed part, not synced: dirty in the page cache, modified just now), so the sender hashes it whole before sending (the one-minute rule) instead of while sending. ' +
      'magic-wormhole: `wormhole send` and `wormhole receive --accept-file` with the same code, started together, both inside a network namespace with only loopback up, with a local mailbox server and transit relay there (`--relay-url`, `--transit-helper`); folders are zipped by the sender and unzipped by the receiver; the receiver\'s SHA-256 is compared by the sender; nothing fsynced; both sides\' CPU and memory include Python\'s start-up. ' +
      'CPU: seconds of user + system time per GiB (per 1,000 files for small files), sender = the whole sending process and its children (`/usr/bin/time`), receiver = the receiving process tree from ready to done ' +
      '(the sshd connection processes for ssh, including key exchange and login), from /proc utime + stime + cutime + cstime. ' +
      'tus rows: tus-js-client 4 in Node (bench/tus-client.js, a process of its own: the sender), which computes each file\'s XXH64 (xxhash-wasm, as the upload page does) and sends it as `hash` metadata to every server alike, then uploads it (POST, then one PATCH of the whole file), ' +
      `${TUS_CONCURRENCY} uploads at once over keep-alive connections for the small files (each as \`files/<name>\` by relativePath); ` +
      'to `ft serve`\'s endpoint (`/files/`: HTTPS on ft\'s own port with its identity; in plaintext, its HTTP port), where each upload is verified, fsynced and renamed into the inbox before the last PATCH is answered, ' +
      'and to @tus/server 2 + @tus/file-store (bench/tus-server.js: HTTP, or HTTPS with a self-signed P-256 certificate and ft\'s TLS 1.3 settings), which writes each upload to its own file and neither verifies nor fsyncs. ' +
      'Peak RSS: the highest VmHWM of one process on that side (`/usr/bin/time` %M; for a server, the server or any child it forked for the connection, polled). ' +
      'Ratio = ft ÷ tool: below 1 means ft is slower.' +
      (link?.rateBits
        ? ` Over the link: the receiving side (ft serve, socat, rsync daemon, sshd) in one network namespace, the sender in another, joined by a veth pair with \`tc qdisc tbf rate ${link.rate} burst 256k latency 20ms\` on both ends; % of link = payload MB/s × 8 ÷ the rate.`
        : ''),
  );
  for (const [ids, note] of groupedNotes(notes)) lines.push('', `Note: ${ids.includes('cpu') ? note : `${ids.join(', ')} skipped: ${note}`}.`);
  for (const [ids, note] of groupedNotes(results.link?.skipped ?? {})) lines.push('', `Note: over the link, ${ids.join(', ')} skipped: ${note}.`);
  const cpuNotes = [];
  for (const part of [results.large, results.small, link?.large, link?.small]) {
    for (const r of Object.values(part?.tools ?? {})) if (r.cpuNote) cpuNotes.push(`${r.label}: ${r.cpuNote}`);
  }
  for (const note of cpuNotes) lines.push('', `Note: ${note}.`);
  for (const [part, what] of [[results.large, 'large file'], [results.small, 'small files'], [link?.large, 'large file over the link'], [link?.small, 'small files over the link']]) {
    for (const r of Object.values(part?.tools ?? {})) {
      if (r.failures?.length) lines.push('', `Note: ${r.label} failed in ${r.failures.length} of ${opts.rounds} rounds (${what}): ${[...new Set(r.failures)].join('; ')}.`);
    }
  }
  return lines.join('\n') + '\n';
}

/* ================================================================ main */

/** Skip notes as [ids, note] with the ids that share a note together (one line for all ssh rows). */
function groupedNotes(notes) {
  const byNote = new Map();
  for (const [id, note] of Object.entries(notes)) byNote.set(note, [...(byNote.get(note) ?? []), id]);
  return [...byNote].map(([note, ids]) => [ids, note]);
}

/** The private sshd for the ssh rows, or a reason to skip them (also written to `skipped`). */
async function sshdForRows(tools, skipped) {
  if (tools.ssh.missing) return undefined;
  const dir = path.join(workDir, 'sshd');
  if (/[\s'"\\]/.test(dir)) {
    for (const id of SSH_IDS) skipped[id] ??= `the work folder ${workDir} has a space or quote, which rsync -e and scp would need quoted (use --dir)`;
    return undefined;
  }
  try {
    const sshd = await startSshd(tools.ssh, dir, onCleanup);
    log(`bench: sshd on 127.0.0.1:${sshd.port} (default cipher ${cipherName(sshd.defaultCipher)})`);
    return sshd;
  } catch (error) {
    const reason = `the private sshd did not start: ${error.message.split('\n').map((l) => l.trim()).filter(Boolean).join(' ').slice(0, 300)}`;
    log(`bench: skipping scp and rsync -e ssh: ${reason}`);
    for (const id of SSH_IDS) skipped[id] ??= reason;
    return undefined;
  }
}

/** The wormhole mailbox server and transit relay in their namespace, or undefined (reason in `skipped`). */
async function wormholeForRows(opts, tools, skipped) {
  if (tools.wormhole.missing || (opts.tools && !opts.tools.has('wormhole'))) return undefined;
  try {
    const servers = await startWormholeServers(tools.wormhole, path.join(workDir, 'wormhole'), onCleanup);
    log('bench: wormhole mailbox server and transit relay in a namespace with only loopback');
    return servers;
  } catch (error) {
    skipped.wormhole = `the mailbox server or transit relay did not start: ${error.message.split('\n').map((l) => l.trim()).filter(Boolean).join(' ').slice(0, 300)}`;
    log(`bench: skipping wormhole: ${skipped.wormhole}`);
    return undefined;
  }
}

/**
 * The --link part: the two namespaces and their shaped veth pair, an sshd in the receiving one,
 * then the large file and the small files with LINK_ROWS; everything removed after.
 */
async function benchLink(opts, tools) {
  const rate = opts.linkText;
  const missing = netnsMissing();
  if (missing) {
    log(`bench: --link not run: ${missing}`);
    return { rate, error: missing };
  }
  const link = createLink(opts.linkBits, onCleanup);
  log(`bench: --link ${rate}: ${link.server.name} (${link.serverAddress}, receivers) <-> ${link.client.name} (${LINK_CLIENT_ADDRESS}, senders)`);
  const net = { link: true, host: link.serverAddress, serverWrap: link.server.wrap, clientWrap: link.client.wrap, rateBits: link.rateBits };
  const linkSkipped = {};
  let sshd;
  if (!tools.ssh.missing && (!opts.tools || opts.tools.has('scp-gcm') || opts.tools.has('rsync-ssh-gcm'))) {
    try {
      sshd = await startSshd(tools.ssh, path.join(workDir, 'sshd-link'), onCleanup, net);
    } catch (error) {
      const reason = `the sshd on the link did not start: ${error.message.split('\n')[0]}`;
      for (const id of ['scp-gcm', 'rsync-ssh-gcm']) linkSkipped[id] = reason;
      log(`bench: skipping scp and rsync -e ssh on the link: ${reason}`);
    }
  }
  const result = { rate, rateBits: link.rateBits, skipped: linkSkipped };
  try {
    if (opts.parts.has('large')) result.large = await benchLarge(opts, tools, sshd, { net, tag: 'link large' });
    if (opts.parts.has('small')) result.small = await benchSmall(opts, tools, sshd, { net, tag: 'link small' });
  } finally {
    await sshd?.stop();
    link.remove();
  }
  return result;
}

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  installCleanup();
  if (!fs.existsSync(FT_DIST)) throw new BenchError(`${FT_DIST} is missing: build first (npm run build, or use npm run bench)`);
  if (opts.ft) {
    FT = path.resolve(opts.ft);
    if (!fs.existsSync(FT)) throw new BenchError(`--ft ${FT} does not exist`);
  }
  const tools = findTools();
  const skipped = skippedNotes(tools);
  Object.assign(skipped, tusSkippedNotes());
  for (const [ids, note] of groupedNotes(skipped)) log(ids.includes('cpu') ? `bench: ${note}` : `bench: skipping ${ids.join(', ')}: ${note}`);
  if (tools.rsync && !tools.rsyncXxh128) log('bench: this rsync has no xxh128; using its default checksum');
  if (process.platform !== 'linux') log('bench: not Linux; peak memory and CPU readings and listening checks may be unavailable');
  log(ftFeatures().plaintext ? 'bench: this ft has --insecure-plaintext: running ft (TLS) and ft (plaintext)' : 'bench: this ft has no --insecure-plaintext (no TLS yet): one ft row');

  const busyBefore = await cpuBusy();
  if (busyBefore > BUSY_WARNING) log(`bench: warning: ${(busyBefore * 100).toFixed(0)}% of the CPU time is already in use; other work on this machine will make the figures noisy`);

  makeWorkDir(opts.dir);
  log(`bench: work folder ${workDir}`);
  let needed = 64 * 1024 ** 2;
  if (opts.parts.has('large')) needed += opts.size * 3.2; // source, received copy, ft-fresh's copy
  if (opts.parts.has('small')) needed += opts.smallCount * Math.max(opts.smallSize, 4096) * 2.5;
  checkFreeSpace(workDir, needed);

  const results = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    versions: { socat: tools.socatVersion, rsync: tools.rsyncVersion, openssh: tools.ssh.version },
    settings: { rounds: opts.rounds, size: opts.size, smallCount: opts.smallCount, smallSize: opts.smallSize, latencyRuns: opts.latencyRuns, parts: [...opts.parts], quick: opts.quick, ft: FT },
    ftFeatures: ftFeatures(),
    skipped,
    busyBefore,
  };
  const transfers = opts.parts.has('large') || opts.parts.has('small');
  const sshd = transfers ? await sshdForRows(tools, skipped) : undefined;
  const peers = { wormhole: transfers ? await wormholeForRows(opts, tools, skipped) : undefined };
  if (opts.parts.has('large')) results.large = await benchLarge(opts, tools, sshd, { peers });
  if (opts.parts.has('small')) results.small = await benchSmall(opts, tools, sshd, { peers });
  await sshd?.stop();
  await peers.wormhole?.stop();
  if (opts.linkBits && transfers) results.link = await benchLink(opts, tools);
  if (opts.parts.has('latency')) results.latency = await benchLatency(opts);
  results.targets = targets(results, opts);
  cleanupSync();
  process.stdout.write(opts.json ? `${JSON.stringify(results, null, 2)}\n` : `\n${markdown(results, opts)}`);
}

main().catch((error) => {
  const message = error instanceof BenchError ? error.message : (error?.stack ?? String(error));
  log(`bench: error: ${message}`);
  cleanupSync();
  process.exitCode = 1;
});
