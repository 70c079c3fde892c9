import { readdirSync, readFileSync } from 'node:fs';
import { livePostmasterPid, postgresProcessesIn } from '../postgres/pid-file.js';
import { signalQuietly } from '../shared/process.js';

/** How long the guard waits for a SIGSTOPped postmaster to be stopped before it enumerates its children. */
const STOP_WAIT_MS = 200;

interface ProcStat {
  state: string;
  ppid: number;
  pgid: number;
}

/** State, parent and process group of `pid` from /proc, or null when it is gone. */
function readStat(pid: number): ProcStat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the parenthesised command name (which may itself hold spaces or parentheses).
    const [state, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state, ppid: Number(ppid), pgid: Number(pgid) };
  } catch {
    return null;
  }
}

/** Blocks the calling thread for `ms` (the guard acts synchronously on purpose: nothing may interleave). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Every live descendant of the `roots` (children first found, breadth first), from one scan of /proc. */
function descendants(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readStat(pid);
    if (!stat) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(pid);
    children.set(stat.ppid, siblings);
  }
  const found: number[] = [];
  const queue = [...roots];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/**
 * SIGKILLs a postmaster and every process it started; returns the pids signalled (`killProcessTrees`).
 */
export function killProcessTree(root: number): number[] {
  return killProcessTrees([root]);
}

/**
 * SIGKILLs each of `roots` and every process they started; returns the pids signalled. One scan of /proc
 * for all of them: a guard whose sidecar died finds a dozen backends, and a scan each cost it ~5 ms apiece.
 *
 * Why a tree and not a process group: every PostgreSQL child (backends, walsenders, checkpointer, ...)
 * calls setsid() at start (InitPostmasterChild), so each leads its own group, and killing the postmaster's
 * group would leave the backends of open connections serving. Why SIGSTOP first: a stopped postmaster
 * cannot fork, so the children listed are all there are; a backend forked a moment before is listed too
 * (it exists once fork returns). SIGKILL rather than an immediate shutdown: nothing can delay it, and it is
 * crash-safe (every acknowledged commit is in the WAL on disk; the next start runs crash recovery).
 * A group led by a victim is killed as a whole too, for what a child may have started meanwhile.
 */
export function killProcessTrees(roots: number[]): number[] {
  for (const root of roots) signalQuietly(root, 'SIGSTOP');
  // One wait for all: a root that does not stop within it (one already dying, with its SIGKILL pending,
  // never does) is listed and killed anyway, as one alone was.
  for (let waited = 0; waited < STOP_WAIT_MS; waited++) {
    const stopping = roots.some((root) => {
      const state = readStat(root)?.state;
      return !(state === undefined || state === 'T' || state === 'Z');
    });
    if (!stopping) break;
    pause(1);
  }
  const victims = [...new Set([...descendants(roots), ...roots])];
  for (const pid of victims) {
    if (readStat(pid)?.pgid === pid) signalQuietly(-pid, 'SIGKILL');
    signalQuietly(pid, 'SIGKILL');
  }
  return victims;
}

/**
 * Kills the postmaster serving `dataDir` and every PostgreSQL process there, and waits (blocking, like the
 * rest of the guard's kill) until none runs; false if some still run after `timeoutMs`. A zombie has no
 * working directory and a gone postmaster is no live one, so a process killed but not yet reaped counts as
 * gone: it cannot run another instruction.
 */
export function killAllPostgres(dataDir: string, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  // A process SIGKILLed here cannot run, nor fork, again (the kernel aborts a fork with a fatal signal
  // pending): it is only waited for, not stopped and killed again, which cost up to STOP_WAIT_MS each.
  const killed = new Set<number>();
  for (;;) {
    const postmaster = livePostmasterPid(dataDir);
    const running = [...new Set([...(postmaster === null ? [] : [postmaster]), ...postgresProcessesIn(dataDir)])];
    if (running.length === 0) return true;
    if (Date.now() >= deadline) return false;
    const fresh = running.filter((pid) => !killed.has(pid));
    if (fresh.length > 0) for (const pid of killProcessTrees(fresh)) killed.add(pid);
    pause(fresh.length > 0 ? 1 : 2);
  }
}
