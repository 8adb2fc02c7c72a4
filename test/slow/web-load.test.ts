/**
 * Load on the web side: 32 browser-style tus uploads at once into one `ft serve` child process,
 * with `ft send` transfers running beside them over the TCP protocol on the same port.
 *
 * Each upload is what the upload page does, with tus-js-client (npm, in Node) in this process:
 * the file's XXH64 first (`hash` metadata), then creation and PATCH over its own HTTPS
 * connection (the receiver's self-signed identity), authorised by the token as a bearer. Sizes
 * are 2–32 MiB (seeded); every third upload is chunked (`chunkSize` 1–4 MiB, a PATCH per chunk);
 * four are interrupted part-way (the request aborted, as a closed tab or a dropped Wi-Fi does) and
 * resumed by a new Upload with their upload URL, which must continue from the receiver's offset.
 * Four `ft send` processes (8–16 MiB each) start at the same moment.
 *
 * Every file lands byte-identical under its name, every `received` event says verified (tus and
 * ft alike), no partial is left, and the receiver's peak RSS (VmHWM) stays under the README's
 * memory bound for a receiver with every connection slot busy (320 MiB, the hostile soak's
 * figure); the figure is printed for the CI log, with the durations and tus-js-client's retries
 * (left on, as in a browser: 36 connections opening at once meet the receiver's default pool of 16
 * connections still in their handshake, and some are turned away and retried).
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import * as tus from 'tus-js-client';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createHasher } from '../../src/hashing.js';
import { partialFolder, randomFile, waitUntil } from '../helpers/files.js';
import { killAllFt, spawnFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';
import { mb, MiB, procStatusBytes, sameContent, seededRng, startServe, stopServe, trackPeakRss } from './support.js';

const UPLOADS = 32;
const INTERRUPTED = 4;
const SENDS = 4;
/** README, "Memory bound": a receiver with every connection slot held stays under this. */
const RSS_LIMIT = 320 * MiB;
/** Each upload (and each resumption) must finish within this. */
const UPLOAD_TIMEOUT_MS = 180_000;

afterEach(killAllFt);
afterAll(removeTempDirs);

async function fileHash(file: string): Promise<string> {
  const hasher = await createHasher();
  for await (const block of createReadStream(file, { highWaterMark: MiB })) hasher.update(block as Buffer);
  return hasher.digest();
}

interface Plan {
  name: string;
  file: string;
  size: number;
  chunkSize?: number;
  /** Abort the first attempt once this many bytes went out. */
  stopAt?: number;
}

interface Outcome {
  /** Offsets of the PATCHes after the resumption (the first must be > 0). */
  resumedPatches: number[];
  /** Why tus-js-client retried: the HTTP status, or the error for a request without an answer. */
  retries: string[];
  ms: number;
}

/**
 * One upload as the page makes it: hash, then tus-js-client to success. With `stopAt`, the first
 * attempt is aborted there and a new Upload resumes from its URL. tus-js-client's own retries
 * (for a 423 while the receiver still ends the aborted PATCH, or a dropped connection) stay on,
 * as in a browser; they are counted.
 */
