import xterm from '@xterm/headless';

/**
 * What a terminal of `columns` shows after receiving `output`: a real terminal emulator
 * (xterm.js, headless) interprets the cursor movements and erasures, so tests see the screen a
 * person would, not the bytes. Rows the terminal wrapped are joined back into one line.
 */
export async function screenOf(output: string, columns: number, { convertEol = false } = {}): Promise<string[]> {
  const terminal = new xterm.Terminal({ cols: columns, rows: 30, scrollback: 10_000, allowProposedApi: true, convertEol });
  await new Promise<void>((resolve) => terminal.write(output, resolve));
  const buffer = terminal.buffer.active;
  const lines: string[] = [];
  for (let row = 0; row < buffer.length; row += 1) {
    const line = buffer.getLine(row)!;
    // A row that continues on the next keeps its trailing spaces: they are part of the line.
    const text = line.translateToString(!buffer.getLine(row + 1)?.isWrapped);
    if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
    else lines.push(text);
  }
  terminal.dispose();
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  return lines;
}
