import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { processAlive } from '../shared/process.js';

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
