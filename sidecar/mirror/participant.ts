import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { SidecarConfig } from '../config.js';
import type { Fitness, Role } from '../election/decide.js';
import type { DemoteReason, Participant, TurnContext } from '../election/participant.js';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { MirrorClient } from './client.js';
import { acknowledgers, filesPeers, positionAfter } from './fitness.js';
import { checkRoot } from './scanner.js';
import { MirrorServer } from './server.js';
import type { FetchFunction } from '../shared/https-fetch.js';
import { MirrorState, type MirrorPosition } from './state.js';

/** How long POST /files/sync waits for a synchronous standby before it answers `files_sync_timeout`. */
const SYNC_WAIT_MS = 10_000;
/** A peer's position is read from its /health; one that does not answer in time counts as unreadable. */
const PEER_POSITION_TIMEOUT_MS = 1_000;

/** The config's `files` section: the mirror's own. */
export type FilesSection = NonNullable<SidecarConfig['files']>;

/** The node-wide values the mirror takes besides its section. */
export interface MirrorNodeValues {
  nodeName: string;
  /** The leader's server listens on this node's address. */
  address: string;
  /** The TLS pre-shared key and its identity derive from these (tls.ts). */
  clusterName: string;
  clusterToken: string;
  /** The sidecar's data directory: the mirror's state (highest term seen, position) is kept there. */
  dataDir: string;
  /** Whether the node runs Postgres: then a synchronous upload waits for a standby of its synchronous list (fitness.ts). */
  postgres: boolean;
}

/** What `members/<node>.files` holds; `hactl cluster status` shows state and generation. */
export interface FilesMemberField {
  state: string;
  /** Leader: its manifest sequence. Follower: the leader's sequence it has mirrored. */
  generation: number;
  /** Follower: changes behind the leader. */
  behind?: number;
  leader?: string;
  entries?: number;
  followers?: number;
  detail?: string;
  /** Follower: what it has installed and fsynced (the state file's position), compared by candidates. */
  position?: MirrorPosition;
}

/** What POST /files/sync answers. */
export interface FilesSyncResult {
  sequence: number;
  /** Whether the answer waited for a standby (synchronous mode) and which standby installed it. */
  synchronous: boolean;
  standby?: string;
}

/**
 * The file mirror as a part of the reconcile loop: the leader serves its directory on port 22000, each
 * standby follows the current leader. The direction follows the lock: promote starts the server, demote stops
 * it before anything else, followerTurn points the client at whoever leads now. The code calls the part the
 * mirror (this folder, its classes); what users see is named `files` after what it mirrors (the config
 * section, `POST /files/sync`, the member record's field, the metrics, this part's log lines).
 */
export class MirrorParticipant implements Participant {
  readonly name = 'files';
  private server: MirrorServer | null = null;
  private client: MirrorClient | null = null;
  /** Cleared synchronously at demote: the server checks it before every frame it sends. */
  private serving = false;
  private serverTerm = 0;
  private error: string | null = null;
  private readonly state: MirrorState;
  /**
   * Who may acknowledge an upload (null: nobody is waited for), as the last leader turn saw the dynamic config
   * and the synchronous list; undefined until this leadership's first turn, so a new leader never answers
   * "asynchronous" from a list it has not read yet.
   */
  private uploadAckers: ((node: string) => boolean) | null | undefined = undefined;
  private strict = false;

  constructor(
    private readonly node: MirrorNodeValues,
    private readonly files: FilesSection,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** How this node calls its peers' APIs (HTTPS with the cluster CA when TLS is on). */
    private readonly peers: FetchFunction,
  ) {
    this.state = new MirrorState(join(node.dataDir, 'files-mirror.json'));
  }

  /** A missing root, or an empty one on another device than before (unmounted), is an error: nothing is served or applied. */
  private async checkMounted(): Promise<void> {
    const root = this.files.directory;
    const st = await checkRoot(root);
    const empty = (await readdir(root)).length === 0;
    if (empty && this.state.rootDevice !== null && st.dev !== this.state.rootDevice) {
      throw new SidecarError('files_root_unmounted', `the files directory ${root} is empty and on another device than before: is it unmounted?`);
    }
    if (!empty) this.state.update({ rootDevice: st.dev });
  }

  async promote(ctx: TurnContext): Promise<void> {
    this.stopClient();
    this.uploadAckers = undefined;
    this.state.update({ highestTerm: ctx.term });
    this.serving = true;
    this.serverTerm = ctx.term;
    // The mirror does not hold up writes: a scan of a large directory runs while the leader already leads.
    void this.startServer();
  }

