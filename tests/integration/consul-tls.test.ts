import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Socket, connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { sidecarMain } from '../../cli/local/layout.js';
import { consulBinary } from '../../cli/local/paths.js';
import { httpsFetch } from '../../sidecar/shared/https-fetch.js';
import { CLUSTER_TOKEN, SUPERUSER_LOGIN, TestCluster } from '../harness/cluster.js';
import { hactlIn, profileTlsArgs } from '../harness/hactl.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { nodeAddress } from '../harness/net.js';
import { runCommand, waitFor } from '../harness/processes.js';
import { tlsClusterSuite } from '../harness/tls.js';

/**
 * Consul as a TLS cluster runs it (consul-config/tls.hcl.tmpl, encrypt.hcl.tmpl, acl.hcl.tmpl; cli/local/driver.ts):
 * HTTPS on 8501 and RPC on 8300 verifying both ends, gossip encryption, ACLs default deny. What must be refused
 * is: plain HTTP, HTTPS without a client certificate, a certificate of another CA on 8501 and 8300, a member
 * with another gossip key, an anonymous read, and a sidecar whose CA or URL does not match Consul's. And the
 * sidecars, speaking HTTPS to their agents with the CA and their own certificate and token, elect one leader
 * and replicate.
 */

const scratch = mkdtempSync(join(tmpdir(), 'consul-tls-'));

/** Consul's RPC byte for a TLS connection on 8300 (agent/pool/conn.go: RPCTLS), and for plain RPC (RPCConsul). */
const RPC_TLS = 3;
const RPC_CONSUL = 0;

/** What 8300 did with a connection: closed it (or failed the handshake), or answered after the handshake. */
type RpcOutcome = { refused: string } | { answered: true };

/** Bytes a server sends back on a socket within `timeoutMs`, or why it would not. */
function firstAnswer(socket: Socket, timeoutMs: number): Promise<RpcOutcome> {
  return new Promise((resolve) => {
    const done = (outcome: RpcOutcome) => {
      socket.destroy();
      resolve(outcome);
    };
    socket.setTimeout(timeoutMs, () => done({ refused: 'no answer' }));
    socket.once('data', () => done({ answered: true }));
    socket.once('error', (e: NodeJS.ErrnoException) => done({ refused: e.code ?? e.message }));
    socket.once('close', () => done({ refused: 'closed' }));
  });
}

/**
 * A Status.Ping over Consul's RPC port, as a server's own client would send it: the TLS byte, a handshake with
 * `cert`, then msgpack-rpc's request header {ServiceMethod, Seq} and an empty body. A refused certificate ends the
 * connection; an accepted one gets the ping's answer.
 */
async function rpcPing(address: string, tls: { ca: string; cert?: string; key?: string } | null): Promise<RpcOutcome> {
  const tcp = connectTcp(8300, address);
  await new Promise<void>((resolve, reject) => tcp.once('connect', resolve).once('error', reject));
  const header = Buffer.concat([Buffer.from([0x82, 0xad]), Buffer.from('ServiceMethod'), Buffer.from([0xab]), Buffer.from('Status.Ping'), Buffer.from([0xa3]), Buffer.from('Seq'), Buffer.from([0x00])]);
  const request = Buffer.concat([Buffer.from([RPC_CONSUL]), header, Buffer.from([0x80])]);
  if (tls === null) {
    tcp.write(request);
    return firstAnswer(tcp, 5_000);
  }
  tcp.write(Buffer.from([RPC_TLS]));
  const secure = connectTls({ socket: tcp, ...tls, checkServerIdentity: () => undefined });
  secure.once('secureConnect', () => secure.write(request));
  return firstAnswer(secure, 5_000);
}

