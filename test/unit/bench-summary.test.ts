// The bench's table figures (bench/summary.js): spreads, share of a shaped link, CPU per unit,
// and the tool cell of a row that failed (kept, never dropped).
import { describe, expect, it } from 'vitest';

const summaryPath = '../../bench/summary.js'; // plain JS without types: imported by a string variable

describe('bench summary figures', () => {
  it('gives min and max of the readings, ignoring rounds without one', async () => {
    const { spread, rangeText } = await import(summaryPath);
    expect(spread([310, undefined, 295.5, Number.NaN, 402])).toEqual({ min: 295.5, max: 402 });
    expect(spread([undefined])).toBeUndefined();
    expect(rangeText(spread([295.54, 402.2]))).toBe('296–402');
    expect(rangeText(spread([1234.4, 1234.4]))).toBe('1,234');
    expect(rangeText(undefined)).toBe('–');
  });

  it('computes the share of the link from payload MB/s and the rate in bits', async () => {
    const { linkPercent } = await import(summaryPath);
    expect(linkPercent(125, 1e9)).toBeCloseTo(100, 10); // 125 MB/s fills 1 Gbit/s
    expect(linkPercent(62.5, 1e9)).toBeCloseTo(50, 10);
    expect(linkPercent(10, 100e6)).toBeCloseTo(80, 10);
    expect(linkPercent(undefined, 1e9)).toBeUndefined();
    expect(linkPercent(100, 0)).toBeUndefined();
  });

  it('scales CPU seconds to a GiB or to 1,000 files', async () => {
    const { cpuPer } = await import(summaryPath);
    expect(cpuPer(0.5, 0.25, 1)).toBe(2); // 0.5 s for 256 MiB = 2 s/GiB
    expect(cpuPer(3, 10_000, 1000)).toBeCloseTo(0.3, 12);
    expect(cpuPer(undefined, 10_000, 1000)).toBeUndefined();
    expect(cpuPer(1, 0, 1)).toBeUndefined();
  });

  it('keeps a failed row with what failed', async () => {
    const { toolCell, mibText } = await import(summaryPath);
    expect(toolCell('scp (AES-GCM)', 3, 0)).toBe('scp (AES-GCM)');
    expect(toolCell('magic-wormhole', 2, 1)).toBe('magic-wormhole (failed 1 of 3)');
    expect(toolCell('magic-wormhole', 0, 3)).toBe('magic-wormhole (failed)');
    expect(mibText(83 * 1024 * 1024)).toBe('83 MiB');
    expect(mibText(undefined)).toBe('–');
  });
});
