import { createFsFromVolume, Volume } from 'memfs';
import { describe, expect, it } from 'vitest';
import { fileSystemOf } from '../../src/file-system.js';
import { collectFiles, dropContent, hashLocalFiles, KeepBudget, type LocalFile } from '../../src/sender/local-files.js';
import { waitUntil } from '../helpers/files.js';

describe('KeepBudget (small files kept from hashing to sending)', () => {
  it('grants at once while there is room, then in the order asked as room is given back', async () => {
    const budget = new KeepBudget(100);
    expect(await budget.take(60)).toBe(true);
    const order: string[] = [];
    const second = budget.take(50).then((granted) => order.push(`50:${granted}`));
    // Smaller, and there would be room for it, but it asked later: it waits its turn.
    const third = budget.take(10).then((granted) => order.push(`10:${granted}`));
    await Promise.resolve();
    expect(order).toEqual([]);
    budget.give(60);
    await Promise.all([second, third]);
    expect(order).toEqual(['50:true', '10:true']);
    expect(budget.used).toBe(60);
  });

  it('refuses at once what is more than the whole budget, and lets every waiter go when closed', async () => {
    const budget = new KeepBudget(100);
    expect(await budget.take(101)).toBe(false);
    expect(await budget.take(100)).toBe(true);
    const waiting = budget.take(1);
    budget.close();
    expect(await waiting).toBe(false);
    expect(await budget.take(1)).toBe(false);
  });

  it('dropContent gives a file\'s kept bytes back exactly once', () => {
    const budget = new KeepBudget(100);
    expect(budget.tryTake(30)).toBe(true);
    const file: LocalFile = { path: 'x', name: 'x', size: 30, mtimeMs: 0, hash: '', content: Buffer.alloc(30), keptIn: budget };
    dropContent(file);
    dropContent(file);
    expect(budget.used).toBe(0);
    expect(file.content).toBeUndefined();
  });
});

describe('hashLocalFiles with a budget', () => {
  it('keeps no more than the budget: hashing waits until files are sent (their bytes dropped), and reads each once', async () => {
    const vol = new Volume();
    vol.mkdirSync('/src');
    for (let i = 0; i < 10; i++) vol.writeFileSync(`/src/f${i}`, Buffer.alloc(30, i));
    const fs = fileSystemOf(createFsFromVolume(vol));
    const { files } = collectFiles(['/src'], fs);
    const budget = new KeepBudget(100);
    const hashed: LocalFile[] = [];
    const done = hashLocalFiles(files, fs, { keepBudget: budget, onHashed: (file) => hashed.push(file) });
    await waitUntil(() => hashed.length === 3, 'three files hashed');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(hashed).toHaveLength(3); // 3 × 30 bytes fit in 100; the fourth waits
    expect(budget.used).toBe(90);
    expect(hashed.every((file) => file.content?.length === 30)).toBe(true);
    // "Sending" them gives the room back, in order, until every file has been hashed and kept.
    for (let sent = 0; sent < 10; sent++) {
      await waitUntil(() => hashed.length > sent, 'the next file hashed');
      expect(budget.used).toBeLessThanOrEqual(100);
      dropContent(hashed[sent]!);
    }
    await done;
    expect(hashed.map((file) => file.name)).toEqual(files.map((file) => file.name));
    expect(budget.used).toBe(0);
  });
});
