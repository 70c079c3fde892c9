import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SUPERUSER_LOGIN, TestCluster } from '../harness/cluster.js';
import { hactlIn, startWithProfile } from '../harness/hactl.js';
import { waitFor } from '../harness/processes.js';

/**
 * Recovery without ssh (issue 12) on one real 3-node cluster, in the order an operator meets it: bad input
 * and refusals that change nothing, reload and restart of a standby and of the leader, reinit of a standby,
 * a switchover seen in Consul's `test-postgres` service, then a paused cluster whose leader dies, where
 * only `cluster failover --force` gets a node that is behind to lead. hactl runs as a subprocess.
 */

const configDir = mkdtempSync(join(tmpdir(), 'hactl-recovery-'));
const hactl = hactlIn(configDir);

interface HealthEntry {
  Service: { ID: string; Tags: string[]; Port: number; Address: string };
  Checks: { CheckID: string; Status: string }[];
}

describe('recovery commands on a real cluster (3 nodes with Postgres)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true });
  const dataDir = (i: number) => join(cluster.baseDir, cluster.names[i], 'sidecar', 'postgres');
  const startedAt = async (i: number) => (await cluster.sql<{ t: string }>(i, 'select pg_postmaster_start_time()::text as t', [], SUPERUSER_LOGIN))[0].t;
  const systemId = async (i: number) => (await cluster.sql<{ id: string }>(i, 'select system_identifier::text as id from pg_control_system()', [], SUPERUSER_LOGIN))[0].id;
  const failoverKey = async () => (await cluster.consulCall(0, 'GET', '/v1/kv/ha-sidecar/test/failover')).status;
  const postgresService = async (query: string): Promise<HealthEntry[]> =>
    (await (await cluster.consulCall(0, 'GET', `/v1/health/service/test-postgres?${query}`)).json()) as HealthEntry[];
  const ids = (entries: HealthEntry[]) => entries.map((e) => e.Service.ID).sort();
  const clusterView = async (i: number) => (await cluster.call(i, 'GET', '/cluster')).body as { leader: { name: string; term: number } | null; members: { name: string; alive: boolean; walPosition: number | null }[] };

  beforeAll(() => startWithProfile(cluster, hactl), 180_000);
  afterAll(async () => {
    await cluster.stop();
    rmSync(configDir, { recursive: true, force: true });
  }, 60_000);

  test('bad input exits 2, refusals exit 1; nothing changes', async () => {
    const before = { leader: await cluster.leaderIndex(), started: await startedAt(0), term: (await clusterView(0)).leader?.term };
    // The other usage errors (missing node, empty name, unknown options) are in tests/unit/cli-recovery.test.ts.
    for (const args of [['failover'], ['failover', '--to', 'n9'], ['reinit', 'n9']]) {
      const run = await hactl('cluster', ...args);
      expect([args, run.code, run.out]).toEqual([args, 2, '']);
    }
    const whileLed = await hactl('cluster', 'failover', '--to', 'n2');
    expect([whileLed.code, whileLed.err.trim()]).toEqual([1, `hactl: leader_exists: n1 leads (term ${before.term}): a failover is only for a cluster without a leader; use \`hactl cluster switchover --to n2\``]);
    const leaderReinit = await hactl('cluster', 'reinit', 'n1');
    expect(leaderReinit.code).toBe(1);
    expect(leaderReinit.err).toMatch(/^hactl: reinit_leader_refused: n1 is the leader: its data is what the others clone/);
    for (const body of [{}, { to: 'n2', force: 'yes' }, { to: 'n2', extra: 1 }]) {
      const res = await cluster.call(1, 'POST', '/failover', body);
      expect([body, res.status, res.body.error]).toEqual([body, 400, 'bad_request']);
    }
    expect(await failoverKey()).toBe(404);
    expect({ leader: await cluster.leaderIndex(), started: await startedAt(0), term: (await clusterView(0)).leader?.term }).toEqual(before);
  }, 150_000);

  test('reload and restart: a standby, then the leader, which stays the leader', async () => {
    const logFile = join(cluster.baseDir, 'n2', 'sidecar', 'postgres.log');
    const reloads = () => readFileSync(logFile, 'utf8').split('received SIGHUP, reloading configuration files').length - 1;
    const reloadsBefore = reloads();
    const reload = await hactl('cluster', 'reload', 'n2');
    expect([reload.code, reload.err]).toEqual([0, '']);
    // With TLS the reload also says until when the node's certificate is valid.
    expect(reload.out.trim()).toMatch(cluster.tls ? /^postgres on n2 reloaded \(standby\); its certificate is valid until .* \(\d+ days\)$/ : /^postgres on n2 reloaded \(standby\)$/);
    await waitFor('n2 to log the reload', () => reloads() > reloadsBefore, 5_000, 100);

    const standbyBefore = await startedAt(1);
    const restart = await hactl('cluster', 'restart', 'n2');
    expect([restart.code, restart.err]).toEqual([0, '']);
    expect(restart.out.trim().split('\n').at(-1)).toMatch(/^postgres on n2 restarted in \d+\.\d s \(standby\)$/);
    expect(await startedAt(1)).not.toBe(standbyBefore);

    const term = (await clusterView(0)).leader?.term;
    const leaderBefore = await startedAt(0);
    const t0 = performance.now();
    const leaderRestart = await hactl('cluster', 'restart', 'n1');
    expect([leaderRestart.code, leaderRestart.err]).toEqual([0, '']);
    expect(leaderRestart.out.trim().split('\n').at(-1)).toMatch(/^postgres on n1 restarted in \d+\.\d s \(leader\)$/);
    await waitFor('n1 to take writes again', async () => (await cluster.leaderStatus(0)) === 200, 10_000, 50);
    console.log(`leader restart: hactl returned and /leader answers 200 again ${Math.round(performance.now() - t0)} ms after the command started`);
    expect(await startedAt(0)).not.toBe(leaderBefore);
    expect((await clusterView(0)).leader).toMatchObject({ name: 'n1', term });
    await cluster.sql(0, 'create table if not exists after_restart (x int); insert into after_restart values (1)');
    await cluster.waitAllStreaming(false, 60_000);
  }, 120_000);

  test('reinit of a standby: progress lines, then a new data directory of the same system that streams', async () => {
    const marker = join(dataDir(2), 'left-by-the-old-copy');
    writeFileSync(marker, 'x');
    const id = await systemId(2);
    const run = await hactl('cluster', 'reinit', 'n3');
    expect([run.code, run.err]).toEqual([0, '']);
    const lines = run.out.trim().split('\n');
    // hactl samples the status line every 500 ms, so a quick clone's own line may fall between two samples:
    // the progress shows as some line of n3's, and n3's log has the reclone.
    expect(lines.filter((l) => l.startsWith('  n3: ')).length).toBeGreaterThan(0);
    const reclones = readFileSync(join(cluster.baseDir, 'n3', 'sidecar.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"cloning postgres again from the leader"'))
      .map((l) => JSON.parse(l) as { reason: string; leader: string });
    expect(reclones).toContainEqual(expect.objectContaining({ reason: 'reinit requested by an operator', leader: 'n1' }));
    expect(lines.at(-1)).toMatch(/^reinit of n3 done in \d+\.\d s: a new clone that streams from the leader$/);
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(`${dataDir(2)}.previous`)).toBe(false); // kept aside only until the copy streamed
    expect(await systemId(2)).toBe(id);
    expect((await cluster.waitAllStreaming(false, 30_000)).find((m) => m.name === 'n3')).toMatchObject({ streaming: true, pgRole: 'standby' });
  }, 120_000);

  test('switchover with progress lines; the Postgres service in Consul follows the roles', async () => {
    const passing = async () => ({ primary: ids(await postgresService('passing&tag=primary')), replica: ids(await postgresService('passing&tag=replica')) });
    // n3 was just recloned: its service passes once its next check report reaches the catalog.
    const before = { primary: ['n1-postgres'], replica: ['n2-postgres', 'n3-postgres'] };
    await waitFor('the catalog to show n1 primary and both replicas passing', async () => JSON.stringify(await passing()) === JSON.stringify(before), 15_000, 200);
    const run = await hactl('cluster', 'switchover', '--to', 'n2');
    expect([run.code, run.err]).toEqual([0, '']);
    const lines = run.out.trim().split('\n');
    expect(lines.some((l) => /^ {2}n[12] \S+: /.test(l))).toBe(true); // the steps as the nodes reported them
    expect(lines.at(-1)).toMatch(/n2/);
    await waitFor('the catalog to follow the switchover', async () => JSON.stringify(await passing()) === JSON.stringify({ primary: ['n2-postgres'], replica: ['n1-postgres', 'n3-postgres'] }), 10_000, 200);
    const n2 = (await postgresService('')).find((e) => e.Service.ID === 'n2-postgres')!;
    expect(n2.Service).toMatchObject({ Port: 15432, Address: cluster.address(1), Tags: ['primary'] });
    await cluster.waitAllStreaming(false, 60_000);
  }, 90_000);

  test('a paused cluster whose leader died: failover refused for a node behind (by how many bytes), done with --force', async () => {
    expect((await hactl('cluster', 'pause')).code).toBe(0);
    await cluster.stopSidecar(2); // n3 misses what comes next
    await cluster.sql(1, "create table behind (x text); insert into behind select repeat('x', 1000) from generate_series(1, 3000)");
    const n3Position = (await clusterView(0)).members.find((m) => m.name === 'n3')!.walPosition!;
    await waitFor('n2 to publish its new position', async () => ((await clusterView(0)).members.find((m) => m.name === 'n2')?.walPosition ?? 0) > n3Position + 3_000_000, 10_000, 200);
    await cluster.killSidecar(1); // the leader dies; its Postgres dies with it
    await cluster.startSidecar(2);
    await waitFor('no leader, n3 running again', async () => {
      const view = await clusterView(0);
      return view.leader === null && view.members.find((m) => m.name === 'n3')?.alive === true;
    }, 30_000, 200);
    expect(await cluster.leaderIndex()).toBeUndefined(); // paused: nobody took over by itself

    const refused = await hactl('cluster', 'failover', '--to', 'n3');
    expect(refused.code).toBe(1);
    const behind = Number(/^hactl: candidate_behind: n3 is (\d+) bytes behind the last known primary position of n2: a failover to it loses the commits in those bytes; --force accepts that$/.exec(refused.err.trim())?.[1]);
    expect(behind).toBeGreaterThan(3_000_000);
    expect(await failoverKey()).toBe(404);

    const t0 = performance.now();
    const forced = await hactl('cluster', 'failover', '--to', 'n3', '--force');
    expect([forced.code, forced.err]).toEqual([0, '']);
    const lines = forced.out.trim().split('\n');
    expect(lines.some((l) => /^ {2}n[13] \S+: /.test(l))).toBe(true); // the steps as the nodes reported them
    expect(lines.at(-2)).toMatch(/^failover done: n3 leads \(term \d+\)$/);
    expect(lines.at(-1)).toMatch(/^forced: \d+ bytes of WAL past n3's position were given up$/);
    console.log(`forced failover: n3 serves writes ${Math.round(performance.now() - t0)} ms after the command started; ${behind} bytes given up`);
    expect(await cluster.leaderIndex()).toBe(2);
    expect(await failoverKey()).toBe(404); // the new leader removed the request
    const history = (await cluster.call(0, 'GET', '/history')).body as unknown as { kind: string; leader: string; reason: string }[];
    expect(history.at(-1)).toMatchObject({ kind: 'failover', leader: 'n3' });
    expect(history.at(-1)!.reason).toMatch(/^manual failover to n3 by an operator \(forced, \d+ bytes behind the last known primary position\)$/);

    // The dead n2 still carries the tag it had, but its check is critical with its session: never a passing primary.
    await waitFor('the catalog to name n3 the only passing primary', async () => ids(await postgresService('passing&tag=primary')).join() === 'n3-postgres', 10_000, 200);
    const dead = (await postgresService('')).find((e) => e.Service.ID === 'n2-postgres')!;
    expect(dead.Service.Tags).toEqual(['primary']);
    expect(dead.Checks.find((c) => c.CheckID.startsWith('service:n2-postgres'))?.Status).toBe('critical');
  }, 120_000);
});
