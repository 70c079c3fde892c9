// Over 400 lines: one class carries the whole Postgres side of a role (fitness, promotion, convergence, operator
// actions), each step beside the others it must stay consistent with; the controller below it is split by concern.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Fitness, Role } from '../election/decide.js';
import { candidateProblem } from '../election/eligibility.js';
import type { DemoteReason, OperatorAction, Participant, TurnContext } from '../election/participant.js';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { finiteOrNull } from '../units.js';
import type { Upstream } from './conf.js';
import { PostgresController } from './controller.js';
import type { PostgresStatus } from './status.js';
import { postgresSettings, type PostgresNodeValues, type PostgresSection } from './settings.js';
import { pgName } from './quoting.js';
import { peerIsAhead, peersToCompare, synchronousModeUnfitReason, type RankingContext } from './ranking.js';

/** A peer's fresh WAL position must arrive this fast, or the peer counts as unreachable for the comparison. */
const PEER_POSITION_TIMEOUT_MS = 1_000;
/**
 * A standby that does not stream from a leader whose Postgres is a primary for this long is rewound (it may
 * have diverged); after a second such window it is cloned again. Long enough for the WAL receiver's own
 * retries (every 5 s, wal_retrieve_retry_interval) and a leader's restart, short enough to converge in a minute.
 */
const NOT_STREAMING_WINDOW_MS = 20_000;
/** Consecutive failed starts of a standby's Postgres before its data is cloned again from the leader. */
const FAILED_STARTS_BEFORE_RECLONE = 3;
/**
 * In non-strict synchronous mode a new leader still makes commits wait for any standby for this long before
 * it may fall back to asynchronous: enough for the standbys to rewind and stream again after a failover.
 */
const SYNC_FALLBACK_GRACE_MS = 30_000;

/** The fields a node publishes in `members/<node>` and on /health about its Postgres. */
export type PostgresMemberFields = {
  /** Primary: flushed WAL; standby: the most it has (received or replayed). Bytes. */
  walPosition: number | null;
  /** Standby: WAL replayed (a standby with paused or slow replay needs longer to promote). Bytes. */
  replayPosition: number | null;
  /** Standby: bytes behind the leader's last published position. */
  lagBytes: number | null;
  timeline: number | null;
  streaming: boolean;
  pgRole: PostgresStatus['role'];
  /** Leader: the standbys in synchronous_standby_names; only these may be promoted in synchronous mode. */
  syncStandbys: string[] | null;
};

/** What the participant decides with besides its controller: the node's name and data directory, and two settings of its section. */
export interface PostgresParticipantConfig {
  nodeName: string;
  /** The sidecar's data directory: the synchronous list this node last published as leader is kept there. */
  dataDir: string;
  /** The port every member's Postgres listens on: peers are compared and followed there. */
  port: number;
  /** Most a standby may be behind the last known primary position and still take over (bytes). */
  maxLagOnFailover: number;
}

const firstLine = (text: string): string => text.split('\n')[0].slice(0, 200);
const sameList = (a: string[] | null | undefined, b: string[] | null): boolean => a !== undefined && (a === null || b === null ? a === b : a.join() === b.join());

/**
 * Carries the role the reconcile loop decided over to the local PostgreSQL: primary on the leader, a
 * streaming standby of the leader elsewhere; rewinds or re-clones a former primary; keeps slots and the
 * synchronous standby list on the leader; says whether the node is fit to take over (design rule 5).
 */
export class PostgresParticipant implements Participant {
  readonly name = 'postgres';
  private status: PostgresStatus | null = null;
  private primaryReady = false;
  /**
   * Published in members/<node>: the standbys that may hold every acknowledged commit (null: asynchronous).
   * Kept on disk too (`syncStandbysFile`): a former leader restarted after a crash must go on publishing the
   * list it led with, not null, or a standby lacking acknowledged commits reads "no list", compares with no one
   * and takes over (the fault suite's sync-one-acker, issue 10). Only the last leader's list is ever read.
   */
  private syncStandbysNow: string[] | null;
  private readonly syncStandbysFile: string;
  /** What synchronous_standby_names holds (see updateSynchronousStandbys), and a wider list waiting one turn. */
  private appliedSync: string[] | null = null;
  private pendingSync: string[] | null | undefined = undefined;
  /** When this node last became the leader (performance.now()). */
  private leaderSince = 0;
  private leaderPosition: number | null = null;
  /** Convergence of a standby (followerTurn): since when it has not streamed, whether it was rewound for it, failed starts. */
  private notStreamingSince: number | null = null;
  private rewoundForStreaming = false;
  private failedStarts = 0;
  /** An operator's reinit (hactl cluster reinit) the next follower turn carries out; settled once the new copy streams. */
  private reinit: { resolve: () => void; reject: (e: Error) => void; cloned: boolean } | null = null;

