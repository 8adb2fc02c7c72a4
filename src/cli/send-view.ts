/**
 * What `ft send` prints. One line per file's outcome and the summary go to standard output
 * (so `> log.txt` keeps them); progress, notes (resuming, retrying) and errors go to standard
 * error. With --json everything is one JSON object per line on standard output.
 */
import { escapeControls, escapeForDisplay } from '../names/safe-name.js';
import type { SendEvent } from '../transfer/events.js';
import type { FileResult, SendReport } from '../transfer/sender.js';
import { formatBytes, formatDuration, formatRate, jsonLine } from './format.js';
import { progressLines, RateMeter, type Progress } from './progress.js';
import { StatusArea } from './status-area.js';

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

export function createSendView(json: boolean, streams: Streams = { out: process.stdout, err: process.stderr }): SendView {
  if (json) return new JsonView(streams);
  return streams.err.isTTY ? new TerminalView(streams) : new LineView(streams);
}

/** A file that was never finished: the batch stopped before it. */
const unsent = (file: FileResult) => file.status === 'failed' && file.code === undefined;

export function summaryLine(report: SendReport): string {
  const count = (status: FileResult['status']) => report.files.filter((f) => f.status === status && !unsent(f)).length;
  const parts = [`${count('sent') + count('resumed')} sent`];
  if (count('resumed')) parts.push(`${count('resumed')} resumed`);
  parts.push(`${count('skipped')} already there`);
  if (count('refused')) parts.push(`${count('refused')} refused`);
  if (count('failed')) parts.push(`${count('failed')} failed`);
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
      const as = event.remotePath !== event.name ? ` (stored as ${escapeForDisplay(event.remotePath)})` : '';
      const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
      return { result: `sent     ${name}${as}: ${formatBytes(event.size)} verified${resumed}` };
    }
    case 'skipped':
      return { result: `skipped  ${escapeForDisplay(event.name)}: already there` };
    case 'refused':
      return { result: `refused  ${escapeForDisplay(event.name)}: ${event.code}: ${escapeControls(event.message)}` };
    case 'failed':
      return { result: `failed   ${escapeForDisplay(event.name)}: ${event.code}: ${escapeControls(event.message)}` };
    case 'started':
      if (event.offset === 0) return undefined;
      return { note: `resuming ${escapeForDisplay(event.name)} at ${formatBytes(event.offset)} of ${formatBytes(event.size)}` };
    case 'restarted':
      return { note: `restart  ${escapeForDisplay(event.name)}: ${escapeControls(event.reason)}; sending from the start` };
    case 'retrying':
      return { note: `retry    ${escapeControls(event.message)}; attempt ${event.attempt} in ${formatDuration(event.delayMs)}` };
    default:
      return undefined;
  }
}

function stoppedLine(error: { message: string }, resumable: boolean): string {
  const again = resumable ? '; run the same command again to resume' : '';
  return `ft: ${escapeControls(error.message)}${again}`;
}

/** Without a terminal on standard error: plain lines only. */
class LineView implements SendView {
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

interface Active {
  label: string;
  bytes: number;
  size: number;
  meter: RateMeter;
}

/** Live lines shown at most: the newest files in flight, then the batch's total. */
const MAX_FILE_LINES = 3;
/** Progress events come 4 times a second per file; the lines are redrawn at most this often. */
const REDRAW_MS = 100;

/**
 * On a terminal: a line per file in flight and one for the whole batch, fitted to the
 * terminal's width; finished files scroll above them.
 */
class TerminalView extends LineView {
  private readonly area: StatusArea;
  private readonly active = new Map<string, Active>();
  private readonly total = { files: 0, bytes: 0, doneFiles: 0, doneBytes: 0, moved: 0, meter: new RateMeter() };
  private lastDraw = 0;
  /** A draw of progress that came too soon after the last one. Unref'd: it never keeps ft running. */
  private pending: NodeJS.Timeout | undefined;

  constructor(streams: Streams) {
    super(streams);
    this.area = new StatusArea(streams.err);
  }

