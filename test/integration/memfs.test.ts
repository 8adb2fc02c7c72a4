/**
 * The transfer core on memfs: the receiver and the sender each get their own in-memory volume,
 * the bytes still travel over a real socket on 127.0.0.1. Nothing may touch the real disk.
 */
import { existsSync } from 'node:fs';
import { createFsFromVolume, Volume } from 'memfs';
import { afterEach, describe, expect, it } from 'vitest';
import { fileSystemOf, send, serve, type FileSystem, type Receiver, type ReceiverEvent } from '../../src/index.js';
import { randomBuffer } from '../helpers/files.js';

const receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

function memfs(): { vol: Volume; fs: FileSystem } {
  const vol = new Volume();
  return { vol, fs: fileSystemOf(createFsFromVolume(vol)) };
}

const BIG = randomBuffer(3 * 1024 * 1024 + 123, 'memfs-big');

/** A sender volume with /src/a.txt and a /src/dir tree (text, binary larger than a write batch, empty). */
function senderVolume(): { vol: Volume; fs: FileSystem } {
  const side = memfs();
  side.vol.fromJSON({
    '/src/a.txt': 'alpha\n',
    '/src/dir/b.txt': 'bravo\n',
    '/src/dir/sub/empty': '',
  });
  side.vol.writeFileSync('/src/dir/sub/big.bin', BIG);
  return side;
}

async function start(fs: FileSystem): Promise<{ receiver: Receiver; events: ReceiverEvent[] }> {
  const receiver = await serve({ fs, dir: '/inbox', port: 0, host: '127.0.0.1', beacon: false });
  receivers.push(receiver);
  const events: ReceiverEvent[] = [];
  receiver.on('event', (e) => events.push(e));
  return { receiver, events };
}

describe('serve and send on separate memfs volumes', () => {
  const realInboxExisted = existsSync('/inbox');

  it('delivers a file and a folder tree into the receiver volume', async () => {
    const sender = senderVolume();
    const receiving = memfs();
    const { receiver } = await start(receiving.fs);

    const report = await send(['/src/a.txt', '/src/dir'], { fs: sender.fs, host: '127.0.0.1', port: receiver.address.port, fingerprint: receiver.fingerprint });

    expect(report.files.map((f) => [f.name, f.status])).toEqual([
      ['a.txt', 'sent'],
      ['dir/b.txt', 'sent'],
      ['dir/sub/big.bin', 'sent'],
      ['dir/sub/empty', 'sent'],
    ]);
    const vol = receiving.vol;
    expect(vol.readFileSync('/inbox/a.txt', 'utf8')).toBe('alpha\n');
    expect(vol.readFileSync('/inbox/dir/b.txt', 'utf8')).toBe('bravo\n');
    expect(Buffer.from(vol.readFileSync('/inbox/dir/sub/big.bin') as Buffer).equals(BIG)).toBe(true);
    expect(vol.readFileSync('/inbox/dir/sub/empty', 'utf8')).toBe('');
    expect(vol.readdirSync('/inbox/.ft-partial')).toEqual(['receipts.key']);
    // The sender's volume has no inbox, the receiver's has no /src, and the real disk has neither.
    expect(sender.vol.existsSync('/inbox')).toBe(false);
    expect(vol.existsSync('/src')).toBe(false);
    if (!realInboxExisted) expect(existsSync('/inbox')).toBe(false);
  });

  // No "already there" from a header any more (issue 9, point 3): the re-send is compared byte
  // for byte at placement and stored once.
  it('stores a second send of the same files once, under the same names', async () => {
    const sender = senderVolume();
    const receiving = memfs();
    const { receiver, events } = await start(receiving.fs);
    const port = receiver.address.port;

    const first = await send(['/src/a.txt', '/src/dir'], { fs: sender.fs, host: '127.0.0.1', port, fingerprint: receiver.fingerprint });
    const listing = () => JSON.stringify(receiving.vol.toJSON('/inbox'));
    const before = listing();
    const again = await send(['/src/a.txt', '/src/dir'], { fs: sender.fs, host: '127.0.0.1', port, fingerprint: receiver.fingerprint });

    expect(again.files.map((f) => f.status)).toEqual(['sent', 'sent', 'sent', 'sent']);
    // An open receiver tells neither run a path; its events say both were stored under the same names.
    expect([...first.files, ...again.files].filter((f) => Object.hasOwn(f, 'remotePath'))).toEqual([]);
    const stored = events.flatMap((e) => (e.type === 'received' ? [e.path] : []));
    expect(stored.slice(4).sort()).toEqual(stored.slice(0, 4).sort());
    expect(stored.slice(0, 4).sort()).toEqual(first.files.map((f) => f.name).sort());
    expect(listing()).toBe(before);
    expect(events.filter((e) => e.type === 'skipped')).toHaveLength(0);
  });

  it('keeps both copies under the rename policy when the receiver volume has a different file', async () => {
    const sender = senderVolume();
    const receiving = memfs();
    receiving.vol.fromJSON({ '/inbox/a.txt': 'an older alpha\n' });
    // memfs makes folders 0777; a real mkdir (umask 022) makes them 0755, and ft refuses an inbox others can write.
    receiving.vol.chmodSync('/inbox', 0o755);
    const { receiver } = await start(receiving.fs);

    const report = await send(['/src/a.txt'], { fs: sender.fs, host: '127.0.0.1', port: receiver.address.port, fingerprint: receiver.fingerprint });

    // An open receiver does not say where it stored the file (that would tell that a.txt exists).
    expect(report.files[0]!.status).toBe('sent');
    expect(report.files[0]).not.toHaveProperty('remotePath');
    expect(receiving.vol.readFileSync('/inbox/a.txt', 'utf8')).toBe('an older alpha\n');
    expect(receiving.vol.readFileSync('/inbox/a (1).txt', 'utf8')).toBe('alpha\n');
  });
});
