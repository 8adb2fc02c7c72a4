import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { collisionKey, escapeForDisplay, MAX_COMPONENT_BYTES, MAX_PATH_BYTES, parseSafeName } from '../../src/names/safe-name.js';

function refused(name: string): FtError {
  let thrown: unknown;
  try {
    parseSafeName(name);
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected ${JSON.stringify(name)} to be refused`).toBeInstanceOf(FtError);
  expect((thrown as FtError).code).toBe('BAD_NAME');
  return thrown as FtError;
}

describe('parseSafeName', () => {
  describe('accepts ordinary names', () => {
    it.each([
      ['report.pdf', ['report.pdf']],
      ['Ünïcödé 三体.txt', ['Ünïcödé 三体.txt']],
      ['a/b/c.txt', ['a', 'b', 'c.txt']],
      ['.bashrc', ['.bashrc']],
      ['..hidden', ['..hidden']],
      ['a..b', ['a..b']],
      ['...x', ['...x']],
      ['photos/2024/IMG 0001.JPG', ['photos', '2024', 'IMG 0001.JPG']],
      ['archive.tar.gz', ['archive.tar.gz']],
      [' leading space', [' leading space']],
      ['console.log', ['console.log']],
      ['CONFIG', ['CONFIG']],
      ['com10', ['com10']],
      ['lpt', ['lpt']],
      ['.ft-partial-notes/x', ['.ft-partial-notes', 'x']],
      ['docs/.ft-partial/x', ['docs', '.ft-partial', 'x']],
      ['emoji 🎉.png', ['emoji 🎉.png']],
    ])('%j', (name, components) => {
      expect(parseSafeName(name)).toEqual(components);
    });

    it('accepts a component of exactly 255 bytes, counted in UTF-8', () => {
      expect(parseSafeName('a'.repeat(MAX_COMPONENT_BYTES))).toHaveLength(1);
      expect(parseSafeName('é'.repeat(127) + 'a')).toHaveLength(1); // 254 + 1 bytes
    });

    it('accepts a path of exactly 4096 bytes', () => {
      const name = Array.from({ length: 17 }, () => 'a'.repeat(240)).join('/');
      expect(Buffer.byteLength(name)).toBe(MAX_PATH_BYTES);
      expect(parseSafeName(name)).toHaveLength(17);
    });
  });

  describe('refuses with BAD_NAME', () => {
    it.each([
      ['parent traversal', '../x'],
      ['traversal in the middle', 'a/../../x'],
      ['a trailing ..', 'a/..'],
      ['an absolute path', '/etc/x'],
      ['a Windows drive path', 'C:\\x'],
      ['a drive-relative path', 'C:x'],
      ['an alternate data stream', 'file.txt:secret'],
      ['a UNC path', '\\\\server\\share\\x'],
      ['backslash traversal', '..\\x'],
      ['a backslash inside a name', 'a\\b'],
      ['a fullwidth solidus U+FF0F', 'a\uff0fb'],
      ['fullwidth traversal', '..\uff0fx'],
      ['a fullwidth reverse solidus U+FF3C', 'a\uff3cb'],
      ['a division slash U+2215', 'a\u2215b'],
      ['a fraction slash U+2044', 'a\u2044b'],
      ['NUL', 'a\u0000b'],
      ['a trailing NUL', 'a.txt\u0000.jpg'],
      ['the empty string', ''],
      ['"."', '.'],
      ['".."', '..'],
      ['a "." component', 'a/./b'],
      ['an empty component', 'a//b'],
      ['a trailing slash', 'a/'],
      ['the partial folder', '.ft-partial/x'],
      ['the partial folder in upper case', '.FT-PARTIAL/x'],
      ['the partial folder in mixed case', '.Ft-Partial/x'],
      ['the partial folder itself', '.ft-partial'],
      ['CON', 'CON'],
      ['con in lower case', 'con'],
      ['nul.txt', 'nul.txt'],
      ['COM1', 'COM1'],
      ['COM superscript one', 'COM\u00b9'],
      ['lpt9.log', 'lpt9.log'],
      ['AUX with two extensions', 'aux.tar.gz'],
      ['PRN as a folder', 'a/PRN/b.txt'],
      ['CONIN$', 'CONIN$'],
      ['a trailing dot', 'file.'],
      ['a trailing space', 'file '],
      ['a folder with a trailing dot', 'dir./x'],
      ['a folder with a trailing space', 'dir /x'],
      ['a control character', 'a\u0001b'],
      ['a tab', 'a\tb'],
      ['a newline', 'a\nb'],
      ['a carriage return', 'a\rb'],
      ['ESC (terminal escapes)', 'evil\u001b[2Jname'],
      ['DEL', 'a\u007fb'],
      ['a C1 control (NEL)', 'a\u0085b'],
      ['U+202E right-to-left override', 'invoice\u202efdp.exe'],
      ['U+2066 left-to-right isolate', 'a\u2066b'],
      ['U+200F right-to-left mark', 'a\u200fb'],
      ['U+061C Arabic letter mark', 'a\u061cb'],
      ['a lone high surrogate', 'a\ud800b'],
      ['a lone low surrogate', 'a\udc00'],
    ])('%s', (_what, name) => {
      refused(name);
    });

    it('a component over 255 bytes, counted in UTF-8', () => {
      refused('a'.repeat(MAX_COMPONENT_BYTES + 1));
      refused('é'.repeat(128)); // 128 characters, 256 bytes
      refused(`ok/${'b'.repeat(256)}/c`);
    });

    it('a path over 4096 bytes', () => {
      const name = [...Array.from({ length: 16 }, () => 'a'.repeat(240)), 'a'.repeat(241)].join('/');
      expect(Buffer.byteLength(name)).toBe(MAX_PATH_BYTES + 1);
      refused(name);
    });

    it('shows the refused name escaped in the message', () => {
      const error = refused('evil\u001b[2J');
      expect(error.message).not.toContain('\u001b');
      expect(error.message).toContain('\\x1b');
    });
  });

  it('accepts only names that stay inside the folder, and returns exactly their components', () => {
    const unit = fc.constantFrom('a', 'B', 'é', '三', '.', '..', '/', '\\', ':', ' ', '\u0000', '\u001b', '\u202e', '\uff0f', 'con', 'x.txt', '.ft-partial');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 12 }), (name) => {
        let components: string[];
        try {
          components = parseSafeName(name);
        } catch (error) {
          expect(error).toBeInstanceOf(FtError);
          expect((error as FtError).code).toBe('BAD_NAME');
          return;
        }
        expect(components.join('/')).toBe(name);
        expect(components).not.toContain('..');
        expect(components).not.toContain('.');
        expect(components).not.toContain('');
        expect(name).not.toMatch(/[\\:\u0000-\u001f\u202e\uff0f]/);
        const root = path.resolve('/inbox');
        const target = path.resolve(root, ...components);
        expect(target.startsWith(root + path.sep)).toBe(true);
        expect(path.relative(root, target).split(path.sep)[0]!.toLowerCase()).not.toBe('.ft-partial');
      }),
      { numRuns: 1000 },
    );
  });
});

describe('collisionKey', () => {
  it('equates NFC and NFD spellings and case', () => {
    const nfc = 'Caf\u00e9';
    const nfd = 'Cafe\u0301';
    expect(nfc).not.toBe(nfd);
    expect(collisionKey(nfc)).toBe(collisionKey(nfd));
    expect(collisionKey('CAFÉ')).toBe(collisionKey(nfc));
    expect(collisionKey('CAFE\u0301')).toBe(collisionKey(nfc));
    expect(collisionKey('dir/Report.PDF')).toBe(collisionKey('DIR/report.pdf'));
  });

  it('keeps different names apart', () => {
    expect(collisionKey('cafe')).not.toBe(collisionKey('café'));
    expect(collisionKey('a/b')).not.toBe(collisionKey('a-b'));
    expect(collisionKey('file1')).not.toBe(collisionKey('file2'));
  });
});

describe('escapeForDisplay', () => {
  it('leaves plain names alone', () => {
    for (const name of ['report.pdf', 'a/b/c.txt', 'Ünïcödé三体.txt', 'emoji🎉.png', '.bashrc']) {
      expect(escapeForDisplay(name)).toBe(name);
    }
  });

  it('turns ESC into a visible escape, so no terminal sequence reaches the screen', () => {
    const shown = escapeForDisplay('evil\u001b[2Jname');
    expect(shown).toBe('"evil\\x1b[2Jname"');
    expect(shown).not.toContain('\u001b');
  });

  it('turns \\r and \\n into visible escapes, so a name cannot forge a log line', () => {
    const shown = escapeForDisplay('a\r\nFAKE: done');
    expect(shown).toBe('"a\\x0d\\x0aFAKE: done"');
    expect(shown).not.toMatch(/[\r\n]/);
  });

  it('turns U+202E and other bidirectional controls into visible escapes', () => {
    expect(escapeForDisplay('invoice\u202efdp.exe')).toBe('"invoice\\u{202e}fdp.exe"');
    expect(escapeForDisplay('a\u2066b')).toBe('"a\\u{2066}b"');
    expect(escapeForDisplay('\ufeffbom')).toBe('"\\u{feff}bom"');
  });

  it('escapes NUL, DEL and C1 controls with their byte value', () => {
    expect(escapeForDisplay('a\u0000b')).toBe('"a\\x00b"');
    expect(escapeForDisplay('a\u007fb')).toBe('"a\\x7fb"');
    expect(escapeForDisplay('a\u009bb')).toBe('"a\\x9bb"'); // CSI, the 8-bit ESC [
  });

  it('quotes names with spaces, and escapes quotes and backslashes so the quoting is unambiguous', () => {
    expect(escapeForDisplay('my file.txt')).toBe('"my file.txt"');
    expect(escapeForDisplay('say "hi"')).toBe('"say \\"hi\\""');
    expect(escapeForDisplay('a\\b')).toBe('"a\\\\b"');
  });

  it('never outputs a control or bidirectional character, whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 30 }), (name) => {
        expect(escapeForDisplay(name)).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u);
      }),
      { numRuns: 300 },
    );
  });
});

describe('escapeControls (free text from a peer)', () => {
  it('escapes C0, C1 and bidirectional controls, leaving the rest as it is', async () => {
    const { escapeControls } = await import('../../src/names/safe-name.js');
    expect(escapeControls('plain text, ünïcödé 三体')).toBe('plain text, ünïcödé 三体');
    expect(escapeControls('a\u001b[2Jb\u009b2Jc\u202ed\r\n')).toBe('a\\x1b[2Jb\\x9b2Jc\\u{202e}d\\x0d\\x0a');
  });
});
