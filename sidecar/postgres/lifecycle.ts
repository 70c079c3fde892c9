import { SidecarError } from '../errors.js';
import { queryRows } from './connection.js';
import { hasDataDir, installTlsFiles, prepareDirs, writeConfig } from './data-dir.js';
import { Postmaster } from './postmaster.js';
import type { PostgresNode } from './settings.js';
import { IntentFile } from './state-file.js';

/**
 * The server of one data directory as its role allows it: the intent file (the role the sidecar last gave
 * the data directory), the postmaster, and the permit to run as a primary. The permit, the intent and every
 * start stay in this one class: a primary starts only here, checked before it starts and again once it
 * accepts, so no path can start a writer around the check. Its mutating methods run inside the controller's
 * queue (PostgresController.exclusive); `stop` and the reads do not need to.
 */
export class ServerLifecycle {
  readonly intent: IntentFile;
  readonly postmaster: Postmaster;
  /**
   * Whether this data directory may run as a primary now: set by the participant while its node holds the
   * lock with a valid lease, revoked (synchronously) when it steps down. A start of a primary that was
   * already under way when the permit went is stopped again (see start), so a demoted node never ends
   * up with a writable primary, whatever order its turns' actions finish in.
   */
  private primaryPermitted = false;

  constructor(readonly node: PostgresNode) {
    this.intent = new IntentFile(node.stateFile);
    this.postmaster = new Postmaster(node);
  }

  /** Grants or revokes the permit to run as a primary (see `primaryPermitted`). */
  permit(permitted: boolean): void {
    this.primaryPermitted = permitted;
  }

  get permitted(): boolean {
    return this.primaryPermitted;
  }

  /** Whether the data directory holds an initialised cluster (PG_VERSION exists). */
  hasDataDir(): boolean {
    return hasDataDir(this.node);
  }

  /** The pid of the running postmaster (ours, or one left by someone else), or null. */
  pid(): number | null {
    return this.postmaster.pid();
  }

  /** Whether the local server is in recovery (a standby); throws when it does not answer. */
  async inRecovery(): Promise<boolean> {
    const [{ in_recovery: inRecovery }] = await queryRows<{ in_recovery: boolean }>(this.node.settings, 'select pg_is_in_recovery() as in_recovery');
    return inRecovery;
  }

  /**
   * Starts the postmaster as our child in the role the intent file records, with the configuration
   * rewritten first, and resolves once it accepts connections; already running: waits for that. A primary
   * needs the permit, except on its unix socket alone (`listen_addresses=`, no client can write to it).
   */
  async start(extraArgs: string[] = []): Promise<void> {
    if (!this.hasDataDir()) {
      throw new SidecarError('postgres_no_data', `${this.node.settings.dataDir} holds no data directory; initialise or clone it first`, 409);
    }
    const socketOnly = extraArgs.includes('listen_addresses=');
    const needsPermit = this.intent.current.intent === 'primary' && !socketOnly;
    if (needsPermit && !this.primaryPermitted) throw this.notPermitted();
    const foreign = this.postmaster.foreignPid();
    if (foreign !== null) {
      // Not our child, so not bound to us by the death signal (rule 3): restart it as ours.
      this.node.log.warn('a postmaster the sidecar did not start runs on the data directory; restarting it as the sidecar\'s child', { pid: foreign });
      await this.postmaster.stop('fast');
    }
    if (this.pid() === null) {
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

  /**
   * Rewrites the configuration and the TLS files' copies and has the running server re-read them (SIGHUP:
   * renewed certificates take effect without a restart); `postgres_not_running` when stopped.
   */
  reload(): void {
    const pid = this.pid();
    if (pid === null) throw new SidecarError('postgres_not_running', 'postgres is not running on this node: nothing to reload', 409);
    installTlsFiles(this.node);
    writeConfig(this.node, this.intent.current);
    this.postmaster.reload(pid);
    this.node.log.info('reloaded the postgres configuration', { pid });
  }

  /** Stops the server (fast) and starts it again in its recorded role: a primary only under the permit (start). */
  async restart(): Promise<void> {
    if (this.pid() === null) throw new SidecarError('postgres_not_running', 'postgres is not running on this node: nothing to restart', 409);
    await this.postmaster.stop('fast');
    await this.start();
    this.node.log.info('restarted postgres', { role: this.intent.current.intent });
  }

  notPermitted(): SidecarError {
    return new SidecarError('primary_not_permitted', 'this node does not hold the leader lock with a valid lease: postgres is not started as a primary', 409);
  }
}