async function upload(plan: Plan, endpoint: string, agent: https.Agent, token: string): Promise<Outcome> {
  const started = Date.now();
  const metadata = { filename: plan.name, hash: await fileHash(plan.file) };
  const retries: string[] = [];
  const base: tus.UploadOptions = {
    endpoint,
    metadata,
    headers: { Authorization: `Bearer ${token}` },
    httpStack: new tus.DefaultHttpStack({ agent }),
    retryDelays: [100, 500, 1000, 2000, 4000],
    onShouldRetry: (error) => {
      const status = (error as tus.DetailedError).originalResponse?.getStatus() ?? 0;
      const retry = !(status >= 400 && status < 500 && status !== 409 && status !== 423);
      // The status, or what went wrong underneath ("Parse Error: Expected HTTP/…" is an answer that was not HTTP).
      const cause = /caused by (?:Error: )?([^,]*)/.exec(error.message)?.[1] ?? error.message.split('\n')[0]!;
      if (retry) retries.push(`${status || cause.slice(0, 40)} (${/failed to create/.test(error.message) ? 'POST' : 'PATCH'})`);
      if (retry && process.env.FT_WEB_LOAD_DEBUG) console.log(`${plan.name} (chunk ${plan.chunkSize ?? 'none'}, stop ${plan.stopAt ?? 'none'}): ${error.message}`);
      return retry;
    },
    ...(plan.chunkSize ? { chunkSize: plan.chunkSize } : {}),
  };
  const attempt = (options: tus.UploadOptions, stopAt = Infinity) =>
    new Promise<{ url: string | null; stopped: boolean }>((resolve, reject) => {
      let stopped = false;
      const timer = setTimeout(() => reject(new Error(`${plan.name}: not done within ${UPLOAD_TIMEOUT_MS / 1000} s`)), UPLOAD_TIMEOUT_MS);
      const done = (value: { url: string | null; stopped: boolean }) => {
        clearTimeout(timer);
        resolve(value);
      };
      const upload: tus.Upload = new tus.Upload(createReadStream(plan.file), {
        ...options,
        onProgress: (sent) => {
          if (stopped || sent < stopAt || upload.url === null) return;
          stopped = true;
          void upload.abort().then(() => done({ url: upload.url, stopped: true }));
        },
        onSuccess: () => done({ url: upload.url, stopped: false }),
        onError: (error) => {
          clearTimeout(timer);
          if (!stopped) reject(new Error(`${plan.name}: ${error.message}`));
        },
      });
      upload.start();
    });
  const resumedPatches: number[] = [];
  const first = await attempt(base, plan.stopAt);
  if (first.stopped) {
    expect(first.url).toMatch(/\/files\/[A-Za-z0-9_-]+$/);
    const onBeforeRequest = (req: tus.HttpRequest) => {
      if (req.getMethod() === 'PATCH') resumedPatches.push(Number(req.getHeader('Upload-Offset')));
    };
    const second = await attempt({ ...base, uploadUrl: first.url!, onBeforeRequest });
    expect(second.stopped).toBe(false);
  }
  return { resumedPatches, retries, ms: Date.now() - started };
}

