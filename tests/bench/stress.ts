import { spawn, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { processName } from '../harness/driver.js';
import { TestCluster, LeaderWatcher } from '../harness/cluster.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { SlowDisk } from '../harness/slow-disk.js';
import { WritingClient } from '../harness/writer.js';
import { descendants, logLinesSince } from './failover.js';

/**
 * `npm run bench -- stress`: the conditions that must not cause a failover (issue 22's "zero spurious
 * failovers"), one after another on one 3-node cluster under a client writing through the real HAProxy:
 * - `cpu-hogs`: two busy loops keep both cores busy;
 * - `slow-disk`: every process of the leader's node (Consul server, sidecar, write guard, Postgres) in a
 *   cgroup v1 blkio group limited to `STRESS_DISK_IOPS` writes per second on the disk under the data, so each
 *   WAL flush and each raft log append waits for the throttle, as on a disk that syncs slowly; the raft
 *   leader is moved to that node first (the worst case);
 * - `raft-leader-changes`: `STRESS_RAFT_CHANGES` forced Consul raft elections, alternately a leadership
 *   transfer (`/v1/operator/raft/transfer-leader`) and kill -9 of the raft leader's Consul when it runs on a
 *   standby's node (restarted once the others elected a leader; the next change waits until autopilot calls every server healthy).
 * Each reports the ha-sidecar leader changes (log lines `role ... -> candidate|leader`, or from `leader`), the
 * client's unacknowledged inserts, its longest write gap, acknowledged rows missing at the end, and any
 * instant when two nodes answered 200 on /leader.
 */

export const STRESS_SCENARIOS = ['cpu-hogs', 'slow-disk', 'raft-leader-changes'] as const;
export type StressScenario = (typeof STRESS_SCENARIOS)[number];

export interface StressResult {
  scenario: StressScenario;
  seconds: number;
  /** The role lines that mean a leader change, with their node: none expected. */
  leaderChanges: string[];
  clientErrors: number;
  lastClientError: string;
  acked: number;
  lost: number;
  longestWriteGapMs: number;
  twoLeaders: string[];
  /** What the scenario did (raft leaders before and after each change, the throttle). */
  detail: string[];
}

export interface StressOptions {
  seconds: number;
  raftChanges: number;
  diskIops: number;
  synchronous: boolean;
}

const LEADER_CHANGE = /^role (\S+ -> (candidate|leader)|leader -> \S+)$/;

export async function benchStress(scenarios: readonly StressScenario[], opts: StressOptions): Promise<StressResult[]> {
  const cluster = new TestCluster({ size: 3, postgres: true });
  const haproxy = new TestHaproxy(cluster);
  let writer: WritingClient | undefined;
  let watcher: LeaderWatcher | undefined;
  const results: StressResult[] = [];
  try {
    await cluster.start();
    await cluster.waitAllStreaming();
    const first = (await cluster.leaderIndex())!;
    await cluster.sql(first, 'create table acked (id bigint primary key)');
    const patched = await cluster.call(first, 'PATCH', '/config', { synchronousMode: opts.synchronous });
    if (patched.status !== 200) throw new Error(`PATCH /config failed: ${JSON.stringify(patched.body)}`);
    await cluster.waitAllStreaming(opts.synchronous);
    haproxy.start();
    writer = new WritingClient(haproxy.postgres);
    const w = writer;
    await waitFor('the client to write through HAProxy', () => w.acked.length > 10, 30_000, 20);
    for (const scenario of scenarios) {
      await cluster.waitAllStreaming(opts.synchronous);
      const logs = cluster.names.map((_, i) => cluster.driver.node(i).sidecarLog);
      const offsets = logs.map((f) => statSync(f).size);
      const ackedFrom = w.acked.length;
      const errorsFrom = w.errors;
      w.longestGapMs = 0;
      watcher = new LeaderWatcher(cluster);
      const started = Date.now();
      console.log(`  ${scenario}: started ${new Date(started).toISOString()}`);
      const detail = await SCENARIOS[scenario](cluster, opts);
      // The window ends once the cluster has settled again, so a failover the scenario set off is counted here.
      await cluster.waitAllStreaming(opts.synchronous);
      await watcher.stop();
      const twoLeaders = watcher.overlaps;
      watcher = undefined;
      const leaderChanges = logs.flatMap((f, i) =>
        logLinesSince(f, offsets[i])
          .filter((l) => LEADER_CHANGE.test(l.message))
          .map((l) => `${new Date(l.at).toISOString()} ${cluster.names[i]}: ${l.message}`),
      );
      const acked = w.acked.slice(ackedFrom);
      const now = await waitFor('one leader', () => cluster.leaderIndex(), 30_000);
      const present = new Set((await cluster.sql<{ id: string }>(now, 'select id from acked where id = any($1)', [acked])).map((r) => Number(r.id)));
      const result: StressResult = {
        scenario,
        seconds: Math.round((Date.now() - started) / 1000),
        leaderChanges,
        clientErrors: w.errors - errorsFrom,
        lastClientError: w.errors > errorsFrom ? w.lastError : '',
        acked: acked.length,
        lost: acked.filter((id) => !present.has(id)).length,
        longestWriteGapMs: Math.round(Math.max(w.longestGapMs, w.sinceLastAck())),
        twoLeaders,
        detail,
      };
      console.log(
        `  ${scenario}: ${result.seconds} s, ${leaderChanges.length} leader changes, ${result.clientErrors} client errors, ` +
          `${result.acked} acknowledged, ${result.lost} lost, longest write gap ${result.longestWriteGapMs} ms, ${twoLeaders.length} instants of two leaders`,
      );
      for (const line of [...leaderChanges, ...twoLeaders]) console.log(`    ${line}`);
      results.push(result);
    }
  } finally {
    await watcher?.stop();
    await writer?.stop();
    await cluster.stop();
  }
  return results;
}

type Scenario = (cluster: TestCluster, opts: StressOptions) => Promise<string[]>;

const SCENARIOS: Record<StressScenario, Scenario> = {
  'cpu-hogs': async (_cluster, opts) => {
    // Busy loops at the sidecars' own priority: the scheduler shares the cores between them and everything else.
    const hogs: ChildProcess[] = [0, 1].map(() => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
    try {
      await pause(opts.seconds * 1000);
    } finally {
      await Promise.all(hogs.map((h) => stopChild(h)));
    }
    return [`2 busy loops (pids ${hogs.map((h) => h.pid).join(', ')}) for ${opts.seconds} s`];
  },

  'slow-disk': async (cluster, opts) => {
    const leader = await waitFor('one leader', () => cluster.leaderIndex(), 30_000);
    const node = cluster.driver.node(leader);
    // The worst case: the raft leader on the same node, so every Consul write and every lease confirmation
    // waits on the slow disk too.
    const raftBefore = await cluster.consul.waitForLeader();
    if (!raftBefore.startsWith(`${node.address}:`)) {
      const from = cluster.names.findIndex((_, i) => raftBefore.startsWith(`${cluster.address(i)}:`));
      await transferRaftLeader(cluster, from, leader);
      await newRaftLeader(cluster, [leader], raftBefore);
    }
    const disk = new SlowDisk(node.dir, { writeIops: opts.diskIops });
    try {
      const sidecar = cluster.processes.get(processName(node, 'sidecar'))!.child.pid!;
      const consul = cluster.processes.get(processName(node, 'consul'))!.child.pid!;
      // The sidecar's descendants are its guard and Postgres; processes they fork later start in the group too.
      const pids = [sidecar, consul, ...descendants(sidecar)];
      disk.add(...pids);
      await pause(opts.seconds * 1000);
      const raftAfter = await cluster.consul.waitForLeader();
      return [`${cluster.names[leader]}'s ${pids.length} processes limited to ${opts.diskIops} write IOPS for ${opts.seconds} s; raft leader ${node.address} at the start, ${raftAfter} at the end`];
    } finally {
      disk.release();
    }
  },

  'raft-leader-changes': async (cluster, opts) => {
    const detail: string[] = [];
    let kill = false;
    for (let change = 1; change <= opts.raftChanges; change++) {
      await cluster.consul.waitForHealthy();
      const before = await cluster.consul.waitForLeader();
      const raftLeader = cluster.names.findIndex((_, i) => before.startsWith(`${cluster.address(i)}:`));
      const haLeader = await waitFor('one leader', () => cluster.leaderIndex(), 30_000);
      const t0 = Date.now();
      if (kill && raftLeader !== haLeader) {
        // kill -9 of a standby node's Consul server while it leads raft, started again once the others elected a leader.
        await cluster.consul.stopNode(raftLeader, 'kill');
        const others = cluster.names.map((_, i) => i).filter((i) => i !== raftLeader);
        const after = await newRaftLeader(cluster, others, before);
        detail.push(`#${change} kill -9 of ${cluster.names[raftLeader]}'s Consul (raft leader ${before}) -> ${after} in ${Date.now() - t0} ms`);
        await cluster.consul.startNode(raftLeader);
        kill = false;
        continue;
      }
      // A transfer, to a standby's node when the next change is a kill (the kill is of a standby node's Consul).
      const target = cluster.names.findIndex((_, i) => i !== raftLeader && (!kill || i !== haLeader));
      await transferRaftLeader(cluster, raftLeader, target);
      const after = await newRaftLeader(cluster, [target], before);
      detail.push(`#${change} transfer ${before} -> ${after} in ${Date.now() - t0} ms`);
      kill = true;
    }
    await cluster.consul.waitForHealthy();
    return detail;
  },
};

/** Waits until every one of `nodes` names the same raft leader, other than `before`. */
function newRaftLeader(cluster: TestCluster, nodes: number[], before: string): Promise<string> {
  return waitFor(
    'a new raft leader',
    async () => {
      const seen = await Promise.all(nodes.map((i) => cluster.consul.raftLeader(i)));
      return seen.every((l) => l !== '' && l !== before && l === seen[0]) ? seen[0] : undefined;
    },
    30_000,
    20,
  );
}

async function transferRaftLeader(cluster: TestCluster, from: number, to: number): Promise<void> {
  const node = cluster.driver.node(from);
  const config = (await cluster.driver.consulGet(node, '/v1/operator/raft/configuration')).body as { Servers: { ID: string; Address: string }[] };
  const id = config.Servers.find((s) => s.Address.startsWith(`${cluster.address(to)}:`))?.ID;
  if (!id) throw new Error(`no raft server at ${cluster.address(to)} in ${JSON.stringify(config.Servers)}`);
  const res = await cluster.consulCall(from, 'POST', `/v1/operator/raft/transfer-leader?id=${id}`);
  if (!res.ok) throw new Error(`raft transfer-leader to ${cluster.names[to]}: ${res.status} ${await res.text()}`);
}


const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}
