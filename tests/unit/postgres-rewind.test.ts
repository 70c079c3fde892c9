import { rewindOutcome } from '../../sidecar/postgres/rewind.js';

// Outputs as PostgreSQL 15's pg_rewind printed them in the fault suite's double-fault runs.
const SAME_TIMELINE = [
  'pg_rewind: connected to server',
  'pg_rewind: executing "/usr/lib/postgresql/15/bin/postgres" for target server to complete crash recovery',
  'LOG:  crash recovery starts in timeline 1 and has target timeline 2',
  'pg_rewind: source and target cluster are on the same timeline',
  'pg_rewind: no rewind required',
].join('\n');
const REWOUND = [
  'pg_rewind: connected to server',
  'pg_rewind: servers diverged at WAL location 0/409FD60 on timeline 1',
  'pg_rewind: rewinding from last common checkpoint at 0/409FCE8 on timeline 1',
  'pg_rewind: reading source file list',
  'pg_rewind: Done!',
].join('\n');
const NOTHING_TO_DO = [
  'pg_rewind: servers diverged at WAL location 0/3000060 on timeline 1',
  'pg_rewind: no rewind required',
].join('\n');

describe('postgres rewind: what a pg_rewind run did', () => {
  test('same timeline ID on both sides: exit 0 but nothing compared, told apart from a rewind', () => {
    expect(rewindOutcome(0, SAME_TIMELINE)).toBe('same_timeline');
  });

  test('a real rewind, and a target already behind the divergence point, are rewound', () => {
    expect(rewindOutcome(0, REWOUND)).toBe('rewound');
    expect(rewindOutcome(0, NOTHING_TO_DO)).toBe('rewound');
  });

  test('a non-zero exit or a signal (null code) is a failure, whatever it printed', () => {
    expect(rewindOutcome(1, SAME_TIMELINE)).toBe('failed');
    expect(rewindOutcome(null, REWOUND)).toBe('failed');
  });
});
