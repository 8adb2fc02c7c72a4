/**
 * A real small LAN: three network namespaces (two hosts and a bridge) joined by veth pairs.
 * `ft serve` runs on host A; from host B, `ft discover` finds it by name and `ft send --to NAME`
 * delivers a file. The addresses (198.18.0.0/24, reserved for network testing) exist only
 * inside the namespaces this test creates and deletes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FT = path.join(ROOT, 'bin/ft.js');
const FIXTURE = path.join(ROOT, 'fixtures/three-body.txt');
const tag = randomBytes(3).toString('hex');
const ns = { a: `ft-a-${tag}`, b: `ft-b-${tag}`, bridge: `ft-br-${tag}` };

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe', timeout: 10_000 });
}

function createLan(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    for (const name of Object.values(ns)) ip('netns', 'add', name);
    ip('-n', ns.bridge, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', ns.bridge, 'link', 'set', 'br0', 'up');
    for (const [host, address] of [['a', '198.18.0.1/24'], ['b', '198.18.0.2/24']] as const) {
      const name = ns[host];
      ip('link', 'add', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', `port-${host}`, 'netns', ns.bridge);
      ip('-n', ns.bridge, 'link', 'set', `port-${host}`, 'master', 'br0', 'up');
      ip('-n', name, 'addr', 'add', address, 'dev', 'eth0');
      ip('-n', name, 'link', 'set', 'eth0', 'up');
      ip('-n', name, 'link', 'set', 'lo', 'up');
    }
    return undefined;
  } catch (error) {
    return `cannot create network namespaces: ${(error as Error).message.split('\n')[0]}`;
  }
}

function destroyLan(): void {
  for (const name of Object.values(ns)) {
    try {
      ip('netns', 'del', name);
    } catch {
      // Not created.
    }
  }
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Each host keeps its identity, sender key, pins and cache in a folder of its own (as two
 * machines would), never the runner's.
 */
function hostEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: path.join(home, 'config'), XDG_CACHE_HOME: path.join(home, 'cache') };
  delete env.FT_TOKEN;
  delete env.NODE_OPTIONS;
  return env;
}

