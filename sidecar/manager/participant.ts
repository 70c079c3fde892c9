import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Role } from '../election/decide.js';
import type { DemoteReason, Participant, TurnContext } from '../election/participant.js';
import type { Logger } from '../log.js';
import type { HookEvent, ManagerConfig } from './config-section.js';
import { HealthProbe } from './health.js';
import { HookRunner, type HookIdentity, type HookResult } from './hooks.js';

/**
 * A standby asks its manager's health URL this often (at least; `healthInterval` when longer): the answer
 * gates only the leader's /leader and hand-over, so on a standby it feeds just the MANAGER column, where 10 s
 * is soon enough. One HTTP request per 10 s instead of one a second; the leader keeps `healthInterval`.
 */
const STANDBY_HEALTH_INTERVAL_MS = 10_000;

/** What `members/<node>` and /cluster say of the manager (the MANAGER column of `hactl cluster status`). */
export type ManagerMemberFields = {
  manager: { state: string; detail: string };
};

/**
 * Drives the manager application's role through hooks, and folds its health into `GET /leader`. Registered
 * last, so on a promotion Postgres is writable and the file mirror serves before the `leader` hook starts.
 *
 * Nothing here blocks the loop: hooks run in `HookRunner`, health in `HealthProbe`; the loop reads cached
 * state. Only a planned step-down (switchover, shutdown) waits for the `standby`/`stopping` hook, so the old
 * manager is passive before the new leader's manager becomes active; on a lost lease the hook is started
 * and not awaited (demote must finish within `demoteBudget`).
 */
export class ManagerParticipant implements Participant {
  readonly name = 'manager';
  private readonly hooks: HookRunner;
  private readonly health: HealthProbe | null;
  /** The term this node leads in; null while it does not lead. */
  private leaderTerm: number | null = null;
  private leaderHookOk = false;
  private leaderHookOkAt = 0;
  private leaderFailures = 0;
  private lastFailure = '';
  private nextLeaderRetryAt = 0;
  /** The term the last `standby` hook ran for, and whether it failed (retried like the leader hook). */
  private standbyTerm: number | null = null;
  private standbyFailed = false;
  private nextStandbyRetryAt = 0;
  private stoppingRan = false;
  /** The newest term the loop has shown us, for a `stopping` hook (close() has no turn context). */
  private knownTerm = 0;
  private readonly hookRuns = new Counter({ name: 'ha_sidecar_manager_hook_runs_total', help: 'Manager hook runs by hook and outcome', labelNames: ['hook', 'outcome'], registers: [] });
  private readonly failuresGauge = new Gauge({ name: 'ha_sidecar_manager_leader_hook_failures', help: 'Failed leader hooks in a row in this term', registers: [] });
  private readonly healthyGauge = new Gauge({ name: 'ha_sidecar_manager_healthy', help: "1 when the manager's health URL answers 2xx, 0 when not, -1 unknown or none", registers: [] });

  constructor(
    private readonly config: ManagerConfig,
    identity: HookIdentity,
    private readonly log: Logger,
  ) {
    this.hooks = new HookRunner(config.hooks, config.hookTimeout * 1000, identity, log, (r) =>
      this.hookRuns.inc({ hook: r.event, outcome: r.outcome }),
    );
    this.health = config.healthUrl
      ? new HealthProbe(config.healthUrl, config.healthInterval * 1000, config.healthTimeout * 1000, (s) => {
          this.healthyGauge.set(s.healthy ? 1 : 0);
          this.log[s.healthy ? 'info' : 'warn'](s.healthy ? 'manager is healthy' : 'manager is unhealthy', { detail: s.detail });
        })
      : null;
    this.healthyGauge.set(-1);
    this.health?.setIntervalMs(this.standbyHealthIntervalMs());
    this.health?.start();
  }

  /** A standby's manager health feeds only its MANAGER state: see STANDBY_HEALTH_INTERVAL_MS. */
  private standbyHealthIntervalMs(): number {
    return Math.max(this.config.healthInterval * 1000, STANDBY_HEALTH_INTERVAL_MS);
  }

