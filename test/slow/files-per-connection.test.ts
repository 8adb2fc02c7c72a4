/**
 * The real limit of headers per connection, end to end: a batch of MAX_FILES_PER_CONNECTION + 5
 * small files (on a memfs volume, so making them is quick) goes to the library receiver over
 * two connections, the first finished with `bye` after exactly MAX_FILES_PER_CONNECTION
 * headers, with no retry and no connection error on either side.
 */
import { createFsFromVolume, Volume } from 'memfs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { fileSystemOf, MAX_FILES_PER_CONNECTION, send, type SendEvent } from '../../src/index.js';
import { closeAllReceivers, startReceiver } from '../helpers/receiver.js';
import { removeTempDirs } from '../helpers/temp.js';

afterEach(closeAllReceivers);
afterAll(removeTempDirs);

describe('files per connection', () => {
  it(`sends ${MAX_FILES_PER_CONNECTION + 5} files over two connections, without retries`, async () => {
    expect(MAX_FILES_PER_CONNECTION).toBe(10_000);
    const vol = new Volume();
    vol.mkdirSync('/src/many', { recursive: true });
    const count = MAX_FILES_PER_CONNECTION + 5;
    for (let i = 0; i < count; i++) vol.writeFileSync(`/src/many/f${String(i).padStart(5, '0')}.txt`, `file ${i}\n`);
    const r = await startReceiver();
    const events: SendEvent[] = [];
    const report = await send(['/src/many'], { host: '127.0.0.1', port: r.port, fingerprint: r.fingerprint, fs: fileSystemOf(createFsFromVolume(vol)), onEvent: (e) => events.push(e) });
    expect(report.files.filter((f) => f.status !== 'sent')).toEqual([]);
    expect(events.filter((e) => e.type === 'connected')).toHaveLength(2);
    expect(events.filter((e) => e.type === 'retrying')).toHaveLength(0);
    expect(r.eventsOf('connection')).toHaveLength(2);
    expect(r.eventsOf('connection-error')).toEqual([]);
    expect(r.eventsOf('received')).toHaveLength(count);
  });
});
