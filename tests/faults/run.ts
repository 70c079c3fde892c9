import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { projectRoot } from '../../cli/local/paths.js';
import { LeaderWatcher, TestCluster } from '../harness/cluster.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { WriteWatcher } from '../harness/watchers.js';
import { WritingClient } from '../harness/writer.js';

/**
 * `npm run faults [-- --runs N --scenario S --sync]`: runs fault scenarios repeatedly on ONE real 3-node cluster
 * (Consul, Postgres, sidecars, HAProxy), under a client writing through HAProxy and with the double-leader and
 * double-writer watchers running throughout, and prints one line per scenario: runs, violations, time to a
 * writable leader and to convergence (p50/max). Writes the table to bench-results/faults.json.
 */

interface Scenario {
  describe: string;
  /** Injects the fault into the cluster whose leader is `leader`; resolves once the fault is in place. */
  inject(cluster: TestCluster, leader: number): Promise<void>;
}

const SCENARIOS: Record<string, Scenario> = {
  'leader-sidecar-fast-restart': {
    describe: "kill -9 of the leader's sidecar, restarted at once (a supervisor's Restart=)",
    async inject(cluster, leader) {
      await cluster.killSidecar(leader);
      await cluster.startSidecar(leader);
    },
  },
  'leader-consul-fast-restart': {
    describe: "kill -9 of the leader's Consul agent, restarted at once",
    async inject(cluster, leader) {
      await cluster.consul.stopNode(leader, 'kill');
      await cluster.consul.startNode(leader);
    },
  },
  'leader-sidecar-kill': {
    describe: "kill -9 of the leader's sidecar, restarted after a new leader took over",
    async inject(cluster, leader) {
      await cluster.killSidecar(leader);
      await waitFor('a new leader', () => cluster.leaderIndex(cluster.names.map((_, i) => i).filter((i) => i !== leader)), 30_000, 50);
      await cluster.startSidecar(leader);
    },
  },
};

const CONVERGE_MS = 60_000;

interface Row {
  scenario: string;
  runs: number;
  failures: string[];
  doubleLeaderSweeps: number;
  doubleWriterSweeps: number;
  writableLeaderMs: number[];
  convergedMs: number[];
  acknowledged: number;
  lost: number;
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

async function runScenario(cluster: TestCluster, name: string, runs: number, writer: WritingClient): Promise<Row> {
  const scenario = SCENARIOS[name];
  const row: Row = { scenario: name, runs, failures: [], doubleLeaderSweeps: 0, doubleWriterSweeps: 0, writableLeaderMs: [], convergedMs: [], acknowledged: 0, lost: 0 };
  const leaders = new LeaderWatcher(cluster);
  const writers = new WriteWatcher(cluster);
  try {
    for (let run = 1; run <= runs; run++) {
      const leader = await waitFor('one leader', () => cluster.leaderIndex(), CONVERGE_MS, 50);
      await cluster.waitAllStreaming(false, CONVERGE_MS);
      await cluster.consul.waitForHealthy(CONVERGE_MS);
      const acked = writer.acked.length;
      const t0 = performance.now();
      try {
        await scenario.inject(cluster, leader);
        await waitFor('the client to write again', () => writer.acked.length > acked + 3, CONVERGE_MS, 20);
        row.writableLeaderMs.push(Math.round(performance.now() - t0));
        await cluster.waitAllStreaming(false, CONVERGE_MS);
        row.convergedMs.push(Math.round(performance.now() - t0));
        process.stdout.write(`  ${name} run ${run} (fault at ${t0.toFixed(0)} ms on ${cluster.names[leader]}): writable after ${row.writableLeaderMs.at(-1)} ms, converged after ${row.convergedMs.at(-1)} ms\n`);
      } catch (e) {
        row.failures.push(`run ${run}: ${e instanceof Error ? e.message : String(e)}`);
        process.stdout.write(`  ${name} run ${run}: FAILED ${row.failures.at(-1)}\n`);
        break; // the cluster is in an unknown state: later runs would measure the previous failure
      }
    }
  } finally {
    await leaders.stop();
    await writers.stop();
  }
  row.doubleLeaderSweeps = leaders.overlaps.length;
  row.doubleWriterSweeps = writers.doubleWriters.length;
  return row;
}

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .scriptName('npm run faults --')
    .option('runs', { type: 'number', default: 20, describe: 'runs per scenario' })
    .option('scenario', { type: 'array', string: true, choices: Object.keys(SCENARIOS), describe: 'scenarios to run (default: all)' })
    .option('sync', { type: 'boolean', default: false, describe: 'synchronous replication' })
    .strict()
    .parseAsync();
  if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error('--runs takes a whole number of at least 1');
  const names = (args.scenario as string[] | undefined) ?? Object.keys(SCENARIOS);

