import { FtError } from '../errors.js';

/** The receiver's hidden folder for partial uploads; no sent name may start with it. */
export const PARTIAL_DIR = '.ft-partial';

export const MAX_PATH_BYTES = 4096;
export const MAX_COMPONENT_BYTES = 255;

/** More components than this in one name are refused: no real folder tree is this deep. */
export const MAX_COMPONENTS = 64;

/**
 * The characters no name may contain, and that every display of untrusted text escapes: one
 * set for names, logs and terminals, taken from Unicode's own classes so that new invisible
 * characters are covered as Unicode assigns them:
 *
 *  - `\p{Cc}` controls: terminal commands, line breaks, NUL.
 *  - `\p{Cf}` format characters: invisible by definition (zero-width space and joiners,
 *    bidirectional marks, overrides and isolates, soft hyphen, word joiner, BOM, tags).
 *  - `\p{Zl}`, `\p{Zp}`: U+2028 and U+2029 break lines in editors, logs and JavaScript.
 *  - `\p{Default_Ignorable_Code_Point}`: what Unicode tells renderers to draw as nothing
 *    (variation selectors, Hangul fillers U+115F, U+1160, U+3164, U+FFA0, the combining
 *    grapheme joiner), including the code points it reserves for future ones.
 *  - `\p{White_Space}` other than U+0020: blanks that look like a space or like nothing
 *    (no-break, en, em, thin and ideographic spaces); a name differing from another only in
 *    them looks the same. U+0020 itself is allowed, and refused at the end of a component.
 *  - `\p{Co}` private use: no agreed appearance (a font may draw nothing), and Windows,
 *    Cygwin and macOS map characters their file systems reserve (`\`, `:`, `*`, controls)
 *    into U+F000–U+F0FF, so one can turn into a separator on another system.
 *  - `\p{Cs}` surrogates and `\p{Noncharacter_Code_Point}`: not characters for interchange
 *    (a lone surrogate cannot even be written as UTF-8).
 *  - Blank letters and symbols outside those classes, drawn as empty space by design and used
 *    for "invisible" names elsewhere: U+2800 BRAILLE PATTERN BLANK, U+16FE4 KHITAN SMALL
 *    SCRIPT FILLER, U+1D159 MUSICAL SYMBOL NULL NOTEHEAD.
 *
 * Unassigned code points outside the reserved default-ignorable ranges are allowed: Unicode
 * asks renderers to draw them with a visible fallback glyph, and refusing them would refuse
 * names with characters newer than the receiver's Unicode tables.
 *
 * The price: names that use invisible characters for a visible purpose are refused too, such
 * as emoji sequences with a zero-width joiner or a variation selector (`❤️`, `👩‍💻`), Persian
 * words with a zero-width non-joiner, or a Japanese full-width space. Each is an invisible
 * difference on some screen, which is what lets two names pass for one.
 */
export const UNSAFE_CHARACTERS =
  /(?! )[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\p{White_Space}\p{Co}\p{Cs}\p{Noncharacter_Code_Point}\u2800\u{16fe4}\u{1d159}]/u;
/** The same set, under the name existing importers use. */
export const CONTROL_CHARACTERS = UNSAFE_CHARACTERS;
const UNSAFE = UNSAFE_CHARACTERS;
const UNSAFE_ALL = new RegExp(UNSAFE_CHARACTERS, 'gu');
// A combining mark with nothing to combine with draws itself over what is printed before it
// (U+0338 over a space looks like a slash).
const LEADING_MARK = /^\p{M}/u;
// Characters that some system or viewer treats as a path separator.
const SEPARATOR_LOOKALIKES = /[\\\uff0f\uff3c\u2215\u2044\u29f8\u29f9]/u;
// Names Windows reserves in every folder, with or without an extension.
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;

/**
 * Checks an untrusted relative path from the wire (`/`-separated) and returns its components.
 * Pure: touches no file system. Refuses instead of repairing, so what the sender asked for is
 * exactly what lands, or nothing does. Linear in the length of the name.
 */
export function parseSafeName(name: string): string[] {
  const refuse = (why: string): never => {
    throw new FtError('BAD_NAME', `refused name ${escapeForDisplay(name)}: ${why}`);
  };
  if (name.length === 0) refuse('it is empty');
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) refuse(`it is longer than ${MAX_PATH_BYTES} bytes`);
  if (!name.isWellFormed()) refuse('it is not well-formed Unicode');
  const unsafe = UNSAFE.exec(name);
  if (unsafe) refuse(`it contains ${codePointName(unsafe[0])}, a control, format, invisible or blank character`);
  if (SEPARATOR_LOOKALIKES.test(name)) refuse('it contains a backslash or a slash look-alike');
  if (name.includes(':')) refuse('it contains ":" (drive letters and alternate streams)');
  if (name.startsWith('/')) refuse('it is an absolute path');
  const components = name.split('/');
  if (components.length > MAX_COMPONENTS) refuse(`it has more than ${MAX_COMPONENTS} path components`);
  for (const component of components) {
    if (component === '') refuse('it has an empty path component');
    if (component === '.' || component === '..') refuse(`it has a "${component}" path component`);
    if (Buffer.byteLength(component) > MAX_COMPONENT_BYTES) refuse(`a component is longer than ${MAX_COMPONENT_BYTES} bytes`);
    if (component.endsWith('.') || component.endsWith(' ')) refuse('a component ends with a dot or a space');
    if (LEADING_MARK.test(component)) refuse('a component starts with a combining mark (it would join the "/" or the text before it)');
    if (WINDOWS_RESERVED.test(component)) refuse(`"${component}" is a reserved device name`);
  }
  if (components[0]!.toLowerCase() === PARTIAL_DIR) refuse(`"${PARTIAL_DIR}" is the receiver's own folder`);
  return components;
}

/**
 * The key under which two names count as the same file on case-insensitive or
 * normalising file systems (macOS, Windows): one batch may not use both.
 */
export function collisionKey(name: string): string {
  return name.normalize('NFC').toLowerCase();
}

/** `U+200B`: how a refusal names the character it refused. */
function codePointName(char: string): string {
  return `U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** `\x1b` for a byte value, `\u{200b}` beyond: visible, and unambiguous inside quotes. */
function visibleEscape(char: string): string {
  const point = char.codePointAt(0)!;
  return point <= 0xff ? `\\x${point.toString(16).padStart(2, '0')}` : `\\u{${point.toString(16)}}`;
}

const DISPLAY_ESCAPES = new RegExp(`[\\\\"]|${UNSAFE_CHARACTERS.source}|(?<=^|/)\\p{M}`, 'gu');

/**
 * Makes a name safe to print to a terminal or a log: every character of UNSAFE_CHARACTERS
 * (and a combining mark that starts a component) becomes a visible escape, quotes and
 * backslashes are escaped, and the result is quoted when
 * it is not the name as it is (or has a space, or is empty).
 */
export function escapeForDisplay(name: string): string {
  const out = name.replace(DISPLAY_ESCAPES, (char) => (char === '\\' || char === '"' ? `\\${char}` : visibleEscape(char)));
  return out !== name || name.includes(' ') || name === '' ? `"${out}"` : out;
}

/** Escapes the characters of UNSAFE_CHARACTERS in free text from a peer (messages), without quoting. */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE_ALL, visibleEscape);
}
