import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SidecarConfig } from '../config.js';
import type { ConsulStore, MemberEntry } from '../consul/store.js';
import type { DynamicConfig, LeaderRecord, MemberRecord, SwitchoverRequest } from '../consul/records.js';
import { defaultDynamicConfig } from '../consul/records.js';
import { errorMessage } from '../errors.js';
import type { LogContext, Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { decide, type AcquireReason, type Action, type Fitness, type Observation, type Role } from './decide.js';
import { observeLeaderProblem } from './handover.js';
import { Lease } from './lease.js';
import type { DemoteReason, Participant, TurnContext } from './participant.js';

/**
 * After an acquire is refused while the lock is free (Consul's lock-delay is in force), retry at this pace:
 * the take-over then happens within this much of the delay's end, without hot-looping on Consul.
 */
const LOCK_RETRY_MS = 250;
/** A standby's turn never comes faster than this, even when the blocking read wakes at once. */
const MIN_STANDBY_TURN_MS = 100;
/** A switchover the target has not completed by then is dropped, so the cluster is not left leaderless. */
const SWITCHOVER_TIMEOUT_MS = 30_000;

export interface LoopDeps {
  config: SidecarConfig;
  store: ConsulStore;
  log: Logger;
  logContext: LogContext;
  metrics: Metrics;
  participants: Participant[];
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
  private session: string | null = null;
  private lockIndex = 0;
  private lockHolder: string | null = null;
  private lastLeader: LeaderRecord | null = null;
  private dynamicConfig: DynamicConfig = defaultDynamicConfig;
  private consulReachable = false;
  private retryAcquireSoon = false;
  private leadership: AbortController | null = null;
  private stopping = false;
  private keeper: NodeJS.Timeout | null = null;
  private loopDone: Promise<void> | null = null;
  private wake: AbortController = new AbortController();
  private readonly lease: Lease;
  private readonly loopWaitMs: number;

  constructor(private readonly deps: LoopDeps) {
    this.loopWaitMs = deps.config.timings.loopWait * 1000;
    this.lease = new Lease(deps.config.timings.lease * 1000, () => {
      if (this.role === 'leader' || this.role === 'candidate') void this.stepDown('lease_lost', 'lease expired without a confirmed lock');
    });
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
      status: this.status,
      leader: this.lockHolder ? this.lastLeader : null,
      lockHeld: this.session !== null && this.lockHolder === this.session,
      leaseAgeMs: this.lease.age(),
      dynamicConfig: this.dynamicConfig,
    };
  }

  /** The load balancer's question: should writes come here? Only with a valid lease and every part ready. */
  leaderReady(): boolean {
    return this.role === 'leader' && this.lease.valid() && this.deps.participants.every((p) => p.ready?.('leader') ?? true);
  }

  /** Registers the service and starts the keeper and the loop. Fails (nothing left behind) when Consul is down. */
  async start(): Promise<void> {
    await this.deps.store.registerService(this.serviceSpec());
    this.consulReachable = true;
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
      const session = this.session;
      await this.deps.store
        .releaseMember(session)
        .then(() => this.deps.store.destroySession(session))
        .catch((e) => this.log.warn('session clean-up failed', { error: errorMessage(e) }));
    }
    for (const p of this.deps.participants) await p.close?.();
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
    if (d.status !== this.status) this.log.info(d.status, { action: d.action.kind });
    this.status = d.status;
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
    } catch (e) {
      if (this.consulReachable) this.log.warn('Consul unreachable', { error: errorMessage(e) });
      this.consulReachable = false;
    }
    const switchover = this.consulReachable ? await this.currentSwitchover() : null;
    const lockFree = this.consulReachable && this.lockHolder === null && !claiming;
    const fitness = lockFree ? await this.fitness() : { fit: true, reason: '' };
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
      // Parts (the manager) may ask a leader to hand over: decide() weighs it.
      leaderProblem: this.role === 'leader' ? await observeLeaderProblem(this.deps.participants, () => this.deps.store.listMembers(), this.deps.config.nodeName) : null,
    };
  }

  /** A `?consistent` read of the lock; our session on it renews the lease from when the request was sent. */
  private async confirmLock(): Promise<void> {
    const sentAt = performance.now();
    const lock = await this.deps.store.readLock(true);
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
    if (leader) {
      this.lastLeader = leader;
      if (leader.term > this.term) this.setTerm(leader.term);
    }
  }

  private async currentSwitchover(): Promise<SwitchoverRequest | null> {
    const request = await this.deps.store.readSwitchover().catch(() => null);
    if (request && Date.now() - Date.parse(request.requestedAt) > SWITCHOVER_TIMEOUT_MS) {
      this.log.warn('dropping a switchover that did not complete in time', { ...request });
      await this.deps.store.writeSwitchover(null).catch(() => undefined);
      return null;
    }
    return request;
  }

  private async fitness(): Promise<Fitness> {
    const ctx = await this.context(new AbortController().signal);
    for (const p of this.deps.participants) {
      if (!p.fitness) continue;
      const f = await p.fitness(ctx).catch((e): Fitness => ({ fit: false, reason: `${p.name} fitness check failed: ${errorMessage(e)}` }));
      if (!f.fit) return f;
    }
    return { fit: true, reason: 'fit' };
  }

  private async context(signal: AbortSignal): Promise<TurnContext> {
    const members = await this.deps.store.listMembers().catch((): MemberEntry[] => []);
    return {
      term: this.term,
      leader: this.lastLeader,
      members,
      synchronousMode: this.dynamicConfig.synchronousMode,
      synchronousModeStrict: this.dynamicConfig.synchronousModeStrict,
      signal,
      log: this.log,
      // A part's check outlives a few missed turns but turns critical soon after the sidecar dies.
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
        return this.eachPart('leaderTurn', await this.context(this.leadership?.signal ?? new AbortController().signal));
      case 'step_down':
        return this.stepDown(action.why, this.status);
      case 'hand_over':
        // A hand-over a part asked for is published as a switchover, so this node waits and a standby takes over.
        // It is a planned switchover in every other way: writes stop (fast shutdown) before the lock is released.
        if (!o.switchover) await this.deps.store.writeSwitchover({ from: o.node, to: action.to, requestedAt: new Date().toISOString() });
        return this.handOver(action.to);
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
      if (!this.session || !(await store.acquireLock(this.session, record))) throw new Error('lost the lock while raising the term');
      this.lastLeader = record;
      await store.appendHistory({ term, at: record.since, kind: why, leader: record.name, previous, reason: this.historyReason(why, previous) });
      const ctx = await this.context(leadership.signal);
      for (const p of this.deps.participants) {
        if (leadership.signal.aborted) return;
        await p.promote?.(ctx);
      }
      if (leadership.signal.aborted) return;
      if (o.switchover) await store.writeSwitchover(null);
      this.setRole('leader');
      this.deps.metrics.leaderChanges.inc();
      this.status = `promoted self to leader by acquiring the session lock (term ${term})`;
      this.log.info(this.status, { why, previous });
    } catch (e) {
      if (leadership.signal.aborted) return;
      this.log.error('promotion failed; stepping down', { error: errorMessage(e), code: (e as { code?: string }).code });
      await this.stepDown('promotion_failed', `promotion failed: ${errorMessage(e)}`);
    }
  }

  private historyReason(why: AcquireReason, previous: string | undefined): string {
    if (why === 'start') return 'cluster started';
    if (why === 'resume') return 'the leader took its lock back after a restart';
    if (why === 'switchover') return `planned switchover from ${previous ?? 'unknown'}`;
    return `leader ${previous ?? 'unknown'} lost its lock`;
  }

  /**
   * Stops writes first, then gives the lock back. Safe to call from the lease timer at any moment, and twice:
   * the role changes synchronously, so /leader answers 503 before any await.
   */
  private async stepDown(reason: DemoteReason, status: string): Promise<void> {
    if (this.role !== 'leader' && this.role !== 'candidate') return;
    const wasLeader = this.role === 'leader';
    this.leadership?.abort();
    this.leadership = null;
    this.setRole('demoted');
    this.status = status;
    this.lease.clear();
    this.log.warn('stepping down', { reason });
    const started = performance.now();
    await Promise.all(
      this.deps.participants.map((p) => p.demote?.(reason, this.log).catch((e) => this.log.error(`${p.name} demote failed`, { error: errorMessage(e) }))),
    );
    this.log.info('stopped taking writes', { reason, tookMs: Math.round(performance.now() - started) });
    if (wasLeader) this.deps.metrics.leaderChanges.inc();
    if (this.session && this.lastLeader) {
      // Releasing (rather than letting the session die) spares the others the lock-delay: writes have stopped.
      await this.deps.store.releaseLock(this.session, this.lastLeader).catch((e) => this.log.warn('lock release failed', { error: errorMessage(e) }));
    }
    this.lockHolder = null;
    if (reason === 'lease_lost' || reason === 'lock_lost') {
      // The session may be dead or about to die; a fresh one is created next turn if so.
      this.session = (await this.sessionAlive()) ? this.session : null;
    }
    if (!this.stopping) this.setRole('standby');
  }

  private async sessionAlive(): Promise<boolean> {
    if (!this.session) return false;
    return this.deps.store.sessionExists(this.session).catch(() => false);
  }

  /** Planned switchover: stop writes, let the parts hand over (the target replays everything), release. */
  private async handOver(to: string | undefined): Promise<void> {
    this.log.info('switchover: handing the lock over', { to: to ?? 'best standby' });
    await this.stepDown('switchover', `switchover: handed over to ${to ?? 'the best standby'}`);
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
    return { node: config.nodeName, address: config.address, apiPort: config.apiPort, tags, checkTtlSeconds: config.timings.checkTtl };
  }

  private async publish(): Promise<void> {
    const { metrics, store, config } = this.deps;
    metrics.isLeader.set(this.leaderReady() ? 1 : 0);
    const age = this.lease.age();
    metrics.leaseAge.set(age === null ? -1 : age / 1000);
    if (!this.session || !this.consulReachable) return;
    const record: MemberRecord = {
      name: config.nodeName,
      address: config.address,
      apiUrl: this.apiUrl,
      role: this.role === 'demoted' ? 'demoted' : this.role,
      state: this.status,
      termSeen: this.term,
      nofailover: config.nofailover,
      updatedAt: new Date().toISOString(),
      ...Object.assign({}, ...this.deps.participants.map((p) => p.memberFields?.() ?? {})),
    };
    const held = await store.putMember(this.session, record).catch(() => false);
    if (!held && !(await this.sessionAlive())) {
      this.log.warn('Consul session lost; a new one is created next turn', { session: this.session });
      this.session = null;
    }
  }

  /** The keeper: passes the alive check and keeps the lease fresh while a long action holds the loop. */
  private async keep(): Promise<void> {
    try {
      await this.deps.store.passAliveCheck(this.status.slice(0, 200));
      const age = this.lease.age();
      if ((this.role === 'leader' || this.role === 'candidate') && (age === null || age > this.loopWaitMs)) await this.confirmLock();
    } catch (e) {
      this.log.debug('keeper: Consul call failed', { error: errorMessage(e) });
    }
  }
}
