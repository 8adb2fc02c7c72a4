/**
 * More end to end into an S3 inbox on a real Ceph cluster (two gateways), with real `ft serve
 * s3://…` and `ft send` processes:
 *
 *  - the tus endpoint writes into the same bucket: an upload cut half-way on instance A is listed
 *    by `ft status s3://…`, resumed through instance B (same identity, the other gateway) from
 *    the offset the bucket holds, and lands verified with its hash as metadata;
 *  - many small files in one `ft send` of a folder: every object intact, with its `ft-hash`;
 *  - two `ft send` processes racing for one name: the object first placed under it is never
 *    replaced; small files get a variant name, a large (multipart) loser fails CONFLICT (exit 4)
 *    as the README says and lands under a variant when sent again;
 *  - 64 `ft send` processes at once, files of three parts each: the receiver's peak RSS stays
 *    under the bound the README states for an S3 inbox.
 */
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import * as tus from 'tus-js-client';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { fileMetadataOf } from '../../src/storage/s3/object-metadata.js';
import { randomBuffer, waitUntil } from '../helpers/files.js';
import { cephSkipReason, useCephCluster } from '../helpers/ceph.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, runFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { mb, MiB, startServe, stopServe, trackPeakRss } from './support.js';

if (cephSkipReason) console.warn(`skipping the S3 end-to-end tests: ${cephSkipReason}`);

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
});
afterAll(removeTempDirs);

