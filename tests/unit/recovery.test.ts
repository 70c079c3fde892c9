import { httpsFetch } from '../../sidecar/shared/https-fetch.js';
import { describe, expect, it } from '@jest/globals';
import { parseConfig } from '../../sidecar/config.js';
import type { FailoverRequest, LeaderRecord, MemberRecord } from '../../sidecar/consul/records.js';
import type { ConsulStore, LockState, MemberEntry } from '../../sidecar/consul/store.js';
import type { ReconcileLoop } from '../../sidecar/election/loop.js';
import { createLogger } from '../../sidecar/log.js';
import { Recovery } from '../../sidecar/recovery.js';

/**
 * The refusals of POST /failover (sidecar/recovery.ts) against a store double: each one changes nothing
 * (no failover request is written). Members' APIs are unreachable here, so positions come from their
 * member records. The accepted path (a real promotion) runs in tests/integration/recovery.test.ts.
 */

const config = parseConfig({ nodeName: 'n1', address: '127.0.0.1', clusterAddresses: ['127.0.0.1'], clusterToken: 'unit-test-token-0123456789', dataDir: '/nonexistent' });
const log = createLogger({ node: 'n1' }, 'error');
// Port 9 on loopback: nothing listens, so /health fails at once and the member record's position stands.
const member = (name: string, walPosition: number | null, patch: Partial<MemberRecord> = {}, alive = true): MemberEntry => ({
  record: { name, address: '127.0.0.1', apiUrl: 'http://127.0.0.1:9', role: 'standby', state: 'x', termSeen: 4, nofailover: false, updatedAt: 'x', walPosition, ...patch },
  alive,
});
const lastLeader: LeaderRecord = { name: 'n2', apiUrl: 'http://127.0.0.1:9', term: 4, since: 'x' };

function recovery(lock: Partial<LockState>, members: MemberEntry[]) {
  const written: (FailoverRequest | null)[] = [];
  const store = {
    readLock: () => Promise.resolve({ session: null, leader: lastLeader, index: 1, ...lock }),
    listMembers: () => Promise.resolve(members),
    writeFailover: (r: FailoverRequest | null) => Promise.resolve(void written.push(r)),
  } as unknown as ConsulStore;
  const loop = { poke: () => undefined } as unknown as ReconcileLoop;
  return { written, recovery: new Recovery({ config, store, loop, participants: [], log, isMember: () => true, peers: httpsFetch(undefined) }) };
}

const members = [member('n1', 5_000_000), member('n2', 9_000_000, { role: 'leader' }, false), member('n3', 8_999_000)];

describe('POST /failover refusals', () => {
  it('a leader holds the lock: leader_exists, naming it and pointing to switchover', async () => {
    const { written, recovery: r } = recovery({ session: 's2' }, members);
    await expect(r.failover('n3', true)).rejects.toMatchObject({
      code: 'leader_exists',
      status: 409,
      message: 'n2 leads (term 4): a failover is only for a cluster without a leader; use `hactl cluster switchover --to n3`',
    });
    expect(written).toEqual([]);
  });

  it('an unknown, stopped or nofailover target is refused, also with force', async () => {
    const cases: [MemberEntry[], string, string][] = [
      [members, 'n9', 'unknown_node'],
      [[...members.slice(0, 2), member('n3', 8_999_000, {}, false)], 'n3', 'candidate_not_ready'],
      [[...members.slice(0, 2), member('n3', 8_999_000, { nofailover: true })], 'n3', 'candidate_not_ready'],
    ];
    for (const [list, to, code] of cases) {
      const { written, recovery: r } = recovery({}, list);
      await expect(r.failover(to, true)).rejects.toMatchObject({ code });
      expect(written).toEqual([]);
    }
  });

  it('without force, a target behind the last primary position is refused with the bytes; an unknown position too', async () => {
    const behind = recovery({}, members);
    await expect(behind.recovery.failover('n3', false)).rejects.toMatchObject({
      code: 'candidate_behind',
      status: 409,
      details: { behindBytes: 1000 },
      message: 'n3 is 1000 bytes behind the last known primary position of n2: a failover to it loses the commits in those bytes; --force accepts that',
    });
    const unknown = recovery({}, [members[0]!, members[1]!, member('n3', null)]);
    await expect(unknown.recovery.failover('n3', false)).rejects.toMatchObject({ code: 'candidate_behind' });
    expect([...behind.written, ...unknown.written]).toEqual([]);
  });
});
