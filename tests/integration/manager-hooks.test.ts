import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { TestCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/processes.js';
import { processAlive } from '../../sidecar/shared/process.js';

/** The sidecars' default timings (checkTtl 5 s, lease 3 s, lockDelay 5 s). */
const LEASE_MS = 3000;
const HOOK_TIMEOUT_S = 2;
const RETRY_S = 1;

/**
 * One script for every hook: appends `<ms> <node> <role> <term> <outcome>` to hooks.log. A file
 * `hang-<node>` makes the next leader hook of that node hang (once); `fail-<node>` makes its leader hooks
 * fail while the file exists.
 */
const dir = mkdtempSync(join(tmpdir(), 'ha-hooks-it-'));
chmodSync(dir, 0o755);
const hookLog = join(dir, 'hooks.log');
const script = join(dir, 'hook.sh');
writeFileSync(
  script,
  `#!/bin/sh
d=${dir}
if [ "$1" = leader ] && [ -e "$d/hang-$4" ]; then rm -f "$d/hang-$4"; echo "$(date +%s%3N) $4 $1 $2 hang" >> "$d/hooks.log"; echo $$ > "$d/hung.pid"; exec sleep 600; fi
if [ "$1" = leader ] && [ -e "$d/fail-$4" ]; then echo "$(date +%s%3N) $4 $1 $2 fail" >> "$d/hooks.log"; echo "the manager refuses to start" >&2; exit 1; fi
[ "$HA_ROLE $HA_TERM $HA_NODE" = "$1 $2 $4" ] || { echo "environment and arguments differ" >&2; exit 2; }
echo "$(date +%s%3N) $4 $1 $2 ok" >> "$d/hooks.log"
`,
  { mode: 0o755 },
);

interface HookLine {
  at: number;
  node: string;
  event: string;
  term: number;
  outcome: string;
}

const hookLines = (): HookLine[] =>
  existsSync(hookLog)
    ? readFileSync(hookLog, 'utf8')
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [at, node, event, term, outcome] = l.split(' ');
          return { at: Number(at), node, event, term: Number(term), outcome };
        })
    : [];
const short = (lines: HookLine[]) => lines.map((l) => `${l.node} ${l.event} ${l.term} ${l.outcome}`);

