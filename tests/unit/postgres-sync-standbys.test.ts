import { synchronousStandbyNamesValue } from '../../sidecar/postgres/sync-standbys.js';

describe('postgres sync-standbys: synchronous_standby_names from member names', () => {
  test('null is asynchronous replication', () => {
    expect(synchronousStandbyNamesValue(null, 'n1')).toBe('');
  });

  test('names become a quorum of one, sorted, quoted, without duplicates', () => {
    expect(synchronousStandbyNamesValue(['n3', 'n2', 'n3'], 'n1')).toBe('ANY 1 ("n2", "n3")');
  });

  test("this node's own name is left out", () => {
    expect(synchronousStandbyNamesValue(['n1', 'n2'], 'n1')).toBe('ANY 1 ("n2")');
  });

  test('no candidate left means any standby at all: strict mode blocks rather than be acknowledged by nobody', () => {
    expect(synchronousStandbyNamesValue([], 'n1')).toBe('*');
    expect(synchronousStandbyNamesValue(['n1'], 'n1')).toBe('*');
  });

  test('node names go through pgName, as the standbys set application_name', () => {
    expect(synchronousStandbyNamesValue(['Node-B'], 'n1')).toBe('ANY 1 ("node_b")');
  });
});
