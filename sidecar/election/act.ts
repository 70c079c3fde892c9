// Act: carries out the action decide() chose (create a session, acquire, promote, stay leader, step down,
// hand over, follow), with each safety-relevant step argued where it is taken.
import type { SwitchoverRequest } from '../consul/records.js';
import { errorMessage } from '../errors.js';
import type { AcquireReason, Action, Observation } from './decide.js';
import type { DemoteReason, TurnContext } from './participant.js';
import { leadershipReason } from './requests.js';
import { turnContext } from './observe.js';
import { dropSession, leaderRecord, reapSessions, sessionAlive, setRole, setTerm, type LoopState } from './state.js';

/** Between attempts to stop Postgres when a demotion failed: the lock is kept meanwhile (see stepDown). */
const DEMOTE_RETRY_MS = 1_000;

export async function act(s: LoopState, action: Action, o: Observation): Promise<void> {
  switch (action.kind) {
    case 'create_session':
      s.session = await s.deps.store.createSession(s.deps.config.timings.lockDelay);
      s.renewed = { session: s.session, at: s.clock.now() }; // a new session's TTL starts at its creation
      s.deps.guard?.session(s.session); // write guard: releases this session's lock if the sidecar dies
      s.log.info('created Consul session', { session: s.session });
      if (s.role === 'starting' || s.role === 'demoted') setRole(s, 'standby');
      s.turnAgainSoon = true; // a standby now: follow the leader at once, not after the lock's watch times out
      return;
    case 'acquire':
      return tryAcquire(s, action.why, o);
    case 'finish_promotion':
      return becomeLeader(s, o.switchover ? 'switchover' : !o.lastLeader ? 'start' : o.lastLeader.name === o.node ? 'resume' : 'failover', o);
    case 'stay_leader':
      if (!s.leadership) return; // stepped down meanwhile: nothing a leader does may run now
      return eachPart(s, 'leaderTurn', await turnContext(s, s.leadership.signal));
    case 'clear_stale_lock':
      return clearStaleLock(s, action.session);
    case 'step_down':
      return stepDown(s, action.why, s.status);
    case 'hand_over': {
      // A hand-over a part asked for is published as a switchover, so this node waits and a standby takes over.
      // It is a planned switchover in every other way: writes stop (fast shutdown) before the lock is released.
      const request = o.switchover ?? { from: o.node, to: action.to, requestedAt: new Date().toISOString() };
      if (!o.switchover) await s.deps.store.writeSwitchover(request);
      return handOver(s, action.to, request);
    }
    case 'follow':
      if (s.role !== 'standby') setRole(s, 'standby');
      return eachPart(s, 'followerTurn', await turnContext(s, new AbortController().signal));
    case 'wait':
      if (s.role === 'starting' && s.session) setRole(s, 'standby');
      return;
  }
}

async function eachPart(s: LoopState, step: 'leaderTurn' | 'followerTurn', ctx: TurnContext): Promise<void> {
  for (const p of s.deps.participants) {
    await p[step]?.(ctx).catch((e) => s.log.warn(`${p.name} ${step} failed`, { error: errorMessage(e), code: (e as { code?: string }).code }));
  }
}

/**
 * The lock is held by a session of this node that is not its live one (an earlier process's, or one this
 * process lost track of). Destroying it is safe: no Postgres of ours writes without our live session's
 * lease (the old process's died with it, design.md "Parent death"), and Consul's lock-delay keeps the lock
 * from everyone for `lockDelay` after the destroy.
 */
async function clearStaleLock(s: LoopState, session: string): Promise<void> {
  s.log.warn('the lock is held by a stale session of this node: destroying it', { session });
  s.staleSessions.add(session);
  await reapSessions(s);
}

async function tryAcquire(s: LoopState, why: AcquireReason, o: Observation): Promise<void> {
  if (!s.session) return;
  const sentAt = s.clock.now();
  const acquired = await s.deps.store.acquireLock(s.session, leaderRecord(s, s.term));
  if (!acquired) {
    // Someone was faster, or the lock-delay of the dead leader's session is still in force.
    s.retryAcquireSoon = true;
    return;
  }
  s.retryAcquireSoon = false;
  s.lease.confirm(sentAt); // the acquire was a raft write that saw our session: a confirmation
  await becomeLeader(s, why, o);
}

