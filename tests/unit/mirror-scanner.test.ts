import { rescanPauseMs } from '../../sidecar/mirror/scanner.js';

test('periodic rescans pause files.rescanSeconds up to 10,000 entries, then longer in proportion', () => {
  expect(rescanPauseMs(30_000, 0)).toBe(30_000);
  expect(rescanPauseMs(30_000, 10_000)).toBe(30_000);
  expect(rescanPauseMs(30_000, 100_000)).toBe(300_000);
  expect(rescanPauseMs(2_000, 1_000)).toBe(3_000);
});
