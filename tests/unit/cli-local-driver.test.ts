import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterDriver, lastingFailure, staleRecord, unsettledManager, type DriverNode, type Part } from '../../cli/local/driver.js';

/**
 * The shared cluster driver (cli/local/driver.ts) without processes: how it names and places the nodes, and
 * the configuration it renders. Starting and waiting are covered with real Consul and sidecars by the
 * integration tests that use it (local-cluster, consul-cluster, election, ...).
 */

const base = mkdtempSync(join(tmpdir(), 'ha-driver-unit-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function driver(opts: { size?: number; secrets?: boolean } = {}) {
  const spawned: { node: string; part: Part; argv: string[] }[] = [];
  const d = new ClusterDriver({
    size: opts.size ?? 3,
    addressOf: (i) => `127.0.9.${21 + i}`,
    filesOf: (name) => ({
      dir: join(base, name),
      consulConfigDir: join(base, name, 'consul', 'config'),
      consulDataDir: join(base, name, 'consul', 'data'),
      consulLog: join(base, name, 'consul.log'),
      sidecarConfig: join(base, name, 'sidecar.json'),
      sidecarLog: join(base, name, 'sidecar.log'),
      dataDir: join(base, name, 'data'),
    }),
    spawn: async (node: DriverNode, part, argv) => {
      spawned.push({ node: node.name, part, argv });
    },
    isRunning: () => true,
    stop: async () => undefined,
    clusterName: 'unit',
    clusterToken: 'unit-cluster-token-0123456789',
    postgres: true,
    consulBinary: () => '/opt/consul',
    sidecarMain: () => '/opt/sidecar/main.js',
    consulSecrets: opts.secrets ? { gossipKey: 'a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=', aclManagementToken: 'mgmt-token' } : undefined,
    fetch: () => Promise.reject(new Error('no network in unit tests')),
  });
  return { d, spawned };
}

describe('ClusterDriver', () => {
  it('names the nodes n1..nN and takes each address from addressOf, with the production ports in its URLs', () => {
    const { d } = driver({ size: 5 });
    expect(d.nodes.map((n) => [n.name, n.address, n.apiUrl, n.consulUrl])).toEqual(
      [0, 1, 2, 3, 4].map((i) => [`n${i + 1}`, `127.0.9.${21 + i}`, `http://127.0.9.${21 + i}:8008`, `http://127.0.9.${21 + i}:8500`]),
    );
    expect(d.node(4).sidecarConfig).toBe(join(base, 'n5', 'sidecar.json'));
    expect(() => d.node(5)).toThrow('the cluster has no node 5 (it has 5)');
  });

  it('writes a sidecar config (0600) with every address for Postgres, the extra settings winning', () => {
    const { d } = driver();
    d.writeSidecarConfig(d.node(1), { postgres: { enabled: false }, files: { directory: '/srv/files' } });
    const file = d.node(1).sidecarConfig;
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
      nodeName: 'n2',
      clusterName: 'unit',
      address: '127.0.9.22',
      clusterToken: 'unit-cluster-token-0123456789',
      dataDir: join(base, 'n2', 'data'),
      clusterAddresses: ['127.0.9.21', '127.0.9.22', '127.0.9.23'],
      postgres: { enabled: false },
      files: { directory: '/srv/files' },
    });
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('starts Consul through the one spawn hook with a rendered server config that joins the other servers', async () => {
    const { d, spawned } = driver({ secrets: true });
    await d.startConsul(d.node(0));
    const node = d.node(0);
    expect(spawned).toEqual([{ node: 'n1', part: 'consul', argv: ['/opt/consul', 'agent', '-config-dir', node.consulConfigDir] }]);
    const server = readFileSync(join(node.consulConfigDir, 'server.hcl'), 'utf8');
    expect(server).toContain('bind_addr            = "127.0.9.21"');
    expect(server).toContain('retry_join           = ["127.0.9.22","127.0.9.23"]');
    expect(server).toContain('bootstrap_expect     = 3');
    expect(readFileSync(join(node.consulConfigDir, 'acl.hcl'), 'utf8')).toContain('mgmt-token');
  });

  it('starts a sidecar through the same hook: node, its compiled main and its config file', async () => {
    const { d, spawned } = driver();
    await d.startSidecar(d.node(2));
    expect(spawned).toEqual([{ node: 'n3', part: 'sidecar', argv: [process.execPath, '/opt/sidecar/main.js', '--config', d.node(2).sidecarConfig] }]);
  });
});

describe('what the waits read from the nodes', () => {
  const record = { name: 'n3', role: 'standby', state: 'creating a Consul session', manager: { state: 'unhealthy' } };

  it('a member record is stale while its state line or manager differs from what the node answers now', () => {
    expect(staleRecord(record, { status: 'following leader n1', manager: { state: 'unhealthy' } })).toBe(
      `n3's record says "creating a Consul session", the node "following leader n1"`,
    );
    expect(staleRecord({ ...record, state: 'following leader n1' }, { status: 'following leader n1', manager: { state: 'healthy' } })).toBe(
      "n3's record shows its manager unhealthy, the node healthy",
    );
    expect(staleRecord({ ...record, state: 'following leader n1', manager: { state: 'healthy' } }, { status: 'following leader n1', manager: { state: 'healthy' } })).toBe('');
    expect(staleRecord({ name: 'n3', state: 'following leader n1' }, { status: 'following leader n1' })).toBe('');
  });

  it('a manager is settled when healthy or without a health URL; none at all is settled too', () => {
    expect(unsettledManager(record)).toBe("n3's manager is unhealthy");
    expect(unsettledManager({ ...record, manager: { state: 'standby hook running' } })).toBe("n3's manager is standby hook running");
    for (const state of ['healthy', 'active', 'passive']) expect(unsettledManager({ ...record, manager: { state } })).toBe('');
    expect(unsettledManager({ name: 'n3' })).toBe('');
  });

  it('a failed promotion with a code of its own ends the wait; Consul trouble and uncoded errors do not', () => {
    const failure = (code: string) => ({ status: 'no leader', lastFailure: { code, message: 'why', at: '2026-12-02T00:00:00Z' } });
    expect(lastingFailure(failure('initdb_failed'))).toEqual({ code: 'initdb_failed', message: 'why' });
    expect(lastingFailure(failure('bad_kv_value'))).toEqual({ code: 'bad_kv_value', message: 'why' });
    expect(lastingFailure(failure('consul_unavailable'))).toBeUndefined();
    expect(lastingFailure(failure('internal_error'))).toBeUndefined();
    expect(lastingFailure({ status: 'no leader' })).toBeUndefined();
    expect(lastingFailure(null)).toBeUndefined();
  });
});