  private async startServer(): Promise<void> {
    if (this.server || !this.serving) return;
    const server = new MirrorServer({
      root: this.files.directory,
      address: this.node.address,
      port: this.files.port,
      term: this.serverTerm,
      node: this.node.nodeName,
      clusterToken: this.node.clusterToken,
      clusterName: this.node.clusterName,
      rescanMs: this.files.rescanSeconds * 1000,
      mayServe: () => this.serving,
      log: this.log,
      metrics: this.metrics,
    });
    this.server = server;
    try {
      await this.checkMounted();
      await server.start();
      this.error = null;
    } catch (e) {
      this.error = errorMessage(e);
      this.metrics.filesErrors.inc({ reason: 'serve_failed' });
      this.log.error(`files: cannot serve: ${this.error}`, { code: (e as { code?: string }).code });
      await server.stop();
      if (this.server === server) this.server = null;
    }
  }

  /** Stops serving before the first await: no follower gets a frame from a node that no longer leads. */
  async demote(reason: DemoteReason, log: Logger): Promise<void> {
    this.serving = false;
    this.uploadAckers = undefined;
    const server = this.server;
    this.server = null;
    if (server) {
      await server.stop();
      log.info('files: stopped serving', { reason });
    }
  }

  async leaderTurn(ctx: TurnContext): Promise<void> {
    if (!this.serving) {
      // Leading without a promote of ours (the loop resumed a lease): serve under the current term.
      this.uploadAckers = undefined;
      this.serving = true;
      this.serverTerm = ctx.term;
    }
    if (!this.server) await this.startServer();
    const own = ctx.members.find((m) => m.record.name === this.node.nodeName)?.record;
    this.uploadAckers = acknowledgers(ctx.synchronousMode, this.node.postgres, own?.syncStandbys);
    this.strict = ctx.synchronousModeStrict;
    const s = this.server;
    if (this.error || !s) await ctx.reportCheck('files', 'files', 'critical', `leader cannot serve its files: ${this.error ?? 'starting'}`);
    else await ctx.reportCheck('files', 'files', 'passing', `serving ${s.entries} entries at sequence ${s.sequence} to ${s.followers} followers`);
  }

  async followerTurn(ctx: TurnContext): Promise<void> {
    if (this.server || this.serving) await this.demote('lock_lost', this.log);
    this.state.update({ highestTerm: ctx.term });
    const leader = ctx.members.find((m) => m.record.name === ctx.leader?.name)?.record;
    if (!leader || leader.name === this.node.nodeName) return;
    const c = this.client;
    // A newer term means a newer leader: drop a connection to an older one at once.
    if (c && (c.leader !== leader.name || c.host !== leader.address || (c.term > 0 && c.term < ctx.term))) this.stopClient();
    if (!this.client) {
      try {
        await this.checkMounted();
        this.error = null;
      } catch (e) {
        this.error = errorMessage(e);
        this.log.error(`files: cannot mirror: ${this.error}`, { code: (e as { code?: string }).code });
        await ctx.reportCheck('files', 'files', 'critical', this.error);
        return;
      }
      this.client = new MirrorClient({
        root: this.files.directory,
        host: leader.address,
        port: this.files.port,
        leader: leader.name,
        node: this.node.nodeName,
        clusterToken: this.node.clusterToken,
        clusterName: this.node.clusterName,
        rescanMs: this.files.rescanSeconds * 1000,
        state: this.state,
        log: this.log,
        metrics: this.metrics,
      });
      this.client.start();
    }
    const st = this.client.status();
    const behind = st.leaderSeq - st.appliedSeq;
    if (st.state === 'in sync') await ctx.reportCheck('files', 'files', 'passing', `in sync with ${st.leader} at sequence ${st.appliedSeq}`);
    else if (st.state === 'behind' || st.state === 'syncing') await ctx.reportCheck('files', 'files', 'warning', `behind by ${behind} changes (${st.leader} at ${st.leaderSeq})`);
    else await ctx.reportCheck('files', 'files', st.state === 'error' ? 'critical' : 'warning', `${st.state}: ${st.detail || st.leader}`);
  }

  private stopClient(): void {
    this.client?.stop();
    this.client = null;
  }

  /**
   * POST /files/sync on the leader: answers once `paths` as they are now are installed and fsynced on a
   * standby that may acknowledge (see `acknowledgers`), so an upload the manager then acknowledges survives
   * the leader's loss (design.md "Synchronous files"). In asynchronous mode it answers at once. Without Postgres
   * and outside strict mode, with no follower connected it answers at once too, as Postgres falls back then.
   */
  async syncFiles(paths: string[]): Promise<FilesSyncResult> {
    const server = this.server;
    const accepts = this.uploadAckers;
    if (!server || !this.serving || accepts === undefined) throw new SidecarError('files_not_serving', `${this.node.nodeName} does not serve its files (yet)`, 503);
    const deadline = Date.now() + SYNC_WAIT_MS;
    const sequence = await server.syncPoint(paths, deadline);
    if (!accepts || (!this.node.postgres && !this.strict && !server.hasFollower(accepts))) return { sequence, synchronous: false };
    const standby = await server.waitInstalled(sequence, accepts, deadline);
    return { sequence, synchronous: true, standby };
  }

