import type { ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { z } from 'zod';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { renderHba, renderPgpass, renderSidecarConf, scrubAutoConf, SIDECAR_CONF, withInclude, type Upstream } from './conf.js';
import {
  boundCommand,
  chownTo,
  lastLines,
  livePostmasterPid,
  processAlive,
  readPidFile,
  resolveOsUser,
  runTool,
  spawnBound,
  tailFile,
  writeOwnedFile,
  type CommandSpec,
  type OsUser,
} from './process.js';
import { conninfo, pgName, quoteIdent, quoteLiteral } from './quoting.js';
import { scramMatches, scramVerifier } from './scram.js';

export type { Upstream } from './conf.js';

/** Connecting to a server on this machine or a peer's takes milliseconds; one that takes 3 s is not usable this turn. */
const CONNECT_TIMEOUT_MS = 3_000;
/** Client-side limit of one query; catalog queries answer in milliseconds, so 10 s means the server is stuck. */
const QUERY_TIMEOUT_MS = 10_000;
/** Time for the postmaster to accept connections: crash recovery of a small manager database fits easily. */
const START_TIMEOUT_MS = 60_000;
/** A fast shutdown waits for walsenders to send what is left to standbys; past this we shut down immediately. */
const FAST_STOP_TIMEOUT_MS = 30_000;
/** After SIGQUIT every backend exits at once; past this something is wedged and SIGKILL is all that is left. */
const IMMEDIATE_STOP_TIMEOUT_MS = 5_000;
/** Promotion replays what is left of the received WAL, then switches timeline; a healthy standby takes seconds. */
const PROMOTE_TIMEOUT_MS = 60_000;
/** A reload reaches every backend within a few hundred ms; we wait until a fresh session sees the new value. */
const RELOAD_TIMEOUT_MS = 5_000;
/** How often a wait re-checks its condition: cheap checks, and promotion and start-up want a quick answer. */
const POLL_MS = 50;
/** Long actions (pg_basebackup, pg_rewind) log their progress at most this often. */
const PROGRESS_LOG_INTERVAL_MS = 5_000;

/** The role name initdb gives the superuser; pg_rewind and the sidecar itself connect as it. */
const SUPERUSER = 'postgres';

const roleName = z.string().regex(/^[a-z_][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, - or _, starting with a letter or _');
const ipAddress = z.string().refine((a) => net.isIP(a) !== 0, 'an IP address');
const settingsSchema = z
  .object({
    nodeName: z.string().min(1),
    binDir: z.string().min(1),
    dataDir: z.string().regex(/^\/.*[^/]$/, 'an absolute path without a trailing slash'),
    socketDir: z.string().regex(/^\//, 'an absolute path'),
    host: ipAddress,
    port: z.number().int().min(1).max(65535),
    runAsUser: z.string().min(1).optional(),
    superuserPassword: z.string().min(8),
    replicationUser: roleName,
    replicationPassword: z.string().min(8),
    appDatabase: roleName,
    appUser: roleName,
    appPassword: z.string().min(8),
    memberAddresses: z.array(ipAddress).min(1),
  })
  .strict();

/**
 * What a node's PostgreSQL is made of. Passwords are SCRAM-hashed before they reach the server and are kept on
 * disk only in the 0600 password file `<dataDir>.pgpass`, never on a command line or in a log.
 */
export interface PostgresSettings {
  /** This node's name; its slot on the primary and its application_name are `pgName(nodeName)`. */
  nodeName: string;
  binDir: string;
  /** The data directory. Next to it live `<dataDir>.log` (server log), `<dataDir>.pgpass` and `<dataDir>.state.json`. */
  dataDir: string;
  /** Unix socket directory of this node alone. */
  socketDir: string;
  /** Address PostgreSQL listens on (the node's address) and its port. */
  host: string;
  port: number;
  /** OS user PostgreSQL runs as. Default: `postgres` when the sidecar is root, the sidecar's own user otherwise. */
  runAsUser?: string;
  /** Password of the superuser `postgres`. */
  superuserPassword: string;
  replicationUser: string;
  replicationPassword: string;
  appDatabase: string;
  appUser: string;
  appPassword: string;
  /** Every member's address: pg_hba lets logins and replication in from these only. */
  memberAddresses: string[];
}

/** A WAL position, as PostgreSQL prints it and as a byte offset (exact below 2^53, i.e. 8 PiB of WAL). */
export interface Lsn {
  text: string;
  bytes: number;
}

/** One standby as the primary sees it (pg_stat_replication). */
export interface ReplicaStatus {
  /** Its application_name: the standby's pgName. */
  name: string;
  clientAddress: string | null;
  /** `streaming`, `catchup`, `startup`, ... */
  state: string;
  /** `async`, `sync`, `quorum` (an `ANY n` candidate) or `potential`. */
  syncState: string;
  flushLsn: Lsn | null;
  replayLsn: Lsn | null;
}

/** What the reconcile loop observes of the local PostgreSQL. */
export interface PostgresStatus {
  /** A postmaster runs for this data directory. */
  running: boolean;
  /** `starting` also covers a running server that does not accept connections (crash recovery, inconsistent standby). */
  role: 'stopped' | 'starting' | 'primary' | 'standby';
  /** The role the sidecar last gave this data directory (`primary` only after initPrimary or promote). */
  intent: 'primary' | 'standby';
  inRecovery: boolean | null;
  /** The primary's insert timeline; on a standby the timeline it receives (or, not streaming, of its last restartpoint). */
  timeline: number | null;
  /** Primary: WAL flushed to disk, the most any standby can have received. */
  currentLsn: Lsn | null;
  /** Standby: WAL received and flushed by the WAL receiver since start (null before any streaming). */
  receivedLsn: Lsn | null;
  /** Standby: WAL replayed. */
  replayedLsn: Lsn | null;
  /** Standby: the WAL receiver is streaming. */
  streaming: boolean;
  /** Standby: where it is configured to stream from. */
  upstream: Upstream | null;
  /** Standby: what its WAL receiver reports (`streaming`, `waiting`, ...) and the sender it is connected to. */
  walReceiver: { status: string; host: string | null; port: number | null } | null;
  /** Primary: its standbys. */
  replicas: ReplicaStatus[];
  synchronousStandbyNames: string | null;
  /** Why the server could not be queried, when running but not answering. */
  error?: string;
}

/** Persisted next to the data directory (never inside it, so clones and rewinds cannot bring another node's). */
interface State {
  intent: 'primary' | 'standby';
  upstream: Upstream | null;
  synchronousStandbyNames: string;
}
const stateSchema = z.object({
  intent: z.enum(['primary', 'standby']),
  upstream: z.object({ host: z.string(), port: z.number() }).nullable(),
  synchronousStandbyNames: z.string(),
});

export function parseLsn(text: string | null | undefined): Lsn | null {
  if (!text) return null;
  const [hi, lo] = text.split('/');
  return { text, bytes: parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16) };
}

/** `synchronous_standby_names` for `setSynchronousStandbys`: see there. */
export function synchronousStandbyNamesValue(names: string[] | null, self: string): string {
  if (names === null) return '';
  const others = [...new Set(names.map(pgName))].filter((n) => n !== self).sort();
  return others.length === 0 ? '*' : `ANY 1 (${others.map(quoteIdent).join(', ')})`;
}

const sameUpstream = (a: Upstream | null, b: Upstream | null): boolean => a?.host === b?.host && a?.port === b?.port;
const describe = (u: Upstream): string => `${u.host}:${u.port}`;

/**
 * Controls the PostgreSQL of one node: initialise, clone, start and stop, follow, promote, rewind, observe.
 * The reconcile loop decides; this class only carries out. Every method is idempotent, so the loop can
 * repeat a step after a crash at any point. Methods that change the server run one at a time (an internal
 * queue); `stop`, `status` and `isRunning` never wait behind them, so a demotion is never delayed by a clone.
 *
 * Safety it keeps on its own:
 * - the postmaster is our direct child under a parent-death signal (SIGQUIT), so it dies with the sidecar
 *   (design rule 3); a postmaster it finds that it did not start is stopped and started again as its child;
 * - a data directory starts as a primary only if the sidecar last made it one (initPrimary or promote);
 *   follow, cloneFrom and rewindFrom record "standby" before they touch anything, so a crash half-way can
 *   never bring it back as a writer;
 * - passwords reach the server only as SCRAM verifiers and the tools only through the 0600 password file.
 *
 * Linux only (setpriv, /proc). Call it from the main thread: the death signal follows the thread that
 * spawned the postmaster.
 */
export class PostgresController {
  /** This node's slot and application name. */
  readonly name: string;
  readonly logFile: string;
  readonly passFile: string;
  readonly stateFile: string;
  private readonly settings: PostgresSettings;
  private readonly user: OsUser;
  private state: State;
  private child: ChildProcess | null = null;
  /** Postmasters we are stopping on purpose, so their exit is not reported as a crash. */
  private readonly stopping = new WeakSet<ChildProcess>();
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Whether this data directory may run as a primary now: set by the participant while its node holds the
   * lock with a valid lease, revoked (synchronously) when it steps down. A start of a primary that was
   * already under way when the permit went is stopped again (see startLocked), so a demoted node never ends
   * up with a writable primary, whatever order its turns' actions finish in.
   */
  private primaryPermitted = false;

  constructor(
    settings: PostgresSettings,
    private readonly log: Logger,
  ) {
    const parsed = settingsSchema.safeParse(settings);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(settings)'}: ${i.message}`).join('; ');
      throw new SidecarError('invalid_config', `invalid postgres settings: ${issues}`, 400);
    }
    this.settings = parsed.data;
    this.name = pgName(settings.nodeName);
    this.user = resolveOsUser(settings.runAsUser);
    this.logFile = `${settings.dataDir}.log`;
    this.passFile = `${settings.dataDir}.pgpass`;
    this.stateFile = `${settings.dataDir}.state.json`;
    this.state = this.loadState();
  }

  // ---------------------------------------------------------------- observe

  /** Grants or revokes the permit to run as a primary (see `primaryPermitted`). */
  permitPrimary(permitted: boolean): void {
    this.primaryPermitted = permitted;
  }

  /** The data directory a re-clone moved aside; kept until the new copy has streamed from a leader. */
  get previousDataDir(): string {
    return `${this.settings.dataDir}.previous`;
  }

  /** Removes the data kept aside by a re-clone: call only once this node streams from a leader. */
  discardPreviousDataDir(): void {
    if (!existsSync(this.previousDataDir)) return;
    rmSync(this.previousDataDir, { recursive: true, force: true });
    this.log.info('removed the data directory kept aside by the last re-clone: the new copy streams', { dir: this.previousDataDir });
  }

  /** The local data directory's system identifier (from global/pg_control), or null without one. */
  systemIdentifier(): string | null {
    const control = join(this.settings.dataDir, 'global', 'pg_control');
    if (!existsSync(control)) return null;
    // ControlFileData starts with the 64-bit system identifier, in the machine's byte order (little-endian here).
    return readFileSync(control).readBigUInt64LE(0).toString();
  }

  /** Whether the data directory holds an initialised cluster (PG_VERSION exists). */
  hasDataDir(): boolean {
    return existsSync(join(this.settings.dataDir, 'PG_VERSION'));
  }

  /** Whether a postmaster runs for this data directory (ours, or one left by someone else). */
  isRunning(): boolean {
    return this.postmasterPid() !== null;
  }

  /** The pid of the running postmaster, or null. */
  postmasterPid(): number | null {
    if (this.child?.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null && processAlive(this.child.pid)) {
      return this.child.pid;
    }
    return livePostmasterPid(this.settings.dataDir);
  }

  /**
   * One snapshot of the local server for the loop and the API. Never throws: a stopped server answers
   * `role: 'stopped'`, one that runs but does not answer `role: 'starting'` with `error`.
   */
  async status(): Promise<PostgresStatus> {
    const base: PostgresStatus = {
      running: this.isRunning(),
      role: 'stopped',
      intent: this.state.intent,
      inRecovery: null,
      timeline: null,
      currentLsn: null,
      receivedLsn: null,
      replayedLsn: null,
      streaming: false,
      upstream: this.state.upstream,
      walReceiver: null,
      replicas: [],
      synchronousStandbyNames: null,
    };
    if (!base.running) return base;
    try {
      return await this.withClient(async (c) => {
        const head = await c.query<{ in_recovery: boolean; ssn: string }>(
          "select pg_is_in_recovery() as in_recovery, current_setting('synchronous_standby_names') as ssn",
        );
        const { in_recovery: inRecovery, ssn } = head.rows[0];
        if (!inRecovery) {
          const pos = await c.query<{ lsn: string; walfile: string }>(
            'select pg_current_wal_flush_lsn()::text as lsn, pg_walfile_name(pg_current_wal_lsn()) as walfile',
          );
          const reps = await c.query<{ name: string; client: string | null; state: string; sync_state: string; flush: string | null; replay: string | null }>(
            `select application_name as name, host(client_addr) as client, state, sync_state,
                    flush_lsn::text as flush, replay_lsn::text as replay
               from pg_stat_replication order by application_name`,
          );
          return {
            ...base,
            role: 'primary',
            inRecovery,
            synchronousStandbyNames: ssn,
            // The first 8 hex digits of a WAL file name are its timeline (the insert timeline since 15).
            timeline: parseInt(pos.rows[0].walfile.slice(0, 8), 16),
            currentLsn: parseLsn(pos.rows[0].lsn),
            replicas: reps.rows.map((r) => ({
              name: r.name,
              clientAddress: r.client,
              state: r.state,
              syncState: r.sync_state,
              flushLsn: parseLsn(r.flush),
              replayLsn: parseLsn(r.replay),
            })),
          };
        }
        const sb = await c.query<{
          received: string | null;
          replayed: string | null;
          checkpoint_tli: number;
          status: string | null;
          received_tli: number | null;
          sender_host: string | null;
          sender_port: number | null;
        }>(
          `select pg_last_wal_receive_lsn()::text as received, pg_last_wal_replay_lsn()::text as replayed,
                  (pg_control_checkpoint()).timeline_id as checkpoint_tli,
                  r.status, r.received_tli, r.sender_host, r.sender_port
             from (select 1) as one left join pg_stat_wal_receiver as r on true`,
        );
        const row = sb.rows[0];
        return {
          ...base,
          role: 'standby',
          inRecovery,
          synchronousStandbyNames: ssn,
          timeline: row.received_tli ?? row.checkpoint_tli,
          receivedLsn: parseLsn(row.received),
          replayedLsn: parseLsn(row.replayed),
          streaming: row.status === 'streaming',
          walReceiver: row.status === null ? null : { status: row.status, host: row.sender_host, port: row.sender_port },
        };
      });
    } catch (e) {
      return { ...base, role: 'starting', error: errorMessage(e) };
    }
  }

  /**
   * A peer's WAL positions read from its Postgres itself, so they are fresh even when the peer's sidecar is
   * frozen or slow: received (or, never streamed since start, replayed) and replayed, in bytes; a primary
   * answers its flushed position for both. Throws when the peer's Postgres does not answer within `timeoutMs`.
   */
  async peerPosition(peer: Upstream, timeoutMs: number): Promise<{ wal: number; replayed: number } | null> {
    const { rows } = await this.withClient(
      (c) =>
        c.query<{ received: string | null; replayed: string | null; flushed: string | null }>(
          `select case when pg_is_in_recovery() then pg_last_wal_receive_lsn()::text end as received,
                  case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text end as replayed,
                  case when not pg_is_in_recovery() then pg_current_wal_flush_lsn()::text end as flushed`,
        ),
      { target: peer, connectTimeoutMs: timeoutMs, queryTimeoutMs: timeoutMs },
    );
    const row = rows[0];
    const replayed = parseLsn(row.replayed ?? row.flushed)?.bytes ?? null;
    const received = parseLsn(row.received ?? row.flushed)?.bytes ?? null;
    const wal = Math.max(received ?? -1, replayed ?? -1);
    return wal < 0 ? null : { wal, replayed: replayed ?? 0 };
  }

  /**
   * Whether this node holds data a join would destroy (design rule 9): a data directory whose server has a
   * database other than `postgres` and the app database, or any table, view, sequence or the like in
   * those. A fresh `initPrimary` answers false. A stopped server is started for the check on its unix
   * socket only (no TCP listener, so nobody can write to it meanwhile) and stopped again. If it cannot be
   * inspected this throws `postgres_unavailable`: the caller should then treat the node as not empty.
   */
  hasUserData(): Promise<boolean> {
    return this.exclusive(async () => {
      if (!this.hasDataDir()) return false;
      const temporary = !this.isRunning();
      try {
        if (temporary) {
          this.log.info('starting postgres on its unix socket only, to look for user data');
          await this.startLocked(['-c', 'listen_addresses=']);
        }
        const dbs = await this.withClient((c) => c.query<{ datname: string }>('select datname from pg_database where datallowconn and not datistemplate'));
        const names = dbs.rows.map((r) => r.datname);
        const extra = names.filter((n) => n !== 'postgres' && n !== this.settings.appDatabase);
        if (extra.length > 0) {
          this.log.info('postgres holds user databases', { databases: extra });
          return true;
        }
        for (const database of names) {
          const rel = await this.withClient(
            (c) =>
              c.query<{ n: number }>(
                `select count(*)::int as n from pg_class c join pg_namespace s on s.oid = c.relnamespace
                  where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
                    and s.nspname not in ('pg_catalog', 'information_schema') and s.nspname !~ '^pg_(toast|temp_|toast_temp_)'`,
              ),
            { database },
          );
          if (rel.rows[0].n > 0) {
            this.log.info('postgres holds user relations', { database, relations: rel.rows[0].n });
            return true;
          }
        }
        return false;
      } catch (e) {
        throw new SidecarError('postgres_unavailable', `cannot look for user data in ${this.settings.dataDir}: ${errorMessage(e)}`, 503);
      } finally {
        if (temporary) await this.stopProcess('fast');
      }
    });
  }

  /**
   * Runs one query as the superuser over the unix socket (for the loop's own checks and for tests).
   * `synchronous_commit` is `local` in these sessions: the sidecar's own writes never wait for a standby.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    return (await this.withClient((c) => c.query<R>(sql, params), { database })).rows;
  }

  // ---------------------------------------------------------------- act

  /**
   * Makes this node a fresh primary: initdb (data checksums, SCRAM, superuser `postgres` with its password
   * from a temporary 0600 file), the sidecar's configuration, start, then the replication role and the app
   * user and database. Repeating it completes a half-done run and updates passwords that changed. Refuses
   * (`postgres_data_exists`, 409) a data directory this node did not initialise as a primary: clone or
   * promote such a node, or move its data away.
   */
  initPrimary(): Promise<void> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      if (this.hasDataDir()) {
        if (!existsSync(this.stateFile) || this.state.intent !== 'primary' || existsSync(join(this.settings.dataDir, 'standby.signal'))) {
          throw new SidecarError(
            'postgres_data_exists',
            `${this.settings.dataDir} already holds a PostgreSQL data directory that this node did not initialise as a primary; move it away to start afresh`,
            409,
          );
        }
      } else {
        this.setState({ intent: 'primary', upstream: null, synchronousStandbyNames: '' });
        await this.initdb();
      }
      await this.startLocked();
      const [{ in_recovery: inRecovery }] = await this.query<{ in_recovery: boolean }>('select pg_is_in_recovery() as in_recovery');
      if (inRecovery) throw new SidecarError('postgres_not_primary', `postgres in ${this.settings.dataDir} runs as a standby; initPrimary cannot make it a primary`, 409);
      await this.ensureRoles();
      this.log.info('postgres initialised as primary', { ms: Math.round(performance.now() - t0) });
    });
  }

  /**
   * Starts the postmaster as our child, in the role the data directory was last given (see the class
   * comment), with the configuration rewritten first, and resolves once it accepts connections (read-write,
   * or read-only on a standby). Already running: waits for that. Throws `postgres_start_failed` (with the
   * end of the server log) if it exits, `postgres_start_timeout` if it is still not accepting after 60 s
   * (left running: recovery may just be slow). A node that does not hold the lock should call `follow`,
   * not `start`, after it was a primary.
   */
  start(): Promise<void> {
    return this.exclusive(() => this.startLocked());
  }

  /**
   * Stops the server. `fast`: rolls back open transactions, lets walsenders flush to standbys, writes a
   * shutdown checkpoint (falls back to immediate after 30 s). `immediate`: every process exits at once, the
   * next start runs crash recovery; this is what a demotion on a lost lease uses. Does not wait for other
   * actions in progress. Resolves once the postmaster is gone; no-op when stopped.
   */
  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    await this.stopProcess(mode);
  }

  /**
   * Replaces this node's data with a fresh copy of `primary`'s (pg_basebackup, WAL streamed through this
   * node's slot, which the primary must have created: `ensureReplicationSlots`), configures it as a standby
   * of `primary`, and starts it. Stops the local server first. The copy goes to `<dataDir>.clone` and
   * replaces the data directory only once complete, so a failed clone (`basebackup_failed`) leaves the
   * old data as it was.
   */
  cloneFrom(primary: Upstream, onProgress?: (percent: number) => void): Promise<void> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      await this.withClient((c) => this.checkSameSystem(c, primary), { target: primary }).catch((e) => {
        if (e instanceof SidecarError) throw e;
        throw new SidecarError('basebackup_failed', `cannot reach ${describe(primary)} as ${SUPERUSER} (${errorMessage(e)}); the local data was left as it was`, 502, { primary });
      });
      this.setState({ ...this.state, intent: 'standby', upstream: primary });
      await this.stopProcess('fast');
      this.prepareDirs();
      const { dataDir, binDir } = this.settings;
      const tmp = `${dataDir}.clone`;
      const old = `${dataDir}.old`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { mode: 0o700 });
      chownTo(tmp, this.user);
      this.log.info('cloning postgres from the primary (pg_basebackup)', { primary: describe(primary), slot: this.name });
      const result = await runTool(
        [
          join(binDir, 'pg_basebackup'),
          '--pgdata',
          tmp,
          '--wal-method=stream',
          '--checkpoint=fast',
          '--slot',
          this.name,
          '--progress',
          '--verbose',
          '--dbname',
          conninfo({
            host: primary.host,
            port: primary.port,
            user: this.settings.replicationUser,
            passfile: this.passFile,
            application_name: `${this.name}_clone`,
            connect_timeout: 5,
          }),
        ],
        this.user,
        this.progressLogger('pg_basebackup', onProgress),
      );
      if (result.code !== 0) {
        rmSync(tmp, { recursive: true, force: true });
        const slotMissing = /replication slot .* does not exist/.test(result.stderr);
        throw new SidecarError(
          'basebackup_failed',
          `pg_basebackup from ${describe(primary)} failed (${result.signal ?? `exit ${result.code}`})` +
            (slotMissing ? `: the primary has no replication slot "${this.name}" yet (the leader creates one per member)` : '') +
            `; the local data was left as it was:\n${lastLines(result.stderr)}`,
          502,
          { primary, slot: this.name },
        );
      }
      this.writeConfig(tmp);
      // The data being replaced may be the only copy of commits (a diverged former primary): it is kept as
      // `.previous` until the new copy streams (discardPreviousDataDir). A `.previous` already there means the
      // data now in place is an earlier clone that never streamed, a copy of the leader's: that one goes.
      if (existsSync(dataDir)) {
        if (existsSync(this.previousDataDir)) {
          rmSync(old, { recursive: true, force: true });
          renameSync(dataDir, old);
        } else {
          renameSync(dataDir, this.previousDataDir);
          this.log.warn('kept the replaced data directory aside until the new copy streams', { dir: this.previousDataDir });
        }
      }
      renameSync(tmp, dataDir);
      rmSync(old, { recursive: true, force: true });
      this.log.info('cloned postgres from the primary', { primary: describe(primary), ms: Math.round(performance.now() - t0) });
      await this.startLocked();
    });
  }

  /**
   * Makes this node a standby of `primary` and has it running: primary_conninfo (application_name and slot
   * = this node's name, password from the password file) and standby.signal. A running standby is
   * reloaded when its upstream changed (PostgreSQL restarts the WAL receiver); a running primary is stopped
   * (fast) and started as a standby; a stopped one is started. It does not rewind: a former primary must
   * come back through `rewindFrom` (cheap when nothing diverged), or it may refuse the new timeline.
   * Throws `postgres_no_data` when there is no data directory: clone first.
   */
  follow(primary: Upstream): Promise<void> {
    return this.exclusive(async () => {
      if (!sameUpstream(this.state.upstream, primary) || this.state.intent !== 'standby') {
        this.log.info('following a new upstream', { upstream: describe(primary) });
      }
      this.setState({ ...this.state, intent: 'standby', upstream: primary });
      if (!this.hasDataDir()) {
        throw new SidecarError('postgres_no_data', `${this.settings.dataDir} holds no data directory; clone it from the primary first`, 409);
      }
      const pid = this.postmasterPid();
      if (pid === null) {
        await this.startLocked();
        return;
      }
      let inRecovery = true;
      try {
        [{ in_recovery: inRecovery }] = await this.query<{ in_recovery: boolean }>('select pg_is_in_recovery() as in_recovery');
      } catch {
        // Still starting up: it started with standby.signal or will be reloaded below.
      }
      if (!inRecovery) {
        this.log.info('restarting the primary as a standby', { upstream: describe(primary) });
        await this.stopProcess('fast');
        await this.startLocked();
        return;
      }
      if (this.writeConfig()) {
        this.log.info('reloading the standby configuration', { upstream: describe(primary) });
        process.kill(pid, 'SIGHUP');
      }
    });
  }

  /**
   * Promotes this standby and resolves once it takes writes: pg_promote(wait => true), then until
   * pg_is_in_recovery() is false and a transaction gets an xid and commits (with synchronous_commit=local,
   * so this proves the node writes, not that a standby acknowledges). Already a primary: checks the same
   * and returns. Throws `postgres_not_running` when stopped, `promote_timeout` after 60 s. The
   * synchronous_standby_names it promotes with is the last one set with `setSynchronousStandbys` (which can
   * be called on the standby beforehand).
   */
  promote(): Promise<void> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      if (!this.primaryPermitted) throw this.notPermitted();
      if (!this.isRunning()) throw new SidecarError('postgres_not_running', 'cannot promote: postgres is not running', 409);
      let inRecovery: boolean;
      try {
        [{ in_recovery: inRecovery }] = await this.query<{ in_recovery: boolean }>('select pg_is_in_recovery() as in_recovery');
      } catch (e) {
        throw new SidecarError('postgres_unavailable', `cannot promote: postgres does not answer (${errorMessage(e)})`, 503);
      }
      if (inRecovery) {
        this.log.info('promoting postgres');
        const seconds = Math.ceil(PROMOTE_TIMEOUT_MS / 1000);
        await this.withClient((c) => c.query('select pg_promote(true, $1)', [seconds]), { queryTimeoutMs: PROMOTE_TIMEOUT_MS + 5_000 }).catch((e) => {
          throw new SidecarError('promote_timeout', `pg_promote failed: ${errorMessage(e)}\n${tailFile(this.logFile)}`);
        });
      }
      const deadline = t0 + PROMOTE_TIMEOUT_MS;
      let lastError = '';
      while (performance.now() < deadline) {
        try {
          await this.withClient(async (c) => {
            await c.query('begin');
            await c.query('set local synchronous_commit = local');
            await c.query('select txid_current()');
            await c.query('commit');
          });
          this.setState({ intent: 'primary', upstream: null, synchronousStandbyNames: this.state.synchronousStandbyNames });
          const pid = this.postmasterPid();
          if (this.writeConfig() && pid !== null) process.kill(pid, 'SIGHUP');
          this.log.info('postgres promoted and takes writes', { ms: Math.round(performance.now() - t0) });
          return;
        } catch (e) {
          lastError = errorMessage(e);
        }
        await sleep(POLL_MS);
      }
      throw new SidecarError('promote_timeout', `postgres still does not take writes ${PROMOTE_TIMEOUT_MS / 1000} s after promotion (${lastError})\n${tailFile(this.logFile)}`);
    });
  }

  /**
   * Brings a former primary (or a standby that went astray) back in line with `source` by pg_rewind, then
   * configures it as a standby of `source` and starts it. Stops the local server (fast) first; a target that
   * had crashed is recovered by pg_rewind itself (single-user mode, PostgreSQL 13+), so the caller need not
   * care how it went down. Returns false when pg_rewind ran and failed: the data directory is then unusable
   * and must be re-cloned (`cloneFrom`); it is left configured as a standby so no start can make it a
   * writer. Throws `rewind_failed` (data untouched) when `source` cannot be reached as the superuser.
   * False too when there is no data directory at all.
   */
  rewindFrom(source: Upstream, onProgress?: (percent: number) => void): Promise<boolean> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      if (!this.hasDataDir()) return false;
      // The source is checked before anything local changes: a refused rewind leaves this node as it was.
      try {
        await this.withClient(
          async (c) => {
            await this.checkSameSystem(c, source);
            await this.checkpointAfterPromotion(c, source);
          },
          { target: source },
        );
      } catch (e) {
        if (e instanceof SidecarError) throw e;
        throw new SidecarError('rewind_failed', `cannot rewind from ${describe(source)}: cannot connect as ${SUPERUSER} (${errorMessage(e)}); the local data was left as it was`, 502, { source });
      }
      this.setState({ ...this.state, intent: 'standby', upstream: source });
      await this.stopProcess('fast');
      this.prepareDirs();
      const server = conninfo({
        host: source.host,
        port: source.port,
        user: SUPERUSER,
        dbname: 'postgres',
        passfile: this.passFile,
        application_name: `${this.name}_rewind`,
        connect_timeout: 5,
      });
      // pg_rewind recovers a crashed target in single-user mode, which refuses to run with standby.signal.
      for (const signal of ['standby.signal', 'recovery.signal']) rmSync(join(this.settings.dataDir, signal), { force: true });
      this.log.info('rewinding postgres (pg_rewind)', { source: describe(source) });
      const result = await runTool(
        [join(this.settings.binDir, 'pg_rewind'), '--target-pgdata', this.settings.dataDir, '--source-server', server, '--progress'],
        this.user,
        this.progressLogger('pg_rewind', onProgress),
      );
      this.writeConfig();
      if (result.code !== 0) {
        this.log.warn('pg_rewind failed; the data directory must be cloned again', {
          code: 'rewind_failed',
          source: describe(source),
          exit: result.signal ?? result.code,
          output: lastLines(result.stderr),
        });
        return false;
      }
      this.log.info('postgres rewound', { source: describe(source), ms: Math.round(performance.now() - t0), output: lastLines(result.stderr, 2) });
      await this.startLocked();
      return true;
    });
  }

  /**
   * One physical slot per listed member (this node's own name is ignored), created with WAL reserved at
   * once; physical slots of names not listed are dropped, their walsender terminated first if one still
   * streams (a removed member); a slot invalidated by max_slot_wal_keep_size ("lost") is recreated, though
   * its member needs a new clone. Logical slots are never touched. Names go through `pgName`.
   * The leader calls it with the other members; a standby should call it with `[]`: slots a former primary
   * kept never advance on a standby and would hold its WAL back.
   */
  async ensureReplicationSlots(names: string[]): Promise<void> {
    const wanted = new Set(names.map(pgName).filter((n) => n !== this.name));
    await this.withClient(async (c) => {
      const have = await c.query<{ slot_name: string; active_pid: number | null; wal_status: string | null }>(
        "select slot_name, active_pid, wal_status from pg_replication_slots where slot_type = 'physical'",
      );
      const existing = new Set(have.rows.filter((r) => r.wal_status !== 'lost').map((r) => r.slot_name));
      for (const lost of have.rows.filter((r) => r.wal_status === 'lost' && wanted.has(r.slot_name) && r.active_pid === null)) {
        this.log.warn('replication slot lost its WAL (max_slot_wal_keep_size); recreating it, its member needs a new clone', { slot: lost.slot_name });
        await c.query('select pg_drop_replication_slot($1)', [lost.slot_name]);
      }
      for (const name of wanted) {
        if (existing.has(name)) continue;
        try {
          await c.query('select pg_create_physical_replication_slot($1, true)', [name]);
          this.log.info('created replication slot', { slot: name });
        } catch (e) {
          if ((e as { code?: string }).code !== '42710') throw e; // duplicate_object: created meanwhile
        }
      }
      for (const row of have.rows) {
        if (wanted.has(row.slot_name)) continue;
        if (row.active_pid !== null) await c.query('select pg_terminate_backend($1)', [row.active_pid]);
        try {
          await c.query('select pg_drop_replication_slot($1)', [row.slot_name]);
          this.log.info('dropped replication slot of a former member', { slot: row.slot_name });
        } catch (e) {
          // Still active for a moment after the walsender was terminated: the next turn drops it.
          this.log.warn('could not drop replication slot yet', { slot: row.slot_name, reason: errorMessage(e) });
        }
      }
    });
  }

  /**
   * Sets synchronous replication (design rule 5), in ha-sidecar.conf, reloads, and resolves once new
   * sessions see it:
   * - `null`: asynchronous (`''`);
   * - names: `ANY 1 ("n2", "n3")`, a commit waits until one of them has flushed it (quorum; this node's own
   *   name is left out);
   * - `[]` (or only this node's name): `'*'`, a commit waits for any standby at all. This is the strict mode
   *   with no synchronous candidate yet: writes block rather than be acknowledged by nobody; pass `null`
   *   for non-strict mode.
   * Works on a standby too (it takes effect when promoted). Not in ALTER SYSTEM, because
   * postgresql.auto.conf travels to standbys with every clone.
   */
  setSynchronousStandbys(names: string[] | null): Promise<void> {
    return this.exclusive(async () => {
      const value = synchronousStandbyNamesValue(names, this.name);
      if (value !== this.state.synchronousStandbyNames) this.log.info('setting synchronous_standby_names', { value });
      this.setState({ ...this.state, synchronousStandbyNames: value });
      if (!this.hasDataDir()) return;
      const changed = this.writeConfig();
      const pid = this.postmasterPid();
      if (pid === null) return;
      if (changed) process.kill(pid, 'SIGHUP');
      const deadline = performance.now() + RELOAD_TIMEOUT_MS;
      while (true) {
        const [{ v }] = await this.query<{ v: string }>("select current_setting('synchronous_standby_names') as v");
        if (v === value) return;
        if (performance.now() > deadline) {
          throw new SidecarError('postgres_reload_failed', `synchronous_standby_names is still '${v}' ${RELOAD_TIMEOUT_MS} ms after a reload to '${value}'\n${tailFile(this.logFile)}`);
        }
        await sleep(POLL_MS);
      }
    });
  }

  /**
   * The command the postmaster runs with (setpriv with the parent-death signal, the OS user, the guard), for
   * tests that start it from another parent. The spawner must set HA_SIDECAR_PARENT_PID to its own pid.
   */
  postmasterCommand(extraArgs: string[] = []): CommandSpec {
    return boundCommand([join(this.settings.binDir, 'postgres'), '-D', this.settings.dataDir, ...extraArgs], this.user, 'SIGQUIT');
  }

  // ---------------------------------------------------------------- internals

  /** Runs mutating actions one at a time, in call order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private loadState(): State {
    if (!existsSync(this.stateFile)) return { intent: 'standby', upstream: null, synchronousStandbyNames: '' };
    try {
      return stateSchema.parse(JSON.parse(readFileSync(this.stateFile, 'utf8')));
    } catch (e) {
      throw new SidecarError('invalid_state', `${this.stateFile} is damaged (${errorMessage(e)}); remove it and the node restarts as a standby`);
    }
  }

  private setState(state: State): void {
    this.state = state;
    mkdirSync(dirname(this.stateFile), { recursive: true });
    const tmp = `${this.stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, this.stateFile);
  }

  /** The directories around the data directory, and the password file. */
  private prepareDirs(): void {
    const { dataDir, socketDir } = this.settings;
    mkdirSync(dirname(dataDir), { recursive: true });
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    chownTo(socketDir, this.user);
    chmodSync(socketDir, 0o700);
    writeOwnedFile(
      this.passFile,
      renderPgpass([
        { user: this.settings.replicationUser, password: this.settings.replicationPassword },
        { user: SUPERUSER, password: this.settings.superuserPassword },
      ]),
      this.user,
    );
  }

  /**
   * Writes the sidecar's files into a data directory (the live one, or a clone before it goes live) and
   * standby.signal per the state. Returns whether ha-sidecar.conf or pg_hba.conf changed (reload needed).
   */
  private writeConfig(dir = this.settings.dataDir): boolean {
    const { host, port, socketDir, replicationUser, memberAddresses } = this.settings;
    let changed = false;
    const put = (file: string, content: string): void => {
      const path = join(dir, file);
      const before = existsSync(path) ? readFileSync(path, 'utf8') : null;
      if (before === content) return;
      writeOwnedFile(path, content, this.user);
      changed = true;
    };
    const mainConf = join(dir, 'postgresql.conf');
    const included = withInclude(existsSync(mainConf) ? readFileSync(mainConf, 'utf8') : '');
    if (included !== null) put('postgresql.conf', included);
    const autoConf = join(dir, 'postgresql.auto.conf');
    const scrubbed = existsSync(autoConf) ? scrubAutoConf(readFileSync(autoConf, 'utf8')) : null;
    if (scrubbed !== null) put('postgresql.auto.conf', scrubbed);
    put(
      SIDECAR_CONF,
      renderSidecarConf({
        name: this.name,
        host,
        port,
        socketDir,
        passFile: this.passFile,
        replicationUser,
        upstream: this.state.intent === 'standby' ? this.state.upstream : null,
        synchronousStandbyNames: this.state.synchronousStandbyNames,
      }),
    );
    put('pg_hba.conf', renderHba(memberAddresses, replicationUser));
    const standbySignal = join(dir, 'standby.signal');
    if (this.state.intent === 'standby' && !existsSync(standbySignal)) writeOwnedFile(standbySignal, '', this.user);
    if (this.state.intent === 'primary') rmSync(standbySignal, { force: true });
    return changed;
  }

  private async initdb(): Promise<void> {
    const { dataDir, binDir } = this.settings;
    if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
      throw new SidecarError('postgres_data_exists', `${dataDir} is not empty but holds no PostgreSQL data directory; move it away`, 409);
    }
    this.prepareDirs();
    const tmp = `${dataDir}.initdb`;
    const pwfile = `${dataDir}.initdb-pw`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { mode: 0o700 });
    chownTo(tmp, this.user);
    writeOwnedFile(pwfile, this.settings.superuserPassword + '\n', this.user);
    const t0 = performance.now();
    this.log.info('initialising a new data directory (initdb)', { dataDir });
    let result;
    try {
      result = await runTool(
        [
          join(binDir, 'initdb'),
          '--pgdata',
          tmp,
          '--data-checksums',
          '--auth=scram-sha-256',
          `--username=${SUPERUSER}`,
          `--pwfile=${pwfile}`,
          '--encoding=UTF8',
          '--locale=C.UTF-8',
        ],
        this.user,
      );
    } finally {
      rmSync(pwfile, { force: true });
    }
    if (result.code !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      throw new SidecarError(
        'initdb_failed',
        `initdb failed (${result.signal ?? `exit ${result.code}`}); check that user ${this.user.name ?? 'running the sidecar'} can write ${dirname(dataDir)}:\n${lastLines(result.stderr + result.stdout)}`,
      );
    }
    this.writeConfig(tmp);
    rmSync(dataDir, { recursive: true, force: true }); // empty, checked above
    renameSync(tmp, dataDir);
    this.log.info('initdb done', { ms: Math.round(performance.now() - t0) });
  }

  /** The replication role, the app role and the app database, with passwords as SCRAM verifiers. */
  private async ensureRoles(): Promise<void> {
    const { replicationUser, replicationPassword, appUser, appPassword, appDatabase } = this.settings;
    await this.withClient(async (c) => {
      const roles: [string, string, string][] = [
        [replicationUser, replicationPassword, 'LOGIN REPLICATION'],
        [appUser, appPassword, 'LOGIN'],
      ];
      for (const [role, password, attributes] of roles) {
        const found = await c.query<{ pw: string | null; login: boolean; repl: boolean }>(
          'select rolpassword as pw, rolcanlogin as login, rolreplication as repl from pg_authid where rolname = $1',
          [role],
        );
        const row = found.rows[0];
        const verb = row === undefined ? 'CREATE' : 'ALTER';
        const fine = row !== undefined && row.login && row.repl === attributes.includes('REPLICATION') && scramMatches(row.pw, password);
        if (fine) continue;
        await c.query(`${verb} ROLE ${quoteIdent(role)} WITH ${attributes} PASSWORD ${quoteLiteral(scramVerifier(password))}`);
        this.log.info(`${verb === 'CREATE' ? 'created' : 'updated'} role`, { role });
      }
      const db = await c.query('select 1 from pg_database where datname = $1', [appDatabase]);
      if (db.rowCount === 0) {
        await c.query(`CREATE DATABASE ${quoteIdent(appDatabase)} OWNER ${quoteIdent(appUser)}`);
        this.log.info('created database', { database: appDatabase, owner: appUser });
      }
    });
  }

  private async startLocked(extraArgs: string[] = []): Promise<void> {
    if (!this.hasDataDir()) {
      throw new SidecarError('postgres_no_data', `${this.settings.dataDir} holds no data directory; initialise or clone it first`, 409);
    }
    // A primary on its unix socket alone (hasUserData) takes no client's writes; any other needs the permit.
    const socketOnly = extraArgs.includes('listen_addresses=');
    const needsPermit = this.state.intent === 'primary' && !socketOnly;
    if (needsPermit && !this.primaryPermitted) throw this.notPermitted();
    const foreign = livePostmasterPid(this.settings.dataDir);
    if (foreign !== null && foreign !== this.child?.pid) {
      // Not our child, so not bound to us by the death signal (rule 3): restart it as ours.
      this.log.warn('a postmaster the sidecar did not start runs on the data directory; restarting it as the sidecar\'s child', { pid: foreign });
      await this.stopProcess('fast');
    }
    if (this.postmasterPid() === null) {
      this.prepareDirs();
      this.writeConfig();
      this.spawnPostmaster(extraArgs);
    }
    await this.waitAccepting();
    if (needsPermit && !this.primaryPermitted) {
      // The node stepped down while this primary was starting: it must not stay up to take writes.
      await this.stopProcess('immediate');
      throw this.notPermitted();
    }
  }

  private notPermitted(): SidecarError {
    return new SidecarError('primary_not_permitted', 'this node does not hold the leader lock with a valid lease: postgres is not started as a primary', 409);
  }

  private spawnPostmaster(extraArgs: string[]): void {
    const fd = openSync(this.logFile, 'a', 0o640);
    let child: ChildProcess;
    try {
      // Own process group: a Ctrl-C meant for the sidecar does not reach PostgreSQL; we stop it ourselves.
      child = spawnBound(this.postmasterCommand(extraArgs), { detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.log.info('started postmaster', { pid: child.pid, dataDir: this.settings.dataDir, log: this.logFile });
    child.on('error', (err) => this.log.error('cannot spawn postgres', { code: 'postgres_start_failed', reason: err.message }));
    child.on('exit', (code, signal) => {
      const expected = this.stopping.has(child);
      const fields = { pid: child.pid, exit: code, signal };
      if (expected) this.log.info('postmaster exited', fields);
      else this.log.warn('postmaster exited unexpectedly', { ...fields, code: 'postgres_exited', logTail: tailFile(this.logFile, 5) });
      if (this.child === child) this.child = null;
    });
  }

  private async waitAccepting(): Promise<void> {
    const deadline = performance.now() + START_TIMEOUT_MS;
    while (true) {
      const pid = this.postmasterPid();
      if (pid === null) {
        throw new SidecarError('postgres_start_failed', `postgres did not start; end of ${this.logFile}:\n${tailFile(this.logFile)}`);
      }
      const info = readPidFile(this.settings.dataDir);
      if (info?.pid === pid && (info.status === 'ready' || info.status === 'standby')) return;
      if (performance.now() > deadline) {
        throw new SidecarError(
          'postgres_start_timeout',
          `postgres (pid ${pid}) does not accept connections ${START_TIMEOUT_MS / 1000} s after start (left running); end of ${this.logFile}:\n${tailFile(this.logFile)}`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** Signals the postmaster (ours or a stray one) and waits for it to go, escalating fast → immediate → kill. */
  private async stopProcess(mode: 'fast' | 'immediate'): Promise<void> {
    const steps: [NodeJS.Signals, number][] = [
      ['SIGINT', FAST_STOP_TIMEOUT_MS],
      ['SIGQUIT', IMMEDIATE_STOP_TIMEOUT_MS],
      ['SIGKILL', IMMEDIATE_STOP_TIMEOUT_MS],
    ];
    const pid = this.postmasterPid();
    if (pid === null) return;
    const t0 = performance.now();
    if (this.child?.pid === pid) this.stopping.add(this.child);
    for (const [signal, timeoutMs] of mode === 'fast' ? steps : steps.slice(1)) {
      if (signal !== 'SIGINT') this.log.warn(`stopping postgres with ${signal}`, { pid, mode });
      else this.log.info('stopping postgres', { pid, mode });
      try {
        process.kill(pid, signal);
      } catch {
        /* gone already */
      }
      const deadline = performance.now() + timeoutMs;
      while (processAlive(pid) && performance.now() < deadline) await sleep(POLL_MS / 2);
      if (!processAlive(pid)) {
        this.log.info('postgres stopped', { pid, mode, ms: Math.round(performance.now() - t0) });
        return;
      }
    }
    throw new SidecarError('postgres_stop_failed', `postgres (pid ${pid}) survived SIGKILL; check the machine`);
  }

  /**
   * pg_rewind learns the source's timeline from its control file, which a promotion in 15 updates only at
   * its next checkpoint (requested, but spread over minutes). Before that, pg_rewind sees both sides on the
   * old timeline, says "no rewind required" and leaves a diverged target that can never follow. So, as
   * Patroni does, a primary source whose last checkpoint is on an older timeline gets a CHECKPOINT first.
   */
  private async checkpointAfterPromotion(c: pg.Client, source: Upstream): Promise<void> {
    const { rows } = await c.query<{ in_recovery: boolean; checkpoint_tli: number; walfile: string | null }>(
      `select pg_is_in_recovery() as in_recovery, (pg_control_checkpoint()).timeline_id as checkpoint_tli,
              case when not pg_is_in_recovery() then pg_walfile_name(pg_current_wal_lsn()) end as walfile`,
    );
    const { in_recovery: inRecovery, checkpoint_tli: checkpointTli, walfile } = rows[0];
    if (inRecovery || walfile === null) {
      // A leader still promoting: its control file shows the timeline it recovered on, and a rewind from it
      // would leave this node on the wrong timeline for good. Try again once it is a primary.
      throw new SidecarError('rewind_source_not_primary', `${describe(source)} is not a primary yet (still promoting); rewind postponed`, 503, { source });
    }
    const insertTli = parseInt(walfile.slice(0, 8), 16);
    if (insertTli <= checkpointTli) return;
    this.log.info('checkpointing the source so its control file shows its new timeline', { source: describe(source), timeline: insertTli });
    await c.query('checkpoint');
    const [{ tli }] = (await c.query<{ tli: number }>('select (pg_control_checkpoint()).timeline_id as tli')).rows;
    if (tli < insertTli) {
      throw new SidecarError('rewind_source_not_primary', `${describe(source)}'s control file still shows timeline ${tli} after a checkpoint on ${insertTli}; rewind postponed`, 503, { source });
    }
  }

  /** Refuses a source that is not a copy of this node's data (another cluster, or a stray initdb). */
  private async checkSameSystem(c: pg.Client, source: Upstream): Promise<void> {
    const mine = this.systemIdentifier();
    if (mine === null) return;
    const [{ id }] = (await c.query<{ id: string }>('select system_identifier::text as id from pg_control_system()')).rows;
    if (id !== mine) {
      throw new SidecarError(
        'system_identifier_mismatch',
        `${describe(source)} runs database system ${id}, but this node's data belongs to system ${mine}: refusing to replace it with a copy of another cluster (move ${this.settings.dataDir} away by hand if that is really wanted)`,
        409,
        { source, local: mine, remote: id },
      );
    }
  }

  /** Logs a tool's messages, and its progress meter at most every few seconds. */
  private progressLogger(tool: string, onProgress?: (percent: number) => void): (line: string) => void {
    let last = 0;
    return (line) => {
      const progress = /\((\d+)%\)/.exec(line);
      if (progress) onProgress?.(Number(progress[1]));
      if (progress) {
        const now = performance.now();
        if (now - last < PROGRESS_LOG_INTERVAL_MS && progress[1] !== '100') return;
        last = now;
        this.log.info(`${tool} progress`, { percent: Number(progress[1]), detail: line });
      } else {
        this.log.info(`${tool}: ${line.replace(/^\S+: /, '')}`);
      }
    };
  }

  /** A connection as the superuser: over our unix socket, or to `target` over TCP. Always closed. */
  private async withClient<T>(
    fn: (c: pg.Client) => Promise<T>,
    opts: { database?: string; target?: Upstream; queryTimeoutMs?: number; connectTimeoutMs?: number } = {},
  ): Promise<T> {
    const client = new pg.Client({
      host: opts.target?.host ?? this.settings.socketDir,
      port: opts.target?.port ?? this.settings.port,
      user: SUPERUSER,
      password: this.settings.superuserPassword,
      database: opts.database ?? 'postgres',
      application_name: 'ha-sidecar',
      connectionTimeoutMillis: opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
      query_timeout: opts.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
      options: '-c synchronous_commit=local',
    });
    // A server that goes away mid-session emits 'error' on the client; the pending query rejects anyway.
    client.on('error', () => undefined);
    try {
      await client.connect();
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- operator actions (hactl cluster reload/restart)

  /**
   * Rewrites the sidecar's configuration files and has the running server re-read them (SIGHUP, what
   * `pg_ctl reload` sends). Throws `postgres_not_running` when stopped.
   */
  reload(): Promise<void> {
    return this.exclusive(async () => {
      const pid = this.postmasterPid();
      if (pid === null) throw new SidecarError('postgres_not_running', 'postgres is not running on this node: nothing to reload', 409);
      this.writeConfig();
      process.kill(pid, 'SIGHUP');
      this.log.info('reloaded the postgres configuration', { pid });
    });
  }

  /**
   * Stops the server (fast: open transactions roll back, the standbys get every WAL record) and starts it
   * again in its recorded role. A primary comes back only under the permit (startLocked): a node that
   * stepped down meanwhile gets `primary_not_permitted` and no writer. Resolves once it accepts connections.
   */
  restart(): Promise<void> {
    return this.exclusive(async () => {
      if (this.postmasterPid() === null) throw new SidecarError('postgres_not_running', 'postgres is not running on this node: nothing to restart', 409);
      await this.stopProcess('fast');
      await this.startLocked();
      this.log.info('restarted postgres', { role: this.state.intent });
    });
  }
}
