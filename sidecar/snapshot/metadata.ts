import { z } from 'zod';
import { SidecarError } from '../errors.js';

/** Format of the archive; raised when its layout changes in a way an older sidecar cannot read. */
export const ARCHIVE_FORMAT = 1;

const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const part = z.object({ file: z.string(), size: z.number().int().nonnegative(), sha256 }).strict();

/** `metadata.json` inside every archive. The archive's own sha256 cannot be in it; it is in the index record. */
export const snapshotMetadata = z
  .object({
    format: z.literal(ARCHIVE_FORMAT),
    id: z.string(),
    cluster: z.string(),
    term: z.number().int().nonnegative(),
    node: z.string(),
    haSidecarVersion: z.string(),
    postgresVersion: z.string().nullable(),
    createdAt: z.string(),
    parts: z.object({ database: part.optional(), files: part.optional() }).strict(),
  })
  .strict();
export type SnapshotMetadata = z.infer<typeof snapshotMetadata>;

/** What a node keeps beside each archive (`<id>.json`) and lists: the metadata plus the archive's size and sha256. */
export const snapshotRecord = snapshotMetadata.extend({ archiveSize: z.number().int().nonnegative(), archiveSha256: sha256 });
export type SnapshotRecord = z.infer<typeof snapshotRecord>;

function majorMinor(version: string): [number, number] {
  const m = /^(\d+)\.(\d+)\.\d+/.exec(version);
  if (!m) throw new SidecarError('snapshot_invalid', `the snapshot's ha-sidecar version "${version}" is not a semantic version`, 400);
  return [Number(m[1]), Number(m[2])];
}

/**
 * Refuses a snapshot this sidecar may not understand: one written by a newer major or minor version (its
 * dump or layout may use what this version does not know). Same or older versions restore: that is the
 * upgrade path. Patch versions do not change the archive.
 */
export function checkRestorable(meta: SnapshotMetadata, ourVersion: string): void {
  const [theirMajor, theirMinor] = majorMinor(meta.haSidecarVersion);
  const [major, minor] = majorMinor(ourVersion);
  if (theirMajor > major || (theirMajor === major && theirMinor > minor)) {
    throw new SidecarError(
      'snapshot_newer_version',
      `snapshot ${meta.id} was written by ha-sidecar ${meta.haSidecarVersion}, newer than this ${ourVersion}: upgrade this cluster first`,
      400,
    );
  }
}

/** Parses `metadata.json`; throws `snapshot_invalid` naming the first bad field. */
export function parseMetadata(text: string): SnapshotMetadata {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new SidecarError('snapshot_invalid', 'the archive\'s metadata.json is not JSON', 400);
  }
  const parsed = snapshotMetadata.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SidecarError('snapshot_invalid', `the archive's metadata.json is not valid: ${issue.path.join('.') || '(top)'}: ${issue.message}`, 400);
  }
  return parsed.data;
}
