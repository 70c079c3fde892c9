import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { crashProcess, killGroupLeftovers, startLogged, stopProcess } from '../../cli/local/processes.js';
import { waitUntil } from '../../cli/local/wait.js';

/**
 * The test side of running processes: a group of named children of the test process, each logging to a file
 * and stopped with the group. Starting and stopping is the local cluster's (cli/local/processes.ts), so the
 * harness and `hactl local` treat processes alike; what is the harness's own is that every child is ours and
 * an exit hook SIGKILLs whatever a dying test left behind.
 */

export { assertPortFree } from '../../cli/local/processes.js';

/** Every process any harness started in this test process, so the exit hook can SIGKILL what is left. */
const everyChild = new Set<ChildProcess>();

const hasExited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;

// Last resort when a test runner dies or times out before its afterAll ran: nothing may outlive it.
// Each child leads its own process group, so its own children (Postgres backends, ...) go too.
process.on('exit', () => {
  for (const child of everyChild) if (child.pid !== undefined && !hasExited(child)) killGroupLeftovers(child.pid);
});

export interface Started {
  name: string;
  child: ChildProcess;
  logFile: string;
  /** Resolves when the process has exited, with its exit code or signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts named processes, logs each to a file, and stops all of them on `stopAll` (also on failure). */
export class ProcessGroup {
  private readonly running = new Map<string, Started>();

  start(name: string, command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}, cwd?: string): Started {
    if (this.running.has(name)) throw new Error(`process ${name} is already running`);
    const child = startLogged(command, args, { logFile, cwd, env: { ...process.env, ...env } });
    everyChild.add(child);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => {
        everyChild.delete(child);
        resolve({ code, signal });
      });
      child.on('error', (err) => {
        appendFileSync(logFile, `spawn error: ${err.message}\n`);
        everyChild.delete(child);
        resolve({ code: -1, signal: null });
      });
    });
    const started: Started = { name, child, logFile, exited };
    this.running.set(name, started);
    void exited.then(() => {
      if (this.running.get(name) === started) this.running.delete(name);
    });
    return started;
  }

  get(name: string): Started | undefined {
    return this.running.get(name);
  }

  /** Sends `signal` and waits for the exit; escalates to SIGKILL after `graceMs`; then clears its group. */
  async stop(name: string, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const started = this.running.get(name);
    const pid = started?.child.pid;
    if (started === undefined || pid === undefined) return;
    await stopProcess(pid, () => !hasExited(started.child), { sig: signal, graceMs });
    await started.exited;
    // The leader of the group is gone; its children (if any survived) go with the group.
    killGroupLeftovers(pid);
  }

  /** `kill -9` of the process alone (not its group), the way a crash looks to the rest of the node. */
  async crash(name: string): Promise<void> {
    const started = this.running.get(name);
    if (!started?.child.pid) return;
    await crashProcess(started.child.pid, () => !hasExited(started.child));
    await started.exited;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((name) => this.stop(name, 'SIGTERM', 5_000)));
  }
}

/** Polls `check` until it returns a value other than undefined/false, or fails with `what` after `timeoutMs`. */
export function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  return waitUntil(what, check, { timeoutMs, intervalMs });
}

/** What a command run to its end printed, and its exit code (null when killed). */
export interface CommandRun {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `command args` with `env` and no stdin, collecting its output; SIGKILLs it after `timeoutMs`. */
export function runCommand(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}
