import { FtError } from '../errors.js';

/** The receiver's hidden folder for partial uploads; no sent name may start with it. */
export const PARTIAL_DIR = '.ft-partial';

export const MAX_PATH_BYTES = 4096;
export const MAX_COMPONENT_BYTES = 255;

/** C0 and C1 control characters, DEL, and the Unicode bidirectional marks, overrides and isolates. */
export const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const CONTROL = CONTROL_CHARACTERS;
// Characters that some system or viewer treats as a path separator.
const SEPARATOR_LOOKALIKES = /[\\\uff0f\uff3c\u2215\u2044\u29f8\u29f9]/u;
// Names Windows reserves in every folder, with or without an extension.
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)(\..*)?$/i;

/**
 * Checks an untrusted relative path from the wire (`/`-separated) and returns its components.
 * Pure: touches no file system. Refuses instead of repairing, so what the sender asked for is
 * exactly what lands, or nothing does.
 */
export function parseSafeName(name: string): string[] {
  const refuse = (why: string): never => {
    throw new FtError('BAD_NAME', `refused name ${escapeForDisplay(name)}: ${why}`);
  };
  if (name.length === 0) refuse('it is empty');
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) refuse(`it is longer than ${MAX_PATH_BYTES} bytes`);
  if (CONTROL.test(name)) refuse('it contains control or bidirectional-override characters');
  if (SEPARATOR_LOOKALIKES.test(name)) refuse('it contains a backslash or a slash look-alike');
  if (name.includes(':')) refuse('it contains ":" (drive letters and alternate streams)');
  if (name.startsWith('/')) refuse('it is an absolute path');
  if (!name.isWellFormed()) refuse('it is not well-formed Unicode');
  const components = name.split('/');
  for (const component of components) {
    if (component === '') refuse('it has an empty path component');
    if (component === '.' || component === '..') refuse(`it has a "${component}" path component`);
    if (Buffer.byteLength(component) > MAX_COMPONENT_BYTES) refuse(`a component is longer than ${MAX_COMPONENT_BYTES} bytes`);
    if (/[. ]$/.test(component)) refuse('a component ends with a dot or a space');
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

/**
 * Makes a name safe to print to a terminal or a log: control characters, bidirectional
 * overrides and backslashes become visible escapes, and the result is quoted when needed.
 */
export function escapeForDisplay(name: string): string {
  let out = '';
  let needsQuotes = false;
  for (const char of name) {
    const point = char.codePointAt(0)!;
    if (char === '\\') out += '\\\\';
    else if (char === '"') out += '\\"';
    else if (CONTROL.test(char) || point === 0xfeff) {
      out += point <= 0xff ? `\\x${point.toString(16).padStart(2, '0')}` : `\\u{${point.toString(16)}}`;
      needsQuotes = true;
    } else {
      if (char === ' ') needsQuotes = true;
      out += char;
    }
  }
  return needsQuotes || out !== name ? `"${out}"` : out;
}

/** Escapes control and bidirectional characters in free text from a peer (messages), without quoting. */
export function escapeControls(text: string): string {
  return text.replace(new RegExp(CONTROL_CHARACTERS, 'gu'), (char) => {
    const point = char.codePointAt(0)!;
    return point <= 0xff ? `\\x${point.toString(16).padStart(2, '0')}` : `\\u{${point.toString(16)}}`;
  });
}
