/**
 * `ft send` on a pseudo-terminal, as in a terminal window: the live progress lines are drawn
 * only there. What the terminal received is read back through a terminal emulator
 * (test/helpers/terminal.ts). Receivers listen on 127.0.0.1 only.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import stringWidth from 'string-width';
import { stripVTControlCharacters as stripAnsi } from 'node:util';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { listFiles, partialBytes, randomFile } from '../helpers/files.js';
import { closeAllProxies, startProxy } from '../helpers/proxy.js';
import { killAllFt, runFt, runFtOnTerminal, startFtServe, terminalUnavailable } from '../helpers/spawn-ft.js';
import { screenOf } from '../helpers/terminal.js';
import { removeTempDirs, tempDir } from '../helpers/temp.js';

const unavailable = terminalUnavailable();

afterEach(async () => {
  await killAllFt();
  await closeAllProxies();
});
afterAll(removeTempDirs);

describe.skipIf(unavailable !== undefined)(`ft send on a terminal${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it.each([
    ['an "already there" line', false],
    ['a "failed" line (a missing path)', true],
  ])('exits after its summary when %s comes before the first progress line', async (_, withMissing) => {
    // cli-progress 3.12 left a timer running here, and ft never exited.
    const serve = await startFtServe(path.join(await tempDir('ft-tty-'), 'inbox'));
    const src = await tempDir('ft-tty-src-');
    const old = path.join(src, 'old.txt');
    await writeFile(old, 'sent before\n');
    const added = await randomFile(path.join(src, 'added.bin'), 3 * 1024 * 1024);
    const to = `127.0.0.1:${serve.port}`;
    const first = await runFt(['send', old, '--to', to, '--fingerprint', serve.fingerprint!]);
    expect(first.exit.code, first.stderr).toBe(0);

    const paths = withMissing ? [path.join(src, 'missing.txt'), old, added] : [old, added];
    const run = await runFtOnTerminal(['send', ...paths, '--to', to, '--fingerprint', serve.fingerprint!], { columns: 80, timeoutMs: 30_000 });
    expect(run.timedOut, `ft did not exit within 30 s; the terminal showed:\n${stripAnsi(run.output)}`).toBe(false);
    expect(run.code).toBe(withMissing ? 2 : 0);
    expect(await screenOf(run.output, 80)).toEqual([
      ...(withMissing ? [expect.stringMatching(/^failed +missing\.txt: LOCAL_FILE: .*no such file or folder$/)] : []),
      'skipped  old.txt: already there',
      'sent     added.bin: 3 MiB verified',
      expect.stringMatching(new RegExp(`^ft: 1 sent, 1 already there${withMissing ? ', 1 failed' : ''}; 3 MiB in [\\d.]+m?s \\(.*/s\\)$`)),
    ]);
  });

  it.each([60, 80])('at %i columns: progress lines fit the width with rate and ETA, and the results are whole', async (columns) => {
    const dir = path.join(await tempDir('ft-tty-'), 'inbox');
    const serve = await startFtServe(dir);
    // Paced, so that progress is drawn several times (the first few MiB fill the socket buffers at once).
    const proxy = await startProxy({ targetPort: serve.port, bytesPerSecond: 8 * 1024 * 1024 });
    const src = await tempDir('ft-tty-src-');
    const longName = `${'a-rather-long-file-name-'.repeat(5)}that-ends-here.bin`;
    const long = await randomFile(path.join(src, longName), 16 * 1024 * 1024);
    const small = path.join(src, 'small.txt');
    await writeFile(small, 'small\n');

    const run = await runFtOnTerminal(['send', long, small, '--to', `127.0.0.1:${proxy.port}`, '--fingerprint', serve.fingerprint!], { columns, timeoutMs: 60_000 });
    expect(run.timedOut, stripAnsi(run.output)).toBe(false);
    expect(run.code, stripAnsi(run.output)).toBe(0);

    // Every live line ever drawn took one row, and showed the numbers.
    const drawn = stripAnsi(run.output)
      .split(/\r?\n|\r/)
      .filter((line) => line.includes('ETA'));
    expect(drawn.length).toBeGreaterThan(2);
    for (const line of drawn) {
      expect(stringWidth(line), line).toBeLessThan(columns);
      expect(line).toMatch(/ \d+% +[\d.]+( \w+)?\/[\d.]+ \w+ +(–|[\d.]+ \w+)\/s  ETA (–|\d)/);
    }
    expect(drawn.some((line) => /^a-rather[a-z-]*…[a-z-]*\.bin .*MiB\/s  ETA \d/.test(line))).toBe(true);
    expect(drawn.some((line) => /^\d\/2 files /.test(line))).toBe(true);

    // The terminal ends with the results, whole, and the summary; no live line is left.
    const screen = await screenOf(run.output, columns);
    expect(screen).toHaveLength(3);
    // The two files are verified in either order.
    expect(screen.slice(0, 2).sort()).toEqual([`sent     ${longName}: 16 MiB verified`, 'sent     small.txt: 6 B verified']);
    expect(screen[2]).toMatch(/^ft: 2 sent, 0 already there; 16 MiB in /);
  });

  describe('first contact asks', () => {
    const QUESTION = /\[y\/N\] /;

    async function firstContact(answer: string) {
      const dir = path.join(await tempDir('ft-tty-'), 'inbox');
      const serve = await startFtServe(dir);
      const trustFile = path.join(await tempDir('ft-tty-trust-'), 'known-receivers.json');
      const src = await tempDir('ft-tty-src-');
      const file = path.join(src, 'note.txt');
      await writeFile(file, 'remember the milk\n');
      const to = `127.0.0.1:${serve.port}`;
      const run = await runFtOnTerminal(['send', file, '--to', to, '--trust-file', trustFile], { timeoutMs: 30_000, answer: { when: QUESTION, text: answer } });
      expect(run.timedOut, `ft did not exit within 30 s; the terminal showed:\n${stripAnsi(run.output)}`).toBe(false);
      const screen = await screenOf(run.output, 80);
      const pins = await runFt(['trust', 'list', '--json', '--trust-file', trustFile]);
      return { serve, dir, to, run, screen, pins: pins.stdout };
    }

    it('shows the fingerprint and asks; "y" sends and pins it', async () => {
      const { serve, dir, to, run, screen, pins } = await firstContact('y\r');
      expect(run.code, stripAnsi(run.output)).toBe(0);
      const text = screen.join('\n');
      expect(text).toContain(`first contact with ${to}`);
      expect(screen.map((line) => line.trim())).toContain(serve.fingerprint);
      // The question says what to compare it with, and stays on the screen with the answer.
      expect(text).toMatch(/compare it with the one `ft serve` printed there/);
      expect(text).toMatch(/Is it the same, and do you trust it\? \[y\/N\] y$/m);
      expect(text).toMatch(/^sent +note\.txt: 18 B verified$/m);
      expect(await listFiles(dir)).toEqual(['note.txt']);
      expect(pins).toContain(serve.fingerprint!.replace(/-/g, ''));
      expect(pins).toContain(to);
    });

    it.each([
      ['"n"', 'n\r'],
      ['Enter alone', '\r'],
      ['"yes please" (not a yes)', 'yes please\r'],
      ['Ctrl-D (the end of input)', '\x04'],
      ['Ctrl-C', '\x03'],
    ])('%s: exits 7 (Ctrl-C: 130, interrupted), nothing sent, nothing pinned', async (what, answer) => {
      const { serve, dir, run, screen, pins } = await firstContact(answer);
      expect(run.code, stripAnsi(run.output)).toBe(what === 'Ctrl-C' ? 130 : 7);
      expect(screen.at(-1)).toMatch(what === 'Ctrl-C' ? /ft: interrupted/ : /was not trusted; nothing was sent$/);
      expect(screen.map((line) => line.trim())).toContain(serve.fingerprint);
      expect(await listFiles(dir).catch(() => [])).toEqual([]);
      expect(await partialBytes(dir)).toBe(0);
      expect(serve.proc.stdout).not.toMatch(/^(started|received) /m);
      expect(pins).toBe('');
      expect(stripAnsi(run.output)).not.toContain('    at ');
    });
  });
});
