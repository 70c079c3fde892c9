import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { APP_LOGIN, TestCluster } from '../harness/cluster.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { projectRoot } from '../../sidecar/shared/package.js';
import type { SampleConfig } from '../../examples/manager/config.js';
import { processAlive } from '../../sidecar/shared/process.js';

/** The sidecars' default lease; the manager must be passive on a cut-off leader before lockDelay (5 s). */
const LEASE_MS = 3000;
const UNHEALTHY_HAND_OVER_S = 3;

/**
 * The sample manager (examples/manager) beside each sidecar, started and switched by its hooks, behind the
 * real HAProxy of the local cluster, with Postgres in synchronous mode and the file mirror on: records and
 * uploaded files both survive a failover.
 */
describe('the sample manager made highly available (real Consul, Postgres, HAProxy; synchronous mode)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, files: true });
  const haproxy = new TestHaproxy(cluster);
  const hook = join(projectRoot(), 'dist', 'examples', 'manager', 'hook.js');
  const managerDir = (i: number) => join(cluster.baseDir, cluster.names[i], 'manager');
  const filesDir = (i: number) => cluster.filesDir(i);
  const managerUrl = (i: number) => `http://${cluster.address(i)}:8080`;

  beforeAll(async () => {
    if (!existsSync(hook)) throw new Error(`${hook} is missing: run \`npm run build\` first`);
    for (let i = 0; i < 3; i++) {
      // With TLS, the manager verifies its sidecar and Postgres with the cluster's CA and shows its node's certificate.
      const tlsFile = (name: string) => join(cluster.tlsDir, name);
      const caFile = tlsFile('ca.crt');
      const config: SampleConfig = {
        node: cluster.names[i],
        address: cluster.address(i),
        port: 8080,
        sidecarApiUrl: cluster.apiUrl(i),
        ...(cluster.tls ? { sidecarApiTls: { caFile, certFile: tlsFile(`${cluster.names[i]}.crt`), keyFile: tlsFile(`${cluster.names[i]}.key`) } } : {}),
        filesDir: filesDir(i),
        stateDir: managerDir(i),
        postgres: { host: cluster.address(i), port: 15432, ...APP_LOGIN, ...(cluster.tls ? { caFile } : {}) },
      };
      const file = join(cluster.baseDir, cluster.names[i], 'manager.json');
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
      const argv = [process.execPath, hook, '--config', file];
      cluster.writeConfig(i, {
        manager: { hooks: { leader: argv, standby: argv, stopping: argv }, healthUrl: `${managerUrl(i)}/health`, unhealthyHandOverAfter: UNHEALTHY_HAND_OVER_S },
      });
    }
    await cluster.start();
    await cluster.waitAllStreaming();
    await cluster.call(0, 'PATCH', '/config', { synchronousMode: true });
    await cluster.waitAllStreaming(true);
    await allManagersHealthy();
    haproxy.start();
  }, 240_000);

  afterAll(async () => {
    const pids = [0, 1, 2].map((i) => join(managerDir(i), 'manager.pid')).filter(existsSync).map((f) => Number(readFileSync(f, 'utf8')));
    await cluster.stop();
    // The stopping hooks stopped them; a manager left by a crashed sidecar is not the harness's child.
    for (const pid of pids.filter(processAlive)) process.kill(pid, 'SIGKILL');
  }, 60_000);

  /** Every node's MANAGER state `healthy`: the hooks have started each sample manager in its role. */
  const allManagersHealthy = () =>
    waitFor('every manager healthy', async () => {
      const members = (await cluster.members()) as unknown as { manager?: { state: string } }[];
      return members.length === 3 && members.every((m) => m.manager?.state === 'healthy');
    }, 60_000, 200);
  const viaHaproxy = (path: string, init?: RequestInit) => fetch(`${haproxy.managerUrl}${path}`, { ...init, signal: AbortSignal.timeout(3000) });
  const status = (url: string) => fetch(url, { signal: AbortSignal.timeout(500) }).then((r) => r.status, () => 0);
  const managerInService = async (i: number) => (await haproxy.inService('manager_leader')).join() === cluster.names[i];

  test('a record and a file uploaded through HAProxy before a kill -9 of the leader: the new leader serves both', async () => {
    const leader = (await cluster.leaderIndex())!;
    await waitFor('HAProxy to send manager clients to the leader only', () => managerInService(leader), 15_000, 100);
    expect(await status(`${managerUrl((leader + 1) % 3)}/records/1`)).toBe(503); // standbys answer 503

    const created = await viaHaproxy('/records', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ body: 'before the crash' }) });
    expect(created.status).toBe(201);
    const record = (await created.json()) as { id: number; node: string };
    expect(record.node).toBe(cluster.names[leader]);
    const upload = await viaHaproxy('/files/report.txt', { method: 'PUT', body: 'uploaded before the crash' });
    expect(upload.status).toBe(201);
    expect(readFileSync(join(filesDir(leader), 'report.txt'), 'utf8')).toBe('uploaded before the crash');
    expect(await (await viaHaproxy('/files/report.txt')).text()).toBe('uploaded before the crash');
    // The mirror copies it to the standbys asynchronously (within ~100 ms): an upload counts as safe once there.
    const mirrored = (i: number) => existsSync(join(filesDir(i), 'report.txt')) && readFileSync(join(filesDir(i), 'report.txt'), 'utf8') === 'uploaded before the crash';
    await waitFor('the upload on every standby', () => [0, 1, 2].every(mirrored), 10_000, 20);

    const t0 = performance.now();
    await cluster.killSidecar(leader);
    // Its manager outlives the sidecar (another process), but fences itself: no sidecar, no leading.
    const notLeader = async () => {
      const res = await fetch(`${managerUrl(leader)}/records/${record.id}`, { signal: AbortSignal.timeout(500) });
      return res.status === 503 && ((await res.json()) as { error: string }).error === 'not_leader';
    };
    await waitFor('the old leader\'s manager to refuse as not_leader', notLeader, LEASE_MS, 50);
    console.log(`kill -9: the orphaned manager stopped serving after ${Math.round(performance.now() - t0)} ms`);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== leader)), 30_000, 50);
    await waitFor('HAProxy to send manager clients to the new leader', () => managerInService(next), 15_000, 100);
    const res = await viaHaproxy(`/records/${record.id}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ id: record.id, body: 'before the crash', node: cluster.names[leader], servedBy: cluster.names[next] });
    console.log(`kill -9: the record served by the new leader ${Math.round(performance.now() - t0)} ms after the kill`);
    const file = await viaHaproxy('/files/report.txt');
    expect([file.status, await file.text()]).toEqual([200, 'uploaded before the crash']);

    await cluster.startSidecar(leader);
    await cluster.waitAllStreaming(true);
    await allManagersHealthy();
  }, 120_000);

  test("a leader cut off from Consul: its manager stops serving within the lease, before another node may lead", async () => {
    const old = (await cluster.leaderIndex())!;
    await waitFor('the leader\'s manager to serve', async () => (await status(`${managerUrl(old)}/records/1`)) === 200, 15_000, 100);
    const t0 = performance.now();
    await cluster.consul.stopNode(old, 'kill');
    await waitFor('the cut-off manager to answer 503', async () => (await status(`${managerUrl(old)}/records/1`)) === 503, LEASE_MS + 1000, 20);
    const ms = performance.now() - t0;
    console.log(`cut-off leader: its manager answered 503 after ${Math.round(ms)} ms`);
    expect(ms).toBeLessThan(LEASE_MS + 1000);
    const roleFile = () => JSON.parse(readFileSync(join(managerDir(old), 'role.json'), 'utf8')) as { role: string };
    await waitFor('the standby hook to have told the manager', () => roleFile().role === 'standby', 5_000, 50);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 50);
    await waitFor('the new leader\'s manager to serve', async () => (await status(`${managerUrl(next)}/records/1`)) === 200, 15_000, 100);
    await cluster.consul.startNode(old);
    await cluster.consul.waitForHealthy();
    await cluster.waitAllStreaming(true);
    await allManagersHealthy();
  }, 120_000);

  test(`a leader whose manager stays unhealthy for ${UNHEALTHY_HAND_OVER_S} s hands over; /cluster shows the MANAGER state`, async () => {
    const old = (await cluster.leaderIndex())!;
    const pid = Number(readFileSync(join(managerDir(old), 'manager.pid'), 'utf8'));
    process.kill(pid, 'SIGSTOP'); // a hung manager: its health URL stops answering
    try {
      const t0 = performance.now();
      await waitFor('/leader to turn 503 with the manager hung', async () => (await cluster.leaderStatus(old)) === 503, 5_000, 50);
      await waitFor('the MANAGER state unhealthy in /cluster', async () => {
        const members = (await cluster.call(old, 'GET', '/cluster')).body.members as { name: string; manager?: { state: string } }[];
        return members.find((m) => m.name === cluster.names[old])?.manager?.state === 'unhealthy';
      }, 5_000, 100);
      const next = await waitFor('another node to lead', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 50);
      console.log(`hung manager: another node led ${Math.round(performance.now() - t0)} ms later`);
      expect(performance.now() - t0).toBeGreaterThan(UNHEALTHY_HAND_OVER_S * 1000);
      const history = (await cluster.call(next, 'GET', '/history')).body as unknown as { kind: string; previous: string }[];
      expect(history.at(-1)).toMatchObject({ kind: 'switchover', previous: cluster.names[old] });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await cluster.waitAllStreaming(true);
    await allManagersHealthy();
  }, 120_000);
});
