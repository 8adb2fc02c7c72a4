/**
 * A few live lines at the bottom of a terminal, with finished lines scrolling above them.
 *
 * Replaces cli-progress, whose MultiBar left a 100 ms timer running when a line was logged
 * before its first bar (the process then never exited) and whose fixed-width format could not
 * fit the terminal. Here nothing runs between draws: every draw is a synchronous write, so there
 * is nothing to stop for the process to exit.
 */
import { truncateEnd } from './text-width.js';

export interface Terminal {
  write(text: string): unknown;
  readonly columns?: number;
}

export class StatusArea {
  /** Rows drawn now, all below the cursor's row when they were drawn. */
  private drawn = 0;
  private lines: string[] = [];

  constructor(private readonly terminal: Terminal) {}

  /** Columns of the terminal now (it may have been resized); 80 when it does not say. */
  get columns(): number {
    return this.terminal.columns || 80;
  }

  /** Replaces the live lines. Each is cut to one row, so erasing them later is exact. */
  draw(lines: string[]): void {
    this.lines = lines;
    this.terminal.write(this.erase() + this.render());
  }

  /**
   * Prints a finished line above the live ones. `out` is where the line goes: the terminal
   * itself, or standard output when it is that same terminal or a file. `lines` replace the
   * live lines at the same time.
   */
  print(text: string, out: (text: string) => unknown = (t) => this.terminal.write(t), lines = this.lines): void {
    this.lines = lines;
    this.terminal.write(this.erase());
    out(`${text}\n`);
    this.terminal.write(this.render());
  }

  /** Erases the live lines for good (the cursor is left where they began). */
  clear(): void {
    this.lines = [];
    this.terminal.write(this.erase());
  }

  private erase(): string {
    const rows = this.drawn;
    this.drawn = 0;
    // Cursor up (only when there is something: `ESC[0A` moves one row), then erase to the end.
    return rows > 0 ? `\r\x1b[${rows}A\x1b[J` : '';
  }

  private render(): string {
    const width = this.columns - 1;
    this.drawn = this.lines.length;
    return this.lines.map((line) => `${truncateEnd(line, width)}\n`).join('');
  }
}