describe('web load', () => {
  it(`takes ${UPLOADS} tus uploads at once (chunked, interrupted and resumed ones among them) beside ${SENDS} ft send transfers, each verified, memory bounded`, async () => {
    const rng = seededRng('web-load');
    const root = await tempDir('ft-slow-web-load-');
    const srcDir = path.join(root, 'src');
    const inbox = path.join(root, 'inbox');
    await mkdir(srcDir);
    const token = 'web-load-token-0123456789abcdef';
    const tokenFile = path.join(root, 'token');
    await writeFile(tokenFile, token, { mode: 0o600 });

    const plans: Plan[] = [];
    for (let i = 0; i < UPLOADS; i++) {
      const name = `tus-${String(i).padStart(2, '0')}.bin`;
      const size = rng.int(2 * MiB, 32 * MiB);
      const plan: Plan = { name, file: path.join(srcDir, name), size };
      if (i % 3 === 0) plan.chunkSize = rng.int(1, 4) * MiB;
      // The last INTERRUPTED uploads (some of them chunked) stop a quarter to three quarters in.
      if (i >= UPLOADS - INTERRUPTED) plan.stopAt = Math.floor(size * rng.between(0.25, 0.75));
      plans.push(plan);
    }
    const sends = Array.from({ length: SENDS }, (_, i) => {
      const name = `ft-${i}.bin`;
      return { name, file: path.join(srcDir, name), size: rng.int(8 * MiB, 16 * MiB) };
    });
    await Promise.all([...plans, ...sends].map((p) => randomFile(p.file, p.size, `web-load-${p.name}-${rng.seed}`)));

    const serve = await startServe(inbox, {
      timeoutMs: 400_000,
      args: ['--token-file', tokenFile, '--max-connections', '128', '--max-connections-per-address', '128'],
    });
    const receiverRss = trackPeakRss(serve.proc.pid, 50);
    // The receiver's self-signed identity; its fingerprint is what ft send checks.
    const agent = new https.Agent({ keepAlive: false, rejectUnauthorized: false, maxSockets: Infinity });
    const endpoint = `https://127.0.0.1:${serve.port}/files/`;
    try {
      const started = Date.now();
      const senders = sends.map((s) =>
        spawnFt(['send', s.file, '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!, '--token-file', tokenFile, '--json'], { timeoutMs: 240_000 }),
      );
      const outcomes = await Promise.all(plans.map((plan) => upload(plan, endpoint, agent, token)));
      const uploadsMs = Date.now() - started;
      const exits = await Promise.all(senders.map((s) => s.exited));
      const wallMs = Date.now() - started;
      for (const [i, exit] of exits.entries()) {
        expect(exit, `ft send ${sends[i]!.name}:\n${senders[i]!.stdout}\n${senders[i]!.stderr}`).toEqual({ code: 0, signal: null });
      }

      // Interrupted uploads continued from what the receiver held, not from 0. One whose last
      // bytes were already on their way when the abort came may have been complete by then (the
      // resumption's HEAD says so and it sends nothing), but most must really resume.
      const interrupted = plans.flatMap((plan, i) => (plan.stopAt === undefined ? [] : [{ plan, patches: outcomes[i]!.resumedPatches }]));
      for (const { plan, patches } of interrupted) {
        if (patches.length) expect(patches[0], `${plan.name}: first PATCH after resuming`).toBeGreaterThan(0);
      }
      expect(interrupted.filter(({ patches }) => patches.length > 0).length).toBeGreaterThanOrEqual(INTERRUPTED / 2);

      const all = [...plans, ...sends];
      // Every upload was answered after its file was placed; the events may still be in the pipe.
      await waitUntil(() => serve.events('received').length >= all.length, 'every received event', { timeoutMs: 20_000 });
      const received = serve.events('received');
      expect(received).toHaveLength(all.length);
      for (const event of received) expect(event, JSON.stringify(event)).toMatchObject({ verified: true });
      expect(received.filter((e) => e.protocol === 'tus').map((e) => e.name).sort()).toEqual(plans.map((p) => p.name).sort());
      expect(received.filter((e) => e.protocol === 'ft').map((e) => e.name).sort()).toEqual(sends.map((s) => s.name).sort());

      expect((await readdir(inbox)).filter((n) => !n.startsWith('.')).sort()).toEqual(all.map((p) => p.name).sort());
      for (const p of all) expect(await sameContent(p.file, path.join(inbox, p.name)), p.name).toBe(true);
      expect(await partialFolder(inbox)).toEqual([]);
      expect(serve.proc.child.exitCode).toBeNull();

      const peak = await receiverRss.stop();
      const now = await procStatusBytes(serve.proc.pid, 'VmRSS');
      const bytes = all.reduce((n, p) => n + p.size, 0);
      const reasons = new Map<string, number>();
      for (const reason of outcomes.flatMap((o) => o.retries)) reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      const retries = reasons.size ? [...reasons].map(([reason, n]) => `${n} × ${reason}`).join(', ') : 'none';
      const slowest = Math.max(...outcomes.map((o) => o.ms));
      console.log(
        `web load: ${UPLOADS} tus uploads (${plans.filter((p) => p.chunkSize).length} chunked, ${INTERRUPTED} interrupted and resumed) ` +
          `and ${SENDS} ft sends, ${(bytes / MiB).toFixed(0)} MiB in all: uploads done in ${(uploadsMs / 1000).toFixed(1)} s ` +
          `(slowest ${(slowest / 1000).toFixed(1)} s, hashing included), everything in ${(wallMs / 1000).toFixed(1)} s ` +
          `(${(bytes / MiB / (wallMs / 1000)).toFixed(1)} MiB/s overall); tus-js-client retries: ${retries}; ` +
          `receiver peak RSS ${mb(peak)} (now ${mb(now)}; bound ${mb(RSS_LIMIT)})`,
      );
      expect(peak, 'VmHWM of the receiver').toBeDefined();
      expect(peak!).toBeLessThan(RSS_LIMIT);
    } finally {
      agent.destroy();
      await receiverRss.stop();
      await stopServe(serve.proc);
      await rm(root, { recursive: true, force: true });
    }
  });
});
