import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type { Logger } from '../log.js';
import { boundCommand, spawnBound } from '../shared/process.js';
import type { HookEvent } from './config-section.js';

/** After SIGTERM at its timeout, a hook gets this long to exit before SIGKILL. */
const KILL_GRACE_MS = 2_000;
/** Lines of output logged per hook run; a chatty hook must not flood the sidecar's log. */
const MAX_OUTPUT_LINES = 200;
const MAX_LINE_LENGTH = 2_000;

export type HookOutcome = 'ok' | 'failed' | 'timeout' | 'superseded' | 'spawn_error';

export interface HookResult {
  event: HookEvent;
  term: number;
  outcome: HookOutcome;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  durationMs: number;
  /** One line for the status and the Consul check: what went wrong. */
  detail: string;
}

export interface HookIdentity {
  cluster: string;
  node: string;
  /** This node's address and sidecar API, so a hook can reach its manager and ask the sidecar. */
  address: string;
  apiUrl: string;
}

interface Running {
  event: HookEvent;
  term: number;
  child: ChildProcess;
  superseded: boolean;
  done: Promise<HookResult>;
}

interface Pending {
  event: HookEvent;
  term: number;
  resolve: (r: HookResult) => void;
  promise: Promise<HookResult>;
}

/**
 * Runs the manager's role hooks as child processes, one at a time, in the order they were asked for. A hook
 * for another role supersedes what is running or waiting (a step-down must not wait behind a hung `leader`
 * hook): the running one is killed at once, the waiting one is dropped. Never awaited by the loop beyond what
 * a caller chooses; every run ends by its timeout.
 */
export class HookRunner {
  private running: Running | null = null;
  private pending: Pending | null = null;

  constructor(
    private readonly commands: Partial<Record<HookEvent, string[]>>,
    private readonly timeoutMs: number,
    private readonly who: HookIdentity,
    private readonly log: Logger,
    private readonly onResult: (r: HookResult) => void = () => undefined,
  ) {}

  has(event: HookEvent): boolean {
    return this.commands[event] !== undefined;
  }

  /** The hook running now, if any. */
  current(): { event: HookEvent; term: number } | null {
    return this.running ? { event: this.running.event, term: this.running.term } : null;
  }

  /** Asks for `event` at `term`; resolves when that run has ended (or was superseded). */
  run(event: HookEvent, term: number): Promise<HookResult> {
    if (this.pending?.event === event && this.pending.term === term) return this.pending.promise;
    if (this.pending) {
      this.pending.resolve(this.skipped(this.pending.event, this.pending.term, `superseded by the ${event} hook before it started`));
      this.pending = null;
    }
    if (this.running && this.running.event !== event) this.supersede(this.running, event);
    let resolve: (r: HookResult) => void = () => undefined;
    const promise = new Promise<HookResult>((r) => (resolve = r));
    this.pending = { event, term, resolve, promise };
    void this.next();
    return promise;
  }

  /** Kills what runs and drops what waits (the sidecar is exiting and has run its last hook). */
  async cancelAll(): Promise<void> {
    if (this.pending) this.pending.resolve(this.skipped(this.pending.event, this.pending.term, 'cancelled: the sidecar is stopping'));
    this.pending = null;
    if (this.running) {
      this.supersede(this.running, 'stopping');
      await this.running?.done;
    }
  }

  private async next(): Promise<void> {
    if (this.running || !this.pending) return;
    const { event, term, resolve } = this.pending;
    this.pending = null;
    const result = await this.start(event, term);
    resolve(result);
    this.onResult(result);
    void this.next();
  }

  private skipped(event: HookEvent, term: number, detail: string): HookResult {
    return { event, term, outcome: 'superseded', exitCode: null, signal: null, durationMs: 0, detail };
  }

  private supersede(r: Running, by: HookEvent): void {
    if (r.superseded) return;
    r.superseded = true;
    this.log.warn('killing a hook superseded by a role change', { hook: r.event, hookTerm: r.term, by });
    killGroup(r.child, 'SIGKILL');
  }

