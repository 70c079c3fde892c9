import { decide, type Observation } from '../../sidecar/election/decide.js';

const leader = { name: 'n1', apiUrl: 'http://127.0.0.11:8008', term: 3, since: '2026-01-01T00:00:00Z' };
const base: Observation = {
  node: 'n2',
  role: 'standby',
  session: 's2',
  consulReachable: true,
  lockHolder: null,
  lastLeader: leader,
  leaseValid: false,
  paused: false,
  nofailover: false,
  fitness: { fit: true, reason: 'fit' },
  switchover: null,
};
const o = (patch: Partial<Observation>): Observation => ({ ...base, ...patch });

describe('decide: a leader or candidate', () => {
  const asLeader = { role: 'leader' as const, session: 's1', node: 'n1', lockHolder: 's1', leaseValid: true };

  test('keeps leading with its lock and a valid lease', () => {
    expect(decide(o(asLeader)).action).toEqual({ kind: 'stay_leader' });
  });
  test('steps down when the lease lapsed, even with Consul unreachable', () => {
    expect(decide(o({ ...asLeader, leaseValid: false, consulReachable: false })).action).toEqual({ kind: 'step_down', why: 'lease_lost' });
  });
  test('steps down when another session holds the lock', () => {
    expect(decide(o({ ...asLeader, lockHolder: 's9' })).action).toEqual({ kind: 'step_down', why: 'lock_lost' });
    expect(decide(o({ ...asLeader, lockHolder: null })).action).toEqual({ kind: 'step_down', why: 'lock_lost' });
  });
  test('a lease check wins over a paused cluster', () => {
    expect(decide(o({ ...asLeader, paused: true, leaseValid: false })).action.kind).toBe('step_down');
    expect(decide(o({ ...asLeader, paused: true })).status).toMatch(/paused/);
  });
  test('with Consul unreachable but a valid lease it stays (the lease timer ends it)', () => {
    expect(decide(o({ ...asLeader, consulReachable: false })).action).toEqual({ kind: 'stay_leader' });
  });
  test('hands over on a switchover from itself', () => {
    const switchover = { from: 'n1', to: 'n3', requestedAt: 'x' };
    expect(decide(o({ ...asLeader, switchover })).action).toEqual({ kind: 'hand_over', to: 'n3' });
    expect(decide(o({ ...asLeader, switchover: { ...switchover, to: undefined } })).action).toEqual({ kind: 'hand_over', to: undefined });
  });
  test('ignores a switchover naming another leader or itself as target', () => {
    expect(decide(o({ ...asLeader, switchover: { from: 'n7', to: 'n3', requestedAt: 'x' } })).action.kind).toBe('stay_leader');
    expect(decide(o({ ...asLeader, switchover: { from: 'n1', to: 'n1', requestedAt: 'x' } })).action.kind).toBe('stay_leader');
  });
  test('a candidate holding the lock finishes its promotion', () => {
    expect(decide(o({ ...asLeader, role: 'candidate' })).action).toEqual({ kind: 'finish_promotion' });
  });
});

describe('decide: a node stepping down (demoted)', () => {
  test('waits, even while the lock still names its session (its release may be in flight)', () => {
    expect(decide(o({ role: 'demoted', session: 's2', lockHolder: 's2' })).action).toEqual({ kind: 'wait' });
    expect(decide(o({ role: 'demoted', session: 's2', lockHolder: null })).action).toEqual({ kind: 'wait' });
    expect(decide(o({ role: 'demoted', session: null })).action).toEqual({ kind: 'wait' });
  });
});

