import { createInterface } from 'node:readline';
import { errorMessage } from '../errors.js';
import { createLogger } from '../log.js';
import { livePostmasterPid } from '../postgres/pid-file.js';
import { PARENT_PID_VAR, processState } from '../shared/process.js';
import { killAllPostgres, killProcessTree } from './kill.js';
import { formatReply, GuardState, monotonicNs, parseCommand } from './protocol.js';
import { failAliveCheck, GuardConsulClient, guardConsulFromEnv, releaseDeadSessionLock, warmUp, type GuardConsul } from './release.js';

/**
 * The write guard: `node main.js <postgres data dir> <node name>`, spawned by the sidecar (see client.ts)
 * and fed by it over stdin. While armed and starved past its deadline it SIGKILLs the postmaster serving
 * the data directory with all its processes, and keeps doing so to any postmaster that appears there until
 * it is fed a later deadline or disarmed. Its own process, so a frozen or blocked sidecar cannot stop it;
 * tiny on purpose, so it cannot block itself: while the sidecar lives no network but one call at start (warmUp,
 * never awaited by a kill), no disk writes but its log.
 * When the sidecar dies it kills the node's Postgres, releases the lock and ends (`sidecarDied`).
 */

/**
 * An armed guard sets one timer to its deadline (GuardState.nextCheckMs), re-set at every feed: about one
 * wake-up a second on the leader (a feed per lease confirmation), instead of a 50 ms poll's twenty. The timer
 * fires at the deadline plus libuv's millisecond rounding and scheduling, and the guard reads CLOCK_MONOTONIC
 * itself before it acts (a timer early by a rounding sets itself again for the rest), so the kill comes no
 * later than the poll's did (deadline + 50 ms), far inside the `demoteBudget` (1 s) the safety argument allows.
 * Once the deadline has passed it looks every STARVED_POLL_MS, killing any postmaster that appears, until
 * it is fed a later deadline or disarmed.
 */
const STARVED_POLL_MS = 50;
/** How long a guard whose sidecar died waits for its Postgres to be gone before it gives up the release. */
const POSTGRES_GONE_TIMEOUT_MS = 2_000;
/**
 * How long a SIGTERM or a closed input waits to see the sidecar's process dead. The parent-death signal comes
 * when the thread that started the guard exits, possibly before the sidecar's other threads and before the
 * kernel hands the guard to a new parent; a process that still lives after this sent the SIGTERM itself.
 */
const SIDECAR_DEATH_WAIT_MS = 1_000;

const [dataDir, node] = process.argv.slice(2);
const log = createLogger({ node: node ?? 'unknown', process: 'write-guard' });
if (!dataDir) {
  log.error('usage: write guard <postgres data dir> <node name>', { code: 'usage_error' });
  process.exit(2);
}

const state = new GuardState();
const consul = guardConsulFromEnv(process.env);
// Not awaited, and its failure is no matter: it only makes a later release faster (release.ts).
if (consul) void warmUp(consul).catch(() => undefined);
/** The sidecar that started us (client.ts sets the variable; whoever spawned us otherwise). */
const sidecarPid = Number(process.env[PARENT_PID_VAR] ?? process.ppid);
let timer: NodeJS.Timeout | null = null;
let inputClosed = false;
let sidecarGone = false;
/** The session this guard last tried to release while starved: one try per session. */
let starvedReleaseTried: string | null = null;

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
    releaseWhileStarved();
  }
}

/**
 * Starved past the deadline, with Postgres killed: the node cannot write, yet its session would hold the
 * lock until its alive check's TTL ran out and then for lock-delay, while a frozen or starved sidecar does
 * nothing. The guard releases the lock at once instead. Safe for the reason the sidecar's own step-down
 * releases: no process of the old primary runs (checked, and the guard goes on killing any that appears
 * while starved), and none can become writable again, since that needs a feed with a later deadline, which
 * only a confirmation of this session can give, and a confirmation sent after the deadline finds the
 * session destroyed (one sent before it gives a deadline already past). A lock the sidecar re-acquired
 * between the release and the destroy is freed by the destroy, with lock-delay. If the agent does not
 * answer (a partition, a hung agent), nothing is released and the old path holds.
 */
function releaseWhileStarved(): void {
  const session = state.leaseSession;
  if (!consul || !session || starvedReleaseTried === session) return;
  if (!killAllPostgres(dataDir, STARVED_POLL_MS)) return; // not gone yet: the next look tries again
  starvedReleaseTried = session;
  void handOver(consul, session, 'the lease ran out unconfirmed: postgres is dead, so the guard released the lock and destroyed the session');
}