  registerMetrics(registry: Registry): void {
    for (const m of [this.hookRuns, this.failuresGauge, this.healthyGauge]) registry.registerMetric(m);
  }

  // --- leader ----------------------------------------------------------------------------------------------

  /** Postgres is writable and the mirror serves (earlier parts): start the `leader` hook, without waiting for it. */
  async promote(ctx: TurnContext): Promise<void> {
    this.knownTerm = ctx.term;
    this.leaderTerm = ctx.term;
    this.leaderHookOk = !this.hooks.has('leader');
    this.leaderHookOkAt = performance.now();
    this.leaderFailures = 0;
    this.failuresGauge.set(0);
    this.standbyTerm = null;
    // The leader's /leader and its hand-over go by the manager's health: asked every healthInterval.
    this.health?.setIntervalMs(this.config.healthInterval * 1000);
    if (!this.leaderHookOk) this.startLeaderHook(ctx.term);
  }

  private startLeaderHook(term: number): void {
    void this.hooks.run('leader', term).then((r) => this.leaderHookEnded(r));
  }

  private leaderHookEnded(r: HookResult): void {
    if (this.leaderTerm !== r.term || r.outcome === 'superseded') return; // stepped down meanwhile
    if (r.outcome === 'ok') {
      this.leaderHookOk = true;
      this.leaderHookOkAt = performance.now();
      this.leaderFailures = 0;
      this.failuresGauge.set(0);
      void this.health?.check(); // so /leader need not wait a whole health interval
      return;
    }
    this.leaderFailures++;
    this.failuresGauge.set(this.leaderFailures);
    this.lastFailure = r.detail;
    this.nextLeaderRetryAt = performance.now() + this.config.leaderHookRetryDelay * 1000;
  }

  async leaderTurn(ctx: TurnContext): Promise<void> {
    this.knownTerm = ctx.term;
    // A turn that began before a step-down (the lease timer's) must not start a leader hook again.
    if (this.leaderTerm === null) return;
    const retry = !this.leaderHookOk && this.leaderFailures > 0 && this.hooks.current() === null && performance.now() >= this.nextLeaderRetryAt;
    if (retry) {
      this.log.info('retrying the leader hook', { failures: this.leaderFailures, of: this.config.leaderHookMaxFailures });
      this.startLeaderHook(ctx.term);
    }
    await this.report(ctx);
  }

  ready(role: Role): boolean {
    if (role !== 'leader') return true; // the manager's health gates the leader probe only
    return this.leaderTerm !== null && this.leaderHookOk && (this.health === null || this.health.get().healthy === true);
  }

  leaderProblem(): { problem: string; handOver: boolean } | null {
    if (this.leaderTerm === null) return null;
    const max = this.config.leaderHookMaxFailures;
    if (!this.leaderHookOk) {
      if (this.leaderFailures >= max) return { problem: `the leader hook failed ${this.leaderFailures} times (last: ${this.lastFailure})`, handOver: true };
      if (this.leaderFailures > 0) return { problem: `the leader hook failed ${this.leaderFailures} of ${max} times (last: ${this.lastFailure}); retrying`, handOver: false };
      return { problem: 'the leader hook is running', handOver: false };
    }
    const h = this.health?.get();
    if (!h || h.healthy !== false || h.unhealthySince === null) return null;
    const limit = this.config.unhealthyHandOverAfter;
    const seconds = (performance.now() - Math.max(h.unhealthySince, this.leaderHookOkAt)) / 1000;
    if (seconds >= limit) return { problem: `the manager has been unhealthy for ${Math.floor(seconds)} s (${h.detail})`, handOver: true };
    return { problem: `the manager is unhealthy (${h.detail}); hands over after ${limit} s`, handOver: false };
  }

  // --- standby and stopping --------------------------------------------------------------------------------

