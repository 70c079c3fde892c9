import { SidecarError, errorMessage } from '../../sidecar/errors.js';

/**
 * Waiting for a condition, for `hactl local` and the test harness alike: one poll loop, so a fix to how the
 * local cluster waits (for Consul, a sidecar, the members) reaches both.
 */

/** How often a condition is asked again by default: loopback answers in milliseconds. */
export const POLL_MS = 250;

/** Resolves after `ms`, or at once when `signal` aborts (without leaving a listener behind). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Stops the wait with `interrupted` (Ctrl-C on `hactl local up`). */
  signal?: AbortSignal;
  /** Throws when waiting has become pointless (a process the condition relies on has exited). */
  guard?: () => void;
  /** Where to look when it times out (a log file), added to the error. */
  hint?: string;
}

/**
 * Polls `check` until it gives a value other than undefined or false, and returns it. An error thrown by
 * `check` counts as "not yet" and is quoted in the `start_timeout` error when time runs out.
 */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  while (true) {
    if (opts.signal?.aborted) throw new SidecarError('interrupted', `interrupted while waiting for ${what}`, 500);
    opts.guard?.();
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      last = errorMessage(e);
    }
    if (Date.now() >= deadline) break;
    await sleep(opts.intervalMs ?? POLL_MS, opts.signal);
  }
  const why = last !== '' ? ` (last error: ${last})` : '';
  const hint = opts.hint !== undefined ? `; see ${opts.hint}` : '';
  throw new SidecarError('start_timeout', `timed out after ${opts.timeoutMs / 1000} s waiting for ${what}${why}${hint}`, 504);
}
