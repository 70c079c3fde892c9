// Over 400 lines because of its doc comments: each public method states what it promises and why it cannot
// make a second writer; the work itself lives in the modules it imports.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { basebackup, ensureRoles, holdsUserData, initdb } from './bootstrap.js';
import type { Upstream } from './conf.js';
import { KeptSession, describe, queryRows, withClient } from './connection.js';
import { hasDataDir, prepareDirs, systemIdentifier, writeConfig } from './data-dir.js';
import { POLL_MS, Postmaster } from './postmaster.js';
import type { CommandSpec } from '../shared/process.js';
import { tailFile } from '../shared/process.js';
import { pgName } from './quoting.js';
import { checkpointAfterPromotion, checkSameSystem, runRewind } from './rewind.js';
import { postgresNode, SUPERUSER, type PostgresNode, type PostgresSettings } from './settings.js';
import { syncReplicationSlots } from './slots.js';
import { readPeerPosition, readStatus, stoppedStatus, type PostgresStatus } from './status.js';
import { IntentFile } from './state-file.js';
import { synchronousStandbyNamesValue } from './sync-standbys.js';

/** Promotion replays what is left of the received WAL, then switches timeline; a healthy standby takes seconds. */
const PROMOTE_TIMEOUT_MS = 60_000;
/** A reload reaches every backend within a few hundred ms; we wait until a fresh session sees the new value. */
const RELOAD_TIMEOUT_MS = 5_000;

const sameUpstream = (a: Upstream | null, b: Upstream | null): boolean => a?.host === b?.host && a?.port === b?.port;

