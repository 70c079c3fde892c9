import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { SidecarError } from '../errors.js';
import { boundCommand, processAlive, spawnBound, tailFile, type CommandSpec } from '../shared/process.js';
import { livePostmasterPid, readPidFile, removeZombiePidFile } from './pid-file.js';
import type { PostgresNode } from './settings.js';

/** Time for the postmaster to accept connections: crash recovery of a small manager database fits easily. */
const START_TIMEOUT_MS = 60_000;
/** A fast shutdown waits for walsenders to send what is left to standbys; past this we shut down immediately. */
const FAST_STOP_TIMEOUT_MS = 30_000;
/** After SIGQUIT every backend exits at once; past this something is wedged and SIGKILL is all that is left. */
const IMMEDIATE_STOP_TIMEOUT_MS = 5_000;
/** How often a wait re-checks its condition: cheap checks, and promotion and start-up want a quick answer. */
export const POLL_MS = 50;

/**
 * The postmaster process of one data directory: spawned as our direct child under a parent-death signal
 * (SIGQUIT), so it dies with the sidecar (design rule 3), waited for until it accepts connections, and
 * stopped with escalating signals. It knows nothing of roles: the controller decides what may start.
 */
export class Postmaster {
  private child: ChildProcess | null = null;
  /** Postmasters we are stopping on purpose, so their exit is not reported as a crash. */
  private readonly stopping = new WeakSet<ChildProcess>();

  constructor(private readonly node: PostgresNode) {}

  /** The pid of the running postmaster (ours, or one left by someone else), or null. */
  pid(): number | null {
    if (this.child?.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null && processAlive(this.child.pid)) {
      return this.child.pid;
    }
    return livePostmasterPid(this.node.settings.dataDir);
  }

  /** The pid of a postmaster running on the data directory that is not our child (not bound to us), or null. */
  foreignPid(): number | null {
    const pid = livePostmasterPid(this.node.settings.dataDir);
    return pid !== null && pid !== this.child?.pid ? pid : null;
  }

  /** The command the postmaster runs with (setpriv with the parent-death signal, the OS user, the guard). */
  command(extraArgs: string[] = []): CommandSpec {
    const { binDir, dataDir } = this.node.settings;
    return boundCommand([join(binDir, 'postgres'), '-D', dataDir, ...extraArgs], this.node.user, 'SIGQUIT');
  }

  spawn(extraArgs: string[]): void {
    const { log, logFile } = this.node;
    removeZombieLock(this.node);
    const fd = openSync(logFile, 'a', 0o640);
    let child: ChildProcess;
    try {
      // Own process group: a Ctrl-C meant for the sidecar does not reach PostgreSQL; we stop it ourselves.
      child = spawnBound(this.command(extraArgs), { detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    log.info('started postmaster', { pid: child.pid, dataDir: this.node.settings.dataDir, log: logFile });
    child.on('error', (err) => log.error('cannot spawn postgres', { code: 'postgres_start_failed', reason: err.message }));
    child.on('exit', (code, signal) => {
      const expected = this.stopping.has(child);
      const fields = { pid: child.pid, exit: code, signal };
      if (expected) log.info('postmaster exited', fields);
      else log.warn('postmaster exited unexpectedly', { ...fields, code: 'postgres_exited', logTail: tailFile(logFile, 5) });
      if (this.child === child) this.child = null;
    });
  }

  /** Resolves once the postmaster accepts connections; throws `postgres_start_failed` / `postgres_start_timeout`. */
  async waitAccepting(): Promise<void> {
    const { logFile } = this.node;
    const deadline = performance.now() + START_TIMEOUT_MS;
    while (true) {
      const pid = this.pid();
      if (pid === null) {
        throw new SidecarError('postgres_start_failed', `postgres did not start; end of ${logFile}:\n${tailFile(logFile)}`);
      }
      const info = readPidFile(this.node.settings.dataDir);
      if (info?.pid === pid && (info.status === 'ready' || info.status === 'standby')) return;
      if (performance.now() > deadline) {
        throw new SidecarError(
          'postgres_start_timeout',
          `postgres (pid ${pid}) does not accept connections ${START_TIMEOUT_MS / 1000} s after start (left running); end of ${logFile}:\n${tailFile(logFile)}`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** Signals the postmaster (ours or a stray one) and waits for it to go, escalating fast → immediate → kill. */
  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    const { log } = this.node;
    const steps: [NodeJS.Signals, number][] = [
      ['SIGINT', FAST_STOP_TIMEOUT_MS],
      ['SIGQUIT', IMMEDIATE_STOP_TIMEOUT_MS],
      ['SIGKILL', IMMEDIATE_STOP_TIMEOUT_MS],
    ];
    const pid = this.pid();
    if (pid === null) return;
    const t0 = performance.now();
    if (this.child?.pid === pid) this.stopping.add(this.child);
    for (const [signal, timeoutMs] of mode === 'fast' ? steps : steps.slice(1)) {
      if (signal !== 'SIGINT') log.warn(`stopping postgres with ${signal}`, { pid, mode });
      else log.info('stopping postgres', { pid, mode });
      try {
        process.kill(pid, signal);
      } catch {
        /* gone already */
      }
      const deadline = performance.now() + timeoutMs;
      while (processAlive(pid) && performance.now() < deadline) await sleep(POLL_MS / 2);
      if (!processAlive(pid)) {
        log.info('postgres stopped', { pid, mode, ms: Math.round(performance.now() - t0) });
        return;
      }
    }
    throw new SidecarError('postgres_stop_failed', `postgres (pid ${pid}) survived SIGKILL; check the machine`);
  }

  /** Asks the postmaster to re-read its configuration files. */
  reload(pid: number): void {
    process.kill(pid, 'SIGHUP');
  }
}

/** Before Postgres reads its lock file (a start, pg_rewind's recovery): one left by an unreaped dead postmaster goes (pid-file.ts). */
export function removeZombieLock(node: PostgresNode): void {
  const pid = removeZombiePidFile(node.settings.dataDir);
  if (pid !== null) node.log.info('removed the lock file of a dead postmaster not yet reaped by init', { pid, dataDir: node.settings.dataDir });
}
