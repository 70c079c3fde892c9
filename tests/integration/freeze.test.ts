import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/processes.js';
import { WriteWatcher } from '../harness/watchers.js';

/** How long the leader's sidecar stays frozen: well past lease + lock-delay, so a new leader is elected meanwhile. */
const FREEZE_MS = 15_000;
/** The default timings (sidecar/config.ts): the old primary must refuse writes within lease + demoteBudget. */
const LEASE_MS = 3_000;
const DEMOTE_BUDGET_MS = 1_000;

/**
 * Design rule 1 with a frozen sidecar (issue 10): `kill -STOP` of the leader's sidecar alone leaves its
 * Postgres running with no lease timer and no parent death to stop it; the write guard must kill it before
 * another node can take the lock. A watcher tries a tiny write directly on every node's Postgres every 50 ms
 * throughout; a sweep where two nodes accept is a split brain.
 */
describe('a frozen leader sidecar (SIGSTOP) keeps no writable primary (real Consul + PostgreSQL, 3 nodes)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true });
  /** The sidecar this test stopped, so teardown continues it whatever happened. */
  let frozenPid: number | undefined;

  const thaw = () => {
    if (frozenPid === undefined) return;
    try {
      process.kill(frozenPid, 'SIGCONT');
    } catch {
      /* gone already */
    }
    frozenPid = undefined;
  };

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitAllStreaming();
    await cluster.sql((await cluster.leaderIndex())!, 'create table probe (node text, at timestamptz default now())');
  }, 180_000);

  afterAll(async () => {
    thaw();
    await cluster.stop();
  }, 60_000);

  test('kill -STOP of the leader sidecar for 15 s: never two writers, a new leader takes over, the old one rejoins as a standby', async () => {
    const old = (await cluster.leaderIndex())!;
    const oldName = cluster.names[old];
    const watcher = new WriteWatcher(cluster);
    const { sweeps } = watcher;
    const seen = (name: string, after = 0) => watcher.seen(name, after);

    let stoppedAt = 0;
    let next: number;
    try {
      await waitFor('the watcher to see the leader accept writes', () => seen(oldName), 10_000, 50);
      const sidecar = cluster.processes.get(`sidecar-${oldName}`)!.child;
      stoppedAt = performance.now();
      process.kill(sidecar.pid!, 'SIGSTOP');
      frozenPid = sidecar.pid;

      next = await waitFor('a new leader', () => cluster.leaderIndex(cluster.names.map((_, i) => i).filter((i) => i !== old)), FREEZE_MS, 100);
      await waitFor('the watcher to see the new leader accept writes', () => seen(cluster.names[next], stoppedAt), FREEZE_MS, 50);
      await waitFor('the end of the freeze', () => performance.now() - stoppedAt >= FREEZE_MS, FREEZE_MS, 100);
      thaw();

      await cluster.waitAllStreaming(false, 60_000);
      // Still watching after the thaw: the old leader must not take writes again on its way back.
      await waitFor('a few sweeps after the rejoin', () => sweeps.filter((s) => s.at > performance.now() - 1_000).length >= 3, 10_000, 50);
    } finally {
      thaw();
      await watcher.stop();
    }

    const { doubleWriters } = watcher;
    const lastOldWrite = sweeps.filter((s) => s.writers.includes(oldName)).at(-1)!.at;
    const firstRefused = sweeps.find((s) => s.at > stoppedAt && !s.writers.includes(oldName))?.at;
    const newLeaderFirstWrite = sweeps.find((s) => s.at > stoppedAt && s.writers.includes(cluster.names[next]))!.at;
    console.log(
      `freeze of ${oldName}'s sidecar: ${sweeps.length} sweeps, ${doubleWriters.length} with two writers; ` +
        `old primary last accepted a write ${(lastOldWrite - stoppedAt).toFixed(0)} ms after STOP, first refused at ${((firstRefused ?? NaN) - stoppedAt).toFixed(0)} ms; ` +
        `new leader ${cluster.names[next]} first accepted at ${(newLeaderFirstWrite - stoppedAt).toFixed(0)} ms`,
    );
    expect(sweeps.length).toBeGreaterThan(50);
    expect(doubleWriters).toEqual([]);
    expect(lastOldWrite - stoppedAt).toBeLessThan(LEASE_MS + DEMOTE_BUDGET_MS);
    expect(newLeaderFirstWrite).toBeGreaterThan(lastOldWrite);
    const members = await cluster.members();
    expect(members.find((m) => m.name === oldName)).toMatchObject({ role: 'standby', pgRole: 'standby', streaming: true });
    // The guard, starved with Postgres killed, handed the lock over instead of leaving it to the TTL and lock-delay.
    const handOvers = readFileSync(join(cluster.baseDir, oldName, 'sidecar.log'), 'utf8').split('\n').filter((l) => l.includes('"guard_release'));
    expect(handOvers.map((l) => JSON.parse(l) as { code: string; lockReleased: boolean })).toEqual([expect.objectContaining({ code: 'guard_released_session', lockReleased: true })]);
  }, 90_000);
});