/** Holding the lock: raise the term, record history, let every part promote; only then are we leader. */
async function becomeLeader(s: LoopState, why: AcquireReason, o: Observation): Promise<void> {
  const { store } = s.deps;
  // A node promoting on the lock is a candidate, whatever led here: a fresh acquire, a promotion an earlier
  // turn began, or an acquire that timed out at the client but was applied (a slow raft leader), which the
  // next turn finds held by our session while the role still says standby. So a promotion that fails steps
  // down (stops Postgres, disarms the write guard, gives the lock back); as a standby the step-down would do
  // nothing, and the guard, left armed past its deadline, would go on killing every Postgres this node starts.
  s.lockHolder = s.session;
  if (s.role !== 'candidate') setRole(s, 'candidate');
  s.leadership?.abort();
  const leadership = new AbortController();
  s.leadership = leadership;
  const previous = o.lastLeader?.name;
  try {
    const term = await store.raiseTerm();
    setTerm(s, term);
    const record = leaderRecord(s, term);
    const sentAt = s.clock.now();
    if (!s.session || !(await store.acquireLock(s.session, record))) throw new Error('lost the lock while raising the term');
    // A raft write that found our session on the lock: the lease counts from it, also when this promotion
    // resumes one an earlier turn began (the lock still ours) rather than following a fresh acquire.
    s.lease.confirm(sentAt);
    s.lastLeader = record;
    const reason = leadershipReason(why, previous, o.failover);
    await store.appendHistory({ term, at: record.since, kind: why, leader: record.name, previous, reason });
    const ctx = await turnContext(s, leadership.signal);
    await s.deps.guard?.arm(); // write guard: armed before any part may make Postgres writable
    for (const p of s.deps.participants) {
      if (leadership.signal.aborted) return;
      await p.promote?.(ctx);
    }
    if (leadership.signal.aborted) return;
    if (o.switchover) await store.writeSwitchover(null);
    if (o.failover) await store.writeFailover(null);
    setRole(s, 'leader');
    s.lastFailure = null;
    s.deps.metrics.leaderChanges.inc();
    s.status = `promoted self to leader by acquiring the session lock (term ${term})`;
    s.activity = null;
    s.log.info(s.status, { why, previous });
  } catch (e) {
    if (leadership.signal.aborted) return;
    const code = (e as { code?: string }).code;
    s.log.error('promotion failed; stepping down', { error: errorMessage(e), code });
    s.lastFailure = { code: code ?? 'internal_error', message: errorMessage(e), at: new Date().toISOString() };
    await stepDown(s, 'promotion_failed', `promotion failed: ${errorMessage(e)}`);
  }
}

/**
 * Stops writes first, then gives the lock back. Safe to call from the lease timer at any moment, and twice:
 * the role changes synchronously, so /leader answers 503 before any await.
 */
export async function stepDown(s: LoopState, reason: DemoteReason, status: string, beforeRelease?: () => Promise<void>): Promise<void> {
  if (s.role !== 'leader' && s.role !== 'candidate') return;
  const wasLeader = s.role === 'leader';
  s.leadership?.abort();
  s.leadership = null;
  setRole(s, 'demoted');
  s.status = status;
  s.activity = null;
  // A planned stop (switchover, shutdown) still holds the lock: the keeper goes on confirming the lease, and
  // feeding the write guard, until Postgres has stopped, so a fast shutdown that sends the standbys every
  // WAL record is not cut short. A lost lease or lock ends the lease now.
  const planned = reason === 'switchover' || reason === 'shutdown';
  s.plannedStop = planned;
  if (!planned) s.lease.clear();
  s.log.warn('stepping down', { reason });
  const started = s.clock.now();
  // The lock is given back only once every part proved it stopped taking writes. Until then it stays ours
  // (released, or let lapse, another node could promote beside a Postgres that still writes), and so does
  // the session: the keeper keeps its check passing, and nobody else takes over meanwhile.
  while (!(await demoteParts(s, reason))) {
    s.status = 'stepping down: cannot prove postgres stopped taking writes; keeping the lock and retrying';
    await s.clock.sleep(DEMOTE_RETRY_MS);
  }
  s.log.info('stopped taking writes', { reason, tookMs: Math.round(s.clock.now() - started) });
  s.plannedStop = false;
  s.lease.clear();
  await s.deps.guard?.disarm(); // write guard: disarmed only now that Postgres has stopped
  if (wasLeader) s.deps.metrics.leaderChanges.inc();
  await beforeRelease?.();
  let releaseUnknown = false;
  if (s.session && s.lastLeader) {
    // Releasing (rather than letting the session die) spares the others the lock-delay: writes have stopped.
    releaseUnknown = await s.deps.store.releaseLock(s.session, s.lastLeader).then(
      () => false,
      (e) => {
        s.log.warn('lock release failed', { error: errorMessage(e) });
        return true;
      },
    );
  }
  s.lockHolder = null;
  // A release whose answer was lost (a timeout during a raft election) may still be applied later, after a
  // re-acquire with the same session re-confirmed the lock, and free it with no lock-delay beside the
  // Postgres that promotion started: two writers (the fault suite's partition-leader, issue 10). So that
  // session never leads again. A fresh one is created next turn; the old one is destroyed once Consul
  // answers, and a destroy (unlike a release) gives the others the lock-delay.
  if (releaseUnknown || ((reason === 'lease_lost' || reason === 'lock_lost') && (await sessionAlive(s)) !== true)) {
    // Or: the session is dead, about to die, or Consul cannot say.
    dropSession(s);
  }
  if (!s.stopping) setRole(s, 'standby');
}

/** Every part's demote; false when one failed (its error is logged). */
async function demoteParts(s: LoopState, reason: DemoteReason): Promise<boolean> {
  const results = await Promise.all(
    s.deps.participants.map((p) =>
      (p.demote?.(reason, s.log) ?? Promise.resolve()).then(
        () => true,
        (e) => {
          s.log.error(`${p.name} demote failed`, { error: errorMessage(e), code: (e as { code?: string }).code });
          return false;
        },
      ),
    ),
  );
  return results.every(Boolean);
}

/** Planned switchover: stop writes, let the parts hand over (the target replays everything), release. */
async function handOver(s: LoopState, to: string | undefined, request: SwitchoverRequest): Promise<void> {
  s.log.info('switchover: handing the lock over', { to: to ?? 'best standby' });
  // Stamped before the lock is released (the target deletes the request once it leads): from then on the
  // target has SWITCHOVER_TARGET_GRACE_MS to take the lock before any fit node may.
  const stamp = () =>
    s.deps.store.writeSwitchover({ ...request, handedOverAt: new Date().toISOString() }).catch((e) => {
      s.log.warn('switchover record update failed', { error: errorMessage(e) });
    });
  await stepDown(s, 'switchover', `switchover: handed over to ${to ?? 'the best standby'}`, stamp);
}