  /**
   * Synchronous mode (design rule 5, design.md "Synchronous files"): a standby whose copy is behind a peer's
   * that may have acknowledged an upload is not fit, nor one that cannot read such a peer's position. An
   * upload is acknowledged only once one acknowledging standby installed it, and every such standby is a peer
   * compared here, so the one that takes over has every acknowledged upload. Asynchronous mode: always fit.
   */
  async fitness(ctx: TurnContext): Promise<Fitness> {
    const lastLeader = ctx.leader?.name;
    if (!ctx.synchronousMode || lastLeader === undefined || lastLeader === this.node.nodeName) return { fit: true, reason: 'files' };
    // The operator's target (switchover: the old leader handed over; failover --to) is not outranked, as in Postgres.
    if (ctx.switchoverTarget) return { fit: true, reason: 'files: switchover target' };
    const leaderSync = ctx.members.find((m) => m.record.name === lastLeader)?.record.syncStandbys;
    const mine = this.state.position;
    const peers = filesPeers(ctx.members, this.node.nodeName, lastLeader, this.node.postgres ? leaderSync : null);
    // Read all at once: an unreachable peer costs the take-over one timeout, not one per peer.
    const positions = await Promise.all(peers.map((peer) => peerPosition(peer.apiUrl, this.peers)));
    for (const [i, peer] of peers.entries()) {
      const theirs = positions[i];
      if (!theirs) {
        if (peer.mustRead) return { fit: false, reason: `synchronous mode: cannot read ${peer.name}'s files position, and it may hold newer uploads` };
        continue;
      }
      if (positionAfter(theirs, mine)) return { fit: false, reason: `files: ${peer.name} has mirrored further (term ${theirs.term} sequence ${theirs.seq} vs term ${mine.term} sequence ${mine.seq})` };
    }
    return { fit: true, reason: `files: term ${mine.term} sequence ${mine.seq}` };
  }

  ready(_role: Role): boolean {
    return true; // the mirror never holds up writes or the load balancer; its state is the `files` check
  }

  memberFields(): { files: FilesMemberField } {
    if (this.server && this.serving) {
      return { files: { state: this.error ? 'error' : 'serving', generation: this.server.sequence, entries: this.server.entries, followers: this.server.followers } };
    }
    if (this.client) {
      const st = this.client.status();
      return { files: { state: st.state, generation: st.appliedSeq, behind: Math.max(0, st.leaderSeq - st.appliedSeq), leader: st.leader, position: this.state.position, ...(st.detail ? { detail: st.detail } : {}) } };
    }
    return { files: { state: this.error ? 'error' : 'idle', generation: 0, position: this.state.position, ...(this.error ? { detail: this.error } : {}) } };
  }

  /** Design rule 9: joining replaces the directory with the leader's, so a non-empty one needs --force. */
  async checkJoinable(force: boolean): Promise<void> {
    if (force) return;
    const entries = await readdir(this.files.directory).catch(() => []);
    if (entries.length > 0) {
      throw new SidecarError('node_not_empty', `the files directory ${this.files.directory} is not empty; joining would replace it with the leader's. Back it up, then join with --force`, 409);
    }
  }

  async close(): Promise<void> {
    this.stopClient();
    await this.demote('shutdown', this.log);
  }
}

export function createMirrorParticipant(files: FilesSection | undefined, node: MirrorNodeValues, log: Logger, metrics: Metrics, peers: FetchFunction): MirrorParticipant | null {
  return files?.enabled ? new MirrorParticipant(node, files, log, metrics, peers) : null;
}

const positionSchema = z.object({ term: z.number().int().nonnegative(), epoch: z.string(), seq: z.number().int().nonnegative() });

/** A peer's files position as its sidecar says now (GET /health, any status), or null when it does not answer. */
async function peerPosition(apiUrl: string, peers: FetchFunction): Promise<MirrorPosition | null> {
  try {
    const res = await peers(`${apiUrl}/health`, { signal: AbortSignal.timeout(PEER_POSITION_TIMEOUT_MS) });
    const body = (await res.json()) as { files?: { position?: unknown } };
    const parsed = positionSchema.safeParse(body.files?.position);
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
