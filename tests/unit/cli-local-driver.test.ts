import { afterAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterDriver, type DriverNode, type Part } from '../../cli/local/driver.js';

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
