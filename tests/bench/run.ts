import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';
import { benchFailover, FAULTS, PHASES, type Fault, timelineSvg, type Quantiles } from './failover.js';
import { benchIdle, type IdleVariant } from './idle.js';
import { benchLoss } from './loss.js';
import { benchMirror, type MirrorPart } from './mirror.js';
import { benchStress, STRESS_SCENARIOS, type StressScenario } from './stress.js';

/**
 * `npm run bench`: figures from a real local cluster, printed and written to bench-results/.
 * BENCH=failover|loss|mirror|all (default all), BENCH_RUNS (runs per fault for failover, default 20; leader kills per
 * mode for loss, default 10), BENCH_SYNC=1 for failover in synchronous mode (failover-sync.json), BENCH_FAILOVER_FAULTS
 * (comma-separated, see FAULTS in failover.ts) to run some faults only; the timeline SVG, also copied to docs/, is drawn
 * from an asynchronous run of every fault with TLS only. The cluster runs TLS on every port as the test clusters do
 * (the clients too) and writes failover.json (failover-sync.json); HA_TEST_TLS=0 turns it off and writes
 * failover-plain.json (failover-sync-plain.json), to set beside them.
 * BENCH_MIRROR_FILES (default 10000,100000) for the mirror's RSS figures, BENCH_MIRROR_PARTS (default
 * latency,first,rss,catchup) to run some of the mirror's parts only. `npm run bench -- idle` (or BENCH=idle) measures the
 * idle cluster; BENCH_IDLE_VARIANTS (default 3,3:100000,5: nodes[:files]) and BENCH_IDLE_SECONDS (default 60).
 * The idle bench is not part of `all`: it measures quiet, and takes a few minutes per variant.
 * `npm run bench -- stress` (not part of `all`: about 25 minutes) runs the conditions that must cause no failover
 * (stress.ts): STRESS_SCENARIOS (default cpu-hogs,slow-disk,raft-leader-changes), STRESS_SECONDS (default 600 for
 * each of the first two), STRESS_RAFT_CHANGES (default 20), STRESS_DISK_IOPS (default 20), BENCH_SYNC=1.
 */
