import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, existsSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { SidecarError } from '../errors.js';

/**
 * How the sidecar starts the processes that must not outlive it (PostgreSQL and its tools, the write guard,
 * the manager's hooks): as the OS user they run as, under a parent-death signal, with a clean environment.
 * Shared by every part (docs/design.md "Parts", the layering in eslint.config.js). The postmaster is a direct child of the sidecar (never daemonised by `pg_ctl`), so
 * that design rule 3 holds: when the sidecar dies, even by `kill -9`, the kernel sends the postmaster
 * SIGQUIT (immediate shutdown: every backend exits at once) and it stops taking writes.
 *
 * `setpriv` changes the ids first and sets the death signal afterwards (the kernel clears it on a
 * credential change, so the order matters). Between fork and that prctl there is a short window in which the
 * sidecar could die unnoticed; the guard shell closes it: it runs after the signal is set, and refuses to
 * exec PostgreSQL unless its parent is still the sidecar. Linux only.
 */

/** The OS identity PostgreSQL processes run as. */
export interface OsUser {
  /** User name for `setpriv --reuid`, or undefined to run as ourselves (we are not root). */
  name: string | undefined;
  uid: number;
  gid: number;
}

/**
 * Resolves `runAsUser`: by default `postgres` when we are root (PostgreSQL refuses to run as root), and
 * ourselves otherwise. A non-root sidecar can only run PostgreSQL as itself.
 */
export function resolveOsUser(runAsUser: string | undefined): OsUser {
  const root = process.getuid?.() === 0;
  const self = userInfo();
  const wanted = runAsUser ?? (root ? 'postgres' : undefined);
  if (wanted === undefined || (!root && wanted === self.username)) return { name: undefined, uid: self.uid, gid: self.gid };
  if (!root) {
    throw new SidecarError('invalid_config', `postgres.runAsUser is ${wanted}, but the sidecar runs as ${self.username}, not root; run it as root or drop runAsUser`, 400);
  }
  if (wanted === 'root') throw new SidecarError('invalid_config', 'PostgreSQL refuses to run as root: set postgres.runAsUser to another OS user', 400);
  try {
    const uid = Number(execFileSync('id', ['-u', wanted], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
    const gid = Number(execFileSync('id', ['-g', wanted], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
    return { name: wanted, uid, gid };
  } catch {
    throw new SidecarError('invalid_config', `OS user ${wanted} (postgres.runAsUser) does not exist: create it (useradd --system ${wanted}) or set another`, 400);
  }
}

/** Signals the kernel sends a child when the sidecar dies. */
export type DeathSignal = 'SIGQUIT' | 'SIGTERM' | 'SIGKILL';

/** A command line plus its environment, ready for `spawn`. */
export interface CommandSpec {
  command: string;
  args: string[];
  env: Record<string, string>;
}

/** Environment variable the guard compares its parent pid with. */
export const PARENT_PID_VAR = 'HA_SIDECAR_PARENT_PID';
/** Exit code of the guard when the sidecar died before PostgreSQL could start (EX_SOFTWARE). */
export const GUARD_EXIT_CODE = 70;

const GUARD_SCRIPT =
  `[ "$PPID" = "$${PARENT_PID_VAR}" ] || { echo "ha-sidecar: parent $${PARENT_PID_VAR} is gone (parent now $PPID), not starting $1" >&2; exit ${GUARD_EXIT_CODE}; }; ` +
  'exec "$@"';

/**
 * The command that runs `argv` as `user` under `deathSignal`. The caller's spawn must add
 * `HA_SIDECAR_PARENT_PID=<its own pid>` to the environment (see `spawnBound`). Exported so a test can run the
 * very same command from another parent process and kill that parent.
 */
export function boundCommand(argv: string[], user: OsUser, deathSignal: DeathSignal, env: Record<string, string> = {}): CommandSpec {
  const args = ['--pdeathsig', deathSignal];
  if (user.name !== undefined) args.push(`--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups');
  args.push('--', '/bin/sh', '-c', GUARD_SCRIPT, 'ha-sidecar-guard', ...argv);
  // A clean environment: nothing of the sidecar's (cluster token, Consul token) leaks into PostgreSQL.
  return { command: 'setpriv', args, env: { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', ...env } };
}

/** Spawns a `boundCommand` as our direct child. */
export function spawnBound(spec: CommandSpec, options: { detached: boolean; stdio: ('ignore' | 'pipe' | number)[] }): ChildProcess {
  return spawn(spec.command, spec.args, {
    detached: options.detached,
    stdio: options.stdio,
    env: { ...spec.env, [PARENT_PID_VAR]: String(process.pid) },
  });
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a PostgreSQL tool (initdb, pg_basebackup, pg_rewind, ...) to completion. It dies with the sidecar
 * (SIGTERM), so a half-done clone never keeps writing behind a restarted sidecar's back. `onOutput` sees
 * every line of stderr as it comes (progress meters end their lines with `\r`).
 */
export function runTool(argv: string[], user: OsUser, onOutput?: (line: string) => void, env: Record<string, string> = {}): Promise<ToolResult> {
  return new Promise((resolve) => {
    const child = spawnBound(boundCommand(argv, user, 'SIGTERM', env), { detached: false, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const lines = (partial + chunk).split(/[\r\n]/);
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') onOutput?.(line.trim());
    });
    child.on('error', (err) => resolve({ code: -1, signal: null, stdout, stderr: stderr + `\n${err.message}` }));
    child.on('close', (code, signal) => {
      if (partial.trim() !== '') onOutput?.(partial.trim());
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The last `lines` lines of a text (a tool's stderr), for error messages. */
export function lastLines(text: string, lines = 8): string {
  return text
    .split(/[\r\n]+/)
    .filter((l) => l.trim() !== '')
    .slice(-lines)
    .join('\n');
}

/** The last lines of a log file, read from its end (the file may be large). */
export function tailFile(path: string, lines = 15, maxBytes = 16 * 1024): string {
  try {
    const size = statSync(path).size;
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buffer, 0, length, size - length);
    } finally {
      closeSync(fd);
    }
    return lastLines(buffer.toString('utf8'), lines);
  } catch {
    return '';
  }
}

/** Sends `sig` to `pid`; a process that is already gone is not an error. */
export function signalQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone already */
  }
}

/** A process's state letter from /proc (R, S, D, T, Z, ...), or null when it is gone. */
export function processState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3, after the parenthesised command name (which may itself hold spaces or parentheses).
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

/** Whether `pid` is a live process (a zombie counts as dead: it no longer runs and holds no port). */
export function processAlive(pid: number): boolean {
  const state = processState(pid);
  return state !== null && state !== 'Z';
}

/** Writes a file owned by `user` with `mode`, atomically (temporary name, then rename). */
export function writeOwnedFile(path: string, content: string, user: OsUser, mode = 0o600): void {
  const tmp = `${path}.ha-tmp`;
  rmSync(tmp, { force: true });
  writeFileSync(tmp, content, { mode });
  chownSync(tmp, user.uid, user.gid);
  renameSync(tmp, path);
}

/** Gives `path` (a file or directory we created) to `user`. */
export function chownTo(path: string, user: OsUser): void {
  if (existsSync(path)) chownSync(path, user.uid, user.gid);
}
