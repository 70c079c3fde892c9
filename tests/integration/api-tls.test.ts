import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sidecarMain } from '../../cli/local/layout.js';
import { CLUSTER_TOKEN, TEST_CLIENT_CERT, TestCluster } from '../harness/cluster.js';
import { hactlIn } from '../harness/hactl.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { nodeAddress } from '../harness/net.js';
import { runCommand, waitFor } from '../harness/processes.js';
import { expiredCertificate, renewedCertificate, tlsClusterSuite } from '../harness/tls.js';

/**
 * The sidecar API over HTTPS on a real 3-node cluster (Consul, PostgreSQL, sidecars) with `verifyClient`: what
 * curl sees with and without the cluster CA, plain HTTP on 8008, a client certificate of another CA, the
 * probes without token or certificate, hactl with a profile that stores the CA (status, switchover, the
 * profile commands), a server certificate hactl must refuse, and a sidecar whose certificate has expired.
 */

const scratch = mkdtempSync(join(tmpdir(), 'api-tls-'));
const hactl = hactlIn(join(scratch, 'hactl'));
const PROBE_PATHS = ['/leader', '/primary', '/replica', '/health', '/liveness', '/readiness'];

/** curl's exit code, HTTP status and body; `-k` is never given, so the server is always verified. */
async function curl(args: string[]): Promise<{ code: number | null; status: number; body: string; err: string }> {
  const run = await runCommand('curl', ['-sS', '--max-time', '10', '-o', '-', '-w', '\n%{http_code}', ...args], process.env, 20_000);
  const lines = run.out.split('\n');
  const status = Number(lines.pop());
  return { code: run.code, status, body: lines.join('\n'), err: run.err };
}

