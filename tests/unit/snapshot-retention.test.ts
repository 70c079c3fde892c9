import { expired, idTime, isSnapshotId, newest, scheduleDue, snapshotId, toFetch } from '../../sidecar/snapshot/retention.js';

const id = (iso: string) => snapshotId(new Date(iso));

describe('snapshot ids', () => {
  test('an id is the UTC time to the millisecond, and sorts as the times do', () => {
    expect(id('2026-11-23T18:04:29.123Z')).toBe('20261123T180429123Z');
    expect(idTime('20261123T180429123Z').toISOString()).toBe('2026-11-23T18:04:29.123Z');
    const times = ['2026-01-02T00:00:00.000Z', '2025-12-31T23:59:59.999Z', '2026-01-01T10:00:00.000Z'];
    expect(times.map(id).sort().map((i) => idTime(i).toISOString())).toEqual([...times].sort());
  });

  test('two snapshots in one millisecond (or a clock stepped back) still get a later id', () => {
    const first = id('2026-11-23T18:04:29.123Z');
    expect(snapshotId(new Date('2026-11-23T18:04:29.123Z'), first)).toBe('20261123T180429124Z');
    expect(snapshotId(new Date('2026-11-23T17:00:00.000Z'), first)).toBe('20261123T180429124Z');
  });

  test.each(['20261123T180429123Z'])('%s is an id', (text) => expect(isSnapshotId(text)).toBe(true));
  test.each(['', '../etc/passwd', '20261123T180429123Z.tar', '20261123T180429123', 'x0261123T180429123Z', '20261123T180429123Z/..'])(
    '"%s" is not an id (nothing that leaves the snapshots directory)',
    (text) => expect(isSnapshotId(text)).toBe(false),
  );
});

describe('retention: the newest N on every node', () => {
  const ids = Array.from({ length: 12 }, (_, k) => id(`2026-11-23T18:${String(k).padStart(2, '0')}:00.000Z`));

  test('of 12, the newest 10 stay and the 2 oldest go, whatever the input order', () => {
    const shuffled = [ids[5], ids[0], ids[11], ids[1], ...ids.slice(6, 11), ...ids.slice(2, 5)];
    expect(newest(shuffled, 10)).toEqual(ids.slice(2));
    expect(expired(shuffled, 10)).toEqual(ids.slice(0, 2));
  });

  test('fewer than N: nothing goes; keep 1: only the newest stays', () => {
    expect(expired(ids.slice(0, 3), 10)).toEqual([]);
    expect(newest(ids, 1)).toEqual([ids[11]]);
  });

  test('a standby fetches what it lacks of the newest N, never what it would delete at once', () => {
    expect(toFetch(ids, [], 10)).toEqual(ids.slice(2));
    expect(toFetch(ids, ids.slice(2, 11), 10)).toEqual([ids[11]]);
    expect(toFetch(ids.slice(0, 5), ids.slice(5), 3)).toEqual([]); // it already holds newer ones than the leader
    expect(toFetch(ids, ids, 10)).toEqual([]);
  });
});

describe('scheduleDue', () => {
  const now = new Date('2026-11-23T18:00:00.000Z');
  test('due with no snapshot yet, and when the newest is at least the interval old', () => {
    expect(scheduleDue(undefined, 3_600_000, now)).toBe(true);
    expect(scheduleDue(id('2026-11-23T17:00:00.000Z'), 3_600_000, now)).toBe(true);
    expect(scheduleDue(id('2026-11-23T17:00:00.001Z'), 3_600_000, now)).toBe(false);
  });
});
