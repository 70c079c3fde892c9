import { SUPERUSER_LOGIN as SUPERUSER, TestCluster } from '../harness/cluster.js';
import { killLeadersUnderLoad } from '../harness/load.js';
import { waitFor } from '../harness/processes.js';
import { WriteWatcher } from '../harness/watchers.js';



describe('safety under failures (real Consul + PostgreSQL, 3 nodes)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true });

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitAllStreaming();
    const leader = (await cluster.leaderIndex())!;
    await sql(leader, 'create table acked (id bigint primary key)');
    await sql(leader, 'create table probe (node text, at timestamptz default now())');
  }, 180_000);
  afterAll(() => cluster.stop(), 60_000);

  const sql = cluster.sql.bind(cluster);
  const allStreaming = (needSync = false) => cluster.waitAllStreaming(needSync);

  test('kill -9 of the leader sidecar alone: its Postgres stops taking writes before another node takes any (rule 3)', async () => {
    const old = (await cluster.leaderIndex())!;
    // The watcher tries a write on every node every 50 ms; a sweep where two nodes accept is a split brain.
    const watcher = new WriteWatcher(cluster);
    try {
      await waitFor('the watcher to see the leader accept writes', () => watcher.seen(cluster.names[old]), 5_000, 50);
      await cluster.killSidecar(old);
      const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 50);
      await waitFor('the watcher to see the new leader accept writes', () => watcher.seen(cluster.names[next]), 10_000, 50);
      // Go on watching: a write the old node still took after the takeover would show in these sweeps.
      const tookOverAt = watcher.sweeps.at(-1)!.at;
      await waitFor('20 sweeps after the takeover', () => watcher.sweeps.filter((s) => s.at > tookOverAt).length >= 20, 10_000, 50);
    } finally {
      await watcher.stop();
    }
    expect(watcher.sweeps.length).toBeGreaterThan(20);
    expect(watcher.doubleWriters).toEqual([]);
    await cluster.startSidecar(old);
    await allStreaming();
  }, 120_000);

  test('a standby whose replay is paused is not promoted while a caught-up one exists', async () => {
    const leader = (await cluster.leaderIndex())!;
    const [lagging, caughtUp] = [0, 1, 2].filter((i) => i !== leader);
    // The lower name would win a tie: make that one lag, so only the position can decide.
    await sql(lagging, 'select pg_wal_replay_pause()', [], SUPERUSER);
    for (let k = 0; k < 20; k++) await sql(leader, 'insert into probe (node) values ($1)', ['lag']);
    await waitFor('replay to lag on the paused standby', async () => {
      const [r] = await sql<{ lag: string }>(lagging, 'select pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) as lag', [], SUPERUSER);
      return Number(r.lag) > 0;
    }, 10_000, 100);
    await cluster.killSidecar(leader);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([lagging, caughtUp]), 30_000, 50);
    expect(cluster.names[next]).toBe(cluster.names[caughtUp]);
    await cluster.startSidecar(leader);
    await allStreaming();
  }, 120_000);

  // Five here keep `npm test` short; `npm run faults` repeats leader kills 20 times per scenario (docs/fault-suite.md).
  test('synchronous mode: 5 consecutive leader kills under insert load lose no acknowledged insert', async () => {
    const result = await killLeadersUnderLoad(cluster, 5, true);
    console.log(`synchronous mode: ${result.acknowledged} inserts acknowledged over 5 leader kills, ${result.lost.length} lost`);
    expect(result.acknowledged).toBeGreaterThan(50);
    expect(result.lost).toEqual([]);
  }, 600_000);
});