  constructor(
    private readonly pg: PostgresController,
    private readonly config: PostgresParticipantConfig,
    private readonly log: Logger,
  ) {
    this.syncStandbysFile = join(config.dataDir, 'sync-standbys.json');
    this.syncStandbysNow = readSyncStandbys(this.syncStandbysFile);
  }

  private get syncStandbys(): string[] | null {
    return this.syncStandbysNow;
  }

  private set syncStandbys(list: string[] | null) {
    if (sameList(list, this.syncStandbysNow)) return;
    this.syncStandbysNow = list;
    // Written before the next publish reads it, atomically (temporary name, then rename).
    writeFileSync(`${this.syncStandbysFile}.tmp`, JSON.stringify(list));
    renameSync(`${this.syncStandbysFile}.tmp`, this.syncStandbysFile);
  }

  private async refresh(): Promise<PostgresStatus> {
    this.status = await this.pg.status();
    return this.status;
  }

  private position(s: PostgresStatus | null): number | null {
    if (!s) return null;
    if (s.role === 'primary') return s.currentLsn?.bytes ?? null;
    const got = [s.receivedLsn?.bytes, s.replayedLsn?.bytes].filter((b): b is number => b !== undefined);
    return got.length ? Math.max(...got) : null;
  }

  async fitness(ctx: TurnContext): Promise<Fitness> {
    if (!this.pg.hasDataDir()) {
      // A cluster that never had a leader has no data anywhere: whoever wins the lock runs initdb. Anything
      // less than proof (a missing or unreadable `leader` value, a restarted node that has not seen a term)
      // is no proof: an initdb then would start a second database that others might clone over the real one.
      const fresh = ctx.term === 0 && ctx.leader === null && !(await ctx.clusterEverLed());
      return fresh ? { fit: true, reason: 'new cluster: will initialise postgres' } : { fit: false, reason: 'postgres has no data yet (never cloned)' };
    }
    let s = await this.refresh();
    const lastLeader = ctx.leader?.name;
    if (s.intent === 'primary' && !s.running) {
      // A stopped former primary is the freshest copy only if it was the last leader; otherwise it diverged.
      return lastLeader === this.config.nodeName || lastLeader === undefined
        ? { fit: true, reason: 'was the last primary' }
        : { fit: false, reason: 'former primary: waits for the new leader to rewind from' };
    }
    if (!s.running) {
      await this.pg.start(); // as a standby (its recorded intent): read-only, so its position can be read
      s = await this.refresh();
    }
    const mine = this.position(s) ?? 0;
    const mineReplayed = s.replayedLsn?.bytes ?? 0;

    const leaderRecord = ctx.members.find((m) => m.record.name === lastLeader)?.record;
    const lastPrimary = finiteOrNull(leaderRecord?.walPosition);
    // election/eligibility.ts; an unknown bar is no bar here, or a cluster whose leader never published stays leaderless.
    const lag = candidateProblem({ alive: true, nofailover: false, ...(lastPrimary !== null ? { behindBytes: lastPrimary - mine } : {}) }, this.config.maxLagOnFailover);
    if (lag?.kind === 'behind') return { fit: false, reason: `${lag.bytes} bytes behind the last known primary position (limit ${lag.limit})` };

    const leaderSync = Array.isArray(leaderRecord?.syncStandbys) ? (leaderRecord.syncStandbys as string[]) : null;
    const ranking: RankingContext = { self: this.config.nodeName, lastLeader, synchronousMode: ctx.synchronousMode, leaderSync };
    const unfitForSync = synchronousModeUnfitReason(ranking, leaderRecord !== undefined);
    if (unfitForSync !== null) return { fit: false, reason: unfitForSync };
    // The switchover target was handed everything by the old leader; other standbys do not outrank it.
    if (ctx.switchoverTarget) return { fit: true, reason: `switchover target, WAL position ${mine}` };

    // Compare with the peers that could lead, as their own Postgres reports it now (see peersToCompare); read
    // all at once, so an unreachable peer costs the take-over one timeout, not one per peer.
    const self = { name: this.config.nodeName, position: { wal: mine, replayed: mineReplayed } };
    const peers = peersToCompare(ctx.members, ranking);
    const positions = await Promise.all(peers.map((peer) => this.pg.peerPosition({ host: peer.address, port: this.config.port }, PEER_POSITION_TIMEOUT_MS).catch(() => undefined)));
    for (const [i, peer] of peers.entries()) {
      const theirs = positions[i];
      if (theirs === null || theirs === undefined) {
        if (peer.mustCompare) {
          return { fit: false, reason: `synchronous mode: cannot read ${peer.name}'s position, and it may hold newer commits` };
        }
        continue; // not running, never cloned, or unreachable: it has no position to offer
      }
      if (peerIsAhead({ name: peer.name, position: theirs }, self)) {
        return { fit: false, reason: `${peer.name} is ahead (received ${theirs.wal} vs ${mine}, replayed ${theirs.replayed} vs ${mineReplayed} bytes)` };
      }
    }
    return { fit: true, reason: `WAL position ${mine}` };
  }

