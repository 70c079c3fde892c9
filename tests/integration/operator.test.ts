import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLUSTER_TOKEN, TestCluster } from '../harness/cluster.js';
import { HACTL_JS, profileTlsArgs, startWithProfile } from '../harness/hactl.js';
import { runCommand, waitFor, type CommandRun } from '../harness/processes.js';

/**
 * The operator's toolkit against a real 3-node cluster (Consul, PostgreSQL, sidecars): the Patroni probe
 * paths, `hactl dsn` fed to a real psql, `hactl config`, `hactl cluster status` exit codes and pipes, the
 * replication metrics, and what Consul shows of stopped and killed nodes. hactl runs as a subprocess.
 */

const configDir = mkdtempSync(join(tmpdir(), 'hactl-operator-'));

/** Runs a bash script (`$HACTL` is hactl) with pipefail; SIGKILLs it after `timeoutMs`. */
function shell(script: string, timeoutMs = 30_000): Promise<CommandRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, HACTL_CONFIG_DIR: configDir, HACTL: `${process.execPath} ${HACTL_JS}` };
  delete env.HACTL_TOKEN;
  return runCommand('bash', ['-o', 'pipefail', '-c', script], env, timeoutMs);
}

const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
const hactl = (...args: string[]) => shell(`$HACTL ${args.map(quote).join(' ')}`);

interface HealthEntry {
  Service: { ID: string; Tags: string[]; Meta: Record<string, string>; Port: number };
  Checks: { CheckID: string; Status: string; Output: string }[];
}

