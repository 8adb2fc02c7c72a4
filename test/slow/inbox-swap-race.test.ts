/**
 * Point 8 of issue 9 at the size it was found at: 20,000 placements into a folder that another
 * thread swaps for a symbolic link to an outside folder and back (the fast suite runs a short
 * version, test/unit/inbox-swap-race.test.ts). Each policy stops after 20,000 or 3 minutes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { swapRace } from '../helpers/swap-race.js';
import { removeTempDirs } from '../helpers/temp.js';

afterEach(removeTempDirs);

describe.runIf(process.platform === 'linux')('20,000 placements while a folder is swapped for a symbolic link', () => {
  it.each(['rename', 'overwrite', 'reject'] as const)(
    'land nothing outside the inbox (%s)',
    async (policy) => {
      const result = await swapRace(policy, 20_000, 180_000);
      expect(result.outsideAdded).toEqual([]);
      expect(result.outsideChanged).toEqual([]);
      expect(result.folderMode).toBe('handles');
      expect(result.unexpectedErrors).toEqual([]);
      expect(result.inInbox).toBe(result.placed);
      expect(result.placed).toBeGreaterThan(0);
    },
    300_000,
  );
});