  /**
   * The `standby` hook starts before anything else the step-down does (it runs beside Postgres stopping
   * writes). A planned step-down waits for it, so the new leader's manager starts after ours went passive;
   * a lost lease does not (demote must end within `demoteBudget`; the manager must fence itself meanwhile).
   * A graceful shutdown runs `stopping` instead, when there is one.
   */
  async demote(reason: DemoteReason): Promise<void> {
    const term = this.leaderTerm ?? this.knownTerm;
    this.leaderTerm = null;
    this.leaderHookOk = false;
    this.health?.setIntervalMs(this.standbyHealthIntervalMs());
    const event: HookEvent = reason === 'shutdown' && this.hooks.has('stopping') ? 'stopping' : 'standby';
    if (!this.hooks.has(event)) return;
    if (event === 'stopping') this.stoppingRan = true;
    else this.standbyTerm = term;
    const run = this.hooks.run(event, term).then((r) => {
      if (event === 'standby') this.standbyEnded(r);
    });
    if (reason !== 'lease_lost' && reason !== 'lock_lost') await run;
  }

  async followerTurn(ctx: TurnContext): Promise<void> {
    this.knownTerm = ctx.term;
    this.leaderTerm = null;
    const due = this.standbyTerm !== ctx.term || (this.standbyFailed && this.hooks.current() === null && performance.now() >= this.nextStandbyRetryAt);
    if (this.hooks.has('standby') && due) {
      this.standbyTerm = ctx.term;
      this.standbyFailed = false;
      void this.hooks.run('standby', ctx.term).then((r) => this.standbyEnded(r));
    }
    await this.report(ctx);
  }

  private standbyEnded(r: HookResult): void {
    if (r.term !== this.standbyTerm || r.outcome === 'superseded') return;
    this.standbyFailed = r.outcome !== 'ok';
    if (!this.standbyFailed) void this.health?.check(); // the hook may have just started the manager: show it now
    if (this.standbyFailed) this.nextStandbyRetryAt = performance.now() + this.config.leaderHookRetryDelay * 1000;
  }

  async close(): Promise<void> {
    this.health?.stop();
    if (this.hooks.has('stopping') && !this.stoppingRan) {
      this.stoppingRan = true;
      await this.hooks.run('stopping', this.knownTerm);
    }
    await this.hooks.cancelAll();
  }

  // --- reporting -------------------------------------------------------------------------------------------

  /** One short word or phrase for the MANAGER column, and what lies behind it. */
  private state(): { state: string; detail: string; level: 'passing' | 'warning' | 'critical' } {
    const running = this.hooks.current();
    const leading = this.leaderTerm !== null;
    if (leading && !this.leaderHookOk) {
      if (this.leaderFailures > 0) {
        const state = `leader hook failed (${this.leaderFailures}/${this.config.leaderHookMaxFailures})`;
        return { state, detail: this.lastFailure, level: 'critical' };
      }
      return { state: 'leader hook running', detail: `term ${this.leaderTerm}`, level: 'warning' };
    }
    if (running) return { state: `${running.event} hook running`, detail: `term ${running.term}`, level: 'warning' };
    if (!leading && this.standbyFailed) return { state: 'standby hook failed', detail: 'retried', level: 'warning' };
    const h = this.health?.get();
    if (h) {
      const state = h.healthy === null ? 'unknown' : h.healthy ? 'healthy' : 'unhealthy';
      return { state, detail: h.detail, level: h.healthy ? 'passing' : leading ? 'critical' : 'warning' };
    }
    return { state: leading ? 'active' : 'passive', detail: 'no health URL', level: 'passing' };
  }

  private async report(ctx: TurnContext): Promise<void> {
    const s = this.state();
    await ctx.reportCheck('manager', 'manager', s.level, `${s.state}: ${s.detail}`);
  }

  memberFields(): ManagerMemberFields {
    const { state, detail } = this.state();
    return { manager: { state, detail } };
  }
}

/** The manager part, when the config names hooks or a health URL; null otherwise (nothing to drive). */
export function createManagerParticipant(config: ManagerConfig | undefined, identity: HookIdentity, log: Logger): ManagerParticipant | null {
  if (!config || (Object.keys(config.hooks).length === 0 && !config.healthUrl)) return null;
  return new ManagerParticipant(config, identity, log);
}
