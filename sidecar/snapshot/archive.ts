import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { SidecarError, errorMessage } from '../errors.js';
import { parseMetadata, snapshotRecord, type SnapshotMetadata, type SnapshotRecord } from './metadata.js';
import { expired, isSnapshotId } from './retention.js';

/**
 * tar is loaded when a snapshot is packed or unpacked, not at start: an idle node never does either, and
 * the package and its dependencies cost a few MB of every sidecar's memory for nothing (tools.ts too).
 */
export const loadTar = (): Promise<typeof import('tar')> => import('tar');

/** The parts of an archive, in this order: metadata first, so a reader learns what follows. */
export const METADATA_FILE = 'metadata.json';
export const DATABASE_FILE = 'database.dump';
export const FILES_FILE = 'files.tar.gz';
const PARTS = [METADATA_FILE, DATABASE_FILE, FILES_FILE];

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Size and sha256 of one part file in `dir`, as metadata.json records it. */
export async function describePart(dir: string, file: string) {
  return { file, size: statSync(join(dir, file)).size, sha256: await sha256File(join(dir, file)) };
}

/** Writes `metadata.json` into `dir` and packs it with the parts it names into the archive `out` (a plain tar). */
export async function packArchive(dir: string, meta: SnapshotMetadata, out: string): Promise<void> {
  writeFileSync(join(dir, METADATA_FILE), JSON.stringify(meta, null, 2) + '\n');
  const files = [METADATA_FILE, ...[meta.parts.database, meta.parts.files].flatMap((p) => (p ? [p.file] : []))];
  await (await loadTar()).c({ cwd: dir, file: out, portable: true }, files);
}

/**
 * Unpacks an archive into `dir` and checks it: a readable tar holding only the known parts, valid metadata,
 * and every part's size and sha256 as the metadata records them. Throws `snapshot_invalid` or
 * `snapshot_checksum_mismatch`; reads only, so a refused archive changes nothing.
 */
export async function unpackArchive(archive: string, dir: string): Promise<SnapshotMetadata> {
  const unknown: string[] = [];
  try {
    await (await loadTar()).x({
      file: archive,
      cwd: dir,
      strict: true,
      filter: (path) => (PARTS.includes(path) ? true : (unknown.push(path), false)),
    });
  } catch (e) {
    throw new SidecarError('snapshot_invalid', `the archive is not a readable snapshot (a tar file): ${errorMessage(e)}`, 400);
  }
  if (unknown.length > 0) throw new SidecarError('snapshot_invalid', `the archive holds files a snapshot does not: ${unknown.slice(0, 3).join(', ')}`, 400);
  if (!existsSync(join(dir, METADATA_FILE))) throw new SidecarError('snapshot_invalid', `the archive has no ${METADATA_FILE}`, 400);
  const meta = parseMetadata(readFileSync(join(dir, METADATA_FILE), 'utf8'));
  for (const part of [meta.parts.database, meta.parts.files]) {
    if (!part) continue;
    if (!PARTS.includes(part.file) || !existsSync(join(dir, part.file))) throw new SidecarError('snapshot_invalid', `the archive lacks its part ${part.file}`, 400);
    const got = await describePart(dir, part.file);
    if (got.size !== part.size || got.sha256 !== part.sha256) {
      throw new SidecarError('snapshot_checksum_mismatch', `part ${part.file} of snapshot ${meta.id} does not match its checksum (sha256 ${got.sha256}, ${got.size} bytes; recorded ${part.sha256}, ${part.size} bytes): the archive is damaged`, 400);
    }
  }
  return meta;
}

/**
 * A node's snapshots: `<dir>/<id>.tar` and its record `<id>.json`. The record is written last (by rename), so
 * a listed snapshot always has its whole archive; a crash mid-write leaves only files `list()` ignores.
 */
export class SnapshotDirectory {
  constructor(readonly dir: string) {}

  archivePath(id: string): string {
    return join(this.dir, `${id}.tar`);
  }

  private recordPath(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** A scratch directory inside the snapshots directory (same file system, so a rename moves an archive in). */
  scratch(): string {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    return mkdtempSync(join(this.dir, '.work-'));
  }

  /** Removes scratch directories left by a process that died mid-operation. */
  clearScratch(): void {
    if (!existsSync(this.dir)) return;
    for (const entry of readdirSync(this.dir)) if (entry.startsWith('.work-')) rmSync(join(this.dir, entry), { recursive: true, force: true });
  }

  /** Every complete snapshot, oldest first. A record that does not parse is skipped (and stays on disk for a look). */
  list(): SnapshotRecord[] {
    if (!existsSync(this.dir)) return [];
    return readdirSync(this.dir)
      .filter((f) => f.endsWith('.json') && isSnapshotId(f.slice(0, -5)))
      .sort()
      .flatMap((f) => {
        try {
          const parsed = snapshotRecord.safeParse(JSON.parse(readFileSync(join(this.dir, f), 'utf8')));
          return parsed.success && existsSync(this.archivePath(parsed.data.id)) ? [parsed.data] : [];
        } catch {
          return [];
        }
      });
  }

  /** The snapshot `id`; throws `unknown_snapshot` (404). */
  get(id: string): SnapshotRecord {
    const found = isSnapshotId(id) ? this.list().find((r) => r.id === id) : undefined;
    if (!found) throw new SidecarError('unknown_snapshot', `no snapshot ${id} on this node; \`hactl snapshot list\` shows the ids`, 404);
    return found;
  }

  /** Moves a finished archive in and writes its record. */
  add(record: SnapshotRecord, archive: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    renameSync(archive, this.archivePath(record.id));
    writeFileSync(this.recordPath(record.id) + '.tmp', JSON.stringify(record, null, 2) + '\n');
    renameSync(this.recordPath(record.id) + '.tmp', this.recordPath(record.id));
  }

  /** Deletes all but the newest `keep`; returns the ids deleted. The record goes first, so a half-deleted one is not listed. */
  prune(keep: number): string[] {
    const gone = expired(this.list().map((r) => r.id), keep);
    for (const id of gone) {
      rmSync(this.recordPath(id), { force: true });
      rmSync(this.archivePath(id), { force: true });
    }
    return gone;
  }
}
