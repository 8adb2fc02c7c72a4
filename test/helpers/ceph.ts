/**
 * A real one-node Ceph cluster with S3 gateways on loopback, for one test file: started by the
 * project's scripts/ceph-s3-up.sh in a temp dir of its own, on free ports this process chooses
 * (so test files running side by side never clash), and always stopped — by afterAll, by an
 * exit handler if the file dies first, and by the script's watchdog if this process is killed.
 *
 * Without the Ceph binaries (they come from Debian's ceph-mon ceph-osd radosgw ceph-common,
 * which .ci/run installs as root) `cephSkipReason` says why, for describe.skipIf.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from './free-port.js';

// The pinned SDK supports Node 20; its notice that later versions will not is noise in test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const SCRIPTS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts');
const TOOLS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'ceph', 'ceph-authtool', 'monmaptool'];

function missingTools(): string[] {
  return TOOLS.filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0);
}

/** Why the Ceph tests cannot run here, or undefined when they can. */
export const cephSkipReason: string | undefined = (() => {
  const missing = missingTools();
  if (missing.length === 0) return undefined;
  const how = process.getuid?.() === 0 ? 'run .ci/run, which installs them' : 'as root: apt-get install --no-install-recommends ceph-mon ceph-osd radosgw ceph-common';
  return `no Ceph here (${missing.join(', ')} not found; ${how})`;
})();

export interface CephCluster {
  readonly dir: string;
  /** One S3 endpoint per gateway, `http://127.0.0.1:<port>`; all serve the same cluster. */
  readonly endpoints: readonly string[];
  /** The test user's keys, as the AWS SDK's default chain reads them from the environment. */
  readonly env: Readonly<Record<'AWS_ACCESS_KEY_ID' | 'AWS_SECRET_ACCESS_KEY' | 'AWS_REGION', string>>;
  /** A client for gateway `gateway` with the settings RGW 16 needs (see s3ClientOptions). */
  client(gateway?: number): S3Client;
  /** Creates a bucket (a fresh name per test keeps tests apart). */
  createBucket(name: string): Promise<void>;
  /** Stops gateway `gateway` (SIGKILL, as a crash), leaving the cluster and the other gateways up. */
  killGateway(gateway: number): void;
  /** Starts gateway `gateway` again on its port, once it answers. */
  startGateway(gateway: number): Promise<void>;
  /** Stops every daemon (by PID) and removes the dir; idempotent. */
  stop(): void;
}

/**
 * What RGW 16 needs of @aws-sdk/client-s3 3.x: path-style addresses (no bucket subdomains on
 * 127.0.0.1), and checksums only where an operation requires them (the SDK's default streaming
 * checksum trailer makes RGW 16 answer 411 MissingContentLength).
 */
export function s3ClientOptions(endpoint: string, env: CephCluster['env']): S3ClientConfig {
  return {
    endpoint,
    region: env.AWS_REGION,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY },
    maxAttempts: 1,
  };
}

function readEnvFile(file: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^export ([A-Z0-9_]+)="?(.*?)"?$/.exec(line);
    if (match) values[match[1]!] = match[2]!;
  }
  return values;
}

function stopCluster(dir: string): void {
  // Synchronous, so that it also works from an 'exit' handler.
  spawnSync(path.join(SCRIPTS, 'ceph-s3-down.sh'), [dir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
  rmSync(dir, { recursive: true, force: true });
}

/** Starts a cluster with `gateways` radosgw instances (1 or 2). Prefer useCephCluster() in a test file. */
export async function startCephCluster(gateways = 1): Promise<CephCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ft-ceph-'));
  const monPort = await freePort();
  const rgwPorts: number[] = [];
  while (rgwPorts.length < gateways) {
    const port = await freePort();
    if (port !== monPort && !rgwPorts.includes(port)) rgwPorts.push(port);
  }
  const onExit = () => stopCluster(dir);
  process.once('exit', onExit);
  const started = new Promise<void>((resolve, reject) => {
    const child = spawn(path.join(SCRIPTS, 'ceph-s3-up.sh'), [dir], {
      env: { ...process.env, CEPH_S3_MON_PORT: String(monPort), CEPH_S3_RGW_PORTS: rgwPorts.join(' '), CEPH_S3_OWNER_PID: String(process.pid) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ceph-s3-up.sh exited with ${code}:\n${stderr}`))));
  });
  try {
    await started;
  } catch (error) {
    process.off('exit', onExit);
    stopCluster(dir);
    throw error;
  }
  const values = readEnvFile(path.join(dir, 's3.env'));
  const env = { AWS_ACCESS_KEY_ID: values.AWS_ACCESS_KEY_ID!, AWS_SECRET_ACCESS_KEY: values.AWS_SECRET_ACCESS_KEY!, AWS_REGION: values.AWS_REGION! };
  const endpoints = values.S3_ENDPOINTS!.split(' ');
  const clients: S3Client[] = [];
  let stopped = false;
  return {
    dir,
    endpoints,
    env,
    client(gateway = 0) {
      const client = new S3Client(s3ClientOptions(endpoints[gateway]!, env));
      clients.push(client);
      return client;
    },
    async createBucket(name) {
      const client = new S3Client(s3ClientOptions(endpoints[0]!, env));
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
    killGateway(gateway) {
      const port = new URL(endpoints[gateway]!).port;
      const pid = Number(readFileSync(path.join(dir, 'run', `client.rgw.p${port}.pid`), 'utf8'));
      // Only a process whose command line names this cluster's dir (as ceph-s3-down.sh checks).
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) process.kill(pid, 'SIGKILL');
    },
    async startGateway(gateway) {
      const port = new URL(endpoints[gateway]!).port;
      const name = `client.rgw.p${port}`;
      spawnSync('radosgw', ['-c', path.join(dir, 'ceph.conf'), '-n', name, '--rgw-data', path.join(dir, `rgw.${port}`), '--rgw-frontends', `beast endpoint=127.0.0.1:${port}`], {
        env: { ...process.env, CEPH_CONF: path.join(dir, 'ceph.conf') },
        stdio: 'ignore',
        timeout: 30_000,
      });
      for (const started = Date.now(); Date.now() - started < 60_000; await new Promise((resolve) => setTimeout(resolve, 200))) {
        const answered = await fetch(`${endpoints[gateway]}/`).then((reply) => reply.ok, () => false);
        if (answered) return;
      }
      throw new Error(`the gateway on port ${port} did not start again`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      for (const client of clients) client.destroy();
      process.off('exit', onExit);
      stopCluster(dir);
    },
  };
}

/**
 * Starts a cluster before the file's tests and stops it after them. Call at the top of a
 * `describe.skipIf(cephSkipReason !== undefined)` block; `get()` is valid inside tests.
 */
export function useCephCluster(gateways = 1): { get(): CephCluster } {
  let cluster: CephCluster | undefined;
  beforeAll(async () => {
    cluster = await startCephCluster(gateways);
  }, 120_000);
  afterAll(() => cluster?.stop());
  return {
    get() {
      if (!cluster) throw new Error('the Ceph cluster did not start (see beforeAll)');
      return cluster;
    },
  };
}

/** Whether daemons of `dir` are still running (for the helper's own test). */
export function cephDaemonsOf(dir: string): string[] {
  try {
    return execFileSync('pgrep', ['-f', '--', dir], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
}
