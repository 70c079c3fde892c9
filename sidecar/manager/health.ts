import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
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
        const status = await getStatus(this.url, this.timeoutMs);
        healthy = status >= 200 && status < 300;
        detail = `HTTP ${status}`;
      } catch (e) {
        healthy = false;
        detail = e instanceof ProbeTimeout ? `no answer within ${this.timeoutMs} ms` : `unreachable: ${errorMessage(e)}`;
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

class ProbeTimeout extends Error {}

/**
 * The status of one GET of `url`, over node:http(s) rather than the global fetch: fetch loads undici (about
 * 2.5 MB of RSS once the sidecar's modules are loaded, docs/design.md "Idle cost") for one GET a second.
 * Node's global agents keep the connection open between probes, as fetch did. A kept connection the manager closed just as it was reused fails with ECONNRESET
 * before any answer: that is the connection's age, not the manager's health, so such a GET is sent once more
 * on a new connection. `timeoutMs` bounds the whole GET, the body included (which is read and dropped).
 */
function getStatus(url: string, timeoutMs: number): Promise<number> {
  const send = url.startsWith('https:') ? httpsRequest : httpRequest;
  const deadline = performance.now() + timeoutMs;
  const attempt = (options: RequestOptions): Promise<number> =>
    new Promise<number>((resolve, reject) => {
      let answered = false;
      const req: ClientRequest = send(url, options, (res: IncomingMessage) => {
        answered = true;
        resolve(res.statusCode ?? 0);
        res.on('error', () => undefined).resume();
        res.once('end', () => clearTimeout(timer));
      });
      const timer = setTimeout(() => req.destroy(new ProbeTimeout()), Math.max(0, deadline - performance.now()));
      req.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // After the status, an error only ends the body: the answer stands.
        if (answered) return;
        if (req.reusedSocket && e.code === 'ECONNRESET' && options.agent === undefined) resolve(attempt({ agent: false }));
        else reject(e);
      });
      req.end();
    });
  return attempt({});
}
