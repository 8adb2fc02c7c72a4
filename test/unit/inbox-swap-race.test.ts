/** Point 8 of issue 9, short version (the long one is test/slow/inbox-swap-race.test.ts). */
import { afterEach, describe, expect, it } from 'vitest';
import { swapRace } from '../helpers/swap-race.js';
import { removeTempDirs } from '../helpers/temp.js';

afterEach(removeTempDirs);

describe.runIf(process.platform === 'linux')('a folder swapped for a symbolic link and back during placement', () => {
  it.each(['rename', 'overwrite', 'reject'] as const)('lands nothing outside the inbox (%s)', async (policy) => {
    const result = await swapRace(policy, 2000, 2000);
    expect(result.outsideAdded).toEqual([]);
    expect(result.outsideChanged).toEqual([]);
    expect(result.folderMode).toBe('handles');
    expect(result.swaps).toBeGreaterThan(0);
    expect(result.unexpectedErrors).toEqual([]);
    // Every placement that succeeded is in the inbox, wherever the swapping left its folder.
    expect(result.inInbox).toBe(result.placed);
    expect(result.placed + result.refused).toBe(result.attempts);
    expect(result.placed).toBeGreaterThan(0);
  });
});
