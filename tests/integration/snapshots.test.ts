import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { projectRoot } from '../../sidecar/shared/package.js';
import { CLUSTER_TOKEN, TestCluster } from '../harness/cluster.js';
import { profileTlsArgs } from '../harness/hactl.js';
import { TEST_NET, loopbackOn } from '../harness/net.js';
import { runCommand, waitFor, type CommandRun } from '../harness/processes.js';

/**
 * Snapshots against real clusters (Consul, PostgreSQL 15, the file mirror, sidecars), hactl as a subprocess:
 * 12 created, the newest 10 on every node; the leader killed (-9), the new leader lists and restores them;
 * damaged, newer-version and unknown snapshots refused with nothing changed; and the upgrade path, an
 * archive of this cluster restored with --file into a second, fresh cluster on the next loopback /24.
 */

const hactlJs = join(projectRoot(), 'dist', 'cli', 'hactl.js');
const work = mkdtempSync(join(tmpdir(), 'hactl-snapshots-'));
/** The second cluster of the upgrade test: the /24 after this run's (127.0.7 -> 127.0.8). */
const SECOND_NET = TEST_NET.replace(/\d+$/, (last) => String(Number(last) + 1));

const hactl = (profileDir: string, ...args: string[]): Promise<CommandRun> => {
  const env: NodeJS.ProcessEnv = { ...process.env, HACTL_CONFIG_DIR: profileDir };
  delete env.HACTL_TOKEN;
  return runCommand(process.execPath, [hactlJs, ...args], env, 120_000);
};
const ok = (run: CommandRun, what: string): string => {
  if (run.code !== 0) throw new Error(`${what} exited ${run.code}: ${run.err}${run.out}`);
  return run.out;
};

/** A copy of `archive` after `change` edited its unpacked parts (metadata.json, database.dump, files.tar.gz). */
async function alteredArchive(archive: string, name: string, change: (dir: string) => void): Promise<string> {
  const dir = mkdtempSync(join(work, `${name}-`));
  await tar.x({ file: archive, cwd: dir });
  change(dir);
  const out = join(work, `${name}.tar`);
  await tar.c({ cwd: dir, file: out }, ['metadata.json', 'database.dump', 'files.tar.gz']);
  return out;
}

