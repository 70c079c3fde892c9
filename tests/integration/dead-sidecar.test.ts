import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { livePostmasterPid } from '../../sidecar/postgres/pid-file.js';
import { TestCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/processes.js';

/**
 * A sidecar that dies (kill -9) hands over at once: its write guard kills the node's Postgres, releases the
 * lock and destroys the session (sidecar/guard/main.ts), instead of the session living until its alive
 * check's TTL and the lock then staying blocked for lock-delay. Both are set to 30 s here, so a takeover
 * within 20 s can only come from the guard's release.
 */
const SLOW_PATH_SECONDS = 30;
const FASTER_THAN_SLOW_PATH_MS = 20_000;

describe('a dead sidecar: its write guard releases the lock', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, sidecarConfig: { timings: { checkTtl: SLOW_PATH_SECONDS, lockDelay: SLOW_PATH_SECONDS } } });

  beforeAll(async () => {
    await cluster.start();
    await cluster.waitAllStreaming();
  }, 180_000);
  afterAll(() => cluster.stop(), 60_000);

  const guardLines = (i: number): { lockReleased?: boolean; session?: string }[] =>
    readFileSync(join(cluster.baseDir, cluster.names[i], 'sidecar.log'), 'utf8')
      .split('\n')
      .filter((line) => line.includes('"guard_released_session"'))
      .map((line) => JSON.parse(line) as { lockReleased?: boolean; session?: string });
  const sessionsOf = async (i: number): Promise<string[]> => {
    const res = await cluster.consulCall(0, 'GET', `/v1/session/node/${cluster.names[i]}`);
    return ((await res.json()) as { ID: string }[]).map((s) => s.ID);
  };

  test('kill -9 of the leader sidecar: another node takes writes long before the TTL and lock-delay would allow', async () => {
    const old = (await cluster.leaderIndex())!;
    const [oldSession] = await sessionsOf(old);
    await cluster.sql(old, 'create table if not exists items (id serial primary key, note text)');
    await cluster.killSidecar(old);
    const others = [0, 1, 2].filter((i) => i !== old);
    const next = await waitFor('a new leader', () => cluster.leaderIndex(others), FASTER_THAN_SLOW_PATH_MS, 50);
    await waitFor('the new leader to take a write', async () => {
      try {
        return (await cluster.sql(next, "insert into items (note) values ('after the release') returning id")).length === 1;
      } catch {
        return false;
      }
    }, FASTER_THAN_SLOW_PATH_MS, 100);

    // The guard logs once its last call (the alive check) is answered, which may be after the takeover.
    await waitFor('the old leader\'s guard to log its hand-over', () => guardLines(old).length > 0, 10_000, 50);
    expect(guardLines(old)).toEqual([expect.objectContaining({ lockReleased: true, session: oldSession })]);
    expect(livePostmasterPid(join(cluster.baseDir, cluster.names[old], 'sidecar', 'postgres'))).toBeNull();
    expect(await sessionsOf(old)).toEqual([]);

    await cluster.startSidecar(old);
    const members = await cluster.waitAllStreaming();
    expect(members.find((m) => m.name === cluster.names[old])?.pgRole).toBe('standby');
  }, 120_000);

  test('kill -9 of a standby sidecar: its guard destroys its session and releases no lock; the leader stays', async () => {
    const leader = (await cluster.leaderIndex())!;
    const standby = [0, 1, 2].find((i) => i !== leader)!;
    const before = guardLines(standby).length;
    const [session] = await sessionsOf(standby);
    await cluster.killSidecar(standby);
    await waitFor('the standby\'s guard to log its hand-over', () => guardLines(standby).length > before, FASTER_THAN_SLOW_PATH_MS, 50);
    expect(await sessionsOf(standby)).not.toContain(session);
    expect(guardLines(standby).slice(before)).toEqual([expect.objectContaining({ lockReleased: false, session })]);
    expect(await cluster.leaderIndex()).toBe(leader);

    await cluster.startSidecar(standby);
    await cluster.waitAllStreaming();
    expect(await cluster.leaderIndex()).toBe(leader);
  }, 120_000);
});
