import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { systemIdentifier } from '../../sidecar/postgres/data-dir.js';
import { livePostmasterPid, postgresProcessesIn } from '../../sidecar/postgres/pid-file.js';
import { Postmaster } from '../../sidecar/postgres/postmaster.js';
import { synchronousStandbyNamesValue } from '../../sidecar/postgres/sync-standbys.js';
import { GUARD_EXIT_CODE, PARENT_PID_VAR, processAlive } from '../../sidecar/shared/process.js';
import { PG_TEST_PORT, PgTestNodes, strayPids } from '../harness/postgres.js';
import { assertPortFree, waitFor } from '../harness/processes.js';

/**
 * The Postgres controller against real PostgreSQL 15: three nodes on 127.0.0.11-13, port 15432, no Consul.
 * The tests build on each other (n1 primary → n2 promoted → n1 rewound), so they run in order.
 */
describe('PostgresController with real PostgreSQL', () => {
  const cluster = new PgTestNodes(3);
  const [n1, n2, n3] = cluster.nodes;
  const timings: Record<string, number> = {};
  const timed = async <T>(what: string, action: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const result = await action();
    timings[what] = Math.round(performance.now() - t0);
    return result;
  };

  beforeAll(async () => {
    for (const n of cluster.nodes) await assertPortFree(n.address, PG_TEST_PORT, `PostgreSQL of ${n.name}`);
  });
  afterAll(async () => {
    await cluster.cleanup();
    console.log(`postgres timings (ms): ${JSON.stringify(timings)}`);
  }, 60_000);

  test('initPrimary on n1, cloneFrom on n2: rows stream over, the standby refuses writes, status shows streaming', async () => {
    expect(n1.pg.hasDataDir()).toBe(false);
    await timed('initPrimary', () => n1.pg.initPrimary());
    await timed('initPrimary again (idempotent)', () => n1.pg.initPrimary());
    expect(await cluster.app(0, 'select 1 as one')).toEqual([{ one: 1 }]);

    // Without its slot on the primary the clone fails cleanly and leaves nothing behind.
    await expect(n2.pg.cloneFrom(n1.upstream)).rejects.toMatchObject({ code: 'basebackup_failed', message: expect.stringContaining('no replication slot "n2"') });
    expect(n2.pg.hasDataDir()).toBe(false);
    expect(existsSync(`${n2.settings.dataDir}.clone`)).toBe(false);

    await n1.pg.ensureReplicationSlots(['n1', 'n2', 'n3']);
    expect((await cluster.superuser<{ slot_name: string }>(0, 'select slot_name from pg_replication_slots order by 1')).map((r) => r.slot_name)).toEqual(['n2', 'n3']);

    await timed('cloneFrom', () => n2.pg.cloneFrom(n1.upstream));
    await cluster.app(0, 'create table items (id int primary key, v text)');
    await cluster.app(0, "insert into items values (1, 'one')");
    await waitFor('row 1 on the standby n2', async () => (await cluster.app(1, 'select v from items where id = 1'))[0]?.v === 'one', 10_000);

    await expect(cluster.app(1, "insert into items values (2, 'two')")).rejects.toMatchObject({ code: '25006' }); // read_only_sql_transaction

    const standby = await waitFor('n2 streaming', async () => {
      const s = await n2.pg.status();
      return s.streaming ? s : undefined;
    }, 10_000);
    expect(standby).toMatchObject({ running: true, role: 'standby', intent: 'standby', inRecovery: true, timeline: 1, upstream: n1.upstream });
    expect(standby.walReceiver).toMatchObject({ status: 'streaming', host: n1.address, port: PG_TEST_PORT });
    expect(standby.receivedLsn?.bytes).toBeGreaterThan(0);
    expect(standby.replayedLsn?.bytes).toBeGreaterThan(0);
    const primary = await n1.pg.status();
    expect(primary).toMatchObject({ role: 'primary', intent: 'primary', inRecovery: false, timeline: 1, synchronousStandbyNames: '' });
    expect(primary.currentLsn?.bytes).toBeGreaterThanOrEqual(standby.receivedLsn?.bytes ?? Infinity);
    expect(primary.currentLsn?.text).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(primary.replicas).toEqual([expect.objectContaining({ name: 'n2', state: 'streaming', syncState: 'async', clientAddress: '127.0.0.1' })]);
    // n2 is a standby: its own initPrimary must refuse rather than turn it into a second writer.
    await expect(n2.pg.initPrimary()).rejects.toMatchObject({ code: 'postgres_data_exists' });
  });

  test('promote n2; n1 is rewound and follows n2 on timeline 2, losing its split-brain write', async () => {
    await timed('promote', () => n2.pg.promote());
    await n2.pg.promote(); // idempotent
    await cluster.app(1, "insert into items values (2, 'written on n2 after promotion')");
    expect(await n2.pg.status()).toMatchObject({ role: 'primary', intent: 'primary', timeline: 2 });

    // n1 still runs as a primary: a write there is exactly what rewind must throw away.
    await cluster.app(0, "insert into items values (99, 'lost')");
    await n2.pg.ensureReplicationSlots(['n1', 'n2', 'n3']);
    await n1.pg.stop('fast');
    expect(n1.pg.isRunning()).toBe(false);

    expect(await timed('rewindFrom', () => n1.pg.rewindFrom(n2.upstream))).toBe(true);
    await n1.pg.follow(n2.upstream); // already following: nothing to change
    const s = await waitFor('n1 streaming from n2 on timeline 2', async () => {
      const st = await n1.pg.status();
      return st.streaming && st.timeline === 2 ? st : undefined;
    }, 20_000);
    expect(s).toMatchObject({ role: 'standby', intent: 'standby', walReceiver: { status: 'streaming', host: n2.address, port: PG_TEST_PORT } });

    // n1 kept the slots it had as a primary; as a standby it drops them (they would hold its WAL forever).
    await n1.pg.ensureReplicationSlots([]);
    expect(await cluster.superuser(0, 'select slot_name from pg_replication_slots')).toEqual([]);

    await cluster.app(1, "insert into items values (3, 'three')");
    await waitFor('row 3 on n1', async () => (await cluster.app(0, 'select v from items where id = 3'))[0]?.v === 'three', 10_000);
    expect((await cluster.app(0, 'select id from items order by id')).map((r) => r.id)).toEqual([1, 2, 3]);
  });

  test('setSynchronousStandbys: ANY 1 (n1) makes commits wait for n1; null makes them async again', async () => {
    expect(synchronousStandbyNamesValue(null, 'n2')).toBe('');
    expect(synchronousStandbyNamesValue([], 'n2')).toBe('*');
    expect(synchronousStandbyNamesValue(['n2'], 'n2')).toBe('*');
    expect(synchronousStandbyNamesValue(['n3', 'n1', 'n2', 'node-4'], 'n2')).toBe('ANY 1 ("n1", "n3", "node_4")');

    await n2.pg.setSynchronousStandbys(['n1']);
    expect((await n2.pg.status()).synchronousStandbyNames).toBe('ANY 1 ("n1")');
    // The same list again (the leader's every turn) leaves the file as it is; the file changed under it (here
    // to the asynchronous list) is written again and reloaded, although the list asked for did not change.
    const conf = join(n2.settings.dataDir, 'ha-sidecar.conf');
    const written = statSync(conf).ctimeMs;
    await n2.pg.setSynchronousStandbys(['n1']);
    expect(statSync(conf).ctimeMs).toBe(written);
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/^synchronous_standby_names = .*$/m, "synchronous_standby_names = ''"));
    await cluster.superuser(1, 'select pg_reload_conf()');
    await waitFor('the edited file in force', async () => (await cluster.superuser<{ v: string }>(1, "select current_setting('synchronous_standby_names') as v"))[0].v === '', 10_000);
    await n2.pg.setSynchronousStandbys(['n1']);
    expect(readFileSync(conf, 'utf8')).toContain(`synchronous_standby_names = 'ANY 1 ("n1")'`);
    expect((await n2.pg.status()).synchronousStandbyNames).toBe('ANY 1 ("n1")');
    await waitFor('n1 a quorum standby', async () => (await n2.pg.status()).replicas.find((r) => r.name === 'n1')?.syncState === 'quorum', 10_000);
    await cluster.app(1, "insert into items values (4, 'acknowledged by n1')");

    // With n1 down, a commit on n2 waits for it (SyncRep) ...
    await n1.pg.stop('fast');
    let committed = false;
    const pending = cluster.app(1, "insert into items values (5, 'waits')").then(() => (committed = true));
    await waitFor('the commit waiting for a synchronous standby', async () => {
      const rows = await cluster.superuser<{ n: number }>(1, "select count(*)::int as n from pg_stat_activity where wait_event = 'SyncRep'");
      return rows[0].n === 1;
    }, 10_000);
    expect(committed).toBe(false);
    // ... until replication is made asynchronous, which releases it.
    await n2.pg.setSynchronousStandbys(null);
    await waitFor('the waiting commit to finish', () => committed, 10_000);
    await pending;
    expect((await n2.pg.status()).synchronousStandbyNames).toBe('');

    await n1.pg.follow(n2.upstream);
    await waitFor('row 5 on n1', async () => (await cluster.app(0, 'select v from items where id = 5'))[0]?.v === 'waits', 10_000);
    expect((await n2.pg.status()).replicas.find((r) => r.name === 'n1')?.syncState).toBe('async');
  });

  test('failover after a crash: n2 dies (immediate, as when its sidecar is killed), n1 is promoted, n2 rewinds from it', async () => {
    await cluster.app(1, "insert into items values (6, 'before the crash')");
    await waitFor('row 6 on n1', async () => (await cluster.app(0, 'select v from items where id = 6')).length === 1, 10_000);
    await n2.pg.stop('immediate');
    await n1.pg.promote();
    await n1.pg.ensureReplicationSlots(['n2', 'n3']);
    await cluster.app(0, "insert into items values (7, 'on n1 after the failover')");

    // pg_rewind first runs crash recovery of n2 in single-user mode, then rewinds it.
    expect(await timed('rewindFrom (crashed target)', () => n2.pg.rewindFrom(n1.upstream))).toBe(true);
    await waitFor('n2 streaming from n1 on timeline 3', async () => {
      const st = await n2.pg.status();
      return st.streaming && st.timeline === 3 && st.walReceiver?.host === n1.address;
    }, 20_000);
    await waitFor('row 7 on n2', async () => (await cluster.app(1, 'select v from items where id = 7')).length === 1, 10_000);
    expect((await n1.pg.status()).replicas).toEqual([expect.objectContaining({ name: 'n2', state: 'streaming' })]);
  });

  test('hasUserData: false without data and on a fresh primary, true once the app db has a table (also when stopped)', async () => {
    expect(await n3.pg.hasUserData()).toBe(false);
    await n3.pg.initPrimary();
    expect(await n3.pg.hasUserData()).toBe(false);
    await cluster.app(2, 'create table settings (k text primary key, v text)');
    expect(await n3.pg.hasUserData()).toBe(true);
    await n3.pg.stop('fast');
    expect(await n3.pg.hasUserData()).toBe(true); // started on its socket for the check ...
    expect(n3.pg.isRunning()).toBe(false); // ... and stopped again
  });

  test('fencing: without the primary permit a primary neither starts nor promotes, and a start under way is stopped', async () => {
    n3.pg.permitPrimary(false);
    await expect(n3.pg.start()).rejects.toMatchObject({ code: 'primary_not_permitted' });
    expect(n3.pg.isRunning()).toBe(false);
    expect(await n3.pg.hasUserData()).toBe(true); // on its unix socket alone, no permit needed
    n3.pg.permitPrimary(true);
    const starting = n3.pg.start();
    n3.pg.permitPrimary(false); // stepped down while it started
    await expect(starting).rejects.toMatchObject({ code: 'primary_not_permitted' });
    expect(n3.pg.isRunning()).toBe(false);
    n3.pg.permitPrimary(true);
  });

  test('a rewind or clone from another database system is refused, and from a standby postponed; nothing local changes', async () => {
    const n3System = systemIdentifier(n3.node);
    expect(n3System).toMatch(/^\d+$/);
    expect(n3System).not.toBe(systemIdentifier(n1.node));
    await expect(n3.pg.rewindFrom(n1.upstream)).rejects.toMatchObject({ code: 'system_identifier_mismatch' });
    await expect(n3.pg.cloneFrom(n1.upstream)).rejects.toMatchObject({ code: 'system_identifier_mismatch' });
    expect(systemIdentifier(n3.node)).toBe(n3System);
    expect((await n3.pg.status()).intent).toBe('primary');

    // n2 is n1's standby: rewinding the primary n1 from it is refused before n1 is touched.
    await expect(n1.pg.rewindFrom(n2.upstream)).rejects.toMatchObject({ code: 'rewind_source_not_primary' });
    expect(await n1.pg.status()).toMatchObject({ running: true, role: 'primary', intent: 'primary' });
  });

  test('rule 3: the postmaster dies within 2 s of its parent being SIGKILLed, even after dropping to the postgres user', async () => {
    // The same command the controller spawns, from a separate Node parent that we can kill -9.
    const spec = new Postmaster(n3.node).command();
    const parentScript = join(cluster.base, 'parent.cjs');
    writeFileSync(
      parentScript,
      `const { spawn } = require('node:child_process');
       const fs = require('node:fs');
       const spec = JSON.parse(process.argv[2]);
       const log = fs.openSync(process.argv[3], 'a');
       const child = spawn(spec.command, spec.args, { detached: true, stdio: ['ignore', log, log], env: { ...spec.env, ${PARENT_PID_VAR}: String(process.pid) } });
       process.stdout.write(child.pid + '\\n');
       setInterval(() => {}, 60000);\n`,
    );
    const parent = spawn(process.execPath, [parentScript, JSON.stringify(spec), n3.node.logFile], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    strayPids.add(parent.pid!);
    let out = '';
    parent.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const postmaster = await waitFor('the helper to report the postmaster pid', () => (/^\d+\n/.test(out) ? Number(out.trim()) : undefined), 5_000);
    strayPids.add(postmaster);

    const s = await waitFor('the postmaster of the helper to accept connections', async () => {
      const st = await n3.pg.status();
      return st.role === 'primary' ? st : undefined;
    }, 20_000);
    expect(s.running).toBe(true);
    expect(livePostmasterPid(n3.settings.dataDir)).toBe(postmaster);
    if (process.getuid?.() === 0) {
      const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${postmaster}/status`, 'utf8'))?.[1];
      expect(uid).not.toBe('0'); // dropped to the postgres user ...
    }
    await cluster.app(2, "insert into settings values ('alive', 'yes')");
    expect(postgresProcessesIn(n3.settings.dataDir).length).toBeGreaterThan(1); // the postmaster and its backends

    // ... and the death signal survived the uid change.
    const t0 = performance.now();
    process.kill(parent.pid!, 'SIGKILL');
    await waitFor('the postmaster to die with its parent', () => !processAlive(postmaster), 2_000, 20);
    timings['postmaster gone after parent SIGKILL'] = Math.round(performance.now() - t0);
    await waitFor('every backend gone too', () => postgresProcessesIn(n3.settings.dataDir).length === 0, 2_000, 20);
    await expect(cluster.app(2, 'select 1')).rejects.toThrow();

    // The guard: a postmaster whose parent is already gone (here: a pid that is not its parent) never starts.
    const orphan = spawn(spec.command, spec.args, { stdio: 'ignore', env: { ...spec.env, [PARENT_PID_VAR]: '1' } });
    const code = await new Promise<number | null>((resolve) => orphan.on('exit', (c) => resolve(c)));
    expect(code).toBe(GUARD_EXIT_CODE);
    expect(n3.pg.isRunning()).toBe(false);
  });
});