/** Releases `session`'s lock and destroys the session, and logs what came of it. */
async function handOver(to: GuardConsul, session: string, released: string): Promise<void> {
  let client: GuardConsulClient | null = null;
  try {
    client = new GuardConsulClient(to);
    const outcome = await releaseDeadSessionLock(client, session);
    log.warn(outcome === 'released' ? released : `${released} (it held no lock)`, { code: 'guard_released_session', session, lockReleased: outcome === 'released' });
    await failAliveCheck(client, 'the write guard released this node\'s session').catch((e) => log.warn('could not mark the alive check critical', { error: errorMessage(e) }));
  } catch (e) {
    log.error('could not release the session; it dies by its alive check, with lock-delay', { code: 'guard_release_failed', session, error: errorMessage(e) });
  } finally {
    client?.close();
  }
}

/** Sets the one timer to when the guard must look next (see STARVED_POLL_MS); none while disarmed. */
function schedule(): void {
  if (timer) clearTimeout(timer);
  const waitMs = sidecarGone ? null : state.nextCheckMs(monotonicNs(), STARVED_POLL_MS);
  timer = waitMs === null ? null : setTimeout(onTimer, waitMs);
}

function onTimer(): void {
  timer = null;
  check();
  schedule();
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
  check();
  schedule();
  process.stdout.write(formatReply(reply));
  // Logged last: a slow log pipe must not delay the check or the answer.
  if (state.armed !== wasArmed) {
    const deadlineInMs = state.deadlineNs === null ? null : Math.round(Number(state.deadlineNs - monotonicNs()) / 1e6);
    log.info(state.armed ? 'write guard armed' : 'write guard disarmed', state.armed ? { deadlineInMs } : {});
  }
});
input.on('close', () => {
  inputClosed = true;
  // A graceful close: the sidecar said it has no session and disarmed first (client.ts close()).
  if (!state.armed && state.session === null) process.exit(0);
  void awaitSidecarDeath().then((died) => {
    if (died) return sidecarDied();
    // Closed while armed by a live sidecar (it closed it without disarming): enforce the deadline, then go.
    if (!state.armed) process.exit(0);
    log.warn('write guard input closed while armed: enforcing the last deadline', { code: 'guard_input_closed' });
  });
});
// The parent-death signal client.ts sets (or a SIGTERM from someone else: then exit as before).
process.on('SIGTERM', () => void awaitSidecarDeath().then((died) => (died ? sidecarDied() : process.exit(0))));

/** The sidecar's process is gone, a zombie, or no longer our parent. */
function sidecarDead(): boolean {
  if (process.ppid !== sidecarPid) return true;
  const sidecarState = processState(sidecarPid);
  return sidecarState === null || sidecarState === 'Z' || sidecarState === 'X';
}

async function awaitSidecarDeath(): Promise<boolean> {
  const deadline = Date.now() + SIDECAR_DEATH_WAIT_MS;
  while (!sidecarDead()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return true;
}

/**
 * The sidecar died (kill -9, a crash): its session would live on until its alive check's TTL runs out, and
 * then hold the lock for lock-delay, seconds in which nobody leads. The guard shortens that to milliseconds:
 * it kills every PostgreSQL process on the data directory, waits until none runs, and only then releases
 * the lock held by the sidecar's session (no lock-delay) and destroys the session.
 *
 * Why this cannot make a second writer: the lock is released only once no process of this node's Postgres
 * runs (each one killed and gone, or a zombie), and nothing is left to start one: the sidecar is dead, and
 * its file mirror and API died with it. That is the condition under which the sidecar's own step-down
 * releases (design.md "Fencing the primary": demotion before release). Why no acknowledged commit is lost:
 * a commit acknowledged in synchronous mode is on a synchronous standby, and only such a standby may take
 * the lock (the same fitness rules as after any failover). A released session never leads again: it is
 * destroyed here, and a restarted sidecar creates its own. If Postgres will not die or Consul does not
 * answer, the guard releases nothing and the session dies by its alive check with lock-delay, as before.
 */
async function sidecarDied(): Promise<void> {
  if (sidecarGone) return;
  sidecarGone = true;
  schedule(); // clears the timer: from here on the guard only hands over
  const stopped = killAllPostgres(dataDir, POSTGRES_GONE_TIMEOUT_MS);
  const session = state.session;
  if (!stopped) {
    log.error('the sidecar died and its postgres did not stop: releasing nothing', { code: 'guard_release_failed', dataDir });
  } else if (!consul || !session) {
    log.warn('the sidecar died: killed its postgres; no session to release', { code: 'guard_released_session', lockReleased: false });
  } else {
    await handOver(consul, session, 'the sidecar died: killed its postgres, released the lock and destroyed its session');
  }
  process.exit(0);
}
