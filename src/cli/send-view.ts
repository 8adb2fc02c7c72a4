/**
 * What `ft send` prints. One line per file's outcome and the summary go to standard output
 * (so `> log.txt` keeps them); progress, notes (resuming, retrying) and errors go to standard
 * error. With --json everything is one JSON object per line on standard output.
 */
import { escapeControls, escapeForDisplay } from '../names/safe-name.js';
import type { SendEvent } from '../ingest/events.js';
import type { FileResult, SendReport } from '../sender/sender.js';
import { durationsInWords, formatBytes, formatDuration, formatRate, jsonLine } from './format.js';
import { shortFingerprint } from '../auth/fingerprint.js';
import { hostPort } from '../host-port.js';

export interface SendView {
  event(event: SendEvent): void;
  summary(report: SendReport): void;
  /** The batch stopped early (`error`); `report` holds what was done. */
  stopped(report: SendReport, error: { code: string; message: string }, resumable: boolean): void;
  stop(): void;
}

export interface Streams {
  out: { write(text: string): unknown; isTTY?: boolean };
  err: { write(text: string): unknown; isTTY?: boolean; columns?: number };
}

/** The live lines are loaded only for a terminal: piped and --json runs start without them. */
export async function createSendView(json: boolean, streams: Streams = { out: process.stdout, err: process.stderr }): Promise<SendView> {
  if (json) return new JsonView(streams);
  if (!streams.err.isTTY) return new LineView(streams);
  const { TerminalView } = await import('./terminal-view.js');
  return new TerminalView(streams);
}

/** A file that was never finished: the batch stopped before it. */
const unsent = (file: FileResult) => file.status === 'failed' && file.code === undefined;

/** Results of a status, never finished ones apart; empty folders that arrived (or could not go) are counted apart. */
function countOf(report: SendReport, status: FileResult['status']): number {
  const apart = (f: FileResult) => f.folder === true && (f.status === 'sent' || f.status === 'skipped');
  return report.files.filter((f) => f.status === status && !apart(f) && !unsent(f)).length;
}

/** Empty folders that arrived. */
const foldersOf = (report: SendReport) => report.files.filter((f) => f.folder === true && f.status === 'sent').length;

export function summaryLine(report: SendReport): string {
  const count = (status: FileResult['status']) => countOf(report, status);
  const parts = [`${count('sent') + count('resumed')} sent`];
  if (count('resumed')) parts.push(`${count('resumed')} resumed`);
  parts.push(`${count('skipped')} already there`);
  if (count('refused')) parts.push(`${count('refused')} refused`);
  if (count('failed')) parts.push(`${count('failed')} failed`);
  const folders = foldersOf(report);
  if (folders) parts.push(`${folders} empty ${folders === 1 ? 'folder' : 'folders'}`);
  const left = report.files.filter(unsent).length;
  if (left) parts.push(`${left} not sent`);
  const rate = formatRate(report.bytesSent, report.durationMs);
  return `ft: ${parts.join(', ')}; ${formatBytes(report.bytesSent)} in ${formatDuration(report.durationMs)} (${rate})`;
}

/** A finished file's line (standard output), or a note (standard error), or nothing. */
export function describe(event: SendEvent): { result: string } | { note: string } | undefined {
  switch (event.type) {
    case 'verified': {
      const name = escapeForDisplay(event.name);
      const as = event.remotePath !== undefined && event.remotePath !== event.name ? ` (stored as ${escapeForDisplay(event.remotePath)})` : '';
      const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
      return { result: `sent     ${name}${as}: ${formatBytes(event.size)} verified${resumed}` };
    }
    case 'skipped':
      return { result: `skipped  ${escapeForDisplay(event.name)}: already there` };
    case 'folder':
      return { result: `sent     ${escapeForDisplay(event.name)}/: empty folder` };
    case 'ignored':
      return { result: `skipped  ${escapeForDisplay(event.name)}: ${escapeControls(event.reason)}` };
    case 'refused':
      return { result: `refused  ${escapeForDisplay(event.name)}: ${event.code}: ${escapeControls(durationsInWords(event.message))}` };
    case 'failed':
      return { result: `failed   ${escapeForDisplay(event.name)}: ${event.code}: ${escapeControls(durationsInWords(event.message))}` };
    case 'started':
      if (event.offset === 0) return undefined;
      return { note: `resuming ${escapeForDisplay(event.name)} at ${formatBytes(event.offset)} of ${formatBytes(event.size ?? event.offset)}` };
    case 'restarted':
      return { note: `restart  ${escapeForDisplay(event.name)}: ${escapeControls(event.reason)}; sending from the start` };
    case 'connected': {
      if (!event.firstContact || event.fingerprint === undefined) return undefined;
      const where = hostPort(event.host, event.port);
      return { note: `trusted  first contact ${where}, key ${shortFingerprint(event.fingerprint)} (pinned)` };
    }
    case 'retrying':
      if (event.switching) {
        return { note: `retry    ${escapeControls(durationsInWords(event.message))}; now at ${hostPort(event.host, event.port)}, another address of the receiver` };
      }
      return { note: `retry    ${escapeControls(durationsInWords(event.message))}; attempt ${event.attempt} in ${formatDuration(event.delayMs)}` };
    default:
      return undefined;
  }
}

export function stoppedLine(error: { message: string }, resumable: boolean): string {
  const again = resumable ? '; run the same command again to resume' : '';
  return `ft: ${escapeControls(durationsInWords(error.message))}${again}`;
}

/** Without a terminal on standard error: plain lines only. */
export class LineView implements SendView {
  constructor(protected readonly streams: Streams) {}

  protected result(line: string): void {
    this.streams.out.write(`${line}\n`);
  }

  protected note(line: string): void {
    this.streams.err.write(`${line}\n`);
  }

  event(event: SendEvent): void {
    const line = describe(event);
    if (line && 'result' in line) this.result(line.result);
    else if (line) this.note(line.note);
  }

  summary(report: SendReport): void {
    this.result(summaryLine(report));
  }

  stopped(report: SendReport, error: { code: string; message: string }, resumable: boolean): void {
    this.summary(report);
    this.note(stoppedLine(error, resumable));
  }

  stop(): void {}
}

/** `--json`: one object per line for each event, `resumed` when a body starts past 0, and a summary. */
class JsonView implements SendView {
  constructor(private readonly streams: Streams) {}

  private write(event: string, fields: object): void {
    this.streams.out.write(jsonLine(event, fields));
  }

  event(event: SendEvent): void {
    if (event.type === 'connected' && !event.firstContact) return;
    if (event.type === 'started' && event.offset > 0) this.write('resumed', event);
    this.write(event.type, event);
  }

  summary(report: SendReport): void {
    const count = (status: FileResult['status']) => countOf(report, status);
    this.write('summary', {
      sent: count('sent') + count('resumed'),
      resumed: count('resumed'),
      skipped: count('skipped'),
      refused: count('refused'),
      failed: count('failed'),
      folders: foldersOf(report),
      unsent: report.files.filter(unsent).length,
      bytes: report.bytesSent,
      durationMs: report.durationMs,
      files: report.files,
    });
  }

  stopped(report: SendReport, error: { code: string; message: string }, resumable: boolean): void {
    this.summary(report);
    this.write('error', { code: error.code, message: error.message, resumable });
    // As for any error with --json: the line for people on standard error too.
    this.streams.err.write(`${stoppedLine(error, resumable)}\n`);
  }

  stop(): void {}
}