const sha = (bytes: Buffer | Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const TOKEN = 's3-more-token-0123456789abcdef';
/**
 * README, "An inbox in an S3 bucket": with every one of the 64 connection slots uploading, the
 * receiver stays under the local inbox's 320 MiB plus one 8 MiB part per upload.
 */
const S3_RSS_LIMIT = 320 * MiB + 64 * 8 * MiB;

async function objectBytes(client: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  const got = await client.send(new GetObjectCommand({ Bucket, Key }));
  return Buffer.from(await got.Body!.transformToByteArray());
}

async function listAll(client: S3Client, Bucket: string, Prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const listed = await client.send(new ListObjectsV2Command({ Bucket, Prefix, ContinuationToken: token }));
    for (const item of listed.Contents ?? []) keys.push(item.Key!);
    token = listed.IsTruncated ? listed.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys;
}

describe.skipIf(cephSkipReason !== undefined)(`more end to end into ft serve s3://…${cephSkipReason ? ` (skipped: ${cephSkipReason})` : ''}`, () => {
  const ceph = useCephCluster(2);

  async function setup(bucket: string) {
    const cluster = ceph.get();
    await cluster.createBucket(bucket);
    const root = await tempDir('ft-s3-more-');
    const tokenFile = path.join(root, 'token');
    await writeFile(tokenFile, TOKEN, { mode: 0o600 });
    const env = { ...cluster.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
    const serveOn = (gateway: number, args: string[] = []) =>
      startServe(`s3://${bucket}/inbox`, {
        timeoutMs: 300_000,
        args: ['--s3-endpoint', cluster.endpoints[gateway]!, '--identity', path.join(root, 'identity'), '--token-file', tokenFile, ...args],
        env,
      });
    const status = () => runFt(['status', `s3://${bucket}/inbox`, '--s3-endpoint', cluster.endpoints[1]!, '--json'], { timeoutMs: 60_000, env });
    const sendArgs = (port: number, fingerprint: string) => ['--to', `127.0.0.1:${port}`, '--fingerprint', fingerprint, '--token-file', tokenFile, '--json'];
    return { root, serveOn, status, sendArgs, client: cluster.client(0) };
  }

  it('a tus upload cut on instance A is listed by ft status, resumed through instance B on the other gateway, and lands verified', async () => {
    const bucket = 'ft-more-tus';
    const { root, serveOn, status, client } = await setup(bucket);
    const size = 28 * MiB + 77;
    const bytes = randomBuffer(size, 'tus-s3');
    const file = path.join(root, 'video.bin');
    await writeFile(file, bytes);
    const metadata = { filename: 'clips/video.bin', relativePath: 'clips/video.bin', hash: await hashBytes(bytes) };
    const agent = new https.Agent({ keepAlive: false, rejectUnauthorized: false });
    const first = await serveOn(0);
    const proxy = await startProxy({ targetPort: first.port, bytesPerSecond: 16 * MiB });
    const base: tus.UploadOptions = { metadata, headers: { Authorization: `Bearer ${TOKEN}` }, httpStack: new tus.DefaultHttpStack({ agent }), retryDelays: [] };
    try {
      // Cut once more than two 8 MiB parts have gone out, as a closed tab would.
      const cut = await new Promise<string>((resolve, reject) => {
        let stopped = false;
        const upload: tus.Upload = new tus.Upload(createReadStream(file), {
          ...base,
          endpoint: `https://127.0.0.1:${proxy.port}/files/`,
          onProgress: (sent) => {
            if (stopped || sent < 18 * MiB || upload.url === null) return;
            stopped = true;
            void upload.abort().then(() => resolve(upload.url!));
          },
          onSuccess: () => reject(new Error('the upload finished before it was cut')),
          onError: (error) => (stopped ? undefined : reject(error)),
        });
        upload.start();
      });
      expect(cut).toMatch(/\/files\/[A-Za-z0-9_-]+$/);
      // A stops cleanly (it keeps what it holds), and the bucket alone says what is unfinished.
      await stopServe(first.proc);
      const listed = await status();
      expect(listed.exit, listed.stderr).toEqual({ code: 0, signal: null });
      const partial = listed.json().find((e) => e.event === 'partial');
      expect(partial, listed.stdout).toMatchObject({ name: 'clips/video.bin', size, kind: 'tus' });
      expect(partial!.bytes as number).toBeGreaterThanOrEqual(8 * MiB);

      const second = await serveOn(1);
      expect(second.fingerprint).toBe(first.fingerprint);
      const patches: number[] = [];
      const uploadUrl = cut.replace(/^https:\/\/127\.0\.0\.1:\d+/, `https://127.0.0.1:${second.port}`);
      await new Promise<void>((resolve, reject) => {
        const upload = new tus.Upload(createReadStream(file), {
          ...base,
          uploadUrl,
          onBeforeRequest: (req) => {
            if (req.getMethod() === 'PATCH') patches.push(Number(req.getHeader('Upload-Offset')));
          },
          onSuccess: () => resolve(),
          onError: reject,
        });
        upload.start();
      });
      // B resumes from what the bucket holds, which ft status showed.
      expect(patches[0], 'the first PATCH on B').toBe(partial!.bytes);
      await waitUntil(() => second.events('received').length > 0, 'the received event', { timeoutMs: 10_000 });
      expect(second.events('received')[0]).toMatchObject({ name: 'clips/video.bin', protocol: 'tus', verified: true });

      const Key = 'inbox/clips/video.bin';
      expect(sha(await objectBytes(client, bucket, Key))).toBe(sha(bytes));
      const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key }));
      expect(head.Metadata?.['ft-hash']).toBe(metadata.hash);
      const after = await status();
      expect(after.json().filter((e) => e.event === 'partial'), after.stdout).toEqual([]);
      expect(await listAll(client, bucket, 'inbox/.ft-partial/uploads/')).toEqual([]);
    } finally {
      agent.destroy();
    }
  });

  it('500 small files in one ft send of a folder: every object intact, with its hash as metadata', async () => {
    const bucket = 'ft-more-small';
    const { root, serveOn, sendArgs, client } = await setup(bucket);
    const FILES = 500;
    const folder = path.join(root, 'notes');
    await mkdir(folder);
    const contents = new Map<string, Buffer>();
    for (let i = 0; i < FILES; i++) {
      const name = `n${String(i).padStart(3, '0')}.txt`;
      const bytes = randomBuffer(4096, `small-${i}`);
      contents.set(name, bytes);
      await writeFile(path.join(folder, name), bytes);
    }
    const serve = await serveOn(0);
    const started = Date.now();
    const run = await runFt(['send', folder, ...sendArgs(serve.port, serve.fingerprint!)], { timeoutMs: 120_000 });
    const ms = Date.now() - started;
    expect(run.exit, run.stderr + run.stdout.slice(-2000)).toEqual({ code: 0, signal: null });
    console.log(`s3 small files: ${FILES} × 4 KiB in one ft send in ${(ms / 1000).toFixed(1)} s (${((FILES * 1000) / ms).toFixed(0)} files/s, startup included)`);
    const keys = (await listAll(client, bucket, 'inbox/notes/')).sort();
    expect(keys).toEqual([...contents.keys()].sort().map((name) => `inbox/notes/${name}`));
    const entries = [...contents];
    const check = async () => {
      for (let entry = entries.pop(); entry !== undefined; entry = entries.pop()) {
        const [name, bytes] = entry;
        const Key = `inbox/notes/${name}`;
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key }));
        expect(head.Metadata?.['ft-hash'], name).toBe(await hashBytes(bytes));
        expect(head.ContentLength).toBe(4096);
        expect((await objectBytes(client, bucket, Key)).equals(bytes), name).toBe(true);
      }
    };
    await Promise.all(Array.from({ length: 16 }, check));
    expect(await listAll(client, bucket, 'inbox/.ft-partial/')).toEqual([]);
  });

  it('two ft send processes racing for one name: the first object placed is never replaced; the loser gets a variant or CONFLICT (exit 4), then a variant', async () => {
    const bucket = 'ft-more-race';
    const { root, serveOn, sendArgs, client } = await setup(bucket);
    const serve = await serveOn(0);
    for (const [label, size] of [['small', 64 * 1024], ['large', 20 * MiB]] as const) {
      const name = `${label}.bin`;
      const sources = [0, 1].map((i) => ({ file: path.join(root, `${label}-${i}`, name), bytes: randomBuffer(size, `race-${label}-${i}`) }));
      for (const { file, bytes } of sources) {
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, bytes);
      }
      // Both slowed to 16 MiB/s so that the large ones overlap whatever their start-up times.
      const proxies = await Promise.all(sources.map(() => startProxy({ targetPort: serve.port, bytesPerSecond: 16 * MiB })));
      const Key = `inbox/${name}`;
      const seen = new Set<string>();
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key })).catch(() => undefined);
          if (head?.ETag) seen.add(head.ETag);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      // Two machines, so two sender keys: one key's second upload of a name would take the first over instead.
      const keyOf = (i: number) => ['--sender-key', path.join(root, `sender-${i}.pem`)];
      const senders = sources.map(({ file }, i) => spawnFt(['send', file, ...sendArgs(proxies[i]!.port, serve.fingerprint!), ...keyOf(i)], { timeoutMs: 120_000 }));
      const exits = await Promise.all(senders.map((s) => s.exited));
      watching = false;
      await watcher;
      const placed = await objectBytes(client, bucket, Key);
      const winner = sources.findIndex((s) => s.bytes.equals(placed));
      expect(winner, `${label}: the object under the name is one of the two`).toBeGreaterThanOrEqual(0);
      expect(seen.size, `${label}: the object under the name never changed`).toBe(1);
      expect(exits[winner], senders[winner]!.stderr).toEqual({ code: 0, signal: null });
      const loser = 1 - winner;
      const variant = `inbox/${label} (1).bin`;
      let how: string;
      if (exits[loser]!.code === 0) {
        how = 'stored under a variant';
      } else {
        // A multipart upload is made for one key (the name, free when its first part went up); taken
        // meanwhile, it cannot go elsewhere: CONFLICT, and the next send picks a free name.
        expect(exits[loser], senders[loser]!.stderr + senders[loser]!.stdout).toEqual({ code: 4, signal: null });
        expect(senders[loser]!.json().find((e) => e.event === 'failed' || e.event === 'refused'), senders[loser]!.stdout).toMatchObject({ code: 'CONFLICT' });
        expect(label, 'only a multipart upload loses its name').toBe('large');
        const again = await runFt(['send', sources[loser]!.file, ...sendArgs(serve.port, serve.fingerprint!), ...keyOf(loser)], { timeoutMs: 120_000 });
        expect(again.exit, again.stderr).toEqual({ code: 0, signal: null });
        how = 'CONFLICT (exit 4), then stored under a variant when sent again';
      }
      console.log(`s3 race, ${label} files: the loser was ${how}`);
      expect((await objectBytes(client, bucket, variant)).equals(sources[loser]!.bytes)).toBe(true);
      expect((await objectBytes(client, bucket, Key)).equals(sources[winner]!.bytes)).toBe(true);
      // The sender's modification time is kept as object metadata (README), to the nanosecond.
      const { mtimeNs } = fileMetadataOf((await client.send(new HeadObjectCommand({ Bucket: bucket, Key }))).Metadata);
      expect(mtimeNs, `${label}: x-amz-meta-ft-mtime`).toBe(BigInt((await stat(sources[winner]!.file, { bigint: true })).mtimeNs));
      expect((await listAll(client, bucket, 'inbox/')).filter((k) => k.startsWith(`inbox/${label}`)).sort()).toEqual([variant, Key].sort());
    }
    expect(await listAll(client, bucket, 'inbox/.ft-partial/uploads/')).toEqual([]);
  });

  it('64 ft send processes at once, three parts each: every object intact, the receiver’s memory under its bound', async () => {
    const bucket = 'ft-more-memory';
    const { root, serveOn, sendArgs, client } = await setup(bucket);
    const SENDERS = 64;
    const SIZE = 16 * MiB + 4321;
    const sources = Array.from({ length: SENDERS }, (_, i) => ({ name: `m${String(i).padStart(2, '0')}.bin`, seed: `mem-${i}` }));
    for (const { name, seed } of sources) await writeFile(path.join(root, name), randomBuffer(SIZE, seed));
    const serve = await serveOn(0, ['--max-connections', '128', '--max-connections-per-address', '128']);
    const rss = trackPeakRss(serve.proc.pid, 50);
    const started = Date.now();
    const senders = sources.map(({ name }) => spawnFt(['send', path.join(root, name), ...sendArgs(serve.port, serve.fingerprint!)], { timeoutMs: 240_000 }));
    const exits = await Promise.all(senders.map((s) => s.exited));
    const ms = Date.now() - started;
    const peak = await rss.stop();
    for (const [i, exit] of exits.entries()) expect(exit, `${sources[i]!.name}: ${senders[i]!.stderr}`).toEqual({ code: 0, signal: null });
    console.log(
      `s3 memory: ${SENDERS} ft send × ${(SIZE / MiB).toFixed(0)} MiB at once in ${(ms / 1000).toFixed(1)} s; receiver peak RSS ${mb(peak)} (bound ${mb(S3_RSS_LIMIT)})`,
    );
    expect(peak).toBeDefined();
    expect(peak!).toBeLessThan(S3_RSS_LIMIT);
    for (const { name, seed } of sources) {
      const got = await objectBytes(client, bucket, `inbox/${name}`);
      expect(sha(got), name).toBe(sha(randomBuffer(SIZE, seed)));
    }
    expect(await listAll(client, bucket, 'inbox/.ft-partial/uploads/')).toEqual([]);
  });
});
