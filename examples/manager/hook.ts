#!/usr/bin/env node
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configArg, paths, readSampleConfig, type SampleConfig } from './config.js';

/**
 * The sample manager's hook for every role: `hook.js --config manager.json <role> <term> <cluster> <node>`
 * (the sidecar appends the last four). Idempotent, as the sidecar's contract asks: it can run any number of
 * times, and after a crash half-way, with the same outcome.
 *
 * - leader / standby: writes the role file and starts the manager process if it does not run; a leader hook
 *   then waits until the manager answers as leader (its database takes writes), exit 1 when it does not.
 * - stopping: marks the role `stopped` and stops the manager process.
 */

const LEADER_READY_MS = 10_000;
const STOP_GRACE_MS = 5_000;

const [role, termText] = process.argv.slice(process.argv.indexOf('--config') + 2);
const config = readSampleConfig(configArg(process.argv));
const files = paths(config);
const term = Number(termText);

function say(message: string): void {
  process.stdout.write(`${message}\n`);
}

function writeRole(r: 'leader' | 'standby' | 'stopped'): void {
  mkdirSync(config.stateDir, { recursive: true });
  writeFileSync(`${files.role}.tmp`, JSON.stringify({ role: r, term, at: new Date().toISOString() }));
  renameSync(`${files.role}.tmp`, files.role);
}

/** The pid of our manager process, checked against its command line (a reused pid is not ours). */
function runningPid(): number | null {
  try {
    const pid = Number(readFileSync(files.pid, 'utf8'));
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('server.js') && cmdline.includes(configArg(process.argv)) ? pid : null;
  } catch {
    return null;
  }
}

function startManager(c: SampleConfig): number {
  const server = fileURLToPath(new URL('./server.js', import.meta.url));
  const out = openSync(files.log, 'a');
  // Its own session: it outlives this hook (and a restart of the sidecar), like a real manager service.
  const child = spawn(process.execPath, [server, '--config', configArg(process.argv)], { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  child.unref();
  writeFileSync(files.pid, String(child.pid));
  say(`started the sample manager (pid ${child.pid}) on ${c.address}:${c.port}`);
  return child.pid as number;
}

async function answersAs(wanted: string, deadlineMs: number): Promise<string> {
  const deadline = Date.now() + deadlineMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://${config.address}:${config.port}/health`, { signal: AbortSignal.timeout(1_000) });
      const body = (await res.json()) as { role?: string; message?: string };
      if (res.ok && body.role === wanted) return 'ok';
      last = `HTTP ${res.status} ${body.message ?? body.role ?? ''}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the manager does not answer as ${wanted} after ${deadlineMs} ms: ${last}`);
}

async function stopManager(): Promise<void> {
  const pid = runningPid();
  if (pid === null) return;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STOP_GRACE_MS;
  while (runningPid() !== null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (runningPid() !== null) process.kill(pid, 'SIGKILL');
  rmSync(files.pid, { force: true });
  say(`stopped the sample manager (pid ${pid})`);
}

async function main(): Promise<void> {
  if (role === 'stopping') {
    writeRole('stopped');
    return stopManager();
  }
  if (role !== 'leader' && role !== 'standby') throw new Error(`unknown role ${role}`);
  writeRole(role);
  if (runningPid() === null) startManager(config);
  // The manager reads the role file at every request: a standby is passive once the file says so. A leader
  // is ready only once the manager answers as one (its database takes writes).
  if (role === 'leader') await answersAs(role, LEADER_READY_MS);
  say(`the sample manager is told it is ${role} (term ${term})`);
}

main().catch((e: Error) => {
  process.stderr.write(`sample manager hook ${role}: ${e.message}\n`);
  process.exit(1);
});
