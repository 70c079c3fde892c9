import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IntentFile } from '../../sidecar/postgres/state-file.js';

describe('postgres state-file: the role last given to a data directory', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'intent-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('without a file a node is a standby of nobody, so no start makes it a writer', () => {
    const f = new IntentFile(join(dir, 'pg.state.json'));
    expect(f.exists()).toBe(false);
    expect(f.current).toEqual({ intent: 'standby', upstream: null, synchronousStandbyNames: '' });
  });

  test('what is set is on disk (0600) and read back by the next process', () => {
    const path = join(dir, 'sub', 'pg.state.json');
    const value = { intent: 'primary' as const, upstream: null, synchronousStandbyNames: '*' };
    new IntentFile(path).set(value);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(new IntentFile(path).current).toEqual(value);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(value);
  });

  test('a damaged file is refused with invalid_state, not taken for a primary', () => {
    const path = join(dir, 'pg.state.json');
    writeFileSync(path, '{"intent":"leader"}');
    expect(() => new IntentFile(path)).toThrow(expect.objectContaining({ code: 'invalid_state' }));
  });
});
