// Over 400 lines, not split: create, restore and pull share one claim (a node runs one snapshot operation at a
// time) and the newest-snapshot state; the archive format, retention and the pg tools already live apart.
import { createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DynamicConfig } from '../consul/records.js';
import type { PostgresSettings } from '../postgres/settings.js';
import type { MemberEntry } from '../consul/store.js';
import type { NodeView } from '../election/loop.js';
import type { Participant, TurnContext } from '../election/participant.js';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { countRequest } from '../outgoing.js';
import { parseDuration } from '../units.js';
import { DATABASE_FILE, FILES_FILE, SnapshotDirectory, describePart, packArchive, sha256File, unpackArchive } from './archive.js';
import { packageVersion } from '../shared/package.js';
import { ARCHIVE_FORMAT, checkRestorable, snapshotRecord, type SnapshotMetadata, type SnapshotRecord } from './metadata.js';
import { scheduleDue, snapshotId, toFetch } from './retention.js';
import type { FetchFunction } from '../shared/https-fetch.js';
import { archiveFiles, dumpDatabase, querySocket, restoreDatabase, restoreFiles } from './tools.js';

/**
 * After a failed pull, a standby tries again this much later. Pulls are otherwise announced: the leader's
 * member record names its newest snapshot (`newestSnapshot`), and a standby pulls when that changes, so an
 * idle cluster asks nothing (it used to ask the leader every 2 s).
 */
const PULL_RETRY_MS = 5_000;
/** A peer's snapshot list must come this fast; a slow peer is shown as not answering. */
const PEER_LIST_TIMEOUT_MS = 2_000;
/** After a failed scheduled snapshot, the leader waits this long before the next attempt (no hot loop on a full disk). */
const SCHEDULE_RETRY_MS = 60_000;
/** How long a restore reports the standbys' replay before it answers; they keep following afterwards anyway. */
const STANDBY_REPLAY_WAIT_MS = 60_000;

export type Progress = (line: string) => void;

/** What the snapshot part needs of its node. */
export interface SnapshotDeps {
  clusterName: string;
  nodeName: string;
  /** The bearer token for pulling archives from the leader's API. */
  clusterToken: string;
  /** The archives live under `<dataDir>/snapshots`. */
  dataDir: string;
  /** The database to dump and restore; null when this cluster runs without Postgres. */
  postgres: PostgresSettings | null;
  /** The mirrored files directory to archive; null when the file mirror is off. */
  filesDirectory: string | null;
  log: Logger;
  view(): NodeView;
  /** Throws `not_cluster_leader` unless this node leads. */
  assertLeader(): void;
  readDynamicConfig(): Promise<DynamicConfig>;
  patchConfig(patch: Partial<DynamicConfig>): Promise<unknown>;
  members(): Promise<MemberEntry[]>;
  /** How this node calls its peers' APIs (HTTPS with the cluster CA and this node's certificate when TLS is on). */
  peers: FetchFunction;
}

/** A verified archive waiting to be restored, and the scratch directory holding its unpacked parts. */
interface PreparedRestore {
  meta: SnapshotMetadata;
  scratch: string;
}

/**
 * Snapshots (issue 12): the leader writes archives of the application database and the files directory;
 * standbys pull every new one from the leader; every node keeps the newest `snapshotKeep`; a restore runs on
 * the leader with failover paused. One snapshot operation (create or restore) runs at a time per node.
 */
export class SnapshotService implements Participant {
  readonly name = 'snapshots';
  readonly dir: SnapshotDirectory;
  private busy: string | null = null;
  private pulling = false;
  private lastPullAt = 0;
  /** The leader and the newest snapshot it announced when this node last pulled all it lacked; null: not yet. */
  private pulledFor: { leader: string; newest: string | null } | null = null;
  /** The `snapshotKeep` this node last pruned to, so a smaller one prunes a standby without a pull. */
  private prunedTo: number | null = null;
  /** The newest snapshot on this node (announced in its member record), kept up to date by add and prune. */
  private newest: string | null;
  private lastScheduledFailureAt = 0;
  private readonly version = packageVersion();

  constructor(private readonly deps: SnapshotDeps) {
    this.dir = new SnapshotDirectory(join(deps.dataDir, 'snapshots'));
    this.dir.clearScratch();
    this.newest = this.newestOnDisk();
  }

  private newestOnDisk(): string | null {
    return this.dir.list().at(-1)?.id ?? null;
  }

