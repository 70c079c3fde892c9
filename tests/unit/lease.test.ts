import { performance } from 'node:perf_hooks';
import { Lease } from '../../sidecar/election/lease.js';

describe('lease: what it feeds the write guard', () => {
  const leases: Lease[] = [];
  afterEach(() => leases.splice(0).forEach((l) => l.clear()));

  function lease(leaseMs: number) {
    const fed: number[] = [];
    const l = new Lease(leaseMs, () => undefined, (expiresAt) => fed.push(expiresAt));
    leases.push(l);
    return { l, fed };
  }

  test('every confirmation feeds its expiry: when its request was sent, plus the lease', () => {
    const { l, fed } = lease(3_000);
    const sentAt = performance.now() - 200;
    l.confirm(sentAt);
    l.confirm(sentAt + 100);
    expect(fed).toEqual([sentAt + 3_000, sentAt + 100 + 3_000]);
  });

  test('an older answer arriving late proves less and feeds nothing', () => {
    const { l, fed } = lease(3_000);
    const sentAt = performance.now();
    l.confirm(sentAt);
    l.confirm(sentAt - 500);
    expect(fed).toEqual([sentAt + 3_000]);
  });

  test('a confirmation whose expiry already passed is fed too (the guard then kills at once)', () => {
    const { l, fed } = lease(1_000);
    const sentAt = performance.now() - 5_000;
    l.confirm(sentAt);
    expect(fed).toEqual([sentAt + 1_000]);
    expect(l.valid()).toBe(false);
  });

  test('an answer to a request sent before a step-down (clear) does not revive the lease', () => {
    const { l, fed } = lease(3_000);
    const sentBefore = performance.now();
    l.confirm(sentBefore);
    l.clear();
    l.confirm(sentBefore); // in flight across the step-down
    expect(l.valid()).toBe(false);
    expect(fed).toEqual([sentBefore + 3_000]);
    const sentAfter = performance.now();
    l.confirm(sentAfter); // a later acquire's confirmation
    expect(l.valid()).toBe(true);
  });
});
