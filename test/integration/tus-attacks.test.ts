/**
 * The tus endpoint under requests a client may send at awkward moments (found in review).
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeFileSystem, type FileSystem } from '../../src/file-system.js';
import { hashBytes } from '../../src/hashing.js';
import { PARTIAL_DIR } from '../../src/names/safe-name.js';
import { content } from '../contract/upload-store.contract.js';
import { removeTempDirs } from '../helpers/temp.js';
import { closeTusServers, metadata, startTusServer, TUS, tusRequest, type TusServer } from '../helpers/tus-server.js';

const MiB = 1024 * 1024;
const OCTET = { 'Content-Type': 'application/offset+octet-stream' };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(async () => {
  await closeTusServers();
  await removeTempDirs();
});

async function create(server: TusServer, bytes: Buffer, name = 'file.bin'): Promise<string> {
  const answer = await tusRequest(server, 'POST', '/files/', {
    ...TUS,
    'Upload-Length': String(bytes.length),
    'Upload-Metadata': metadata({ filename: name, hash: await hashBytes(bytes) }),
  });
  expect(answer.status, answer.text).toBe(201);
  return answer.headers.location!;
}

describe('tus endpoint: requests beside a running PATCH', () => {
  it('a HEAD during a long PATCH does not let go of the upload under it', async () => {
    const server = await startTusServer({ holdMs: 150 });
    const bytes = content(3 * MiB, 21);
    const location = await create(server, bytes);
    let writeRest!: () => void;
    const patching = tusRequest(server, 'PATCH', location, { ...TUS, ...OCTET, 'Upload-Offset': '0', 'Content-Length': String(bytes.length) }, (req) => {
      req.write(bytes.subarray(0, MiB));
      writeRest = () => req.end(bytes.subarray(MiB));
    });
    await sleep(100);
    const head = await tusRequest(server, 'HEAD', location, TUS);
    expect(head.status).toBe(200);
    // Longer than the hold: the PATCH is still running, so the upload must stay held.
    await sleep(500);
    writeRest();
    const answer = await patching;
    expect(answer.status, answer.text).toBe(204);
    expect((await readFile(path.join(server.dir, 'file.bin'))).equals(bytes)).toBe(true);
  });
});

/** node:fs whose file syncs take 400 ms: a commit (fsync, then placement) is slow enough to race. */
/** Files open slowly: a POST's record (which creates the empty data file) is still under way. */
function slowOpen(): FileSystem {
  const open: FileSystem['open'] = async (...args: Parameters<FileSystem['open']>) => {
    await sleep(400);
    return nodeFileSystem.open(...args);
  };
  return { ...nodeFileSystem, open };
}

function slowSync(): FileSystem {
  const open: FileSystem['open'] = async (...args: Parameters<FileSystem['open']>) => {
    const handle = await nodeFileSystem.open(...args);
    const sync = handle.sync.bind(handle);
    return Object.assign(handle, {
      sync: async () => {
        await sleep(400);
        return sync();
      },
    });
  };
  return { ...nodeFileSystem, open };
}

describe('tus endpoint: a DELETE beside the last PATCH', () => {
  it('a DELETE while the last bytes are being placed does not answer 204 for a file that lands', async () => {
    const server = await startTusServer({ store: { fs: slowSync() } });
    const bytes = content(2 * MiB, 22);
    const location = await create(server, bytes);
    const patching = tusRequest(server, 'PATCH', location, { ...TUS, ...OCTET, 'Upload-Offset': '0', 'Content-Length': String(bytes.length) }, bytes);
    // Every byte is sent; the receiver is now verifying and syncing the file.
    await sleep(150);
    const terminated = await tusRequest(server, 'DELETE', location, TUS);
    const landed = await readFile(path.join(server.dir, 'file.bin')).then(
      (stored) => stored.equals(bytes),
      () => false,
    );
    // Either the DELETE won (nothing lands) or the file did (the DELETE is refused): never both.
    expect({ status: terminated.status, landed }).toEqual(landed ? { status: 403, landed: true } : { status: 204, landed: false });
    if (landed) expect((await patching).status).toBe(204);
    else await patching.catch(() => undefined);
  });
});

describe('tus endpoint: close()', () => {
  it('a POST in flight when the endpoint closes is finished before close() resolves, and refused (no upload made after close)', async () => {
    const server = await startTusServer({ store: { fs: slowOpen() } });
    const bytes = content(2 * MiB, 23);
    let answered: number | undefined;
    const posting = tusRequest(server, 'POST', '/files/', {
      ...TUS,
      'Upload-Length': String(bytes.length),
      'Upload-Metadata': metadata({ filename: 'late.bin', hash: await hashBytes(bytes) }),
    }).then((answer) => (answered = answer.status));
    // The POST is recording its upload (a slow open) when close() comes.
    await sleep(100);
    await server.endpoint.close();
    // Nothing of it is kept (its id was never given), before the store closes.
    expect((await readdir(path.join(server.dir, PARTIAL_DIR))).filter((name) => /\.(part|json)$/.test(name))).toEqual([]);
    await posting;
    expect(answered).toBe(503);
  });
});