describe('the sidecar API over HTTPS (3 nodes with Postgres, verifyClient on)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, tls: { verifyClient: true } });
  const haproxy = new TestHaproxy(cluster);
  const { other } = tlsClusterSuite(cluster, haproxy, scratch);
  const ca = () => join(cluster.tlsDir, 'ca.crt');
  const client = () => ['--cert', join(cluster.tlsDir, `${TEST_CLIENT_CERT}.crt`), '--key', join(cluster.tlsDir, `${TEST_CLIENT_CERT}.key`)];

  test('every member publishes an https API URL', async () => {
    const { body } = await cluster.call(0, 'GET', '/cluster');
    const members = body.members as { name: string; apiUrl: string }[];
    expect(members.map((m) => m.apiUrl).sort()).toEqual(cluster.names.map((_, i) => `https://${cluster.address(i)}:8008`));
  });

  test('HAProxy (docker/haproxy-local.cfg.tmpl) checks /leader over HTTPS with the CA: the leader alone is in service', async () => {
    for (const backend of ['postgres_leader', 'api_leader']) {
      await waitFor(`HAProxy's ${backend} to hold n1 alone`, async () => JSON.stringify(await haproxy.inService(backend).catch(() => [])) === '["n1"]', 15_000, 200);
    }
  });

  test("Consul's check of every sidecar's /health passes over HTTPS", async () => {
    await waitFor('the three API checks to pass', async () => {
      const entries = (await (await cluster.consulCall(0, 'GET', '/v1/health/service/ha-sidecar')).json()) as { Checks: { Name: string; Status: string }[] }[];
      const api = entries.flatMap((e) => e.Checks).filter((c) => c.Name === 'sidecar API /health');
      return api.length === 3 && api.every((c) => c.Status === 'passing');
    }, 15_000, 250);
  });

  test('curl without the CA fails the handshake on 8008; with it the probes answer, without token or certificate', async () => {
    const leader = cluster.apiUrl(0);
    const without = await curl([`${leader}/leader`]);
    expect(without.code).toBe(60); // curl: peer certificate cannot be authenticated with known CA certificates
    for (const path of PROBE_PATHS) {
      const answer = await curl(['--cacert', ca(), `${leader}${path}`]);
      expect(answer.code).toBe(0);
      expect([200, 503]).toContain(answer.status);
    }
    expect((await curl(['--cacert', ca(), `${leader}/leader`])).status).toBe(200);
    expect((await curl(['--cacert', ca(), `${cluster.apiUrl(1)}/replica`])).status).toBe(200);
  });

  test('plain HTTP to 8008 is answered 400 https_required, and the node keeps serving', async () => {
    const plain = await curl([`http://${cluster.address(1)}:8008/cluster`]);
    expect(plain.status).toBe(400);
    expect(JSON.parse(plain.body)).toMatchObject({ error: 'https_required' });
    expect((await curl(['--cacert', ca(), `${cluster.apiUrl(1)}/health`])).status).toBe(200);
    expect(readFileSync(join(cluster.driver.node(1).sidecarLog), 'utf8')).toMatch(/"code":"https_required"/);
  });

  test('state beyond the probes needs a client certificate of the CA: none, the token alone and another CA are refused', async () => {
    const url = `${cluster.apiUrl(0)}/cluster`;
    const none = await curl(['--cacert', ca(), url]);
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toMatchObject({ error: 'client_certificate_required' });
    const tokenOnly = await curl(['--cacert', ca(), '-H', `Authorization: Bearer ${CLUSTER_TOKEN}`, url]);
    expect(tokenOnly.status).toBe(401);
    const foreign = await curl(['--cacert', ca(), '--cert', other().nodes[0]!.certFile, '--key', other().nodes[0]!.keyFile, '-H', `Authorization: Bearer ${CLUSTER_TOKEN}`, url]);
    expect(foreign.status).toBe(403);
    expect(JSON.parse(foreign.body)).toMatchObject({ error: 'client_certificate_rejected' });
    const ours = await curl(['--cacert', ca(), ...client(), url]);
    expect(ours.status).toBe(200);
    expect(JSON.parse(ours.body)).toMatchObject({ leader: { name: 'n1' } });
    for (const path of ['/config', '/history', '/metrics']) expect((await curl(['--cacert', ca(), `${cluster.apiUrl(2)}${path}`])).status).toBe(401);
    // An operation takes the token besides the certificate.
    expect((await curl(['--cacert', ca(), ...client(), '-X', 'POST', `${cluster.apiUrl(0)}/pause`])).status).toBe(401);
  });

  test('hactl with a profile that stores the CA: profiles, status, update-profile and a switchover', async () => {
    const use = await hactl('profiles', 'use', cluster.address(0), '--name', 'tls', '--token', CLUSTER_TOKEN, '--ca', ca(), ...client());
    expect(use.err).toBe('');
    expect(use.code).toBe(0);
    expect(use.out).toContain(`https://${cluster.address(0)}:8008`);
    const list = await hactl('profiles', 'list');
    expect(list.out).toMatch(/\*\s+tls\s+\S+\s+\S+\s+yes\s+yes/);
    expect((await hactl('profiles', 'show')).out).toContain(`ca:          ${ca()}`);
    const status = await hactl('cluster', 'status');
    expect(status.err).toBe('');
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/leader: n1/);
    const update = await hactl('cluster', 'update-profile');
    expect(update.code).toBe(0);
    expect(update.out).toContain(`https://${cluster.address(2)}:8008`);
    const switchover = await hactl('cluster', 'switchover', '--to', 'n2');
    expect(switchover.err).toBe('');
    expect(switchover.code).toBe(0);
    await waitFor('n2 to lead', async () => (await cluster.leaderIndex()) === 1, 30_000, 200);
    await cluster.waitAllStreaming();
    expect((await hactl('cluster', 'status')).out).toMatch(/leader: n2/);
    await waitFor("HAProxy's api_leader to hold n2 alone", async () => JSON.stringify(await haproxy.inService('api_leader').catch(() => [])) === '["n2"]', 15_000, 200);
  }, 120_000);

  test('hactl without the CA refuses the managers: server_certificate_rejected, exit 1', async () => {
    const use = await hactl('profiles', 'use', cluster.apiUrl(0), '--name', 'no-ca', '--token', CLUSTER_TOKEN);
    expect(use.err).toMatch(/could not read the members/);
    const status = await hactl('--profile', 'no-ca', 'cluster', 'status');
    expect(status.code).toBe(1);
    expect(status.err).toMatch(/server_certificate_rejected/);
    expect(status.err).toMatch(/SELF_SIGNED_CERT_IN_CHAIN/);
  });

  test('an expired server certificate: hactl refuses it (server_certificate_rejected), a sidecar will not start with it', async () => {
    // A server of the cluster's CA whose certificate has expired, on an address of the test net no node uses.
    const address = nodeAddress(5);
    const expired = expiredCertificate({ certFile: ca(), keyFile: join(cluster.tlsDir, 'ca.key') }, { name: 'n6', address }, scratch);
    const server: Server = createServer({ cert: readFileSync(expired.certFile), key: readFileSync(expired.keyFile) }, (_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    try {
      const port = (server.address() as { port: number }).port;
      await hactl('profiles', 'use', `https://${address}:${port}`, '--name', 'expired', '--token', CLUSTER_TOKEN, '--ca', ca(), ...client());
      const status = await hactl('--profile', 'expired', 'cluster', 'status');
      expect(status.code).toBe(1);
      expect(status.err).toMatch(/server_certificate_rejected: .*its certificate has expired \(CERT_HAS_EXPIRED\)/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }

    // n3's own config, with the expired certificate: the sidecar stops at start with one line, exit 2, before
    // it reaches Consul or opens a port (so n3, running beside it, is not disturbed).
    const config = JSON.parse(readFileSync(cluster.configFile(2), 'utf8')) as { tls: Record<string, unknown> };
    const expiredN3 = expiredCertificate({ certFile: ca(), keyFile: join(cluster.tlsDir, 'ca.key') }, { name: 'n3', address: cluster.address(2) }, scratch);
    const file = join(scratch, 'n3-expired.json');
    writeFileSync(file, JSON.stringify({ ...config, tls: { ...config.tls, ...expiredN3 } }), { mode: 0o600 });
    const run = await runCommand(process.execPath, [sidecarMain(), '--config', file], process.env, 20_000);
    expect(run.code).toBe(2);
    expect(run.err.trim().split('\n')).toHaveLength(1);
    expect(run.err).toMatch(/^ha-sidecar: tls_certificate_expired: tls\.certFile .*n3-expired\.crt expired on Jan {2}2 00:00:00 2020 GMT/);
    expect((await curl(['--cacert', ca(), `${cluster.apiUrl(2)}/health`])).status).toBe(200);
  });

  test('hactl cluster validate: every member reaches every other with TLS handshakes; a member whose certificate names another address fails them with every peer', async () => {
    await hactl('profiles', 'use', cluster.address(0), '--name', 'validate', '--token', CLUSTER_TOKEN, '--ca', ca(), ...client());
    const healthy = await hactl('--profile', 'validate', 'cluster', 'validate');
    expect([healthy.code, healthy.err]).toEqual([0, '']);
    expect(healthy.out).toContain('from each member to the others:');

    // n3 restarted with a certificate of the cluster's CA that names another address (a certificate copied to
    // the wrong node): its Consul agent takes it (Consul checks a client's chain, not its name), but every
    // peer's handshake with n3, which checks the name it dialled, fails.
    const n3 = renewedCertificate({ certFile: ca(), keyFile: join(cluster.tlsDir, 'ca.key') }, { name: 'n3', address: nodeAddress(5) }, scratch);
    await cluster.stopSidecar(2);
    cluster.writeConfig(2, { tls: { caFile: ca(), certFile: n3.certFile, keyFile: n3.keyFile, verifyClient: true } });
    try {
      // Its API cannot be verified with the cluster's CA: validate's answer below is the wait.
      await cluster.startSidecar(2, false);
      const failed = await waitFor('validate to see the handshakes with n3 fail', async () => {
        const run = await hactl('--profile', 'validate', 'cluster', 'validate');
        return run.code === 1 && run.err.includes('n1 -> n3:15432 (PostgreSQL): tls_failed') && run.err.includes('n2 -> n3:8008 (sidecar API): tls_failed') ? run : undefined;
      }, 60_000, 1_000);
      for (const from of ['n1', 'n2']) {
        expect(failed.err).toMatch(new RegExp(`${from} -> n3:8008 \\(sidecar API\\): tls_failed: `));
        expect(failed.err).toMatch(new RegExp(`${from} -> n3:15432 \\(PostgreSQL\\): tls_failed: `));
      }
      // hactl checks n3's name too, so it cannot ask n3 for its side.
      expect(failed.err).toMatch(/n3: could not be asked \(/);
      // Consul's RPC and gossip ports are checked by a connect alone, which the certificate does not change.
      expect(failed.err).not.toMatch(/-> n\d:830[01]/);
    } finally {
      await cluster.stopSidecar(2);
      cluster.writeConfig(2);
      await cluster.startSidecar(2);
    }
    await cluster.waitAllStreaming();
    expect((await hactl('--profile', 'validate', 'cluster', 'validate')).code).toBe(0);
  }, 180_000);

  test("the profile's CA file is read at each call: once removed, tls_file_unreadable", async () => {
    const copy = join(scratch, 'ca-copy.crt');
    copyFileSync(ca(), copy);
    await hactl('profiles', 'use', cluster.address(1), '--name', 'copy', '--token', CLUSTER_TOKEN, '--ca', copy, ...client());
    expect((await hactl('--profile', 'copy', 'cluster', 'status')).code).toBe(0);
    rmSync(copy);
    const gone = await hactl('--profile', 'copy', 'cluster', 'status');
    expect(gone.code).toBe(1);
    expect(gone.err).toMatch(/tls_file_unreadable: the profile's tls\.caFile .*ca-copy\.crt: cannot read it \(ENOENT\)/);
  });
});
