import type { TestCluster } from './cluster.js';
import { waitFor } from './processes.js';

export interface LossResult {
  synchronous: boolean;
  kills: number;
  acknowledged: number;
  lost: number[];
}

/**
 * Kills the leader (kill -9 of its sidecar, which takes its postmaster along) `kills` times while a client
 * keeps inserting through whichever node leads, then counts the acknowledged inserts missing on the final
 * leader. Expects a table `acked (id bigint primary key)`; the cluster's synchronous mode is set first.
 */
export async function killLeadersUnderLoad(cluster: TestCluster, kills: number, synchronous: boolean): Promise<LossResult> {
  const leader0 = await waitFor('one leader', () => cluster.leaderIndex(), 30_000, 50);
  const patched = await cluster.call(leader0, 'PATCH', '/config', { synchronousMode: synchronous });
  if (patched.status !== 200) throw new Error(`PATCH /config failed: ${JSON.stringify(patched.body)}`);
  await cluster.sql(leader0, 'truncate acked');
  await cluster.waitAllStreaming(synchronous);

  const acked: number[] = [];
  let running = true;
  let nextId = 1;
  const load = (async () => {
    let target: number | undefined;
    while (running) {
      target ??= await cluster.leaderIndex();
      if (target === undefined) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const id = nextId++;
      try {
        await cluster.sql(target, 'insert into acked (id) values ($1)', [id], undefined, 1500);
        acked.push(id); // the commit was acknowledged to the client
      } catch {
        target = undefined; // refused, cut or timed out: not acknowledged; find the leader again
      }
    }
  })();
  try {
    for (let kill = 0; kill < kills; kill++) {
      const old = await waitFor('one leader', () => cluster.leaderIndex(), 30_000, 50);
      const ackedBefore = acked.length;
      await waitFor('inserts acknowledged by this leader', () => acked.length > ackedBefore + 5, 15_000, 20);
      await cluster.killSidecar(old);
      await waitFor('a new leader', () => cluster.leaderIndex(cluster.names.map((_, i) => i).filter((i) => i !== old)), 30_000, 50);
      await cluster.startSidecar(old);
      await cluster.waitAllStreaming(synchronous);
    }
  } finally {
    running = false;
    await load;
  }
  const final = await waitFor('one leader', () => cluster.leaderIndex(), 30_000, 50);
  const present = new Set((await cluster.sql<{ id: string }>(final, 'select id from acked')).map((r) => Number(r.id)));
  return { synchronous, kills, acknowledged: acked.length, lost: acked.filter((id) => !present.has(id)) };
}
