// Network namespaces for bench/run.js (Linux, root): one with only loopback up, for tools that
// advertise every interface's address (magic-wormhole), and a pair joined by a veth link with a
// `tbf` rate limit, for the --link rows. Namespaces are named ftb-<bench pid>-<tag>, removed at
// the end (cleanup hook, also on Ctrl-C) together with any process still inside them.
import { spawnSync } from 'node:child_process';
import { BenchError, which } from './lib.js';

/** Addresses of the two ends of the --link veth pair (a private /30 nobody else routes). */
export const LINK_SERVER_ADDRESS = '10.213.77.1';
export const LINK_CLIENT_ADDRESS = '10.213.77.2';

/** Why namespaces cannot be made here, or undefined. */
export function netnsMissing() {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the bench as root)';
  if (!(which('ip') ?? which('ip', '/usr/sbin:/sbin'))) return 'ip not installed (apt-get install iproute2)';
  return undefined;
}

function ipCommand() {
  return which('ip') ?? which('ip', '/usr/sbin:/sbin');
}

function tcCommand() {
  return which('tc') ?? which('tc', '/usr/sbin:/sbin');
}

function run(command, args) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 10_000 });
  if (result.error || result.status !== 0) {
    throw new BenchError(`${command} ${args.join(' ')} failed: ${(result.stderr || result.error?.message || `exit ${result.status}`).trim()}`);
  }
  return result.stdout;
}

/** Kills every process left in the namespace, then deletes it (with its veth end). Synchronous. */
function removeNamespace(name) {
  const ip = ipCommand();
  const pids = spawnSync(ip, ['netns', 'pids', name], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  for (const pid of pids.split('\n').map(Number).filter(Boolean)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  spawnSync(ip, ['netns', 'del', name], { timeout: 10_000 });
}

let counter = 0;

/**
 * A new namespace with only `lo` up: { name, wrap(command, args) -> [command, args] running it
 * inside (ip netns exec execs in place, so the pid is the tool's), remove() }.
 */
export function createNamespace(tag, onCleanup) {
  const ip = ipCommand();
  const name = `ftb-${process.pid}-${tag}-${++counter}`;
  run(ip, ['netns', 'add', name]);
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    removeNamespace(name);
  };
  onCleanup(remove);
  try {
    run(ip, ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (error) {
    remove();
    throw error;
  }
  return { name, wrap: (command, args) => [ip, ['netns', 'exec', name, command, ...args]], remove };
}

/** `1gbit`, `100mbit`, `500kbit` -> bits per second (tc's units, decimal). */
export function parseRate(text) {
  const match = /^(\d+(?:\.\d+)?)\s*(k|m|g)?bit$/i.exec(String(text).trim());
  if (!match) throw new BenchError(`--link expects a rate such as 1gbit or 100mbit, got "${text}"`);
  const bits = Number(match[1]) * { '': 1, k: 1e3, m: 1e6, g: 1e9 }[(match[2] ?? '').toLowerCase()];
  if (bits < 1e6) throw new BenchError(`--link: at least 1mbit, got "${text}"`);
  return bits;
}

/**
 * Two namespaces joined by a veth pair, each end shaped to `rateBits` by a tbf qdisc on its
 * egress (both directions, so acknowledgements see the same link). Returns { server, client,
 * serverAddress, clientAddress, rateBits, remove() }.
 */
export function createLink(rateBits, onCleanup) {
  const ip = ipCommand();
  const tc = tcCommand();
  if (!tc) throw new BenchError('tc not installed (apt-get install iproute2)');
  const server = createNamespace('srv', onCleanup);
  const client = createNamespace('cli', onCleanup);
  try {
    const [vs, vc] = [`ftbs${process.pid % 100000}`, `ftbc${process.pid % 100000}`];
    run(ip, ['link', 'add', vs, 'netns', server.name, 'type', 'veth', 'peer', 'name', vc, 'netns', client.name]);
    for (const [ns, dev, address] of [[server, vs, LINK_SERVER_ADDRESS], [client, vc, LINK_CLIENT_ADDRESS]]) {
      run(ip, ['-n', ns.name, 'addr', 'add', `${address}/30`, 'dev', dev]);
      run(ip, ['-n', ns.name, 'link', 'set', dev, 'up']);
      // burst: at least one 64 KiB GSO segment (veth hands those over whole) plus headroom; the
      // queue holds 20 ms at the rate, as a switch port might.
      run(tc, ['-n', ns.name, 'qdisc', 'add', 'dev', dev, 'root', 'tbf', 'rate', `${rateBits}bit`, 'burst', '256k', 'latency', '20ms']);
    }
  } catch (error) {
    server.remove();
    client.remove();
    throw error;
  }
  return {
    server,
    client,
    serverAddress: LINK_SERVER_ADDRESS,
    clientAddress: LINK_CLIENT_ADDRESS,
    rateBits,
    remove() {
      server.remove();
      client.remove();
    },
  };
}
