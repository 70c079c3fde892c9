import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestCluster } from '../harness/cluster.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';


describe('PostgreSQL streaming replication driven by the sidecars (3 nodes)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true });

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitAllStreaming();
  }, 180_000);
  afterAll(() => cluster.stop(), 60_000);

  const sql = cluster.sql.bind(cluster);
  const members = () => cluster.members();
  const allStreaming = () => cluster.waitAllStreaming();

  test('a row written on the leader is readable on both standbys; standbys refuse writes', async () => {
    const leader = (await cluster.leaderIndex())!;
    await sql(leader, 'create table if not exists items (id serial primary key, note text)');
    const [{ id }] = await sql<{ id: number }>(leader, "insert into items (note) values ('hello') returning id");
    for (const i of [0, 1, 2].filter((k) => k !== leader)) {
      await waitFor(`row ${id} on n${i + 1}`, async () => (await sql(i, 'select 1 from items where id = $1', [id])).length === 1, 5_000, 50);
      await expect(sql(i, "insert into items (note) values ('nope')")).rejects.toThrow(/read-only transaction/);
    }
    // Operators see each node's Postgres state as a Consul check of its service.
    await waitFor('a passing postgres check on every node', async () => {
      const res = await cluster.consulCall(0, 'GET', '/v1/health/checks/ha-sidecar');
      const checks = (await res.json()) as { Name: string; Status: string }[];
      return checks.filter((c) => c.Name === 'postgres' && c.Status === 'passing').length === 3;
    }, 10_000, 200);
  });

  test('kill -9 of the leader (sidecar and postmaster): a standby is promoted, the old node rejoins by rewind', async () => {
    const old = (await cluster.leaderIndex())!;
    const before = (await members()).find((m) => m.name === cluster.names[old])!;
    const t0 = performance.now();
    // The postmaster is the sidecar's child under a parent-death signal: killing the sidecar kills both.
    await cluster.killSidecar(old);
    const next = await waitFor('a new writable leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 50);
    const [{ id }] = await sql<{ id: number }>(next, "insert into items (note) values ('after failover') returning id");
    console.log(`failover to a writable primary: ${Math.round(performance.now() - t0)} ms`);

    await cluster.startSidecar(old);
    const after = await allStreaming();
    const rejoined = after.find((m) => m.name === cluster.names[old])!;
    expect(rejoined.pgRole).toBe('standby');
    expect(rejoined.timeline).toBeGreaterThan(before.timeline!);
    await waitFor('the new row on the rejoined node', async () => (await sql(old, 'select 1 from items where id = $1', [id])).length === 1, 10_000, 100);
  }, 120_000);

  test('a client through the real HAProxy reaches the leader, and after a failover the new leader', async () => {
    const haproxy = new TestHaproxy(cluster);
    haproxy.start();
    const HAPROXY = haproxy.postgres;
    const serverAddress = async () => (await sql<{ a: string }>(HAPROXY, 'select host(inet_server_addr()) as a'))[0].a;
    const inService = () => haproxy.inService();

    // HAProxy 2.x starts with every server up until its first checks: wait for its own view to settle.
    const leader = (await cluster.leaderIndex())!;
    await waitFor('HAProxy to have only the leader in service', async () => (await inService()).join() === cluster.names[leader], 10_000, 100);
    expect(await serverAddress()).toBe(cluster.address(leader));
    await sql(HAPROXY, "insert into items (note) values ('via haproxy')");

    await cluster.killSidecar(leader);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== leader)), 30_000, 50);
    await waitFor('HAProxy to have only the new leader in service', async () => (await inService()).join() === cluster.names[next], 10_000, 100);
    expect(await serverAddress()).toBe(cluster.address(next));
    await sql(HAPROXY, "insert into items (note) values ('via haproxy after failover')");
    await haproxy.stop();
    await cluster.startSidecar(leader);
    await allStreaming();
  }, 120_000);

  test('joining a node whose database holds user data is refused, and nothing changes', async () => {
    const leader = (await cluster.leaderIndex())!;
    const node = [0, 1, 2].find((i) => i !== leader)!;
    // The node leaves the cluster (sidecar stopped, membership forgotten) but keeps its Postgres data.
    await cluster.stopSidecar(node);
    const membership = join(cluster.baseDir, cluster.names[node], 'sidecar', 'membership.json');
    rmSync(membership);
    await cluster.startSidecar(node);
    const res = await cluster.call(node, 'POST', '/cluster/join', { nodeName: cluster.names[node] });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('node_not_empty');
    expect(res.body.message).toMatch(/--force/);
    expect(existsSync(membership)).toBe(false);
    expect(existsSync(join(cluster.baseDir, cluster.names[node], 'sidecar', 'postgres', 'PG_VERSION'))).toBe(true);

    const forced = await cluster.call(node, 'POST', '/cluster/join', { nodeName: cluster.names[node], force: true });
    expect(forced.status).toBe(200);
    await allStreaming();
  }, 120_000);
});