  async promote(ctx: TurnContext): Promise<void> {
    // Called only while this node holds the lock with a valid lease; demote revokes the permit first thing.
    this.pg.permitPrimary(true);
    this.settleReinit(new SidecarError('reinit_leader_refused', 'this node became the leader before its reinit ran: a leader is never recloned', 409));
    this.leaderSince = performance.now();
    // In synchronous mode the new primary makes commits wait for any standby from its first write on ('*',
    // set before it is promoted; published as every other member): narrowed to the streaming ones later.
    this.appliedSync = ctx.synchronousMode ? [] : null;
    this.pendingSync = undefined;
    this.syncStandbys = ctx.synchronousMode ? ctx.members.map((m) => pgName(m.record.name)).filter((n) => n !== pgName(this.config.nodeName)) : null;
    await this.pg.setSynchronousStandbys(this.appliedSync);
    if (!this.pg.hasDataDir()) {
      if (ctx.leader && ctx.leader.name !== this.config.nodeName) {
        throw new SidecarError('postgres_no_data', 'cannot lead: this node has no Postgres data and the cluster already had a leader');
      }
      await this.pg.initPrimary();
    } else {
      const s = await this.refresh();
      if (s.intent === 'primary') await this.pg.start();
      else await this.pg.promote();
    }
    if (ctx.signal.aborted) return;
    await this.leaderTurn(ctx);
    this.primaryReady = (await this.refresh()).role === 'primary';
    if (!this.primaryReady) throw new SidecarError('promote_failed', 'postgres did not come up as a writable primary');
  }

  async demote(reason: DemoteReason, log: Logger): Promise<void> {
    // Synchronously, before any await: no start or promotion still under way can leave a primary running.
    this.pg.permitPrimary(false);
    this.primaryReady = false;
    // A lost lease leaves moments before another node may write: stop at once. A planned hand-over stops
    // fast, which first sends every WAL record to the connected standbys, so the target has all of it.
    const mode = reason === 'switchover' || reason === 'shutdown' ? 'fast' : 'immediate';
    await this.pg.stop(mode);
    log.info('postgres stopped', { mode, reason });
  }

  async leaderTurn(ctx: TurnContext): Promise<void> {
    let s = await this.refresh();
    if (!s.running) {
      if (ctx.signal.aborted) return; // no longer the leader: never start a primary
      ctx.report('postgres is not running on the leader: starting it');
      await this.pg.start();
      s = await this.refresh();
    }
    const standbys = ctx.members.map((m) => m.record.name).filter((n) => n !== this.config.nodeName);
    await this.pg.ensureReplicationSlots(standbys.map(pgName));
    await this.updateSynchronousStandbys(ctx, s);
    this.leaderPosition = s.currentLsn?.bytes ?? null;
    this.primaryReady = s.role === 'primary';
    await ctx.reportCheck('postgres', 'postgres', this.primaryReady ? 'passing' : 'critical', this.primaryReady ? `primary, timeline ${s.timeline}, ${s.replicas.length} standbys` : `leader's postgres is ${s.role}`);
  }

