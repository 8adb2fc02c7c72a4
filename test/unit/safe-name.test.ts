import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FtError } from '../../src/errors.js';
import { jsonLine } from '../../src/cli/format.js';
import {
  collisionKey,
  escapeControls,
  escapeForDisplay,
  MAX_COMPONENT_BYTES,
  MAX_COMPONENTS,
  MAX_PATH_BYTES,
  parseSafeName,
} from '../../src/names/safe-name.js';

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
      ['a name with a Hangul syllable 한국어.txt', ['a name with a Hangul syllable 한국어.txt']],
      ['e\u0301 (a combining accent)', ['e\u0301 (a combining accent)']],
      ['a\u0378 (unassigned)', ['a\u0378 (unassigned)']],
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

    it(`accepts ${MAX_COMPONENTS} components`, () => {
      expect(parseSafeName(Array.from({ length: MAX_COMPONENTS }, () => 'd').join('/'))).toHaveLength(MAX_COMPONENTS);
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
      // Invisible and blank characters (issue 9, point 19): each makes a second name look like the first.
      ['U+200B zero-width space', 'invoice\u200b.pdf'],
      ['U+200C zero-width non-joiner', 'invoice\u200c.pdf'],
      ['U+200D zero-width joiner', 'invoice\u200d.pdf'],
      ['U+2060 word joiner', 'invoice\u2060.pdf'],
      ['U+FEFF byte-order mark', '\ufeffinvoice.pdf'],
      ['U+00AD soft hyphen', 'in\u00advoice.pdf'],
      ['U+180E Mongolian vowel separator', 'a\u180eb'],
      ['U+034F combining grapheme joiner', 'a\u034fb'],
      ['U+FE0F variation selector', 'a\ufe0fb'],
      ['U+E0100 variation selector supplement', 'a\u{e0100}b'],
      ['U+3164 Hangul filler', 'invoice\u3164.pdf'],
      ['U+FFA0 halfwidth Hangul filler', 'a\uffa0b'],
      ['U+115F Hangul choseong filler', '\u115f'],
      ['U+2800 Braille pattern blank', 'invoice\u2800.pdf'],
      ['U+16FE4 Khitan small script filler', 'a\u{16fe4}b'],
      ['U+1D159 musical symbol null notehead', 'a\u{1d159}b'],
      ['U+1D173 musical symbol begin beam', 'a\u{1d173}b'],
      ['a tag character U+E0041', 'invoice\u{e0041}.pdf'],
      ['U+E0001 language tag', 'a\u{e0001}'],
      ['U+E007F cancel tag', 'a\u{e007f}'],
      ['U+2065, unassigned but reserved default-ignorable', 'a\u2065b'],
      ['U+2028 line separator', 'a\u2028b'],
      ['U+2029 paragraph separator', 'a\u2029b'],
      ['U+00A0 no-break space', 'invoice\u00a0copy.pdf'],
      ['U+2009 thin space', 'a\u2009b'],
      ['U+3000 ideographic space', 'a\u3000b'],
      ['U+FFF9 interlinear annotation anchor', 'a\ufff9b'],
      ['U+0600 Arabic number sign', '\u0600a'],
      ['a private-use character U+E000', 'a\ue000b'],
      ['a private-use character U+F05C (a mapped backslash on Windows)', 'a\uf05cb'],
      ['a supplementary private-use character U+F0000', 'a\u{f0000}'],
      ['a noncharacter U+FFFE', 'a\ufffeb'],
      ['a noncharacter U+10FFFF', 'a\u{10ffff}'],
      ['a noncharacter U+FDD0', 'a\ufdd0b'],
      ['a name starting with a combining mark', '\u0338etc'],
      ['a component starting with a combining mark', 'a/\u0301b'],
    ])('%s', (_what, name) => {
      refused(name);
    });

    it('names the refused character in the message', () => {
      expect(refused('invoice\u200b.pdf').message).toContain('U+200B');
      expect(refused('x\u{e0041}').message).toContain('U+E0041');
    });

    it(`more than ${MAX_COMPONENTS} components`, () => {
      const error = refused(Array.from({ length: MAX_COMPONENTS + 1 }, () => 'd').join('/'));
      expect(error.message).toContain(`more than ${MAX_COMPONENTS} path components`);
      refused(Array.from({ length: 2048 }, () => 'd').join('/'));
    });

    it('refuses every character of the classes Unicode marks as controls, formats, separators, ignorables, private use or non-characters', () => {
      const classes = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Co}\p{Noncharacter_Code_Point}]|(?! )\p{White_Space}/u;
      let checked = 0;
      for (let point = 0; point <= 0x10ffff; point++) {
        if (point >= 0xd800 && point <= 0xdfff) continue; // surrogates: refused as ill-formed, above
        const char = String.fromCodePoint(point);
        if (!classes.test(char)) continue;
        checked++;
        expect(() => parseSafeName(`a${char}b`), `U+${point.toString(16)}`).toThrow(FtError);
      }
      expect(checked).toBeGreaterThan(100_000); // the private-use planes alone hold 131,068
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
    const unit = fc.constantFrom('a', 'B', 'é', '三', '.', '..', '/', '\\', ':', ' ', '\u0000', '\u001b', '\u202e', '\uff0f', 'con', 'x.txt', '.ft-partial', '\u200b', '\u3164', '\u2028', '\u00a0');
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
        expect(name).not.toMatch(/[\\:\u0000-\u001f\u202e\uff0f\u200b\u3164\u2028\u00a0]/);
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

  it('makes invisible and blank characters visible, so look-alike names print differently', () => {
    expect(escapeForDisplay('invoice\u200b.pdf')).toBe('"invoice\\u{200b}.pdf"');
    expect(escapeForDisplay('invoice\u3164.pdf')).toBe('"invoice\\u{3164}.pdf"');
    expect(escapeForDisplay('a\u2028b\u2029c')).toBe('"a\\u{2028}b\\u{2029}c"');
    expect(escapeForDisplay('x\u{e0041}')).toBe('"x\\u{e0041}"');
    expect(escapeForDisplay('a\u00a0b')).toBe('"a\\xa0b"');
    expect(escapeForDisplay('a\ud800')).toBe('"a\\u{d800}"');
    expect(escapeForDisplay('')).toBe('""');
    expect(escapeForDisplay('\u0338etc/\u0301x')).toBe('"\\u{338}etc/\\u{301}x"');
    expect(escapeForDisplay('e\u0301')).toBe('e\u0301');
    expect(escapeForDisplay('invoice.pdf')).not.toBe(escapeForDisplay('invoice\u2060.pdf'));
  });

  it('prints a name as it is exactly when parseSafeName would accept its characters', () => {
    for (const name of ['report.pdf', 'Ünïcödé三体.txt', 'a\u0378']) expect(escapeForDisplay(name)).toBe(name);
  });

  // The one set of rules: what display prints never holds a character a name may not contain.
  const REFUSED_CLASSES =
    /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{Co}\p{Cs}\p{Noncharacter_Code_Point}\u2800\u{16fe4}\u{1d159}]|(?! )\p{White_Space}/u;
  // Strings rich in the characters that matter, mixed with ordinary ones and arbitrary code points.
  const interesting = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.string({
      unit: fc.oneof(
        fc.constantFrom('a', ' ', '"', '\\', '/', 'é', '\u200b', '\u200d', '\u2060', '\ufeff', '\u3164', '\u2028', '\u2029', '\u00a0', '\u3000', '\u2800', '\u00ad', '\u061c', '\u202e', '\u{e0041}', '\u{e0001}', '\ue000', '\ufffe', '\ud800', '\udfff', '\u001b', '\u009b'),
        fc.integer({ min: 0, max: 0x10ffff }).map((point) => String.fromCodePoint(point)),
        fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
      ),
      maxLength: 30,
    }),
  );

  it('never outputs a character of the refused classes, whatever the input', () => {
    fc.assert(
      fc.property(interesting, (name) => {
        expect(escapeForDisplay(name)).not.toMatch(REFUSED_CLASSES);
        expect(escapeControls(name)).not.toMatch(REFUSED_CLASSES);
        expect(jsonLine('x', { name }).slice(0, -1)).not.toMatch(REFUSED_CLASSES); // but its final newline
        expect(escapeForDisplay(name).isWellFormed()).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps names apart: two different names never print the same', () => {
    fc.assert(
      fc.property(interesting, interesting, (a, b) => {
        fc.pre(a !== b);
        expect(escapeForDisplay(a)).not.toBe(escapeForDisplay(b));
      }),
      { numRuns: 2000 },
    );
  });

  it('one set of rules: a name parseSafeName accepts prints as it is (at most quoted), and one it refuses for a character prints escaped', () => {
    fc.assert(
      fc.property(interesting, (name) => {
        fc.pre(!name.includes('"'));
        let accepted = true;
        try {
          parseSafeName(name);
        } catch {
          accepted = false;
        }
        const shown = escapeForDisplay(name);
        if (accepted) expect([name, `"${name}"`]).toContain(shown);
        if (REFUSED_CLASSES.test(name)) expect([name, `"${name}"`]).not.toContain(shown);
      }),
      { numRuns: 2000 },
    );
  });

  it('JSON lines escape the same characters and still parse back to the name', () => {
    const line = jsonLine('x', { name: 'a\u200b\u{e0041}\u2028\u00a0"\u0001' });
    expect(line).toBe('{"event":"x","name":"a\\u200b\\udb40\\udc41\\u2028\\u00a0\\"\\u0001"}\n');
    expect(JSON.parse(line).name).toBe('a\u200b\u{e0041}\u2028\u00a0"\u0001');
  });
});

describe('escapeControls (free text from a peer)', () => {
  it('escapes C0, C1 and bidirectional controls and invisible characters, leaving the rest as it is', () => {
    expect(escapeControls('plain text, ünïcödé 三体')).toBe('plain text, ünïcödé 三体');
    expect(escapeControls('a\u001b[2Jb\u009b2Jc\u202ed\r\n')).toBe('a\\x1b[2Jb\\x9b2Jc\\u{202e}d\\x0d\\x0a');
    expect(escapeControls('x\u200by\u2028z\u3164')).toBe('x\\u{200b}y\\u{2028}z\\u{3164}');
  });
});
