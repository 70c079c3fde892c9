import { LIVENESS_STALL_MS, PROBES, probeVerdict, readsSyncList, type ProbeName, type ProbeState } from '../../sidecar/api/probes.js';

const leader: ProbeState = {
  member: true,
  role: 'leader',
  leaderReady: true,
  running: true,
  standbyReady: false,
  lagBytes: null,
  maxReplicaLag: 16 * 1024 * 1024,
  synchronous: false,
  lastTurnAgeMs: 100,
};
const standby: ProbeState = { ...leader, role: 'standby', leaderReady: false, standbyReady: true, lagBytes: 1000 };

/** The probes that answer 200 for a state, in PROBES order. */
const passing = (s: ProbeState, lag?: number): ProbeName[] => PROBES.filter((p) => probeVerdict(p, s, lag).ok);

describe('probeVerdict: Patroni-compatible status codes', () => {
  test('the ready leader: leader/primary/read-write, read-only, health, liveness, readiness', () => {
    expect(passing(leader)).toEqual(['health', 'leader', 'primary', 'master', 'read-write', 'read-only', 'liveness', 'readiness']);
  });

  test('a leader whose lease or Postgres is not ready is not a writer, nor ready', () => {
    expect(passing({ ...leader, leaderReady: false })).toEqual(['health', 'liveness']);
  });

  test('a streaming asynchronous standby within the lag limit', () => {
    expect(passing(standby)).toEqual(['health', 'replica', 'read-only', 'async', 'asynchronous', 'liveness', 'readiness']);
  });

  test('a synchronous standby answers /sync, not /async', () => {
    expect(passing({ ...standby, synchronous: true })).toEqual(['health', 'replica', 'read-only', 'sync', 'synchronous', 'liveness', 'readiness']);
  });

  test('exactly the sync and async probes, under both names, need the leader\'s list', () => {
    expect(PROBES.filter(readsSyncList)).toEqual(['sync', 'synchronous', 'async', 'asynchronous']);
  });

  test('when the leader record cannot be read, neither /sync nor /async passes', () => {
    const s = { ...standby, synchronous: undefined };
    expect([probeVerdict('sync', s), probeVerdict('async', s)]).toEqual([
      { ok: false, why: "the leader's synchronous standby list cannot be read" },
      { ok: false, why: "the leader's synchronous standby list cannot be read" },
    ]);
  });

  test('?lag= overrides maxReplicaLag for every standby probe', () => {
    expect(probeVerdict('replica', standby, 999)).toEqual({ ok: false, why: '1000 bytes behind the leader (limit 999)' });
    expect(passing(standby, 999)).toEqual(['health', 'liveness']);
    expect(probeVerdict('replica', standby, 1000).ok).toBe(true);
    expect(probeVerdict('replica', { ...standby, lagBytes: 2000, maxReplicaLag: 1999 }).ok).toBe(false);
  });

  test('readiness checks the lag only when the probe gives one, as Patroni does', () => {
    const behind = { ...standby, lagBytes: 2000, maxReplicaLag: 1000 };
    expect(probeVerdict('readiness', behind).ok).toBe(true);
    expect(probeVerdict('readiness', behind, 1999)).toEqual({ ok: false, why: '2000 bytes behind the leader (limit 1999)' });
    expect(probeVerdict('readiness', behind, 2000).ok).toBe(true);
  });

  test('unknown lag fails /replica; no lag measured at all (no Postgres) passes it', () => {
    expect(probeVerdict('replica', { ...standby, lagBytes: null })).toEqual({ ok: false, why: 'replication lag unknown' });
    expect(probeVerdict('replica', { ...standby, lagBytes: undefined }).ok).toBe(true);
  });

  test('a standby that does not stream is alive and healthy, but not a replica nor ready', () => {
    expect(passing({ ...standby, standbyReady: false })).toEqual(['health', 'liveness']);
  });

  test('a candidate or demoted node is no replica', () => {
    expect(probeVerdict('replica', { ...standby, role: 'candidate' })).toEqual({ ok: false, why: 'role is candidate, not standby' });
    expect(passing({ ...standby, role: 'demoted' })).toEqual(['health', 'liveness']);
  });

  test('Postgres down: /health 503', () => {
    expect(probeVerdict('health', { ...standby, running: false, standbyReady: false })).toEqual({ ok: false, why: 'postgres is not running' });
  });

  test('liveness: 503 once the loop has not finished a turn for LIVENESS_STALL_MS', () => {
    expect(probeVerdict('liveness', { ...leader, lastTurnAgeMs: LIVENESS_STALL_MS }).ok).toBe(true);
    expect(probeVerdict('liveness', { ...leader, lastTurnAgeMs: LIVENESS_STALL_MS + 1 })).toEqual({ ok: false, why: 'the reconcile loop has not finished a turn for 60 s' });
    expect(probeVerdict('liveness', { ...leader, lastTurnAgeMs: null }).ok).toBe(true);
  });

  test('a node not in a cluster yet is alive, and nothing else', () => {
    expect(passing({ ...leader, member: false, lastTurnAgeMs: null })).toEqual(['liveness']);
  });
});
