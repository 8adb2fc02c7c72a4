/** The CLI's words and numbers for people, as pure functions: width in, string out. */
import stringWidth from 'string-width';
import { describe, expect, it } from 'vitest';
import { durationsInWords, formatBytes, formatDuration, formatEta, formatRate } from '../../src/cli/format.js';
import { displayWidth, shortenMiddle, truncateEnd } from '../../src/cli/text-width.js';
import { parseTarget } from '../../src/cli/options.js';
import { formatAmounts, progressLine, progressLines, RateMeter } from '../../src/cli/progress.js';
import { exitCodeOf } from '../../src/cli/send-command.js';
import { summaryLine } from '../../src/cli/send-view.js';
import { socketErrorInWords } from '../../src/cli/serve-command.js';
import type { ErrorCode } from '../../src/errors.js';
import type { FileResult } from '../../src/sender/sender.js';
import { describeFsError } from '../../src/sender/local-files.js';

const MiB = 1024 * 1024;

describe('sizes, rates and durations', () => {
  it('sizes have three significant digits and never read 1024.0 KiB', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1 KiB');
    expect(formatBytes(24_780)).toBe('24.2 KiB');
    expect(formatBytes(MiB - 1)).toBe('1 MiB');
    expect(formatBytes(3_000_000)).toBe('2.86 MiB');
    for (let bytes = 1; bytes < 2 ** 42; bytes = Math.ceil(bytes * 1.37)) {
      expect(formatBytes(bytes)).not.toMatch(/^1024(\.0)? /);
      expect(formatBytes(bytes)).toMatch(/^\d{1,4}(\.\d{1,2})? (B|KiB|MiB|GiB|TiB)$/);
    }
  });

  it('rates are rounded (no 333.3333333333333 B/s), and no time is no rate', () => {
    expect(formatRate(1000, 3000)).toBe('333 B/s');
    expect(formatRate(4, 24)).toBe('167 B/s');
    expect(formatRate(10 * MiB, 1000)).toBe('10 MiB/s');
    expect(formatRate(5, 0)).toBe('—');
  });

  it('durations never read "1 min 60 s"', () => {
    expect(formatDuration(30)).toBe('30ms');
    expect(formatDuration(4200)).toBe('4.2s');
    expect(formatDuration(119_999)).toBe('1m 59.9s');
    expect(formatDuration(120_000)).toBe('2m');
    for (let ms = 59_000; ms < 61_000; ms += 7) expect(formatDuration(ms)).not.toMatch(/60(\.\d)?s/);
    expect(formatEta(100)).toBe('1s');
    expect(formatEta(3_725_000)).toBe('1h 2m');
    expect(durationsInWords('127.0.0.1:9527 was silent for 60000 ms')).toBe('127.0.0.1:9527 was silent for 1m');
    expect(durationsInWords('no hello within 10000 ms; 2500 ms later')).toBe('no hello within 10s; 2.5s later');
  });
});

describe('fitting text into columns', () => {
  it('shortens a long name in the middle, keeping its start and extension', () => {
    const name = 'holiday-photos-2024/IMG_20240817_153012_very_long_description.jpg';
    const short = shortenMiddle(name, 30);
    expect(displayWidth(short)).toBeLessThanOrEqual(30);
    expect(short).toContain('…');
    expect(short.startsWith('holiday-photos')).toBe(true);
    expect(short.endsWith('.jpg')).toBe(true);
    expect(shortenMiddle('short.txt', 30)).toBe('short.txt');
  });

  it('counts wide characters as two columns and never cuts one in half', () => {
    const name = '三体'.repeat(20) + '.txt';
    for (const width of [5, 10, 11, 25]) {
      const short = shortenMiddle(name, width);
      expect(stringWidth(short)).toBeLessThanOrEqual(width);
      expect(short).not.toMatch(/\uFFFD/);
      expect(truncateEnd(name, width).length).toBeGreaterThan(0);
      expect(stringWidth(truncateEnd(name, width))).toBeLessThanOrEqual(width);
    }
    // Emoji with a skin-tone modifier is one grapheme: kept whole or dropped whole.
    const emoji = '👍🏽'.repeat(10);
    expect([...shortenMiddle(emoji, 7)].filter((c) => c === '🏽').length).toBe([...shortenMiddle(emoji, 7)].filter((c) => c === '👍').length);
  });
});

