import { defaultDynamicConfig, type DynamicConfig, type LeaderRecord } from '../consul/records.js';
import type { MemberEntry } from '../consul/store.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { monotonicClock, type Clock } from './clock.js';
import type { Role } from './decide.js';
import { Lease } from './lease.js';
import type { LoopDeps } from './loop.js';

/**
 * The one state the loop's pieces share (observe.ts, act.ts, keeper.ts, publish.ts): the session, the lock
 * as last seen, the role and the lease. Each piece reads it at the moment it acts, never a copy, because
 * the lease timer and the keeper change it between a turn's awaits (design.md "The reconcile loop").
 */
export class LoopState {
  role: Role = 'starting';
  term = 0;
  status = 'starting';
  /** What a part reported doing this turn ("cloning from n2 (37 %)"); shown instead of the decision's line. */
  activity: string | null = null;
  session: string | null = null;
  /**
   * Sessions this process created and no longer uses, destroyed as soon as Consul answers. A session id is
   * never just forgotten: a forgotten live session would hold its keys (the lock among them) for good.
   */
  readonly staleSessions = new Set<string>();
  lockIndex = 0;
  lockHolder: string | null = null;
  lastLeader: LeaderRecord | null = null;
  /** The lock's value as last read with a holder: who leads now (lastLeader outlives the lock for decide()). */
  lockValue: LeaderRecord | null = null;
  lastFailure: PromotionFailure | null = null;
  /** The session's last successful renewal (when it was sent), or its creation (keeper.ts). */
  renewed: { session: string; at: number } | null = null;
  /** The last member record written (its content without `updatedAt`, and the session that holds it), and when (publish.ts). */
  published: { content: string; session: string; at: number } | null = null;
  dynamicConfig: DynamicConfig = defaultDynamicConfig;
  /** The members as this turn's observation read them (observe.ts); null before it, or when that read failed. */
  turnMembers: MemberEntry[] | null = null;
  consulReachable = false;
  /**
   * Why Consul denied the keeper's last pass of the alive check (keeper.ts), null once one went through: a
   * node whose passes are denied loses its session within checkTtl, so it does not take the lock meanwhile.
   */
  aliveCheckDenied: string | null = null;
  retryAcquireSoon = false;
  /**
   * The next turn comes within LOCK_RETRY_MS and reads the lock without blocking: this turn changed what the
   * next one does (a new session), or a part waits for the leader's record (TurnContext.turnAgainSoon).
   */
  turnAgainSoon = false;
  /** A planned step-down is stopping Postgres while the lock is still ours (see stepDown). */
  plannedStop = false;
  leadership: AbortController | null = null;
  stopping = false;
  readonly lease: Lease;
  readonly loopWaitMs: number;
  readonly clock: Clock;

  constructor(
    readonly deps: LoopDeps,
    onLeaseExpired: () => void,
  ) {
    this.loopWaitMs = deps.config.timings.loopWait * 1000;
    this.clock = deps.clock ?? monotonicClock;
    this.lease = new Lease(
      deps.config.timings.lease * 1000,
      onLeaseExpired,
      (expiresAt) => deps.guard?.feed(expiresAt), // write guard: every confirmation feeds it
      this.clock,
    );
  }

  get log(): Logger {
    return this.deps.log;
  }

  get apiUrl(): string {
    return this.deps.config.apiUrl;
  }
}

/** Why a promotion failed: its error's code and message, and when. */
export interface PromotionFailure {
  code: string;
  message: string;
  at: string;
}

/**
 * The leader as this node knows it now: the holder of the lock, once it has promoted. While this node holds
 * the lock as a candidate nobody leads yet (its promotion may still fail), and a lock whose value did not
 * validate names nobody, never the previous leader.
 */
export function currentLeader(s: LoopState): LeaderRecord | null {
  if (s.lockHolder === null) return null;
  if (s.lockHolder === s.session) return s.role === 'leader' ? s.lastLeader : null;
  return s.lockValue;
}

export function statusLine(s: LoopState): string {
  return s.activity ?? s.status;
}

/** The load balancer's question: should writes come here? Only with a valid lease and every part ready. */
export function leaderReady(s: LoopState): boolean {
  return s.role === 'leader' && s.lease.valid() && s.deps.participants.every((p) => p.ready?.('leader') ?? true);
}

export function setRole(s: LoopState, role: Role): void {
  if (role === s.role) return;
  const previous = s.role;
  s.role = role;
  s.deps.logContext.role = role;
  for (const r of ['starting', 'standby', 'candidate', 'leader', 'demoted'] as const) s.deps.metrics.role.set({ role: r }, r === role ? 1 : 0);
  s.log.info(`role ${previous} -> ${role}`);
  if (previous === 'leader' || role === 'leader' || previous === 'starting') {
    void s.deps.store.setServiceTags(serviceSpec(s)).catch((e) => s.log.warn('service tag update failed', { error: errorMessage(e) }));
  }
}

export function setTerm(s: LoopState, term: number): void {
  s.term = term;
  s.deps.logContext.term = term;
  s.deps.metrics.term.set(term);
}

export function serviceSpec(s: LoopState) {
  const { config } = s.deps;
  const tags = [s.role === 'leader' ? 'leader' : 'standby', ...(config.nofailover ? ['nofailover'] : [])];
  const postgresTag = s.role === 'leader' ? ('primary' as const) : ('replica' as const);
  return { node: config.nodeName, address: config.address, apiPort: config.apiPort, apiUrl: config.apiUrl, tags, postgresTag, checkTtlSeconds: config.timings.checkTtl };
}

export function leaderRecord(s: LoopState, term: number): LeaderRecord {
  return { name: s.deps.config.nodeName, apiUrl: s.apiUrl, term, since: new Date().toISOString() };
}

/** Stops using the current session; it is destroyed as soon as Consul answers. */
export function dropSession(s: LoopState): void {
  if (s.session) s.staleSessions.add(s.session);
  s.session = null;
  s.deps.guard?.session(null); // write guard: a dropped session is never released (its release may be late)
}

/** Destroys the sessions this node no longer uses, and any an earlier process of it left behind. */
export async function reapSessions(s: LoopState): Promise<void> {
  try {
    const destroyed = await s.deps.store.destroyStaleSessions(s.session);
    if (destroyed.length > 0) s.log.info('destroyed stale Consul sessions of this node', { sessions: destroyed });
    s.staleSessions.clear();
  } catch (e) {
    if (s.staleSessions.size > 0) s.log.warn('stale sessions not destroyed yet; retrying next turn', { error: errorMessage(e), sessions: [...s.staleSessions] });
  }
}

/** Whether Consul still has our session; null when Consul does not answer. */
export async function sessionAlive(s: LoopState): Promise<boolean | null> {
  if (!s.session) return false;
  return s.deps.store.sessionExists(s.session).catch(() => null);
}