  /**
   * Synchronous mode (design rule 5): commits wait for `ANY 1` of the member standbys that stream now, or,
   * when none streams, for any standby at all (`'*'`) in strict mode and during a new leader's first
   * SYNC_FALLBACK_GRACE_MS (so a second fault right after a failover cannot lose commits acknowledged by the
   * leader alone); non-strict mode falls back to asynchronous after that. The published list (who may hold
   * every commit, read by the candidates' fitness) must never be narrower than what Postgres applies, so a
   * list that grows is published one turn before Postgres uses it; a list that shrinks is applied at once.
   */
  private async updateSynchronousStandbys(ctx: TurnContext, s: PostgresStatus): Promise<void> {
    if (!ctx.synchronousMode) {
      await this.pg.setSynchronousStandbys(null);
      this.syncStandbys = null;
      this.pendingSync = undefined;
      return;
    }
    const others = ctx.members.map((m) => pgName(m.record.name)).filter((n) => n !== pgName(this.config.nodeName));
    // A base backup's walsender (application_name "<node>_clone") streams too, but is no standby.
    const streaming = s.replicas.filter((r) => r.state === 'streaming' && others.includes(r.name)).map((r) => r.name);
    const waitForAny = ctx.synchronousModeStrict || performance.now() - this.leaderSince < SYNC_FALLBACK_GRACE_MS;
    const wanted = streaming.length > 0 ? streaming : waitForAny ? [] : null;
    // Who may acknowledge a commit under a setting: nobody but the leader (asynchronous), any standby ('*'), or the named ones.
    const ackers = (names: string[] | null): string[] => (names === null ? [] : names.length === 0 ? others : names);
    const widens = ackers(wanted).some((n) => !ackers(this.appliedSync).includes(n));
    const published = [...new Set([...ackers(this.appliedSync), ...ackers(wanted)])].sort();
    if (widens && !sameList(this.pendingSync, wanted)) {
      this.pendingSync = wanted; // applied next turn, once `published` is in members/<node>
      this.syncStandbys = published;
      return;
    }
    await this.pg.setSynchronousStandbys(wanted);
    this.appliedSync = wanted;
    this.pendingSync = undefined;
    this.syncStandbys = wanted === null ? null : ackers(wanted);
  }

