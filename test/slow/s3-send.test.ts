/**
 * End to end into an S3 inbox on a real Ceph cluster with two gateways: `ft serve s3://…` as a
 * user runs it (credentials in the environment only), `ft send` into it; then a transfer cut by
 * SIGKILL of the receiver on gateway 1 and resumed on a second receiver (same identity, same
 * bucket) on gateway 2, from the parts the first one stored; `ft status s3://…` lists it meanwhile;
 * and the gateway killed mid-upload and started again: the file fails cleanly, then resumes.
 */
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { randomBuffer } from '../helpers/files.js';
import { writeFile } from 'node:fs/promises';
import { cephSkipReason, useCephCluster } from '../helpers/ceph.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, runFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { MiB, sleep, startServe } from './support.js';

if (cephSkipReason) console.warn(`skipping the S3 end-to-end tests: ${cephSkipReason}`);

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
});
afterAll(removeTempDirs);

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe.skipIf(cephSkipReason !== undefined)(`ft send into ft serve s3://…${cephSkipReason ? ` (skipped: ${cephSkipReason})` : ''}`, () => {
  const ceph = useCephCluster(2);

  async function setup(bucket: string) {
    const cluster = ceph.get();
    await cluster.createBucket(bucket);
    const root = await tempDir('ft-s3-e2e-');
    const env = { ...cluster.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    const serveOn = (gateway: number, port?: number) =>
      startServe(`s3://${bucket}/inbox`, { port, timeoutMs: 300_000, args: ['--s3-endpoint', cluster.endpoints[gateway]!, '--identity', path.join(root, 'identity')], env });
    const status = () =>
      runFt(['status', `s3://${bucket}/inbox`, '--s3-endpoint', cluster.endpoints[1]!, '--json'], { timeoutMs: 60_000, env });
    return { root, serveOn, status, client: cluster.client(0) };
  }

  it('a file sent lands in the bucket intact, with its hash as metadata, and nothing of the upload is left', async () => {
    const { root, serveOn, client } = await setup('ft-e2e-send');
    const bytes = randomBuffer(20 * MiB + 123, 'e2e');
    const file = path.join(root, 'photos.bin');
    await writeFile(file, bytes);
    const serve = await serveOn(0);
    expect(serve.dir).toBe('s3://ft-e2e-send/inbox');
    const run = await runFt(['send', file, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--json'], { timeoutMs: 120_000 });
    expect(run.exit, run.stderr + run.stdout).toEqual({ code: 0, signal: null });
    const got = await client.send(new GetObjectCommand({ Bucket: 'ft-e2e-send', Key: 'inbox/photos.bin' }));
    expect(sha(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha(bytes));
    const head = await client.send(new HeadObjectCommand({ Bucket: 'ft-e2e-send', Key: 'inbox/photos.bin' }));
    expect(head.Metadata?.['ft-hash']).toBe(await hashBytes(bytes));
    const left = await client.send(new ListObjectsV2Command({ Bucket: 'ft-e2e-send', Prefix: 'inbox/.ft-partial/uploads/' }));
    expect(left.KeyCount ?? 0).toBe(0);
  });

  it('cut by SIGKILL of the receiver on gateway 1, the send resumes on a receiver on gateway 2 from the stored parts', async () => {
    const { root, serveOn, status, client } = await setup('ft-e2e-resume');
    const size = 64 * MiB;
    const bytes = randomBuffer(size, 'e2e-resume');
    const file = path.join(root, 'big.bin');
    await writeFile(file, bytes);
    const first = await serveOn(0);
    const proxy = await startProxy({ targetPort: first.port, bytesPerSecond: 16 * MiB });
    const sender = spawnFt(['send', file, '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', first.fingerprint!, '--json', '--retries', '0'], { timeoutMs: 120_000 });
    // Killed once at least two parts (8 MiB each) are in the bucket.
    expect(await partsStored(client, 'ft-e2e-resume', 2)).toBeGreaterThanOrEqual(2);
    first.proc.child.kill('SIGKILL');
    await sender.exited;
    // ft status reads the bucket: one unfinished upload, holding the stored parts.
    const listed = await status();
    expect(listed.exit, listed.stderr).toEqual({ code: 0, signal: null });
    const partial = listed.json().find((e) => e.event === 'partial');
    expect(partial, listed.stdout).toMatchObject({ name: 'big.bin', size, kind: 'send' });
    expect(partial!.bytes as number).toBeGreaterThanOrEqual(2 * 8 * MiB);
    const second = await serveOn(1);
    expect(second.fingerprint).toBe(first.fingerprint);
    const rerun = await runFt(['send', file, '--to', `127.0.0.1:${second.port}`, '--fingerprint', second.fingerprint!, '--json'], { timeoutMs: 120_000 });
    expect(rerun.exit, rerun.stderr + rerun.stdout).toEqual({ code: 0, signal: null });
    const resumed = rerun.json().find((e) => e.event === 'resumed');
    expect(resumed, rerun.stdout).toBeDefined();
    expect(resumed!.offset as number).toBeGreaterThanOrEqual(2 * 8 * MiB);
    const got = await client.send(new GetObjectCommand({ Bucket: 'ft-e2e-resume', Key: 'inbox/big.bin' }));
    expect(sha(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha(bytes));
  });

  it('the gateway killed mid-upload: the file fails cleanly with one line, the receiver stays up, and resumes once the gateway is back', async () => {
    const { root, serveOn, client } = await setup('ft-e2e-outage');
    const size = 48 * MiB;
    const bytes = randomBuffer(size, 'e2e-outage');
    const file = path.join(root, 'outage.bin');
    await writeFile(file, bytes);
    const serve = await serveOn(0);
    const proxy = await startProxy({ targetPort: serve.port, bytesPerSecond: 16 * MiB });
    const sender = spawnFt(['send', file, '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', serve.fingerprint!, '--json', '--retries', '0'], { timeoutMs: 120_000 });
    expect(await partsStored(client, 'ft-e2e-outage', 1)).toBeGreaterThanOrEqual(1);
    ceph.get().killGateway(0);
    const exit = await sender.exited;
    const failed = sender.json().find((e) => e.event === 'failed');
    expect(failed, sender.stdout + sender.stderr).toMatchObject({ name: 'outage.bin', code: 'WRITE_FAILED' });
    expect(String(failed!.message)).not.toContain('\n');
    expect(exit.code).not.toBe(0);
    expect(serve.proc.child.exitCode).toBeNull();
    await ceph.get().startGateway(0);
    const rerun = await runFt(['send', file, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--json'], { timeoutMs: 120_000 });
    expect(rerun.exit, rerun.stderr + rerun.stdout).toEqual({ code: 0, signal: null });
    expect(rerun.json().find((e) => e.event === 'resumed')?.offset as number).toBeGreaterThanOrEqual(8 * MiB);
    const got = await client.send(new GetObjectCommand({ Bucket: 'ft-e2e-outage', Key: 'inbox/outage.bin' }));
    expect(sha(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha(bytes));
  });
});

/** Waits (up to a minute) until the bucket's one upload state lists at least `parts` parts; returns how many. */
async function partsStored(client: S3Client, Bucket: string, parts: number): Promise<number> {
  const deadline = Date.now() + 60_000;
  let stored = 0;
  while (Date.now() < deadline && stored < parts) {
    const listed = await client.send(new ListObjectsV2Command({ Bucket, Prefix: 'inbox/.ft-partial/uploads/' }));
    const key = listed.Contents?.find((item) => item.Key!.endsWith('.json'))?.Key;
    if (key) {
      const got = await client.send(new GetObjectCommand({ Bucket, Key: key }));
      stored = ((JSON.parse(await got.Body!.transformToString()) as { parts?: unknown[] }).parts ?? []).length;
    }
    if (stored < parts) await sleep(100);
  }
  return stored;
}
