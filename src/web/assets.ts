/**
 * The upload page's files, read once at start-up and served from memory: the page itself
 * (src/web/page, copied next to this module by the build) and the two browser libraries it uses,
 * straight from their packages, so the page needs nothing from the internet and no build step.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';

export interface Asset {
  readonly body: Buffer;
  readonly type: string;
  readonly etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** URL path → file: the page's own files, then the vendored libraries. */
function sources(): Record<string, string> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const require = createRequire(import.meta.url);
  const page = path.join(here, 'page');
  // xxhash-wasm exports only its module entries; the UMD build (with the wasm inlined) sits beside them.
  const xxhashRoot = path.resolve(path.dirname(require.resolve('xxhash-wasm')), '..');
  return {
    '/': path.join(page, 'index.html'),
    '/app.js': path.join(page, 'app.js'),
    '/style.css': path.join(page, 'style.css'),
    '/icon.svg': path.join(page, 'icon.svg'),
    '/vendor/tus.min.js': require.resolve('tus-js-client/dist/tus.min.js'),
    '/vendor/xxhash-wasm.js': path.join(xxhashRoot, 'umd', 'xxhash-wasm.js'),
  };
}

export type Assets = ReadonlyMap<string, Asset>;

/** Every asset there is (a missing optional one, such as the icon, is left out). */
export function loadAssets(): Assets {
  const assets = new Map<string, Asset>();
  for (const [route, file] of Object.entries(sources())) {
    let body: Buffer;
    try {
      body = readFileSync(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && route === '/icon.svg') continue;
      throw error;
    }
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(route, { body, type, etag });
  }
  return assets;
}
