import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConsulStore } from '../../sidecar/consul/store.js';
import { ConsulCluster } from '../harness/consul.js';
import { ProcessGroup, waitFor } from '../harness/processes.js';

/** Raw Consul HTTP calls: this test checks Consul itself, below ha-sidecar's own adapter. */
async function consul(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(base + path, {
    method,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

describe('a real 3-server Consul cluster', () => {
  const processes = new ProcessGroup();
  const baseDir = mkdtempSync(join(tmpdir(), 'ha-consul-'));
  const cluster = new ConsulCluster({ size: 3, baseDir, processes });

  beforeAll(() => cluster.start(), 90_000);
  afterAll(async () => {
    await processes.stopAll();
    rmSync(baseDir, { recursive: true, force: true });
  });

  test('elects one raft leader that every server agrees on', async () => {
    const leader = await cluster.waitForLeader();
    expect(cluster.addresses.map((a) => `${a}:8300`)).toContain(leader);
    const peers = (await consul(cluster.httpUrl(1), 'GET', '/v1/status/peers')) as string[];
    expect(peers.sort()).toEqual(cluster.addresses.map((a) => `${a}:8300`).sort());
  });

  test("the adapter's watch of failed members blocks while all are alive and wakes with the node whose agent died", async () => {
    const store = new ConsulStore({ url: cluster.httpUrl(0), cluster: 'test', timeoutMs: 2_000 }, 'n1');
    const cancel = new EventEmitter();
    await waitFor('every serfHealth passing', async () => (await store.watchFailedNodes(0, 1, cancel)).nodes.length === 0, 30_000, 250);
    const { index } = await store.watchFailedNodes(0, 1, cancel);
    const t0 = performance.now();
    const watch = store.watchFailedNodes(index, 60, cancel);
    await cluster.stopNode(2, 'kill');
    const woke = await watch;
    console.log(`the watch woke ${Math.round(performance.now() - t0)} ms after the kill of n3's agent`);
    expect(woke.nodes).toEqual([cluster.names[2]]);
    expect(woke.index).toBeGreaterThan(index);
    await cluster.startNode(2);
    await cluster.waitForHealthy();
    await waitFor('n3 alive again in the watch', async () => (await store.watchFailedNodes(0, 1, cancel)).nodes.length === 0, 30_000, 250);
    // A stopping sidecar cancels its pending read.
    const pending = store.watchFailedNodes((await store.watchFailedNodes(0, 1, cancel)).index, 60, cancel);
    cancel.emit('cancel');
    await expect(pending).rejects.toThrow();
  }, 120_000);

  test('a session-bound lock is refused to a second session and passes to it when the holder agent dies', async () => {
    const key = '/v1/kv/ha-sidecar/test/leader';
    // Each session lives on its own node's agent and is bound to that node's serfHealth (Consul's default).
    const mkSession = async (i: number) =>
      ((await consul(cluster.httpUrl(i), 'PUT', '/v1/session/create', { Name: `s${i}`, LockDelay: '1s' })) as { ID: string }).ID;
    const holder = await mkSession(0);
    const waiter = await mkSession(1);

    expect(await consul(cluster.httpUrl(0), 'PUT', `${key}?acquire=${holder}`, 'n1')).toBe(true);
    expect(await consul(cluster.httpUrl(1), 'PUT', `${key}?acquire=${waiter}`, 'n2')).toBe(false);

    await cluster.stopNode(0, 'kill');
    // serfHealth of n1 turns critical once gossip declares it dead; that deletes its session and frees the key.
    await waitFor('the lock to pass to the second session', async () =>
      consul(cluster.httpUrl(1), 'PUT', `${key}?acquire=${waiter}`, 'n2').then((ok) => ok === true),
      30_000, 250);
    const [entry] = (await consul(cluster.httpUrl(2), 'GET', `${key}?consistent`)) as { Session: string }[];
    expect(entry.Session).toBe(waiter);
  }, 60_000);

  test('the harness fails at once with a clear message when a port is taken or the binary is missing', async () => {
    const second = new ConsulCluster({ size: 3, baseDir, processes });
    await expect(second.start()).rejects.toThrow(/127\.0\.\d+\.\d+:8\d+ \(consul .*\) is already in use/);
    process.env.CONSUL_BIN = join(baseDir, 'no-such-consul');
    try {
      expect(() => new ConsulCluster({ size: 1, baseDir, processes })).toThrow(/consul binary not found .*run `npm run setup`/);
    } finally {
      delete process.env.CONSUL_BIN;
    }
  });

  test('the harness stops every process it started', async () => {
    await cluster.startNode(0);
    await cluster.waitForLeader();
    const pids = () => execFileSync('pgrep', ['-f', baseDir]).toString().trim().split('\n').filter(Boolean);
    expect(pids()).toHaveLength(3);
    await processes.stopAll();
    expect(() => pids()).toThrow(); // pgrep exits 1 when nothing matches
  }, 60_000);
});
