/** `ft send` on a terminal: finished lines scroll above live lines for the files in flight. */
import { escapeForDisplay } from '../names/safe-name.js';
import type { SendEvent } from '../ingest/events.js';
import type { SendReport } from '../sender/sender.js';
import { progressLines, RateMeter, type Progress } from './progress.js';
import { describe, LineView, stoppedLine, summaryLine, type Streams } from './send-view.js';
import { StatusArea } from './status-area.js';

interface Active {
  label: string;
  bytes: number;
  /** Null for a stream: its size is known only at its end. */
  size: number | null;
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
export class TerminalView extends LineView {
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
        Object.assign(this.total, { files: event.files, bytes: event.bytes ?? 0 });
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
      case 'folder':
      case 'skipped':
      case 'refused':
      case 'failed': {
        const entry = this.active.get(event.path);
        this.active.delete(event.path);
        this.total.doneFiles += 1;
        this.total.doneBytes += 'size' in event ? event.size : (entry?.size ?? entry?.bytes ?? 0);
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

