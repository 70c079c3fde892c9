import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';

/** Every process any harness started in this test process, so the exit hook can SIGKILL what is left. */
const everyChild = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // Each child leads its own process group, so its own children (Postgres backends, ...) go too.
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

// Last resort when a test runner dies or times out before its afterAll ran: nothing may outlive it.
process.on('exit', () => {
  for (const child of everyChild) killGroup(child, 'SIGKILL');
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

  start(name: string, command: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = {}): Started {
    if (this.running.has(name)) throw new Error(`process ${name} is already running`);
    mkdirSync(dirname(logFile), { recursive: true });
    const log = createWriteStream(logFile, { flags: 'a' });
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    everyChild.add(child);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => {
        everyChild.delete(child);
        resolve({ code, signal });
      });
      child.on('error', (err) => {
        log.write(`spawn error: ${err.message}\n`);
        everyChild.delete(child);
        resolve({ code: -1, signal: null });
      });
    });
    const started: Started = { name, child, logFile, exited };
    this.running.set(name, started);
    void exited.then(() => {
      if (this.running.get(name) === started) this.running.delete(name);
      log.end();
    });
    return started;
  }

  get(name: string): Started | undefined {
    return this.running.get(name);
  }

  /** Sends `signal` and waits for the exit; escalates to SIGKILL after `graceMs`. */
  async stop(name: string, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    const started = this.running.get(name);
    if (!started) return;
    killGroup(started.child, signal);
    const timer = setTimeout(() => killGroup(started.child, 'SIGKILL'), graceMs);
    await started.exited;
    clearTimeout(timer);
    // The leader of the group is gone; its children (if any survived) go with the group.
    killGroup(started.child, 'SIGKILL');
  }

  /** `kill -9` of the process alone (not its group), the way a crash looks to the rest of the node. */
  async crash(name: string): Promise<void> {
    const started = this.running.get(name);
    if (!started?.child.pid) return;
    process.kill(started.child.pid, 'SIGKILL');
    await started.exited;
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.running.keys()].map((name) => this.stop(name, 'SIGTERM', 5_000)));
  }
}

/** Polls `check` until it returns a value other than undefined/false, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      lastError = e;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
}

/** Fails with a clear message when something already listens on host:port. */
export async function assertPortFree(host: string, port: number, what: string): Promise<void> {
  const taken = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
  if (taken) throw new Error(`port ${host}:${port} (${what}) is already in use: stop whatever listens there first`);
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
