/**
 * Errors with a stable `code`. The API answers with `{ error: code, message }`, the CLI maps codes to exit
 * codes, and the logs carry the code, so callers test the code, never the message text.
 */
export class SidecarError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** HTTP status the API answers with when this error reaches a client. */
    readonly status = 500,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'SidecarError';
  }
}

export const isSidecarError = (e: unknown): e is SidecarError => e instanceof SidecarError;

/** Message of any thrown value, for logs and one-line CLI errors. */
export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/*
 * Error codes of the recovery calls (sidecar/recovery.ts, issue 12), to join the codes' table:
 * - `leader_exists` 409: POST /failover while a leader holds the lock (a switchover is what moves a leader).
 * - `candidate_behind` 409: POST /failover without force to a node behind the last known primary position
 *   (`behindBytes`), or whose position is unknown.
 * - `candidate_not_ready` 409: the failover target is not running or tagged nofailover.
 * - `failover_failed` 502, `failover_timeout` 504: another node took the lock, or the target did not serve
 *   writes within 45 s.
 * - `reinit_leader_refused` 409: POST /postgres/reinit on the leader, whose data every other node clones.
 * - `operation_in_progress` 409: a restart or reinit of this node's Postgres is still running.
 * - `postgres_not_running` 409: reload or restart of a Postgres that is stopped.
 * - `not_member` 409: a Postgres action on a node that has not started or joined a cluster.
 * hactl adds `operation_failed` and `operation_timeout` (exit 1) for a restart or reinit that failed or runs on.
 */
