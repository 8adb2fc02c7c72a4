/**
 * The architecture as the folders show it, checked: data flows transport → session (receiver)
 * → ingest → storage, and no module reaches back up. Read from the import statements of src/.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** The area a module belongs to: its first folder under src/ ('' for src/*.ts, shared by all). */
function areaOf(file: string): string {
  const relative = path.relative(SRC, file);
  return relative.includes(path.sep) ? relative.split(path.sep)[0]! : '';
}

function modules(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? modules(full) : entry.name.endsWith('.ts') ? [full] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;'"]*?from\s+'(\.{1,2}\/[^']+)'/g)].map((match) =>
    path.resolve(path.dirname(file), match[1]!.replace(/\.js$/, '.ts')),
  );
}

/** What each area may import besides itself and the shared modules at the top of src/. */
const MAY_IMPORT: Record<string, string[]> = {
  wire: [],
  names: [],
  auth: ['names'],
  // TLS presents the receiver's identity and reports the peer's fingerprint (auth/identity, auth/fingerprint: pure).
  transport: ['auth'],
  storage: ['names'],
  ingest: ['storage', 'names', 'wire'],
  // The tus endpoint: HTTP requests into the ingest service (and the name and hash rules of the TCP protocol).
  web: ['ingest', 'names', 'wire'],
  receiver: ['transport', 'ingest', 'storage', 'wire', 'auth', 'names', 'discovery'],
  sender: ['transport', 'wire', 'auth', 'names', 'discovery', 'ingest'],
  discovery: ['wire', 'names', 'auth'],
  cli: ['receiver', 'sender', 'ingest', 'storage', 'wire', 'auth', 'names', 'discovery', 'transport'],
  '': ['wire', 'names', 'auth', 'transport', 'storage', 'ingest', 'receiver', 'sender', 'discovery'],
};

describe('architecture', () => {
  const all = modules();

  it('every module is in a known area', () => {
    expect([...new Set(all.map(areaOf))].filter((area) => !(area in MAY_IMPORT))).toEqual([]);
  });

  it('no area reaches into one it must not (transport → receiver → ingest → storage, one way)', () => {
    const wrong: string[] = [];
    for (const file of all) {
      const from = areaOf(file);
      for (const target of importsOf(file)) {
        const to = areaOf(target);
        if (to === from || to === '') continue;
        if (!MAY_IMPORT[from]!.includes(to)) wrong.push(`${path.relative(SRC, file)} → ${path.relative(SRC, target)}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('the ingest service and the stores never see a socket, and the session knows no store', () => {
    const offenders = all.filter((file) => {
      const area = areaOf(file);
      const text = readFileSync(file, 'utf8');
      if (area === 'ingest' || area === 'storage') return /from 'node:(net|tls|dgram|http|https)'/.test(text);
      return path.basename(file) === 'session.ts' && area === 'receiver' && /storage\/local|node:net/.test(text);
    });
    expect(offenders.map((file) => path.relative(SRC, file))).toEqual([]);
  });

  it('the checks above see the imports (a sanity check of the parser)', () => {
    const session = all.find((file) => file.endsWith(path.join('receiver', 'session.ts')))!;
    expect(importsOf(session).map((target) => areaOf(target))).toContain('ingest');
  });
});
