import type { FailoverRequest, LeaderRecord, SwitchoverRequest } from '../consul/records.js';

/** The role a node plays; `candidate` holds the lock but has not finished becoming leader. */
export type Role = 'starting' | 'standby' | 'candidate' | 'leader' | 'demoted';

/** Whether this node may take over now, as its parts (Postgres lag, ...) see it. */
export interface Fitness {
  fit: boolean;
  reason: string;
}

/** One turn's view of the world, gathered by the loop. Immutable; the decision reads nothing else. */
export interface Observation {
  node: string;
  role: Role;
  /** Own Consul session; null when there is none (never created, or invalidated). */
  session: string | null;
  /** Whether Consul answered this turn. */
  consulReachable: boolean;
  /** Why Consul denied this node's last alive check pass; null or absent when it went through. */
  aliveCheckDenied?: string | null;
  /** Session holding the lock (null: free) and the last leader written to it. */
  lockHolder: string | null;
  lastLeader: LeaderRecord | null;
  /** For a leader or candidate: its lease is still within `lease` of the last confirmation. */
  leaseValid: boolean;
  paused: boolean;
  nofailover: boolean;
  fitness: Fitness;
  switchover: SwitchoverRequest | null;
  /** An operator's manual failover (`hactl cluster failover`), read while the lock is free. */
  failover?: FailoverRequest | null;
  /** On a leader: what a part reports wrong (its manager failing), and whether a fit standby could take over. */
  leaderProblem?: LeaderProblem | null;
}

/** A part's problem on the leader (sidecar/manager): shown in the status line; `handOver` asks to hand over. */
export interface LeaderProblem {
  problem: string;
  handOver: boolean;
  /** A live standby that may take over exists (see election/handover.ts). */
  standbyAvailable: boolean;
}

/** Why a node takes the lock: the first leader, a failover, a planned switchover, or a leader taking its lock back. */
export type AcquireReason = 'start' | 'failover' | 'switchover' | 'resume';

export type Action =
  | { kind: 'create_session' }
  | { kind: 'stay_leader' }
  | { kind: 'finish_promotion' }
  | { kind: 'step_down'; why: 'lease_lost' | 'lock_lost' }
  | { kind: 'hand_over'; to: string | undefined }
  | { kind: 'acquire'; why: AcquireReason }
  | { kind: 'follow'; leader: LeaderRecord | null }
  | { kind: 'clear_stale_lock'; session: string }
  | { kind: 'wait' };

export interface Decision {
  action: Action;
  /** One line for the log and /cluster saying what the node does and why, Patroni style. */
  status: string;
}

const decision = (action: Action, status: string): Decision => ({ action, status });

/**
 * The one place that decides a node's role. Pure: the same observation always gives the same decision, so
 * every case is unit-tested without processes. Safety first: a leader whose lease lapsed or whose lock is
 * held by another session steps down before anything else is considered.
 */
