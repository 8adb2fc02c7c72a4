#!/usr/bin/env node
// The tus client for bench/run.js: tus-js-client (the Node build, as any Node program would use it)
// uploading files to a tus endpoint, in a process of its own so its CPU time is the sender's.
//
//   node bench/tus-client.js --endpoint URL [--insecure] [--concurrency N] [--chunk-size BYTES]
//                            [--creation-with-upload] [--token T] PATH
//
// PATH is a file (uploaded as its base name) or a folder (each file in it uploaded with
// `relativePath` = folder name/file name, as a browser sends a dropped folder), N at a time over
// one keep-alive agent. Before each upload the file's XXH64 is computed (xxhash-wasm, streamed, as
// the upload page does) and sent as `hash` = `xxh64:<16 hex>`: ft needs it to verify, and the
// other servers get it too so that the client does the same work for every server. --insecure
// accepts a self-signed certificate (ft's identity, the bench's own for @tus/server). Prints one
// JSON line at the end: { files, bytes, hashMs, ms, retries }; exits 1 on the first failed upload.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tus from 'tus-js-client';
import xxhash from 'xxhash-wasm';

const { values, positionals } = parseArgs({
  options: {
    endpoint: { type: 'string' },
    insecure: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '8' },
    'chunk-size': { type: 'string' },
    token: { type: 'string' },
    // The body in the POST (tus-js-client's uploadDataDuringCreation): one request per small file.
    'creation-with-upload': { type: 'boolean', default: false },
  },
  allowPositionals: true,
});
if (!values.endpoint || positionals.length !== 1) {
  process.stderr.write('usage: tus-client.js --endpoint URL [--insecure] [--concurrency N] [--chunk-size BYTES] [--creation-with-upload] [--token T] PATH\n');
  process.exit(2);
}
const concurrency = Math.max(1, Number(values.concurrency));
const chunkSize = values['chunk-size'] ? Number(values['chunk-size']) : undefined;

const HASH_BLOCK = 1024 * 1024;
const { create64, h64Raw } = await xxhash();

/** `xxh64:<16 hex>` of the whole file: one read for a small file, 1 MiB blocks for a large one. */
async function fileHash(file, size) {
  if (size <= HASH_BLOCK) return format(h64Raw(fs.readFileSync(file), 0n));
  const state = create64(0n);
  for await (const block of fs.createReadStream(file, { highWaterMark: HASH_BLOCK })) state.update(block);
  return format(state.digest());
}
const format = (value) => `xxh64:${value.toString(16).padStart(16, '0')}`;

const secure = values.endpoint.startsWith('https:');
// One agent for every upload: keep-alive sockets, at most `concurrency` of them (the server's
// per-address connection limit must allow that many).
const agentOptions = { keepAlive: true, maxSockets: concurrency, ...(secure && values.insecure ? { rejectUnauthorized: false } : {}) };
const agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
const httpStack = new tus.DefaultHttpStack({ agent, ...(secure && values.insecure ? { rejectUnauthorized: false } : {}) });
const headers = values.token ? { Authorization: `Bearer ${values.token}` } : {};

let retries = 0;
let hashMs = 0;

async function upload(file, relativePath) {
  const size = fs.statSync(file).size;
  const t0 = performance.now();
  const hash = await fileHash(file, size);
  hashMs += performance.now() - t0;
  const metadata = { filename: path.basename(file), hash };
  if (relativePath) metadata.relativePath = relativePath;
  await new Promise((resolve, reject) => {
    const options = {
      endpoint: values.endpoint,
      metadata,
      headers,
      httpStack,
      uploadSize: size,
      onSuccess: resolve,
      onError: reject,
      onShouldRetry: (error, attempt, opts) => {
        const status = error.originalResponse?.getStatus?.() ?? 0;
        // tus-js-client's own rule: retry unless a 4xx other than 409 / 423.
        const retry = !(status >= 400 && status < 500 && status !== 409 && status !== 423);
        if (retry) retries += 1;
        return retry;
      },
    };
    if (chunkSize) options.chunkSize = chunkSize;
    if (values['creation-with-upload']) options.uploadDataDuringCreation = true;
    new tus.Upload(fs.createReadStream(file), options).start();
  });
  return size;
}

const root = path.resolve(positionals[0]);
const jobs = fs.statSync(root).isDirectory()
  ? fs.readdirSync(root).sort().map((name) => [path.join(root, name), `${path.basename(root)}/${name}`])
  : [[root, undefined]];

const started = performance.now();
let next = 0;
let bytes = 0;
async function worker() {
  while (next < jobs.length) {
    const [file, relativePath] = jobs[next++];
    const size = await upload(file, relativePath);
    bytes += size;
  }
}
try {
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, worker));
} catch (error) {
  process.stderr.write(`tus-client: ${error?.message ?? error}\n`);
  process.exit(1);
}
const ms = performance.now() - started;
agent.destroy();
process.stdout.write(`${JSON.stringify({ files: jobs.length, bytes, hashMs: Math.round(hashMs), ms: Math.round(ms), retries })}\n`);
