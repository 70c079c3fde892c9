// Over 400 lines, not split further: the loop is one state machine whose actions (acquire, promote, step down,
// hand over, publish, keep) share the session, the lock holder and the lease, and each must read them at the
// moment it acts. The pure parts live beside it: decide.ts (the decision), lease.ts, requests.ts (operators'
// requests and their deadlines), handover.ts, timing.ts.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SidecarConfig } from '../config.js';
import type { ConsulStore, MemberEntry } from '../consul/store.js';
import type { DynamicConfig, FailoverRequest, LeaderRecord, MemberRecord, SwitchoverRequest } from '../consul/records.js';
import { defaultDynamicConfig } from '../consul/records.js';
import { errorMessage } from '../errors.js';
import type { WriteGuard } from '../guard/client.js';
import type { LogContext, Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { decide, type AcquireReason, type Action, type Fitness, type Observation, type Role } from './decide.js';
import { observeLeaderProblem } from './handover.js';
import { Lease } from './lease.js';
import type { DemoteReason, Participant, TurnContext } from './participant.js';
import { failoverLapse, leadershipReason, switchoverLapse } from './requests.js';
import { consulTimingWarning } from './timing.js';

/**
 * After an acquire is refused while the lock is free (Consul's lock-delay is in force), retry at this pace:
 * the take-over then happens within this much of the delay's end, without hot-looping on Consul.
 */
const LOCK_RETRY_MS = 250;
/** A standby's turn never comes faster than this, even when the blocking read wakes at once. */
const MIN_STANDBY_TURN_MS = 100;
/** Between attempts to stop Postgres when a demotion failed: the lock is kept meanwhile (see stepDown). */
const DEMOTE_RETRY_MS = 1_000;
/**
 * A member record is written when its content changes, else again after this long: one write per node per
 * 30 s rather than one a turn, each of which wakes every standby's blocking read of the members. Needed at
 * all only for a record lost while the session lives (deleted by hand, a restored Consul snapshot); a new
 * session always writes at once, and nobody reads `updatedAt` as a heartbeat (the session says alive).
 */
const MEMBER_REFRESH_MS = 30_000;

export interface LoopDeps {
  config: SidecarConfig;
  store: ConsulStore;
  log: Logger;
  logContext: LogContext;
  metrics: Metrics;
  participants: Participant[];
  /** Kills Postgres if this node may write and its lease runs out while the sidecar is frozen (write guard). */
  guard?: WriteGuard;
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
  dynamicConfig: DynamicConfig;
}

/**
 * The reconcile loop: observe (lock, own session, dynamic config, parts' fitness), decide (a pure function),
 * act (acquire, promote, step down, follow), publish (member record, service tags, metrics). Each turn is
 * idempotent. A separate keeper timer passes the alive check and confirms the lock every `loopWait`, so a
 * long action (a promotion, a base backup) never starves the lease or the session.
 */
export class ReconcileLoop {
  private role: Role = 'starting';
  private term = 0;
  private status = 'starting';
  /** What a part reported doing this turn ("cloning from n2 (37 %)"); shown instead of the decision's line. */
  private activity: string | null = null;
  private session: string | null = null;
  /**
   * Sessions this process created and no longer uses, destroyed as soon as Consul answers. A session id is
   * never just forgotten: a forgotten live session would hold its keys (the lock among them) for good.
   */
  private readonly staleSessions = new Set<string>();
  private lockIndex = 0;
  private lockHolder: string | null = null;
  private lastLeader: LeaderRecord | null = null;
  private dynamicConfig: DynamicConfig = defaultDynamicConfig;
  private consulReachable = false;
  private retryAcquireSoon = false;
  /** A planned step-down is stopping Postgres while the lock is still ours (see stepDown). */
  private plannedStop = false;
  private leadership: AbortController | null = null;
  private stopping = false;
  private keeper: NodeJS.Timeout | null = null;
  private loopDone: Promise<void> | null = null;
  private wake: AbortController = new AbortController();
  private readonly lease: Lease;
  private readonly loopWaitMs: number;
  /** The last member record written (its content without `updatedAt`, and the session that holds it), and when. */
  private published: { content: string; session: string; at: number } | null = null;

  constructor(private readonly deps: LoopDeps) {
    this.loopWaitMs = deps.config.timings.loopWait * 1000;
    this.lease = new Lease(deps.config.timings.lease * 1000, () => {
      if (this.role === 'leader' || this.role === 'candidate') void this.stepDown('lease_lost', 'lease expired without a confirmed lock');
    }, (expiresAt) => deps.guard?.feed(expiresAt)); // write guard: every confirmation feeds it
    deps.guard?.onLost((why) => void this.stepDown('lease_lost', `${why}: treated as a lost lease`)); // write guard: fail closed
    for (const p of deps.participants) p.registerMetrics?.(deps.metrics.registry);
  }

  private get log(): Logger {
    return this.deps.log;
  }

  private get apiUrl(): string {
    return `http://${this.deps.config.address}:${this.deps.config.apiPort}`;
  }

  view(): NodeView {
    return {
      node: this.deps.config.nodeName,
      role: this.role,
      term: this.term,
      leaderReady: this.leaderReady(),
      status: this.statusLine(),
      leader: this.lockHolder ? this.lastLeader : null,
      lockHeld: this.session !== null && this.lockHolder === this.session,
      leaseAgeMs: this.lease.age(),
      dynamicConfig: this.dynamicConfig,
    };
  }

  private statusLine(): string {
    return this.activity ?? this.status;
  }

  /** The load balancer's question: should writes come here? Only with a valid lease and every part ready. */
  leaderReady(): boolean {
    return this.role === 'leader' && this.lease.valid() && this.deps.participants.every((p) => p.ready?.('leader') ?? true);
  }

  /** Registers the service and starts the keeper and the loop. Fails (nothing left behind) when Consul is down. */
  async start(): Promise<void> {
    await this.deps.store.registerService(this.serviceSpec());
    this.consulReachable = true;
    await this.checkConsulTiming();
    // Sessions of an earlier process of this node died with the alive check's re-registration; destroy any
    // left (bound to serfHealth alone they could linger) so none of them holds the lock.
    await this.reapSessions();
    this.keeper = setInterval(() => void this.keep(), this.loopWaitMs);
    this.loopDone = this.run();
  }

  /**
   * Graceful stop: a leader stops writes first, then releases the lock without lock-delay, so a standby takes
   * over at once; the session is destroyed. The service stays registered: its alive check turns critical,
   * which is what an operator should see of a stopped node.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake.abort();
    if (this.role === 'leader' || this.role === 'candidate') await this.stepDown('shutdown', 'shutting down');
    await this.loopDone;
    if (this.keeper) clearInterval(this.keeper);
    this.lease.clear();
    if (this.session) {
      await this.deps.store.releaseMember(this.session).catch((e) => this.log.warn('member release failed', { error: errorMessage(e) }));
      this.dropSession();
    }
    await this.reapSessions();
    for (const p of this.deps.participants) await p.close?.();
  }

  /** Says at start when Consul's own election could outlast the lease (timing.ts). */
  private async checkConsulTiming(): Promise<void> {
    const electionMs = await this.deps.store.raftElectionTimeoutMs().catch(() => null);
    if (electionMs === null) return;
    const leaseMs = this.deps.config.timings.lease * 1000;
    const warning = consulTimingWarning(electionMs, leaseMs, this.loopWaitMs);
    if (warning) this.log.warn(warning.message, { code: 'consul_timing_unsafe', electionMs, leaseMs });
  }

  /** Wakes a standby blocked on the lock watch (e.g. a switchover or config change was requested). */
  poke(): void {
    this.wake.abort();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const started = performance.now();
      try {
        await this.turn();
      } catch (e) {
        this.log.error('reconcile turn failed', { error: errorMessage(e), code: (e as { code?: string }).code });
        await sleep(this.loopWaitMs);
      }
      const took = performance.now() - started;
      this.deps.metrics.loopDuration.observe(took / 1000);
      if (this.stopping) break;
      if (this.role === 'leader' || this.role === 'candidate') await this.pause(this.loopWaitMs - took);
      else if (this.retryAcquireSoon) await this.pause(LOCK_RETRY_MS);
      else await this.pause(MIN_STANDBY_TURN_MS - took);
    }
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0 || this.wake.signal.aborted) return;
    await sleep(ms, undefined, { signal: this.wake.signal }).catch(() => undefined);
  }

  private async turn(): Promise<void> {
    if (this.wake.signal.aborted && !this.stopping) this.wake = new AbortController();
    const o = await this.observe();
    const d = decide(o);
    // The lease timer may have stepped this node down while it observed: an action decided for the role it
    // had then (restart the leader's Postgres, finish a promotion) must not run now. Decide again next turn.
    if (this.role !== o.role) return;
    if (d.status !== this.status) this.log.info(d.status, { action: d.action.kind });
    this.status = d.status;
    this.activity = null;
    await this.act(d.action, o);
    await this.publish();
  }

  // --- observe ---------------------------------------------------------------------------------------------

  private async observe(): Promise<Observation> {
    const { store } = this.deps;
    const claiming = this.role === 'leader' || this.role === 'candidate';
    try {
      if (claiming) await this.confirmLock();
      else await this.watchLock();
      this.dynamicConfig = (await store.readDynamicConfig()).config;
      this.consulReachable = true;
      if (this.staleSessions.size > 0) await this.reapSessions();
    } catch (e) {
      if (this.consulReachable) this.log.warn('Consul unreachable', { error: errorMessage(e) });
      this.consulReachable = false;
    }
    const switchover = this.consulReachable ? await this.currentSwitchover() : null;
    const lockFree = this.consulReachable && this.lockHolder === null && !claiming;
    const failover = lockFree || this.role === 'leader' ? await this.currentFailover() : null;
    const fitness = lockFree ? await this.fitness(switchover, failover) : { fit: true, reason: '' };
    return {
      node: this.deps.config.nodeName,
      role: this.role,
      session: this.session,
      consulReachable: this.consulReachable,
      lockHolder: this.lockHolder,
      lastLeader: this.lastLeader,
      leaseValid: this.lease.valid(),
      paused: this.dynamicConfig.paused,
      nofailover: this.deps.config.nofailover,
      fitness,
      switchover,
      failover,
      // Parts (the manager) may ask a leader to hand over: decide() weighs it.
      leaderProblem: this.role === 'leader' ? await observeLeaderProblem(this.deps.participants, () => this.deps.store.listMembers(), this.deps.config.nodeName) : null,
    };
  }

  /**
   * A `?consistent` read of the lock; our session on it renews the lease from when the request was sent.
   * `timeoutMs` defaults to one call's budget (a turn must not stall); the keeper passes the lease itself.
   */
  private async confirmLock(timeoutMs?: number): Promise<void> {
    const sentAt = performance.now();
    const lock = await this.deps.store.readLock(true, timeoutMs);
    this.noteLock(lock.session, lock.leader);
    if (this.session !== null && lock.session === this.session) this.lease.confirm(sentAt);
  }

  /** Standbys block on the lock key, so a release wakes them within milliseconds rather than a turn later. */
  private async watchLock(): Promise<void> {
    const waitSeconds = this.retryAcquireSoon ? 0 : this.deps.config.timings.loopWait;
    const lock = waitSeconds === 0 ? await this.deps.store.readLock(false) : await this.deps.store.watchLock(this.lockIndex, waitSeconds);
    // Consul's rule for blocking queries: an index that goes backwards (a restored snapshot) resets to 0.
    this.lockIndex = lock.index < this.lockIndex ? 0 : lock.index;
    this.noteLock(lock.session, lock.leader);
  }

  private noteLock(holder: string | null, leader: LeaderRecord | null): void {
    this.lockHolder = holder;
    // Someone holds the lock: the race is over, go back to waiting on the key instead of polling it.
    if (holder !== null) this.retryAcquireSoon = false;
    if (leader) {
      this.lastLeader = leader;
      if (leader.term > this.term) this.setTerm(leader.term);
    }
  }

  private async currentSwitchover(): Promise<SwitchoverRequest | null> {
    const request = await this.deps.store.readSwitchover().catch(() => null);
    if (!request) return null;
    const lapse = switchoverLapse(request, this.lockHolder === null, Date.now());
    if (lapse) {
      this.log.warn(lapse, { ...request });
      await this.deps.store.writeSwitchover(null).catch(() => undefined);
      return null;
    }
    return request;
  }

  /** The manual failover standing while the lock is free; one that lapsed is deleted (requests.ts). */
  private async currentFailover(): Promise<FailoverRequest | null> {
    const request = await this.deps.store.readFailover().catch(() => null);
    if (!request) return null;
    const lapse = failoverLapse(request, this.role === 'leader', Date.now());
    if (lapse) {
      this.log.warn(lapse, { ...request });
      await this.deps.store.writeFailover(null).catch(() => undefined);
      return null;
    }
    return request;
  }

  private async fitness(switchover: SwitchoverRequest | null, failover: FailoverRequest | null): Promise<Fitness> {
    let ctx: TurnContext;
    try {
      ctx = await this.context(new AbortController().signal, switchover, failover);
    } catch (e) {
      // Fail closed: without the members' positions nobody can tell whether this node is behind.
      return { fit: false, reason: `cannot read the cluster's members: ${errorMessage(e)}` };
    }
    for (const p of this.deps.participants) {
      if (!p.fitness) continue;
      const f = await p.fitness(ctx).catch((e): Fitness => ({ fit: false, reason: `${p.name} fitness check failed: ${errorMessage(e)}` }));
      if (!f.fit) return f;
    }
    return { fit: true, reason: 'fit' };
  }

  /**
   * What the parts see this turn. Throws when the members cannot be read: an empty list would read as "no
   * standbys" (slots dropped, nobody to compare with), so a part never acts on a guess.
   */
  private async context(signal: AbortSignal, switchover: SwitchoverRequest | null = null, failover: FailoverRequest | null = null): Promise<TurnContext> {
    const members: MemberEntry[] = await this.deps.store.listMembers();
    return {
      term: this.term,
      leader: this.lastLeader,
      members,
      // The operator named this node (switchover, or manual failover): other standbys do not outrank it.
      switchoverTarget: switchover?.to === this.deps.config.nodeName || failover?.to === this.deps.config.nodeName,
      clusterEverLed: () => this.deps.store.everLed(),
      synchronousMode: this.dynamicConfig.synchronousMode,
      synchronousModeStrict: this.dynamicConfig.synchronousModeStrict,
      signal,
      log: this.log,
      // A part's check outlives a few missed turns but turns critical soon after the sidecar dies.
      report: (activity) => {
        if (activity !== this.activity) this.log.info(activity, { part: 'activity' });
        this.activity = activity;
      },
      reportCheck: (id, name, status, output) =>
        this.deps.store.reportCheck(id, name, status, output, this.deps.config.timings.checkTtl * 3).catch((e) => {
          this.log.debug('check update failed', { id, error: errorMessage(e) });
        }),
    };
  }

  // --- act -------------------------------------------------------------------------------------------------

  private async act(action: Action, o: Observation): Promise<void> {
    switch (action.kind) {
      case 'create_session':
        this.session = await this.deps.store.createSession(this.deps.config.timings.lockDelay);
        this.log.info('created Consul session', { session: this.session });
        if (this.role === 'starting' || this.role === 'demoted') this.setRole('standby');
        return;
      case 'acquire':
        return this.tryAcquire(action.why, o);
      case 'finish_promotion':
        return this.becomeLeader(o.switchover ? 'switchover' : !o.lastLeader ? 'start' : o.lastLeader.name === o.node ? 'resume' : 'failover', o);
      case 'stay_leader':
        if (!this.leadership) return; // stepped down meanwhile: nothing a leader does may run now
        return this.eachPart('leaderTurn', await this.context(this.leadership.signal));
      case 'clear_stale_lock':
        return this.clearStaleLock(action.session);
      case 'step_down':
        return this.stepDown(action.why, this.status);
      case 'hand_over': {
        // A hand-over a part asked for is published as a switchover, so this node waits and a standby takes over.
        // It is a planned switchover in every other way: writes stop (fast shutdown) before the lock is released.
        const request = o.switchover ?? { from: o.node, to: action.to, requestedAt: new Date().toISOString() };
        if (!o.switchover) await this.deps.store.writeSwitchover(request);
        return this.handOver(action.to, request);
      }
      case 'follow':
        if (this.role !== 'standby') this.setRole('standby');
        return this.eachPart('followerTurn', await this.context(new AbortController().signal));
      case 'wait':
        if (this.role === 'starting' && this.session) this.setRole('standby');
        return;
    }
  }

  private async eachPart(step: 'leaderTurn' | 'followerTurn', ctx: TurnContext): Promise<void> {
    for (const p of this.deps.participants) {
      await p[step]?.(ctx).catch((e) => this.log.warn(`${p.name} ${step} failed`, { error: errorMessage(e), code: (e as { code?: string }).code }));
    }
  }

  private leaderRecord(term: number): LeaderRecord {
    return { name: this.deps.config.nodeName, apiUrl: this.apiUrl, term, since: new Date().toISOString() };
  }

  /**
   * The lock is held by a session of this node that is not its live one (an earlier process's, or one this
   * process lost track of). Destroying it is safe: no Postgres of ours writes without our live session's
   * lease (the old process's died with it, design.md "Parent death"), and Consul's lock-delay keeps the lock
   * from everyone for `lockDelay` after the destroy.
   */
  private async clearStaleLock(session: string): Promise<void> {
    this.log.warn('the lock is held by a stale session of this node: destroying it', { session });
    this.staleSessions.add(session);
    await this.reapSessions();
  }

  private async tryAcquire(why: AcquireReason, o: Observation): Promise<void> {
    if (!this.session) return;
    const sentAt = performance.now();
    const acquired = await this.deps.store.acquireLock(this.session, this.leaderRecord(this.term));
    if (!acquired) {
      // Someone was faster, or the lock-delay of the dead leader's session is still in force.
      this.retryAcquireSoon = true;
      return;
    }
    this.retryAcquireSoon = false;
    this.lockHolder = this.session;
    this.lease.confirm(sentAt); // the acquire was a raft write that saw our session: a confirmation
    this.setRole('candidate');
    await this.becomeLeader(why, o);
  }

  /** Holding the lock: raise the term, record history, let every part promote; only then are we leader. */
  private async becomeLeader(why: AcquireReason, o: Observation): Promise<void> {
    const { store } = this.deps;
    this.leadership?.abort();
    const leadership = new AbortController();
    this.leadership = leadership;
    const previous = o.lastLeader?.name;
    try {
      const term = await store.raiseTerm();
      this.setTerm(term);
      const record = this.leaderRecord(term);
      const sentAt = performance.now();
      if (!this.session || !(await store.acquireLock(this.session, record))) throw new Error('lost the lock while raising the term');
      // A raft write that found our session on the lock: the lease counts from it, also when this promotion
      // resumes one an earlier turn began (the lock still ours) rather than following a fresh acquire.
      this.lease.confirm(sentAt);
      this.lastLeader = record;
      const reason = leadershipReason(why, previous, o.failover);
      await store.appendHistory({ term, at: record.since, kind: why, leader: record.name, previous, reason });
      const ctx = await this.context(leadership.signal);
      await this.deps.guard?.arm(); // write guard: armed before any part may make Postgres writable
      for (const p of this.deps.participants) {
        if (leadership.signal.aborted) return;
        await p.promote?.(ctx);
      }
      if (leadership.signal.aborted) return;
      if (o.switchover) await store.writeSwitchover(null);
      if (o.failover) await store.writeFailover(null);
      this.setRole('leader');
      this.deps.metrics.leaderChanges.inc();
      this.status = `promoted self to leader by acquiring the session lock (term ${term})`;
      this.activity = null;
      this.log.info(this.status, { why, previous });
    } catch (e) {
      if (leadership.signal.aborted) return;
      this.log.error('promotion failed; stepping down', { error: errorMessage(e), code: (e as { code?: string }).code });
      await this.stepDown('promotion_failed', `promotion failed: ${errorMessage(e)}`);
    }
  }

  /**
   * Stops writes first, then gives the lock back. Safe to call from the lease timer at any moment, and twice:
   * the role changes synchronously, so /leader answers 503 before any await.
   */
  private async stepDown(reason: DemoteReason, status: string, beforeRelease?: () => Promise<void>): Promise<void> {
    if (this.role !== 'leader' && this.role !== 'candidate') return;
    const wasLeader = this.role === 'leader';
    this.leadership?.abort();
    this.leadership = null;
    this.setRole('demoted');
    this.status = status;
    this.activity = null;
    // A planned stop (switchover, shutdown) still holds the lock: the keeper goes on confirming the lease, and
    // feeding the write guard, until Postgres has stopped, so a fast shutdown that sends the standbys every
    // WAL record is not cut short. A lost lease or lock ends the lease now.
    const planned = reason === 'switchover' || reason === 'shutdown';
    this.plannedStop = planned;
    if (!planned) this.lease.clear();
    this.log.warn('stepping down', { reason });
    const started = performance.now();
    // The lock is given back only once every part proved it stopped taking writes. Until then it stays ours
    // (released, or let lapse, another node could promote beside a Postgres that still writes), and so does
    // the session: the keeper keeps its check passing, and nobody else takes over meanwhile.
    while (!(await this.demoteParts(reason))) {
      this.status = 'stepping down: cannot prove postgres stopped taking writes; keeping the lock and retrying';
      await sleep(DEMOTE_RETRY_MS);
    }
    this.log.info('stopped taking writes', { reason, tookMs: Math.round(performance.now() - started) });
    this.plannedStop = false;
    this.lease.clear();
    await this.deps.guard?.disarm(); // write guard: disarmed only now that Postgres has stopped
    if (wasLeader) this.deps.metrics.leaderChanges.inc();
    await beforeRelease?.();
    let releaseUnknown = false;
    if (this.session && this.lastLeader) {
      // Releasing (rather than letting the session die) spares the others the lock-delay: writes have stopped.
      releaseUnknown = await this.deps.store.releaseLock(this.session, this.lastLeader).then(
        () => false,
        (e) => {
          this.log.warn('lock release failed', { error: errorMessage(e) });
          return true;
        },
      );
    }
    this.lockHolder = null;
    // A release whose answer was lost (a timeout during a raft election) may still be applied later, after a
    // re-acquire with the same session re-confirmed the lock, and free it with no lock-delay beside the
    // Postgres that promotion started: two writers (the fault suite's partition-leader, issue 10). So that
    // session never leads again. A fresh one is created next turn; the old one is destroyed once Consul
    // answers, and a destroy (unlike a release) gives the others the lock-delay.
    if (releaseUnknown || ((reason === 'lease_lost' || reason === 'lock_lost') && (await this.sessionAlive()) !== true)) {
      // Or: the session is dead, about to die, or Consul cannot say.
      this.dropSession();
    }
    if (!this.stopping) this.setRole('standby');
  }

  /** Every part's demote; false when one failed (its error is logged). */
  private async demoteParts(reason: DemoteReason): Promise<boolean> {
    const results = await Promise.all(
      this.deps.participants.map((p) =>
        (p.demote?.(reason, this.log) ?? Promise.resolve()).then(
          () => true,
          (e) => {
            this.log.error(`${p.name} demote failed`, { error: errorMessage(e), code: (e as { code?: string }).code });
            return false;
          },
        ),
      ),
    );
    return results.every(Boolean);
  }

  /** Stops using the current session; it is destroyed as soon as Consul answers. */
  private dropSession(): void {
    if (this.session) this.staleSessions.add(this.session);
    this.session = null;
  }

  /** Destroys the sessions this node no longer uses, and any an earlier process of it left behind. */
  private async reapSessions(): Promise<void> {
    try {
      const destroyed = await this.deps.store.destroyStaleSessions(this.session);
      if (destroyed.length > 0) this.log.info('destroyed stale Consul sessions of this node', { sessions: destroyed });
      this.staleSessions.clear();
    } catch (e) {
      if (this.staleSessions.size > 0) this.log.warn('stale sessions not destroyed yet; retrying next turn', { error: errorMessage(e), sessions: [...this.staleSessions] });
    }
  }

  /** Whether Consul still has our session; null when Consul does not answer. */
  private async sessionAlive(): Promise<boolean | null> {
    if (!this.session) return false;
    return this.deps.store.sessionExists(this.session).catch(() => null);
  }

  /** Planned switchover: stop writes, let the parts hand over (the target replays everything), release. */
  private async handOver(to: string | undefined, request: SwitchoverRequest): Promise<void> {
    this.log.info('switchover: handing the lock over', { to: to ?? 'best standby' });
    // Stamped before the lock is released (the target deletes the request once it leads): from then on the
    // target has SWITCHOVER_TARGET_GRACE_MS to take the lock before any fit node may.
    const stamp = () =>
      this.deps.store.writeSwitchover({ ...request, handedOverAt: new Date().toISOString() }).catch((e) => {
        this.log.warn('switchover record update failed', { error: errorMessage(e) });
      });
    await this.stepDown('switchover', `switchover: handed over to ${to ?? 'the best standby'}`, stamp);
  }

  // --- publish ---------------------------------------------------------------------------------------------

  private setRole(role: Role): void {
    if (role === this.role) return;
    const previous = this.role;
    this.role = role;
    this.deps.logContext.role = role;
    for (const r of ['starting', 'standby', 'candidate', 'leader', 'demoted'] as const) this.deps.metrics.role.set({ role: r }, r === role ? 1 : 0);
    this.log.info(`role ${previous} -> ${role}`);
    if (previous === 'leader' || role === 'leader' || previous === 'starting') {
      void this.deps.store.setServiceTags(this.serviceSpec()).catch((e) => this.log.warn('service tag update failed', { error: errorMessage(e) }));
    }
  }

  private setTerm(term: number): void {
    this.term = term;
    this.deps.logContext.term = term;
    this.deps.metrics.term.set(term);
  }

  private serviceSpec() {
    const { config } = this.deps;
    const tags = [this.role === 'leader' ? 'leader' : 'standby', ...(config.nofailover ? ['nofailover'] : [])];
    const postgresTag = this.role === 'leader' ? ('primary' as const) : ('replica' as const);
    return { node: config.nodeName, address: config.address, apiPort: config.apiPort, tags, postgresTag, checkTtlSeconds: config.timings.checkTtl };
  }

  private async publish(): Promise<void> {
    const { metrics, store, config } = this.deps;
    metrics.isLeader.set(this.leaderReady() ? 1 : 0);
    const age = this.lease.age();
    metrics.leaseAge.set(age === null ? -1 : age / 1000);
    if (!this.session || !this.consulReachable) return;
    const fields = {
      name: config.nodeName,
      address: config.address,
      apiUrl: this.apiUrl,
      role: this.role === 'demoted' ? 'demoted' : this.role,
      state: this.statusLine(),
      termSeen: this.term,
      nofailover: config.nofailover,
      ...Object.assign({}, ...this.deps.participants.map((p) => p.memberFields?.() ?? {})),
    };
    // Unchanged content is not written again (see MEMBER_REFRESH_MS): what peers read of this node (its
    // positions, its synchronous list) is exactly what it last wrote, so skipping a write hides nothing.
    const content = JSON.stringify(fields);
    const now = performance.now();
    const last = this.published;
    if (last && last.content === content && last.session === this.session && now - last.at < MEMBER_REFRESH_MS) return;
    const record: MemberRecord = { ...fields, updatedAt: new Date().toISOString() };
    const session = this.session;
    const held = await store.putMember(session, record).catch(() => false);
    this.published = held ? { content, session, at: now } : null;
    if (!held && (await this.sessionAlive()) === false) {
      this.log.warn('Consul session lost; a new one is created next turn', { session: this.session });
      this.dropSession();
    }
  }

  /**
   * The keeper: passes the alive check, renews the session and keeps the lease fresh while a long action holds
   * the loop. The three go out together, each on its own: on a slow network (400 ms round trips, lost packets)
   * a renewal that has to be retransmitted must not hold back the confirmation. A confirmation may take up to
   * a whole lease, since it counts from when it was sent, so one goes out every turn while the last confirmed
   * one is older than a turn, and several may be in flight: the first answer that shows our session renews
   * the lease (lease.ts ignores older and pre-step-down ones).
   */
  private async keep(): Promise<void> {
    const session = this.session;
    const age = this.lease.age();
    const holding = this.role === 'leader' || this.role === 'candidate' || this.plannedStop;
    const calls = [
      this.deps.store.passAliveCheck(this.statusLine().slice(0, 200)),
      session
        ? this.deps.store.renewSession(session).then((renewed) => {
            if (!renewed && this.session === session) {
              this.log.warn('Consul session expired; a new one is created next turn', { session });
              this.dropSession();
            }
          })
        : undefined,
      holding && (age === null || age > this.loopWaitMs) ? this.confirmLock(this.deps.config.timings.lease * 1000) : undefined,
    ];
    for (const outcome of await Promise.allSettled(calls)) {
      if (outcome.status === 'rejected') this.log.debug('keeper: Consul call failed', { error: errorMessage(outcome.reason) });
    }
  }
}
