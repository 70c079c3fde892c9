// The reconcile loop, in pieces over one state (state.ts): observe.ts (what a turn knows), decide.ts (the
// decision, pure), act.ts (carrying it out), publish.ts (what others see), keeper.ts (the timer that keeps the
// session and the lease alive beside the turns). This file runs the turns and owns start and stop. The other
// pure parts: lease.ts, requests.ts (operators' requests and their deadlines), handover.ts, timing.ts.
import type { SidecarConfig } from '../config.js';
import type { DynamicConfig, LeaderRecord } from '../consul/records.js';
import { errorMessage, isSidecarError } from '../errors.js';
import type { WriteGuard } from '../guard/client.js';
import type { LogContext, Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { act, stepDown } from './act.js';
import type { Clock, Timer } from './clock.js';
import { decide, type Role } from './decide.js';
import type { ElectionStore } from './election-store.js';
import { keep } from './keeper.js';
import { observe } from './observe.js';
import type { Participant } from './participant.js';
import { publish } from './publish.js';
import { currentLeader, dropSession, leaderReady, reapSessions, serviceSpec, statusLine, LoopState, type PromotionFailure } from './state.js';
import { consulTimingWarning } from './timing.js';

/**
 * After an acquire is refused while the lock is free (Consul's lock-delay is in force), retry at this pace:
 * the take-over then happens within this much of the delay's end, without hot-looping on Consul.
 */
const LOCK_RETRY_MS = 250;
/** A standby's turn never comes faster than this, even when the blocking read wakes at once. */
const MIN_STANDBY_TURN_MS = 100;
/**
 * A standby that waits for the leader's record (the end of its promotion, ~0.3 s) or has just created its
 * session turns again at this pace instead of after the lock's watch times out (`loopWait`). Its cost, a
 * turn (the lock and the members read, the parts' checks) four times a second, is paid only while it waits.
 */
const TURN_AGAIN_SOON_MS = 250;

/**
 * What the loop uses of the write guard (guard/client.ts): fed every confirmation, armed before any write,
 * told the session whose lock it releases once the sidecar died.
 */
export type LeaseGuard = Pick<WriteGuard, 'feed' | 'onLost' | 'arm' | 'disarm' | 'session'>;

/** What the election takes of the config: the node's name, how peers reach its API, its tag, and the timings. */
export type ElectionConfig = Pick<SidecarConfig, 'nodeName' | 'address' | 'apiPort' | 'apiUrl' | 'nofailover' | 'timings'>;

export interface LoopDeps {
  config: ElectionConfig;
  store: ElectionStore;
  log: Logger;
  logContext: LogContext;
  metrics: Metrics;
  participants: Participant[];
  /** Kills Postgres if this node may write and its lease runs out while the sidecar is frozen (write guard). */
  guard?: LeaseGuard;
  /** The lease's, the keeper's and the turns' time; monotonicClock unless a test drives time. */
  clock?: Clock;
}

/** What the API shows of this node's own view. */
export interface NodeView {
  node: string;
  role: Role;
  term: number;
  /** True on the leader once promotion finished and while its lease holds and its parts are ready. */
  leaderReady: boolean;
  status: string;
  leader: LeaderRecord | null;
  lockHeld: boolean;
  leaseAgeMs: number | null;
  /** The lease's own verdict (lease.ts), so nothing outside the loop recomputes it from the age. */
  leaseValid: boolean;
  dynamicConfig: DynamicConfig;
  /** Why this node's last promotion failed, until one succeeds (`hactl local up` reports it at once). */
  lastFailure: PromotionFailure | null;
}

/**
 * The reconcile loop: observe (lock, own session, dynamic config, parts' fitness), decide (a pure function),
 * act (acquire, promote, step down, follow), publish (member record, service tags, metrics). Each turn is
 * idempotent. A separate keeper timer passes the alive check and confirms the lock every `loopWait`, so a
 * long action (a promotion, a base backup) never starves the lease or the session.
 */
export class ReconcileLoop {
  private readonly s: LoopState;
  private keeper: Timer | null = null;
  private loopDone: Promise<void> | null = null;
  private wake: AbortController = new AbortController();

  constructor(deps: LoopDeps) {
    this.s = new LoopState(deps, () => {
      if (this.s.role === 'leader' || this.s.role === 'candidate') void stepDown(this.s, 'lease_lost', 'lease expired without a confirmed lock');
    });
    deps.guard?.onLost((why) => void stepDown(this.s, 'lease_lost', `${why}: treated as a lost lease`)); // write guard: fail closed
    for (const p of deps.participants) p.registerMetrics?.(deps.metrics.registry);
  }

  view(): NodeView {
    const s = this.s;
    return {
      node: s.deps.config.nodeName,
      role: s.role,
      term: s.term,
      leaderReady: leaderReady(s),
      status: statusLine(s),
      leader: currentLeader(s),
      lockHeld: s.session !== null && s.lockHolder === s.session,
      leaseAgeMs: s.lease.age(),
      leaseValid: s.lease.valid(),
      dynamicConfig: s.dynamicConfig,
      lastFailure: s.lastFailure,
    };
  }

  /** The load balancer's question: should writes come here? Only with a valid lease and every part ready. */
  leaderReady(): boolean {
    return leaderReady(this.s);
  }

  /**
   * Registers the service and starts the keeper and the loop. Fails (nothing left behind) when Consul is down,
   * or keeps denying the registration (registerAtStart).
   */
  async start(): Promise<void> {
    const s = this.s;
    await registerAtStart(s);
    s.consulReachable = true;
    await this.checkConsulTiming();
    // Sessions of an earlier process of this node died with the alive check's re-registration; destroy any
    // left (bound to serfHealth alone they could linger) so none of them holds the lock.
    await reapSessions(s);
    this.keeper = s.clock.every(s.loopWaitMs, () => void keep(s));
    this.loopDone = this.run();
  }

  /**
   * Graceful stop: a leader stops writes first, then releases the lock without lock-delay, so a standby takes
   * over at once; the session is destroyed. The service stays registered: its alive check turns critical,
   * which is what an operator should see of a stopped node.
   */
  async stop(): Promise<void> {
    const s = this.s;
    s.stopping = true;
    this.wake.abort();
    if (s.role === 'leader' || s.role === 'candidate') await stepDown(s, 'shutdown', 'shutting down');
    await this.loopDone;
    this.keeper?.cancel();
    s.lease.clear();
    if (s.session) {
      await s.deps.store.releaseMember(s.session).catch((e) => s.log.warn('member release failed', { error: errorMessage(e) }));
      dropSession(s);
    }
    await reapSessions(s);
    for (const p of s.deps.participants) await p.close?.();
  }

  /** Says at start when Consul's own election could outlast the lease (timing.ts). */
  private async checkConsulTiming(): Promise<void> {
    const s = this.s;
    const electionMs = await s.deps.store.raftElectionTimeoutMs().catch(() => null);
    if (electionMs === null) return;
    const leaseMs = s.deps.config.timings.lease * 1000;
    const warning = consulTimingWarning(electionMs, leaseMs, s.loopWaitMs);
    if (warning) s.log.warn(warning.message, { code: 'consul_timing_unsafe', electionMs, leaseMs });
  }

  /** Wakes a standby blocked on the lock watch (e.g. a switchover or config change was requested). */
  poke(): void {
    this.wake.abort();
  }

  private async run(): Promise<void> {
    const s = this.s;
    while (!s.stopping) {
      const started = s.clock.now();
      try {
        await this.turn();
      } catch (e) {
        s.log.error('reconcile turn failed', { error: errorMessage(e), code: (e as { code?: string }).code });
        await s.clock.sleep(s.loopWaitMs);
      }
      const took = s.clock.now() - started;
      s.deps.metrics.loopDuration.observe(took / 1000);
      if (s.stopping) break;
      if (s.role === 'leader' || s.role === 'candidate') await this.pause(s.loopWaitMs - took);
      else if (s.retryAcquireSoon) await this.pause(LOCK_RETRY_MS);
      else if (s.turnAgainSoon) await this.pause(TURN_AGAIN_SOON_MS - took);
      else await this.pause(MIN_STANDBY_TURN_MS - took);
    }
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0 || this.wake.signal.aborted) return;
    await this.s.clock.sleep(ms, this.wake.signal);
  }

  private async turn(): Promise<void> {
    const s = this.s;
    if (this.wake.signal.aborted && !s.stopping) this.wake = new AbortController();
    const o = await observe(s);
    const d = decide(o);
    // The lease timer may have stepped this node down while it observed: an action decided for the role it
    // had then (restart the leader's Postgres, finish a promotion) must not run now. Decide again next turn.
    if (s.role !== o.role) return;
    if (d.status !== s.status) s.log.info(d.status, { action: d.action.kind });
    s.status = d.status;
    s.activity = null;
    await act(s, d.action, o);
    await publish(s);
  }
}

/** How long the start retries a registration Consul denies, and how often. */
const DENIED_REGISTRATION_RETRY_MS = 10_000;
const DENIED_REGISTRATION_PAUSE_MS = 1_000;

/**
 * The service's registration at start, retried for DENIED_REGISTRATION_RETRY_MS while Consul answers
 * `consul_acl_denied`: with ACLs on, the tests saw a Consul server that had just restarted, or had just seen
 * a raft leader change, deny a token it knows for a moment. A token that really lacks the policy is still
 * refused, that much later. The retry cannot make a second writer: the node holds no session yet, and a turn
 * starts only after the registration.
 */
async function registerAtStart(s: LoopState): Promise<void> {
  const giveUpAt = s.clock.now() + DENIED_REGISTRATION_RETRY_MS;
  for (;;) {
    try {
      await s.deps.store.registerService(serviceSpec(s));
      return;
    } catch (e) {
      if (!isSidecarError(e) || e.code !== 'consul_acl_denied' || s.clock.now() >= giveUpAt) throw e;
      s.log.warn('Consul denied the service registration; retrying', { code: e.code, error: e.message });
      await s.clock.sleep(DENIED_REGISTRATION_PAUSE_MS);
    }
  }
}
