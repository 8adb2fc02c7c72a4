/**
 * A stand-in receiver for the upload page's browser tests while ft's own HTTP side is being
 * written. Run as a child process (so that it can sit in the tests' loopback-only network
 * namespace): `node harness.mjs '<json options>'`. It serves src/web/page and the two vendored
 * libraries with ft's CSP, fakes /api/info and /api/session (one-time codes, a session cookie),
 * answers 401 on /files/ without a session, and runs the reference tus server (@tus/server +
 * @tus/file-store) there. A finished upload is verified against its `hash` metadata and only
 * then moved into the inbox under relativePath ?? filename. Prints JSON lines like `ft serve
 * --json`: listening {port, fingerprint, codes}, received {name, size, hash}, session {ok}.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import https from 'node:https';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';
import { identityFrom, generateIdentity } from '../../../dist/auth/identity.js';
import { shortFingerprint } from '../../../dist/auth/fingerprint.js';
import { createHasher } from '../../../dist/hashing.js';

const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; " +
  "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const options = JSON.parse(process.argv[2] ?? '{}');
const print = (event) => process.stdout.write(JSON.stringify(event) + '\n');
const here = path.dirname(fileURLToPath(import.meta.url));
const page = path.resolve(here, '../../../src/web/page');
const require = createRequire(import.meta.url);
const STATIC = {
  '/': [path.join(page, 'index.html'), 'text/html; charset=utf-8'],
  '/app.js': [path.join(page, 'app.js'), 'text/javascript; charset=utf-8'],
  '/style.css': [path.join(page, 'style.css'), 'text/css; charset=utf-8'],
  '/icon.svg': [path.join(page, 'icon.svg'), 'image/svg+xml'],
  '/vendor/tus.min.js': [require.resolve('tus-js-client/dist/tus.min.js'), 'text/javascript; charset=utf-8'],
  '/vendor/xxhash-wasm.js': [path.join(path.dirname(require.resolve('xxhash-wasm')), '..', 'umd', 'xxhash-wasm.js'), 'text/javascript; charset=utf-8'],
};

const identity = options.key ? identityFrom(options.key, options.cert) : await generateIdentity();
const codes = new Set();
for (let i = 0; i < (options.codes ?? 0); i++) codes.add(randomBytes(8).toString('hex').slice(0, 12).replace(/[01]/g, 'k'));
const sessions = new Set(options.sessions ?? []);
await mkdir(options.partials, { recursive: true });
await mkdir(options.inbox, { recursive: true });

const tus = new Server({
  path: '/files',
  datastore: new FileStore({ directory: options.partials }),
  relativeLocation: true,
  maxSize: options.maxFileSize ?? undefined,
  // One of ft's name rules, so the page meets a refusal in the receiver's words.
  async onUploadCreate(_req, upload) {
    const name = upload.metadata?.relativePath ?? upload.metadata?.filename ?? '';
    if (/^(con|prn|aux|nul)(\..*)?$/i.test(path.basename(name))) {
      throw { status_code: 400, body: `Refused "${name}": a name Windows reserves (NAME_UNSAFE)` };
    }
    return {};
  },
  async onUploadFinish(_req, upload) {
    const meta = upload.metadata ?? {};
    const name = meta.relativePath ?? meta.filename ?? 'unnamed';
    const file = path.join(options.partials, upload.id);
    const hasher = await createHasher();
    for await (const chunk of createReadStream(file)) hasher.update(chunk);
    const hash = hasher.digest();
    if (hash !== meta.hash) throw { status_code: 460, body: `The file's hash is ${hash}, not ${meta.hash}` };
    // ft checks names by its own rules; the tests only send names that are safe to place.
    if (name.split('/').some((part) => part === '..' || part === '')) throw { status_code: 400, body: 'bad name' };
    const final = path.join(options.inbox, name);
    await mkdir(path.dirname(final), { recursive: true });
    await rename(file, final);
    await rm(`${file}.json`, { force: true });
    print({ event: 'received', name, size: (await stat(final)).size, hash, protocol: 'tus', verified: true });
    return {};
  },
});

const authorised = (req) => {
  if (options.token === undefined) return true;
  if (req.headers.authorization === `Bearer ${options.token}`) return true;
  const cookie = /(?:^|;\s*)ft_session=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
  return cookie !== undefined && sessions.has(cookie);
};

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'https://localhost');
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  if (url.pathname === '/files' || url.pathname.startsWith('/files/')) {
    if (!authorised(req)) {
      res.writeHead(401, { 'Content-Type': 'text/plain; charset=utf-8', 'Tus-Resumable': '1.0.0' }).end('Access code needed');
      return;
    }
    await tus.handle(req, res);
    return;
  }
  if (url.pathname === '/api/info' && req.method === 'GET') {
    const body = {
      name: options.name ?? 'test receiver',
      fingerprint: shortFingerprint(identity.fingerprint),
      certificateSha256: new X509Certificate(identity.cert).fingerprint256,
      access: options.token === undefined ? 'open' : 'token',
      warning: options.warning ?? null,
      tusPath: '/files/',
      allowUnverified: false,
      maxFileSize: options.maxFileSize ?? null,
    };
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(body));
    return;
  }
  if (url.pathname === '/api/session' && req.method === 'POST') {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    let credential = {};
    try {
      credential = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      // refused below
    }
    let ok = false;
    if (typeof credential.code === 'string' && codes.delete(credential.code.toLowerCase().replace(/[-\s]/g, ''))) ok = true;
    if (typeof credential.token === 'string' && options.token !== undefined && credential.token === options.token) ok = true;
    print({ event: 'session', ok, via: 'code' in credential ? 'code' : 'token' });
    if (!ok) {
      res.writeHead(403, { 'Content-Type': 'application/json' }).end(JSON.stringify({ code: 'AUTH_FAILED', message: 'Wrong or used access code.' }));
      return;
    }
    const session = randomBytes(16).toString('hex');
    sessions.add(session);
    print({ event: 'new-session', session });
    res.writeHead(204, { 'Set-Cookie': `ft_session=${session}; Path=/; HttpOnly; Secure; SameSite=Strict` }).end();
    return;
  }
  const asset = STATIC[url.pathname];
  if (asset !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
    const body = await readFile(asset[0]);
    res.writeHead(200, { 'Content-Type': asset[1], 'Cache-Control': 'no-cache' }).end(req.method === 'HEAD' ? undefined : body);
    return;
  }
  res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found');
}

const server = https.createServer({ key: identity.key, cert: identity.cert }, (req, res) => {
  handle(req, res).catch((error) => {
    if (!res.headersSent) res.writeHead(500).end(String(error));
    else res.destroy();
  });
});
server.listen(options.port ?? 0, '127.0.0.1', () => {
  print({ event: 'listening', port: server.address().port, fingerprint: identity.fingerprint, key: identity.key, cert: identity.cert, codes: [...codes] });
});
