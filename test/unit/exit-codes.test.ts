/**
 * The `ft` command's exit codes belong to the command (src/cli/exit-codes.ts): the library
 * raises codes, never exit statuses. The mapping is the README's table.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeFor } from '../../src/cli/exit-codes.js';
import * as errors from '../../src/errors.js';
import * as library from '../../src/index.js';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';

describe('exit codes', () => {
  it('live in the CLI: neither the library nor src/errors.ts export them', () => {
    for (const name of ['EXIT', 'exitCodeFor', 'EXIT_BY_CODE']) {
      expect(Object.keys(library)).not.toContain(name);
      expect(Object.keys(errors)).not.toContain(name);
    }
    // What the README's library section documents stays exported.
    expect(library.ERROR_CODES).toBe(ERROR_CODES);
    expect(typeof library.FtError).toBe('function');
  });

  it('the README table has the numbers EXIT names', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const table = readme.slice(readme.indexOf('### Exit codes'), readme.indexOf('## Library'));
    const documented = [...table.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    expect(documented).toEqual([...Object.values(EXIT), 130]);
  });

  it('the README row of each exit code names every error code that maps to it (issue 11: 2, 5, 6, 7)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const table = readme.slice(readme.indexOf('### Exit codes'), readme.indexOf('## Library'));
    const row = (exit: number) => table.match(new RegExp(`^\\| ${exit} \\|.*$`, 'm'))?.[0] ?? '';
    for (const code of ['TLS_FAILED', 'IDENTITY_INVALID', 'TRUST_STORE_INVALID', 'RECEIVER_KEY_CHANGED', 'RECEIVER_NOT_AUTHENTIC', 'RECEIVER_UNKNOWN'] as const) {
      expect(row(exitCodeFor(code)), code).toContain(`\`${code}\``);
    }
    expect(row(EXIT.UNTRUSTED)).toMatch(/--trust-new/);
    expect(row(EXIT.UNTRUSTED)).toMatch(/--fingerprint/);
    expect(row(EXIT.IMPERSONATION)).toMatch(/impostor/);
  });

  it('each error code maps to the exit code the README gives its kind (unchanged by the move)', () => {
    const expected: Partial<Record<ErrorCode, number>> = {
      USAGE: 2,
      LOCAL_FILE: 2,
      HASH_MISMATCH: 3,
      BAD_NAME: 4,
      UNSAFE_PATH: 4,
      CONFLICT: 4,
      TOO_LARGE: 4,
      NO_SPACE: 4,
      BUSY: 4,
      NAME_COLLISION: 4,
      AUTH_FAILED: 4,
      UNSUPPORTED_VERSION: 4,
      CONNECT_FAILED: 5,
      CONNECTION_LOST: 5,
      TIMEOUT: 5,
      TLS_FAILED: 5,
      IDENTITY_INVALID: 2,
      TRUST_STORE_INVALID: 2,
      RECEIVER_KEY_CHANGED: 6,
      RECEIVER_NOT_AUTHENTIC: 6,
      RECEIVER_UNKNOWN: 7,
      STREAM_INTERRUPTED: 8,
    };
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) expect([code, exitCodeFor(code)]).toEqual([code, expected[code] ?? 1]);
  });

  it('a name that is no code (an inherited key) is 1, not a prototype member', () => {
    for (const name of ['constructor', 'toString', '__proto__']) expect(exitCodeFor(name as ErrorCode)).toBe(1);
  });
});