  private start(event: HookEvent, term: number): Promise<HookResult> {
    const argv = [...(this.commands[event] ?? []), event, String(term), this.who.cluster, this.who.node];
    const env = hookEnv(event, term, this.who);
    const started = performance.now();
    this.log.info('running hook', { hook: event, hookTerm: term, command: argv });
    let child: ChildProcess;
    try {
      // A `leader` hook dies with the sidecar (parent-death signal, as Postgres does, design rule 3): a dead
      // sidecar must not bring a manager up as active. `standby` and `stopping` take a manager down, which is
      // always safe to finish, so they run to their end. Each hook leads its own process group, so a timeout
      // kills what it started too.
      child =
        event === 'leader'
          ? spawnBound(boundCommand(argv, { name: undefined, uid: 0, gid: 0 }, 'SIGTERM', env), { detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
          : spawn(argv[0] as string, argv.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
    } catch (e) {
      return Promise.resolve(this.finish(event, term, started, 'spawn_error', null, null, (e as Error).message));
    }
    const running: Running = { event, term, child, superseded: false, done: Promise.resolve(null as never) };
    let timedOut = false;
    let lines = 0;
    const logLines = (stream: 'stdout' | 'stderr') => (line: string) => {
      if (++lines > MAX_OUTPUT_LINES) {
        if (lines === MAX_OUTPUT_LINES + 1) this.log.warn('hook output truncated', { hook: event, hookTerm: term, afterLines: MAX_OUTPUT_LINES });
        return;
      }
      this.log.info('hook output', { hook: event, hookTerm: term, stream, line: line.slice(0, MAX_LINE_LENGTH) });
    };
    if (child.stdout) createInterface({ input: child.stdout }).on('line', logLines('stdout'));
    if (child.stderr) createInterface({ input: child.stderr }).on('line', logLines('stderr'));
    const timer = setTimeout(() => {
      timedOut = true;
      this.log.warn('hook timed out: killing it', { hook: event, hookTerm: term, timeoutMs: this.timeoutMs });
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), KILL_GRACE_MS).unref();
    }, this.timeoutMs);
    running.done = new Promise<HookResult>((resolve) => {
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve(this.finish(event, term, started, 'spawn_error', null, null, err.message));
      });
      // 'exit', not 'close': a hook may leave a daemon behind that still holds its stdout.
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        child.stdout?.destroy();
        child.stderr?.destroy();
        const outcome: HookOutcome = running.superseded ? 'superseded' : timedOut ? 'timeout' : code === 0 ? 'ok' : 'failed';
        const detail =
          outcome === 'ok'
            ? 'ok'
            : outcome === 'timeout'
              ? `timed out after ${this.timeoutMs / 1000} s`
              : outcome === 'superseded'
                ? 'killed: superseded by a role change'
                : signal
                  ? `killed by ${signal}`
                  : `exit code ${code}`;
        resolve(this.finish(event, term, started, outcome, code, signal, detail));
      });
    });
    this.running = running;
    return running.done.finally(() => {
      if (this.running === running) this.running = null;
    });
  }

  private finish(event: HookEvent, term: number, started: number, outcome: HookOutcome, exitCode: number | null, signal: NodeJS.Signals | null, detail: string): HookResult {
    const result: HookResult = { event, term, outcome, exitCode, signal, durationMs: Math.round(performance.now() - started), detail };
    if (outcome === 'ok') this.log.info('hook finished', { hook: event, hookTerm: term, outcome, durationMs: result.durationMs });
    else this.log.warn('hook failed', { hook: event, hookTerm: term, outcome, detail, durationMs: result.durationMs });
    return result;
  }
}

/** The hook's environment: the sidecar's, without its `HA_SIDECAR_*` overrides (they may hold tokens), plus who and what. */
function hookEnv(event: HookEvent, term: number, who: HookIdentity): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('HA_SIDECAR_')) env[k] = v;
  return { ...env, HA_ROLE: event, HA_TERM: String(term), HA_CLUSTER: who.cluster, HA_NODE: who.node, HA_ADDRESS: who.address, HA_API_URL: who.apiUrl };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}
