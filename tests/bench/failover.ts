import { performance } from 'node:perf_hooks';
import { TestCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/processes.js';

export type FailoverKind = 'kill -9 sidecar' | 'consul agent stop' | 'graceful stop';

export interface Series {
  kind: FailoverKind;
  runs: number[];
  min: number;
  median: number;
  max: number;
}

export function summarize(kind: FailoverKind, runs: number[]): Series {
  const sorted = [...runs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { kind, runs, min: sorted[0], median, max: sorted[sorted.length - 1] };
}

/**
 * Time from the fault to "exactly one other node answers 200 on /leader", `runs` times per kind, on a real
 * 3-node cluster (Consul servers + sidecars, election only).
 */
export async function benchFailover(runs: number, postgres = false): Promise<Series[]> {
  const cluster = new TestCluster({ size: 3, postgres });
  const results: Series[] = [];
  try {
    await cluster.start();
    const kinds: FailoverKind[] = ['kill -9 sidecar', 'consul agent stop', 'graceful stop'];
    for (const kind of kinds) {
      const times: number[] = [];
      for (let run = 0; run < runs; run++) {
        // With Postgres, a standby that has not cloned yet is rightly unfit: fault only a settled cluster.
        if (postgres) await cluster.waitAllStreaming();
        else await cluster.waitAllRunning();
        const old = await waitFor('one leader', () => cluster.leaderIndex(), 30_000);
        const others = cluster.names.map((_, i) => i).filter((i) => i !== old);
        const t0 = performance.now();
        if (kind === 'kill -9 sidecar') await cluster.killSidecar(old);
        else if (kind === 'consul agent stop') await cluster.consul.stopNode(old, 'kill');
        else await cluster.stopSidecar(old);
        await waitFor('a new leader', () => cluster.leaderIndex(others).then((i) => i !== undefined), 60_000, 20);
        times.push(Math.round(performance.now() - t0));
        process.stdout.write(`  ${kind} #${run + 1}: ${times.at(-1)} ms\n`);
        if (kind === 'consul agent stop') {
          await cluster.consul.startNode(old);
          await cluster.consul.waitForHealthy();
        } else {
          await cluster.startSidecar(old);
        }
      }
      results.push(summarize(kind, times));
    }
  } finally {
    await cluster.stop();
  }
  return results;
}
