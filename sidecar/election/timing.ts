/**
 * A raft leader election takes one to two election timeouts, and meanwhile no `?consistent` read answers:
 * with a lease shorter than that (plus a loop turn), every Consul leader change demotes a healthy leader.
 * Returns the warning to log at start, or null when the lease outlasts a Consul election.
 */
export function consulTimingWarning(electionMs: number, leaseMs: number, loopWaitMs: number): { message: string; minLeaseSeconds: number } | null {
  if (2 * electionMs + loopWaitMs <= leaseMs) return null;
  const minLeaseSeconds = Math.ceil((2 * electionMs + loopWaitMs) / 1000);
  return {
    minLeaseSeconds,
    message:
      `Consul's raft election timeout is ${electionMs / 1000} s: a Consul leader election (up to ${(2 * electionMs) / 1000} s) outlasts lease ${leaseMs / 1000} s and will demote a healthy leader. ` +
      `Set performance { raft_multiplier = 1 } on the Consul servers, or raise timings.lease to at least ${minLeaseSeconds} s (and lockDelay above lease + demoteBudget)`,
  };
}
