import type { MemberEntry } from '../../sidecar/consul/store.js';
import { canTakeOver, observeLeaderProblem } from '../../sidecar/election/handover.js';
import type { Participant } from '../../sidecar/election/participant.js';

const member = (patch: Record<string, unknown>, alive = true): MemberEntry => ({
  alive,
  record: { name: 'n2', address: 'a', apiUrl: 'u', role: 'standby', state: 's', termSeen: 1, nofailover: false, updatedAt: 't', ...patch },
});

describe('canTakeOver: what a leader reads in a member record before handing over', () => {
  test('a live standby without Postgres fields can', () => {
    expect(canTakeOver(member({}), 'n1')).toBe(true);
  });
  test('a dead, leading, nofailover or self member cannot', () => {
    expect(canTakeOver(member({}, false), 'n1')).toBe(false);
    expect(canTakeOver(member({ role: 'leader' }), 'n1')).toBe(false);
    expect(canTakeOver(member({ nofailover: true }), 'n1')).toBe(false);
    expect(canTakeOver(member({}), 'n2')).toBe(false);
  });
  test('with Postgres it must be a streaming standby', () => {
    expect(canTakeOver(member({ pgRole: 'standby', streaming: true }), 'n1')).toBe(true);
    expect(canTakeOver(member({ pgRole: 'standby', streaming: false }), 'n1')).toBe(false);
    expect(canTakeOver(member({ pgRole: 'stopped', streaming: false }), 'n1')).toBe(false);
  });
  test('a member whose manager is unhealthy or whose hook failed cannot', () => {
    expect(canTakeOver(member({ manager: { state: 'healthy' } }), 'n1')).toBe(true);
    expect(canTakeOver(member({ manager: { state: 'unhealthy' } }), 'n1')).toBe(false);
    expect(canTakeOver(member({ manager: { state: 'standby hook failed' } }), 'n1')).toBe(false);
  });
});

describe('observeLeaderProblem', () => {
  const part = (p: { problem: string; handOver: boolean } | null): Participant => ({ name: 'x', leaderProblem: () => p });
  const noMembers = () => Promise.reject(new Error('must not be read'));

  test('no problem: null, and the members are not read', async () => {
    expect(await observeLeaderProblem([{ name: 'pg' }, part(null)], noMembers, 'n1')).toBeNull();
  });
  test('a problem without hand-over does not read the members', async () => {
    expect(await observeLeaderProblem([part({ problem: 'p', handOver: false })], noMembers, 'n1')).toEqual({ problem: 'p', handOver: false, standbyAvailable: false });
  });
  test('a hand-over request says whether a standby can take over', async () => {
    const ask = [part({ problem: 'p', handOver: true })];
    expect(await observeLeaderProblem(ask, async () => [member({ name: 'n1', role: 'leader' }), member({})], 'n1')).toMatchObject({ standbyAvailable: true });
    expect(await observeLeaderProblem(ask, async () => [member({}, false)], 'n1')).toMatchObject({ standbyAvailable: false });
    expect(await observeLeaderProblem(ask, noMembers, 'n1')).toMatchObject({ standbyAvailable: false });
  });
});