describe("the operator's toolkit on a real cluster (3 nodes with Postgres)", () => {
  const cluster = new TestCluster({ size: 3, postgres: true });
  const probe = async (i: number, path: string) => {
    const res = await cluster.fetchApi(`${cluster.apiUrl(i)}${path}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  /** `path status` of each probe; a 503 also carries its `reason`, so a failed comparison says why. */
  const statuses = (i: number, paths: string[]) =>
    Promise.all(
      paths.map(async (p) => {
        const { status, body } = await probe(i, p);
        return status === 503 ? `${p} 503 (${String(body.reason)})` : `${p} ${status}`;
      }),
    );
  /** Compares `statuses` with `expected` written without reasons. */
  const expectStatuses = async (i: number, expected: string[]) => {
    const got = await statuses(i, expected.map((e) => e.split(' ')[0]!));
    const bare = got.map((g) => g.replace(/ \(.*\)$/, ''));
    if (JSON.stringify(bare) !== JSON.stringify(expected)) expect(got).toEqual(expected);
  };
  const metric = async (i: number, name: string): Promise<number | undefined> => {
    const text = await (await cluster.fetchApi(`${cluster.apiUrl(i)}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
    return line === undefined ? undefined : Number(line.split(' ').at(-1));
  };
  const consulConfig = async () => {
    const res = await cluster.consulCall(0, 'GET', '/v1/kv/ha-sidecar/test/config');
    if (res.status === 404) return { value: null, index: 0 };
    const [entry] = (await res.json()) as { Value: string; ModifyIndex: number }[];
    return { value: Buffer.from(entry.Value, 'base64').toString(), index: entry.ModifyIndex };
  };
  const health = async (passingOnly: boolean, tag?: string): Promise<HealthEntry[]> => {
    const query = new URLSearchParams();
    if (tag) query.set('tag', tag);
    if (passingOnly) query.set('passing', '');
    const res = await cluster.consulCall(1, 'GET', `/v1/health/service/ha-sidecar?${query.toString()}`);
    return (await res.json()) as HealthEntry[];
  };

  beforeAll(() => startWithProfile(cluster, hactl), 180_000);
  afterAll(async () => {
    await cluster.stop();
    rmSync(configDir, { recursive: true, force: true });
  }, 60_000);

  test('Patroni probe paths: the leader and an asynchronous standby answer as Patroni does', async () => {
    await expectStatuses(0, ['/leader 200', '/primary 200', '/read-write 200', '/replica 503', '/read-only 200', '/sync 503', '/async 503', '/liveness 200', '/readiness 200', '/health 200']);
    for (const i of [1, 2]) {
      await expectStatuses(i, ['/leader 503', '/primary 503', '/read-write 503', '/replica 200', '/read-only 200', '/sync 503', '/async 200', '/liveness 200', '/readiness 200', '/health 200']);
    }
    const head = await cluster.fetchApi(`${cluster.apiUrl(1)}/read-only`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    // Patroni's other names of the same probes.
    await expectStatuses(0, ['/master 200', '/synchronous 503', '/asynchronous 503']);
    await expectStatuses(1, ['/master 503', '/synchronous 503', '/asynchronous 200']);
    // ?lag= takes bytes or sizes; a standby 0 bytes behind passes any of them.
    await expectStatuses(1, [
      '/replica?lag=10MB 200',
      '/replica?lag=16MiB 200',
      '/replica?lag=1048576 200',
      '/async?lag=1kB 200',
    ]);
    for (const bad of ['lag=abc', 'lag=-1', 'lag=10XB', 'lag=1&lag=2', 'lag=']) {
      const res = await probe(1, `/replica?${bad}`);
      expect([bad, res.status, res.body.error]).toEqual([bad, 400, 'bad_request']);
    }
    // Why a probe says 503 is in its body, for the operator who curls it.
    expect((await probe(0, '/replica')).body.reason).toBe('role is leader, not standby');
  });

  test('replication metrics: positions, lag, timeline, streaming, Consul contact; computed at scrape time', async () => {
    const timeline = (await cluster.members()).find((m) => m.name === 'n1')!.timeline;
    expect(await metric(0, 'ha_sidecar_postgres_timeline')).toBe(timeline);
    expect(await metric(0, 'ha_sidecar_postgres_wal_position_bytes')).toBeGreaterThan(0);
    expect(await metric(0, 'ha_sidecar_postgres_lag_bytes')).toBeUndefined(); // no lag series on the primary
    expect(await metric(0, 'ha_sidecar_postgres_role')).toBe(1);
    for (const i of [1, 2]) {
      expect(await metric(i, 'ha_sidecar_postgres_streaming')).toBe(1);
      expect(await metric(i, 'ha_sidecar_postgres_lag_bytes')).toBeGreaterThanOrEqual(0);
      expect(await metric(i, 'ha_sidecar_postgres_replay_lag_bytes')).toBeGreaterThanOrEqual(0);
      expect(await metric(i, 'ha_sidecar_postgres_replay_position_bytes')).toBeGreaterThan(0);
      expect(await metric(i, 'ha_sidecar_postgres_synchronous_standbys')).toBeUndefined();
    }
    const contact = await metric(1, 'ha_sidecar_consul_last_contact_seconds');
    expect(contact).toBeGreaterThanOrEqual(0);
    expect(contact).toBeLessThan(2);
    // A write on the leader moves its WAL position, and a standby's metric follows without any restart.
    const before = (await metric(1, 'ha_sidecar_postgres_wal_position_bytes'))!;
    await cluster.sql(0, 'create table if not exists metric_probe (x text); insert into metric_probe select repeat(\'x\', 1000) from generate_series(1, 1000)');
    await waitFor('the standby wal position metric to move', async () => ((await metric(1, 'ha_sidecar_postgres_wal_position_bytes')) ?? 0) > before, 10_000, 200);
  });

  test('hactl dsn: psql "$(hactl dsn)" reaches the leader, --role standby and --member a standby', async () => {
    const recovery = (args: string) => shell(`psql "$($HACTL dsn ${args})" -XAtc 'select pg_is_in_recovery(), inet_server_addr()'`);
    const leader = await recovery('');
    expect([leader.code, leader.out.trim(), leader.err]).toEqual([0, `f|${cluster.address(0)}`, '']);
    const standby = await recovery('--role standby');
    expect(standby.code).toBe(0);
    expect(standby.out.trim()).toMatch(/^t\|/);
    const n3 = await recovery('--member n3');
    expect([n3.code, n3.out.trim()]).toEqual([0, `t|${cluster.address(2)}`]);
    const all = await recovery('--all-members');
    expect([all.code, all.out.trim()]).toEqual([0, `f|${cluster.address(0)}`]);
    const allStandby = await recovery('--all-members --role standby');
    expect([allStandby.code, allStandby.out.trim()]).toEqual([0, `t|${cluster.address(1)}`]);
    const json = await hactl('dsn', '--member', 'n2', '--role', 'standby', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ member: 'n2', role: 'standby', host: cluster.address(1), port: 15432, user: 'manager', database: 'manager' });

    const unknown = await hactl('dsn', '--member', 'n9');
    expect([unknown.code, unknown.out, unknown.err.trim()]).toEqual([1, '', 'hactl: unknown_node: no running member named n9']);
    const wrongRole = await hactl('dsn', '--member', 'n1', '--role', 'standby');
    expect([wrongRole.code, wrongRole.err.trim()]).toEqual([1, 'hactl: wrong_role: n1 is the leader, not a standby']);
    const badRole = await hactl('dsn', '--role', 'primary');
    expect(badRole.code).toBe(2);
    expect(badRole.err).toMatch(/^hactl: usage_error: Invalid values:/);
    // Only a holder of the cluster token gets the password.
    const anonymous = await cluster.fetchApi(`${cluster.apiUrl(1)}/dsn`);
    expect(anonymous.status).toBe(401);
    const badQuery = await cluster.call(1, 'GET', '/dsn?role=primary');
    expect([badQuery.status, badQuery.body.error]).toEqual([400, 'bad_request']);
  }, 180_000);

  test('hactl config: bad settings exit 2 and change nothing; set shows the diff; PATCH validates its body', async () => {
    const stored = await consulConfig();
    for (const args of [['pause=true'], ['paused=maybe'], ['maxReplicaLag=-5'], ['synchronousMode=true', 'bogus=1'], ['paused']]) {
      const run = await hactl('config', 'set', ...args);
      expect([args, run.code, run.out]).toEqual([args, 2, '']);
      expect(run.err).toMatch(/^hactl: bad_value: /);
    }
    for (const body of [{ paused: 'yes' }, { maxReplicaLag: -1 }, { maxReplicaLag: 1.5 }, { unknown: true }, {}, [true]]) {
      const res = await cluster.call(0, 'PATCH', '/config', body);
      expect([body, res.status, res.body.error]).toEqual([body, 400, 'bad_request']);
    }
    expect(await consulConfig()).toEqual(stored);

    const set = await hactl('config', 'set', 'maxReplicaLag=32MB', 'paused=false');
    expect([set.code, set.out.trim().split('\n'), set.err]).toEqual([0, ['maxReplicaLag: 16777216 (16.0 MiB) -> 33554432 (32.0 MiB)', 'paused: false (unchanged)'], '']);
    const show = await hactl('config', 'show', '--json');
    expect(JSON.parse(show.out)).toEqual({ paused: false, synchronousMode: false, synchronousModeStrict: false, maxReplicaLag: 33554432, snapshotKeep: 10, snapshotSchedule: 'off' });
    const table = await hactl('config', 'show');
    expect(table.out).toMatch(/maxReplicaLag\s+33554432 \(32\.0 MiB\)/);
    expect((await probe(2, '/config')).body).toEqual(JSON.parse(show.out));
  }, 180_000);

  test('synchronous mode by hactl config set: standbys answer /sync, not /async; the leader counts them', async () => {
    const on = await hactl('config', 'set', 'synchronousMode=true');
    expect([on.code, on.out.trim()]).toEqual([0, 'synchronousMode: false -> true']);
    // A PATCH of one setting keeps the others (maxReplicaLag was set to 32 MB above).
    expect((await probe(1, '/config')).body).toEqual({ paused: false, synchronousMode: true, synchronousModeStrict: false, maxReplicaLag: 33554432, snapshotKeep: 10, snapshotSchedule: 'off' });
    await cluster.waitAllStreaming(true, 30_000);
    for (const i of [1, 2]) {
      await waitFor(`n${i + 1} to answer /sync`, async () => (await probe(i, '/sync')).status === 200, 10_000, 200);
      expect((await probe(i, '/async')).status).toBe(503);
    }
    expect(await metric(0, 'ha_sidecar_postgres_synchronous_standbys')).toBe(2);
    const off = await hactl('config', 'set', 'synchronousMode=false');
    expect(off.code).toBe(0);
    await waitFor('n2 to answer /async again', async () => (await probe(1, '/async')).status === 200, 10_000, 200);
  });

  test('hactl cluster status: exit 0 when healthy; into a closed pipe it ends quietly, also with --watch', async () => {
    const status = await hactl('cluster', 'status');
    expect([status.code, status.err]).toEqual([0, '']);
    expect(status.out).toMatch(/^cluster: test {3}term: \d+ {3}leader: n1/);
    // `true` exits before hactl writes: its writes meet a closed pipe (EPIPE).
    const closed = await shell('$HACTL cluster status | true; echo "hactl=${PIPESTATUS[0]}" >&2');
    expect(closed.err).toBe('hactl=0\n');
    const both = await shell('$HACTL cluster status 2>&1 | true; echo "hactl=${PIPESTATUS[0]}" >&2');
    expect(both.err).toBe('hactl=0\n');
        const watch = await shell('$HACTL cluster status --watch 0.2 | head -3; echo "hactl=${PIPESTATUS[0]}" >&2', 15_000);
    expect(watch.err).toBe('hactl=0\n');
    expect(watch.out).toMatch(/^Every 0.2s: hactl cluster status {4}\S+\n\ncluster: test/);
  });

  test("hactl cluster validate: every member answers on 8300, 8301, Consul's HTTP(S) port, 8008 and 15432 (no file mirror yet), from this host and from each member", async () => {
    const run = await hactl('cluster', 'validate');
    const consulPort = new URL(cluster.consul.httpUrl(0)).port;
    expect([run.code, run.err]).toEqual([0, '']);
    const lines = run.out.split('\n');
    expect(lines[0]).toBe('from this host:');
    expect(lines[1]).toMatch(new RegExp(`^NODE\\s+ADDRESS\\s+8300\\s+8301\\s+${consulPort}\\s+8008\\s+15432\\s+22000$`));
    for (const [k, row] of lines.slice(2, 5).entries()) expect(row).toMatch(new RegExp(`^n${k + 1}\\s+\\S+\\s+ok\\s+ok\\s+ok\\s+ok\\s+ok\\s+-$`));
    const matrix = lines.indexOf('from each member to the others:');
    expect(lines.slice(matrix + 1, matrix + 5).map((l) => l.trim().split(/\s+/))).toEqual([
      ['FROM', '\\', 'TO', 'n1', 'n2', 'n3'],
      ['n1', '-', 'ok', 'ok'],
      ['n2', 'ok', '-', 'ok'],
      ['n3', 'ok', 'ok', '-'],
    ]);
  });

  test("Consul registration: the cluster name and the Postgres port in every service's meta", async () => {
    const entries = await health(true);
    expect(entries.map((e) => [e.Service.ID, e.Service.Port, e.Service.Meta]).sort()).toEqual(
      ['n1', 'n2', 'n3'].map((n) => [n, 8008, { cluster: 'test', postgres_port: '15432' }]),
    );
  });

  test("a node whose Consul agent is down says so in /cluster; status exits 4 naming it", async () => {
    await cluster.consul.stopNode(2, 'kill');
    try {
      const view = await waitFor('n3 to report Consul unreachable', async () => {
        const res = await cluster.call(2, 'GET', '/cluster');
        return typeof res.body.consulError === 'string' ? res.body : undefined;
      }, 10_000, 200);
      expect(view.members).toEqual([]);
      // n3's server may have been the raft leader: n1 and n2 list the members again once they elected another.
      await waitFor('n1 and n2 to list the members', async () => {
        const views = await Promise.all([0, 1].map((i) => cluster.call(i, 'GET', '/cluster')));
        return views.every((v) => (v.body.members as unknown[]).length === 3);
      }, 30_000, 200);
      const onlyN3 = await hactl('profiles', 'use', cluster.apiUrl(2), '--name', 'n3only', '--token', CLUSTER_TOKEN, ...profileTlsArgs(cluster));
      expect(onlyN3.code).toBe(0);
      const status = await hactl('--profile', 'n3only', 'cluster', 'status');
      expect(status.code).toBe(4);
      expect(status.out).toContain('(Consul unreachable from the answering node: ');
      expect(status.err).toMatch(new RegExp(`^hactl: cluster_degraded: Consul unreachable from the answering node ${cluster.apiUrl(2).replace(/\./g, '\\.')}: `));
      // Member to member: the others find n3's Consul ports closed, and n3 cannot read its members.
      const validate = await hactl('--profile', 'test', 'cluster', 'validate');
      expect(validate.code).toBe(1);
      expect(validate.err).toMatch(/^hactl: ports_unreachable: /);
      for (const from of ['n1', 'n2']) expect(validate.err).toContain(`${from} -> n3:8300 (Consul server RPC): refused`);
      expect(validate.err).toContain('n3: could not be asked');
    } finally {
      await cluster.consul.startNode(2);
    }
    await cluster.waitAllRunning(60_000);
    await hactl('profiles', 'use', cluster.apiUrl(0), '--name', 'test');
  }, 90_000);

  test('a gracefully stopped node: its alive check turns critical with a note; status exits 4', async () => {
    await cluster.stopSidecar(2);
    const n3 = (await health(false)).find((e) => e.Service.ID === 'n3')!;
    const alive = n3.Checks.find((c) => c.CheckID === 'ha-sidecar-alive:n3')!;
    expect(alive.Status).toBe('critical');
    expect(alive.Output).toMatch(/^stopped gracefully at \d{4}-/);
    expect(n3.Checks.find((c) => c.CheckID === 'ha-sidecar-postgres:n3')?.Status).toBe('critical');
    const status = await waitFor('status to see n3 offline', async () => {
      const run = await hactl('cluster', 'status');
      return run.code === 4 ? run : undefined;
    }, 15_000, 250);
    expect(status.err.trim()).toBe('hactl: cluster_degraded: n3 is offline');
    const validate = await hactl('cluster', 'validate');
    expect(validate.code).toBe(1);
    // From this host first, then what each running member sees of n3; n3 itself cannot be asked.
    expect(validate.err.trim()).toMatch(/^hactl: ports_unreachable: n3:8008 \(sidecar API\) refused; n3:15432 \(PostgreSQL\) refused; /);
    for (const from of ['n1', 'n2']) {
      expect(validate.err).toContain(`${from} -> n3:8008 (sidecar API): refused`);
      expect(validate.err).toContain(`${from} -> n3:15432 (PostgreSQL): refused`);
      expect(validate.err).not.toContain(`${from} -> n3:8300`);
    }
    expect(validate.err).toContain('n3: could not be asked');
  }, 60_000);

  test('hactl completion and profiles delete', async () => {
    const script = await hactl('completion');
    expect([script.code, script.err]).toEqual([0, '']);
    expect(script.out).toContain('complete -o bashdefault -o default -F _hactl_yargs_completions hactl');
    const words = await shell('$HACTL --get-yargs-completions hactl cluster ""');
    expect(words.out.split('\n')).toEqual(expect.arrayContaining(['status', 'validate', 'switchover']));
    const deleted = await hactl('profiles', 'delete', 'n3only');
    expect([deleted.code, deleted.out.trim()]).toEqual([0, 'profile "n3only" deleted']);
    const again = await hactl('profiles', 'delete', 'n3only');
    expect([again.code, again.out, again.err.trim()]).toEqual([2, '', 'hactl: unknown_profile: there is no profile "n3only" (known profiles: test)']);
  });

  test("a killed leader keeps its 'leader' tag, but its checks are critical: the passing leader query names only the new one", async () => {
    const everyMember = (await hactl('dsn', '--all-members')).out.trim();
    const old = (await cluster.leaderIndex())!;
    const oldName = cluster.names[old];
    await cluster.killSidecar(old);
    const next = await waitFor('another node to lead', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 100);
    const nextName = cluster.names[next];
    await waitFor('the catalog to tag the new leader', async () => (await health(true, 'leader')).map((e) => e.Service.ID).join() === nextName, 10_000, 200);
    // A tag cannot be changed by a dead process: the old leader is still tagged leader, with its alive check critical.
    const tagged = await health(false, 'leader');
    expect(tagged.map((e) => e.Service.ID).sort()).toEqual([oldName, nextName].sort());
    const oldAlive = tagged.find((e) => e.Service.ID === oldName)!.Checks.find((c) => c.CheckID === `ha-sidecar-alive:${oldName}`)!;
    expect(oldAlive.Status).toBe('critical');
    // The URI listing every member, taken before the failover, finds the new leader by itself.
    const psql = await shell(`psql ${quote(everyMember)} -XAtc 'select pg_is_in_recovery(), inet_server_addr()'`);
    expect([psql.code, psql.out.trim()]).toEqual([0, `f|${cluster.address(next)}`]);
  }, 60_000);
});
