import { performance } from 'node:perf_hooks';
import { errorMessage } from '../errors.js';
import { countRequest } from '../outgoing.js';

/** What the last probe of the manager's health URL said. */
export interface HealthState {
  /** null until the first answer. */
  healthy: boolean | null;
  detail: string;
  /** Monotonic ms since which the manager has been unhealthy (null while healthy or unknown). */
  unhealthySince: number | null;
}

/**
 * Asks the manager's health URL every `intervalMs` (the owner may change it) on a timer of its own, so a slow or hung manager never
 * holds a reconcile turn: the loop reads only the cached answer. 2xx is healthy; anything else, a timeout or
 * a refused connection is not.
 */
export class HealthProbe {
  private state: HealthState = { healthy: null, detail: 'not checked yet', unhealthySince: null };
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;

  constructor(
    private readonly url: string,
    private intervalMs: number,
    private readonly timeoutMs: number,
    private readonly onChange: (s: HealthState) => void = () => undefined,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
    void this.check();
  }

  /** Asks every `ms` from now on (the next probe comes `ms` from now). */
  setIntervalMs(ms: number): void {
    if (ms === this.intervalMs) return;
    this.intervalMs = ms;
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get(): HealthState {
    return this.state;
  }

  /** One probe now (also called right after a `leader` hook, so /leader need not wait a whole interval). */
  async check(): Promise<HealthState> {
    if (this.inFlight) return this.state;
    this.inFlight = true;
    try {
      let healthy: boolean;
      let detail: string;
      try {
        countRequest('manager');
        const res = await fetch(this.url, { signal: AbortSignal.timeout(this.timeoutMs) });
        await res.body?.cancel();
        healthy = res.status >= 200 && res.status < 300;
        detail = `HTTP ${res.status}`;
      } catch (e) {
        healthy = false;
        detail = (e as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : `unreachable: ${errorMessage((e as Error).cause ?? e)}`;
      }
      const before = this.state;
      const unhealthySince = healthy ? null : (before.unhealthySince ?? performance.now());
      this.state = { healthy, detail, unhealthySince };
      if (before.healthy !== healthy) this.onChange(this.state);
      return this.state;
    } finally {
      this.inFlight = false;
    }
  }
}
