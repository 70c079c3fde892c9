import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../cli/local/paths.js';
import { benchFailover } from './failover.js';

/** `npm run bench`: failover times on a real local cluster; prints them and writes bench-results/. */
async function main(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 10);
  const postgres = process.env.BENCH_POSTGRES === '1';
  console.log(`failover benchmark: ${runs} runs per kind, 3 nodes, postgres ${postgres ? 'on' : 'off'}`);
  const series = await benchFailover(runs, postgres);
  console.log('\nkind                 min ms  median ms  max ms');
  for (const s of series) console.log(`${s.kind.padEnd(20)} ${String(s.min).padStart(6)} ${String(s.median).padStart(10)} ${String(s.max).padStart(7)}`);
  const dir = join(projectRoot(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `failover${postgres ? '-postgres' : ''}.json`);
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), runs, postgres, series }, null, 2) + '\n');
  console.log(`\nwritten to ${file}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
