import { createInterface } from 'node:readline';
import { errorMessage } from '../errors.js';
import { createLogger } from '../log.js';
import { livePostmasterPid } from '../postgres/pid-file.js';
import { killProcessTree } from './kill.js';
import { formatReply, GuardState, monotonicNs, parseCommand } from './protocol.js';

/**
 * The write guard: `node main.js <postgres data dir> <node name>`, spawned by the sidecar (see client.ts)
 * and fed by it over stdin. While armed and starved past its deadline it SIGKILLs the postmaster serving
 * the data directory with all its processes, and keeps doing so to any postmaster that appears there until
 * it is fed a later deadline or disarmed. Its own process, so a frozen or blocked sidecar cannot stop it;
 * tiny on purpose, so it cannot block itself: no network, no disk writes but its log.
 */

/**
 * How often an armed guard compares the clock with its deadline: the kill comes at most this long after
 * the deadline (plus scheduling), far inside the `demoteBudget` (1 s by default) the safety argument allows.
 */
const POLL_MS = 50;

const [dataDir, node] = process.argv.slice(2);
const log = createLogger({ node: node ?? 'unknown', process: 'write-guard' });
if (!dataDir) {
  log.error('usage: write guard <postgres data dir> <node name>', { code: 'usage_error' });
  process.exit(2);
}

const state = new GuardState();
let poll: NodeJS.Timeout | null = null;
let inputClosed = false;

function check(): void {
  const now = monotonicNs();
  if (state.mustKill(now)) {
    const pid = livePostmasterPid(dataDir);
    if (pid !== null) {
      // Kill first, log after: a slow log pipe must never delay the kill.
      const killed = killProcessTree(pid);
      const overdueMs = state.deadlineNs === null ? null : Number(now - state.deadlineNs) / 1e6;
      log.error('lease deadline passed without a confirmation: killed postgres (SIGKILL)', { code: 'guard_killed_postgres', pid, killed, overdueMs, dataDir });
    } else if (inputClosed) {
      process.exit(0); // the sidecar is gone and so is its postgres: nothing left to guard
    }
  }
}

function setPolling(on: boolean): void {
  if (on && !poll) poll = setInterval(check, POLL_MS);
  if (!on && poll) {
    clearInterval(poll);
    poll = null;
  }
}

// The sidecar may go away first; its pdeath signal ends us then, a write to its closed pipe must not.
process.stdout.on('error', () => undefined);
const input = createInterface({ input: process.stdin });
input.on('line', (line) => {
  let command;
  try {
    command = parseCommand(line);
  } catch (e) {
    // A command it does not understand is a bug in the sidecar; dying makes the sidecar fail closed.
    log.error('write guard exiting on a bad command', { code: (e as { code?: string }).code, error: errorMessage(e) });
    process.exit(2);
  }
  const wasArmed = state.armed;
  const reply = state.apply(command);
  setPolling(state.armed);
  check();
  process.stdout.write(formatReply(reply));
  // Logged last: a slow log pipe must not delay the check or the answer.
  if (state.armed !== wasArmed) {
    const deadlineInMs = state.deadlineNs === null ? null : Math.round(Number(state.deadlineNs - monotonicNs()) / 1e6);
    log.info(state.armed ? 'write guard armed' : 'write guard disarmed', state.armed ? { deadlineInMs } : {});
  }
});
input.on('close', () => {
  inputClosed = true;
  // Closed while armed (the sidecar died, or closed it without disarming): enforce the deadline, then go.
  if (!state.armed) process.exit(0);
  log.warn('write guard input closed while armed: enforcing the last deadline', { code: 'guard_input_closed' });
});
