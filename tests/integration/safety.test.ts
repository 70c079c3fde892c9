import pg from 'pg';
import { deriveSecret } from '../../sidecar/postgres/participant.js';
import { CLUSTER_TOKEN, TestCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/processes.js';

const APP = { user: 'manager', password: deriveSecret(CLUSTER_TOKEN, 'app'), database: 'manager' };
const SUPERUSER = { user: 'postgres', password: deriveSecret(CLUSTER_TOKEN, 'postgres-superuser'), database: 'postgres' };

interface Member {
  name: string;
  alive: boolean;
  pgRole: string;
  streaming: boolean;
  syncStandbys: string[] | null;
}

describe('safety under failures (real Consul + PostgreSQL, 3 nodes)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true });

  beforeAll(async () => {
    await cluster.start();
    await allStreaming();
    const leader = (await cluster.leaderIndex())!;
    await sql(leader, 'create table acked (id bigint primary key)');
    await sql(leader, 'create table probe (node text, at timestamptz default now())');
  }, 180_000);
  afterAll(() => cluster.stop(), 60_000);

  async function sql<R extends pg.QueryResultRow>(i: number, text: string, params: unknown[] = [], who = APP, timeoutMs = 2000): Promise<R[]> {
    const client = new pg.Client({ host: cluster.address(i), port: 15432, ...who, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<R>(text, params)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  const members = async (): Promise<Member[]> => {
    for (let i = 0; i < 3; i++) {
      const res = await cluster.call(i, 'GET', '/cluster').catch(() => null);
      if (res?.status === 200) return res.body.members as unknown as Member[];
    }
    return [];
  };

  async function allStreaming(needSync = false): Promise<Member[]> {
    return waitFor(`one primary and two streaming standbys${needSync ? ', both synchronous' : ''}`, async () => {
      const m = await members();
      const primary = m.find((x) => x.pgRole === 'primary');
      const ok =
        m.length === 3 && m.every((x) => x.alive) && primary && m.filter((x) => x.pgRole === 'standby' && x.streaming).length === 2 && (!needSync || primary.syncStandbys?.length === 2);
      return ok ? m : undefined;
    }, 90_000, 250);
  }

  test('kill -9 of the leader sidecar alone: its Postgres stops taking writes before another node takes any (rule 3)', async () => {
    const old = (await cluster.leaderIndex())!;
    // The watcher tries a write on every node every 50 ms; a sweep where two nodes accept is a split brain.
    const doubleWriters: string[] = [];
    let sweeps = 0;
    let running = true;
    const writersSeen = new Set<string>();
    const watcher = (async () => {
      while (running) {
        const accepted = await Promise.all(
          [0, 1, 2].map((i) => sql(i, 'insert into probe (node) values ($1)', [cluster.names[i]], APP, 300).then(() => true, () => false)),
        );
        const writers = cluster.names.filter((_, i) => accepted[i]);
        writers.forEach((w) => writersSeen.add(w));
        if (writers.length > 1) doubleWriters.push(writers.join('+'));
        sweeps++;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      await waitFor('the watcher to see the leader accept writes', () => writersSeen.has(cluster.names[old]), 5_000, 50);
      await cluster.killSidecar(old);
      const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 50);
      await waitFor('the watcher to see the new leader accept writes', () => writersSeen.has(cluster.names[next]), 10_000, 50);
    } finally {
      running = false;
      await watcher;
    }
    expect(sweeps).toBeGreaterThan(20);
    expect(doubleWriters).toEqual([]);
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

  test('synchronous mode: 10 consecutive leader kills under insert load lose no acknowledged insert', async () => {
    const leader0 = (await cluster.leaderIndex())!;
    expect((await cluster.call(leader0, 'PATCH', '/config', { synchronousMode: true })).status).toBe(200);
    await allStreaming(true);

    const acked: number[] = [];
    let running = true;
    let nextId = 1;
    const load = (async () => {
      let target: number | undefined;
      while (running) {
        target ??= await cluster.leaderIndex();
        if (target === undefined) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const id = nextId++;
        try {
          await sql(target, 'insert into acked (id) values ($1)', [id], APP, 1500);
          acked.push(id); // the commit was acknowledged to the client
        } catch {
          target = undefined; // refused, cut or timed out: not acknowledged; find the leader again
        }
      }
    })();
    try {
      for (let kill = 0; kill < 10; kill++) {
        const old = await waitFor('one leader', () => cluster.leaderIndex(), 30_000, 50);
        const ackedBefore = acked.length;
        await waitFor('inserts acknowledged by this leader', () => acked.length > ackedBefore + 5, 15_000, 20);
        await cluster.killSidecar(old);
        await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 50);
        await cluster.startSidecar(old);
        await allStreaming(true);
      }
    } finally {
      running = false;
      await load;
    }
    const final = (await cluster.leaderIndex())!;
    const rows = await sql<{ id: string }>(final, 'select id from acked');
    const present = new Set(rows.map((r) => Number(r.id)));
    const lost = acked.filter((id) => !present.has(id));
    console.log(`synchronous mode: ${acked.length} inserts acknowledged over 10 leader kills, ${lost.length} lost`);
    expect(acked.length).toBeGreaterThan(50);
    expect(lost).toEqual([]);
  }, 600_000);
});
