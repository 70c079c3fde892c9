import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { DATABASE_FILE, SnapshotDirectory, describePart, packArchive, sha256File, unpackArchive } from '../../sidecar/snapshot/archive.js';
import { ARCHIVE_FORMAT, type SnapshotMetadata } from '../../sidecar/snapshot/metadata.js';
import { rejection } from '../harness/assertions.js';

/** Archives on a temporary directory: what unpackArchive accepts, what it refuses, and the snapshots directory. */
describe('snapshot archives', () => {
  let work: string;
  beforeEach(() => (work = mkdtempSync(join(tmpdir(), 'snapshot-archive-'))));
  afterEach(() => rmSync(work, { recursive: true, force: true }));

  async function archive(id = '20261123T180429123Z'): Promise<{ path: string; meta: SnapshotMetadata }> {
    const parts = mkdtempSync(join(work, 'parts-'));
    writeFileSync(join(parts, DATABASE_FILE), 'PGDMP pretend dump '.repeat(50));
    const meta: SnapshotMetadata = {
      format: ARCHIVE_FORMAT,
      id,
      cluster: 'main',
      term: 1,
      node: 'n1',
      haSidecarVersion: '0.1.0',
      postgresVersion: '15.18',
      createdAt: new Date().toISOString(),
      parts: { database: await describePart(parts, DATABASE_FILE) },
    };
    const path = join(work, `${id}.tar`);
    await packArchive(parts, meta, path);
    return { path, meta };
  }

  test('an archive unpacks to its metadata with every part verified', async () => {
    const { path, meta } = await archive();
    const into = mkdtempSync(join(work, 'into-'));
    expect(await unpackArchive(path, into)).toEqual(meta);
    expect(readFileSync(join(into, DATABASE_FILE), 'utf8')).toContain('pretend dump');
  });

  test('one flipped byte in a part is snapshot_checksum_mismatch', async () => {
    const { path } = await archive();
    const bytes = readFileSync(path);
    const at = bytes.indexOf('pretend dump');
    bytes[at] ^= 0x20;
    writeFileSync(path, bytes);
    const e = await rejection(unpackArchive(path, mkdtempSync(join(work, 'into-'))));
    expect([e.code, e.status]).toEqual(['snapshot_checksum_mismatch', 400]);
    expect(e.message).toContain(`part ${DATABASE_FILE}`);
  });

  test('not a tar, or a tar with files a snapshot does not hold, is snapshot_invalid', async () => {
    const junk = join(work, 'junk.tar');
    writeFileSync(junk, 'no tar here\n'.repeat(100));
    expect((await rejection(unpackArchive(junk, mkdtempSync(join(work, 'into-'))))).code).toBe('snapshot_invalid');
    writeFileSync(join(work, 'evil.sh'), 'echo hi\n');
    const other = join(work, 'other.tar');
    await tar.c({ cwd: work, file: other }, ['evil.sh']);
    const e = await rejection(unpackArchive(other, mkdtempSync(join(work, 'into-'))));
    expect([e.code, e.message]).toEqual(['snapshot_invalid', 'the archive holds files a snapshot does not: evil.sh']);
  });

  test('the snapshots directory lists complete snapshots oldest first, keeps the newest N, names unknown ids', async () => {
    const dir = new SnapshotDirectory(join(work, 'snapshots'));
    const ids = ['20261123T180000000Z', '20261123T170000000Z', '20261123T190000000Z'];
    for (const id of ids) {
      const { path, meta } = await archive(id);
      dir.add({ ...meta, archiveSize: 1, archiveSha256: await sha256File(path) }, path);
    }
    expect(dir.list().map((r) => r.id)).toEqual([...ids].sort());
    expect(dir.prune(2)).toEqual(['20261123T170000000Z']);
    expect(dir.list().map((r) => r.id)).toEqual(['20261123T180000000Z', '20261123T190000000Z']);
    expect((await rejection(Promise.resolve().then(() => dir.get('20261123T170000000Z')))).code).toBe('unknown_snapshot');
    expect((await rejection(Promise.resolve().then(() => dir.get('../../etc/passwd')))).status).toBe(404);
  });
});
