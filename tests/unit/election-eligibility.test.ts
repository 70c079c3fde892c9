import { describe, expect, it } from '@jest/globals';
import { candidateProblem } from '../../sidecar/election/eligibility.js';

/** The one rule the election, a switchover and a manual failover use to rule a candidate out (eligibility.ts). */
describe('candidateProblem', () => {
  const fit = { alive: true, nofailover: false, role: 'standby', streaming: true, behindBytes: 0 };

  it('a live, untagged, streaming standby within the limit is fit', () => {
    expect(candidateProblem(fit, 0)).toBeNull();
    expect(candidateProblem({ ...fit, behindBytes: 1000 }, 1000)).toBeNull();
  });

  it('gives the first problem, in the order: running, nofailover, role, streaming, position, bytes behind', () => {
    expect(candidateProblem({ ...fit, alive: false, nofailover: true }, 0)).toEqual({ kind: 'not_running' });
    expect(candidateProblem({ ...fit, nofailover: true, role: 'leader' }, 0)).toEqual({ kind: 'nofailover' });
    expect(candidateProblem({ ...fit, role: 'starting', streaming: false }, 0)).toEqual({ kind: 'not_standby', role: 'starting' });
    expect(candidateProblem({ ...fit, streaming: false, behindBytes: null }, 0)).toEqual({ kind: 'not_streaming' });
    expect(candidateProblem({ ...fit, behindBytes: null }, 0)).toEqual({ kind: 'position_unknown' });
    expect(candidateProblem({ ...fit, behindBytes: 1001 }, 1000)).toEqual({ kind: 'behind', bytes: 1001, limit: 1000 });
  });

  it('judges only the facts given: no role, streaming or position means not asked', () => {
    expect(candidateProblem({ alive: true, nofailover: false }, 0)).toBeNull();
    expect(candidateProblem({ alive: true, nofailover: false, behindBytes: 5 }, 0)).toEqual({ kind: 'behind', bytes: 5, limit: 0 });
  });
});