function runIn(namespace: string, home: string, args: string[], timeoutMs = 30_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, FT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: hostEnv(home) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ft ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const unavailable = createLan();
if (unavailable) {
  destroyLan();
  console.warn(`SKIPPED the namespace LAN test: ${unavailable}. It needs root and iproute2 (ip netns).`);
}

describe.skipIf(unavailable !== undefined)('on a LAN of network namespaces', () => {
  let work: string;
  let receiver: ChildProcess | undefined;
  /** The `listening` event of ft serve on host A: its key's fingerprint among it. */
  let listening: Record<string, unknown>;
  const receiverName = `lan-box-${tag}`;
  const homeB = () => path.join(work, 'host-b');

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'ft-lan-'));
    receiver = spawn('ip', ['netns', 'exec', ns.a, process.execPath, FT, 'serve', path.join(work, 'inbox'), '--name', receiverName, '--beacon-interval', '1', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: hostEnv(path.join(work, 'host-a')),
    });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`ft serve did not start: ${output}`)), 15_000);
      receiver!.stdout!.on('data', (d) => {
        output += d;
        if (output.includes('"listening"')) {
          clearTimeout(timer);
          listening = jsonLines(output).find((e) => e.event === 'listening')!;
          resolve();
        }
      });
      receiver!.on('exit', (code) => reject(new Error(`ft serve exited with ${code}: ${output}`)));
    });
  });

  afterAll(async () => {
    if (receiver && receiver.exitCode === null) {
      const exited = new Promise((resolve) => receiver!.on('exit', resolve));
      receiver.kill('SIGKILL');
      await exited;
    }
    destroyLan();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('discovers the receiver by name from another host', async () => {
    const started = Date.now();
    const run = await runIn(ns.b, homeB(), ['discover', '--json', '--timeout', '2']);
    expect(run.code).toBe(0);
    const found = jsonLines(run.stdout).filter((r) => r.name === receiverName);
    expect(found).toHaveLength(1);
    expect(found[0]!.addresses).toEqual(['198.18.0.1']);
    expect(found[0]!.port).toBe(9527);
    // The beacon carries the key ft serve printed.
    expect(listening).toMatchObject({ tls: true });
    expect(found[0]!.fingerprint).toBe(listening.fingerprint);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('refuses first contact by name without a way to trust it (exit 7), then sends with --fingerprint and pins it', async () => {
    const refused = await runIn(ns.b, homeB(), ['send', FIXTURE, '--to', receiverName]);
    expect(refused.code, refused.stderr).toBe(7);
    expect(refused.stderr).toContain(String(listening.shortFingerprint));
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    expect(() => readFileSync(path.join(work, 'inbox/three-body.txt'))).toThrow();

    const run = await runIn(ns.b, homeB(), ['send', FIXTURE, '--to', receiverName, '--fingerprint', String(listening.shortFingerprint), '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const events = jsonLines(run.stdout);
    expect(events.find((e) => e.event === 'resolved')).toMatchObject({ name: receiverName, host: '198.18.0.1' });
    expect(events.find((e) => e.event === 'verified')).toMatchObject({ name: 'three-body.txt' });
    expect(readFileSync(path.join(work, 'inbox/three-body.txt')).equals(readFileSync(FIXTURE))).toBe(true);
    const pins = jsonLines((await runIn(ns.b, homeB(), ['trust', 'list', '--json'])).stdout);
    expect(pins).toEqual([expect.objectContaining({ fingerprint: listening.fingerprint, names: [receiverName], addresses: ['198.18.0.1:9527'] })]);
  });

  it('sends by name again without --fingerprint: the pin vouches for it', async () => {
    const run = await runIn(ns.b, homeB(), ['send', FIXTURE, '--to', receiverName, '--json', '--no-hash-cache']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(jsonLines(run.stdout).find((e) => e.event === 'verified')).toMatchObject({ name: 'three-body.txt' });
  });

  it('sends to the only receiver when --to is left out', async () => {
    const run = await runIn(ns.b, homeB(), ['send', FIXTURE, '--json']);
    expect(run.code).toBe(0);
    expect(jsonLines(run.stdout).find((e) => e.event === 'skipped')).toMatchObject({ name: 'three-body.txt' });
  });

  it('keeps answering after a burst of garbage datagrams from another host', async () => {
    const flood = `
      const dgram = require('node:dgram');
      const s = dgram.createSocket('udp4');
      s.bind(() => {
        s.setBroadcast(true);
        const junk = [Buffer.alloc(0), Buffer.alloc(1500, 0xff), Buffer.from('not json'), Buffer.from('[1,2]'),
          Buffer.from(JSON.stringify({ m: 'ft-discovery', v: 1, kind: 'query', qid: 'zz' })),
          Buffer.from(JSON.stringify({ m: 'ft-discovery', v: 1, kind: 'announce', name: '${receiverName}', id: 'x', port: -1 })),
          Buffer.from('{"__proto__":{"polluted":1},"m":"ft-discovery","v":1,"kind":"query"}')];
        let sent = 0;
        for (let i = 0; i < 500; i++) for (const d of junk) for (const to of ['198.18.0.1', '198.18.0.255'])
          s.send(d, 9527, to, () => { if (++sent === 500 * junk.length * 2) s.close(); });
      });`;
    execFileSync('ip', ['netns', 'exec', ns.b, process.execPath, '-e', flood], { timeout: 20_000 });
    expect(receiver!.exitCode).toBeNull();
    const run = await runIn(ns.b, homeB(), ['discover', '--json', '--timeout', '2']);
    expect(jsonLines(run.stdout).filter((r) => r.name === receiverName)).toHaveLength(1);
  });

  it('explains and exits 5 when no receiver has the name', async () => {
    const run = await runIn(ns.b, homeB(), ['send', FIXTURE, '--to', 'no-such-receiver']);
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(/no host or receiver named "no-such-receiver".*firewall/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
