import type { MemberEntry } from '../../sidecar/consul/store.js';
import { acknowledgers, filesPeers, positionAfter } from '../../sidecar/mirror/fitness.js';

const member = (name: string, alive = true, nofailover = false): MemberEntry => ({
  record: { name, address: '', apiUrl: `http://${name}:8008`, role: 'standby', state: '', termSeen: 1, nofailover, updatedAt: '' },
  alive,
});
const members = [member('n1'), member('n2'), member('n3'), member('n4', false), member('n5', true, true)];
const at = (term: number, epoch: string, seq: number) => ({ term, epoch, seq });

describe('synchronous files: who acknowledges, whom a candidate compares with', () => {
  test('a later term, then a later epoch, then a higher sequence is ahead; an equal position is not', () => {
    expect(positionAfter(at(3, 'a', 1), at(2, 'z', 900))).toBe(true);
    expect(positionAfter(at(2, 'z', 900), at(3, 'a', 1))).toBe(false);
    // Epochs are base-36 milliseconds then a random suffix: a longer one is later, else the string order.
    expect(positionAfter(at(3, 'mieq9z00-aa', 5), at(3, 'mieq9yzz-ff', 700))).toBe(true);
    expect(positionAfter(at(3, '10000000-aa', 5), at(3, 'zzzzzzz-ff', 700))).toBe(true);
    expect(positionAfter(at(3, 'e', 101), at(3, 'e', 100))).toBe(true);
    expect(positionAfter(at(3, 'e', 100), at(3, 'e', 100))).toBe(false);
    expect(positionAfter(at(0, '', 0), at(0, '', 0))).toBe(false);
  });

  test('asynchronous mode waits for nobody; with Postgres only the leader\'s listed standbys acknowledge', () => {
    expect(acknowledgers(false, true, ['n2'])).toBeNull();
    expect(acknowledgers(true, true, null)).toBeNull(); // Postgres fell back to asynchronous
    const listed = acknowledgers(true, true, ['n2', 'node_3']);
    expect(['n2', 'n3', 'node-3'].map((n) => listed?.(n))).toEqual([true, false, true]);
    expect(acknowledgers(true, false, undefined)?.('n3')).toBe(true);
  });

  test('with a list: every listed standby but self and the last leader, alive or not; without: the live ones', () => {
    const names = (list: unknown) => filesPeers(members, 'n2', 'n1', list).map((p) => `${p.name}${p.mustRead ? '!' : ''}`);
    expect(names(['n2', 'n3', 'n4'])).toEqual(['n3!', 'n4!']);
    expect(names(null)).toEqual(['n3!']); // n4 is down, n5 is nofailover
    expect(names(['n5'])).toEqual([]); // a nofailover standby never leads, so it is never deferred to
  });
});
