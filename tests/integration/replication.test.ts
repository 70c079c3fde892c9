import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { renderTemplate } from '../../cli/local/consul.js';
import { projectRoot } from '../../cli/local/paths.js';
import { deriveSecret } from '../../sidecar/postgres/participant.js';
import { CLUSTER_TOKEN, TestCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/processes.js';

const APP_PASSWORD = deriveSecret(CLUSTER_TOKEN, 'app');

interface Member {
  name: string;
  role: string;
  alive: boolean;
  timeline: number | null;
  streaming: boolean;
  pgRole: string;
}

describe('PostgreSQL streaming replication driven by the sidecars (3 nodes)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true });

  beforeAll(async () => {
    await cluster.start();
    await allStreaming();
  }, 180_000);
  afterAll(() => cluster.stop(), 60_000);

  async function sql<R extends pg.QueryResultRow>(i: number | 'haproxy', text: string, params: unknown[] = []): Promise<R[]> {
    const [host, port] = i === 'haproxy' ? ['127.0.0.10', 5432] : [cluster.address(i), 15432];
    const client = new pg.Client({ host, port, user: 'manager', password: APP_PASSWORD, database: 'manager', connectionTimeoutMillis: 2000 });
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

  /** Every node alive, one primary, the others streaming standbys. */
  async function allStreaming(timeoutMs = 90_000): Promise<Member[]> {
    return waitFor('one primary and two streaming standbys', async () => {
      const m = await members();
      const ok = m.length === 3 && m.every((x) => x.alive) && m.filter((x) => x.pgRole === 'primary').length === 1 && m.filter((x) => x.pgRole === 'standby' && x.streaming).length === 2;
      return ok ? m : undefined;
    }, timeoutMs, 250);
  }

  test('a row written on the leader is readable on both standbys; standbys refuse writes', async () => {
    const leader = (await cluster.leaderIndex())!;
    await sql(leader, 'create table if not exists items (id serial primary key, note text)');
    const [{ id }] = await sql<{ id: number }>(leader, "insert into items (note) values ('hello') returning id");
    for (const i of [0, 1, 2].filter((k) => k !== leader)) {
      await waitFor(`row ${id} on n${i + 1}`, async () => (await sql(i, 'select 1 from items where id = $1', [id])).length === 1, 5_000, 50);
      await expect(sql(i, "insert into items (note) values ('nope')")).rejects.toThrow(/read-only transaction/);
    }
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
    const config = join(cluster.baseDir, 'haproxy.cfg');
    writeFileSync(config, renderTemplate(readFileSync(join(projectRoot(), 'docker', 'haproxy-local.cfg.tmpl'), 'utf8'), { RUN_DIR: cluster.baseDir }));
    cluster.processes.start('haproxy', '/usr/sbin/haproxy', ['-db', '-f', config], join(cluster.baseDir, 'haproxy.log'));
    const serverAddress = async () => (await sql<{ a: string }>('haproxy', 'select host(inet_server_addr()) as a'))[0].a;

    const leader = (await cluster.leaderIndex())!;
    await waitFor('HAProxy to send clients to the leader', async () => (await serverAddress()) === cluster.address(leader), 10_000, 100);
    await sql('haproxy', "insert into items (note) values ('via haproxy')");

    await cluster.killSidecar(leader);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== leader)), 30_000, 50);
    await waitFor('HAProxy to send clients to the new leader', async () => (await serverAddress()) === cluster.address(next), 10_000, 100);
    await sql('haproxy', "insert into items (note) values ('via haproxy after failover')");
    await cluster.processes.stop('haproxy');
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
