import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { projectRoot } from '../../sidecar/shared/package.js';
import { createLogger } from '../../sidecar/log.js';
import { WriteGuard } from '../../sidecar/guard/client.js';
import { formatCommand, performanceToMonotonicNs } from '../../sidecar/guard/protocol.js';
import { processAlive } from '../../sidecar/shared/process.js';
import { rejection } from '../harness/assertions.js';
import { waitFor } from '../harness/processes.js';

/**
 * The write guard alone, with real processes and no Consul: a dummy "postmaster" (a shell serving a data
 * directory, as postmaster.pid and its working directory say) with children like PostgreSQL's: one that
 * called setsid() as every backend does, one with a child of its own, and a plain one.
 */

const script = join(projectRoot(), 'dist', 'sidecar', 'guard', 'main.js');
/**
 * The bound the guard kept with its former 50 ms poll (its timer now fires at the deadline itself; STARVED_POLL_MS
 * in sidecar/guard/main.ts once past it), and what a loaded 2-core machine may add to it.
 */
const POLL_MS = 50;
const SCHEDULING_SLACK_MS = 250;
const log = createLogger({ node: 'guard-test' }, 'error');

function procChildren(): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), pid]);
    } catch {
      /* gone meanwhile */
    }
  }
  return children;
}

function tree(root: number): number[] {
  const children = procChildren();
  const all = [root];
  for (let i = 0; i < all.length; i++) all.push(...(children.get(all[i]) ?? []));
  return all.filter(processAlive);
}

interface Dummy {
  root: number;
  /** The root and its 4 descendants, listed once all had started. */
  pids: number[];
}

const started: ChildProcess[] = [];
const dummies: Dummy[] = [];
const guards: WriteGuard[] = [];
let dataDir: string;

async function startDummyPostmaster(): Promise<Dummy> {
  const child = spawn('/bin/sh', ['-c', 'setsid sleep 1000 & (sleep 1000; true) & sleep 1000 & wait'], { cwd: dataDir, detached: true, stdio: 'ignore' });
  started.push(child);
  const root = child.pid!;
  writeFileSync(join(dataDir, 'postmaster.pid'), `${root}\n${dataDir}\n0\n15432\n\n\n\nready   \n`);
  const pids = await waitFor('the dummy postmaster and its 4 descendants', () => {
    const all = tree(root);
    return all.length === 5 ? all : undefined;
  }, 5_000, 20);
  const dummy = { root, pids };
  dummies.push(dummy);
  return dummy;
}

const allAlive = (d: Dummy) => d.pids.every(processAlive);
const noneAlive = (d: Dummy) => !d.pids.some(processAlive);

function newGuard(leaseMs = 3_000): WriteGuard {
  const guard = new WriteGuard({ dataDir, nodeName: 'guard-test', leaseMs, log, script });
  guards.push(guard);
  guard.start();
  return guard;
}

/** A guard armed with a far deadline, so its start-up (about a second on a busy machine) is behind us. */
async function armedGuard(): Promise<WriteGuard> {
  const guard = newGuard();
  guard.feed(performance.now() + 60_000);
  await guard.arm();
  return guard;
}

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'ha-guard-'));
});

