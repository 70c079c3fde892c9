/**
 * Who may take over: the one rule that a standby's own fitness in the election, a planned switchover's
 * check of its target, a manual failover and a leader's look for a standby to hand over to (handover.ts)
 * share (docs/design.md "Fitness", "Planned switchover", "Manual failover"). Pure: the facts known about a candidate in, its first problem out, null when it has none. Each
 * caller judges only the facts it has (a standby judging itself is alive and knows its own tags) and words
 * the problem for its own answer.
 */

export type CandidateProblem =
  | { kind: 'not_running' }
  | { kind: 'nofailover' }
  | { kind: 'not_standby'; role: string }
  | { kind: 'not_streaming' }
  | { kind: 'position_unknown' }
  | { kind: 'behind'; bytes: number; limit: number };

export interface CandidateFacts {
  alive: boolean;
  nofailover: boolean;
  /** Its member record's role; undefined: not judged. */
  role?: string;
  /** Whether its Postgres streams from the leader; undefined: not judged (no Postgres, or not asked). */
  streaming?: boolean;
  /**
   * Bytes it is behind the bar (the last leader's published WAL position), null when a position is unknown;
   * undefined: not judged (no Postgres, or no bar to measure against).
   */
  behindBytes?: number | null;
}

/** The first reason `facts` rule the candidate out when it may be at most `maxBehindBytes` behind; null when fit. */
export function candidateProblem(facts: CandidateFacts, maxBehindBytes: number): CandidateProblem | null {
  if (!facts.alive) return { kind: 'not_running' };
  if (facts.nofailover) return { kind: 'nofailover' };
  if (facts.role !== undefined && facts.role !== 'standby') return { kind: 'not_standby', role: facts.role };
  if (facts.streaming === false) return { kind: 'not_streaming' };
  if (facts.behindBytes === undefined) return null;
  if (facts.behindBytes === null) return { kind: 'position_unknown' };
  return facts.behindBytes > maxBehindBytes ? { kind: 'behind', bytes: facts.behindBytes, limit: maxBehindBytes } : null;
}
