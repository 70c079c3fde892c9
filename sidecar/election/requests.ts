import type { FailoverRequest, SwitchoverRequest } from '../consul/records.js';
import type { AcquireReason } from './decide.js';

/**
 * The operators' requests the loop honours (a switchover, a manual failover) and when each lapses, as pure
 * functions of the request and the clock; the loop reads and deletes them (loop.ts currentSwitchover and
 * currentFailover). A request that outlives its purpose would bind the next election to its target, so each
 * has a deadline.
 */

/** A switchover the target has not completed by then is dropped, so the cluster is not left leaderless. */
export const SWITCHOVER_TIMEOUT_MS = 30_000;
/**
 * Once the old leader has handed over, the named target has this long to take the lock; after it, any fit
 * node (the old leader included) may, so a target that cannot take over never strands the cluster.
 */
export const SWITCHOVER_TARGET_GRACE_MS = 5_000;
/**
 * A manual failover its target has not completed by then is dropped, so a target that cannot lead (its
 * Postgres will not start, say) does not keep the cluster leaderless: the operator sees it and asks again.
 * Covers the dead leader's lock-delay and a promotion's crash recovery.
 */
export const FAILOVER_TIMEOUT_MS = 60_000;

/** Why a standing switchover is dropped now (the log line), or null while it stands. */
export function switchoverLapse(request: SwitchoverRequest, lockFree: boolean, nowMs: number): string | null {
  if (request.handedOverAt !== undefined && lockFree && nowMs - Date.parse(request.handedOverAt) > SWITCHOVER_TARGET_GRACE_MS) {
    return 'switchover target did not take the lock in time: any fit node may now';
  }
  if (nowMs - Date.parse(request.requestedAt) > SWITCHOVER_TIMEOUT_MS) return 'dropping a switchover that did not complete in time';
  return null;
}

/**
 * Why a standing manual failover is dropped now, or null while it stands. A leader drops any it sees (the
 * failover is done, or a leader came back first).
 */
export function failoverLapse(request: FailoverRequest, isLeader: boolean, nowMs: number): string | null {
  if (isLeader) return 'dropping a manual failover request: a leader holds the lock';
  if (nowMs - Date.parse(request.requestedAt) > FAILOVER_TIMEOUT_MS) return 'dropping a manual failover its target did not complete in time';
  return null;
}

/** The history's reason for a new leader's term. */
export function leadershipReason(why: AcquireReason, previous: string | undefined, failover: FailoverRequest | null | undefined): string {
  if (failover) {
    const behind = failover.behindBytes === null ? 'an unknown number of' : String(failover.behindBytes);
    return `manual failover to ${failover.to} by an operator${failover.force ? ` (forced, ${behind} bytes behind the last known primary position)` : ''}`;
  }
  if (why === 'start') return 'cluster started';
  if (why === 'resume') return 'the leader took its lock back after a restart';
  if (why === 'switchover') return `planned switchover from ${previous ?? 'unknown'}`;
  return `leader ${previous ?? 'unknown'} lost its lock`;
}
