/**
 * `ft status [dir]`: the unfinished uploads an inbox keeps for resume, read without changing
 * anything (safe beside a running `ft serve`). A table for people, or JSON lines for scripts.
 */
import { escapeControls, escapeForDisplay } from '../names/safe-name.js';
import { listPartials } from '../storage/local/partial-listing.js';
import type { PartialListing, PartialUpload } from '../storage/upload-store.js';
import { formatBytes, formatEta, jsonLine } from './format.js';
import { displayWidth, padEnd } from './text-width.js';

export interface StatusOptions {
  json?: boolean;
  /** With s3://bucket/prefix: the service's endpoint (see ft serve). */
  s3Endpoint?: string;
  /** The receiver's --partial-ttl, so that expiry times are its own. */
  partialTtl: number;
}

export async function statusCommand(dir: string, options: StatusOptions, now = Date.now()): Promise<number> {
  const listing = dir.startsWith('s3://') ? await bucketPartials(dir, options) : await listPartials(dir, { partialTtlMs: options.partialTtl });
  process.stdout.write(options.json ? statusJson(dir, listing, options.partialTtl, now) : statusText(dir, listing, now));
  return 0;
}

/** The unfinished uploads of an inbox in a bucket (reads only; the AWS SDK is loaded for it alone). */
async function bucketPartials(url: string, options: StatusOptions): Promise<PartialListing> {
  const store = await (await import('./s3-inbox.js')).openS3Inbox(url, { endpoint: options.s3Endpoint, onConflict: 'rename' });
  try {
    return await store.listPartials(options.partialTtl);
  } finally {
    await store.close();
  }
}

const iso = (ms: number) => new Date(ms).toISOString();
const ageOf = (partial: PartialUpload, now: number) => Math.max(0, now - (partial.createdAt ?? partial.lastWriteAt));

/** One `partial` line per upload, one `unreadable` line per entry that is not one, then a `summary`. */
export function statusJson(dir: string, listing: PartialListing, partialTtlMs: number, now: number): string {
  let text = '';
  for (const partial of listing.partials) {
    const { name, owner, size, bytes, kind, peer } = partial;
    text += jsonLine('partial', {
      name,
      bytes,
      size,
      kind,
      ...(partial.createdAt !== undefined ? { createdAt: iso(partial.createdAt) } : {}),
      ageMs: Math.round(ageOf(partial, now)),
      lastWriteAt: iso(partial.lastWriteAt),
      expiresAt: iso(partial.expiresAt),
      owner,
      ...(peer !== undefined ? { peer } : {}),
    });
  }
  for (const { entry, reason } of listing.unreadable) text += jsonLine('unreadable', { entry, reason });
  const { partials, unreadable, truncated } = listing;
  text += jsonLine('summary', {
    dir,
    partials: partials.length,
    bytes: total(partials, 'bytes'),
    size: total(partials, 'size'),
    unreadable: unreadable.length,
    truncated,
    partialTtlMs,
  });
  return text;
}

/** A table (name, held of total, age, when it may be deleted, kind, peer), the unreadable entries, and a summary line. */
export function statusText(dir: string, listing: PartialListing, now: number): string {
  const { partials, unreadable, truncated } = listing;
  const shownDir = escapeForDisplay(dir);
  let text = '';
  if (partials.length > 0) {
    const header = ['NAME', 'HELD', 'AGE', 'EXPIRES', 'KIND', 'FROM'];
    const rows = partials.map((partial) => [
      escapeForDisplay(partial.name),
      `${formatBytes(partial.bytes)} of ${formatBytes(partial.size)} (${percent(partial.bytes, partial.size)})`,
      formatEta(ageOf(partial, now)),
      partial.expiresAt <= now ? 'at the next sweep' : `in ${formatEta(partial.expiresAt - now)}`,
      partial.kind,
      partial.peer === undefined ? '-' : escapeControls(partial.peer),
    ]);
    const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => displayWidth(row[i]!))));
    for (const row of [header, ...rows]) text += row.map((cell, i) => padEnd(cell, widths[i]!)).join('  ').trimEnd() + '\n';
  }
  for (const { entry, reason } of unreadable) text += `unreadable: ${escapeForDisplay(entry)}: ${escapeControls(reason)}\n`;
  if (partials.length === 0) {
    text += `no unfinished uploads in ${shownDir}`;
  } else {
    const count = `${partials.length} unfinished upload${partials.length === 1 ? '' : 's'}`;
    text += `${count} in ${shownDir}, holding ${formatBytes(total(partials, 'bytes'))} of ${formatBytes(total(partials, 'size'))}`;
  }
  if (unreadable.length > 0) text += `; ${unreadable.length} unreadable entr${unreadable.length === 1 ? 'y' : 'ies'}`;
  if (truncated) text += '; more entries than ft status reads, not all shown';
  return `${text}\n`;
}

function total(partials: PartialUpload[], field: 'bytes' | 'size'): number {
  return partials.reduce((sum, partial) => sum + partial[field], 0);
}

/** Whole percent, never 100 % before the last byte. */
function percent(bytes: number, size: number): string {
  if (size === 0) return '100%';
  return `${Math.min(99, Math.floor((bytes * 100) / size))}%`;
}