describe('the progress line', () => {
  const longName = 'a-folder-with-a-long-name/and-a-file-inside-it-whose-name-goes-on-and-on-forever-and-ever.iso';

  it.each([50, 60, 80, 100, 120, 200])('fits %i columns and keeps percent, bytes, rate and ETA', (columns) => {
    const line = progressLine({ label: longName, bytes: 1_536 * MiB, size: 4_096 * MiB, rate: 113 * MiB }, columns);
    expect(stringWidth(line)).toBeLessThanOrEqual(columns - 1);
    expect(line).toContain('37%');
    expect(line).toContain('1.5/4 GiB');
    expect(line).toContain('113 MiB/s');
    expect(line).toMatch(/ETA 22s$/);
    // The name is whole when it fits, else cut in the middle, keeping its end.
    const name = line.split('  ')[0]!.trimEnd();
    expect(name.endsWith('.iso')).toBe(true);
    expect(name === longName || (name.includes('…') && name.startsWith('a-fo'))).toBe(true);
  });

  it('fits widths down to 20 columns, dropping the name and bar before the numbers', () => {
    for (let columns = 20; columns < 200; columns += 1) {
      const line = progressLine({ label: longName, bytes: 900 * MiB, size: 2_900 * MiB, rate: 1.5 * MiB }, columns);
      expect(stringWidth(line), `${columns}: ${line}`).toBeLessThanOrEqual(columns - 1);
    }
  });

  it('shows a bar when there is room, and the same layout for a batch total', () => {
    const line = progressLine({ label: '3/10 files', bytes: 50, size: 100, rate: undefined }, 100);
    expect(line).toMatch(/^3\/10 files +\[#+\.+\]  +50%  50\/100 B  –\/s  ETA –$/);
  });

  it('lines drawn together are one table at every width: the numbers line up, every row fits', () => {
    const items = [
      { label: longName, bytes: 1.2 * 1024 ** 3, size: 2 * 1024 ** 3, rate: 113 * MiB },
      { label: 'x.txt', bytes: 10, size: 4000, rate: undefined },
      { label: '3/120 files', bytes: 1.2 * 1024 ** 3, size: 9.8 * 1024 ** 3, rate: 113 * MiB },
    ];
    for (let columns = 20; columns <= 200; columns += 1) {
      const lines = progressLines(items, columns);
      for (const line of lines) expect(stringWidth(line), `${columns}: ${line}`).toBeLessThanOrEqual(columns - 1);
      if (columns >= 60) {
        expect(new Set(lines.map((line) => line.indexOf('%'))).size, lines.join('\n')).toBe(1);
        expect(lines[2]).toMatch(/^3\/120 files .* 12% +1\.2\/9\.8 GiB +113 MiB\/s  ETA 1m 17s$/);
      }
    }
  });

  it('amounts share their unit when they can', () => {
    expect(formatAmounts(1.2 * 1024 ** 3, 2.8 * 1024 ** 3)).toBe('1.2/2.8 GiB');
    expect(formatAmounts(900 * MiB, 2.8 * 1024 ** 3)).toBe('900 MiB/2.8 GiB');
  });

  it('measures the rate over the last seconds, not since the start', () => {
    const meter = new RateMeter(5000);
    meter.add(0, 0);
    expect(meter.rate()).toBeUndefined();
    // 1 MB/s until 7 s, then stalled: over the last 5 s, 2 MB in 5 s.
    for (let t = 1000; t <= 10_000; t += 1000) meter.add(t, Math.min(t, 7000) * 1000);
    expect(meter.rate()).toBeCloseTo(400_000, -3);
    meter.add(15_000, 7_000_000);
    expect(meter.rate()).toBe(0);
  });
});

describe('--to values', () => {
  it.each([
    ['127.0.0.1', { host: '127.0.0.1', port: undefined }],
    ['127.0.0.1:21527', { host: '127.0.0.1', port: 21527 }],
    ['nas.local:9000', { host: 'nas.local', port: 9000 }],
    ['[fe80::1]:9527', { host: 'fe80::1', port: 9527 }],
    ['[::1]', { host: '::1', port: undefined }],
    ['::1', { host: '::1', port: undefined }],
    ['Kitchen PC', { host: 'Kitchen PC', port: undefined }],
  ])('%s is understood', (value, expected) => {
    expect(parseTarget(value)).toEqual(expected);
  });

  it.each([
    ['127.0.0.1:99999', /port must be from 1 to 65535, not 99999/],
    ['127.0.0.1:0', /port must be from 1 to 65535, not 0/],
    ['host:abc', /port must be a number/],
    ['host:', /ends with ":" but no port/],
    ['[::1]:', /ends with ":" but no port/],
    [':21527', /has no host before the port/],
    ['', /--to is empty/],
    ['   ', /--to is empty/],
    ['a:b:1', /write an IPv6 address in brackets/],
    ['[nope]:1', /is not \[IPv6 address\]/],
    ['[::1', /is not \[IPv6 address\]/],
  ])('%j is refused with a message saying why', (value, message) => {
    expect(() => parseTarget(value)).toThrow(message);
  });
});

describe('messages in words', () => {
  it('file-system errors lose Node\'s errno and quoted path', () => {
    const error = Object.assign(new Error("EACCES: permission denied, open '/home/me/secret.txt'"), { code: 'EACCES', syscall: 'open' });
    expect(describeFsError(error)).toBe('permission denied');
    const odd = Object.assign(new Error("EXDEV: cross-device link not permitted, link '/a' -> '/b'"), { code: 'EXDEV' });
    expect(describeFsError(odd)).toBe('cross-device link not permitted');
  });

  it('a sender that went away is said in words', () => {
    expect(socketErrorInWords('Premature close')).toBe('the sender went away');
    expect(socketErrorInWords('read ECONNRESET')).toMatch(/^the sender went away/);
    expect(socketErrorInWords('write EPIPE')).toMatch(/^the sender went away/);
  });

  it('the summary counts files that the batch never reached', () => {
    const file = (status: FileResult['status'], code?: ErrorCode): FileResult => ({ path: 'p', name: 'n', size: 1, hash: '', status, bytesSent: 0, code });
    const line = summaryLine({ files: [file('sent'), file('failed', 'LOCAL_FILE'), file('failed')], bytesSent: 1000, durationMs: 3000, ignored: [] });
    expect(line).toBe('ft: 1 sent, 0 already there, 1 failed, 1 not sent; 1000 B in 3s (333 B/s)');
  });
});

describe('exit codes of a batch', () => {
  const file = (status: FileResult['status'], code?: ErrorCode): FileResult => ({ path: 'p', name: 'n', size: 1, hash: '', status, bytesSent: 0, code });

  it('a local problem with a path is 2, whichever local problem it is', () => {
    expect(exitCodeOf([file('sent'), file('failed', 'LOCAL_FILE')])).toBe(2);
  });

  it('follows the documented precedence: 3, 4, 5, 2, then 1', () => {
    const all = [file('failed', 'INTERNAL'), file('failed', 'LOCAL_FILE'), file('failed', 'CONNECTION_LOST'), file('refused', 'CONFLICT'), file('failed', 'HASH_MISMATCH')];
    expect(exitCodeOf(all)).toBe(3);
    expect(exitCodeOf(all.slice(0, 4))).toBe(4);
    expect(exitCodeOf(all.slice(0, 3))).toBe(5);
    expect(exitCodeOf(all.slice(0, 2))).toBe(2);
    expect(exitCodeOf(all.slice(0, 1))).toBe(1);
    expect(exitCodeOf([file('sent'), file('skipped'), file('resumed')])).toBe(0);
  });
});
