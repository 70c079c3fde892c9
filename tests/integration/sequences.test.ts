import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestCluster } from '../harness/cluster.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { WritingClient } from '../harness/writer.js';

/**
 * Issue 8: operations in sequence on one cluster, the way operators run them, under a client writing through
 * the real HAProxy the whole time. After every step, within 30 s, exactly one node answers 200 on /leader and
 * every other node 200 on /replica. In synchronous mode no acknowledged row may be missing at the end.
 */
const CONVERGE_MS = 30_000;

for (const synchronous of [false, true]) {
  describe(`operations in sequence under writes (${synchronous ? 'synchronous' : 'asynchronous'} mode)`, () => {
    const cluster = new TestCluster({ size: 3, postgres: true });
    const haproxy = new TestHaproxy(cluster);
    let writer: WritingClient | undefined;
    const timings: string[] = [];

    beforeAll(async () => {
      await cluster.start();
      await cluster.waitAllStreaming();
      const leader = (await cluster.leaderIndex())!;
      await cluster.sql(leader, 'create table acked (id bigint primary key)');
      expect((await cluster.call(leader, 'PATCH', '/config', { synchronousMode: synchronous })).status).toBe(200);
      await cluster.waitAllStreaming(synchronous);
      haproxy.start();
      writer = new WritingClient(haproxy.postgres);
      await waitFor('the writing client to get acknowledgements', () => writer!.acked.length > 20, 20_000, 50);
    }, 180_000);

    afterAll(async () => {
      await writer?.stop();
      console.log(`${synchronous ? 'sync' : 'async'} mode, time to convergence per step:\n${timings.join('\n')}`);
      await cluster.stop();
    }, 90_000);

    /** Exactly one node answers 200 on /leader and every other running one 200 on /replica; returns the leader. */
    const converged = async (down: number[]): Promise<number | undefined> => {
      const running = cluster.names.map((_, i) => i).filter((i) => !down.includes(i));
      const leader = await cluster.leaderIndex(running);
      if (leader === undefined) return undefined;
      const replicas = await Promise.all(
        running.map((i) => (i === leader ? Promise.resolve(200) : cluster.fetchApi(`${cluster.apiUrl(i)}/replica`, { signal: AbortSignal.timeout(500) }).then((r) => r.status, () => 0))),
      );
      return replicas.every((s) => s === 200) ? leader : undefined;
    };

    /** Runs one step, then waits for convergence and for the client to write again; records the time. */
    const step = async (name: string, fault: () => Promise<void>, down: number[] = []): Promise<number> => {
      const ackedBefore = writer!.acked.length;
      const t0 = performance.now();
      await fault();
      const leader = await waitFor(`convergence after "${name}"`, () => converged(down), CONVERGE_MS, 100);
      const convergedMs = Math.round(performance.now() - t0);
      await waitFor(`the client to write again after "${name}"`, () => writer!.acked.length > ackedBefore + 5, CONVERGE_MS, 50);
      timings.push(`  ${name}: converged in ${convergedMs} ms, longest write gap so far ${Math.round(writer!.longestGapMs)} ms`);
      return leader;
    };

    /** As an operator does: once `hactl cluster status` shows every standby streaming, switch over. */
    const switchover = async (to: number) => {
      await cluster.waitAllStreaming(synchronous, CONVERGE_MS);
      const leader = (await cluster.leaderIndex())!;
      const res = await cluster.call(leader, 'POST', '/switchover', { to: cluster.names[to] });
      expect(res).toMatchObject({ status: 200, body: { to: cluster.names[to] } });
    };

    const postmasterPid = (i: number): number =>
      Number(readFileSync(join(cluster.baseDir, cluster.names[i], 'sidecar', 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);

    test('failover, rejoin, switchovers back and forth, standby and postmaster kills, fast restarts, rolling restart', async () => {
      const first = (await cluster.leaderIndex())!;
      const second = await step('kill -9 of the leader sidecar', () => cluster.killSidecar(first), [first]);
      expect(second).not.toBe(first);
      await step('the old leader rejoins', () => cluster.startSidecar(first));
      expect(await step('switchover back to the old leader', () => switchover(first))).toBe(first);
      expect(await step('switchover again', () => switchover(second))).toBe(second);
      const third = [0, 1, 2].find((i) => i !== first && i !== second)!;
      expect(await step('switchover to the third node', () => switchover(third))).toBe(third);

      await step('kill -9 of a standby sidecar and its restart at once', async () => {
        await cluster.killSidecar(first);
        await cluster.startSidecar(first);
      });
      await step('kill -9 of the leader sidecar and its restart at once (a supervisor)', async () => {
        const leader = (await cluster.leaderIndex())!;
        await cluster.killSidecar(leader);
        await cluster.startSidecar(leader);
      });
      await step("kill -9 of the leader's postmaster alone", async () => {
        const leader = (await cluster.leaderIndex())!;
        const pid = postmasterPid(leader);
        process.kill(pid, 'SIGKILL');
        await waitFor('the leader to start a new postmaster', () => postmasterPid(leader) !== pid, CONVERGE_MS, 50);
      });
      for (const i of [0, 1, 2]) {
        await step(`graceful restart of ${cluster.names[i]}`, async () => {
          await cluster.stopSidecar(i);
          await cluster.startSidecar(i);
        });
      }

      await writer!.stop();
      const leader = await waitFor('one leader', () => cluster.leaderIndex(), CONVERGE_MS, 50);
      const present = new Set((await cluster.sql<{ id: string }>(leader, 'select id from acked')).map((r) => Number(r.id)));
      const lost = writer!.acked.filter((id) => !present.has(id));
      console.log(`${synchronous ? 'sync' : 'async'} mode: ${writer!.acked.length} acknowledged, ${lost.length} lost, longest write gap ${Math.round(writer!.longestGapMs)} ms`);
      if (synchronous) expect(lost).toEqual([]);
    }, 900_000);
  });
}
