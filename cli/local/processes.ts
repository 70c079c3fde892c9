import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { dirname } from 'node:path';
import { SidecarError, errorMessage } from '../../sidecar/errors.js';
import { processAlive, signalQuietly } from '../../sidecar/shared/process.js';
import { sleep } from './wait.js';

/**
 * The processes of the local cluster: started detached (their own session, stdio to a log file, not
 * waited for), so they outlive the hactl that started them; found again by pid from state.json.
 */

/** How long a process gets to stop after SIGTERM before SIGKILL: a sidecar stops its Postgres first. */
export const STOP_GRACE_MS = 10_000;
/** How long a process may take to disappear after SIGKILL (the kernel's work; longer means it is stuck). */
const KILL_WAIT_MS = 5_000;
/** How often a stopping process is looked at: stopping takes from milliseconds to seconds. */
const POLL_MS = 100;

/**
 * Starts `command` as the leader of its own session and process group (so its children can be signalled
 * with it) with stdout and stderr appended to `logFile`. The log is the child's own descriptor, not a pipe
 * through us, so nothing is lost when the starter exits. A failure to start comes as the child's `error` event.
 */
export function startLogged(command: string, args: string[], opts: { logFile: string; cwd?: string; env: NodeJS.ProcessEnv }): ChildProcess {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const log = openSync(opts.logFile, 'a', 0o600);
  try {
    return spawn(command, args, { detached: true, stdio: ['ignore', log, log], cwd: opts.cwd, env: opts.env });
  } finally {
    // The child holds its own copy of the descriptor from here on.
    closeSync(log);
  }
}

/**
 * Starts `command` like `startLogged` and returns its pid once it runs. hactl neither waits for it nor
 * keeps it alive: it goes on after hactl exits.
 */
export async function spawnDetached(command: string, args: string[], opts: { logFile: string; cwd: string; env: NodeJS.ProcessEnv }): Promise<number> {
  try {
    const child = startLogged(command, args, opts);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.unref();
    if (child.pid === undefined) throw new Error('no pid');
    return child.pid;
  } catch (e) {
    throw new SidecarError('spawn_failed', `cannot start ${command}: ${errorMessage(e)}`, 500);
  }
}

/** True when /proc tells us about processes (Linux); elsewhere only `kill(pid, 0)` is there. */
const haveProc = existsSync('/proc/self/cmdline');

/**
 * True while `pid` runs and is still the process we started: its command line contains `marker` (a
 * config path only that process has), so a pid reused after a reboot is never mistaken for ours. A
 * zombie (exited, not yet reaped) counts as gone.
 */
export function isRunning(pid: number | null | undefined, marker: string): pid is number {
  if (pid === null || pid === undefined) return false;
  if (!haveProc) {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  if (!processAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((arg) => arg.includes(marker));
  } catch {
    return false;
  }
}


/** Polls `alive` until it is false; resolves false when `ms` passed first. */
async function waitGone(alive: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive()) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

/**
 * Stops a process: `sig` (SIGTERM), then SIGKILL after `graceMs`. Resolves once it is gone, with how it
 * went; throws `stop_failed` only if even SIGKILL did not remove it. `alive` decides whether it still runs.
 */
export async function stopProcess(
  pid: number,
  alive: () => boolean,
  opts: { sig?: NodeJS.Signals; graceMs?: number } = {},
): Promise<'stopped' | 'killed' | 'gone'> {
  if (!alive()) return 'gone';
  signalQuietly(pid, opts.sig ?? 'SIGTERM');
  if (await waitGone(alive, opts.graceMs ?? STOP_GRACE_MS)) return 'stopped';
  signalQuietly(pid, 'SIGKILL');
  if (await waitGone(alive, KILL_WAIT_MS)) return 'killed';
  throw new SidecarError('stop_failed', `process ${pid} is still there ${KILL_WAIT_MS / 1000} s after SIGKILL`, 500);
}

/** `kill -9` of one process (not its group), the way a crash looks to the rest of the node. */
export async function crashProcess(pid: number, alive: () => boolean): Promise<void> {
  signalQuietly(pid, 'SIGKILL');
  if (!(await waitGone(alive, KILL_WAIT_MS))) {
    throw new SidecarError('stop_failed', `process ${pid} is still there ${KILL_WAIT_MS / 1000} s after SIGKILL`, 500);
  }
}

/** SIGKILL to what is left of a process group whose leader has exited (helpers the leader started). */
export function killGroupLeftovers(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    /* no such group: nothing left */
  }
}

/**
 * Fails with one clear line when `host:port` cannot be bound: `port_in_use` when something else has it,
 * `address_unavailable` when this machine has no such address (macOS has only 127.0.0.1 until aliased).
 */
export async function assertPortFree(host: string, port: number, what: string, udp = false): Promise<void> {
  const error = await (udp ? tryBindUdp(host, port) : tryBindTcp(host, port));
  if (error === undefined) return;
  if (error.code === 'EADDRINUSE') {
    throw new SidecarError(
      'port_in_use',
      `${host}:${port}${udp ? '/udp' : ''} (${what}) is already in use by another process: stop it, or run the local cluster on other addresses with --base-address`,
      409,
      { host, port },
    );
  }
  if (error.code === 'EADDRNOTAVAIL') {
    throw new SidecarError(
      'address_unavailable',
      `this machine has no address ${host} (needed for ${what}); on macOS add it with: sudo ifconfig lo0 alias ${host}`,
      409,
      { host },
    );
  }
  throw new SidecarError('port_check_failed', `cannot bind ${host}:${port} (${what}): ${error.message}`, 500, { host, port });
}

function tryBindTcp(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
  });
}

function tryBindUdp(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', (e: NodeJS.ErrnoException) => {
      try {
        socket.close();
      } catch {
        /* never bound */
      }
      resolve(e);
    });
    socket.bind({ address: host, port, exclusive: true }, () => socket.close(() => resolve(undefined)));
  });
}

/** The last `n` non-empty lines of a log file, for an error that says why a process died. */
export function logTail(file: string, n = 3): string {
  try {
    const lines = readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
    return lines.slice(-n).join(' | ');
  } catch {
    return '';
  }
}
