/**
 * The trust store across processes (dist/: build first): senders pinning at once keep each
 * other's pins, and a sender killed while it held the lock does not block the next one.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { TrustStore } from '../../src/auth/trust-store.js';
import { REPO_ROOT } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterAll(removeTempDirs);

const STORE_MODULE = pathToFileURL(path.join(REPO_ROOT, 'dist', 'auth', 'trust-store.js')).href;

function fp(n: number): string {
  return String.fromCharCode(65 + n) + 'A'.repeat(51);
}

/** Runs a script in a child node that has `TrustStore` in scope; resolves with its exit code and output. */
function runNode(script: string, { timeoutMs = 60_000, onLine }: { timeoutMs?: number; onLine?: (line: string, kill: () => void) => void } = {}) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `import { TrustStore } from ${JSON.stringify(STORE_MODULE)};\n${script}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const kill = () => child.kill('SIGKILL');
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    stdout += text;
    for (const line of text.split('\n').filter(Boolean)) onLine?.(line, kill);
  });
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const timer = setTimeout(kill, timeoutMs);
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
}

describe('the trust store across processes', () => {
  it('8 senders recording at once, each a different receiver, several times: every pin stays', async () => {
    const file = path.join(await tempDir('ft-trust-proc-'), 'ft', 'known-receivers.json');
    const runs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        runNode(`
          const store = new TrustStore(${JSON.stringify(file)});
          for (let round = 0; round < 5; round++) {
            await store.record({ fingerprint: ${JSON.stringify(fp(i))}, name: 'receiver-${i}-' + round, address: '10.0.0.${i + 1}:' + (9000 + round) });
          }
        `),
      ),
    );
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    const entries = await new TrustStore(file).list();
    expect(entries.map((e) => e.fingerprint).sort()).toEqual(Array.from({ length: 8 }, (_, i) => fp(i)).sort());
    for (const e of entries) expect(e.names).toHaveLength(5);
    expect((await readdir(path.dirname(file))).sort()).toEqual(['known-receivers.json']);
  });

  it('a sender killed while it holds the lock does not block the next one', async () => {
    const file = path.join(await tempDir('ft-trust-proc-'), 'ft', 'known-receivers.json');
    await new TrustStore(file).record({ fingerprint: fp(0), name: 'first' });
    // A file system whose rename never finishes: the child is stopped inside its change, lock held.
    const held = await runNode(
      `
      const fs = await import('node:fs');
      const stuck = { ...fs.promises, rename: () => { console.log('holding'); return new Promise(() => setInterval(() => {}, 1000)); } };
      await new TrustStore(${JSON.stringify(file)}, { fs: stuck }).record({ fingerprint: ${JSON.stringify(fp(1))}, name: 'killed' });
    `,
      { onLine: (line, kill) => line === 'holding' && kill() },
    );
    expect(held.signal, held.stderr).toBe('SIGKILL');
    expect((await readdir(path.dirname(file))).some((name) => name.endsWith('.lock'))).toBe(true);
    // Well within the 10 s after which any lock is stale: the holder's process is gone.
    const next = await runNode(`
      await new TrustStore(${JSON.stringify(file)}, { lockWaitMs: 8000 }).record({ fingerprint: ${JSON.stringify(fp(2))}, name: 'next' });
    `);
    expect(next.code, next.stderr).toBe(0);
    const entries = await new TrustStore(file).list();
    expect(entries.map((e) => e.names[0])).toEqual(['first', 'next']);
  });
});
