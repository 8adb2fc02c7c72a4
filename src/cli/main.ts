import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { FtError } from '../errors.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { escapeControls } from '../names/safe-name.js';
import { CONFLICT_POLICIES, type ConflictPolicy } from '../storage/conflict-policy.js';
import { DISCOVER_DEFAULTS, SEND_DEFAULTS, SERVE_DEFAULTS } from '../defaults.js';
import { jsonLine } from './format.js';
import { durationText, parseCount, parsePartialTtl, parsePort, parsePositiveCount, parseRate, parseSeconds, parseSize, seconds } from './options.js';

/** Exit code when the user interrupts a send (128 + SIGINT, as shells report it). */
const EXIT_INTERRUPTED = 130;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(setExit: (code: number) => void, printed: Set<unknown>): Command {
  const program = new Command('ft')
    .description('Fast, resumable, verified file transfer on the local network')
    .version(version(), '-V, --version')
    // One line per mistake, in the same `ft: …` form as every other error (inherited by the commands).
    .configureOutput({ outputError: (text, write) => write(`ft: ${text.replace(/^error: /, '').trimEnd()} (see --help)\n`) })
    .exitOverride((error) => {
      printed.add(error);
      throw error;
    });

  program
    .command('serve')
    .description('receive files into a folder')
    .argument('[dir]', 'folder (created if missing) or s3://bucket/prefix', SERVE_DEFAULTS.dir)
    .option('-p, --port <n>', 'TCP port to listen on', parsePort, SERVE_DEFAULTS.port)
    .option('--host <address>', 'address to listen on (default: all interfaces)')
    .addOption(
      new Option('--on-conflict <policy>', 'when a different file has the name: keep both, replace, or refuse')
        .choices(CONFLICT_POLICIES as ConflictPolicy[])
        .default(SERVE_DEFAULTS.onConflict),
    )
    .option('--max-file-size <size>', 'refuse files larger than this (e.g. 10G)', parseSize)
    .addOption(
      new Option('--partial-ttl <duration>', 'delete unfinished uploads untouched this long (e.g. 12h, 7d)')
        .argParser(parsePartialTtl)
        .default(SERVE_DEFAULTS.partialTtlMs, durationText(SERVE_DEFAULTS.partialTtlMs)),
    )
    .option('--max-connections <n>', 'concurrent connections in all', parsePositiveCount, SERVE_DEFAULTS.maxConnections)
    .option('--max-connections-per-address <n>', 'concurrent connections from one address (an IPv6 /64 counts as one)', parsePositiveCount, SERVE_DEFAULTS.maxConnectionsPerAddress)
    .option('--max-unauthenticated <n>', 'connections still greeting; the oldest gives way to a newcomer', parsePositiveCount, SERVE_DEFAULTS.maxUnauthenticated)
    .option('--max-partials <n>', 'unfinished uploads kept, in all', parsePositiveCount, SERVE_DEFAULTS.maxPartials)
    .option('--max-partials-per-peer <n>', 'unfinished uploads kept per peer', parsePositiveCount, SERVE_DEFAULTS.maxPartialsPerPeer)
    .option('--min-rate <size>', 'drop a body arriving slower than this per second (0: no minimum)', parseSize, SERVE_DEFAULTS.minBodyRate)
    .option('--limit-rate <rate>', 'receive at most this much per second, all uploads together (e.g. 20M = 20 MiB/s; at least 32K)', parseRate)
    .option('--idle-timeout <seconds>', 'drop a connection silent for this long', parseSeconds, seconds(SERVE_DEFAULTS.idleTimeoutMs))
    .option('--hello-timeout <seconds>', 'drop a connection that has not said hello within this time', parseSeconds, seconds(SERVE_DEFAULTS.helloTimeoutMs))
    .option('--name <name>', 'name shown to senders (default: host name)')
    .option('--token-file <file>', 'require senders to prove this shared secret (or set FT_TOKEN)')
    .option('--identity <dir>', "folder of this receiver's key and certificate, created on first use (default: ~/.config/ft/identity on Linux)")
    .option('--insecure-plaintext', 'no TLS: anyone on the network can read and change what is sent, and senders cannot tell this receiver from an impostor (senders must give it too)')
    .option('--no-web', 'do not serve the upload page and tus endpoint (only `ft send` can upload)')
    .option('--web-port <n>', 'with --insecure-plaintext: port for the page over plain HTTP (default: --port + 1)', parsePort)
    .option('--allow-unverified', 'accept web and tus uploads without a whole-file hash (reported as unverified)')
    .option('--no-beacon', 'do not announce this receiver on the LAN')
    .option('--beacon-interval <seconds>', 'seconds between announcements', parseSeconds, SERVE_DEFAULTS.beaconInterval)
    .option('--interface <name|address>', 'announce on this network interface only')
    .option('--discovery-port <n>', 'UDP port for beacons and discovery queries', parsePort, SERVE_DEFAULTS.discoveryPort)
    .option('--json', 'print one JSON object per line for each event')
    .option('--s3-endpoint <url>', 'with s3://bucket/prefix: the S3-compatible service (Ceph, MinIO, …; path-style addresses; default: AWS)')
    // Each command loads its own code: a small `ft send` starts faster without the receiver's.
    .action(async (dir: string, options) => setExit(await (await import('./serve-command.js')).serveCommand(dir, options)));

  program
    .command('send')
    .description('send files and folders to a receiver')
    .argument('<paths...>', 'files or folders to send (folders keep their relative paths), or - for standard input (with --as)')
    .option('--as <name>', 'with -: the name standard input is stored under on the receiver')
    .option('-t, --to <receiver>', 'receiver: address[:port], host name, or a name from `ft discover` (default: the only receiver found)')
    .option('--retries <n>', 'reconnect attempts when the connection drops', parseCount, SEND_DEFAULTS.retries)
    .option('--connect-timeout <seconds>', 'give up connecting after this long', parseSeconds, seconds(SEND_DEFAULTS.connectTimeoutMs))
    .option('--idle-timeout <seconds>', 'give up on a receiver silent (or not reading) for this long', parseSeconds, seconds(SEND_DEFAULTS.idleTimeoutMs))
    .option('--no-hash-cache', 'always hash large files anew (default: reuse hashes of unchanged files from ~/.cache/ft)')
    .option('--limit-rate <rate>', 'send at most this much per second, all files together (e.g. 20M = 20 MiB/s; at least 32K)', parseRate)
    .option('--follow-symlinks', 'follow symbolic links inside folders (default: skip them; paths given are always followed)')
    .option('--preserve-mode', 'give the received files these permission bits (rwx only, less the receiver\'s umask; the modification time is always kept)')
    .option('--token-file <file>', 'shared secret the receiver requires (or set FT_TOKEN); it also proves the receiver to us')
    .option('--fingerprint <fp>', "the receiver's key, as `ft serve` printed it: anything else is refused")
    .option('--trust-new', 'on first contact, trust the receiver unchecked and pin its key (default: ask on a terminal, else refuse)')
    .option('--trust-file <file>', 'the file of pinned receivers (default: ~/.config/ft/known-receivers.json on Linux)')
    .option('--insecure-plaintext', 'no TLS: anyone on the network can read and change what is sent, and the receiver is not authenticated (it must run with it too)')
    .option('--sender-key <file>', 'owner key for resuming and "already there" (default: ~/.config/ft/sender-key.pem on Linux, created on first use)')
    .option('--interface <name|address>', 'look for receivers on this network interface only')
    .option('--discovery-port <n>', 'UDP port receivers answer discovery on', parsePort, DISCOVER_DEFAULTS.port)
    .option('--json', 'print one JSON object per line for each event')
    .action(async (paths: string[], options) => setExit(await (await import('./send-command.js')).sendCommand(paths, options)));

  program
    .command('discover')
    .description('list receivers on the local network')
    .option('--timeout <seconds>', 'how long to wait for answers', parseSeconds, seconds(DISCOVER_DEFAULTS.timeout))
    .option('--interface <name|address>', 'ask on this network interface only')
    .option('--discovery-port <n>', 'UDP port receivers answer discovery on', parsePort, DISCOVER_DEFAULTS.port)
    .option('--trust-file <file>', 'the file of pinned receivers, to mark names claimed with another key (default: ~/.config/ft/known-receivers.json on Linux)')
    .option('--json', 'print one JSON object per line for each receiver')
    .action(async (options) => {
      const { pinnedByName } = await import('./trust-command.js');
      const { defaultTrustStorePath } = await import('../auth/trust-store.js');
      const pinnedFingerprint = pinnedByName(options.trustFile ?? defaultTrustStorePath());
      setExit(await (await import('./discover-command.js')).discoverCommand({ ...options, pinnedFingerprint }));
    });

  program
    .command('status')
    .description('list the unfinished uploads an inbox keeps for resume (reads only: safe beside ft serve)')
    .argument('[dir]', 'the inbox folder (or s3://bucket/prefix), as given to ft serve', SERVE_DEFAULTS.dir)
    .addOption(
      new Option('--partial-ttl <duration>', "ft serve's --partial-ttl, so that expiry times are its own")
        .argParser(parsePartialTtl)
        .default(SERVE_DEFAULTS.partialTtlMs, durationText(SERVE_DEFAULTS.partialTtlMs)),
    )
    .option('--json', 'print one JSON object per line: each upload, each unreadable entry, then a summary')
    .option('--s3-endpoint <url>', 'with s3://bucket/prefix: the S3-compatible service, as given to ft serve')
    .action(async (dir: string, options) => setExit(await (await import('./status-command.js')).statusCommand(dir, options)));

  const trust = program.command('trust').description('show or forget the receivers this sender has pinned (their keys)');
  trust
    .command('list')
    .description('list the pinned receivers: fingerprint, names, addresses, when first pinned and last seen')
    .option('--trust-file <file>', 'the file of pinned receivers (default: ~/.config/ft/known-receivers.json on Linux)')
    .option('--json', 'print one JSON object per line for each pinned receiver')
    .action(async (options) => setExit(await (await import('./trust-command.js')).trustListCommand(options)));
  trust
    .command('forget')
    .description('forget a receiver, to accept a deliberate change of its key')
    .argument('<receiver>', 'its name, address (host:port, or a host for every port) or fingerprint (short or full)')
    .option('--trust-file <file>', 'the file of pinned receivers (default: ~/.config/ft/known-receivers.json on Linux)')
    .action(async (what: string, options) => setExit(await (await import('./trust-command.js')).trustForgetCommand(what, options)));

  return program;
}

