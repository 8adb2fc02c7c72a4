/**
 * What `ft send` shows, fed events directly and read back through a real terminal emulator
 * (test/helpers/terminal.ts), so the test sees the screen a person sees.
 */
import stringWidth from 'string-width';
import { describe, expect, it } from 'vitest';
import { createSendView, type Streams } from '../../src/cli/send-view.js';
import type { SendEvent } from '../../src/ingest/events.js';
import type { SendReport } from '../../src/sender/sender.js';
import { screenOf } from '../helpers/terminal.js';

const MiB = 1024 * 1024;
const LONG = `holiday/${'a-very-long-folder-name-'.repeat(4)}/IMG_20240817_153012_with_a_description.jpg`;

function capture({ outIsTerminal, columns }: { outIsTerminal: boolean; columns: number }) {
  const terminal: string[] = [];
  const file: string[] = [];
  const streams: Streams = {
    out: { write: (text: string) => (outIsTerminal ? terminal : file).push(text), isTTY: outIsTerminal },
    err: { write: (text: string) => terminal.push(text), isTTY: true, columns },
  };
  return { streams, terminal: () => terminal.join(''), file: () => file.join('') };
}

const batch: SendEvent[] = [
  { type: 'collected', files: 3, bytes: 30 * MiB + 10 },
  { type: 'skipped', path: '/src/small.txt', name: 'small.txt', remotePath: 'small.txt' },
  { type: 'started', path: '/src/long', name: LONG, size: 20 * MiB, offset: 0 },
  { type: 'progress', path: '/src/long', name: LONG, bytes: 5 * MiB, size: 20 * MiB },
  { type: 'progress', path: '/src/long', name: LONG, bytes: 20 * MiB, size: 20 * MiB },
  { type: 'verified', path: '/src/long', name: LONG, size: 20 * MiB, hash: 'h', remotePath: LONG, resumedFrom: 0 },
  { type: 'started', path: '/src/big.iso', name: 'big.iso', size: 10 * MiB, offset: 4 * MiB },
  { type: 'progress', path: '/src/big.iso', name: 'big.iso', bytes: 6 * MiB, size: 10 * MiB },
];
const ending: SendEvent[] = [
  { type: 'progress', path: '/src/big.iso', name: 'big.iso', bytes: 10 * MiB, size: 10 * MiB },
  { type: 'verified', path: '/src/big.iso', name: 'big.iso', size: 10 * MiB, hash: 'h', remotePath: 'big.iso', resumedFrom: 4 * MiB },
];
const report: SendReport = {
  ignored: [],
  files: [
    { path: '/src/small.txt', name: 'small.txt', size: 10, hash: 'h', status: 'skipped', bytesSent: 0 },
    { path: '/src/long', name: LONG, size: 20 * MiB, hash: 'h', status: 'sent', bytesSent: 20 * MiB },
    { path: '/src/big.iso', name: 'big.iso', size: 10 * MiB, hash: 'h', status: 'resumed', bytesSent: 6 * MiB },
  ],
  bytesSent: 26 * MiB,
  durationMs: 2000,
};

const results = [
  'skipped  small.txt: already there',
  `sent     ${LONG}: 20 MiB verified`,
  'sent     big.iso: 10 MiB verified, resumed at 4 MiB',
  'ft: 2 sent, 1 resumed, 1 already there; 26 MiB in 2s (13 MiB/s)',
];

