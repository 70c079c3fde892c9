import { parseByteSize, parseDuration } from '../../sidecar/units.js';
import { rejection } from '../harness/assertions.js';

describe('parseByteSize: the ?lag= of the probes and the byte settings of hactl config set', () => {
  test.each([
    ['0', 0],
    ['16777216', 16777216],
    ['512B', 512],
    ['16kB', 16 * 1024],
    ['16KB', 16 * 1024],
    ['10MB', 10 * 1024 ** 2],
    ['10mb', 10 * 1024 ** 2],
    ['16MiB', 16 * 1024 ** 2],
    ['16 MiB', 16 * 1024 ** 2],
    ['1.5GB', 1.5 * 1024 ** 3],
    ['2GiB', 2 * 1024 ** 3],
    ['1TB', 1024 ** 4],
    ['0.5kB', 512],
    [' 7 ', 7],
  ])('%s is %d bytes', (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });

  test.each(['', ' ', '-1', '+5', 'MB', '10XB', '10 M B', '1.5', '0.3kB', '1e6', '0x10', '10MB10', '99999999999TB', 'Infinity', 'NaN'])(
    '"%s" is refused with bad_value',
    async (text) => {
      const e = await rejection(Promise.resolve().then(() => parseByteSize(text)));
      expect(e.code).toBe('bad_value');
      expect(e.status).toBe(400);
      expect(e.message).toContain(JSON.stringify(text));
    },
  );
});

describe('parseDuration: the snapshot schedule (snapshotSchedule=6h)', () => {
  test.each([
    ['90s', 90_000],
    ['30m', 1_800_000],
    ['6h', 21_600_000],
    ['6H', 21_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1h 30m', 5_400_000],
    ['365d', 365 * 86_400_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test.each(['', 'off', '6', 'h', '0s', '-1h', '1.5h', '6x', 'x6h', '6h!', '1w', '366d'])('"%s" is refused with bad_value', async (text) => {
    const e = await rejection(Promise.resolve().then(() => parseDuration(text)));
    expect([e.code, e.status]).toEqual(['bad_value', 400]);
    expect(e.message).toContain(JSON.stringify(text));
  });
});
