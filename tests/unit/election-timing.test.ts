import { describe, expect, it } from '@jest/globals';
import { consulTimingWarning } from '../../sidecar/election/timing.js';

describe('consulTimingWarning', () => {
  it('none when two Consul elections and a loop turn fit in the lease', () => {
    // raft_multiplier = 1: election timeout 1 s; lease 3 s, loop 1 s.
    expect(consulTimingWarning(1_000, 3_000, 1_000)).toBeNull();
  });

  it("Consul's defaults (multiplier 5: 5 s) against a 3 s lease: warns, and names the lease that would be safe", () => {
    const warning = consulTimingWarning(5_000, 3_000, 1_000);
    expect(warning?.minLeaseSeconds).toBe(11);
    expect(warning?.message).toMatch(/raft election timeout is 5 s.*outlasts lease 3 s.*raft_multiplier = 1.*at least 11 s/);
  });

  it('just over the bound warns', () => {
    expect(consulTimingWarning(1_001, 3_000, 1_000)?.minLeaseSeconds).toBe(4);
  });
});
