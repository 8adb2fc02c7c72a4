import { createRequire } from 'node:module';
import type cliProgressModule from 'cli-progress';
import { EXIT, exitCodeFor } from '../errors.js';
import { escapeControls, escapeForDisplay } from '../names/safe-name.js';
import type { SendEvent } from '../transfer/events.js';
import { send, type FileResult, type SendReport } from '../transfer/sender.js';
import { formatBytes, formatDuration, formatRate, jsonLine } from './format.js';
import { parseTarget, readToken } from './options.js';
import { resolveReceiver } from '../discovery/resolve.js';
import { defaultHashCachePath } from '../transfer/hash-cache.js';
import { defaultSenderKeyPath } from '../transfer/owner-key.js';
import { DEFAULT_PORT } from '../wire/messages.js';

export interface SendCommandOptions {
  /** What followed --to: an address, a host name or a receiver name; undefined to discover. */
  to?: string;
  interface?: string;
  retries: number;
  hashCache: boolean;
  connectTimeout: number;
  idleTimeout: number;
  tokenFile?: string;
  senderKey?: string;
  json?: boolean;
  followSymlinks?: boolean;
}

export async function sendCommand(paths: string[], options: SendCommandOptions): Promise<number> {
  const token = readToken(options.tokenFile);
  const target = await resolveReceiver(options.to === undefined ? undefined : parseTarget(options.to), DEFAULT_PORT, {
    interface: options.interface,
  });
  if (target.receiver || target.note) {
    // Say where the files go when discovery chose it (or was asked and DNS chose instead).
    const line = target.receiver
      ? `ft: sending to ${escapeForDisplay(target.receiver.name)} at ${target.host}:${target.port} (found by discovery)`
      : `ft: ${escapeControls(target.note!)}`;
    const { host, port, via, note } = target;
    if (options.json) process.stdout.write(jsonLine('resolved', { ...target.receiver, host, port, via, note }));
    else process.stderr.write(`${line}\n`);
  }
  const view = options.json ? new JsonView() : process.stderr.isTTY ? new BarView() : new LineView();
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  try {
    const report = await send(paths, {
      host: target.host,
      port: target.port,
      retries: options.retries,
      connectTimeoutMs: options.connectTimeout * 1000,
      idleTimeoutMs: options.idleTimeout * 1000,
      hashCache: options.hashCache ? defaultHashCachePath() : undefined,
      followSymlinks: options.followSymlinks,
      senderKeyFile: options.senderKey ?? defaultSenderKeyPath(),
      token,
      signal: controller.signal,
      onEvent: (event) => view.event(event),
    });
    view.summary(report);
    return exitCodeOf(report.files);
  } catch (error) {
    view.stop();
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

/** The most telling code among the files that did not arrive: 3 (verification), then 4 (refused), 5, 1. */
export function exitCodeOf(files: FileResult[]): number {
  const codes = new Set(files.filter((f) => f.status === 'refused' || f.status === 'failed').map((f) => exitCodeFor(f.code ?? 'INTERNAL')));
  if (codes.size === 0) return EXIT.OK;
  return [EXIT.VERIFY_FAILED, EXIT.REFUSED, EXIT.CONNECTION].find((code) => codes.has(code)) ?? EXIT.OTHER;
}

interface View {
  event(event: SendEvent): void;
  summary(report: SendReport): void;
  stop(): void;
}

function summaryLine(report: SendReport): string {
  const count = (status: FileResult['status']) => report.files.filter((f) => f.status === status).length;
  const parts = [`${count('sent') + count('resumed')} sent`];
  if (count('resumed')) parts.push(`${count('resumed')} resumed`);
  parts.push(`${count('skipped')} already there`);
  if (count('refused')) parts.push(`${count('refused')} refused`);
  if (count('failed')) parts.push(`${count('failed')} failed`);
  const rate = formatRate(report.bytesSent, report.durationMs);
  return `ft: ${parts.join(', ')}; ${formatBytes(report.bytesSent)} in ${formatDuration(report.durationMs)} (${rate})`;
}

/** Without a terminal: one plain line per finished file, then the summary. */
class LineView implements View {
  protected write(line: string): void {
    process.stdout.write(`${line}\n`);
  }

  event(event: SendEvent): void {
    const line = describe(event);
    if (line) this.write(line);
  }

  summary(report: SendReport): void {
    this.write(summaryLine(report));
  }

  stop(): void {}
}

function describe(event: SendEvent): string | undefined {
  switch (event.type) {
    case 'verified': {
      const name = escapeForDisplay(event.name);
      const as = event.remotePath !== undefined && event.remotePath !== event.name ? ` (stored as ${escapeForDisplay(event.remotePath)})` : '';
      const resumed = event.resumedFrom > 0 ? `, resumed at ${formatBytes(event.resumedFrom)}` : '';
      return `sent     ${name}${as}: ${formatBytes(event.size)} verified${resumed}`;
    }
    case 'skipped':
      return `skipped  ${escapeForDisplay(event.name)}: already there`;
    case 'ignored':
      return `skipped  ${escapeForDisplay(event.name)}: ${event.reason}`;
    case 'refused':
      return `refused  ${escapeForDisplay(event.name)}: ${event.code}: ${escapeControls(event.message)}`;
    case 'failed':
      return `failed   ${escapeForDisplay(event.name)}: ${event.code}: ${escapeControls(event.message)}`;
    case 'restarted':
      return `restart  ${escapeForDisplay(event.name)}: ${event.reason}; sending from the start`;
    case 'retrying':
      return `retry    ${escapeControls(event.message)}; attempt ${event.attempt} in ${formatDuration(event.delayMs)}`;
    default:
      return undefined;
  }
}

/** Loaded only for a terminal: piped and --json runs start without it. */
const loadProgressBars = () => createRequire(import.meta.url)('cli-progress') as typeof cliProgressModule;

/** On a terminal: a live bar per file in flight; finished files scroll above the bars. */
class BarView extends LineView {
  private readonly cliProgress = loadProgressBars();
  private readonly bars = new this.cliProgress.MultiBar(
    {
      format: '{name} |{bar}| {percentage}% | {done}/{total_h} | {rate} | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      stopOnComplete: false,
      etaBuffer: 40,
      barsize: 24,
      stream: process.stderr,
    },
    this.cliProgress.Presets.shades_classic,
  );
  private readonly active = new Map<string, { bar: cliProgressModule.SingleBar; start: number; startBytes: number }>();

  protected override write(line: string): void {
    // Logged lines wait for the next redraw, and stop() drops them: redraw now.
    this.bars.log(`${line}\n`);
    this.bars.update();
  }

  override event(event: SendEvent): void {
    if (event.type === 'started') {
      const bar = this.bars.create(Math.max(event.size, 1), event.offset, this.payload(event.name, event.offset, event.size, 0, 0));
      this.active.set(event.path, { bar, start: Date.now(), startBytes: event.offset });
    } else if (event.type === 'progress') {
      const entry = this.active.get(event.path);
      if (entry) {
        const elapsed = Date.now() - entry.start;
        entry.bar.update(event.bytes, this.payload(event.name, event.bytes, event.size, event.bytes - entry.startBytes, elapsed));
      }
    } else {
      if (['verified', 'failed', 'refused', 'skipped'].includes(event.type) && 'path' in event) {
        const entry = this.active.get(event.path);
        if (entry) {
          this.bars.remove(entry.bar);
          this.active.delete(event.path);
        }
      }
      super.event(event);
    }
  }

  private payload(name: string, bytes: number, size: number, moved: number, elapsedMs: number) {
    const shown = escapeForDisplay(name);
    return {
      name: shown.length > 32 ? `…${shown.slice(-31)}` : shown.padEnd(32),
      done: formatBytes(bytes),
      total_h: formatBytes(size),
      rate: formatRate(moved, elapsedMs),
    };
  }

  override summary(report: SendReport): void {
    this.stop();
    process.stdout.write(`${summaryLine(report)}\n`);
  }

  override stop(): void {
    this.bars.stop();
  }
}

/** `--json`: one object per line for each event, `resumed` when a body starts past 0, and a summary. */
class JsonView implements View {
  private write(event: string, fields: object): void {
    process.stdout.write(jsonLine(event, fields));
  }

  event(event: SendEvent): void {
    if (event.type === 'connected') return;
    if (event.type === 'started' && event.offset > 0) this.write('resumed', event);
    this.write(event.type, event);
  }

  summary(report: SendReport): void {
    const count = (status: FileResult['status']) => report.files.filter((f) => f.status === status).length;
    this.write('summary', {
      sent: count('sent') + count('resumed'),
      resumed: count('resumed'),
      skipped: count('skipped'),
      refused: count('refused'),
      failed: count('failed'),
      bytes: report.bytesSent,
      durationMs: report.durationMs,
      files: report.files,
    });
  }

  stop(): void {}
}

