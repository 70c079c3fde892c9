import type { MemberEntry } from '../consul/store.js';
import type { LeaderProblem } from './decide.js';
import { candidateProblem } from './eligibility.js';
import type { Participant } from './participant.js';

/**
 * The leader's `leaderProblem` observation: the first problem a part reports and, when it asks to hand over,
 * whether any standby could take over. Members are read only then, so a healthy leader's turn costs nothing.
 */
export async function observeLeaderProblem(participants: Participant[], listMembers: () => Promise<MemberEntry[]>, self: string): Promise<LeaderProblem | null> {
  const problem = participants.map((p) => p.leaderProblem?.() ?? null).find((p) => p !== null);
  if (!problem) return null;
  if (!problem.handOver) return { ...problem, standbyAvailable: false };
  const members = await listMembers().catch((): MemberEntry[] => []);
  return { ...problem, standbyAvailable: members.some((m) => canTakeOver(m, self)) };
}

/**
 * Whether a member looks able to take over as its record says: the fitness rule (eligibility.ts) on the
 * record's facts (alive, not `nofailover`, a standby, its Postgres a streaming standby when it runs one; no
 * position bar), and its manager not known broken. The member's own fitness check still decides (design
 * rule 5); this only keeps a leader from handing over into nothing.
 */
export function canTakeOver({ record, alive }: MemberEntry, self: string): boolean {
  if (record.name === self) return false;
  const streaming = 'pgRole' in record ? record.pgRole === 'standby' && record.streaming === true : undefined;
  if (candidateProblem({ alive, nofailover: record.nofailover, role: record.role, streaming }, 0) !== null) return false;
  const manager = record.manager as { state?: unknown } | undefined;
  return !(typeof manager?.state === 'string' && /unhealthy|failed/.test(manager.state));
}