describe('snapshots on a real cluster (3 nodes, Postgres and the file mirror)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, files: true });
  const profiles = join(work, 'profiles-a');
  let stopped = false;
  let ids: string[] = [];
  let leader = 0;
  const localIds = async (i: number): Promise<string[]> =>
    ((await cluster.call(i, 'GET', '/snapshots/local')).body.snapshots as { id: string }[]).map((s) => s.id);
  const rows = async (i: number): Promise<string[]> => (await cluster.sql<{ label: string }>(i, 'SELECT label FROM items ORDER BY label')).map((r) => r.label);

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitAllStreaming();
    ok(await hactl(profiles, 'profiles', 'use', cluster.apiUrl(0), '--name', 'a', '--token', CLUSTER_TOKEN, ...profileTlsArgs(cluster)), 'profiles use');
    await cluster.sql(0, "CREATE TABLE items (label text PRIMARY KEY); INSERT INTO items VALUES ('alpha'), ('beta')");
    writeFileSync(join(cluster.filesDir(0), 'blueprint.yaml'), 'version: snapshot\n');
  }, 180_000);
  afterAll(async () => {
    if (!stopped) await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  }, 60_000);

  test('12 snapshots created: exactly the newest 10 are kept on every node', async () => {
    const started = Date.now();
    // The first 11 through the API (a hactl process costs seconds of start-up on a loaded machine), the last by hactl.
    for (let k = 0; k < 11; k++) {
      const res = await cluster.fetchApi(`${cluster.apiUrl(0)}/snapshots`, { method: 'POST', headers: { authorization: `Bearer ${CLUSTER_TOKEN}` } });
      const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { done?: boolean; result?: { id: string } });
      expect([res.status, lines.at(-1)!.done]).toEqual([200, true]);
      ids.push(lines.at(-1)!.result!.id);
    }
    const out = ok(await hactl(profiles, 'snapshot', 'create'), 'snapshot create');
    // Progress lines as the leader streams them, then the result.
    expect(out).toMatch(/dumping database manager \(pg_dump -Fc\)\n/);
    expect(out).toMatch(/archiving files of /);
    ids.push(/snapshot (\S+) created\n$/.exec(out)![1]);
    console.log(`12 snapshots created in ${Date.now() - started} ms`);
    expect([...ids].sort()).toEqual(ids); // ids sort as they were taken
    const kept = ids.slice(-10);
    const copied = Date.now();
    for (const i of [0, 1, 2]) await waitFor(`n${i + 1} to hold the newest 10`, async () => JSON.stringify(await localIds(i)) === JSON.stringify(kept), 30_000);
    console.log(`standbys held the newest 10 ${Date.now() - copied} ms after the last create`);
    const list = JSON.parse(ok(await hactl(profiles, 'snapshot', 'list', '--json'), 'snapshot list')) as { snapshots: { id: string; nodes: string[] }[] };
    expect(list.snapshots.map((s) => [s.id, s.nodes])).toEqual(kept.map((id) => [id, ['n1', 'n2', 'n3']]));
    const table = ok(await hactl(profiles, 'snapshot', 'list'), 'snapshot list');
    expect(table.split('\n')[0]).toMatch(/^ID +CREATED +TERM +VERSION +SIZE +PARTS +NODES$/);
    expect(table).toContain(`${kept[9]} `);
    ids = kept;
  }, 180_000);

  test('the leader killed (-9): the new leader lists the snapshots and restores the newest, data and files', async () => {
    await cluster.sql(0, "DELETE FROM items WHERE label = 'alpha'; INSERT INTO items VALUES ('after-snapshot')");
    writeFileSync(join(cluster.filesDir(0), 'blueprint.yaml'), 'version: changed later\n');
    // The change is everywhere before the leader dies, so the restore has something to undo on every node.
    const changed = (i: number) => readFileSync(join(cluster.filesDir(i), 'blueprint.yaml'), 'utf8') === 'version: changed later\n';
    await waitFor('the standbys to mirror the later change', () => changed(1) && changed(2), 30_000);
    await cluster.killSidecar(0);
    leader = await waitFor('a new leader', () => cluster.leaderIndex([1, 2]), 60_000);
    const list = JSON.parse(ok(await hactl(profiles, 'snapshot', 'list', '--json'), 'snapshot list')) as { node: string; nodes: Record<string, string[] | null> };
    expect(list.node).toBe(cluster.names[leader]);
    expect(list.nodes[cluster.names[leader]]).toEqual(ids);
    expect(list.nodes.n1).toBeNull(); // the dead node does not answer

    const started = Date.now();
    const out = ok(await hactl(profiles, 'snapshot', 'restore', ids[9]), 'snapshot restore');
    console.log(`restore from the new leader took ${Date.now() - started} ms:\n${out}`);
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^restoring snapshot ${ids[9]} of cluster test .*checksums verified$`));
    expect(lines).toContain('pausing failover for the restore');
    expect(lines.some((l) => l.startsWith('restoring database manager (pg_restore'))).toBe(true);
    expect(lines).toContain('failover resumed');
    expect(lines.at(-1)).toBe(`snapshot ${ids[9]} restored`);
    expect(await rows(leader)).toEqual(['alpha', 'beta']);
    expect(readFileSync(join(cluster.filesDir(leader), 'blueprint.yaml'), 'utf8')).toBe('version: snapshot\n');
    expect((await cluster.call(leader, 'GET', '/config')).body.paused).toBe(false);
    // The other live node follows: the restore by streaming replication, the file through the mirror.
    const standby = leader === 1 ? 2 : 1;
    await waitFor('the standby to replay the restore', async () => JSON.stringify(await rows(standby).catch(() => [])) === '["alpha","beta"]', 30_000);
    await waitFor('the standby to mirror the restored file', () => readFileSync(join(cluster.filesDir(standby), 'blueprint.yaml'), 'utf8') === 'version: snapshot\n', 30_000);
  }, 180_000);

  test('a damaged, a newer-version, an unreadable and an unknown snapshot are refused, and nothing changes', async () => {
    const good = join(work, 'good.tar');
    ok(await hactl(profiles, 'snapshot', 'download', ids[9], '-o', good), 'snapshot download');
    const damaged = await alteredArchive(good, 'damaged', (dir) => {
      const dump = readFileSync(join(dir, 'database.dump'));
      dump[Math.floor(dump.length / 2)] ^= 0xff;
      writeFileSync(join(dir, 'database.dump'), dump);
    });
    const ourVersion = (JSON.parse(readFileSync(join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version;
    const [major, minor] = ourVersion.split('.').map(Number);
    const newer = await alteredArchive(good, 'newer', (dir) => {
      const meta = JSON.parse(readFileSync(join(dir, 'metadata.json'), 'utf8')) as Record<string, unknown>;
      writeFileSync(join(dir, 'metadata.json'), JSON.stringify({ ...meta, haSidecarVersion: `${major}.${minor + 1}.0` }));
    });
    const garbage = join(work, 'garbage.tar');
    writeFileSync(garbage, 'this is not a tar archive\n'.repeat(100));

    await cluster.sql(leader, "INSERT INTO items VALUES ('marker')");
    const before = { rows: await rows(leader), list: await localIds(leader), config: (await cluster.call(leader, 'GET', '/config')).body };
    for (const [args, code] of [
      [['--file', damaged], 'snapshot_checksum_mismatch'],
      [['--file', newer], 'snapshot_newer_version'],
      [['--file', garbage], 'snapshot_invalid'],
      [['20200101T000000000Z'], 'unknown_snapshot'],
    ] as const) {
      const run = await hactl(profiles, 'snapshot', 'restore', ...args);
      expect([args[0], run.code, run.err.split(':')[1]?.trim()]).toEqual([args[0], 2, code]);
    }
    // A restore sent to a standby itself is refused too; hactl would have gone to the leader.
    const standby = leader === 1 ? 2 : 1;
    const onStandby = await cluster.call(standby, 'POST', `/snapshots/${ids[9]}/restore`);
    expect([onStandby.status, onStandby.body.error]).toEqual([409, 'not_cluster_leader']);
    expect({ rows: await rows(leader), list: await localIds(leader), config: (await cluster.call(leader, 'GET', '/config')).body }).toEqual(before);
  }, 120_000);

  test('the schedule: the leader takes snapshots by itself, and a smaller snapshotKeep prunes every node', async () => {
    for (const bad of ['snapshotSchedule=soon', 'snapshotSchedule=0s', 'snapshotKeep=0', 'snapshotKeep=many']) {
      const run = await hactl(profiles, 'config', 'set', bad);
      expect([bad, run.code, run.err.split(':')[1]?.trim()]).toEqual([bad, 2, 'bad_value']);
    }
    const set = ok(await hactl(profiles, 'config', 'set', 'snapshotSchedule=2s', 'snapshotKeep=3'), 'config set');
    expect(set.trim().split('\n')).toEqual(['snapshotSchedule: off -> 2s', 'snapshotKeep: 10 -> 3']);
    const live = [1, 2];
    const newestBefore = ids[9];
    const scheduled = await waitFor('two scheduled snapshots on every live node, 3 kept', async () => {
      const lists = await Promise.all(live.map(localIds));
      const fresh = lists.map((l) => l.filter((id) => id > newestBefore));
      return lists.every((l) => l.length === 3) && fresh.every((f) => f.length >= 2) && JSON.stringify(lists[0]) === JSON.stringify(lists[1]) ? lists[0] : undefined;
    }, 30_000);
    ok(await hactl(profiles, 'config', 'set', 'snapshotSchedule=off', 'snapshotKeep=10'), 'config set');
    expect(scheduled.slice(-2).every((id) => id > newestBefore)).toBe(true);
  }, 60_000);

  test('upgrade to new hosts: the archive restored with --file into a fresh cluster, every node streaming', async () => {
    const good = join(work, 'good.tar');
    await cluster.stop();
    stopped = true;
    const second = new TestCluster({ size: 3, postgres: true, files: true, placement: loopbackOn(SECOND_NET) });
    const profilesB = join(work, 'profiles-b');
    try {
      await second.start();
      await second.waitAllStreaming();
      ok(await hactl(profilesB, 'profiles', 'use', second.apiUrl(0), '--name', 'b', '--token', CLUSTER_TOKEN, ...profileTlsArgs(second)), 'profiles use');
      const started = Date.now();
      const out = ok(await hactl(profilesB, 'snapshot', 'restore', '--file', good), 'snapshot restore --file');
      console.log(`restore --file into the second cluster took ${Date.now() - started} ms:\n${out}`);
      expect(out).toMatch(/^uploading .*good\.tar/);
      const streaming = await second.waitAllStreaming();
      expect(streaming.filter((m) => m.pgRole === 'standby' && m.streaming)).toHaveLength(2);
      for (const i of [0, 1, 2]) {
        await waitFor(`${second.names[i]} to hold the restored rows`, async () => {
          const labels = await second.sql<{ label: string }>(i, 'SELECT label FROM items ORDER BY label').catch(() => []);
          return JSON.stringify(labels.map((r) => r.label)) === '["alpha","beta"]';
        }, 30_000);
        await waitFor(`${second.names[i]} to hold the restored file`, () => {
          try {
            return readFileSync(join(second.filesDir(i), 'blueprint.yaml'), 'utf8') === 'version: snapshot\n';
          } catch {
            return false;
          }
        }, 30_000);
      }
    } finally {
      await second.stop();
    }
  }, 240_000);
});
