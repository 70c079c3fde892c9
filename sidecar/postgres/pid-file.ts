import { readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { processAlive, processState } from '../shared/process.js';

/**
 * The pid of a live postmaster serving `dataDir`, from `postmaster.pid`, checked against the process's
 * working directory (PostgreSQL chdirs into its data directory), so a stale file whose pid was reused by some
 * other process is not mistaken for a running server.
 */
export function livePostmasterPid(dataDir: string): number | null {
  const info = readPidFile(dataDir);
  if (!info || !processAlive(info.pid)) return null;
  try {
    return readlinkSync(`/proc/${info.pid}/cwd`) === realpathSync(dataDir) ? info.pid : null;
  } catch {
    return null;
  }
}

/** Lines 1 and 8 of `postmaster.pid`: the pid and the status (`starting`, `stopping`, `ready`, `standby`). */
export function readPidFile(dataDir: string): { pid: number; status: string } | null {
  try {
    const lines = readFileSync(`${dataDir}/postmaster.pid`, 'utf8').split('\n');
    const pid = Number(lines[0]);
    if (!Number.isInteger(pid) || pid <= 0) return null;
    return { pid, status: (lines[7] ?? '').trim() };
  } catch {
    return null;
  }
}

/**
 * Every PostgreSQL process whose working directory is `dir` (the postmaster and all its children chdir into
 * the data directory and run the `postgres` binary): this finds the backends of a postmaster already gone.
 * Another program there (an operator's shell) is left alone.
 */
export function postgresProcessesIn(dir: string): number[] {
  let target: string;
  try {
    target = realpathSync(dir);
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) === target && basename(readlinkSync(`/proc/${pid}/exe`)) === 'postgres') found.push(pid);
    } catch {
      /* gone meanwhile, a zombie (no cwd), or not ours to read: not a running server process */
    }
  }
  return found;
}

/**
 * Removes `postmaster.pid` when the postmaster it names is dead but not yet reaped (a zombie: its sidecar
 * died and the machine's init has not collected it) and no PostgreSQL process runs in the data directory;
 * returns that pid, else null. Postgres takes a zombie's pid for a live server (kill(pid, 0) succeeds) and
 * refuses to start, or pg_rewind to recover the target, until init reaps it (1-2 s on the test machine,
 * never under an init that does not reap), and the rejoin fell back to a full clone.
 *
 * Why this cannot let a second server onto the directory: the file goes only when its pid can never run
 * again (a zombie) and no server process runs there at all (the cwd scan the write guard uses), so none is
 * left that the file's shared-memory key would have let a new postmaster detect.
 */
export function removeZombiePidFile(dataDir: string): number | null {
  const info = readPidFile(dataDir);
  if (!info || processState(info.pid) !== 'Z' || postgresProcessesIn(dataDir).length > 0) return null;
  rmSync(`${dataDir}/postmaster.pid`, { force: true });
  return info.pid;
}
