import { parseGoDuration } from '../../sidecar/consul/duration.js';

describe('parseGoDuration (Consul prints its timeouts as Go durations)', () => {
  test.each([
    ['1s', 1_000],
    ['500ms', 500],
    ['5s', 5_000],
    ['1m30s', 90_000],
    ['1.5s', 1_500],
    ['1h0m0s', 3_600_000],
    ['250us', 0.25],
  ])('%s is %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms);
  });
  test.each(['', 'soon', '5', 's5', '1s trailing', '-1s'])('%j is not a duration', (text) => {
    expect(parseGoDuration(text)).toBeNull();
  });
});