async function main(): Promise<void> {
  const which = process.argv[2] ?? process.env.BENCH ?? 'all';
  const synchronous = process.env.BENCH_SYNC === '1';
  // TestCluster reads HA_TEST_TLS itself; here it only names the results.
  const tls = process.env.HA_TEST_TLS !== '0';
  const dir = join(projectRoot(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const write = (name: string, data: unknown) => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), ...(data as object) }, null, 2) + '\n');
    console.log(`written to ${file}`);
  };

  if (which === 'failover' || which === 'all') {
    const runs = Number(process.env.BENCH_RUNS ?? 20);
    const faults = process.env.BENCH_FAILOVER_FAULTS?.split(',') ?? [...FAULTS];
    const unknown = faults.filter((f) => !(FAULTS as readonly string[]).includes(f));
    if (unknown.length > 0) throw new Error(`BENCH_FAILOVER_FAULTS: unknown fault ${unknown.join(', ')} (one of: ${FAULTS.join(', ')})`);
    console.log(`failover: the phases of a failover, ms after the fault; ${runs} runs per fault, ${synchronous ? 'synchronous' : 'asynchronous'} mode${tls ? '' : ', TLS off'}`);
    const series = await benchFailover(runs, synchronous, faults as Fault[]);
    const cell = (q: Quantiles | null) => (q === null ? '-' : `${q.p50}/${q.p95}/${q.max}`).padStart(19);
    const columns = [...PHASES, 'writeGap', 'lost', 'rejoin'] as const;
    console.log(`\n${'fault (p50/p95/max)'.padEnd(29)}${columns.map((c) => c.padStart(19)).join('')}`);
    for (const s of series) console.log(`${s.fault.padEnd(29)}${columns.map((c) => cell(s.summary[c])).join('')}`);
    write(`failover${synchronous ? '-sync' : ''}${tls ? '' : '-plain'}.json`, { runs, synchronous, tls, series });
    if (!synchronous && tls && faults.length === FAULTS.length) {
      const svg = join(dir, 'failover-phases.svg');
      writeFileSync(svg, timelineSvg(series, `ha-sidecar failover phases, median of ${runs} runs per fault (asynchronous mode, 3 nodes, TLS on)`));
      copyFileSync(svg, join(projectRoot(), 'docs', 'failover-phases.svg'));
      console.log(`written to ${svg} and docs/failover-phases.svg`);
    }
  }
  if (which === 'mirror' || which === 'all') {
    console.log('\nfile mirror: propagation latency, first mirror beside rsync, RSS while watching many files');
    const counts = (process.env.BENCH_MIRROR_FILES ?? '10000,100000').split(',').map(Number);
    const parts = (process.env.BENCH_MIRROR_PARTS ?? 'latency,first,rss,catchup').split(',') as MirrorPart[];
    write(`mirror${parts.length < 4 ? `-${parts.join('-')}` : ''}.json`, await benchMirror(200, counts, parts));
  }
  if (which === 'idle') {
    const variants = (process.env.BENCH_IDLE_VARIANTS ?? '3,3:100000,5').split(',').map((v): IdleVariant => {
      const [nodes, files] = v.split(':').map(Number);
      if ((nodes !== 3 && nodes !== 5) || !(files === undefined || files >= 0)) throw new Error(`BENCH_IDLE_VARIANTS: "${v}" is not 3 or 5 nodes with an optional :files`);
      return { nodes, files: files ?? 0 };
    });
    const seconds = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
    console.log(`idle: each process's CPU and RSS over ${seconds} s of an idle local cluster (Postgres, file mirror, sample manager)`);
    write('idle.json', { seconds, results: await benchIdle(variants, seconds) });
  }
  if (which === 'stress') {
    const scenarios = process.env.STRESS_SCENARIOS?.split(',') ?? [...STRESS_SCENARIOS];
    const unknown = scenarios.filter((s) => !(STRESS_SCENARIOS as readonly string[]).includes(s));
    if (unknown.length > 0) throw new Error(`STRESS_SCENARIOS: unknown scenario ${unknown.join(', ')} (one of: ${STRESS_SCENARIOS.join(', ')})`);
    const opts = {
      seconds: Number(process.env.STRESS_SECONDS ?? 600),
      raftChanges: Number(process.env.STRESS_RAFT_CHANGES ?? 20),
      diskIops: Number(process.env.STRESS_DISK_IOPS ?? 20),
      synchronous,
    };
    console.log(`stress: conditions that must cause no failover, ${synchronous ? 'synchronous' : 'asynchronous'} mode, ${JSON.stringify(opts)}`);
    const results = await benchStress(scenarios as StressScenario[], opts);
    console.log(`\n${'scenario'.padEnd(22)}${['seconds', 'leader changes', 'client errors', 'acknowledged', 'lost', 'longest gap ms', 'two leaders'].map((c) => c.padStart(15)).join('')}`);
    for (const r of results) {
      console.log(`${r.scenario.padEnd(22)}${[r.seconds, r.leaderChanges.length, r.clientErrors, r.acked, r.lost, r.longestWriteGapMs, r.twoLeaders.length].map((v) => String(v).padStart(15)).join('')}`);
    }
    write(`stress${synchronous ? '-sync' : ''}.json`, { ...opts, results });
  }
  if (which === 'loss' || which === 'all') {
    const kills = Number(process.env.BENCH_RUNS ?? 10);
    console.log(`\nacknowledged-insert loss: ${kills} leader kills (kill -9) per mode under insert load`);
    const results = await benchLoss(kills);
    write('loss.json', { kills, results: results.map((r) => ({ ...r, lost: r.lost.length })) });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