describe('decide: a standby', () => {
  test('waits while Consul is unreachable', () => {
    expect(decide(o({ consulReachable: false })).action).toEqual({ kind: 'wait' });
  });
  test('creates a session when it has none', () => {
    expect(decide(o({ session: null })).action).toEqual({ kind: 'create_session' });
  });
  test('follows the leader holding the lock', () => {
    expect(decide(o({ lockHolder: 's1' })).action).toEqual({ kind: 'follow', leader });
  });
  test('tries the lock when it is free and the node is fit', () => {
    expect(decide(o({})).action).toEqual({ kind: 'acquire', why: 'failover' });
    expect(decide(o({ lastLeader: null })).action).toEqual({ kind: 'acquire', why: 'start' });
  });
  test('while paused, only the last leader itself (restarted) takes the lock back', () => {
    expect(decide(o({ node: 'n1', paused: true })).action).toEqual({ kind: 'acquire', why: 'resume' });
    expect(decide(o({ node: 'n1' })).action).toEqual({ kind: 'acquire', why: 'resume' });
  });
  test('never tries while paused, tagged nofailover or unfit', () => {
    expect(decide(o({ paused: true })).action.kind).toBe('wait');
    expect(decide(o({ nofailover: true })).action.kind).toBe('wait');
    const d = decide(o({ fitness: { fit: false, reason: 'n3 is ahead' } }));
    expect(d.action.kind).toBe('wait');
    expect(d.status).toContain('n3 is ahead');
  });
  test('never tries while Consul denies its alive check, not even as the target of a switchover or a forced failover', () => {
    const denied = 'Consul alive check pass denied (HTTP 403: ACL not found)';
    const d = decide(o({ aliveCheckDenied: denied }));
    expect(d).toEqual({ action: { kind: 'wait' }, status: `no leader, but Consul denies my alive check, so my session would end: ${denied}` });
    expect(decide(o({ aliveCheckDenied: denied, switchover: { from: 'n1', to: 'n2', requestedAt: 'x' } })).action.kind).toBe('wait');
    expect(decide(o({ aliveCheckDenied: denied, failover: { to: 'n2', force: true, requestedAt: 'x', behindBytes: null } })).action.kind).toBe('wait');
    expect(decide(o({ aliveCheckDenied: null })).action).toEqual({ kind: 'acquire', why: 'failover' });
  });
  test('during a switchover only the target tries; without a target, anyone but the old leader', () => {
    const to3 = { from: 'n1', to: 'n3', requestedAt: 'x' };
    expect(decide(o({ switchover: to3 })).action.kind).toBe('wait');
    expect(decide(o({ node: 'n3', switchover: to3 })).action).toEqual({ kind: 'acquire', why: 'switchover' });
    const anyone = { from: 'n1', requestedAt: 'x' };
    expect(decide(o({ switchover: anyone })).action).toEqual({ kind: 'acquire', why: 'switchover' });
    expect(decide(o({ node: 'n1', switchover: anyone })).action.kind).toBe('wait');
  });
  test('a standby that holds the lock (acquired, promotion interrupted) finishes promotion', () => {
    expect(decide(o({ lockHolder: 's2' })).action).toEqual({ kind: 'finish_promotion' });
  });
});

describe('decide: a lock held by a stale session of this node', () => {
  test('is cleared by this node (an earlier process of it, or a session it lost track of)', () => {
    const mine = { ...leader, name: 'n2' };
    expect(decide(o({ lockHolder: 'old-s2', lastLeader: mine })).action).toEqual({ kind: 'clear_stale_lock', session: 'old-s2' });
  });
  test('is not touched when it names another node, or when it is this session', () => {
    expect(decide(o({ lockHolder: 's1' })).action.kind).toBe('follow');
    expect(decide(o({ lockHolder: 's2', lastLeader: { ...leader, name: 'n2' } })).action.kind).toBe('finish_promotion');
  });
  test('waits for Consul and a session of its own first', () => {
    const mine = { ...leader, name: 'n2' };
    expect(decide(o({ lockHolder: 'old-s2', lastLeader: mine, consulReachable: false })).action.kind).toBe('wait');
    expect(decide(o({ lockHolder: 'old-s2', lastLeader: mine, session: null })).action.kind).toBe('create_session');
  });
});