/**
 * Controls the PostgreSQL of one node: initialise, clone, start and stop, follow, promote, rewind, observe.
 * The reconcile loop decides; this class only carries out. Every method is idempotent, so the loop can
 * repeat a step after a crash at any point. Methods that change the server run one at a time (an internal
 * queue); `stop`, `status` and `isRunning` never wait behind them, so a demotion is never delayed by a clone.
 * This facade owns the queue, the permit and the order of each role transition; the work is done by the
 * modules beside it (postmaster, bootstrap, rewind, slots, data-dir, status, state-file).
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
  private readonly node: PostgresNode;
  private readonly settings: PostgresSettings;
  private readonly intent: IntentFile;
  private readonly postmaster: Postmaster;
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Whether this data directory may run as a primary now: set by the participant while its node holds the
   * lock with a valid lease, revoked (synchronously) when it steps down. A start of a primary that was
   * already under way when the permit went is stopped again (see startLocked), so a demoted node never ends
   * up with a writable primary, whatever order its turns' actions finish in.
   */
  private primaryPermitted = false;
  /** The synchronous_standby_names a new session of postmaster `pid` last showed (see setSynchronousStandbys). */
  private syncSettingSeen: { value: string; pid: number } | null = null;
  /** The session the loop's every-turn reads go through (status, slots): see KeptSession. */
  private readonly kept: KeptSession;

  constructor(
    settings: PostgresSettings,
    private readonly log: Logger,
  ) {
    this.node = postgresNode(settings, log);
    this.settings = this.node.settings;
    this.name = this.node.name;
    this.logFile = this.node.logFile;
    this.passFile = this.node.passFile;
    this.stateFile = this.node.stateFile;
    this.intent = new IntentFile(this.stateFile);
    this.kept = new KeptSession(this.settings);
    this.postmaster = new Postmaster(this.node);
  }

  // ---------------------------------------------------------------- observe

  /** Grants or revokes the permit to run as a primary (see `primaryPermitted`). */
  permitPrimary(permitted: boolean): void {
    this.primaryPermitted = permitted;
  }

  /** The data directory a re-clone moved aside; kept until the new copy has streamed from a leader. */
  get previousDataDir(): string {
    return this.node.previousDataDir;
  }

  /** Removes the data kept aside by a re-clone: call only once this node streams from a leader. */
  discardPreviousDataDir(): void {
    if (!existsSync(this.previousDataDir)) return;
    rmSync(this.previousDataDir, { recursive: true, force: true });
    this.log.info('removed the data directory kept aside by the last re-clone: the new copy streams', { dir: this.previousDataDir });
  }

  /** The local data directory's system identifier (from global/pg_control), or null without one. */
  systemIdentifier(): string | null {
    return systemIdentifier(this.node);
  }

  /** Whether the data directory holds an initialised cluster (PG_VERSION exists). */
  hasDataDir(): boolean {
    return hasDataDir(this.node);
  }

  /** Whether a postmaster runs for this data directory (ours, or one left by someone else). */
  isRunning(): boolean {
    return this.postmasterPid() !== null;
  }

  /** The pid of the running postmaster, or null. */
  postmasterPid(): number | null {
    return this.postmaster.pid();
  }

  /**
   * One snapshot of the local server for the loop and the API. Never throws: a stopped server answers
   * `role: 'stopped'`, one that runs but does not answer `role: 'starting'` with `error`.
   */
  async status(): Promise<PostgresStatus> {
    const { intent, upstream } = this.intent.current;
    const base = stoppedStatus(this.isRunning(), intent, upstream);
    if (!base.running) {
      this.kept.close();
      return base;
    }
    try {
      return await this.kept.use((c) => readStatus(c, base));
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
    return withClient(this.settings, readPeerPosition, { target: peer, connectTimeoutMs: timeoutMs, queryTimeoutMs: timeoutMs });
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
        return await holdsUserData(this.node);
      } catch (e) {
        throw new SidecarError('postgres_unavailable', `cannot look for user data in ${this.settings.dataDir}: ${errorMessage(e)}`, 503);
      } finally {
        if (temporary) await this.postmaster.stop('fast');
      }
    });
  }

  /**
   * Runs one query as the superuser over the unix socket (for the loop's own checks and for tests).
   * `synchronous_commit` is `local` in these sessions: the sidecar's own writes never wait for a standby.
   */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = [], database = 'postgres'): Promise<R[]> {
    return queryRows<R>(this.settings, sql, params, database);
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
        if (!this.intent.exists() || this.intent.current.intent !== 'primary' || existsSync(join(this.settings.dataDir, 'standby.signal'))) {
          throw new SidecarError(
            'postgres_data_exists',
            `${this.settings.dataDir} already holds a PostgreSQL data directory that this node did not initialise as a primary; move it away to start afresh`,
            409,
          );
        }
      } else {
        this.intent.set({ intent: 'primary', upstream: null, synchronousStandbyNames: '' });
        await initdb(this.node, this.intent.current);
      }
      await this.startLocked();
      const [{ in_recovery: inRecovery }] = await this.query<{ in_recovery: boolean }>('select pg_is_in_recovery() as in_recovery');
      if (inRecovery) throw new SidecarError('postgres_not_primary', `postgres in ${this.settings.dataDir} runs as a standby; initPrimary cannot make it a primary`, 409);
      await ensureRoles(this.node);
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
    await this.postmaster.stop(mode);
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
      await withClient(this.settings, (c) => checkSameSystem(this.node, c, primary), { target: primary }).catch((e) => {
        if (e instanceof SidecarError) throw e;
        throw new SidecarError('basebackup_failed', `cannot reach ${describe(primary)} as ${SUPERUSER} (${errorMessage(e)}); the local data was left as it was`, 502, { primary });
      });
      // Recorded before anything local changes: a crash from here on brings this node back as a standby.
      this.intent.set({ ...this.intent.current, intent: 'standby', upstream: primary });
      await this.postmaster.stop('fast');
      prepareDirs(this.node);
      await basebackup(this.node, this.intent.current, primary, onProgress);
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
      const state = this.intent.current;
      if (!sameUpstream(state.upstream, primary) || state.intent !== 'standby') {
        this.log.info('following a new upstream', { upstream: describe(primary) });
      }
      this.intent.set({ ...state, intent: 'standby', upstream: primary });
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
        await this.postmaster.stop('fast');
        await this.startLocked();
        return;
      }
      if (writeConfig(this.node, this.intent.current)) {
        this.log.info('reloading the standby configuration', { upstream: describe(primary) });
        this.postmaster.reload(pid);
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
        await withClient(this.settings, (c) => c.query('select pg_promote(true, $1)', [seconds]), { queryTimeoutMs: PROMOTE_TIMEOUT_MS + 5_000 }).catch((e) => {
          throw new SidecarError('promote_timeout', `pg_promote failed: ${errorMessage(e)}\n${tailFile(this.logFile)}`);
        });
      }
      const deadline = t0 + PROMOTE_TIMEOUT_MS;
      let lastError = '';
      while (performance.now() < deadline) {
        try {
          await withClient(this.settings, async (c) => {
            await c.query('begin');
            await c.query('set local synchronous_commit = local');
            await c.query('select txid_current()');
            await c.query('commit');
          });
          this.intent.set({ intent: 'primary', upstream: null, synchronousStandbyNames: this.intent.current.synchronousStandbyNames });
          const pid = this.postmasterPid();
          if (writeConfig(this.node, this.intent.current) && pid !== null) this.postmaster.reload(pid);
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
   * care how it went down. Returns false when pg_rewind ran and failed, or when a former primary came out
   * of it on the source's timeline ID (see `rewindOutcome`: it diverged on a duplicated timeline and
   * pg_rewind did nothing): the data directory is then unusable and must be re-cloned (`cloneFrom`); it is
   * left configured as a standby, not started, so no start can make it a writer. Throws `rewind_failed`
   * (data untouched) when `source` cannot be reached as the superuser. False too when there is no data
   * directory at all.
   */
  rewindFrom(source: Upstream, onProgress?: (percent: number) => void): Promise<boolean> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      if (!this.hasDataDir()) return false;
      // The source is checked before anything local changes: a refused rewind leaves this node as it was.
      try {
        await withClient(
          this.settings,
          async (c) => {
            await checkSameSystem(this.node, c, source);
            await checkpointAfterPromotion(this.node, c, source);
          },
          { target: source },
        );
      } catch (e) {
        if (e instanceof SidecarError) throw e;
        throw new SidecarError('rewind_failed', `cannot rewind from ${describe(source)}: cannot connect as ${SUPERUSER} (${errorMessage(e)}); the local data was left as it was`, 502, { source });
      }
      const formerPrimary = this.intent.current.intent === 'primary';
      // Recorded before pg_rewind touches the data: whatever happens next, no start makes this node a writer.
      this.intent.set({ ...this.intent.current, intent: 'standby', upstream: source });
      await this.postmaster.stop('fast');
      prepareDirs(this.node);
      const outcome = await runRewind(this.node, this.intent.current, source, t0, onProgress);
      if (outcome === 'failed') return false;
      if (outcome === 'same_timeline' && formerPrimary) {
        // A primary source on the timeline ID this former primary wrote on was promoted without knowing this
        // node's timeline: the same ID, another history. Only for a standby is the same ID the normal case.
        // Returning false sends it to a clone of the leader, which replaces only this node's data (kept
        // aside) and leaves the leader untouched: no second writer, no commit of the leader's lost. What
        // only this node wrote after its promotion is on no leader's history; pg_rewind would drop it too.
        this.log.warn('former primary on the same timeline ID as its new leader but another history: it must be cloned again', {
          code: 'rewind_same_timeline',
          source: describe(source),
        });
        return false;
      }
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
    await this.kept.use((c) => syncReplicationSlots(c, wanted, this.log));
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
      if (value !== this.intent.current.synchronousStandbyNames) {
        this.log.info('setting synchronous_standby_names', { value });
        this.intent.set({ ...this.intent.current, synchronousStandbyNames: value });
      }
      if (!this.hasDataDir()) return;
      const changed = writeConfig(this.node, this.intent.current);
      const pid = this.postmasterPid();
      if (pid === null) return;
      if (changed) this.postmaster.reload(pid);
      // The leader sets the list every turn: the same value, with the file unchanged, that a new session of
      // this same postmaster already showed, needs no new session to prove it again (one a second, idle).
      else if (this.syncSettingSeen?.value === value && this.syncSettingSeen.pid === pid) return;
      const deadline = performance.now() + RELOAD_TIMEOUT_MS;
      while (true) {
        const [{ v }] = await this.query<{ v: string }>("select current_setting('synchronous_standby_names') as v");
        this.syncSettingSeen = { value: v, pid };
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
    return this.postmaster.command(extraArgs);
  }

  // ---------------------------------------------------------------- internals

  /** Runs mutating actions one at a time, in call order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async startLocked(extraArgs: string[] = []): Promise<void> {
    if (!this.hasDataDir()) {
      throw new SidecarError('postgres_no_data', `${this.settings.dataDir} holds no data directory; initialise or clone it first`, 409);
    }
    // A primary on its unix socket alone (hasUserData) takes no client's writes; any other needs the permit.
    const socketOnly = extraArgs.includes('listen_addresses=');
    const needsPermit = this.intent.current.intent === 'primary' && !socketOnly;
    if (needsPermit && !this.primaryPermitted) throw this.notPermitted();
    const foreign = this.postmaster.foreignPid();
    if (foreign !== null) {
      // Not our child, so not bound to us by the death signal (rule 3): restart it as ours.
      this.log.warn('a postmaster the sidecar did not start runs on the data directory; restarting it as the sidecar\'s child', { pid: foreign });
      await this.postmaster.stop('fast');
    }
    if (this.postmasterPid() === null) {
      prepareDirs(this.node);
      writeConfig(this.node, this.intent.current);
      this.postmaster.spawn(extraArgs);
    }
    await this.postmaster.waitAccepting();
    if (needsPermit && !this.primaryPermitted) {
      // The node stepped down while this primary was starting: it must not stay up to take writes.
      await this.postmaster.stop('immediate');
      throw this.notPermitted();
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
      writeConfig(this.node, this.intent.current);
      this.postmaster.reload(pid);
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
      await this.postmaster.stop('fast');
      await this.startLocked();
      this.log.info('restarted postgres', { role: this.intent.current.intent });
    });
  }

  private notPermitted(): SidecarError {
    return new SidecarError('primary_not_permitted', 'this node does not hold the leader lock with a valid lease: postgres is not started as a primary', 409);
  }
}