/** Runs the CLI and returns the exit code; the only place that turns errors into messages. */
export async function run(argv: string[]): Promise<number> {
  // A reader that went away (`ft send … | head -1`) is no reason to stop a transfer, nor to print a stack trace.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  let exitCode: number = EXIT.OK;
  // Errors Commander has printed itself; one thrown by an option check inside a command has not been.
  const printed = new Set<unknown>();
  const program = buildProgram((code) => (exitCode = code), printed);
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError && printed.has(error)) {
      // Commander has already printed its one-line message (or the help / version).
      return ['commander.helpDisplayed', 'commander.version', 'commander.help'].includes(error.code) ? EXIT.OK : EXIT.USAGE;
    }
    if (error instanceof CommanderError) {
      process.stderr.write(`ft: ${escapeControls(error.message)}\n`);
      if (json) process.stdout.write(JSON.stringify({ event: 'error', code: 'USAGE', message: error.message }) + '\n');
      return EXIT.USAGE;
    }
    if (error instanceof FtError && error.code === 'ABORTED') {
      const again = error.details.stream ? 'a stream cannot resume: run the job again' : 'run the same command again to resume';
      process.stderr.write(`ft: interrupted; ${again}\n`);
      return EXIT_INTERRUPTED;
    }
    const ftError = error instanceof FtError ? error : undefined;
    if (json && ftError) process.stdout.write(jsonLine('error', { code: ftError.code, message: ftError.message }));
    if (ftError) {
      // Loaded here only: most runs never fail, and --version should start fast.
      const { durationsInWords } = await import('./format.js');
      process.stderr.write(`ft: ${escapeControls(durationsInWords(ftError.message))}\n`);
      return exitCodeFor(ftError.code);
    }
    process.stderr.write(`ft: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return EXIT.OTHER;
  }
}