describe('Consul with TLS, gossip encryption and ACLs (3 nodes with Postgres)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, tls: { verifyClient: true } });
  const haproxy = new TestHaproxy(cluster);
  const { other } = tlsClusterSuite(cluster, haproxy, scratch);
  const pem = (file: string) => readFileSync(file, 'utf8');
  const ca = () => pem(join(cluster.tlsDir, 'ca.crt'));
  const address = (i: number) => cluster.address(i);
  const intruder = () => ({ cert: pem(other().nodes[0]!.certFile), key: pem(other().nodes[0]!.keyFile) });

  test('the sidecars elect one leader and replicate, each speaking HTTPS to its agent on 8501', async () => {
    expect(await cluster.leaderIndex()).toBe(0);
    await cluster.sql(0, 'create table if not exists consul_tls (id int primary key)', [], SUPERUSER_LOGIN);
    await cluster.sql(0, 'insert into consul_tls values (1) on conflict do nothing', [], SUPERUSER_LOGIN);
    for (const i of [1, 2]) {
      await waitFor(`the row on n${i + 1}`, async () => (await cluster.sql<{ n: number }>(i, 'select count(*)::int as n from consul_tls', [], SUPERUSER_LOGIN).catch(() => [{ n: 0 }]))[0]?.n === 1, 30_000, 250);
    }
    for (const i of [0, 1, 2]) {
      const config = JSON.parse(readFileSync(cluster.configFile(i), 'utf8')) as { consul?: { url?: string; token?: string } };
      expect(config.consul?.url).toBeUndefined(); // the default: https://<address>:8501 with a tls section
      expect(config.consul?.token).toBe(cluster.sidecarToken);
    }
    const members = (await (await cluster.consulCall(0, 'GET', '/v1/agent/members')).json()) as { Name: string; Status: number }[];
    expect(members.map((m) => [m.Name, m.Status]).sort()).toEqual([['n1', 1], ['n2', 1], ['n3', 1]]);
  }, 60_000);

  test('plain HTTP is refused: 8500 is closed, and 8501 answers a plain request 400', async () => {
    await expect(fetch(`http://${address(0)}:8500/v1/status/leader`)).rejects.toThrow();
    const plain = await fetch(`http://${address(0)}:8501/v1/status/leader`);
    expect(plain.status).toBe(400);
    expect(await plain.text()).toMatch(/Client sent an HTTP request to an HTTPS server/);
  });

  test('HTTPS without a client certificate, or with one of another CA, is refused on 8501; with the cluster CA and its certificate it answers', async () => {
    const url = `${cluster.consul.httpUrl(0)}/v1/status/leader`;
    await expect(httpsFetch({ ca: ca() })(url)).rejects.toThrow(/certificate|handshake|socket hang up|ECONNRESET/i);
    await expect(httpsFetch({ ca: ca(), ...intruder() })(url)).rejects.toThrow(/certificate|unknown ca|handshake|socket hang up|ECONNRESET/i);
    const answer = await cluster.consulCall(0, 'GET', '/v1/status/leader', undefined, null);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toMatch(/:8300$/);
  });

  test('RPC on 8300: plain RPC and a certificate of another CA are refused; a node certificate of the cluster CA gets an answer', async () => {
    expect(await rpcPing(address(1), null)).toMatchObject({ refused: expect.any(String) });
    expect(await rpcPing(address(1), { ca: ca(), ...intruder() })).toMatchObject({ refused: expect.any(String) });
    const node = cluster.driver.node(0);
    expect(await rpcPing(address(1), { ca: ca(), cert: pem(join(cluster.tlsDir, `${node.name}.crt`)), key: pem(join(cluster.tlsDir, `${node.name}.key`)) })).toEqual({ answered: true });
  });

  test('ACLs default deny: an anonymous KV read is denied; the sidecars\' token reads and writes only its own prefix', async () => {
    expect((await cluster.consulCall(0, 'GET', '/v1/kv/ha-sidecar/test/leader', undefined, null)).status).toBe(403);
    const token = cluster.sidecarToken as string;
    expect((await cluster.consulCall(0, 'GET', '/v1/kv/ha-sidecar/test/leader', undefined, token)).status).toBe(200);
    expect((await cluster.consulCall(0, 'PUT', '/v1/kv/ha-sidecar/test/probe', 'x', token)).status).toBe(200);
    expect((await cluster.consulCall(0, 'PUT', '/v1/kv/ha-sidecar/other/probe', 'x', token)).status).toBe(403);
  });

  test('a Consul agent with another gossip key cannot join', async () => {
    const dir = join(scratch, 'intruder');
    mkdirSync(join(dir, 'data'), { recursive: true });
    const self = nodeAddress(9);
    writeFileSync(
      join(dir, 'agent.hcl'),
      [
        'node_name = "intruder"',
        `data_dir = "${join(dir, 'data')}"`,
        `bind_addr = "${self}"`,
        `advertise_addr = "${self}"`,
        `retry_join = ["${address(0)}"]`,
        'retry_interval = "1s"',
        `encrypt = "${randomBytes(32).toString('base64')}"`,
        'disable_update_check = true',
        'ports { http = -1, https = -1, dns = -1, grpc = -1, grpc_tls = -1, serf_wan = -1 }',
      ].join('\n'),
    );
    const log = join(dir, 'consul.log');
    cluster.processes.start('consul-intruder', consulBinary(), ['agent', '-config-dir', dir], log, {}, dir);
    try {
      // The servers cannot read what it sends: they say so, and it never becomes a member.
      await waitFor('a server to refuse the intruder\'s gossip', async () => cluster.driver.nodes.some((n) => /No installed keys could decrypt the message/.test(readFileSync(n.consulLog, 'utf8'))), 30_000, 250);
      const members = (await (await cluster.consulCall(0, 'GET', '/v1/agent/members')).json()) as { Name: string }[];
      expect(members.map((m) => m.Name).sort()).toEqual(['n1', 'n2', 'n3']);
    } finally {
      await cluster.processes.stop('consul-intruder', 'SIGKILL');
    }
  }, 60_000);

  test('a sidecar whose CA is not Consul\'s, or whose consul.url is http:// against 8501, exits 2 with consul_tls_failed', async () => {
    const start = async (name: string, extra: Record<string, unknown>) => {
      const dir = join(scratch, name);
      mkdirSync(dir, { recursive: true });
      const config = { nodeName: 'n9', address: nodeAddress(9), clusterName: 'test', clusterToken: CLUSTER_TOKEN, dataDir: dir, postgres: { enabled: false }, ...extra };
      writeFileSync(join(dir, 'sidecar.json'), JSON.stringify(config));
      return runCommand(process.execPath, [sidecarMain(), '--config', join(dir, 'sidecar.json')], process.env, 30_000);
    };
    const otherCa = other();
    const wrongCa = await start('wrong-ca', {
      consul: { url: cluster.consul.httpUrl(0), token: cluster.sidecarToken },
      tls: { certFile: otherCa.nodes[0]!.certFile, keyFile: otherCa.nodes[0]!.keyFile, caFile: otherCa.caFile },
    });
    expect(wrongCa.code).toBe(2);
    expect(wrongCa.err).toMatch(/^ha-sidecar: consul_tls_failed: Consul .* failed in TLS: the agent's certificate is not of tls.caFile's CA/m);
    const node = cluster.driver.node(0);
    const plain = await start('plain-url', {
      consul: { url: `http://${address(0)}:8501`, token: cluster.sidecarToken },
      tls: { certFile: join(cluster.tlsDir, `${node.name}.crt`), keyFile: join(cluster.tlsDir, `${node.name}.key`), caFile: join(cluster.tlsDir, 'ca.crt') },
    });
    expect(plain.code).toBe(2);
    expect(plain.err).toMatch(/^ha-sidecar: consul_tls_failed: .*consul\.url is http:\/\/ but the agent speaks HTTPS on that port/m);
  }, 60_000);

  test('hactl cluster validate: Consul is checked on 8501 from this host, and each member reaches the others with TLS handshakes', async () => {
    const hactl = hactlIn(join(scratch, 'hactl'));
    expect((await hactl('profiles', 'use', cluster.apiUrl(0), '--name', 'tls', '--token', CLUSTER_TOKEN, ...profileTlsArgs(cluster))).code).toBe(0);
    const run = await hactl('cluster', 'validate');
    expect([run.code, run.err]).toEqual([0, '']);
    const lines = run.out.split('\n');
    expect(lines[1]).toMatch(/^NODE\s+ADDRESS\s+8300\s+8301\s+8501\s+8008\s+15432\s+22000$/);
    for (const [k, row] of lines.slice(2, 5).entries()) expect(row).toMatch(new RegExp(`^n${k + 1}\\s+\\S+\\s+ok\\s+ok\\s+ok\\s+ok\\s+ok\\s+-$`));
    const matrix = lines.indexOf('from each member to the others:');
    expect(lines.slice(matrix + 2, matrix + 5).map((l) => l.trim().split(/\s+/).slice(1))).toEqual([['-', 'ok', 'ok'], ['ok', '-', 'ok'], ['ok', 'ok', '-']]);
  }, 60_000);

  test("kill -9 of the leader's sidecar: its write guard releases the lock over HTTPS with the node's certificate and token", async () => {
    const old = (await cluster.leaderIndex()) as number;
    await cluster.killSidecar(old);
    const released = () =>
      readFileSync(cluster.driver.node(old).sidecarLog, 'utf8')
        .split('\n')
        .filter((line) => line.includes('"guard_released_session"'))
        .map((line) => JSON.parse(line) as { lockReleased?: boolean });
    await waitFor("the old leader's guard to release its lock", async () => released().length > 0, 20_000, 100);
    expect(released()).toEqual([expect.objectContaining({ lockReleased: true })]);
    await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== old)).then((i) => i !== undefined), 20_000, 100);
  }, 60_000);

  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
});
