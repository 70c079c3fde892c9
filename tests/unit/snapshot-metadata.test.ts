import { ARCHIVE_FORMAT, checkRestorable, parseMetadata, type SnapshotMetadata } from '../../sidecar/snapshot/metadata.js';
import { packageVersion } from '../../sidecar/shared/package.js';
import { rejection } from '../harness/assertions.js';

const meta = (haSidecarVersion: string): SnapshotMetadata => ({
  format: ARCHIVE_FORMAT,
  id: '20261123T180429123Z',
  cluster: 'main',
  term: 3,
  node: 'n1',
  haSidecarVersion,
  postgresVersion: '15.18',
  createdAt: '2026-11-23T18:04:29.123Z',
  parts: { database: { file: 'database.dump', size: 10, sha256: 'a'.repeat(64) } },
});
const refusal = (fn: () => unknown) => rejection(Promise.resolve().then(fn));

describe('checkRestorable: same or older versions restore (the upgrade path), newer major/minor ones do not', () => {
  test.each(['1.4.0', '1.4.9', '1.3.7', '0.9.0'])('a snapshot of %s restores into 1.4.2', (v) => {
    expect(() => checkRestorable(meta(v), '1.4.2')).not.toThrow();
  });

  test.each(['1.5.0', '2.0.0', '2.3.1'])('a snapshot of %s is refused by 1.4.2 with snapshot_newer_version', async (v) => {
    const e = await refusal(() => checkRestorable(meta(v), '1.4.2'));
    expect([e.code, e.status]).toEqual(['snapshot_newer_version', 400]);
    expect(e.message).toContain(`ha-sidecar ${v}, newer than this 1.4.2`);
  });

  test('a version that is not semantic is snapshot_invalid', async () => {
    expect((await refusal(() => checkRestorable(meta('latest'), '1.4.2'))).code).toBe('snapshot_invalid');
  });

  test("this build's version is package.json's", () => {
    expect(packageVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('parseMetadata', () => {
  test('reads what a snapshot writes', () => {
    expect(parseMetadata(JSON.stringify(meta('0.1.0')))).toEqual(meta('0.1.0'));
  });

  test.each([
    ['not JSON', '{', 'not JSON'],
    ['another format', JSON.stringify({ ...meta('0.1.0'), format: 2 }), 'format'],
    ['a bad sha256', JSON.stringify({ ...meta('0.1.0'), parts: { database: { file: 'database.dump', size: 1, sha256: 'xyz' } } }), 'parts.database.sha256'],
    ['an unknown part', JSON.stringify({ ...meta('0.1.0'), parts: { secrets: {} } }), 'parts'],
    ['no cluster', JSON.stringify({ ...meta('0.1.0'), cluster: undefined }), 'cluster'],
  ])('%s is snapshot_invalid naming the field', async (_what, text, field) => {
    const e = await refusal(() => parseMetadata(text));
    expect([e.code, e.status]).toEqual(['snapshot_invalid', 400]);
    expect(e.message).toContain(field);
  });
});
