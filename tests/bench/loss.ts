import type { LossResult } from '../harness/load.js';
import { killLeadersUnderLoad } from '../harness/load.js';
import { TestCluster } from '../harness/cluster.js';

/** Acknowledged inserts lost over `kills` leader kills, in asynchronous and in synchronous mode. */
export async function benchLoss(kills: number): Promise<LossResult[]> {
  const cluster = new TestCluster({ size: 3, postgres: true });
  try {
    await cluster.start();
    await cluster.waitAllStreaming();
    const leader = (await cluster.leaderIndex())!;
    await cluster.sql(leader, 'create table acked (id bigint primary key)');
    const results: LossResult[] = [];
    for (const synchronous of [false, true]) {
      const r = await killLeadersUnderLoad(cluster, kills, synchronous);
      process.stdout.write(`  ${synchronous ? 'synchronous' : 'asynchronous'}: ${r.acknowledged} acknowledged, ${r.lost.length} lost\n`);
      results.push(r);
    }
    return results;
  } finally {
    await cluster.stop();
  }
}
