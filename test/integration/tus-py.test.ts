/**
 * tus-py-client (Debian's python3-tuspy), a tus client nobody here wrote, against a live
 * receiver: an upload in checksummed chunks, and one stopped part-way and resumed by its URL by
 * another client process, as a script run again would.
 */
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { hashBytes } from '../../src/hashing.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const run = promisify(execFile);
// Debian's package installs for the system Python (a pyenv shim on PATH may not see it).
const PYTHON = '/usr/bin/python3';

function tuspyMissing(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is not installed`;
  try {
    execFileSync(PYTHON, ['-c', 'import tusclient'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'tus-py-client is not installed (apt-get install python3-tuspy; .ci/run does)';
  }
}
const missing = tuspyMissing();
if (missing) console.warn(`skipping the tus-py-client tests: ${missing}`);

/** Uploads `file` with tuspy; `stopAfterChunks` stops it part-way and prints the upload's URL. */
const SCRIPT = String.raw`
import json, sys
import requests
from tusclient import client
# tuspy 1.0's get_offset() (the HEAD of a resume) ignores verify_tls_cert: pass it on for it.
_head = requests.head
requests.head = lambda *a, **k: _head(*a, verify=False, **k)
args = json.loads(sys.argv[1])
c = client.TusClient(args["endpoint"], headers={"Authorization": "Bearer " + args["token"]})
kw = dict(chunk_size=args["chunk"], metadata=args["metadata"], verify_tls_cert=False, upload_checksum=True)
if args.get("url"):
    up = c.uploader(args["file"], url=args["url"], **kw)
else:
    up = c.uploader(args["file"], **kw)
if args.get("stopAfterChunks"):
    for _ in range(args["stopAfterChunks"]):
        up.upload_chunk()
    print(json.dumps({"url": up.url, "offset": up.offset}))
else:
    start = up.get_offset() if args.get("url") else 0
    up.upload()
    print(json.dumps({"url": up.url, "offset": up.offset, "resumedFrom": start}))
`;

async function tuspy(args: Record<string, unknown>): Promise<{ url: string; offset: number; resumedFrom?: number }> {
  const { stdout } = await run(PYTHON, ['-c', SCRIPT, JSON.stringify(args)], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

afterEach(async () => {
  await closeAllReceivers();
  await removeTempDirs();
});

describe.skipIf(missing !== undefined)('tus-py-client against ft serve', () => {
  it('uploads in checksummed 1 MiB chunks; the file lands verified and byte-identical', async () => {
    const r = await startReceiver({ token: 'sekrit' });
    const content = randomBytes(5 * 1024 * 1024 + 123);
    const file = path.join(await tempDir(), 'from-python.bin');
    await writeFile(file, content);
    const result = await tuspy({
      endpoint: `https://127.0.0.1:${r.port}/files/`,
      token: 'sekrit',
      file,
      chunk: 1024 * 1024,
      metadata: { filename: 'from-python.bin', hash: await hashBytes(content) },
    });
    expect(result.offset).toBe(content.length);
    const received = await r.waitFor('received', (e) => e.name === 'from-python.bin');
    expect(received).toMatchObject({ protocol: 'tus', verified: true, size: content.length });
    expect((await readFile(path.join(r.dir, 'from-python.bin'))).equals(content)).toBe(true);
  });

  it('an upload stopped part-way resumes from the receiver offset in a new process, after a restart of the receiver', async () => {
    const dir = path.join(await tempDir(), 'inbox');
    const first = await startReceiver({ token: 'sekrit', dir });
    const content = randomBytes(6 * 1024 * 1024);
    const file = path.join(await tempDir(), 'resumed.bin');
    await writeFile(file, content);
    const metadata = { filename: 'nested/resumed.bin', hash: await hashBytes(content) };
    const chunk = 2 * 1024 * 1024;
    const stopped = await tuspy({ endpoint: `https://127.0.0.1:${first.port}/files/`, token: 'sekrit', file, chunk, metadata, stopAfterChunks: 2 });
    expect(stopped.offset).toBe(2 * chunk);
    expect(existsSync(path.join(dir, 'nested', 'resumed.bin'))).toBe(false);
    await first.close();

    const second = await startReceiver({ token: 'sekrit', dir });
    // The URL names the first receiver's port: the same upload on the restarted one.
    const url = stopped.url.replace(`:${first.port}/`, `:${second.port}/`);
    const finished = await tuspy({ endpoint: `https://127.0.0.1:${second.port}/files/`, token: 'sekrit', file, chunk, metadata, url });
    expect(finished.resumedFrom).toBe(2 * chunk);
    const received = await second.waitFor('received');
    expect(received).toMatchObject({ name: 'nested/resumed.bin', protocol: 'tus', verified: true, resumedFrom: 2 * chunk });
    expect((await readFile(path.join(dir, 'nested', 'resumed.bin'))).equals(content)).toBe(true);
  });
});