describe('ft send on a terminal', () => {
  it.each([80, 60, 132])('at %i columns: live lines fit one row each, with a total for the batch', async (columns) => {
    const { streams, terminal } = capture({ outIsTerminal: true, columns });
    const view = await createSendView(false, streams);
    for (const event of batch) view.event(event);
    // Progress that came in quick succession is drawn a moment later.
    await new Promise((resolve) => setTimeout(resolve, 250));
    const screen = await screenOf(terminal(), columns, { convertEol: true });
    // Finished lines above (whole, wrapped by the terminal if need be), then the live ones.
    expect(screen.slice(0, 3)).toEqual([results[0], results[1], 'resuming big.iso at 4 MiB of 10 MiB']);
    const live = screen.slice(3);
    expect(live).toHaveLength(2);
    for (const line of live) expect(stringWidth(line)).toBeLessThan(columns);
    expect(live[0]).toMatch(/^big\.iso .* 60% +6\/10 MiB +.*\/s  ETA /);
    expect(live[1]).toMatch(/^2\/3 files .* 86% +26\/30 MiB +/);
    // One table: the numbers line up.
    expect(live[0]!.indexOf('%')).toBe(live[1]!.indexOf('%'));
  });

  it('ends with the results and the summary only: no live line is left, no long name mangled', async () => {
    const { streams, terminal } = capture({ outIsTerminal: true, columns: 80 });
    const view = await createSendView(false, streams);
    for (const event of [...batch, ...ending]) view.event(event);
    view.summary(report);
    const screen = await screenOf(terminal(), 80, { convertEol: true });
    expect(screen).toEqual([results[0], results[1], 'resuming big.iso at 4 MiB of 10 MiB', results[2], results[3]]);
  });

  it('with standard output in a file: the file gets the results, the terminal the notes and the summary', async () => {
    const { streams, terminal, file } = capture({ outIsTerminal: false, columns: 80 });
    const view = await createSendView(false, streams);
    for (const event of [...batch, ...ending]) view.event(event);
    view.summary(report);
    expect(file()).toBe(results.map((line) => `${line}\n`).join(''));
    expect(await screenOf(terminal(), 80, { convertEol: true })).toEqual(['resuming big.iso at 4 MiB of 10 MiB', results[3]]);
  });

  it('a batch that stopped early prints the summary, then how to go on', async () => {
    const { streams, terminal } = capture({ outIsTerminal: true, columns: 80 });
    const view = await createSendView(false, streams);
    for (const event of batch) view.event(event);
    const stoppedReport = { ...report, files: [report.files[0]!, report.files[1]!, { ...report.files[2]!, status: 'failed' as const }] };
    view.stopped(stoppedReport, { code: 'CONNECT_FAILED', message: '127.0.0.1:9: connection refused' }, true);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const screen = await screenOf(terminal(), 80, { convertEol: true });
    expect(screen.slice(-2)).toEqual([
      'ft: 1 sent, 1 already there, 1 not sent; 26 MiB in 2s (13 MiB/s)',
      'ft: 127.0.0.1:9: connection refused; run the same command again to resume',
    ]);
  });
});

describe('ft send without a terminal', () => {
  it('results go to standard output, notes to standard error, and a resume is said when it starts', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const order: string[] = [];
    const view = await createSendView(false, {
      out: { write: (text: string) => (out.push(text), order.push(text)) },
      err: { write: (text: string) => (err.push(text), order.push(text)) },
    });
    for (const event of [...batch, ...ending]) view.event(event);
    view.event({ type: 'retrying', attempt: 1, delayMs: 500, code: 'CONNECTION_LOST', message: 'connection lost', host: 'nas', port: 9527, switching: false });
    view.event({ type: 'retrying', attempt: 1, delayMs: 0, code: 'CONNECTION_LOST', message: 'connection lost', host: '192.0.2.7', port: 9600, switching: true });
    view.summary(report);
    expect(out.join('')).toBe(results.map((line) => `${line}\n`).join(''));
    expect(err).toEqual([
      'resuming big.iso at 4 MiB of 10 MiB\n',
      'retry    connection lost; attempt 1 in 500ms\n',
      'retry    connection lost; now at 192.0.2.7:9600, another address of the receiver\n',
    ]);
    expect(order.indexOf(err[0]!)).toBeLessThan(order.indexOf(`${results[2]}\n`));
  });
});

describe('ft send --json', () => {
  it('a batch that stopped early ends with the summary and an error saying whether running again resumes', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const view = await createSendView(true, { out: { write: (text: string) => out.push(text) }, err: { write: (text: string) => err.push(text) } });
    for (const event of batch) view.event(event);
    view.stopped({ ...report, files: [report.files[0]!, { ...report.files[2]!, status: 'failed' }] }, { code: 'CONNECTION_LOST', message: 'lost' }, true);
    const events = out.join('').trimEnd().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.map((e) => e.event)).toEqual(['collected', 'skipped', 'started', 'progress', 'progress', 'verified', 'resumed', 'started', 'progress', 'summary', 'error']);
    expect(events.at(-2)).toMatchObject({ skipped: 1, unsent: 1 });
    expect(events.at(-1)).toEqual({ event: 'error', code: 'CONNECTION_LOST', message: 'lost', resumable: true });
    expect(err).toEqual(['ft: lost; run the same command again to resume\n']);
  });
});