  const cluster = new TestCluster({ size: 3, postgres: true });
  const haproxy = new TestHaproxy(cluster);
  let writer: WritingClient | undefined;
  const rows: Row[] = [];
  try {
    await cluster.start();
    await cluster.waitAllStreaming();
    const leader = (await cluster.leaderIndex())!;
    await cluster.sql(leader, 'create table acked (id bigint primary key)');
    await cluster.sql(leader, 'create table probe (node text, at timestamptz default now())');
    await cluster.call(leader, 'PATCH', '/config', { synchronousMode: args.sync });
    haproxy.start();
    writer = new WritingClient(haproxy.postgres);
    for (const name of names) {
      console.log(`${name}: ${SCENARIOS[name].describe}, ${args.runs} runs`);
      const ackedBefore = writer.acked.length;
      const row = await runScenario(cluster, name, args.runs, writer);
      const final = await waitFor('one leader', () => cluster.leaderIndex(), CONVERGE_MS, 50);
      // Taken before the query: an id acknowledged after the query's snapshot would wrongly count as lost.
      const acked = writer.acked.slice(ackedBefore);
      const present = new Set((await cluster.sql<{ id: string }>(final, 'select id from acked')).map((r) => Number(r.id)));
      row.acknowledged = acked.length;
      const lostIds = acked.filter((id) => !present.has(id));
      row.lost = lostIds.length;
      for (const id of lostIds) {
        const k = writer.acked.indexOf(id);
        console.log(`  LOST id ${id}: acknowledged by ${writer.ackedAt[k].server} at ${writer.ackedAt[k].at.toFixed(0)} ms; next ack ${writer.ackedAt[k + 1]?.server} at ${writer.ackedAt[k + 1]?.at.toFixed(0)} ms`);
      }
      rows.push(row);
      if (row.failures.length > 0) break;
    }
  } finally {
    await writer?.stop();
    await cluster.stop();
  }

  console.log(`\nmode: ${args.sync ? 'synchronous' : 'asynchronous'}`);
  console.log('scenario                      runs  failed  2-leader  2-writer  writable p50/max ms  converged p50/max ms  acked  lost');
  for (const r of rows) {
    console.log(
      `${r.scenario.padEnd(29)} ${String(r.runs).padStart(4)}  ${String(r.failures.length).padStart(6)}  ${String(r.doubleLeaderSweeps).padStart(8)}  ${String(r.doubleWriterSweeps).padStart(8)}  ` +
        `${`${pct(r.writableLeaderMs, 50)}/${Math.max(...r.writableLeaderMs)}`.padStart(19)}  ${`${pct(r.convergedMs, 50)}/${Math.max(...r.convergedMs)}`.padStart(20)}  ${String(r.acknowledged).padStart(5)}  ${String(r.lost).padStart(4)}`,
    );
  }
  const dir = join(projectRoot(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `faults-${args.sync ? 'sync' : 'async'}.json`);
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), synchronous: args.sync, rows }, null, 2) + '\n');
  console.log(`written to ${file}`);
  if (rows.some((r) => r.failures.length > 0 || r.doubleLeaderSweeps > 0 || r.doubleWriterSweeps > 0 || (args.sync && r.lost > 0))) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(`faults: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
