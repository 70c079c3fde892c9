import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { boundCommand, spawnBound } from '../shared/process.js';
import { formatCommand, parseReply, performanceToMonotonicNs, type GuardCommand } from './protocol.js';
import { guardConsulEnv, type GuardConsul } from './release.js';

/** A guard that has not answered `arm` by then is no guard: the promotion fails (liveness only, not safety). */
const ARM_REPLY_TIMEOUT_MS = 3_000;
/** A disarm unanswered by then: the guard is replaced (a new one starts disarmed). */
const DISARM_REPLY_TIMEOUT_MS = 2_000;
/** After a guard exits, a new one is started this much later, so a guard that cannot start does not spin. */
const RESPAWN_DELAY_MS = 1_000;
/** A guard that has not exited this long after its input closed (disarmed) is killed. */
const CLOSE_TIMEOUT_MS = 2_000;

export interface WriteGuardOptions {
  /** The Postgres data directory whose postmaster the guard kills. */
  dataDir: string;
  nodeName: string;
  /** The lease: an armed guard that has not answered a command for this long counts as lost. */
  leaseMs: number;
  log: Logger;
  /** Where the guard releases the node's session once the sidecar died; without it, it releases nothing. */
  consul?: GuardConsul;
  /** The guard's entry script; by default `main.js` beside this module (in dist/). */
  script?: string;
}

interface Pending {
  sentAt: number;
  resolve: (armed: boolean) => void;
  reject: (e: Error) => void;
}

/**
 * The sidecar's side of the write guard (see main.ts): a separate process that kills the local postmaster
 * when this node may be a primary ("armed") and its lease deadline passes without a feed, even while the
 * sidecar itself is frozen (SIGSTOP) or its event loop is blocked, which its own lease timer cannot survive.
 *
 * Safety argument, next to the lease's (sidecar/election/lease.ts): every lease confirmation whose request
 * was sent at t0 feeds the guard the deadline t0 + lease, on CLOCK_MONOTONIC. No other node can take the
 * lock before t0 + lockDelay (the lease's argument). An armed guard that is not fed a later deadline
 * SIGKILLs the postmaster and every backend by t0 + lease + its timer's rounding (one timer set to the
 * deadline, main.ts) plus scheduling, and keeps killing any postmaster on the data directory while starved,
 * so no process of the old primary accepts a write after that; config validation keeps lease + demoteBudget
 * (3 + 1 s) < lockDelay (5 s), and that rounding (a millisecond) is far inside demoteBudget. The guard is
 * armed (answer awaited) before any part may make Postgres writable, and disarmed only after the demotion
 * stopped Postgres, so no instant exists at which this node may be a writer and the guard is off. Fail
 * closed: a guard that dies, cannot be written to or stops answering while armed is a lost lease (`onLost`,
 * the loop steps down); without a live guard, `arm` fails and the node cannot lead. The guard lives in its own process group (a Ctrl-Z or SIGSTOP of the sidecar's
 * group does not freeze it). When the sidecar dies (parent-death signal SIGTERM, and its input closes) the
 * guard kills the node's Postgres, releases the lock of the session it was last told, and exits (main.ts);
 * it outlives the sidecar by that much only.
 */
export class WriteGuard {
  private child: ChildProcess | null = null;
  private seq = 0;
  private readonly pending = new Map<number, Pending>();
  private deadlineNs: bigint | null = null;
  /** The node's Consul session: told to every guard process, so a new one knows it too. */
  private sessionId: string | null = null;
  /** What the sidecar last asked for: a feed reaches the guard only while armed. */
  private armed = false;
  private closing = false;
  private respawn: NodeJS.Timeout | null = null;
  private lostHandler: (reason: string) => void = () => undefined;

  constructor(private readonly opts: WriteGuardOptions) {}

  private get log(): Logger {
    return this.opts.log;
  }

  /** Starts the guard process (disarmed). */
  start(): void {
    this.closing = false;
    this.spawn();
  }

  /** Called when the guard is lost while armed: the caller must treat it as a lost lease. */
  onLost(handler: (reason: string) => void): void {
    this.lostHandler = handler;
  }

  /** The pid of the guard process running now, if any. */
  pid(): number | undefined {
    return this.child?.pid;
  }

  /** The lease was confirmed until `expiresAt` (performance.now() clock). Cheap; call on every confirmation. */
  feed(expiresAt: number): void {
    this.deadlineNs = performanceToMonotonicNs(expiresAt);
    if (!this.armed) return;
    const oldest = Math.min(...[...this.pending.values()].map((p) => p.sentAt));
    if (performance.now() - oldest > this.opts.leaseMs) {
      this.lose(`the write guard has not answered for over ${this.opts.leaseMs} ms`);
      return;
    }
    this.send({ seq: ++this.seq, kind: 'feed', deadlineNs: this.deadlineNs }).catch(() => undefined);
  }

  /**
   * The node's Consul session now (null: none). The guard releases its lock once the sidecar died, so tell
   * it every session the moment it exists: a session the guard does not know just dies the slow way.
   */
  session(id: string | null): void {
    if (id === this.sessionId) return;
    this.sessionId = id;
    if (this.child) this.send({ seq: ++this.seq, kind: 'session', session: id }).catch(() => undefined);
  }