describe('decide: a leader whose part (the manager) reports a problem', () => {
  const asLeader = { role: 'leader' as const, session: 's1', node: 'n1', lockHolder: 's1', leaseValid: true };
  const problem = (handOver: boolean, standbyAvailable: boolean) => ({ problem: 'the leader hook failed 3 times (last: exit code 1)', handOver, standbyAvailable });

  test('hands over to the best standby when asked to and a standby can take over', () => {
    const d = decide(o({ ...asLeader, leaderProblem: problem(true, true) }));
    expect(d.action).toEqual({ kind: 'hand_over', to: undefined });
    expect(d.status).toBe('handing over to the best standby: the leader hook failed 3 times (last: exit code 1)');
  });
  test('keeps leading, saying why, when no standby can take over', () => {
    const d = decide(o({ ...asLeader, leaderProblem: problem(true, false) }));
    expect(d.action).toEqual({ kind: 'stay_leader' });
    expect(d.status).toMatch(/^no action: I am the leader with the lock, but the leader hook failed .*; no standby can take over$/);
  });
  test('keeps leading in a paused cluster', () => {
    const d = decide(o({ ...asLeader, paused: true, leaderProblem: problem(true, true) }));
    expect(d.action).toEqual({ kind: 'stay_leader' });
    expect(d.status).toMatch(/paused, so no hand-over/);
  });
  test('a problem that does not ask for a hand-over only shows in the status line', () => {
    const d = decide(o({ ...asLeader, leaderProblem: { problem: 'the leader hook is running', handOver: false, standbyAvailable: true } }));
    expect(d).toEqual({ action: { kind: 'stay_leader' }, status: 'no action: I am the leader with the lock, but the leader hook is running' });
  });
  test('a lapsed lease, a lost lock and a requested switchover come first', () => {
    const leaderProblem = problem(true, true);
    expect(decide(o({ ...asLeader, leaseValid: false, leaderProblem })).action).toEqual({ kind: 'step_down', why: 'lease_lost' });
    expect(decide(o({ ...asLeader, lockHolder: 's9', leaderProblem })).action).toEqual({ kind: 'step_down', why: 'lock_lost' });
    const switchover = { from: 'n1', to: 'n3', requestedAt: 'x' };
    expect(decide(o({ ...asLeader, switchover, leaderProblem })).action).toEqual({ kind: 'hand_over', to: 'n3' });
  });
  test('a standby ignores the field', () => {
    expect(decide(o({ lockHolder: 's1', leaderProblem: problem(true, true) })).action.kind).toBe('follow');
  });
});

describe('decide: a manual failover (hactl cluster failover --to N)', () => {
  const toN2 = { to: 'n2', force: false, requestedAt: 'x', behindBytes: 0 };
  const unfit = { fit: false, reason: '5000000 bytes behind the last known primary position (limit 1048576)' };

  test('the named node takes the free lock, also in a paused cluster', () => {
    expect(decide(o({ failover: toN2 }))).toEqual({ action: { kind: 'acquire', why: 'failover' }, status: 'no leader: manual failover to me requested: trying to take the lock' });
    expect(decide(o({ failover: toN2, paused: true })).action).toEqual({ kind: 'acquire', why: 'failover' });
  });
  test('every other node waits, the last leader too (it must not resume over the choice)', () => {
    const toN3 = { ...toN2, to: 'n3' };
    expect(decide(o({ failover: toN3 }))).toEqual({ action: { kind: 'wait' }, status: 'no leader: manual failover to n3 requested' });
    expect(decide(o({ node: 'n1', failover: toN3 })).action).toEqual({ kind: 'wait' });
    expect(decide(o({ failover: toN3, switchover: { from: 'n1', to: 'n2', requestedAt: 'x' } })).action).toEqual({ kind: 'wait' });
  });
  test('without force an unfit target waits and says why; with force it takes the lock anyway', () => {
    const d = decide(o({ failover: toN2, fitness: unfit }));
    expect(d.action).toEqual({ kind: 'wait' });
    expect(d.status).toBe(`no leader: manual failover to me requested, but I am not fit to take over: ${unfit.reason} (--force takes over anyway)`);
    const forced = decide(o({ failover: { ...toN2, force: true }, fitness: unfit }));
    expect(forced.action).toEqual({ kind: 'acquire', why: 'failover' });
    expect(forced.status).toBe(`no leader: manual failover to me requested: trying to take the lock (forced: ${unfit.reason})`);
  });
  test('force never lifts nofailover, and the lock bar stays: a held lock is followed, a leader keeps leading', () => {
    expect(decide(o({ failover: { ...toN2, force: true }, nofailover: true })).action).toEqual({ kind: 'wait' });
    expect(decide(o({ failover: { ...toN2, force: true }, lockHolder: 's1' })).action.kind).toBe('follow');
    expect(decide(o({ failover: { ...toN2, force: true }, node: 'n1', role: 'leader', session: 's1', lockHolder: 's1', leaseValid: true })).action).toEqual({ kind: 'stay_leader' });
  });
  test('without a session or Consul nothing is tried', () => {
    expect(decide(o({ failover: toN2, session: null })).action).toEqual({ kind: 'create_session' });
    expect(decide(o({ failover: toN2, consulReachable: false })).action).toEqual({ kind: 'wait' });
  });
});
