// The magic-wormhole row of bench/run.js: a local mailbox server and transit relay (twistd
// plugins from python3-magic-wormhole-mailbox-server and magic-wormhole-transit-relay) and both
// `wormhole` ends, all inside a network namespace with only loopback up: wormhole advertises
// every interface's address as a direct-connection hint, and it must not reach a real one.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BenchError, capture, describeOutput, expectSuccess, startTimed, start, stop, waitForListen, which } from './lib.js';
import { createNamespace, netnsMissing } from './netns.js';

const MAILBOX_PORT = 4000; // the namespace is new and empty: wormhole's own default ports are free
const RELAY_PORT = 4001;

/** The programs, or a one-line reason why the wormhole row cannot run. */
export function findWormhole() {
  const wormhole = which('wormhole');
  const twistd = which('twistd3') ?? which('twistd');
  const version = wormhole ? /magic-wormhole\s+(\S+)/.exec(capture(wormhole, ['--version']) ?? '')?.[1] : undefined;
  const plugins = twistd ? capture(twistd, ['--help']) ?? '' : '';
  let missing = netnsMissing();
  if (!wormhole) missing ??= 'wormhole not installed (apt-get install --no-install-recommends magic-wormhole)';
  else if (!twistd || !/\bwormhole-mailbox\b/.test(plugins)) missing ??= 'no mailbox server (apt-get install --no-install-recommends python3-magic-wormhole-mailbox-server)';
  else if (!/\btransitrelay\b/.test(plugins)) missing ??= 'no transit relay (apt-get install --no-install-recommends magic-wormhole-transit-relay)';
  return { wormhole, twistd, version, missing };
}

/**
 * The namespace with the mailbox server and the transit relay listening on its loopback.
 * Returns { wrap, relayArgs, stop() }; everything is also removed by the run's cleanup.
 */
export async function startWormholeServers(tools, dir, onCleanup) {
  fs.mkdirSync(dir, { recursive: true });
  const ns = createNamespace('wh', onCleanup);
  const servers = [];
  try {
    const twistd = (name, plugin, port, extra) => {
      // -n: stay in the foreground (a tracked child); no pid file, log to a file in the work folder.
      const args = ['-n', '--pidfile=', '-l', path.join(dir, `${plugin}.log`), plugin, `--port=tcp:${port}:interface=127.0.0.1`, ...extra];
      const proc = start(name, tools.twistd, args, { cwd: dir, wrap: ns.wrap });
      servers.push(proc);
      return proc;
    };
    const mailbox = twistd('wormhole mailbox server', 'wormhole-mailbox', MAILBOX_PORT, [`--channel-db=${path.join(dir, 'mailbox.sqlite')}`]);
    const relay = twistd('wormhole transit relay', 'transitrelay', RELAY_PORT, []);
    await waitForListen(mailbox, MAILBOX_PORT, { namespaced: true, timeoutMs: 30_000 });
    await waitForListen(relay, RELAY_PORT, { namespaced: true, timeoutMs: 30_000 });
  } catch (error) {
    for (const proc of servers) await stop(proc);
    ns.remove();
    throw error;
  }
  return {
    wrap: ns.wrap,
    relayArgs: ['--relay-url', `ws://127.0.0.1:${MAILBOX_PORT}/v1`, '--transit-helper', `tcp:127.0.0.1:${RELAY_PORT}`],
    async stop() {
      for (const proc of servers) await stop(proc);
      ns.remove();
    },
  };
}

let codes = 0;

/**
 * `wormhole send` and `wormhole receive --accept-file` started together with the same code (a
 * new one per run), both under time: sender and receiver CPU and peak RSS are the whole processes,
 * Python start-up and key exchange included. The clock runs from starting both to both exiting.
 * A folder is zipped by the sender (into TMPDIR: the run's folder) and unzipped by the receiver.
 */
export function wormholeContender(tools, servers, part) {
  return {
    id: 'wormhole',
    label: 'magic-wormhole',
    async run(ctx) {
      const dest = path.join(ctx.outDir, 'dest');
      fs.mkdirSync(dest);
      const code = `${++codes}-ftbench-${crypto.randomBytes(6).toString('hex')}`;
      const env = { ...process.env, TMPDIR: ctx.outDir };
      const source = part.paths(ctx)[0];
      const base = [...servers.relayArgs];
      const timeoutMs = part.timeoutMs(ctx);
      const t0 = process.hrtime.bigint();
      const sender = startTimed(tools.time, path.join(ctx.outDir, 'wormhole-send.time'), 'wormhole send', tools.wormhole.wormhole, [...base, 'send', '--hide-progress', '--code', code, source], { env, wrap: servers.wrap });
      const receiver = startTimed(tools.time, path.join(ctx.outDir, 'wormhole-receive.time'), 'wormhole receive', tools.wormhole.wormhole, [...base, 'receive', '--hide-progress', '--accept-file', code], { env, cwd: dest, wrap: servers.wrap });
      try {
        await Promise.all([expectSuccess(sender, timeoutMs), expectSuccess(receiver, timeoutMs)]);
      } catch (error) {
        await Promise.all([stop(sender), stop(receiver)]);
        throw new BenchError(`${error.message}${describeOutput(receiver)}`);
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const sent = sender.usage();
      const received = receiver.usage();
      return {
        seconds,
        senderCpu: sent?.cpuSeconds,
        senderPeak: sent?.maxRss,
        receiverCpu: received?.cpuSeconds,
        receiverPeak: received?.maxRss,
        ...part.received(dest, ctx),
      };
    },
  };
}
