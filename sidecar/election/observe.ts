// Observe: what a turn knows before it decides (the lock, the dynamic config, operators' requests, this
// node's fitness), and the lock reads the keeper shares. Reads only; the state it updates is the lock as
// last seen and, through confirmations, the lease.
import type { MemberEntry, TurnKeys } from '../consul/store.js';
import type { FailoverRequest, LeaderRecord, SwitchoverRequest } from '../consul/records.js';
import { errorMessage } from '../errors.js';
import type { Fitness, Observation } from './decide.js';
import { observeLeaderProblem } from './handover.js';
import type { TurnContext } from './participant.js';
import { failoverLapse, switchoverLapse } from './requests.js';
import { reapSessions, setTerm, type LoopState } from './state.js';

export async function observe(s: LoopState): Promise<Observation> {
  const { store } = s.deps;
  const claiming = s.role === 'leader' || s.role === 'candidate';
  // The members this turn read; the parts act on them (turnContext), so a turn reads them once.
  s.turnMembers = null;
  let keys: TurnKeys | null = null;
  try {
    if (claiming) await confirmLock(s);
    else await watchLock(s);
    keys = await store.readTurnKeys();
    s.dynamicConfig = keys.config;
    s.turnMembers = keys.members;
    s.consulReachable = true;
    if (s.staleSessions.size > 0) await reapSessions(s);
  } catch (e) {
    if (s.consulReachable) s.log.warn('Consul unreachable', { error: errorMessage(e) });
    s.consulReachable = false;
  }
  const switchover = s.consulReachable && keys ? await currentSwitchover(s, keys.switchover) : null;
  const lockFree = s.consulReachable && s.lockHolder === null && !claiming;
  const failover = keys && (lockFree || s.role === 'leader') ? await currentFailover(s, keys.failover) : null;
  const fitness = lockFree ? await observeFitness(s, switchover, failover) : { fit: true, reason: '' };
  return {
    node: s.deps.config.nodeName,
    role: s.role,
    session: s.session,
    consulReachable: s.consulReachable,
    aliveCheckDenied: s.aliveCheckDenied,
    lockHolder: s.lockHolder,
    lastLeader: s.lastLeader,
    leaseValid: s.lease.valid(),
    paused: s.dynamicConfig.paused,
    nofailover: s.deps.config.nofailover,
    fitness,
    switchover,
    failover,
    // Parts (the manager) may ask a leader to hand over: decide() weighs it.
    leaderProblem: s.role === 'leader' ? await observeLeaderProblem(s.deps.participants, () => turnMembers(s), s.deps.config.nodeName) : null,
  };
}

/**
 * A `?consistent` read of the lock; our session on it renews the lease from when the request was sent.
 * `timeoutMs` defaults to one call's budget (a turn must not stall); the keeper passes the lease itself.
 */
export async function confirmLock(s: LoopState, timeoutMs?: number): Promise<void> {
  const sentAt = s.clock.now();
  const lock = await s.deps.store.readLock(true, timeoutMs);
  noteLock(s, lock.session, lock.leader);
  if (s.session !== null && lock.session === s.session) s.lease.confirm(sentAt);
}

/** Standbys block on the lock key, so a release wakes them within milliseconds rather than a turn later. */
async function watchLock(s: LoopState): Promise<void> {
  const waitSeconds = s.retryAcquireSoon || s.turnAgainSoon ? 0 : s.deps.config.timings.loopWait;
  s.turnAgainSoon = false;
  const lock = waitSeconds === 0 ? await s.deps.store.readLock(false) : await s.deps.store.watchLock(s.lockIndex, waitSeconds);
  // Consul's rule for blocking queries: an index that goes backwards (a restored snapshot) resets to 0.
  s.lockIndex = lock.index < s.lockIndex ? 0 : lock.index;
  noteLock(s, lock.session, lock.leader);
}

function noteLock(s: LoopState, holder: string | null, leader: LeaderRecord | null): void {
  s.lockHolder = holder;
  s.lockValue = holder === null ? null : leader;
  // Someone holds the lock: the race is over, go back to waiting on the key instead of polling it.
  if (holder !== null) s.retryAcquireSoon = false;
  if (leader) {
    s.lastLeader = leader;
    if (leader.term > s.term) setTerm(s, leader.term);
  }
}

async function currentSwitchover(s: LoopState, request: SwitchoverRequest | null): Promise<SwitchoverRequest | null> {
  if (!request) return null;
  const lapse = switchoverLapse(request, s.lockHolder === null, Date.now());
  if (lapse) {
    s.log.warn(lapse, { ...request });
    await s.deps.store.writeSwitchover(null).catch(() => undefined);
    return null;
  }
  return request;
}

/** The manual failover standing while the lock is free; one that lapsed is deleted (requests.ts). */
async function currentFailover(s: LoopState, request: FailoverRequest | null): Promise<FailoverRequest | null> {
  if (!request) return null;
  const lapse = failoverLapse(request, s.role === 'leader', Date.now());
  if (lapse) {
    s.log.warn(lapse, { ...request });
    await s.deps.store.writeFailover(null).catch(() => undefined);
    return null;
  }
  return request;
}

async function observeFitness(s: LoopState, switchover: SwitchoverRequest | null, failover: FailoverRequest | null): Promise<Fitness> {
  let ctx: TurnContext;
  try {
    ctx = await turnContext(s, new AbortController().signal, switchover, failover);
  } catch (e) {
    // Fail closed: without the members' positions nobody can tell whether this node is behind.
    return { fit: false, reason: `cannot read the cluster's members: ${errorMessage(e)}` };
  }
  for (const p of s.deps.participants) {
    if (!p.fitness) continue;
    const f = await p.fitness(ctx).catch((e): Fitness => ({ fit: false, reason: `${p.name} fitness check failed: ${errorMessage(e)}` }));
    if (!f.fit) return f;
  }
  return { fit: true, reason: 'fit' };
}

/** The members as this turn's observation read them; read afresh when that read failed. */
function turnMembers(s: LoopState): Promise<MemberEntry[]> {
  return s.turnMembers ? Promise.resolve(s.turnMembers) : s.deps.store.listMembers();
}

/**
 * What the parts see this turn. Throws when the members cannot be read: an empty list would read as "no
 * standbys" (slots dropped, nobody to compare with), so a part never acts on a guess.
 */
export async function turnContext(s: LoopState, signal: AbortSignal, switchover: SwitchoverRequest | null = null, failover: FailoverRequest | null = null): Promise<TurnContext> {
  const members = await turnMembers(s);
  return {
    term: s.term,
    leader: s.lastLeader,
    members,
    // The operator named this node (switchover, or manual failover): other standbys do not outrank it.
    switchoverTarget: switchover?.to === s.deps.config.nodeName || failover?.to === s.deps.config.nodeName,
    clusterEverLed: () => s.deps.store.everLed(),
    synchronousMode: s.dynamicConfig.synchronousMode,
    synchronousModeStrict: s.dynamicConfig.synchronousModeStrict,
    signal,
    log: s.log,
    // A part's check outlives a few missed turns but turns critical soon after the sidecar dies.
    report: (activity) => {
      if (activity !== s.activity) s.log.info(activity, { part: 'activity' });
      s.activity = activity;
    },
    turnAgainSoon: () => {
      s.turnAgainSoon = true;
    },
    reportCheck: (id, name, status, output) =>
      s.deps.store.reportCheck(id, name, status, output, s.deps.config.timings.checkTtl * 3).catch((e) => {
        s.log.debug('check update failed', { id, error: errorMessage(e) });
      }),
  };
}
