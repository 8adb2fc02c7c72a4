/**
 * The sender's file of pinned receivers, through `ft send` (dist/: build first): several senders
 * pinning at once into one file all end up pinned, and a corrupt file stops a send with one
 * clear line (exit 2) before anything is sent, rather than trusting everything. Loopback only.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { TrustStore } from '../../src/auth/trust-store.js';
import { shortFingerprint } from '../../src/index.js';
import { listFiles } from '../helpers/files.js';
import { closeAllReceivers, startReceiver, type TestReceiver } from '../helpers/receiver.js';
import { expectOneCleanErrorLine, killAllFt, runFt } from '../helpers/spawn-ft.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

afterEach(async () => {
  await killAllFt();
  await closeAllReceivers();
});
afterAll(removeTempDirs);

async function localFile(): Promise<{ file: string; name: string }> {
  const name = `pin-me-${randomBytes(4).toString('hex')}.txt`;
  const file = path.join(await tempDir('ft-tf-src-'), name);
  await writeFile(file, `content of ${name}\n`);
  return { file, name };
}

async function expectUntouched(receiver: TestReceiver): Promise<void> {
  expect(receiver.eventsOf('started')).toEqual([]);
  expect(await listFiles(receiver.dir)).toEqual([]);
}

describe('concurrent senders pinning into one trust file', () => {
  it('several `ft send --trust-new` at once, to several receivers: every receiver ends up pinned, and the next sends need no --trust-new', async () => {
    const receivers = await Promise.all([1, 2, 3, 4, 5].map(() => startReceiver()));
    const trustFile = path.join(await tempDir('ft-tf-'), 'sub', 'known-receivers.json');
    const runs = await Promise.all(
      receivers.map(async (r) => runFt(['send', (await localFile()).file, '--to', `127.0.0.1:${r.port}`, '--trust-new', '--trust-file', trustFile, '--retries', '0'], { timeoutMs: 60_000 })),
    );
    for (const run of runs) expect(run.exit.code, run.stderr).toBe(0);

    const pinned = await new TrustStore(trustFile).list();
    expect(pinned).toHaveLength(receivers.length);
    for (const r of receivers) {
      expect(pinned.find((p) => p.fingerprint === r.fingerprint)).toMatchObject({ addresses: [`127.0.0.1:${r.port}`] });
    }
    expect((await stat(trustFile)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(trustFile))).mode & 0o777).toBe(0o700);

    // The pins are used: without --trust-new (no terminal), each is a known receiver now.
    const again = await Promise.all(receivers.map(async (r) => runFt(['send', (await localFile()).file, '--to', `127.0.0.1:${r.port}`, '--trust-file', trustFile, '--retries', '0'])));
    for (const run of again) expect(run.exit.code, run.stderr).toBe(0);
    for (const r of receivers) expect(r.eventsOf('received')).toHaveLength(2);
  });
});

describe('a pinned address answered by another key, through ft send', () => {
  it('exits 6 with one line naming both fingerprints and `ft trust forget`, and the impostor gets nothing', async () => {
    const { startSwitchProxy, closeAllSwitchProxies } = await import('../helpers/switch-proxy.js');
    const real = await startReceiver();
    const impostor = await startReceiver();
    const address = await startSwitchProxy(real.port);
    try {
      const trustFile = path.join(await tempDir('ft-tf-'), 'known-receivers.json');
      const first = await runFt(['send', (await localFile()).file, '--to', `127.0.0.1:${address.port}`, '--trust-new', '--trust-file', trustFile, '--retries', '0']);
      expect(first.exit.code, first.stderr).toBe(0);
      address.target = impostor.port;
      for (const extra of [[], ['--trust-new']]) {
        const run = await runFt(['send', (await localFile()).file, '--to', `127.0.0.1:${address.port}`, '--trust-file', trustFile, '--retries', '0', ...extra]);
        expect(run.exit.code, run.stderr).toBe(6);
        expectOneCleanErrorLine(run.stderr);
        expect(run.stderr).toContain(shortFingerprint(real.fingerprint!));
        expect(run.stderr).toContain(shortFingerprint(impostor.fingerprint!));
        expect(run.stderr).toContain(`ft trust forget 127.0.0.1:${address.port}`);
      }
      await expectUntouched(impostor);
    } finally {
      await closeAllSwitchProxies();
    }
  });
});

describe('a corrupt trust file', () => {
  const corruptions: Array<[string, string]> = [
    ['not JSON', '{"version":1,"receivers":['],
    ['garbage bytes', '\u0000\u0001binary\u00ff'],
    ['a malformed fingerprint', JSON.stringify({ version: 1, receivers: [{ fingerprint: 'nope', names: [], addresses: [], added: '2025-01-01T00:00:00.000Z', lastSeen: '2025-01-01T00:00:00.000Z' }] })],
    ['the wrong shape', JSON.stringify({ receivers: 'all of them' })],
    ['a list instead of an object', '[]'],
  ];
  for (const [what, text] of corruptions) {
    it(`${what}: ft send exits 2 with one TRUST_STORE_INVALID line naming the file, sends nothing, and leaves the file alone`, async () => {
      const receiver = await startReceiver();
      const trustFile = path.join(await tempDir('ft-tf-'), 'known-receivers.json');
      await writeFile(trustFile, text, { mode: 0o600 });
      const { file } = await localFile();
      // With --trust-new (trust anything new) as well: a file that cannot be read is no "nothing pinned".
      for (const extra of [['--trust-new'], []]) {
        const run = await runFt(['send', file, '--to', `127.0.0.1:${receiver.port}`, '--trust-file', trustFile, '--retries', '0', ...extra]);
        expect(run.exit.code, run.stderr).toBe(2);
        expectOneCleanErrorLine(run.stderr);
        expect(run.stderr).toContain(trustFile);
        const json = await runFt(['send', file, '--to', `127.0.0.1:${receiver.port}`, '--trust-file', trustFile, '--retries', '0', '--json', ...extra]);
        expect(json.exit.code).toBe(2);
        expect(json.json()).toContainEqual(expect.objectContaining({ event: 'error', code: 'TRUST_STORE_INVALID' }));
      }
      await expectUntouched(receiver);
      expect(await readFile(trustFile, 'utf8')).toBe(text);
    });
  }

  it('with --fingerprint (no pin needed) or a token, a corrupt file still stops the send before any file is announced', async () => {
    const token = 'corrupt-file token';
    const tokenFile = path.join(await tempDir('ft-tf-tok-'), 'token');
    await writeFile(tokenFile, token, { mode: 0o600 });
    const open = await startReceiver();
    const guarded = await startReceiver({ token });
    const trustFile = path.join(await tempDir('ft-tf-'), 'known-receivers.json');
    await writeFile(trustFile, '{"version":1,', { mode: 0o600 });
    const { file } = await localFile();
    for (const [receiver, extra] of [
      [open, ['--fingerprint', shortFingerprint(open.fingerprint!)]],
      [guarded, ['--token-file', tokenFile]],
    ] as const) {
      const run = await runFt(['send', file, '--to', `127.0.0.1:${receiver.port}`, '--trust-file', trustFile, '--retries', '0', ...extra]);
      expect(run.exit.code, run.stderr).toBe(2);
      expectOneCleanErrorLine(run.stderr);
      expect(run.stderr).toContain(trustFile);
      await expectUntouched(receiver);
    }
  });
});

describe('the connection is closed when the trust file fails after the handshake', () => {
  /**
   * Regression: with --fingerprint, the key is checked without the store, so the store is first
   * touched by `trust.confirmed()` after the welcome; when that threw (TRUST_STORE_INVALID), the
   * connection stayed open until connectTimeoutMs passed (`ft send` then took 10 s to exit).
   */
  it('with --fingerprint and a corrupt trust file, the receiver sees the connection end at once, not after the connect timeout', async () => {
    const receiver = await startReceiver();
    const trustFile = path.join(await tempDir('ft-tf-'), 'known-receivers.json');
    await writeFile(trustFile, '{"version":1,', { mode: 0o600 });
    const { send, FtError } = await import('../../src/index.js');
    const error = await send([(await localFile()).file], {
      host: '127.0.0.1',
      port: receiver.port,
      fingerprint: receiver.fingerprint,
      trustFile,
      retries: 0,
      connectTimeoutMs: 120_000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FtError);
    expect((error as InstanceType<typeof FtError>).code).toBe('TRUST_STORE_INVALID');
    await expectUntouched(receiver);
    // Well under the 120 s the open socket would otherwise last.
    await receiver.waitFor('connection-error', () => true, 15_000);
  }, 30_000);
});
