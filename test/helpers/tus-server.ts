/**
 * A tus endpoint over a real http.Server on 127.0.0.1, wired as `ft serve` wires it: a real
 * Ingest over a LocalUploadStore on a temp folder. Restartable on the same folder and secret.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { DiskBudget } from '../../src/ingest/disk-budget.js';
import type { ReceiverEvent } from '../../src/ingest/events.js';
import { Ingest } from '../../src/ingest/ingest.js';
import { ReceiptSealer } from '../../src/ingest/receipts.js';
import { nodeFileSystem } from '../../src/file-system.js';
import { LocalUploadStore, type LocalUploadStoreOptions } from '../../src/storage/local/local-store.js';
import { TusEndpoint, type TusOptions } from '../../src/web/tus.js';
import { tempDir } from './temp.js';

export interface TusServerOptions extends Partial<Omit<TusOptions, 'ingest' | 'emit' | 'secret' | 'mount'>> {
  dir?: string;
  secret?: Buffer;
  /** 0 (a free one) unless given: a restart on the port a client knows. */
  port?: number;
  store?: LocalUploadStoreOptions;
}

export interface TusServer {
  url: string;
  port: number;
  /** The inbox folder. */
  dir: string;
  secret: Buffer;
  store: LocalUploadStore;
  endpoint: TusEndpoint;
  events: ReceiverEvent[];
  close(): Promise<void>;
}

const running = new Set<TusServer>();

export async function startTusServer(options: TusServerOptions = {}): Promise<TusServer> {
  const dir = options.dir ?? path.join(await tempDir('ft-tus-'), 'inbox');
  const secret = options.secret ?? randomBytes(32);
  const store = await LocalUploadStore.open(dir, options.store);
  const events: ReceiverEvent[] = [];
  const emit = (event: ReceiverEvent) => events.push(event);
  const maxFileSize = options.maxFileSize ?? Number.MAX_SAFE_INTEGER;
  const ingest = new Ingest({
    store,
    receipts: ReceiptSealer.open(store.stateDir, nodeFileSystem),
    disk: new DiskBudget(() => store.freeSpace()),
    maxFileSize,
    tellPaths: false,
    emit,
  });
  const endpoint = new TusEndpoint({
    ingest,
    mount: '/files',
    secret,
    maxFileSize,
    allowUnverified: options.allowUnverified ?? false,
    partialTtlMs: options.partialTtlMs ?? 7 * 24 * 3600_000,
    emit,
    ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
    ...(options.holdMs !== undefined ? { holdMs: options.holdMs } : {}),
    ...(options.minBodyRate !== undefined ? { minBodyRate: options.minBodyRate } : {}),
    ...(options.bandwidth !== undefined ? { bandwidth: options.bandwidth } : {}),
  });
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    if (!url.startsWith('/files')) return void res.writeHead(404).end();
    const { remoteAddress = '?', remotePort = 0 } = req.socket;
    endpoint.handle(req, res, url.slice('/files'.length), { address: remoteAddress, remote: `${remoteAddress}:${remotePort}`, progressed: () => undefined });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const handle: TusServer = {
    url: `http://127.0.0.1:${port}/files/`,
    port,
    dir: store.privateLocation,
    secret,
    store,
    endpoint,
    events,
    close: () =>
      (closing ??= (async () => {
        running.delete(handle);
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await endpoint.close();
        await store.close();
      })()),
  };
  running.add(handle);
  return handle;
}

export async function closeTusServers(): Promise<void> {
  await Promise.all([...running].map((server) => server.close()));
}

export interface Answer {
  status: number;
  /** Lowercase names; a header sent more than once is joined with commas. */
  headers: Record<string, string | undefined>;
  text: string;
}

/** One request on its own connection; `body` a Buffer or a function that writes it. */
export function tusRequest(
  server: { port: number },
  method: string,
  target: string,
  headers: Record<string, string>,
  body?: Buffer | ((req: http.ClientRequest) => void),
  { localAddress }: { localAddress?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path: target, headers, agent: false, localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: joinedHeaders(res.headers), text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (typeof body === 'function') body(req);
    else req.end(body);
  });
}

export const TUS = { 'Tus-Resumable': '1.0.0' };

export function metadata(values: Record<string, string>): string {
  return Object.entries(values)
    .map(([key, value]) => `${key} ${Buffer.from(value).toString('base64')}`)
    .join(',');
}

function joinedHeaders(headers: http.IncomingHttpHeaders): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : value]));
}
