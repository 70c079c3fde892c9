import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from '../harness/cluster.js';
import { waitIdentical } from '../harness/mirror.js';
import { waitFor } from '../harness/processes.js';

/** The mirror beside Postgres on the same sidecars: both follow the leader, before and after a switchover. */
describe('file mirror and Postgres together (3 nodes)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, files: true });

  beforeAll(async () => {
    await cluster.start();
  }, 180_000);
  afterAll(async () => {
    await cluster.stop();
  }, 60_000);

  test('files and WAL both reach every standby, and both follow a switchover', async () => {
    await cluster.waitAllStreaming();
    writeFileSync(join(cluster.filesDir(0), 'blueprint.yaml'), 'v1\n');
    await cluster.sql(0, 'CREATE TABLE IF NOT EXISTS t (v int)');
    await waitIdentical(cluster, 0, [0, 1, 2]);

    const res = await cluster.call(0, 'POST', '/switchover', { to: 'n2' });
    expect(res.status).toBe(200);
    const leader = await waitFor('n2 to lead', () => cluster.leaderIndex().then((i) => (i === 1 ? i : undefined)), 60_000);
    writeFileSync(join(cluster.filesDir(leader), 'after-switchover'), 'n2\n');
    await cluster.sql(leader, 'INSERT INTO t VALUES (1)');
    await waitIdentical(cluster, leader, [0, 1, 2]);
    await cluster.waitAllStreaming();
  }, 180_000);
});
