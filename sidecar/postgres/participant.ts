import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import type { SidecarConfig } from '../config.js';
import type { Fitness, Role } from '../election/decide.js';
import type { DemoteReason, Participant, TurnContext } from '../election/participant.js';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { PostgresController, type PostgresStatus, type Upstream } from './controller.js';
import { pgName } from './quoting.js';

/** A peer's fresh WAL position must arrive this fast, or the peer counts as unreachable for the comparison. */
const PEER_POSITION_TIMEOUT_MS = 500;
/** A standby that has not streamed for this many turns, with its leader known, is rewound (it diverged). */
const TURNS_BEFORE_REWIND = 10;

/** Secrets derived from the cluster token, so one secret configures a node; each purpose gets its own. */
export function deriveSecret(clusterToken: string, purpose: string): string {
  return createHmac('sha256', clusterToken).update(`ha-sidecar:${purpose}`).digest('base64url').slice(0, 32);
}

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

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Carries the role the reconcile loop decided over to the local PostgreSQL: primary on the leader, a
 * streaming standby of the leader elsewhere; rewinds or re-clones a former primary; keeps slots and the
 * synchronous standby list on the leader; says whether the node is fit to take over (design rule 5).
 */
export class PostgresParticipant implements Participant {
  readonly name = 'postgres';
  private status: PostgresStatus | null = null;
  private primaryReady = false;
  private syncStandbys: string[] | null = null;
  private leaderPosition: number | null = null;
  private turnsNotStreaming = 0;

  constructor(
    private readonly pg: PostgresController,
    private readonly config: SidecarConfig,
    private readonly log: Logger,
  ) {}

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

  private upstreamOf(ctx: TurnContext): Upstream | null {
    const leader = ctx.members.find((m) => m.record.name === ctx.leader?.name);
    return leader ? { host: leader.record.address, port: this.config.postgres.port } : null;
  }

  async fitness(ctx: TurnContext): Promise<Fitness> {
    if (!this.pg.hasDataDir()) {
      // A cluster that never had a leader has no data anywhere: whoever wins the lock runs initdb.
      return ctx.term === 0 && ctx.leader === null ? { fit: true, reason: 'new cluster: will initialise postgres' } : { fit: false, reason: 'postgres has no data yet (never cloned)' };
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
    const lastPrimary = num(leaderRecord?.walPosition);
    if (lastPrimary !== null && lastPrimary - mine > this.config.postgres.maxLagOnFailover) {
      return { fit: false, reason: `${lastPrimary - mine} bytes behind the last known primary position (limit ${this.config.postgres.maxLagOnFailover})` };
    }

    const leaderSync = Array.isArray(leaderRecord?.syncStandbys) ? (leaderRecord.syncStandbys as string[]) : null;
    if (ctx.synchronousMode && leaderSync && !leaderSync.includes(pgName(this.config.nodeName))) {
      return { fit: false, reason: 'synchronous mode: I was not a synchronous standby of the last leader' };
    }

    const peers = ctx.members.filter((m) => m.alive && m.record.name !== this.config.nodeName && m.record.name !== lastLeader);
    for (const peer of peers) {
      const theirs = await this.peerPosition(peer.record.apiUrl);
      if (theirs === null) continue; // it has no position to offer (not running, never cloned)
      if (theirs === undefined) {
        // In synchronous mode an unreachable synchronous peer may hold the only copy of a commit.
        if (ctx.synchronousMode && leaderSync?.includes(pgName(peer.record.name))) {
          return { fit: false, reason: `synchronous mode: cannot compare with ${peer.record.name}, which may hold newer commits` };
        }
        continue;
      }
      // Most WAL received wins; then most replayed (it promotes sooner); then the lower name, so two equal
      // standbys neither both stand aside nor both run.
      const ahead =
        theirs.wal > mine ||
        (theirs.wal === mine && (theirs.replayed > mineReplayed || (theirs.replayed === mineReplayed && peer.record.name < this.config.nodeName)));
      if (ahead) {
        return { fit: false, reason: `${peer.record.name} is ahead (received ${theirs.wal} vs ${mine}, replayed ${theirs.replayed} vs ${mineReplayed} bytes)` };
      }
    }
    return { fit: true, reason: `WAL position ${mine}` };
  }

  /** A peer's current WAL positions from its API; null without any, undefined when it does not answer in time. */
  private async peerPosition(apiUrl: string): Promise<{ wal: number; replayed: number } | null | undefined> {
    try {
      const res = await fetch(`${apiUrl}/health`, { signal: AbortSignal.timeout(PEER_POSITION_TIMEOUT_MS) });
      const body = (await res.json()) as { walPosition?: unknown; replayPosition?: unknown };
      const wal = num(body.walPosition);
      return wal === null ? null : { wal, replayed: num(body.replayPosition) ?? 0 };
    } catch {
      return undefined;
    }
  }

  async promote(ctx: TurnContext): Promise<void> {
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
      this.log.warn('postgres is not running on the leader: starting it');
      await this.pg.start();
      s = await this.refresh();
    }
    const standbys = ctx.members.map((m) => m.record.name).filter((n) => n !== this.config.nodeName);
    await this.pg.ensureReplicationSlots(standbys.map(pgName));
    if (ctx.synchronousMode) {
      const healthy = s.replicas.filter((r) => r.state === 'streaming').map((r) => r.name);
      const names = healthy.length ? healthy : ctx.synchronousModeStrict ? [] : null;
      await this.pg.setSynchronousStandbys(names);
      this.syncStandbys = names;
    } else {
      await this.pg.setSynchronousStandbys(null);
      this.syncStandbys = null;
    }
    this.leaderPosition = s.currentLsn?.bytes ?? null;
    this.primaryReady = s.role === 'primary';
    await ctx.reportCheck('postgres', 'postgres', this.primaryReady ? 'passing' : 'critical', this.primaryReady ? `primary, timeline ${s.timeline}, ${s.replicas.length} standbys` : `leader's postgres is ${s.role}`);
  }

