// What stays here shares the one action queue and the kept session: the reads, slots and synchronous list the
// loop uses every turn. The server's lifecycle and the permit are in lifecycle.ts, the role transitions in transitions.ts.
import { existsSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { SidecarError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { holdsUserData } from './bootstrap.js';
import type { Upstream } from './conf.js';
import { KeptSession, queryRows, withClient } from './connection.js';
import { configStamp, hasDataDir, writeConfig } from './data-dir.js';
import { ServerLifecycle } from './lifecycle.js';
import { POLL_MS } from './postmaster.js';
import { tailFile } from '../shared/process.js';
import { pgName } from './quoting.js';
import { postgresNode, type PostgresNode, type PostgresSettings } from './settings.js';
import { syncReplicationSlots } from './slots.js';
import { readPeerPosition, readStatus, stoppedStatus, type PostgresStatus } from './status.js';
import { synchronousStandbyNamesValue } from './sync-standbys.js';
import { cloneFrom, follow, initPrimary, promote, rewindFrom } from './transitions.js';

/** A reload reaches every backend within a few hundred ms; we wait until a fresh session sees the new value. */
const RELOAD_TIMEOUT_MS = 5_000;

/**
 * Controls the PostgreSQL of one node: initialise, clone, start and stop, follow, promote, rewind, observe.
 * The reconcile loop decides; this class only carries out. Every method is idempotent, so the loop can
 * repeat a step after a crash at any point. Methods that change the server run one at a time (an internal
 * queue); `stop`, `status` and `isRunning` never wait behind them, so a demotion is never delayed by a clone.
 * This facade owns the queue and the reads; the server's lifecycle and the permit to run as a primary are
 * ServerLifecycle's (lifecycle.ts), the role transitions are in transitions.ts, and the work below them in
 * the modules beside it (postmaster, bootstrap, rewind, slots, data-dir, status, state-file).
 *
 * Safety it keeps on its own:
 * - the postmaster is our direct child under a parent-death signal (SIGQUIT), so it dies with the sidecar
 *   (design rule 3); a postmaster it finds that it did not start is stopped and started again as its child;
 * - a data directory starts as a primary only if the sidecar last made it one (initPrimary or promote) and
 *   only under the permit; follow, cloneFrom and rewindFrom record "standby" before they touch anything, so
 *   a crash half-way can never bring it back as a writer;
 * - passwords reach the server only as SCRAM verifiers and the tools only through the 0600 password file.
 *
 * Linux only (setpriv, /proc). Call it from the main thread: the death signal follows the thread that
 * spawned the postmaster.
 */
export class PostgresController {
  private readonly node: PostgresNode;
  private readonly settings: PostgresSettings;
  private readonly server: ServerLifecycle;
  private queue: Promise<unknown> = Promise.resolve();
  /** configStamp after setSynchronousStandbys last wrote the config, with the postmaster's pid then. */
  private configWritten: string | null = null;
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
    this.server = new ServerLifecycle(this.node);
    this.kept = new KeptSession(this.settings);
  }

  // ---------------------------------------------------------------- observe

  /** Grants or revokes the permit to run as a primary (see ServerLifecycle). */
  permitPrimary(permitted: boolean): void {
    this.server.permit(permitted);
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

  /** Whether the data directory holds an initialised cluster (PG_VERSION exists). */
  hasDataDir(): boolean {
    return hasDataDir(this.node);
  }

  /** Whether a postmaster runs for this data directory (ours, or one left by someone else). */
  isRunning(): boolean {
    return this.server.pid() !== null;
  }

  /**
   * One snapshot of the local server for the loop and the API. Never throws: a stopped server answers
   * `role: 'stopped'`, one that runs but does not answer `role: 'starting'` with `error`.
   */
  async status(): Promise<PostgresStatus> {
    const { intent, upstream } = this.server.intent.current;
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
          await this.server.start(['-c', 'listen_addresses=']);
        }
        return await holdsUserData(this.node);
      } catch (e) {
        throw new SidecarError('postgres_unavailable', `cannot look for user data in ${this.settings.dataDir}: ${errorMessage(e)}`, 503);
      } finally {
        if (temporary) await this.server.postmaster.stop('fast');
      }
    });
  }

  // ---------------------------------------------------------------- act (transitions.ts says what each promises)

  /** Makes this node a fresh primary (initdb, or completes a half-done one); see transitions.ts initPrimary. */
  initPrimary(): Promise<void> {
    return this.exclusive(() => initPrimary(this.server));
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
    return this.exclusive(() => this.server.start());
  }

  /**
   * Stops the server. `fast`: rolls back open transactions, lets walsenders flush to standbys, writes a
   * shutdown checkpoint (falls back to immediate after 30 s). `immediate`: every process exits at once, the
   * next start runs crash recovery; this is what a demotion on a lost lease uses. Does not wait for other
   * actions in progress. Resolves once the postmaster is gone; no-op when stopped.
   */
  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    await this.server.postmaster.stop(mode);
  }

  /** Replaces this node's data with a copy of `primary`'s and starts it as its standby; see transitions.ts cloneFrom. */
  cloneFrom(primary: Upstream, onProgress?: (percent: number) => void): Promise<void> {
    return this.exclusive(() => cloneFrom(this.server, primary, onProgress));
  }

  /** Makes this node a running standby of `primary` (no rewind); see transitions.ts follow. */
  follow(primary: Upstream): Promise<void> {
    return this.exclusive(() => follow(this.server, primary));
  }

  /** Promotes this standby (under the permit) and resolves once it takes writes; see transitions.ts promote. */
  promote(): Promise<void> {
    return this.exclusive(() => promote(this.server));
  }

  /** Rewinds this node from `source` and starts it as its standby; false when it must be cloned; see transitions.ts rewindFrom. */
  rewindFrom(source: Upstream, onProgress?: (percent: number) => void): Promise<boolean> {
    return this.exclusive(() => rewindFrom(this.server, source, onProgress));
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
    const wanted = new Set(names.map(pgName).filter((n) => n !== this.node.name));
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
      const value = synchronousStandbyNamesValue(names, this.node.name);
      const { intent, postmaster } = this.server;
      if (value !== intent.current.synchronousStandbyNames) {
        this.log.info('setting synchronous_standby_names', { value });
        intent.set({ ...intent.current, synchronousStandbyNames: value });
      }
      if (!this.hasDataDir()) return;
      const pid = this.server.pid();
      // The leader calls this every turn with the same list; rendering and comparing the four files each time was
      // a fifth of what an idle leader allocates. It is skipped only when the intent (the list, its role and
      // upstream), the postmaster and every file's stamp are what they were right after the last write: a list
      // that must change changes the intent, and any other write to the files changes their stamp, so a list
      // that must be rewritten is always rewritten, and reloaded, before this resolves.
      const stamp = () => `${pid} ${configStamp(this.node, intent.current)}`;
      let changed = false;
      if (stamp() !== this.configWritten) {
        changed = writeConfig(this.node, intent.current);
        this.configWritten = stamp();
      }
      if (pid === null) return;
      if (changed) postmaster.reload(pid);
      // The leader sets the list every turn: the same value, with the file unchanged, that a new session of
      // this same postmaster already showed, needs no new session to prove it again (one a second, idle).
      else if (this.syncSettingSeen?.value === value && this.syncSettingSeen.pid === pid) return;
      const deadline = performance.now() + RELOAD_TIMEOUT_MS;
      while (true) {
        const [{ v }] = await queryRows<{ v: string }>(this.settings, "select current_setting('synchronous_standby_names') as v");
        this.syncSettingSeen = { value: v, pid };
        if (v === value) return;
        if (performance.now() > deadline) {
          throw new SidecarError('postgres_reload_failed', `synchronous_standby_names is still '${v}' ${RELOAD_TIMEOUT_MS} ms after a reload to '${value}'\n${tailFile(this.node.logFile)}`);
        }
        await sleep(POLL_MS);
      }
    });
  }

  // ---------------------------------------------------------------- internals

  /** Runs mutating actions one at a time, in call order. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  // ---------------------------------------------------------------- operator actions (hactl cluster reload/restart)

  /**
   * Rewrites the sidecar's configuration files and has the running server re-read them (SIGHUP, what
   * `pg_ctl reload` sends). Throws `postgres_not_running` when stopped.
   */
  reload(): Promise<void> {
    return this.exclusive(async () => this.server.reload());
  }

  /**
   * Stops the server (fast: open transactions roll back, the standbys get every WAL record) and starts it
   * again in its recorded role. A primary comes back only under the permit (ServerLifecycle.start): a node
   * that stepped down meanwhile gets `primary_not_permitted` and no writer. Resolves once it accepts connections.
   */
  restart(): Promise<void> {
    return this.exclusive(() => this.server.restart());
  }
}