afterEach(async () => {
  for (const guard of guards.splice(0)) await guard.close();
  for (const d of dummies.splice(0)) for (const pid of d.pids) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const child of started.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

describe('write guard (real processes, no Consul)', () => {
  test('armed and starved: kills the postmaster and every process under it, at the deadline plus at most a poll', async () => {
    const dummy = await startDummyPostmaster();
    const guard = await armedGuard();
    const expiresAt = performance.now() + 600;
    guard.feed(expiresAt);
    await waitFor('just before the deadline', () => performance.now() >= expiresAt - 100, 2_000, 5);
    expect(allAlive(dummy)).toBe(true);
    await waitFor('every dummy process to die', () => noneAlive(dummy), 5_000, 5);
    const lateMs = performance.now() - expiresAt;
    console.log(`write guard killed the dummy postmaster tree ${lateMs.toFixed(0)} ms after the deadline (poll ${POLL_MS} ms)`);
    expect(lateMs).toBeGreaterThanOrEqual(0);
    expect(lateMs).toBeLessThan(POLL_MS + SCHEDULING_SLACK_MS);
  });

  test('fed: never kills; once the feeds stop, it does', async () => {
    const dummy = await startDummyPostmaster();
    const guard = await armedGuard();
    const leaseMs = 300;
    const feedUntil = performance.now() + 2_000;
    // Feeds every 100 ms, each a lease ahead, for 2 s: more than 6 leases.
    while (performance.now() < feedUntil) {
      guard.feed(performance.now() + leaseMs);
      await new Promise((r) => setTimeout(r, 100));
      expect(allAlive(dummy)).toBe(true);
    }
    const lastDeadline = performance.now() + leaseMs;
    guard.feed(lastDeadline);
    await waitFor('every dummy process to die once starved', () => noneAlive(dummy), 5_000, 5);
    expect(performance.now()).toBeGreaterThanOrEqual(lastDeadline);
  });

  test('disarmed: does not kill past its deadline; armed again while starved, it kills at once', async () => {
    const dummy = await startDummyPostmaster();
    const guard = await armedGuard();
    const expiresAt = performance.now() + 200;
    guard.feed(expiresAt);
    await guard.disarm(); // answered after the feed: the guard takes commands in order
    // Twenty poll intervals past the deadline: an armed guard would have killed long before.
    await waitFor('twenty polls past the deadline', () => performance.now() >= expiresAt + 20 * POLL_MS, 5_000, 10);
    expect(allAlive(dummy)).toBe(true);
    await guard.arm(); // still the old, past deadline: the guard was alive all along and only disarmed
    await waitFor('every dummy process to die', () => noneAlive(dummy), 5_000, 5);
  });

  test('a guard that dies while armed is a lost lease; arm fails until a new guard runs, which starts disarmed', async () => {
    const dummy = await startDummyPostmaster();
    const guard = newGuard();
    const lost: string[] = [];
    guard.onLost((why) => lost.push(why));
    guard.feed(performance.now() + 60_000);
    await guard.arm();
    const first = guard.pid()!;
    process.kill(first, 'SIGKILL');
    await waitFor('the loss to be reported', () => lost.length === 1, 5_000, 10);
    expect(lost[0]).toMatch(/write guard exited \(SIGKILL\)/);
    expect((await rejection(guard.arm())).code).toBe('guard_unavailable');
    await waitFor('a new guard process', () => guard.pid() !== undefined && guard.pid() !== first, 10_000, 20);
    // The new guard is disarmed: starved by a past deadline it still leaves the postmaster alone ...
    const pastDeadline = performance.now() - 1;
    guard.feed(pastDeadline);
    await waitFor('twenty polls past that deadline', () => performance.now() >= pastDeadline + 20 * POLL_MS, 5_000, 10);
    expect(allAlive(dummy)).toBe(true);
    // ... until it is armed.
    await guard.arm();
    await waitFor('every dummy process to die', () => noneAlive(dummy), 5_000, 5);
    expect(lost).toHaveLength(1);
  });

  test('a guard that stops answering while armed (cannot be fed) is a lost lease and is replaced', async () => {
    await startDummyPostmaster();
    const leaseMs = 500;
    const guard = newGuard(leaseMs);
    const lost: string[] = [];
    guard.onLost((why) => lost.push(why));
    guard.feed(performance.now() + 60_000);
    await guard.arm();
    const frozen = guard.pid()!;
    process.kill(frozen, 'SIGSTOP');
    const t0 = performance.now();
    await waitFor('the loss to be reported', () => {
      guard.feed(performance.now() + 60_000);
      return lost.length === 1;
    }, 5_000, 100);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(leaseMs);
    await waitFor('the frozen guard to be killed', () => !processAlive(frozen), 5_000, 10);
    await waitFor('a new guard process', () => guard.pid() !== undefined && guard.pid() !== frozen, 10_000, 20);
  });

  test('input closed while armed (the sidecar went without disarming): the guard enforces the last deadline, then exits', async () => {
    const dummy = await startDummyPostmaster();
    const guard = spawn(process.execPath, [script, dataDir, 'guard-test'], { stdio: ['pipe', 'pipe', 'inherit'] });
    started.push(guard);
    const exited = new Promise<number | null>((resolve) => guard.on('exit', resolve));
    const expiresAt = performance.now() + 500;
    guard.stdin.end(formatCommand({ seq: 1, kind: 'arm', deadlineNs: performanceToMonotonicNs(expiresAt) }));
    await waitFor('every dummy process to die', () => noneAlive(dummy), 5_000, 5);
    expect(performance.now()).toBeGreaterThanOrEqual(expiresAt);
    expect(await exited).toBe(0);
  });

  test('a bad command makes the guard exit (status 2), which the sidecar side sees as a loss', async () => {
    const guard = spawn(process.execPath, [script, dataDir, 'guard-test'], { stdio: ['pipe', 'pipe', 'ignore'] });
    started.push(guard);
    const exited = new Promise<number | null>((resolve) => guard.on('exit', resolve));
    guard.stdin.write('1 kill 5\n');
    expect(await exited).toBe(2);
  });

  test('kill -9 of its parent (a sidecar with a session): the guard kills the postmaster and its processes at once, then ends', async () => {
    const dummy = await startDummyPostmaster();
    const client = join(projectRoot(), 'dist', 'sidecar', 'guard', 'client.js');
    const logModule = join(projectRoot(), 'dist', 'sidecar', 'log.js');
    const parentCode = `
      const { WriteGuard } = await import(${JSON.stringify(client)});
      const { createLogger } = await import(${JSON.stringify(logModule)});
      const guard = new WriteGuard({ dataDir: ${JSON.stringify(dataDir)}, nodeName: 'guard-test', leaseMs: 3000, log: createLogger({}, 'error') });
      guard.start();
      guard.session('3f2c9a1e-0b7d-4c55-9e21-6a8d0f4b2c17');
      await guard.disarm(); // answered: the guard has read its input, so its handlers are in place
      console.log(guard.pid());
      setInterval(() => undefined, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', parentCode], { stdio: ['ignore', 'pipe', 'inherit'] });
    started.push(parent);
    let out = '';
    parent.stdout.on('data', (chunk) => (out += chunk));
    const guardPid = await waitFor('the guard pid from the parent', () => (/^\d+\n/.test(out) ? Number(out.trim()) : undefined), 10_000, 20);
    parent.kill('SIGKILL');
    await waitFor('every dummy process to die', () => noneAlive(dummy), 5_000, 5);
    await waitFor('the guard to end after its parent', () => !processAlive(guardPid), 5_000, 10);
  });
});
