import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestCluster } from '../harness/cluster.js';
import { treeDigest } from '../harness/files.js';
import { filesOf, writeRandomFile } from '../harness/mirror.js';
import { nodeAddress } from '../harness/net.js';
import { waitFor } from '../harness/processes.js';

export interface MirrorBench {
  latency?: { changes: number; p50Ms: number; p99Ms: number; maxMs: number };
  /** rsyncMs: `rsync -a`, which leaves the data in the page cache; rsyncFsyncMs: with `--fsync`, durable as the mirror is. */
  firstMirror?: { files: number; smallBytes: number; bigBytes: number; mirrorMs: number; rsyncMs: number; ratio: number; rsyncFsyncMs: number; ratioFsync: number };
  rss?: { files: number; leaderRssMb: number; followerRssMb: number; readyMs: number }[];
  catchUp?: { files: number; changes: number; changesBytes: number; manifestBytes: number };
}

export type MirrorPart = 'latency' | 'first' | 'rss' | 'catchup';

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

function rssMb(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
}

async function sameFile(a: string, b: string): Promise<boolean> {
  try {
    const [sa, sb] = [statSync(a), statSync(b)];
    if (sa.size !== sb.size || sa.mode !== sb.mode || Math.round(sa.mtimeMs) !== Math.round(sb.mtimeMs)) return false;
    return (await readFile(a)).equals(await readFile(b));
  } catch {
    return false;
  }
}

/** Every follower in `nodes` in sync at the leader's generation, as /cluster shows it. */
async function allInSync(cluster: TestCluster, leader: number, timeoutMs: number, nodes = [0, 1, 2]): Promise<void> {
  await waitFor('followers in sync', async () => {
    const files = await filesOf(cluster);
    const gen = files[cluster.names[leader]]?.generation;
    return nodes.every((i) => i === leader || (files[cluster.names[i]]?.state === 'in sync' && files[cluster.names[i]]?.generation === gen));
  }, timeoutMs, 50);
}

