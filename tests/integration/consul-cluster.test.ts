import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
