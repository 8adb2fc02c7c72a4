import { createHmac, randomBytes } from 'node:crypto';
import { MAX_COMPONENT_BYTES } from '../../names/safe-name.js';

/**
 * `name (1).ext` … `name (16).ext` are tried in order (what people expect to see); past them
 * a name gets a suffix nobody can guess, `name (ft-1a2b3c4d).ext`. A fixed, small number of
 * look-ups per component, however many variants exist: taking the numbered ones neither makes
 * each header cost a thousand system calls nor exhausts the names, so "no free name" never
 * tells a peer whether the name it asked for exists.
 */
export const SEQUENTIAL_VARIANTS = 16;

/** Suffixed names tried after the numbered ones; 32 unguessable bits each, so one is practically always free. */
export const SUFFIXED_VARIANTS = 4;

/** Every name tried for one component: itself, the numbered variants, the suffixed ones. */
export const MAX_RENAME_ATTEMPTS = 1 + SEQUENTIAL_VARIANTS + SUFFIXED_VARIANTS;

/** The `1a2b3c4d` of a suffixed variant, for its `attempt`-th try (0-based). */
export type VariantSuffix = (attempt: number) => string;

/**
 * `b.tar.gz`, `b (1).tar.gz` … `b (16).tar.gz`, then `b (ft-<suffix>).tar.gz` a few times, for
 * one path component: numbered before its whole extension (the first dot after position 0),
 * or at the end when it has none; shortened where the variant would exceed 255 bytes. The
 * suffixes are fresh random ones unless `suffix` says otherwise (folders: see folderSuffix).
 */
export function* nameVariants(component: string, suffix: VariantSuffix = () => randomSuffix()): Generator<string> {
  yield component;
  for (let n = 1; n <= SEQUENTIAL_VARIANTS; n++) yield variantName(component, `${n}`);
  for (let attempt = 0; attempt < SUFFIXED_VARIANTS; attempt++) yield variantName(component, `ft-${suffix(attempt)}`);
}

/**
 * The suffixes of a folder component: every file of one folder must land in the same variant,
 * so they are derived, not drawn: a keyed hash of where the component is and its tries. The
 * key is the receiver's secret (one per Inbox), so a peer cannot plant files under them in
 * advance; nothing is remembered per folder, so memory stays bounded whatever a peer sends.
 */
export function folderSuffix(key: Buffer, parentRel: string, component: string): VariantSuffix {
  return (attempt) => createHmac('sha256', key).update(`${parentRel}\0${component}\0${attempt}`).digest('hex').slice(0, 8);
}

/** A fresh key for folderSuffix. */
export function newVariantKey(): Buffer {
  return randomBytes(32);
}

/** The random part of a temporary name beside a target (`name.ft-<this>`) and of suffixed variants; its own module so tests can steer it. */
export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** `stem (marker)ext`, the stem (then the extension) cut at a character boundary to fit in one component. */
function variantName(component: string, marker: string): string {
  const dot = component.indexOf('.', 1);
  let stem = dot === -1 ? component : component.slice(0, dot);
  let ext = dot === -1 ? '' : component.slice(dot);
  const tag = ` (${marker})`;
  const room = MAX_COMPONENT_BYTES - Buffer.byteLength(tag);
  if (Buffer.byteLength(stem) + Buffer.byteLength(ext) > room) {
    // An extension that leaves no room for a stem is treated as part of it.
    if (Buffer.byteLength(ext) > room / 2) {
      stem = component;
      ext = '';
    }
    stem = cutToBytes(stem, room - Buffer.byteLength(ext));
  }
  return `${stem}${tag}${ext}`;
}

/** The longest prefix of `text` of at most `bytes` UTF-8 bytes, never splitting a character. */
function cutToBytes(text: string, bytes: number): string {
  let used = 0;
  let end = 0;
  for (const char of text) {
    const size = Buffer.byteLength(char);
    if (used + size > bytes) break;
    used += size;
    end += char.length;
  }
  return text.slice(0, end);
}
