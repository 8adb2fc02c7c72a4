import { randomBytes } from 'node:crypto';

/** How many `name (n).ext` variants of one component are tried before giving up. */
export const MAX_RENAME_ATTEMPTS = 1000;

/**
 * `b.tar.gz`, `b (1).tar.gz`, `b (2).tar.gz`, … for one path component: numbered before its
 * whole extension (the first dot after position 0), or at the end when it has none.
 */
export function* nameVariants(component: string): Generator<string> {
  yield component;
  const dot = component.indexOf('.', 1);
  const stem = dot === -1 ? component : component.slice(0, dot);
  const ext = dot === -1 ? '' : component.slice(dot);
  for (let n = 1; n < MAX_RENAME_ATTEMPTS; n++) yield `${stem} (${n})${ext}`;
}

/** The random part of a temporary name beside a target (`name.ft-<this>`); its own module so tests can steer it. */
export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}
