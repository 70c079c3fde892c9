import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** A timer the clock started; cancelling one that already ran does nothing. */
export interface Timer {
  cancel(): void;
}

/**
 * The election's time: the lease, the keeper and the loop's pauses read and wait on it, so unit tests drive
 * them through a timeline with a fake one. `now()` is monotonic milliseconds; in production it is
 * performance.now(), whose timebase the write guard converts to CLOCK_MONOTONIC (guard/protocol.ts), so the
 * deadlines fed to the guard are on this clock. Wall-clock times in records (`since`, `requestedAt`) are not.
 */
export interface Clock {
  now(): number;
  /** Runs `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): Timer;
  /** Runs `fn` every `ms`, not waiting for an earlier run that is still in flight. */
  every(ms: number, fn: () => void): Timer;
  /** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const monotonicClock: Clock = {
  now: () => performance.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t) };
  },
  sleep: (ms, signal) => sleep(ms, undefined, { signal }).catch(() => undefined),
};