export function decide(o: Observation): Decision {
  const holdsLock = o.session !== null && o.lockHolder === o.session;
  const leaderName = o.lastLeader?.name ?? 'unknown';

  if (o.role === 'leader' || o.role === 'candidate') {
    if (!o.leaseValid) return decision({ kind: 'step_down', why: 'lease_lost' }, 'stepping down: lease expired without a confirmed lock');
    if (o.consulReachable && !holdsLock) return decision({ kind: 'step_down', why: 'lock_lost' }, 'stepping down: the lock is no longer held by my session');
    if (o.role === 'candidate') return decision({ kind: 'finish_promotion' }, 'promotion in progress: I hold the lock');
    if (o.switchover && o.switchover.from === o.node && o.switchover.to !== o.node) {
      return decision({ kind: 'hand_over', to: o.switchover.to }, `switchover requested to ${o.switchover.to ?? 'the best standby'}: handing over`);
    }
    if (o.leaderProblem) return leaderWithProblem(o.leaderProblem, o.paused);
    return decision({ kind: 'stay_leader' }, o.paused ? 'no action: I am the leader with the lock (cluster paused)' : 'no action: I am the leader with the lock');
  }

  // A step-down is still running (stopping Postgres, giving the lock back): the lock may still name our session
  // while its release is in flight, and a turn that read it as "I hold the lock" must not promote beside that
  // release (it could free the lock, with no lock-delay, after the promotion re-confirmed it).
  if (o.role === 'demoted') return decision({ kind: 'wait' }, 'stepping down');
  if (!o.consulReachable) return decision({ kind: 'wait' }, 'waiting: Consul is unreachable');
  if (o.session === null) return decision({ kind: 'create_session' }, 'creating a Consul session');
  if (holdsLock) return decision({ kind: 'finish_promotion' }, 'promotion in progress: I hold the lock');
  // The lock names this node but is held by another session of ours: an earlier process's, or one this
  // process lost track of. Nobody else can ever release it, so this node clears it.
  if (o.lockHolder !== null && o.lastLeader?.name === o.node) {
    return decision({ kind: 'clear_stale_lock', session: o.lockHolder }, 'the lock is held by a stale session of this node: clearing it');
  }
  if (o.lockHolder !== null) return decision({ kind: 'follow', leader: o.lastLeader }, `following leader ${leaderName}`);

  // The lock is free: someone may take it.
  // Not a node whose agent denies its alive check passes (a Consul server that has just restarted does, for a
  // few seconds): its session ends within checkTtl, and with it a leadership just taken, a second failover.
  if (o.aliveCheckDenied) return decision({ kind: 'wait' }, `no leader, but Consul denies my alive check, so my session would end: ${o.aliveCheckDenied}`);
  if (o.failover) return manualFailover(o, o.failover);
  // Paused means "keep the current leader": the leader itself, restarted (say for an upgrade), takes its lock back.
  if (o.paused && o.lastLeader?.name !== o.node) return decision({ kind: 'wait' }, 'no leader, and the cluster is paused: no automatic failover');
  if (o.nofailover) return decision({ kind: 'wait' }, 'no leader, but this node is tagged nofailover');
  if (o.switchover && (o.switchover.to !== undefined ? o.switchover.to !== o.node : o.switchover.from === o.node)) {
    return decision({ kind: 'wait' }, `no leader: switchover to ${o.switchover.to ?? 'another node'} in progress`);
  }
  if (!o.fitness.fit) return decision({ kind: 'wait' }, `no leader, but I am not fit to take over: ${o.fitness.reason}`);
  const why = o.switchover ? 'switchover' : o.lastLeader ? (o.lastLeader.name === o.node ? 'resume' : 'failover') : 'start';
  return decision({ kind: 'acquire', why }, `no leader: trying to take the lock (${why})`);
}

/**
 * A manual failover names the one node that may take the free lock; every other node waits, the last leader
 * too (it must not resume over the operator's choice). It cannot create a second writer: the target still
 * has to acquire the Consul lock (so the dead leader's session is gone and its lock-delay has run out), and
 * its promotion then raises the term and runs under the same lease and write guard as any other. A paused
 * cluster does not stop it (recovering a paused cluster whose leader died is what it is for). `force` lifts
 * only the fitness bar (rule 5): the commits past the target's position are then lost, which the operator
 * accepted with the number of bytes shown to them.
 */
function manualFailover(o: Observation, f: FailoverRequest): Decision {
  if (f.to !== o.node) return decision({ kind: 'wait' }, `no leader: manual failover to ${f.to} requested`);
  if (o.nofailover) return decision({ kind: 'wait' }, 'no leader: manual failover to me requested, but this node is tagged nofailover');
  if (!f.force && !o.fitness.fit) {
    return decision({ kind: 'wait' }, `no leader: manual failover to me requested, but I am not fit to take over: ${o.fitness.reason} (--force takes over anyway)`);
  }
  const forced = f.force && !o.fitness.fit ? ` (forced: ${o.fitness.reason})` : '';
  return decision({ kind: 'acquire', why: 'failover' }, `no leader: manual failover to me requested: trying to take the lock${forced}`);
}

/**
 * A leader whose part (the manager) is failing hands over only when asked to, a standby can take over, and
 * the cluster is not paused: leading with a broken manager beats having no leader at all.
 */
function leaderWithProblem(p: LeaderProblem, paused: boolean): Decision {
  if (p.handOver && p.standbyAvailable && !paused) return decision({ kind: 'hand_over', to: undefined }, `handing over to the best standby: ${p.problem}`);
  const why = !p.handOver ? '' : paused ? '; the cluster is paused, so no hand-over' : '; no standby can take over';
  return decision({ kind: 'stay_leader' }, `no action: I am the leader with the lock, but ${p.problem}${why}`);
}