/** A file written on the leader until it is identical on every follower, `changes` times. */
async function latency(cluster: TestCluster, changes: number): Promise<NonNullable<MirrorBench['latency']>> {
  const leaderDir = join(cluster.filesDir(0), 'latency');
  mkdirSync(leaderDir);
  await allInSync(cluster, 0, 30_000);
  const times: number[] = [];
  for (let k = 0; k < changes; k++) {
    const name = `f${k % 50}`;
    const t0 = performance.now();
    writeFileSync(join(leaderDir, name), randomBytes(1024));
    await waitFor('the change on every follower', async () => {
      const same = await Promise.all([1, 2].map((i) => sameFile(join(leaderDir, name), join(cluster.filesDir(i), 'latency', name))));
      return same.every(Boolean);
    }, 10_000, 2);
    times.push(performance.now() - t0);
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { changes, p50Ms: Math.round(percentile(sorted, 50)), p99Ms: Math.round(percentile(sorted, 99)), maxMs: Math.round(sorted[sorted.length - 1]) };
}

/** A fresh follower's first mirror of `first/`, beside `rsync -a` from an rsync daemon over loopback. */
async function firstMirror(cluster: TestCluster): Promise<NonNullable<MirrorBench['firstMirror']>> {
  const files = 1000;
  const data = join(cluster.filesDir(0), 'first');
  mkdirSync(data);
  for (let k = 0; k < files; k++) writeFileSync(join(data, `small-${k}`), randomBytes(2048));
  await writeRandomFile(join(data, 'big.bin'), 256 * 1024 * 1024);
  await cluster.stopSidecar(2);
  await allInSync(cluster, 0, 120_000, [0, 1]);

  // The mirror: n3 starts with an empty directory and no mirror state.
  rmSync(cluster.filesDir(2), { recursive: true });
  mkdirSync(cluster.filesDir(2));
  rmSync(join(cluster.baseDir, 'n3', 'sidecar', 'files-mirror.json'), { force: true });
  const logFile = join(cluster.baseDir, 'n3', 'sidecar.log');
  const logStart = readFileSync(logFile, 'utf8').length;
  await cluster.startSidecar(2);
  await allInSync(cluster, 0, 300_000);
  const doneAt = Date.now();
  const connected = readFileSync(logFile, 'utf8').slice(logStart).split('\n').find((l) => l.includes('files: following the leader'));
  const connectedAt = Date.parse((JSON.parse(connected ?? '{}') as { timestamp?: string }).timestamp ?? '');
  const mirrorMs = doneAt - connectedAt;
  if (!Number.isFinite(mirrorMs)) throw new Error('no "following the leader" line in the n3 log');
  if ((await treeDigest(cluster.filesDir(2))) !== (await treeDigest(cluster.filesDir(0)))) throw new Error('n3 is not identical after its first mirror');

  // rsync: a daemon on its own loopback address serving the same data, one `rsync -a` into an empty directory.
  const conf = join(cluster.baseDir, 'rsyncd.conf');
  writeFileSync(conf, `use chroot = no\n[data]\n  path = ${data}\n  read only = yes\n`);
  const host = nodeAddress(9);
  const daemon = spawn('rsync', ['--daemon', '--no-detach', `--config=${conf}`, `--address=${host}`, '--port=8873'], { stdio: 'ignore' });
  try {
    await waitFor('the rsync daemon', () => spawnSync('rsync', [`rsync://${host}:8873/`], { stdio: 'ignore' }).status === 0, 10_000);
    const rsyncInto = (dest: string, options: string[]): number => {
      mkdirSync(dest);
      const t0 = performance.now();
      const run = spawnSync('rsync', ['-a', ...options, `rsync://${host}:8873/data/`, `${dest}/`]);
      if (run.status !== 0) throw new Error(`rsync failed: ${run.stderr.toString()}`);
      return Math.round(performance.now() - t0);
    };
    const rsyncMs = rsyncInto(join(cluster.baseDir, 'rsync-dest'), []);
    const rsyncFsyncMs = rsyncInto(join(cluster.baseDir, 'rsync-fsync-dest'), ['--fsync']);
    const ratio = (ms: number) => Math.round((mirrorMs / ms) * 100) / 100;
    return { files: files + 1, smallBytes: 2048, bigBytes: 256 * 1024 * 1024, mirrorMs, rsyncMs, ratio: ratio(rsyncMs), rsyncFsyncMs, ratioFsync: ratio(rsyncFsyncMs) };
  } finally {
    daemon.kill('SIGTERM');
  }
}

/** Sidecar RSS once the leader watches `count` files and the followers mirror them. */
async function rss(cluster: TestCluster, count: number, already: number): Promise<NonNullable<MirrorBench['rss']>[number]> {
  const root = join(cluster.filesDir(0), 'many');
  mkdirSync(root, { recursive: true });
  const t0 = performance.now();
  for (let k = already; k < count; k++) {
    const dir = join(root, `d${Math.floor(k / 1000)}`);
    if (k % 1000 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${k}`), `file ${k}\n`);
  }
  await allInSync(cluster, 0, 900_000);
  const readyMs = Math.round(performance.now() - t0);
  const pid = (i: number) => cluster.processes.get(`sidecar-${cluster.names[i]}`)?.child.pid;
  return { files: count, leaderRssMb: rssMb(pid(0)), followerRssMb: Math.max(rssMb(pid(1)), rssMb(pid(2))), readyMs };
}

/** The bytes the leader logged for its greeting of n3 after `start` (`files: sent a follower ...`). */
function greetingBytes(cluster: TestCluster, logStart: number, kind: 'the changes since its position' | 'the manifest'): number | undefined {
  const lines = readFileSync(join(cluster.baseDir, 'n1', 'sidecar.log'), 'utf8').slice(logStart).split('\n');
  const line = lines.find((l) => l.includes('"peer":"n3@') && l.includes(`files: sent a follower ${kind}`));
  return line ? (JSON.parse(line) as { bytes: number }).bytes : undefined;
}

/**
 * n3 down for `changes` changes of the tree the RSS part left, then back: the bytes of the leader's greeting
 * (the changes since its position), and for comparison the whole manifest it gets without a position.
 */
async function catchUp(cluster: TestCluster, changes: number): Promise<NonNullable<MirrorBench['catchUp']>> {
  const root = join(cluster.filesDir(0), 'many');
  const leaderLog = join(cluster.baseDir, 'n1', 'sidecar.log');
  await cluster.stopSidecar(2);
  for (let k = 0; k < changes; k++) writeFileSync(join(root, `d${Math.floor(k / 1000)}`, `f${k}`), `file ${k}, changed\n`);
  await allInSync(cluster, 0, 120_000, [0, 1]);
  let logStart = readFileSync(leaderLog, 'utf8').length;
  await cluster.startSidecar(2);
  await allInSync(cluster, 0, 300_000);
  const changesBytes = greetingBytes(cluster, logStart, 'the changes since its position');
  await cluster.stopSidecar(2);
  rmSync(join(cluster.baseDir, 'n3', 'sidecar', 'files-mirror.json'));
  logStart = readFileSync(leaderLog, 'utf8').length;
  await cluster.startSidecar(2);
  await allInSync(cluster, 0, 300_000);
  const manifestBytes = greetingBytes(cluster, logStart, 'the manifest');
  if (changesBytes === undefined || manifestBytes === undefined) throw new Error('the leader logged no greeting of n3');
  const files = (await filesOf(cluster)).n1?.generation ?? 0;
  return { files, changes, changesBytes, manifestBytes };
}

export async function benchMirror(changes: number, rssCounts: number[], parts: MirrorPart[]): Promise<MirrorBench> {
  const cluster = new TestCluster({ size: 3, files: { rescanSeconds: 30 } });
  const result: MirrorBench = {};
  try {
    await cluster.start();
    await cluster.waitAllRunning();
    if (parts.includes('latency')) {
      const lat = await latency(cluster, changes);
      result.latency = lat;
      console.log(`propagation latency over ${changes} changes: p50 ${lat.p50Ms} ms, p99 ${lat.p99Ms} ms, max ${lat.maxMs} ms`);
    }
    if (parts.includes('first')) {
      const first = await firstMirror(cluster);
      result.firstMirror = first;
      console.log(`first mirror of ${first.files} files: ${first.mirrorMs} ms; rsync -a ${first.rsyncMs} ms, ratio ${first.ratio}; rsync -a --fsync ${first.rsyncFsyncMs} ms, ratio ${first.ratioFsync}`);
      rmSync(join(cluster.filesDir(0), 'first'), { recursive: true });
    }
    if (parts.includes('rss')) {
      result.rss = [];
      let already = 0;
      for (const count of rssCounts) {
        const row = await rss(cluster, count, already);
        already = count;
        console.log(`${count} files: leader RSS ${row.leaderRssMb} MB, follower RSS ${row.followerRssMb} MB (mirrored in ${row.readyMs} ms)`);
        result.rss.push(row);
      }
    }
    if (parts.includes('catchup')) {
      const row = await catchUp(cluster, 1000);
      result.catchUp = row;
      console.log(`catch-up of n3 after ${row.changes} changes (leader at sequence ${row.files}): ${row.changesBytes} bytes of changes; without a position the manifest is ${row.manifestBytes} bytes`);
    }
    return result;
  } finally {
    await cluster.stop();
  }
}
