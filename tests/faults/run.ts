import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { projectRoot } from '../../sidecar/shared/package.js';
import { FaultBench, type RunResult } from './bench.js';
import { SCENARIOS } from './scenarios.js';

/**
 * `npm run faults [-- --runs N --scenario S --seed X --sync]`: runs fault scenarios repeatedly on ONE real 3-node
 * cluster whose nodes each live in their own network namespace (tests/harness/netns.ts), under a client
 * writing through HAProxy and a watcher writing directly to every node, and prints one line per scenario:
 * runs, violations, time to a new writable leader and to convergence (p50/max). Writes the table and every
 * run to bench-results/faults-<mode>.json, and the logs of each failing run under /tmp/netns-runs/.
 * Needs root (namespaces, nftables). Run `npm run build` first (`npm run faults` does).
 */

/** Run order when no --scenario is given: the priorities first. */
const ORDER = [
  'partition-leader',
  'freeze-sidecar',
  'freeze-postmaster',
  'freeze-consul',
  'freeze-all',
  'leader-consul-rpc-cut',
  'one-direction-out',
  'one-direction-in',
  'standby-cut',
  'majority-lost',
  'sync-one-acker',
  'loss-all',
  'delay-loss',
  'double-fault',
  'leader-sidecar-kill',
  'leader-sidecar-fast-restart',
  'kill-postmaster',
  'kill-consul',
  'kill-all',
  'restart-all',
  'random',
];

interface Row {
  scenario: string;
  runs: number;
  violations: number;
  writableMs: number[];
  convergedMs: number[];
  acknowledged: number;
  lost: number;
}

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const p50max = (xs: number[]) => (xs.length === 0 ? '-' : `${pct(xs, 50)}/${Math.max(...xs)}`);

async function main(): Promise<void> {
  const args = await yargs(hideBin(process.argv))
    .scriptName('npm run faults --')
    .option('runs', { type: 'number', default: 20, describe: 'runs per scenario' })
    .option('scenario', { type: 'array', string: true, choices: Object.keys(SCENARIOS), describe: 'scenarios to run, in this order (default: all)' })
    .option('seed', { type: 'number', describe: 'seed of the first run (run k uses seed + k - 1); default: from the clock, printed' })
    .option('sync', { type: 'boolean', default: false, describe: 'synchronous replication' })
    .option('subnet', { type: 'number', describe: "the lab's 10.213.<subnet>.0/24 (default: HA_TEST_NET's third octet)" })
    .strict()
    .parseAsync();
  if (!Number.isInteger(args.runs) || args.runs < 1) throw new Error('--runs takes a whole number of at least 1');
  if (args.seed !== undefined && !Number.isInteger(args.seed)) throw new Error('--seed takes a whole number');
  const seed = args.seed ?? Date.now() % 1_000_000;
  const wanted = (args.scenario as string[] | undefined) ?? ORDER;
  const names = wanted.filter((n) => args.sync || !SCENARIOS[n].syncOnly);
  console.log(`mode ${args.sync ? 'synchronous' : 'asynchronous'}, seed ${seed}, ${args.runs} runs each of: ${names.join(', ')}`);

  const bench = new FaultBench({ synchronous: args.sync, subnet: args.subnet, forwarders: names.some((n) => SCENARIOS[n].needsForwarders) });
  const rows: Row[] = [];
  const runs: RunResult[] = [];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const stop = () => void bench.stop().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await bench.start();
    let runSeed = seed;
    for (const name of names) {
      console.log(`${name}: ${SCENARIOS[name].describe}`);
      const row: Row = { scenario: name, runs: 0, violations: 0, writableMs: [], convergedMs: [], acknowledged: 0, lost: 0 };
      rows.push(row);
      for (let run = 1; run <= args.runs; run++) {
        const r = await bench.run(name, run, runSeed);
        runs.push({ ...r, lost: r.lost.slice(0, 20) });
        row.runs++;
        row.acknowledged += r.acknowledged;
        row.lost += r.lost.length;
        if (r.writableMs !== undefined) row.writableMs.push(r.writableMs);
        const converged = r.convergedMs ?? r.lateConvergedMs;
        if (converged !== undefined) row.convergedMs.push(converged);
        const lost = r.lost.length > 0 ? `, ${r.lost.length} acknowledged lost` : '';
        console.log(
          `  run ${run} (seed ${runSeed}, leader ${r.leader}): writable ${r.writableMs ?? '-'} ms, converged ${r.convergedMs ?? r.lateConvergedMs ?? '-'} ms after heal, ${r.acknowledged} acked${lost}` +
            (r.violations.length ? `\n    VIOLATION ${r.violations.join('; ')}` : ''),
        );
        runSeed++;
        if (r.violations.length > 0) {
          row.violations++;
          const dir = `/tmp/netns-runs/${stamp}-${name}-run${run}`;
          bench.saveLogs(dir);
          writeFileSync(join(dir, 'run.json'), JSON.stringify(r, null, 2));
          console.log(`    logs in ${dir}`);
          if (r.lateConvergedMs !== undefined) console.log(`    converged late, ${r.lateConvergedMs} ms after the heal`);
          // A cluster that did not converge at all would make later runs measure this failure.
          if (r.convergedMs === undefined && r.lateConvergedMs === undefined) break;
        }
      }
      if (runs.at(-1)!.convergedMs === undefined && runs.at(-1)!.lateConvergedMs === undefined) break;
    }
  } finally {
    await bench.stop();
  }

  console.log(`\nmode: ${args.sync ? 'synchronous' : 'asynchronous'}, seed ${seed}`);
  console.log('scenario                      runs  violations  writable p50/max ms  converged p50/max ms   acked  lost');
  for (const r of rows) {
    console.log(
      `${r.scenario.padEnd(29)} ${String(r.runs).padStart(4)}  ${String(r.violations).padStart(10)}  ${p50max(r.writableMs).padStart(19)}  ${p50max(r.convergedMs).padStart(20)}  ${String(r.acknowledged).padStart(6)}  ${String(r.lost).padStart(4)}`,
    );
  }
  const dir = join(projectRoot(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `faults-${args.sync ? 'sync' : 'async'}-${stamp}.json`);
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), synchronous: args.sync, seed, rows, runs }, null, 2) + '\n');
  console.log(`written to ${file}`);
  if (rows.some((r) => r.violations > 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(`faults: ${e instanceof Error ? e.message : String(e)}`);
  process.exitCode = 1;
});
