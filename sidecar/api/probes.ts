import type { Role } from '../election/decide.js';

/**
 * The probe paths, named as Patroni names them, so HAProxy and Kubernetes probe configs written for Patroni
 * work unchanged. `leader`, `primary`, `master` (Patroni's old name) and `read-write` are one probe;
 * `synchronous` and `asynchronous` are Patroni's long names of `sync` and `async`.
 */
export const PROBES = [
  'health',
  'leader',
  'primary',
  'master',
  'read-write',
  'replica',
  'read-only',
  'sync',
  'synchronous',
  'async',
  'asynchronous',
  'liveness',
  'readiness',
] as const;
export type ProbeName = (typeof PROBES)[number];

/** The probes that need the leader's synchronous standby list (a Consul read), and only these. */
export const readsSyncList = (name: ProbeName): boolean => name === 'sync' || name === 'synchronous' || name === 'async' || name === 'asynchronous';

/**
 * A reconcile loop that has not finished a turn for this long is stuck, and /liveness says so (Patroni: 503
 * when the HA loop has not run for `ttl`, 30 s). Generous on purpose: one turn holds a whole `pg_basebackup`
 * or `pg_rewind`, and a liveness probe that fails during a long clone gets a healthy sidecar restarted.
 */
export const LIVENESS_STALL_MS = 60_000;

/** What a probe's verdict depends on: this node's state as the loop and its parts report it. */
export interface ProbeState {
  /** A member of a cluster (after `cluster start` or `cluster join`); before that only /liveness passes. */
  member: boolean;
  role: Role;
  /** The leader whose lease is valid and whose parts (Postgres) take writes. */
  leaderReady: boolean;
  /** Every part runs in some role (Postgres up). */
  running: boolean;
  /** Every part is a ready standby (Postgres streams from the leader). */
  standbyReady: boolean;
  /** Bytes behind the leader; null when unknown, undefined when no part measures lag (no Postgres). */
  lagBytes: number | null | undefined;
  /** The cluster's `maxReplicaLag`, used when the probe gives no `?lag=`. */
  maxReplicaLag: number;
  /**
   * Whether this node is in the leader's synchronous standby list: undefined when that cannot be told (the
   * leader's record could not be read). Asynchronous mode lists nobody, so every standby is asynchronous.
   */
  synchronous: boolean | undefined;
  /** Milliseconds since the loop last finished a turn; null before its first turn. */
  lastTurnAgeMs: number | null;
}

/** 200 or 503 for one probe, and why when 503 (for the body: an operator curling the probe reads it). */
export function probeVerdict(name: ProbeName, s: ProbeState, lagLimit?: number): { ok: boolean; why?: string } {
  if (name === 'liveness') {
    // A node not yet in a cluster has no loop to be stuck: it is alive, waiting for start or join.
    if (!s.member || s.lastTurnAgeMs === null) return { ok: true };
    return s.lastTurnAgeMs <= LIVENESS_STALL_MS ? { ok: true } : { ok: false, why: `the reconcile loop has not finished a turn for ${Math.round(s.lastTurnAgeMs / 1000)} s` };
  }
  if (!s.member) return { ok: false, why: 'this node has not started or joined a cluster' };
  const limit = lagLimit ?? s.maxReplicaLag;
  const replica = (): { ok: boolean; why?: string } => {
    if (s.role !== 'standby') return { ok: false, why: `role is ${s.role}, not standby` };
    if (!s.standbyReady) return { ok: false, why: 'postgres does not stream from the leader' };
    if (s.lagBytes === undefined) return { ok: true };
    if (s.lagBytes === null) return { ok: false, why: 'replication lag unknown' };
    return s.lagBytes <= limit ? { ok: true } : { ok: false, why: `${s.lagBytes} bytes behind the leader (limit ${limit})` };
  };
  const leader = () => (s.leaderReady ? { ok: true } : { ok: false, why: 'not the leader taking writes' });
  switch (name) {
    case 'health':
      return s.running ? { ok: true } : { ok: false, why: 'postgres is not running' };
    case 'leader':
    case 'primary':
    case 'master':
    case 'read-write':
      return leader();
    case 'replica':
      return replica();
    case 'read-only':
      return s.leaderReady ? { ok: true } : replica();
    case 'sync':
    case 'synchronous':
    case 'async':
    case 'asynchronous': {
      const r = replica();
      if (!r.ok) return r;
      if (s.synchronous === undefined) return { ok: false, why: "the leader's synchronous standby list cannot be read" };
      const wanted = name === 'sync' || name === 'synchronous';
      return s.synchronous === wanted ? { ok: true } : { ok: false, why: s.synchronous ? 'a synchronous standby' : 'not a synchronous standby' };
    }
    case 'readiness':
      // As Patroni's: the lag counts only when the probe gives one.
      if (s.leaderReady) return { ok: true };
      if (s.role !== 'standby' || !s.standbyReady) return { ok: false, why: 'neither the ready leader nor a streaming standby' };
      return lagLimit === undefined ? { ok: true } : replica();
  }
}
