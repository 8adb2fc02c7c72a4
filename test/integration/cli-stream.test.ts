/**
 * `producer | ft send - --as NAME` as a user runs it: standard input arrives as one verified
 * file; a stream cut off exits 8 and leaves nothing; one over the receiver's limit is refused
 * while it is still flowing (exit 4).
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { listFiles, waitUntil } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { expectOneCleanErrorLine, killAllFt, runFt, startFtServe } from '../helpers/spawn-ft.js';
import { startProducer } from '../helpers/stream-producer.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const MiB = 1024 * 1024;

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
});
afterAll(removeTempDirs);

async function setup(serveArgs: string[] = []) {
  const root = await tempDir('ft-cli-stream-');
  const home = { HOME: root, XDG_CONFIG_HOME: path.join(root, 'config'), XDG_CACHE_HOME: path.join(root, 'cache') };
  const serve = await startFtServe(path.join(root, 'inbox'), { args: serveArgs });
  return { home, serve };
}

describe('ft send - --as NAME', () => {
  it('sends standard input, piped from a child process, as one verified file', async () => {
    const { home, serve } = await setup();
    const producer = startProducer(8 * MiB + 5);
    const ft = await runFt(['send', '-', '--as', 'dump/db.sql', '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], {
      env: home,
      stdin: producer.child.stdout!,
    });
    expect(ft.exit.code, ft.stderr).toBe(0);
    expect(ft.stdout).toMatch(/^sent {5}dump\/db\.sql: 8 MiB verified$/m);
    const received = await readFile(path.join(serve.dir, 'dump/db.sql'));
    expect(received.length).toBe(8 * MiB + 5);
    expect(createHash('sha256').update(received).digest('hex')).toBe(await producer.sha256);
    expect(await listFiles(serve.dir)).toEqual(['dump/db.sql']);
  });

  it('a stream whose connection is cut mid-way exits 8 (run the job again); nothing under its name, no partial', async () => {
    const { home, serve } = await setup();
    const proxy = await startProxy({ targetPort: serve.port });
    const producer = startProducer();
    const sending = runFt(['send', '-', '--as', 'cut.bin', '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', serve.fingerprint!, '--retries', '5'], {
      env: home,
      stdin: producer.child.stdout!,
    });
    await waitUntil(() => proxy.forwarded > 4 * MiB, 'the stream under way');
    proxy.cutAll();
    const ft = await sending;
    producer.child.kill();
    expect(ft.exit.code, ft.stderr).toBe(8);
    expect(ft.stderr).toMatch(/cut off after \d+ bytes.*a stream cannot resume: run the job again/);
    expect(ft.stderr).not.toContain('    at ');
    expect(proxy.accepted).toBe(1);
    await waitUntil(async () => (await listFiles(serve.dir)).length === 0, 'the stream’s partial deleted');
  });

  it('a stream over the receiver’s --max-file-size is refused while it flows (exit 4)', async () => {
    const { home, serve } = await setup(['--max-file-size', '2M']);
    // Up to 1 GiB: the send ends long before, or the limit was not kept as the bytes came.
    const producer = startProducer();
    const ft = await runFt(['send', '-', '--as', 'big.bin', '--to', `127.0.0.1:${serve.port}`, '--fingerprint', serve.fingerprint!], {
      env: home,
      stdin: producer.child.stdout!,
    });
    producer.child.kill();
    expect(ft.exit.code, ft.stderr).toBe(4);
    expect(ft.stdout).toMatch(/^failed {3}big\.bin: TOO_LARGE: /m);
    await waitUntil(async () => (await listFiles(serve.dir)).length === 0, 'the stream’s partial deleted');
  });

  it.each([
    [['-'], /needs --as NAME/],
    [['-', 'other.txt', '--as', 'x'], /must be the only path/],
    [['other.txt', '--as', 'x'], /--as names standard input/],
    [['-', '--as', '../up'], /--as "\.\.\/up": /],
  ])('ft send %j is a usage error: exit 2, one line', async (args, message) => {
    const ft = await runFt(['send', ...args, '--to', '127.0.0.1:1']);
    expect(ft.exit.code).toBe(2);
    expectOneCleanErrorLine(ft.stderr);
    expect(ft.stderr).toMatch(message);
  });
});