  async followerTurn(ctx: TurnContext): Promise<void> {
    this.primaryReady = false;
    const upstream = this.upstreamOf(ctx);
    if (!upstream) return; // the leader's member record is not there yet
    const leaderRecord = ctx.members.find((m) => m.record.name === ctx.leader?.name)?.record;
    this.leaderPosition = num(leaderRecord?.walPosition);

    if (!this.pg.hasDataDir()) {
      this.log.info('cloning postgres from the leader', { leader: ctx.leader?.name });
      await this.pg.cloneFrom(upstream);
    } else {
      let s = await this.refresh();
      if (s.intent === 'primary') {
        this.log.info('former primary: rewinding from the new leader', { leader: ctx.leader?.name });
        if (!(await this.pg.rewindFrom(upstream))) await this.pg.cloneFrom(upstream);
      } else if (!s.running || s.upstream?.host !== upstream.host || s.upstream.port !== upstream.port) {
        await this.pg.follow(upstream);
      } else if (!s.streaming) {
        this.turnsNotStreaming++;
        if (this.turnsNotStreaming >= TURNS_BEFORE_REWIND) {
          this.log.warn('standby does not stream from its leader: rewinding', { turns: this.turnsNotStreaming });
          this.turnsNotStreaming = 0;
          if (!(await this.pg.rewindFrom(upstream))) await this.pg.cloneFrom(upstream);
        }
      } else {
        this.turnsNotStreaming = 0;
      }
      s = await this.refresh();
    }
    await this.pg.ensureReplicationSlots([]);
    const s = await this.refresh();
    const lag = this.lagBytes();
    const ok = s.role === 'standby' && s.streaming;
    await ctx.reportCheck('postgres', 'postgres', ok ? 'passing' : 'warning', ok ? `standby of ${ctx.leader?.name}, lag ${lag ?? '?'} bytes` : `standby of ${ctx.leader?.name}: ${s.role}, not streaming`);
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
      syncStandbys: this.primaryReady ? this.syncStandbys : null,
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

  async close(): Promise<void> {
    await this.pg.stop('fast').catch((e) => this.log.warn('postgres stop failed', { error: errorMessage(e) }));
  }
}

/** The node's Postgres controller, laid out under the sidecar's data directory. */
export function createPostgresParticipant(config: SidecarConfig, log: Logger): PostgresParticipant {
  const secret = (purpose: string) => deriveSecret(config.clusterToken, purpose);
  const controller = new PostgresController(
    {
      nodeName: config.nodeName,
      binDir: config.postgres.binDir,
      dataDir: join(config.dataDir, 'postgres'),
      socketDir: join(config.dataDir, 'pgsocket'),
      host: config.address,
      port: config.postgres.port,
      runAsUser: config.postgres.runAsUser,
      superuserPassword: secret('postgres-superuser'),
      replicationUser: 'replicator',
      replicationPassword: secret('replication'),
      appDatabase: config.postgres.appDatabase,
      appUser: config.postgres.appUser,
      appPassword: config.postgres.appPassword ?? secret('app'),
      memberAddresses: config.clusterAddresses,
    },
    log,
  );
  return new PostgresParticipant(controller, config, log);
}
