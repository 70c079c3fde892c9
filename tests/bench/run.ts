import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';
import { benchFailover } from './failover.js';
import { benchIdle, type IdleVariant } from './idle.js';
import { benchLoss } from './loss.js';
import { benchMirror, type MirrorPart } from './mirror.js';

/**
 * `npm run bench`: figures from a real local cluster, printed and written to bench-results/.
 * BENCH=failover|loss|mirror|all (default all), BENCH_RUNS (default 10), BENCH_POSTGRES=1 for failover with Postgres,
 * BENCH_MIRROR_FILES (default 10000,100000) for the mirror's RSS figures, BENCH_MIRROR_PARTS (default
 * latency,first,rss,catchup) to run some of the mirror's parts only. `npm run bench -- idle` (or BENCH=idle) measures the
 * idle cluster; BENCH_IDLE_VARIANTS (default 3,3:100000,5: nodes[:files]) and BENCH_IDLE_SECONDS (default 60).
 * The idle bench is not part of `all`: it measures quiet, and takes a few minutes per variant.
 */
async function main(): Promise<void> {
  const which = process.argv[2] ?? process.env.BENCH ?? 'all';
  const runs = Number(process.env.BENCH_RUNS ?? 10);
  const postgres = process.env.BENCH_POSTGRES === '1';
  const dir = join(projectRoot(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const write = (name: string, data: unknown) => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), ...(data as object) }, null, 2) + '\n');
    console.log(`written to ${file}`);
  };

  if (which === 'failover' || which === 'all') {
    console.log(`failover: time from the fault to one new leader answering 200 on /leader; ${runs} runs per kind, postgres ${postgres ? 'on' : 'off'}`);
    const series = await benchFailover(runs, postgres);
    console.log('\nkind                 min ms  median ms  max ms');
    for (const s of series) console.log(`${s.kind.padEnd(20)} ${String(s.min).padStart(6)} ${String(s.median).padStart(10)} ${String(s.max).padStart(7)}`);
    write(`failover${postgres ? '-postgres' : ''}.json`, { runs, postgres, series });
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
  if (which === 'loss' || which === 'all') {
    console.log(`\nacknowledged-insert loss: ${runs} leader kills (kill -9) per mode under insert load`);
    const results = await benchLoss(runs);
    write('loss.json', { kills: runs, results: results.map((r) => ({ ...r, lost: r.lost.length })) });
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
