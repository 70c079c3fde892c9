import { describe, expect, it } from '@jest/globals';
import { FAILOVER_TIMEOUT_MS, SWITCHOVER_TARGET_GRACE_MS, SWITCHOVER_TIMEOUT_MS, failoverLapse, leadershipReason, switchoverLapse } from '../../sidecar/election/requests.js';

const t0 = Date.parse('2026-11-23T18:00:00.000Z');
const at = (ms: number): string => new Date(t0 + ms).toISOString();

describe('switchoverLapse', () => {
  const request = { from: 'n1', to: 'n2', requestedAt: at(0) };

  it('stands until its timeout, then lapses', () => {
    expect(switchoverLapse(request, true, t0 + SWITCHOVER_TIMEOUT_MS)).toBeNull();
    expect(switchoverLapse(request, true, t0 + SWITCHOVER_TIMEOUT_MS + 1)).toMatch(/did not complete in time/);
  });

  it('after the hand-over, the target has the grace period while the lock is free', () => {
    const handedOver = { ...request, handedOverAt: at(1_000) };
    expect(switchoverLapse(handedOver, true, t0 + 1_000 + SWITCHOVER_TARGET_GRACE_MS)).toBeNull();
    expect(switchoverLapse(handedOver, true, t0 + 1_001 + SWITCHOVER_TARGET_GRACE_MS)).toMatch(/any fit node may now/);
  });

  it('a held lock (the target took it, or the old leader still releases) keeps the grace from lapsing', () => {
    const handedOver = { ...request, handedOverAt: at(1_000) };
    expect(switchoverLapse(handedOver, false, t0 + 10_000)).toBeNull();
  });
});

describe('failoverLapse', () => {
  const request = { to: 'n3', force: false, requestedAt: at(0), behindBytes: 0 };

  it('a leader drops any request it sees', () => {
    expect(failoverLapse(request, true, t0)).toMatch(/a leader holds the lock/);
  });

  it('stands for its timeout while nobody leads', () => {
    expect(failoverLapse(request, false, t0 + FAILOVER_TIMEOUT_MS)).toBeNull();
    expect(failoverLapse(request, false, t0 + FAILOVER_TIMEOUT_MS + 1)).toMatch(/did not complete in time/);
  });
});

describe('leadershipReason', () => {
  it('names how the term began', () => {
    expect(leadershipReason('start', undefined, null)).toBe('cluster started');
    expect(leadershipReason('resume', 'n1', null)).toBe('the leader took its lock back after a restart');
    expect(leadershipReason('switchover', 'n1', null)).toBe('planned switchover from n1');
    expect(leadershipReason('failover', 'n1', null)).toBe('leader n1 lost its lock');
    expect(leadershipReason('failover', undefined, undefined)).toBe('leader unknown lost its lock');
  });

  it('a manual failover says so, and a forced one by how much the target was behind', () => {
    const failover = { to: 'n3', force: true, requestedAt: at(0), behindBytes: 3356216 };
    expect(leadershipReason('failover', 'n2', failover)).toBe('manual failover to n3 by an operator (forced, 3356216 bytes behind the last known primary position)');
    expect(leadershipReason('failover', 'n2', { ...failover, behindBytes: null })).toMatch(/an unknown number of bytes behind/);
    expect(leadershipReason('failover', 'n2', { ...failover, force: false })).toBe('manual failover to n3 by an operator');
  });
});
