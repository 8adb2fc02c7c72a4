/**
 * No module-level mutable state in src/: a module's top level binds constants only, and the
 * tables the library exports are frozen (a caller changing WIRE_CODES would change which codes
 * the parser believes from a peer; one changing SERVE_DEFAULTS, every later serve()).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as library from '../../src/index.js';
import { hashBytes, createHasher } from '../../src/hashing.js';
import { LOCAL_CODES, WIRE_CODES } from '../../src/errors.js';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

describe('module-level state', () => {
  it('no module of src/ declares a top-level let or var', () => {
    const found: string[] = [];
    for (const file of sources(SRC)) {
      const relative = path.relative(SRC, file).split(path.sep).join('/');
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/^(export\s+)?(let|var)\s/.test(line)) found.push(`${relative}:${i + 1}: ${line.trim()}`);
          // A container at the top level is state too, unless its type says it is read-only.
          const container = /^(export\s+)?const\s+\w+\s*(:\s*([^=]+))?=\s*(new\s+(Map|Set|WeakMap|WeakSet|Array)\b|\[\s*\])/.exec(line);
          if (container && !/^\s*Readonly/.test(container[3] ?? '')) found.push(`${relative}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(found).toEqual([]);
  });

  it('the tables the library exports cannot be changed by a caller', () => {
    for (const table of [library.CONFLICT_POLICIES, library.ERROR_CODES, library.WIRE_CODES, library.LOCAL_CODES, library.SERVE_DEFAULTS, library.SEND_DEFAULTS, library.DISCOVER_DEFAULTS]) {
      expect(Object.isFrozen(table)).toBe(true);
    }
    expect(() => Object.assign(WIRE_CODES, { TIMEOUT: 'believed' })).toThrow(TypeError);
    expect(Object.hasOwn(WIRE_CODES, 'TIMEOUT')).toBe(false);
    expect(Object.hasOwn(LOCAL_CODES, 'TIMEOUT')).toBe(true);
  });

  it('hashing shares one compiled module, loaded without module state', async () => {
    expect(await hashBytes(Buffer.from('abc'))).toBe('xxh64:44bc2cf5ad770999');
    const [a, b] = await Promise.all([createHasher(), createHasher()]);
    a.update(Buffer.from('a'));
    b.update(Buffer.from('abc'));
    a.update(Buffer.from('bc'));
    expect(a.digest()).toBe(b.digest());
  });
});
