/**
 * Snapshot ids and which snapshots to keep: pure, so the rules are unit-tested without files or a cluster.
 * An id is the UTC time of the snapshot, `20261123T180429123Z`: ids sort as their times do, and the pattern
 * admits nothing that could leave the snapshots directory when used in a path.
 */
const ID_PATTERN = /^\d{8}T\d{9}Z$/;

export const isSnapshotId = (text: string): boolean => ID_PATTERN.test(text);

/** The id of a snapshot taken at `at`; later than `after` (the newest existing id) even within one millisecond. */
export function snapshotId(at: Date, after?: string): string {
  let ms = at.getTime();
  if (after !== undefined && isSnapshotId(after)) ms = Math.max(ms, idTime(after).getTime() + 1);
  return new Date(ms).toISOString().replace(/[-:.]/g, '');
}

/** The time an id stands for. */
export function idTime(id: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z$/.exec(id);
  if (!m) throw new Error(`not a snapshot id: ${id}`);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`);
}

/** The newest `keep` ids, oldest first. */
export function newest(ids: readonly string[], keep: number): string[] {
  return [...ids].sort().slice(-keep);
}

/** The ids beyond the newest `keep`, which a node deletes. */
export function expired(ids: readonly string[], keep: number): string[] {
  const kept = new Set(newest(ids, keep));
  return [...ids].sort().filter((id) => !kept.has(id));
}

/** What a standby fetches from the leader: what it would keep of the leader's newest and does not hold yet. */
export function toFetch(leaderIds: readonly string[], localIds: readonly string[], keep: number): string[] {
  const have = new Set(localIds);
  const wanted = new Set(newest([...leaderIds, ...localIds], keep));
  return newest(leaderIds, keep).filter((id) => !have.has(id) && wanted.has(id));
}

/** Whether the schedule calls for a snapshot now: none yet, or the newest is at least `intervalMs` old. */
export function scheduleDue(newestId: string | undefined, intervalMs: number, now: Date): boolean {
  return newestId === undefined || now.getTime() - idTime(newestId).getTime() >= intervalMs;
}
