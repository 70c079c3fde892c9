import type { MemberEntry } from '../../sidecar/consul/store.js';
import { peerIsAhead, peersToCompare, synchronousModeUnfitReason, type RankingContext } from '../../sidecar/postgres/ranking.js';

const member = (name: string, alive = true, nofailover = false): MemberEntry => ({
  record: { name, address: `127.0.5.${10 + Number(name.slice(1))}`, apiUrl: '', role: 'standby', state: '', termSeen: 1, nofailover, updatedAt: '' },
  alive,
});
const members = [member('n1'), member('n2'), member('n3'), member('n4', false)];
const async3: RankingContext = { self: 'n2', lastLeader: 'n1', synchronousMode: false, leaderSync: null };
const names = (ctx: RankingContext, list = members) => peersToCompare(list, ctx).map((p) => `${p.name}${p.mustCompare ? '!' : ''}`);

describe('postgres ranking: which standby takes over', () => {
  describe('peerIsAhead', () => {
    const at = (name: string, wal: number, replayed: number) => ({ name, position: { wal, replayed } });
    test('most WAL received wins, whatever was replayed', () => {
      expect(peerIsAhead(at('n3', 200, 0), at('n2', 100, 100))).toBe(true);
      expect(peerIsAhead(at('n3', 100, 100), at('n2', 200, 0))).toBe(false);
    });
    test('equal WAL: most replayed wins (it promotes sooner)', () => {
      expect(peerIsAhead(at('n3', 100, 90), at('n2', 100, 80))).toBe(true);
      expect(peerIsAhead(at('n3', 100, 80), at('n2', 100, 90))).toBe(false);
    });
    test('a tie goes to the lower name, so exactly one of two equal standbys runs', () => {
      expect(peerIsAhead(at('n1', 100, 100), at('n2', 100, 100))).toBe(true);
      expect(peerIsAhead(at('n2', 100, 100), at('n1', 100, 100))).toBe(false);
    });
  });

  describe('peersToCompare', () => {
    test('asynchronous: live members but this node and the last leader', () => {
      expect(names(async3)).toEqual(['n3']);
    });
    test('a nofailover peer never promotes, so it is not deferred to', () => {
      expect(names(async3, [member('n1'), member('n2'), member('n3', true, true)])).toEqual([]);
    });
    test('synchronous: listed standbys must be compared, even with their session gone; unlisted ones are skipped', () => {
      expect(names({ ...async3, synchronousMode: true, leaderSync: ['n2', 'n4'] })).toEqual(['n4!']);
      expect(names({ ...async3, synchronousMode: true, leaderSync: ['n2', 'n3'] })).toEqual(['n3!']);
    });
    test('synchronous without a published list: every live peer, none of them mandatory', () => {
      expect(names({ ...async3, synchronousMode: true, leaderSync: null })).toEqual(['n3']);
    });
  });

  describe('synchronousModeUnfitReason', () => {
    const sync: RankingContext = { ...async3, synchronousMode: true, leaderSync: ['n3'] };
    test('asynchronous mode, no last leader, or this node was the leader: no objection', () => {
      expect(synchronousModeUnfitReason(async3, false)).toBeNull();
      expect(synchronousModeUnfitReason({ ...sync, lastLeader: undefined }, false)).toBeNull();
      expect(synchronousModeUnfitReason({ ...sync, lastLeader: 'n2' }, false)).toBeNull();
    });
    test("fails closed without the last leader's record", () => {
      expect(synchronousModeUnfitReason(sync, false)).toBe("synchronous mode: the last leader n1's synchronous standbys are unknown");
    });
    test('a standby the last leader did not list may lack acknowledged commits', () => {
      expect(synchronousModeUnfitReason(sync, true)).toBe('synchronous mode: I was not a synchronous standby of the last leader');
      expect(synchronousModeUnfitReason({ ...sync, leaderSync: ['n2'] }, true)).toBeNull();
    });
  });
});