describe('manager role hooks driven by the reconcile loop (real Consul, 3 sidecars)', () => {
  const cluster = new TestCluster({
    size: 3,
    sidecarConfig: {
      manager: {
        hooks: { leader: [script], standby: [script], stopping: [script] },
        hookTimeout: HOOK_TIMEOUT_S,
        leaderHookRetryDelay: RETRY_S,
        leaderHookMaxFailures: 2,
      },
    },
  });

  beforeAll(() => cluster.start(), 120_000);
  afterAll(async () => {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const term = async (i: number): Promise<number> => (await cluster.call(i, 'GET', '/cluster')).body.term as number;
  /** The hook lines after the first `from`, waiting until `expected` (in any order) are all there. */
  const waitLines = (from: number, expected: string[], timeoutMs = 30_000) =>
    waitFor(`hook lines ${expected.join(', ')}`, () => {
      const got = hookLines().slice(from);
      return expected.every((e) => short(got).includes(e)) ? got : undefined;
    }, timeoutMs, 50);

  test('start: the leader hook on n1 with term 1, the standby hook on n2 and n3; /leader waits for the leader hook', async () => {
    const got = await waitLines(0, ['n1 leader 1 ok', 'n2 standby 1 ok', 'n3 standby 1 ok']);
    expect(short(got).sort()).toEqual(['n1 leader 1 ok', 'n2 standby 1 ok', 'n3 standby 1 ok']);
    expect(await cluster.leaderIndex()).toBe(0);
    await waitFor('the MANAGER states in /cluster', async () => {
      const members = (await cluster.call(1, 'GET', '/cluster')).body.members as { name: string; manager?: { state: string } }[];
      return members.map((m) => `${m.name} ${m.manager?.state}`).join() === 'n1 active,n2 passive,n3 passive';
    }, 10_000);
    await waitFor('a passing manager check on every node', async () => {
      const checks = (await (await cluster.consulCall(0, 'GET', '/v1/health/checks/ha-sidecar')).json()) as { Name: string; Status: string }[];
      return checks.filter((c) => c.Name === 'manager' && c.Status === 'passing').length === 3;
    }, 10_000);
  });

  test('failover after kill -9 of the leader: the new leader runs leader with term 2, the other standby with term 2', async () => {
    const from = hookLines().length;
    await cluster.killSidecar(0);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([1, 2]), 30_000, 50);
    const other = 3 - next;
    await waitLines(from, [`${cluster.names[next]} leader 2 ok`, `${cluster.names[other]} standby 2 ok`]);
    await cluster.startSidecar(0);
    const got = await waitLines(from, ['n1 standby 2 ok']);
    expect(short(got).sort()).toEqual([`${cluster.names[next]} leader 2 ok`, `${cluster.names[other]} standby 2 ok`, 'n1 standby 2 ok'].sort());
  }, 60_000);

  test('switchover: the old leader runs standby before the target runs leader; then everyone is standby of the new term', async () => {
    await cluster.waitAllRunning();
    const old = (await cluster.leaderIndex())!;
    const target = [0, 1, 2].find((i) => i !== old)!;
    const third = 3 - old - target;
    const t = await term(old);
    const from = hookLines().length;
    expect((await cluster.call(old, 'POST', '/switchover', { to: cluster.names[target] })).status).toBe(200);
    const [o, n, d] = [cluster.names[old], cluster.names[target], cluster.names[third]];
    const got = short(await waitLines(from, [`${o} standby ${t} ok`, `${n} leader ${t + 1} ok`, `${o} standby ${t + 1} ok`, `${d} standby ${t + 1} ok`]));
    expect(got.indexOf(`${o} standby ${t} ok`)).toBeLessThan(got.indexOf(`${n} leader ${t + 1} ok`));
    await waitFor('the target to lead', () => cluster.leaderIndex().then((i) => i === target), 10_000, 50);
  }, 40_000);

  test('a leader cut off from Consul runs its standby hook within the lease, before another node can lead', async () => {
    const old = (await cluster.leaderIndex())!;
    const t = await term(old);
    const from = hookLines().length;
    const t0 = Date.now();
    await cluster.consul.stopNode(old, 'kill');
    const [stepDown] = (await waitLines(from, [`${cluster.names[old]} standby ${t} ok`], LEASE_MS + 3000)).filter((l) => l.node === cluster.names[old]);
    console.log(`cut-off leader: standby hook done ${stepDown.at - t0} ms after its Consul agent died`);
    expect(stepDown.at - t0).toBeLessThan(LEASE_MS + 1000);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 30_000, 50);
    const [promoted] = (await waitLines(from, [`${cluster.names[next]} leader ${t + 1} ok`])).filter((l) => l.event === 'leader');
    expect(promoted.at).toBeGreaterThan(stepDown.at);
    await cluster.consul.startNode(old);
    await cluster.consul.waitForHealthy();
    await waitLines(from, [`${cluster.names[old]} standby ${t + 1} ok`]);
  }, 90_000);

  test('a leader hook that hangs is killed at its timeout and retried; the leader keeps its lease meanwhile', async () => {
    await cluster.waitAllRunning();
    const old = (await cluster.leaderIndex())!;
    const target = [0, 1, 2].find((i) => i !== old)!;
    const t = await term(old);
    writeFileSync(join(dir, `hang-${cluster.names[target]}`), '');
    const from = hookLines().length;
    const t0 = performance.now();
    // The call answers only once the target serves writes, i.e. after the hung hook: watch meanwhile.
    const switched = cluster.call(old, 'POST', '/switchover', { to: cluster.names[target] });
    await waitLines(from, [`${cluster.names[target]} leader ${t + 1} hang`]);
    const hung = Number(readFileSync(join(dir, 'hung.pid'), 'utf8'));
    // While the hook hangs the node leads with its lock and lease (status says why /leader is 503).
    const node = await waitFor('the status line to say why', async () => {
      const n = (await cluster.call(target, 'GET', '/cluster')).body.node as { role: string; status: string };
      return n.status.includes('the leader hook is running') ? n : undefined;
    }, HOOK_TIMEOUT_S * 1000, 50);
    expect(node.role).toBe('leader');
    expect(await cluster.leaderStatus(target)).toBe(503);
    await waitFor('the hung hook to be killed', () => !processAlive(hung), HOOK_TIMEOUT_S * 1000 + 4000, 50);
    const killedMs = performance.now() - t0;
    await waitLines(from, [`${cluster.names[target]} leader ${t + 1} ok`]);
    await waitFor('the target to answer 200 on /leader', () => cluster.leaderIndex().then((i) => i === target), 10_000, 50);
    expect((await switched).status).toBe(200);
    console.log(`hung leader hook killed after ${Math.round(killedMs)} ms, leader ready after ${Math.round(performance.now() - t0)} ms`);
    expect(killedMs).toBeGreaterThan(HOOK_TIMEOUT_S * 1000);
    expect(await term(target)).toBe(t + 1); // no step-down, no new election
    const history = (await cluster.call(target, 'GET', '/history')).body as unknown as { term: number }[];
    expect(history.at(-1)?.term).toBe(t + 1);
  }, 60_000);

  test('a leader whose leader hook always fails hands over after leaderHookMaxFailures (2)', async () => {
    await cluster.waitAllRunning();
    const old = (await cluster.leaderIndex())!;
    const target = [0, 1, 2].find((i) => i !== old)!;
    const name = cluster.names[target];
    const t = await term(old);
    writeFileSync(join(dir, `fail-${name}`), '');
    try {
      const from = hookLines().length;
      // The target takes the lock, fails twice, hands over: to the third node (200) or back to the old leader (502).
      const switched = await cluster.call(old, 'POST', '/switchover', { to: name });
      if (switched.status !== 200) expect(switched).toMatchObject({ status: 502, body: { error: 'switchover_failed' } });
      const next = await waitFor('another node to lead', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== target)), 30_000, 50);
      const got = short(hookLines().slice(from));
      expect(got.filter((l) => l === `${name} leader ${t + 1} fail`)).toHaveLength(2);
      expect(got).toContain(`${cluster.names[next]} leader ${t + 2} ok`);
      expect(got.indexOf(`${name} standby ${t + 1} ok`)).toBeLessThan(got.indexOf(`${cluster.names[next]} leader ${t + 2} ok`));
      const metrics = await (await cluster.fetchApi(`${cluster.apiUrl(target)}/metrics`)).text();
      expect(metrics).toMatch(/ha_sidecar_manager_hook_runs_total\{hook="leader",outcome="failed",node="n\d"\} 2/);
      const history = (await cluster.call(next, 'GET', '/history')).body as unknown as { kind: string; previous: string; term: number }[];
      expect(history.at(-1)).toMatchObject({ kind: 'switchover', previous: name, term: t + 2 });
    } finally {
      rmSync(join(dir, `fail-${name}`), { force: true });
    }
  }, 60_000);

  test('graceful stop: the leader runs stopping before the next leader runs leader; a stopped standby runs stopping', async () => {
    await cluster.waitAllRunning();
    const old = (await cluster.leaderIndex())!;
    const t = await term(old);
    const from = hookLines().length;
    await cluster.stopSidecar(old);
    const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)), 10_000, 50);
    const got = short(await waitLines(from, [`${cluster.names[old]} stopping ${t} ok`, `${cluster.names[next]} leader ${t + 1} ok`]));
    expect(got.indexOf(`${cluster.names[old]} stopping ${t} ok`)).toBeLessThan(got.indexOf(`${cluster.names[next]} leader ${t + 1} ok`));
    const standby = 3 - old - next;
    await waitLines(from, [`${cluster.names[standby]} standby ${t + 1} ok`]);
    await cluster.stopSidecar(standby);
    await waitLines(from, [`${cluster.names[standby]} stopping ${t + 1} ok`], 5_000);
    await cluster.startSidecar(old);
    await cluster.startSidecar(standby);
    await waitLines(from, [`${cluster.names[old]} standby ${t + 1} ok`, `${cluster.names[standby]} standby ${t + 1} ok`]);
  }, 60_000);
});
