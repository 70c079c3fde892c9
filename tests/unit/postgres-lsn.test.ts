import { parseLsn, walFileTimeline } from '../../sidecar/postgres/lsn.js';

describe('postgres lsn: WAL positions as PostgreSQL prints them', () => {
  test('the high word counts 4 GiB, the low word bytes', () => {
    expect(parseLsn('0/3000060')).toEqual({ text: '0/3000060', bytes: 0x3000060 });
    expect(parseLsn('16/B374D848')).toEqual({ text: '16/B374D848', bytes: 0x16 * 2 ** 32 + 0xb374d848 });
  });

  test('positions compare as bytes across the 4 GiB boundary', () => {
    const below = parseLsn('0/FFFFFFFF')!.bytes;
    const above = parseLsn('1/0')!.bytes;
    expect(above - below).toBe(1);
  });

  test('no position (a standby that never streamed) is null', () => {
    expect(parseLsn(null)).toBeNull();
    expect(parseLsn(undefined)).toBeNull();
    expect(parseLsn('')).toBeNull();
  });

  test('a WAL file name starts with its timeline in hex', () => {
    expect(walFileTimeline('000000010000000000000003')).toBe(1);
    expect(walFileTimeline('0000001A0000000000000003')).toBe(26);
  });
});
