import { progressLogger, progressPercent } from '../../sidecar/postgres/progress.js';
import type { Logger } from '../../sidecar/log.js';

describe('postgres progress: the --progress meter of pg_basebackup and pg_rewind', () => {
  test('the percentage of a meter line; null for other messages', () => {
    expect(progressPercent('  37421/102400 kB (36%), 0/1 tablespace')).toBe(36);
    expect(progressPercent('pg_basebackup: write-ahead log start point: 0/2000028')).toBeNull();
  });

  test('every percentage reaches the caller; the log gets messages, and the meter at most once per interval and at 100 %', () => {
    const lines: string[] = [];
    const log = { info: (message: string) => lines.push(message) } as unknown as Logger;
    const seen: number[] = [];
    const onLine = progressLogger(log, 'pg_basebackup', (p) => seen.push(p));
    onLine('pg_basebackup: checkpoint completed');
    onLine('1/10 kB (10%)');
    onLine('5/10 kB (50%)');
    onLine('10/10 kB (100%)');
    expect(seen).toEqual([10, 50, 100]);
    expect(lines).toEqual(['pg_basebackup: checkpoint completed', 'pg_basebackup progress', 'pg_basebackup progress']);
  });
});
