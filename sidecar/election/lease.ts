import { monotonicClock, type Clock, type Timer } from './clock.js';

/**
 * The leader's lease on its lock, on this process's monotonic clock.
 *
 * Why this keeps at most one writer under a partition: a confirmation is a `?consistent` read, answered by
 * the raft leader after it checked its leadership with a quorum, that shows our session on the lock. It
 * counts from the moment the request was *sent* (t0), so the session was alive at some server instant after
 * t0. Another node can take the lock only after our session dies and Consul's lock-delay has then run out:
 * not before t0 + lockDelay. We stop writes at t0 + lease (this timer) + the time Postgres needs to stop, and
 * config validation keeps lease + demoteBudget < lockDelay. A leader cut off from Consul cannot confirm,
 * so its timer fires even when no request ever returns. Clock rates, not wall clocks, matter here.
 *
 * This timer runs in the sidecar, so a frozen (SIGSTOP) or blocked sidecar cannot act on it. Every
 * confirmation therefore also goes to `onConfirmed` with its expiry t0 + lease, which the loop feeds to the
 * write guard, a separate process that SIGKILLs Postgres at that expiry (plus its 50 ms poll) unless fed a
 * later one; its half of the argument is in sidecar/guard/client.ts.
 */
export class Lease {
  private confirmedAt: number | null = null;
  /** When the lease was last ended: an answer to a request sent before that proves nothing about now. */
  private clearedAt = -Infinity;
  private timer: Timer | null = null;

  constructor(
    private readonly leaseMs: number,
    private readonly onExpired: () => void,
    private readonly onConfirmed: (expiresAt: number) => void = () => undefined,
    private readonly clock: Clock = monotonicClock,
  ) {}

  /** Records a confirmation whose request was sent at `sentAt` (the clock's now()) and re-arms the expiry. */
  confirm(sentAt: number): void {
    // An answer to a request sent before the last confirmation proves less. Several may be in flight (the
    // keeper sends one every turn, each may take up to a lease), and one sent before a step-down (clear) must
    // not revive the lease the step-down ended: the node may have stopped Postgres and released the lock
    // since, and only a later acquire may make it a leader again. (A confirmation always postdates the clear.)
    if (sentAt < (this.confirmedAt ?? this.clearedAt)) return;
    this.confirmedAt = sentAt;
    this.onConfirmed(sentAt + this.leaseMs);
    this.timer?.cancel();
    const remaining = sentAt + this.leaseMs - this.clock.now();
    this.timer = this.clock.after(Math.max(0, remaining), () => {
      this.timer = null;
      this.onExpired();
    });
  }

  valid(): boolean {
    return this.confirmedAt !== null && this.clock.now() - this.confirmedAt < this.leaseMs;
  }

  /** Milliseconds since the last confirmation, or null without one (exported as a metric). */
  age(): number | null {
    return this.confirmedAt === null ? null : this.clock.now() - this.confirmedAt;
  }

  clear(): void {
    this.timer?.cancel();
    this.timer = null;
    this.confirmedAt = null;
    this.clearedAt = this.clock.now();
  }
}
