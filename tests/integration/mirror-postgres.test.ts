import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEMP_PATTERN } from '../../sidecar/mirror/paths.js';
import { TestCluster } from '../harness/cluster.js';
import { processName } from '../harness/driver.js';
import { treeListing } from '../harness/files.js';
import { waitIdentical, writeRandomFile } from '../harness/mirror.js';
import { waitFor } from '../harness/processes.js';
import { SlowDisk } from '../harness/slow-disk.js';

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

  // kill -9 keeps the page cache, so this shows that no final name ever holds a partial file and that a crash's
  // leftovers are cleaned, not the fsyncs; their order (fsync of the temporary file, rename, fsync of the
  // directory, then the state file's fsync) was checked with `strace -f -e trace=fsync,rename,openat`.
  test('a standby\'s whole node killed (-9) while a large file and many small ones arrive holds no empty or partial file under a final name', async () => {
    const leader = (await cluster.leaderIndex()) as number;
    // Not the node of Consul's raft leader: killing that server starts a raft election, which can cost the
    // leader its lease (docs/design.md "Liveness"), and this test is about the standby's files (CI saw n3 take over).
    const raftLeader = await cluster.consul.waitForLeader();
    const victim = [0, 1, 2].find((i) => i !== leader && !raftLeader.startsWith(`${cluster.address(i)}:`)) as number;
    const victimDir = cluster.filesDir(victim);
    const leaderDir = cluster.filesDir(leader);
    mkdirSync(join(leaderDir, 'burst'));
    // Small files first, so the standby is installing them while the large one is still being written.
    for (let k = 0; k < 1000; k++) writeFileSync(join(leaderDir, 'burst', `s${k}`), `small file ${k}\n`.repeat(50));
    await writeRandomFile(join(leaderDir, 'burst', 'big.bin'), 200 * 1024 * 1024);
    const wanted = new Map<string, string>();
    for (const name of readdirSync(join(leaderDir, 'burst'))) wanted.set(`burst/${name}`, sha256(readFileSync(join(leaderDir, 'burst', name))));

    // Kill sidecar, Consul and Postgres at once while the large file is arriving (its temporary file grows).
    await waitFor('the large file to be arriving on the standby', () => readdirSync(join(victimDir, 'burst'), { withFileTypes: true }).some((e) => TEMP_PATTERN.test(e.name)), 60_000, 20).catch(() => undefined);
    const postmaster = Number(readFileSync(join(cluster.baseDir, cluster.names[victim], 'sidecar', 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
    process.kill(postmaster, 'SIGKILL');
    await Promise.all([cluster.killSidecar(victim), cluster.consul.stopNode(victim, 'kill')]);

    /** Every regular file under a final name has the leader's content; returns how many there are. */
    const checkFinalNames = async (when: string): Promise<number> => {
      const files = (await treeListing(victimDir, (p) => TEMP_PATTERN.test(p.slice(p.lastIndexOf('/') + 1)))).filter((l) => l.startsWith('f ') && l.includes(' burst/'));
      const wrong = files.map((l) => l.split(' ')).filter(([, , path, , , hash]) => wanted.get(path) !== hash).map(([, , path, size]) => `${path} (${size} bytes)`);
      expect({ when, wrong }).toEqual({ when, wrong: [] });
      return files.length;
    };
    const installed = await checkFinalNames('right after the kill');
    expect(installed).toBeLessThan(wanted.size); // killed mid-transfer, not after it

    await cluster.consul.startNode(victim);
    // With ACLs, a server that has just restarted denies the sidecar's token until it has caught up with raft,
    // and the sidecar stops at start on a denied registration: start it once its Consul is a healthy voter.
    await cluster.consul.waitForHealthy();
    await cluster.startSidecar(victim);
    await checkFinalNames('right after the restart, before catching up');
    await waitIdentical(cluster, leader, [0, 1, 2], 120_000).catch((e: unknown) => {
      // What the restarted follower did, for a failure seen only in CI so far.
      const lines = readFileSync(join(cluster.baseDir, cluster.names[victim], 'sidecar.log'), 'utf8').split('\n').filter((l) => l.includes('files'));
      throw new Error(`${(e as Error).message}\n${cluster.names[victim]}'s last file mirror log lines:\n${lines.slice(-20).join('\n')}`);
    });
    expect(await checkFinalNames('after catching up')).toBe(wanted.size);
    await cluster.waitAllStreaming();
  }, 240_000);

  test("a standby whose disk writes back at 4 MB/s catches up with a 48 MB file and 300 small ones: it stops reading while its installs wait for the disk, and does not take the leader's unread heartbeats for silence", async () => {
    const leader = (await cluster.leaderIndex()) as number;
    const victim = [0, 1, 2].find((i) => i !== leader) as number;
    const log = join(cluster.baseDir, cluster.names[victim], 'sidecar.log');
    const logFrom = statSync(log).size;
    // The large file's fsync on the standby writes 48 MB back at 4 MB/s, about 12 s; the small files' installs
    // wait behind it until all of the follower's install slots are taken, and it stops reading for longer
    // than its 5 s silence limit.
    const disk = new SlowDisk(cluster.filesDir(victim), { writeBytesPerSecond: 4 * 1024 * 1024 });
    try {
      disk.add(cluster.processes.get(processName(cluster.driver.node(victim), 'sidecar'))!.child.pid!);
      const dir = join(cluster.filesDir(leader), 'slow-disk');
      mkdirSync(dir);
      await writeRandomFile(join(dir, 'a-large.bin'), 48 * 1024 * 1024);
      for (let k = 0; k < 300; k++) writeFileSync(join(dir, `s${k}`), `small file ${k}\n`.repeat(50));
      await waitIdentical(cluster, leader, [0, 1, 2], 120_000);
    } finally {
      disk.release();
    }
    const lines = readFileSync(log, 'utf8').slice(logFrom);
    expect(lines.match(/files: closing the connection to the leader.*/g) ?? []).toEqual([]);
  }, 180_000);
});

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
