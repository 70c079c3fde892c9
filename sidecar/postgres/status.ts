import type pg from 'pg';
import type { Upstream } from './conf.js';
import { parseLsn, walFileTimeline, type Lsn } from './lsn.js';

/** One standby as the primary sees it (pg_stat_replication). */
export interface ReplicaStatus {
  /** Its application_name: the standby's pgName. */
  name: string;
  clientAddress: string | null;
  /** `streaming`, `catchup`, `startup`, ... */
  state: string;
  /** `async`, `sync`, `quorum` (an `ANY n` candidate) or `potential`. */
  syncState: string;
  flushLsn: Lsn | null;
  replayLsn: Lsn | null;
}

/** What the reconcile loop observes of the local PostgreSQL. */
export interface PostgresStatus {
  /** A postmaster runs for this data directory. */
  running: boolean;
  /** `starting` also covers a running server that does not accept connections (crash recovery, inconsistent standby). */
  role: 'stopped' | 'starting' | 'primary' | 'standby';
  /** The role the sidecar last gave this data directory (`primary` only after initPrimary or promote). */
  intent: 'primary' | 'standby';
  inRecovery: boolean | null;
  /** The primary's insert timeline; on a standby the timeline it receives (or, not streaming, of its last restartpoint). */
  timeline: number | null;
  /** Primary: WAL flushed to disk, the most any standby can have received. */
  currentLsn: Lsn | null;
  /** Standby: WAL received and flushed by the WAL receiver since start (null before any streaming). */
  receivedLsn: Lsn | null;
  /** Standby: WAL replayed. */
  replayedLsn: Lsn | null;
  /** Standby: the WAL receiver is streaming. */
  streaming: boolean;
  /** Standby: where it is configured to stream from. */
  upstream: Upstream | null;
  /** Standby: what its WAL receiver reports (`streaming`, `waiting`, ...) and the sender it is connected to. */
  walReceiver: { status: string; host: string | null; port: number | null } | null;
  /** Primary: its standbys. */
  replicas: ReplicaStatus[];
  synchronousStandbyNames: string | null;
  /** Why the server could not be queried, when running but not answering. */
  error?: string;
}

/** The status of a server that is not running (or not yet queried), in the role it was last given. */
export function stoppedStatus(running: boolean, intent: PostgresStatus['intent'], upstream: Upstream | null): PostgresStatus {
  return {
    running,
    role: 'stopped',
    intent,
    inRecovery: null,
    timeline: null,
    currentLsn: null,
    receivedLsn: null,
    replayedLsn: null,
    streaming: false,
    upstream,
    walReceiver: null,
    replicas: [],
    synchronousStandbyNames: null,
  };
}

/** A primary's position: the flushed WAL and the name of the WAL file being written. */
export interface PrimaryPositionRow {
  lsn: string;
  walfile: string;
}
/** One row of pg_stat_replication as `readStatus` selects it. */
export interface ReplicationRow {
  name: string;
  client: string | null;
  state: string;
  sync_state: string;
  flush: string | null;
  replay: string | null;
}
/** A standby's receiver and replay positions as `readStatus` selects them. */
export interface StandbyRow {
  received: string | null;
  replayed: string | null;
  checkpoint_tli: number;
  status: string | null;
  received_tli: number | null;
  sender_host: string | null;
  sender_port: number | null;
}

export function primaryStatus(base: PostgresStatus, ssn: string, pos: PrimaryPositionRow, replicas: ReplicationRow[]): PostgresStatus {
  return {
    ...base,
    role: 'primary',
    inRecovery: false,
    synchronousStandbyNames: ssn,
    timeline: walFileTimeline(pos.walfile),
    currentLsn: parseLsn(pos.lsn),
    replicas: replicas.map((r) => ({
      name: r.name,
      clientAddress: r.client,
      state: r.state,
      syncState: r.sync_state,
      flushLsn: parseLsn(r.flush),
      replayLsn: parseLsn(r.replay),
    })),
  };
}

export function standbyStatus(base: PostgresStatus, ssn: string, row: StandbyRow): PostgresStatus {
  return {
    ...base,
    role: 'standby',
    inRecovery: true,
    synchronousStandbyNames: ssn,
    timeline: row.received_tli ?? row.checkpoint_tli,
    receivedLsn: parseLsn(row.received),
    replayedLsn: parseLsn(row.replayed),
    streaming: row.status === 'streaming',
    walReceiver: row.status === null ? null : { status: row.status, host: row.sender_host, port: row.sender_port },
  };
}

/** Queries a running server for its status on top of `base` (see `PostgresController.status`). */
export async function readStatus(c: pg.Client, base: PostgresStatus): Promise<PostgresStatus> {
  const head = await c.query<{ in_recovery: boolean; ssn: string }>(
    "select pg_is_in_recovery() as in_recovery, current_setting('synchronous_standby_names') as ssn",
  );
  const { in_recovery: inRecovery, ssn } = head.rows[0];
  if (!inRecovery) {
    const pos = await c.query<PrimaryPositionRow>('select pg_current_wal_flush_lsn()::text as lsn, pg_walfile_name(pg_current_wal_lsn()) as walfile');
    const reps = await c.query<ReplicationRow>(
      `select application_name as name, host(client_addr) as client, state, sync_state,
              flush_lsn::text as flush, replay_lsn::text as replay
         from pg_stat_replication order by application_name`,
    );
    return primaryStatus(base, ssn, pos.rows[0], reps.rows);
  }
  const sb = await c.query<StandbyRow>(
    `select pg_last_wal_receive_lsn()::text as received, pg_last_wal_replay_lsn()::text as replayed,
            (pg_control_checkpoint()).timeline_id as checkpoint_tli,
            r.status, r.received_tli, r.sender_host, r.sender_port
       from (select 1) as one left join pg_stat_wal_receiver as r on true`,
  );
  return standbyStatus(base, ssn, sb.rows[0]);
}

/** A peer's positions as `readPeerPosition` selects them: received and replayed on a standby, flushed on a primary. */
export interface PeerPositionRow {
  received: string | null;
  replayed: string | null;
  flushed: string | null;
}

/**
 * The WAL a peer has (received, or never streamed since start replayed; a primary's flushed) and what it
 * replayed, in bytes; null when it has no position at all.
 */
export function peerPositionOf(row: PeerPositionRow): { wal: number; replayed: number } | null {
  const replayed = parseLsn(row.replayed ?? row.flushed)?.bytes ?? null;
  const received = parseLsn(row.received ?? row.flushed)?.bytes ?? null;
  const wal = Math.max(received ?? -1, replayed ?? -1);
  return wal < 0 ? null : { wal, replayed: replayed ?? 0 };
}

export async function readPeerPosition(c: pg.Client): Promise<{ wal: number; replayed: number } | null> {
  const { rows } = await c.query<PeerPositionRow>(
    `select case when pg_is_in_recovery() then pg_last_wal_receive_lsn()::text end as received,
            case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text end as replayed,
            case when not pg_is_in_recovery() then pg_current_wal_flush_lsn()::text end as flushed`,
  );
  return peerPositionOf(rows[0]);
}