  /** `newestSnapshot`: what a standby compares with what it pulled (see PULL_RETRY_MS). */
  memberFields(): Record<string, unknown> {
    return { newestSnapshot: this.newest };
  }

  private claim(what: string): void {
    if (this.busy) throw new SidecarError('snapshot_busy', `a snapshot ${this.busy} is running on this node; try again when it is done`, 409);
    this.busy = what;
  }

  // --- create ----------------------------------------------------------------------------------------------

  /** Checks that a snapshot may start (leader, nothing else running) and returns the operation to run. */
  beginCreate(): (progress: Progress) => Promise<SnapshotRecord> {
    this.deps.assertLeader();
    this.claim('create');
    return (progress) => this.create(progress).finally(() => (this.busy = null));
  }

  /**
   * Writes one archive. It only reads the database (pg_dump's one read-only, repeatable-read transaction) and
   * the files, so it can neither create a writer nor change a commit; if this node loses leadership meanwhile,
   * the dump either completes from its consistent snapshot or fails, and nothing is half-written (the record
   * that lists a snapshot is written last).
   */
  private async create(progress: Progress): Promise<SnapshotRecord> {
    const scratch = this.dir.scratch();
    try {
      const view = this.deps.view();
      const id = snapshotId(new Date(), this.dir.list().at(-1)?.id);
      const meta: SnapshotMetadata = {
        format: ARCHIVE_FORMAT,
        id,
        cluster: this.deps.clusterName,
        term: view.term,
        node: this.deps.nodeName,
        haSidecarVersion: this.version,
        postgresVersion: null,
        createdAt: new Date().toISOString(),
        parts: {},
      };
      progress(`snapshot ${id} on ${meta.node} (term ${meta.term})`);
      const pg = this.deps.postgres;
      if (pg) {
        progress(`dumping database ${pg.appDatabase} (pg_dump -Fc)`);
        meta.postgresVersion = (await querySocket<{ server_version: string }>(pg, 'SHOW server_version'))[0].server_version;
        await dumpDatabase(pg, join(scratch, DATABASE_FILE));
        meta.parts.database = await describePart(scratch, DATABASE_FILE);
        progress(`database dumped: ${meta.parts.database.size} bytes`);
      }
      const files = this.deps.filesDirectory;
      if (files) {
        progress(`archiving files of ${files}`);
        await archiveFiles(files, join(scratch, FILES_FILE));
        meta.parts.files = await describePart(scratch, FILES_FILE);
        progress(`files archived: ${meta.parts.files.size} bytes`);
      }
      const archive = join(scratch, 'archive.tar');
      await packArchive(scratch, meta, archive);
      const record = snapshotRecord.parse({ ...meta, archiveSize: (await describePart(scratch, 'archive.tar')).size, archiveSha256: await sha256File(archive) });
      this.dir.add(record, archive);
      const keep = this.deps.view().dynamicConfig.snapshotKeep;
      const pruned = this.dir.prune(keep);
      this.newest = this.newestOnDisk();
      progress(`snapshot ${id} written: ${record.archiveSize} bytes, sha256 ${record.archiveSha256}; keeping the newest ${keep}${pruned.length ? `, deleted ${pruned.join(', ')}` : ''}; the standbys pull it within seconds`);
      this.deps.log.info('snapshot created', { id, size: record.archiveSize, pruned });
      return record;
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  // --- list and download -----------------------------------------------------------------------------------

  list(): SnapshotRecord[] {
    return this.dir.list();
  }

  /** This node's snapshots, with every live member's copies: which nodes hold which snapshot. */
  async listCluster() {
    const self = this.deps.nodeName;
    const members = await this.deps.members().catch(() => [] as MemberEntry[]);
    const peers = members.filter((m) => m.record.name !== self);
    const lists = await Promise.all(
      peers.map(async (m) => {
        if (!m.alive) return { node: m.record.name, answered: false, snapshots: [] as SnapshotRecord[] };
        try {
          countRequest('peer');
          const res = await this.deps.peers(`${m.record.apiUrl}/snapshots/local`, { signal: AbortSignal.timeout(PEER_LIST_TIMEOUT_MS) });
          const body = (await res.json()) as { snapshots?: unknown[] };
          return { node: m.record.name, answered: res.ok, snapshots: (body.snapshots ?? []).flatMap((s) => { const p = snapshotRecord.safeParse(s); return p.success ? [p.data] : []; }) };
        } catch {
          return { node: m.record.name, answered: false, snapshots: [] as SnapshotRecord[] };
        }
      }),
    );
    const all = [{ node: self, answered: true, snapshots: this.dir.list() }, ...lists];
    const byId = new Map<string, { record: SnapshotRecord; nodes: string[] }>();
    for (const { node, snapshots } of all) {
      for (const record of snapshots) {
        const entry = byId.get(record.id) ?? { record, nodes: [] };
        entry.nodes.push(node);
        byId.set(record.id, entry);
      }
    }
    return {
      node: self,
      keep: this.deps.view().dynamicConfig.snapshotKeep,
      snapshots: [...byId.values()].sort((a, b) => a.record.id.localeCompare(b.record.id)).map(({ record, nodes }) => ({ ...record, nodes: nodes.sort() })),
      nodes: Object.fromEntries(all.map((l) => [l.node, l.answered ? l.snapshots.map((s) => s.id) : null])),
    };
  }

  /** The archive of snapshot `id` on this node; throws `unknown_snapshot`. */
  archive(id: string): { path: string; record: SnapshotRecord } {
    const record = this.dir.get(id);
    return { path: this.dir.archivePath(id), record };
  }

  // --- restore ---------------------------------------------------------------------------------------------

  /** Checks a restore of the stored snapshot `id` and returns the operation; refusals change nothing. */
  async beginRestoreOf(id: string): Promise<(progress: Progress) => Promise<unknown>> {
    this.deps.assertLeader();
    const record = this.dir.get(id);
    this.claim(`restore of ${id}`);
    const scratch = this.dir.scratch();
    try {
      const sha = await sha256File(this.dir.archivePath(id));
      if (sha !== record.archiveSha256) {
        throw new SidecarError('snapshot_checksum_mismatch', `the archive of snapshot ${id} on this node has sha256 ${sha}, not ${record.archiveSha256} as recorded: it is damaged; restore a copy from another node with --file`, 400);
      }
      return this.prepared({ meta: await this.verify(this.dir.archivePath(id), scratch), scratch });
    } catch (e) {
      this.release(scratch);
      throw e;
    }
  }

  /** Receives an uploaded archive (`hactl snapshot restore --file`), checks it and returns the operation. */
  async beginRestoreUpload(body: Readable): Promise<(progress: Progress) => Promise<unknown>> {
    this.deps.assertLeader();
    this.claim('restore of an uploaded archive');
    const scratch = this.dir.scratch();
    try {
      const upload = join(scratch, 'upload.tar');
      await pipeline(body, createWriteStream(upload));
      const meta = await this.verify(upload, scratch);
      rmSync(upload);
      return this.prepared({ meta, scratch });
    } catch (e) {
      this.release(scratch);
      throw e;
    }
  }

  private async verify(archive: string, scratch: string): Promise<SnapshotMetadata> {
    const meta = await unpackArchive(archive, scratch);
    checkRestorable(meta, this.version);
    return meta;
  }

  private release(scratch: string): void {
    rmSync(scratch, { recursive: true, force: true });
    this.busy = null;
  }

  private prepared(p: PreparedRestore): (progress: Progress) => Promise<unknown> {
    return (progress) => this.restore(p, progress).finally(() => this.release(p.scratch));
  }

  /**
   * Restores a verified snapshot on the leader. Why this cannot create a second writer or lose a commit it
   * did not mean to replace:
   * - Failover is paused (`paused` in Consul) for exactly the restore's duration, so a slow restore (a long
   *   pg_restore, a leader whose manager health check fails meanwhile) never triggers a hand-over or a
   *   failover to a standby that has replayed only part of it. Pausing changes nothing of the lease: a leader
   *   that loses its lock still demotes (design rule 2), so a pause never keeps a second writer alive.
   * - The database is restored by the one writer there is, the leader's primary, in one transaction. Standbys
   *   receive it through streaming replication like any other commit, so they hold the restored state, or
   *   the state before it, never a mix. If this node loses leadership mid-way its Postgres stops taking
   *   writes, the transaction aborts, and the database is exactly as before (the new leader's).
   * - The commits it replaces are the ones the operator asked to replace (the database as of the
   *   snapshot); commits acknowledged after the restore are kept like any other, and the objects the dump
   *   does not hold are not touched.
   * - Files are rewritten on the leader only; the mirror copies them to the standbys, and on a node that
   *   lost leadership mid-way the mirror overwrites them with the new leader's.
   */
  private async restore({ meta, scratch }: PreparedRestore, progress: Progress): Promise<unknown> {
    progress(`restoring snapshot ${meta.id} of cluster ${meta.cluster} (term ${meta.term}, ha-sidecar ${meta.haSidecarVersion}, postgres ${meta.postgresVersion ?? '-'}): checksums verified`);
    const alreadyPaused = (await this.deps.readDynamicConfig()).paused;
    if (!alreadyPaused) {
      progress('pausing failover for the restore');
      await this.deps.patchConfig({ paused: true });
    }
    let lsn: string | null = null;
    try {
      const pg = this.deps.postgres;
      if (meta.parts.database && pg) {
        this.deps.assertLeader();
        progress(`restoring database ${pg.appDatabase} (pg_restore --clean --single-transaction, ${meta.parts.database.size} bytes)`);
        await restoreDatabase(pg, join(scratch, DATABASE_FILE));
        lsn = (await querySocket<{ lsn: string }>(pg, 'SELECT pg_current_wal_lsn()::text AS lsn'))[0].lsn;
        progress(`database restored (primary at WAL ${lsn})`);
      } else if (meta.parts.database) progress('the snapshot holds a database but this cluster runs without Postgres: skipped');
      const files = this.deps.filesDirectory;
      if (meta.parts.files && files) {
        this.deps.assertLeader();
        progress(`restoring files into ${files} (${meta.parts.files.size} bytes compressed)`);
        await restoreFiles(files, join(scratch, FILES_FILE));
        progress('files restored; the file mirror copies them to the standbys');
      } else if (meta.parts.files) progress('the snapshot holds files but this node has no file mirror configured: skipped');
    } finally {
      if (!alreadyPaused) await this.resumeFailover(progress);
    }
    if (lsn) await this.reportStandbys(lsn, progress);
    this.deps.log.info('snapshot restored', { id: meta.id });
    return { restored: meta.id, cluster: meta.cluster, createdAt: meta.createdAt, walPosition: lsn };
  }

  /** Resumes failover, retrying: a cluster left paused by a Consul hiccup would stay without failover. */
  private async resumeFailover(progress: Progress): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.deps.patchConfig({ paused: false });
        progress('failover resumed');
        return;
      } catch (e) {
        if (attempt === 5) {
          progress(`could not resume failover: ${errorMessage(e)}; run \`hactl cluster resume\``);
          throw e;
        }
        await sleep(1_000);
      }
    }
  }

  /** Reports, every 2 s, the standbys that have not replayed up to `lsn` yet; gives up reporting after a minute. */
  private async reportStandbys(lsn: string, progress: Progress): Promise<void> {
    const target = lsnBytes(lsn);
    const deadline = Date.now() + STANDBY_REPLAY_WAIT_MS;
    for (;;) {
      const standbys = (await this.deps.members().catch(() => [])).filter((m) => m.alive && m.record.name !== this.deps.nodeName);
      const behind = standbys.filter((m) => typeof m.record.replayPosition !== 'number' || m.record.replayPosition < target).map((m) => m.record.name);
      if (behind.length === 0) {
        progress(standbys.length ? `standbys replayed the restore: ${standbys.map((m) => m.record.name).join(', ')}` : 'no live standby to follow');
        return;
      }
      if (Date.now() > deadline) {
        progress(`still replaying: ${behind.join(', ')}; they keep following the leader (see \`hactl cluster status\`)`);
        return;
      }
      progress(`waiting for standbys to replay WAL ${lsn}: ${behind.join(', ')}`);
      await sleep(2_000);
    }
  }

  // --- participant: schedule on the leader, pull on standbys ------------------------------------------------

  /** Takes a scheduled snapshot when one is due; runs in the background, never holding up the loop. */
  async leaderTurn(): Promise<void> {
    const { snapshotSchedule } = this.deps.view().dynamicConfig;
    if (snapshotSchedule === 'off' || this.busy || Date.now() - this.lastScheduledFailureAt < SCHEDULE_RETRY_MS) return;
    if (!scheduleDue(this.newest ?? undefined, parseDuration(snapshotSchedule), new Date())) return;
    let run: (progress: Progress) => Promise<SnapshotRecord>;
    try {
      run = this.beginCreate();
    } catch {
      return; // not the ready leader yet, or busy: the next turn looks again
    }
    void run((line) => this.deps.log.info(`scheduled snapshot: ${line}`)).catch((e: unknown) => {
      this.lastScheduledFailureAt = Date.now();
      this.deps.log.error('scheduled snapshot failed', { error: errorMessage(e), code: (e as { code?: string }).code });
    });
  }

  /**
   * Pulls the leader's new snapshots (in the background) when the leader announces a newest snapshot other
   * than the one this node last pulled for (and once after start, or under a new leader), then keeps the
   * newest `snapshotKeep`; a smaller `snapshotKeep` alone prunes at once.
   */
  async followerTurn(ctx: TurnContext): Promise<void> {
    const leader = this.deps.view().leader;
    if (!leader || leader.name === this.deps.nodeName || this.pulling || this.busy) return;
    const keep = this.deps.view().dynamicConfig.snapshotKeep;
    if (this.prunedTo !== keep) this.prune(keep);
    const record = ctx.members.find((m) => m.record.name === leader.name)?.record;
    const announced = typeof record?.newestSnapshot === 'string' ? record.newestSnapshot : null;
    const pulled = this.pulledFor;
    if (pulled && pulled.leader === leader.name && pulled.newest === announced) return;
    if (Date.now() - this.lastPullAt < PULL_RETRY_MS) return;
    this.pulling = true;
    this.lastPullAt = Date.now();
    void this.pull(leader.apiUrl)
      .then(() => (this.pulledFor = { leader: leader.name, newest: announced }))
      .catch((e: unknown) => this.deps.log.warn('could not pull snapshots from the leader', { leader: leader.name, error: errorMessage(e), code: (e as { code?: string }).code }))
      .finally(() => (this.pulling = false));
  }

  private prune(keep: number): void {
    const pruned = this.dir.prune(keep);
    this.prunedTo = keep;
    this.newest = this.newestOnDisk();
    if (pruned.length) this.deps.log.info('old snapshots deleted', { pruned, keep });
  }

  /**
   * Fetches from the leader each snapshot this node would keep and lacks, checks its sha256 against the
   * leader's record, and stores it. Authenticated with the cluster token, as every peer call.
   */
  private async pull(leaderUrl: string): Promise<void> {
    const keep = this.deps.view().dynamicConfig.snapshotKeep;
    countRequest('peer');
    const res = await this.deps.peers(`${leaderUrl}/snapshots/local`, { signal: AbortSignal.timeout(PEER_LIST_TIMEOUT_MS) });
    if (!res.ok) throw new SidecarError('snapshot_pull_failed', `${leaderUrl}/snapshots/local answered ${res.status}`);
    const records = ((await res.json()) as { snapshots?: unknown[] }).snapshots?.flatMap((s) => { const p = snapshotRecord.safeParse(s); return p.success ? [p.data] : []; }) ?? [];
    const local = this.dir.list().map((r) => r.id);
    for (const id of toFetch(records.map((r) => r.id), local, keep)) {
      const record = records.find((r) => r.id === id)!;
      const scratch = this.dir.scratch();
      try {
        const file = join(scratch, 'archive.tar');
        countRequest('peer');
        const download = await this.deps.peers(`${leaderUrl}/snapshots/${id}`, { headers: { authorization: `Bearer ${this.deps.clusterToken}` }, signal: AbortSignal.timeout(10 * 60_000) });
        if (!download.ok || !download.body) throw new SidecarError('snapshot_pull_failed', `GET ${leaderUrl}/snapshots/${id} answered ${download.status}`);
        await pipeline(Readable.fromWeb(download.body as import('node:stream/web').ReadableStream), createWriteStream(file));
        const sha = await sha256File(file);
        if (sha !== record.archiveSha256) throw new SidecarError('snapshot_checksum_mismatch', `snapshot ${id} from the leader has sha256 ${sha}, not ${record.archiveSha256}: not kept`);
        this.dir.add(record, file);
        this.newest = this.newestOnDisk();
        this.deps.log.info('snapshot copied from the leader', { id, size: record.archiveSize });
      } finally {
        rmSync(scratch, { recursive: true, force: true });
      }
    }
    this.prune(keep);
  }
}

/** `16/B374D848` as a byte position. */
function lsnBytes(lsn: string): number {
  const [hi, lo] = lsn.split('/');
  return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
}