  override event(event: SendEvent): void {
    const now = Date.now();
    switch (event.type) {
      case 'collected':
        Object.assign(this.total, { files: event.files, bytes: event.bytes });
        break;
      case 'started': {
        const meter = new RateMeter();
        meter.add(now, event.offset);
        this.active.set(event.path, { label: escapeForDisplay(event.name), bytes: event.offset, size: event.size, meter });
        break;
      }
      case 'progress': {
        const entry = this.active.get(event.path);
        if (entry) {
          this.total.moved += Math.max(0, event.bytes - entry.bytes);
          entry.bytes = event.bytes;
          entry.meter.add(now, event.bytes);
          this.total.meter.add(now, this.total.moved);
        }
        break;
      }
      case 'verified':
      case 'skipped':
      case 'refused':
      case 'failed': {
        const entry = this.active.get(event.path);
        this.active.delete(event.path);
        this.total.doneFiles += 1;
        this.total.doneBytes += entry?.size ?? ('size' in event ? event.size : 0);
        break;
      }
      default:
        break;
    }
    const line = describe(event);
    // Progress alone is drawn a few times a second (the latest soon after); a line printed redraws anyway.
    if (!line && event.type !== 'started' && now - this.lastDraw < REDRAW_MS) {
      this.pending ??= setTimeout(() => this.redraw(), REDRAW_MS).unref();
      return;
    }
    this.redraw(line);
  }

  /** Draws the live lines, printing `line` above them first. */
  private redraw(line?: { result: string } | { note: string }): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    this.lastDraw = Date.now();
    const lines = this.liveLines();
    if (!line) this.area.draw(lines);
    else if ('result' in line) this.area.print(line.result, (text) => this.streams.out.write(text), lines);
    else this.area.print(line.note, undefined, lines);
  }

  private liveLines(): string[] {
    const columns = this.area.columns;
    const active = [...this.active.values()];
    const shown = active.slice(-MAX_FILE_LINES);
    const items: Progress[] = shown.map((a) => ({ ...a, rate: a.meter.rate() }));
    if (this.total.files > 1) {
      const bytes = this.total.doneBytes + active.reduce((sum, a) => sum + a.bytes, 0);
      const label = `${this.total.doneFiles}/${this.total.files} files`;
      items.push({ label, bytes, size: Math.max(this.total.bytes, bytes), rate: this.total.meter.rate() });
    }
    return progressLines(items, columns);
  }

  override summary(report: SendReport): void {
    this.stop();
    const line = summaryLine(report);
    super.result(line);
    // Standard output goes to a file: the terminal still learns how it ended.
    if (!this.streams.out.isTTY) this.streams.err.write(`${line}\n`);
  }

  override stopped(report: SendReport, error: { code: string; message: string }, resumable: boolean): void {
    this.summary(report);
    this.streams.err.write(`${stoppedLine(error, resumable)}\n`);
  }

  override stop(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    this.area.clear();
  }
}

/** `--json`: one object per line for each event, `resumed` when a body starts past 0, and a summary. */
class JsonView implements SendView {
  constructor(private readonly streams: Streams) {}

  private write(event: string, fields: object): void {
    this.streams.out.write(jsonLine(event, fields));
  }

  event(event: SendEvent): void {
    if (event.type === 'connected') return;
    if (event.type === 'started' && event.offset > 0) this.write('resumed', event);
    this.write(event.type, event);
  }

  summary(report: SendReport): void {
    const count = (status: FileResult['status']) => report.files.filter((f) => f.status === status && !unsent(f)).length;
    this.write('summary', {
      sent: count('sent') + count('resumed'),
      resumed: count('resumed'),
      skipped: count('skipped'),
      refused: count('refused'),
      failed: count('failed'),
      unsent: report.files.filter(unsent).length,
      bytes: report.bytesSent,
      durationMs: report.durationMs,
      files: report.files,
    });
  }

  stopped(report: SendReport, error: { code: string; message: string }, resumable: boolean): void {
    this.summary(report);
    this.write('error', { code: error.code, message: error.message, resumable });
  }

  stop(): void {}
}