  /**
   * Arms the guard with the last fed deadline and resolves once it says so. Throws `guard_unavailable` when
   * no guard runs or it does not answer in time: this node must not make Postgres writable then.
   */
  async arm(): Promise<void> {
    if (!this.child) throw new SidecarError('guard_unavailable', 'the write guard process is not running; this node cannot take writes without it', 503);
    this.armed = true;
    const armed = await this.send({ seq: ++this.seq, kind: 'arm', deadlineNs: this.deadlineNs ?? 0n }, ARM_REPLY_TIMEOUT_MS);
    if (!armed) throw new SidecarError('guard_unavailable', 'the write guard did not arm', 503);
  }

  /**
   * Disarms the guard: call only once Postgres has stopped (or is known read-only). Never throws: a guard
   * that does not answer is replaced by a new, disarmed one.
   */
  async disarm(): Promise<void> {
    const wasArmed = this.armed;
    this.armed = false;
    if (!this.child) return;
    try {
      await this.send({ seq: ++this.seq, kind: 'disarm' }, DISARM_REPLY_TIMEOUT_MS);
    } catch (e) {
      if (wasArmed) this.log.warn('write guard did not confirm the disarm; replacing it', { error: errorMessage(e) });
      this.child?.kill('SIGKILL');
    }
  }

  /**
   * Disarms and stops the guard for good (the sidecar is exiting, Postgres stopped, its session released or
   * destroyed): told no session, the guard takes its closed input as a goodbye, not as the sidecar's death.
   */
  async close(): Promise<void> {
    this.session(null);
    await this.disarm();
    this.closing = true;
    if (this.respawn) clearTimeout(this.respawn);
    const child = this.child;
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdin?.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  private spawn(): void {
    this.respawn = null;
    const script = this.opts.script ?? join(fileURLToPath(new URL('.', import.meta.url)), 'main.js');
    const self = { name: undefined, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    // SIGTERM when the sidecar dies: the guard then kills Postgres and releases the session (main.ts). Its own
    // process group (detached), so a signal to the sidecar's group misses it.
    const consul = this.opts.consul;
    const env: Record<string, string> = consul ? guardConsulEnv(consul) : {};
    const child = spawnBound(boundCommand([process.execPath, script, this.opts.dataDir, this.opts.nodeName], self, 'SIGTERM', env), {
      detached: true,
      stdio: ['pipe', 'pipe', 2],
    });
    this.child = child;
    if (this.sessionId) this.send({ seq: ++this.seq, kind: 'session', session: this.sessionId }).catch(() => undefined);
    this.log.info('write guard started', { pid: child.pid });
    child.stdin?.on('error', (e) => this.lose(`cannot write to the write guard: ${errorMessage(e)}`));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const reply = parseReply(line);
      const waiting = reply && this.pending.get(reply.seq);
      if (!reply || !waiting) return;
      // The guard answers in order, so an answer settles every earlier command too.
      for (const [seq, p] of this.pending) {
        if (seq > reply.seq) continue;
        this.pending.delete(seq);
        p.resolve(reply.armed);
      }
    });
    child.on('error', (e) => this.gone(child, `cannot run the write guard: ${errorMessage(e)}`));
    child.on('exit', (code, signal) => this.gone(child, `the write guard exited (${signal ?? `exit ${code}`})`));
  }

  /** The guard process is gone (idempotent): fail what waits on it, report the loss when armed, start a new one. */
  private gone(child: ChildProcess, reason: string): void {
    if (this.child !== child) return;
    this.child = null;
    for (const p of this.pending.values()) p.reject(new SidecarError('guard_unavailable', reason));
    this.pending.clear();
    if (this.closing) return;
    this.log.warn('write guard gone', { code: 'guard_exited', reason, armed: this.armed });
    if (this.armed) {
      this.armed = false;
      this.lostHandler(reason);
    }
    this.respawn = setTimeout(() => this.spawn(), RESPAWN_DELAY_MS);
  }

  /** The guard cannot be relied on: kill it; its exit reports the loss (when armed) and starts a new one. */
  private lose(reason: string): void {
    if (!this.child || this.child.killed) return; // already being replaced
    this.log.error('write guard lost', { code: 'guard_lost', reason });
    this.child?.kill('SIGKILL');
  }

  /** Sends a command; resolves with the guard's armed state from its answer, rejects after `timeoutMs` if given. */
  private send(command: GuardCommand, timeoutMs?: number): Promise<boolean> {
    const child = this.child;
    if (!child?.stdin?.writable) return Promise.reject(new SidecarError('guard_unavailable', 'the write guard is not running'));
    return new Promise<boolean>((resolve, reject) => {
      const timer = timeoutMs === undefined ? null : setTimeout(() => reject(new SidecarError('guard_unavailable', `the write guard did not answer within ${timeoutMs} ms`)), timeoutMs);
      const settle = <T>(fn: (v: T) => void) => (v: T) => {
        if (timer) clearTimeout(timer);
        fn(v);
      };
      this.pending.set(command.seq, { sentAt: performance.now(), resolve: settle(resolve), reject: settle(reject) });
      child.stdin!.write(formatCommand(command));
    });
  }
}