  /**
   * Keeps this node a streaming standby of the leader, and converges whatever went wrong (design.md
   * "Convergence"): a former primary is rewound; a standby that does not stream for a window is rewound,
   * and cloned again after a second; one whose Postgres fails to start three times in a row is cloned
   * again. Rewinds and clones wait until the leader's Postgres is a primary (its promotion finished), and a
   * re-clone keeps the replaced data aside until the new copy streams.
   */
  async followerTurn(ctx: TurnContext): Promise<void> {
    this.primaryReady = false;
    const leader = ctx.members.find((m) => m.record.name === ctx.leader?.name);
    if (!leader) return waitForLeader(ctx, `waiting for leader ${ctx.leader?.name ?? 'unknown'} to publish its address`);
    const leaderName = leader.record.name;
    const upstream: Upstream = { host: leader.record.address, port: this.config.port };
    this.leaderPosition = finiteOrNull(leader.record.walPosition);
    const leaderIsPrimary = leader.alive && leader.record.role === 'leader' && leader.record.pgRole === 'primary';
    const progress = (what: string) => (percent: number) => ctx.report(`${what} from ${leaderName} (${percent} %)`);
    if (this.reinit && !this.reinit.cloned) return this.runReinit(ctx, upstream, leaderName, leaderIsPrimary);

    // A turn that found a streaming standby changed nothing: the status it read stands for the turn's end too.
    let unchanged: PostgresStatus | null = null;
    try {
      if (!this.pg.hasDataDir()) {
        if (!leaderIsPrimary) return waitForLeader(ctx, `no data yet: waiting for leader ${leaderName}'s postgres to be a primary to clone it`);
        ctx.report(`cloning from ${leaderName}`);
        await this.pg.cloneFrom(upstream, progress('cloning'));
      } else {
        const s = await this.refresh();
        if (s.intent === 'primary') {
          if (!leaderIsPrimary) return waitForLeader(ctx, `former primary: waiting for leader ${leaderName} to finish its promotion before rewinding`);
          ctx.report(`former primary: rewinding from ${leaderName}`);
          if (!(await this.pg.rewindFrom(upstream, progress('rewinding')))) await this.reclone(ctx, upstream, leaderName, 'pg_rewind failed or could not rewind');
        } else if (!s.running || s.upstream?.host !== upstream.host || s.upstream.port !== upstream.port) {
          await this.pg.follow(upstream);
          this.failedStarts = 0;
        } else if (!s.streaming) {
          await this.notStreaming(ctx, upstream, leaderName, leaderIsPrimary, s.error);
        } else {
          this.notStreamingSince = null;
          this.rewoundForStreaming = false;
          this.failedStarts = 0;
          this.pg.discardPreviousDataDir();
          if (this.reinit?.cloned) this.settleReinit(null);
          unchanged = s;
        }
      }
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'postgres_start_failed' && code !== 'postgres_start_timeout') throw e;
      this.failedStarts++;
      const reason = firstLine(errorMessage(e));
      ctx.report(`postgres fails to start (${this.failedStarts} of ${FAILED_STARTS_BEFORE_RECLONE}): ${reason}`);
      if (this.failedStarts >= FAILED_STARTS_BEFORE_RECLONE && leaderIsPrimary) await this.reclone(ctx, upstream, leaderName, `postgres fails to start: ${reason}`);
      return;
    }
    await this.pg.ensureReplicationSlots([]);
    const s = unchanged ?? (await this.refresh());
    const lag = this.lagBytes();
    const ok = s.role === 'standby' && s.streaming;
    if (!ok) ctx.report(s.running ? `standby of ${leaderName}, not streaming${s.error ? `: ${firstLine(s.error)}` : ''}` : `postgres is down, standby of ${leaderName}`);
    await ctx.reportCheck('postgres', 'postgres', ok ? 'passing' : 'warning', ok ? `standby of ${leaderName}, lag ${lag ?? '?'} bytes` : `standby of ${leaderName}: ${s.role}, not streaming`);
  }

  /** A running standby that does not stream: after one window rewind it, after a second clone it again. */
  private async notStreaming(ctx: TurnContext, upstream: Upstream, leaderName: string, leaderIsPrimary: boolean, error: string | undefined): Promise<void> {
    const now = performance.now();
    this.notStreamingSince ??= now;
    // Only a leader whose Postgres is a primary can be streamed from: until then nothing is this node's fault.
    if (!leaderIsPrimary || now - this.notStreamingSince < NOT_STREAMING_WINDOW_MS) return;
    this.notStreamingSince = now;
    const why = `not streaming from ${leaderName} for ${NOT_STREAMING_WINDOW_MS / 1000} s${error ? ` (${firstLine(error)})` : ''}`;
    if (this.rewoundForStreaming) return this.reclone(ctx, upstream, leaderName, `${why}, also after a rewind`);
    this.rewoundForStreaming = true;
    this.log.warn(`standby ${why}: rewinding`);
    ctx.report(`${why}: rewinding`);
    if (!(await this.pg.rewindFrom(upstream, (p) => ctx.report(`rewinding from ${leaderName} (${p} %)`)))) await this.reclone(ctx, upstream, leaderName, 'pg_rewind failed');
  }

  /** Clones this node again from the leader; the replaced data is kept aside until the copy streams. */
  private async reclone(ctx: TurnContext, upstream: Upstream, leaderName: string, why: string): Promise<void> {
    this.log.warn('cloning postgres again from the leader', { reason: why, leader: leaderName, keptAside: this.pg.previousDataDir });
    ctx.report(`${why}; recloning from ${leaderName}`);
    this.failedStarts = 0;
    this.notStreamingSince = null;
    this.rewoundForStreaming = false;
    await this.pg.cloneFrom(upstream, (p) => ctx.report(`${why}; recloning from ${leaderName} (${p} %)`));
  }

  private lagBytes(): number | null {
    const mine = this.position(this.status);
    return this.leaderPosition === null || mine === null ? null : Math.max(0, this.leaderPosition - mine);
  }

  ready(role: Role): boolean {
    if (role === 'leader') return this.primaryReady && this.pg.isRunning();
    if (role === 'standby') return this.status?.role === 'standby' && this.status.streaming && this.pg.isRunning();
    return this.pg.isRunning();
  }

  memberFields(): PostgresMemberFields {
    const s = this.status;
    return {
      walPosition: this.position(s),
      replayPosition: s?.role === 'standby' ? (s.replayedLsn?.bytes ?? null) : null,
      lagBytes: s?.role === 'standby' ? this.lagBytes() : null,
      timeline: s?.timeline ?? null,
      streaming: s?.streaming ?? false,
      pgRole: s?.role ?? 'stopped',
      // Kept after a step-down or a failed status query: it says which standbys may hold every commit.
      syncStandbys: this.syncStandbys,
    };
  }

  async checkJoinable(force: boolean): Promise<void> {
    if (!this.pg.hasDataDir() || force) return;
    let holdsData: boolean;
    try {
      holdsData = await this.pg.hasUserData();
    } catch (e) {
      throw new SidecarError('node_not_empty', `cannot check the existing Postgres data in ${this.config.dataDir}: ${errorMessage(e)}; join with --force to replace it`, 409);
    }
    if (holdsData) {
      throw new SidecarError('node_not_empty', `this node's Postgres holds user data; joining would replace it with a copy of the leader's. Back it up, then join with --force`, 409);
    }
  }

  /**
   * An operator's action on this node's Postgres: `reload` re-reads the configuration, `restart` stops and
   * starts it in its role (the leader's primary restarts under the same lock and lease: it stays the
   * leader, writes pause until it accepts again), `reinit` clones it again from the leader on the next
   * follower turn and resolves once the new copy streams. The node refuses `reinit` on the leader first.
   */
  operatorAction(action: OperatorAction): Promise<void> {
    if (action === 'reload') return this.pg.reload();
    if (action === 'restart') return this.pg.restart();
    if (this.reinit) return Promise.reject(new SidecarError('operation_in_progress', 'a reinit of this node is already under way', 409));
    return new Promise((resolve, reject) => (this.reinit = { resolve, reject, cloned: false }));
  }

  /**
   * The reinit itself: a new clone of the leader, as convergence does (the replaced data kept aside until the
   * copy streams). It runs only as a follower, from a leader whose Postgres is a primary, and the clone is
   * recorded as a standby before anything is touched (cloneFrom), so it can never bring up a second writer.
   */
  private async runReinit(ctx: TurnContext, upstream: Upstream, leaderName: string, leaderIsPrimary: boolean): Promise<void> {
    if (!leaderIsPrimary) return ctx.report(`reinit requested: waiting for leader ${leaderName}'s postgres to be a primary to clone it`);
    try {
      await this.reclone(ctx, upstream, leaderName, 'reinit requested by an operator');
      if (this.reinit) this.reinit.cloned = true;
      ctx.report(`reinit: cloned from ${leaderName}, waiting for it to stream`);
    } catch (e) {
      this.settleReinit(e instanceof Error ? e : new Error(errorMessage(e)));
      throw e;
    }
  }

  private settleReinit(error: Error | null): void {
    const pending = this.reinit;
    this.reinit = null;
    if (pending && error) pending.reject(error);
    else pending?.resolve();
  }

  async close(): Promise<void> {
    await this.pg.stop('fast').catch((e) => this.log.warn('postgres stop failed', { error: errorMessage(e) }));
  }
}

/** The Postgres part, built from its config section and the node-wide values it needs. */
export function createPostgresParticipant(section: PostgresSection, node: PostgresNodeValues, log: Logger): PostgresParticipant {
  const controller = new PostgresController(postgresSettings(section, node), log);
  return new PostgresParticipant(controller, { nodeName: node.nodeName, dataDir: node.dataDir, port: section.port, maxLagOnFailover: section.maxLagOnFailover }, log);
}

/** The synchronous standby list this node last published as leader; null when none (or unreadable). */
function readSyncStandbys(file: string): string[] | null {
  try {
    const list: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return Array.isArray(list) && list.every((n) => typeof n === 'string') ? list : null;
  } catch {
    return null;
  }
}

/** A standby that waits for the leader's member record to change: said, and looked at again soon (TurnContext). */
function waitForLeader(ctx: TurnContext, activity: string): void {
  ctx.report(activity);
  ctx.turnAgainSoon();
}
