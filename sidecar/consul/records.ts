import { z } from 'zod';
import { parseDuration } from '../units.js';

/**
 * What the sidecars keep in Consul KV under `ha-sidecar/<cluster>/`. Every value read back is validated:
 * a hand-edited or corrupt value is reported as `bad_kv_value` and treated as absent, never trusted.
 */
export const leaderRecord = z.object({
  name: z.string(),
  apiUrl: z.string(),
  postgresUrl: z.string().optional(),
  term: z.number().int().nonnegative(),
  since: z.string(),
  /** Primary WAL position (bytes) the leader last published: the bar for rule 5's `maxLagOnFailover`. */
  walPosition: z.number().nonnegative().optional(),
});
export type LeaderRecord = z.infer<typeof leaderRecord>;

export const memberRecord = z
  .object({
    name: z.string(),
    address: z.string(),
    apiUrl: z.string(),
    role: z.enum(['leader', 'standby', 'candidate', 'demoted', 'starting']),
    state: z.string(),
    termSeen: z.number().int().nonnegative(),
    nofailover: z.boolean(),
    updatedAt: z.string(),
  })
  .catchall(z.unknown()); // the Postgres and file-mirror parts add their own fields
export type MemberRecord = z.infer<typeof memberRecord>;

export const historyEvent = z.object({
  term: z.number().int().nonnegative(),
  at: z.string(),
  kind: z.enum(['start', 'failover', 'switchover', 'resume']),
  leader: z.string(),
  previous: z.string().optional(),
  reason: z.string(),
});
export type HistoryEvent = z.infer<typeof historyEvent>;

/** Bounded so a typo cannot fill the disk; 1 keeps at least the snapshot just taken. */
export const snapshotKeep = z.number().int().min(1).max(1000);
export const snapshotSchedule = z.string().refine((s) => s === 'off' || isDuration(s), 'off, or a duration like 6h, 30m, 1d');

function isDuration(text: string): boolean {
  try {
    return parseDuration(text) > 0;
  } catch {
    return false;
  }
}

/** Dynamic cluster settings (`config` key), changed at run time with `PATCH /config`. */
export const dynamicConfig = z
  .object({
    /** Maintenance mode: no automatic failover, the current leader stays. */
    paused: z.boolean().default(false),
    synchronousMode: z.boolean().default(false),
    synchronousModeStrict: z.boolean().default(false),
    /** /replica answers 200 only within this many bytes of the primary. */
    maxReplicaLag: z.number().int().nonnegative().default(16 * 1024 * 1024),
    /** Snapshots every node keeps (the newest ones); YugabyteDB Anywhere keeps 10 too. */
    snapshotKeep: snapshotKeep.default(10),
    /** How often the leader takes a snapshot (`6h`, `1d`), or `off`. */
    snapshotSchedule: snapshotSchedule.default('off'),
  })
  .strict();
export type DynamicConfig = z.infer<typeof dynamicConfig>;
export const defaultDynamicConfig: DynamicConfig = dynamicConfig.parse({});

export const switchoverRequest = z
  .object({
    from: z.string(),
    to: z.string().optional(),
    requestedAt: z.string(),
    /** Set by the old leader once it released the lock: the target's grace period counts from here. */
    handedOverAt: z.string().optional(),
  })
  .strict();
export type SwitchoverRequest = z.infer<typeof switchoverRequest>;

/**
 * An operator's manual failover (`hactl cluster failover --to N`), written only while no leader holds the
 * lock. Only `to` may take the lock while it stands; `force` lifts `to`'s fitness bar (it may then lose the
 * commits past its position: `behindBytes` says how many the last known primary position shows).
 */
export const failoverRequest = z
  .object({
    to: z.string(),
    force: z.boolean(),
    requestedAt: z.string(),
    /** How far `to` was behind the last known primary position when asked (null: unknown). */
    behindBytes: z.number().int().nullable(),
  })
  .strict();
export type FailoverRequest = z.infer<typeof failoverRequest>;

/** History keeps the newest events only, so the key stays small. */
export const HISTORY_CAP = 100;
