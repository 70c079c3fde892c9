import { randomBytes, randomUUID } from 'node:crypto';
import { ConsulStore } from '../../sidecar/consul/store.js';
import { TestCluster } from '../harness/cluster.js';
import { waitFor } from '../harness/processes.js';

/** Consul as consul-config/ runs it with its options on: ACLs (default deny) and gossip encryption. */
describe('election with Consul ACLs on (default deny, sidecar token of consul-config/sidecar-policy.hcl)', () => {
  const managementToken = randomUUID();
  // Without TLS: the ACL and gossip-key options on their own, as a cluster without certificates runs them
  // (consul-tls.test.ts has them under TLS).
  const cluster = new TestCluster({ size: 3, tls: false, acl: { managementToken, gossipKey: randomBytes(32).toString('base64') } });

  beforeAll(() => cluster.start(), 120_000);
  afterAll(() => cluster.stop(), 60_000);

  const consul = (path: string, token: string | undefined, method = 'GET', body?: string) =>
    fetch(`${cluster.consul.httpUrl(0)}${path}`, { method, body, headers: token ? { 'X-Consul-Token': token } : {} });

  test('the sidecars elect one leader and register their service with the limited token', async () => {
    expect(await cluster.leaderIndex()).toBe(0);
    const catalog = await consul('/v1/catalog/service/ha-sidecar', managementToken);
    expect(((await catalog.json()) as unknown[]).length).toBe(3);
  });

  test('the sidecar token writes its own prefix only; without a token nothing is readable', async () => {
    const token = cluster.sidecarToken!;
    expect((await consul('/v1/kv/ha-sidecar/test/probe', token, 'PUT', 'x')).status).toBe(200);
    expect((await consul('/v1/kv/ha-sidecar/other-cluster/probe', token, 'PUT', 'x')).status).toBe(403);
    expect((await consul('/v1/kv/somewhere-else', token, 'PUT', 'x')).status).toBe(403);
    // Default deny: an anonymous read of the lock finds nothing (Consul answers 404 rather than leak it).
    expect((await consul('/v1/kv/ha-sidecar/test/leader', undefined)).status).not.toBe(200);
  });

  test("the store names Consul's refusal consul_acl_denied: another cluster's prefix, an unknown token", async () => {
    const store = (token: string, clusterName: string) => new ConsulStore({ url: cluster.consul.httpUrl(0), token, cluster: clusterName, timeoutMs: 5_000 }, 'n9');
    await expect(store(cluster.sidecarToken!, 'other-cluster').initialize('x')).rejects.toMatchObject({ code: 'consul_acl_denied', details: { httpStatus: 403 } });
    await expect(store(randomUUID(), 'test').readInitialize()).rejects.toMatchObject({ code: 'consul_acl_denied', details: { httpStatus: 403 } });
  });

  test('kill -9 of the leader sidecar: another takes over with ACLs on', async () => {
    await cluster.killSidecar(0);
    await waitFor('a new leader', () => cluster.leaderIndex([1, 2]).then((i) => i !== undefined), 20_000, 50);
  }, 30_000);
});
