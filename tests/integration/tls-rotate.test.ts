import { X509Certificate } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { initClusterTls } from '../../cli/tls.js';
import { httpsFetch } from '../../sidecar/shared/https-fetch.js';
import { servedCertificate } from '../../sidecar/shared/port-probe.js';
import { CLUSTER_TOKEN, LeaderWatcher, SUPERUSER_LOGIN, TestCluster } from '../harness/cluster.js';
import { hactlIn, profileTlsArgs } from '../harness/hactl.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { tlsClusterSuite } from '../harness/tls.js';
import { WritingClient } from '../harness/writer.js';

/**
 * `hactl cluster tls rotate` on a real 3-node TLS cluster (Consul, Postgres over SSL, sidecars with
 * verifyClient, HAProxy): bad input changes nothing; a rotation under a client writing through HAProxy in
 * synchronous mode loses no acknowledged row, changes no term, and leaves every node serving its new
 * certificate on 8008 and 15432 while holders of the old ones still get in (same CA); a rotation to a
 * 10-day certificate shows as expiring in /cluster, the metrics, the status and the log.
 */

const scratch = mkdtempSync(join(tmpdir(), 'tls-rotate-'));
const hactl = hactlIn(join(scratch, 'hactl'));
const readText = (path: string) => readFileSync(path, 'utf8');

describe('hactl cluster tls rotate (3 nodes with Postgres, verifyClient on)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, tls: { verifyClient: true } });
  const haproxy = new TestHaproxy(cluster);
  tlsClusterSuite(cluster, haproxy, scratch);
  const file = (name: string) => join(cluster.tlsDir, name);
  const fingerprint = (name: string) => new X509Certificate(readText(file(`${name}.crt`))).fingerprint256;
  /** What node i serves on 8008 and on 15432 (SHA-256 fingerprints), verified with the cluster CA. */
  const served = async (i: number) =>
    Promise.all([8008, 15432].map(async (port) => (await servedCertificate(cluster.address(i), port, port === 15432, { ca: readText(file('ca.crt')) }, 5_000)).fingerprint256));
  const servedByConsul = async (i: number) =>
    (await servedCertificate(cluster.address(i), 8501, false, { ca: readText(file('ca.crt')), cert: readText(file(`${cluster.names[i]}.crt`)), key: readText(file(`${cluster.names[i]}.key`)) }, 5_000)).fingerprint256;
  const walsenders = (leader: number) =>
    cluster.sql<{ name: string; ssl: boolean }>(leader, 'select r.application_name as name, s.ssl from pg_stat_replication r join pg_stat_ssl s using (pid) order by 1', [], SUPERUSER_LOGIN);

  beforeAll(async () => {
    const use = await hactl('profiles', 'use', cluster.apiUrl(0), '--name', 'test', '--token', CLUSTER_TOKEN, ...profileTlsArgs(cluster));
    expect(use.code).toBe(0);
  }, 30_000);

  test('bad input: an unknown --dir, a --dir without ca.key, --days 0: exit 2 with its code, nothing changed', async () => {
    const before = cluster.names.map(fingerprint);
    const unknown = await hactl('cluster', 'tls', 'rotate', '--dir', join(scratch, 'nowhere'));
    expect([unknown.code, unknown.err.trim()]).toEqual([2, `hactl: tls_files_missing: --dir ${join(scratch, 'nowhere')} is not a directory; nothing changed`]);

    const noKey = join(scratch, 'no-ca-key');
    cpSync(cluster.tlsDir, noKey, { recursive: true });
    rmSync(join(noKey, 'ca.key'));
    const withoutKey = await hactl('cluster', 'tls', 'rotate', '--dir', noKey);
    expect(withoutKey.code).toBe(2);
    expect(withoutKey.err).toMatch(/^hactl: tls_files_missing: missing .*no-ca-key\/ca\.key \(rotate signs with the CA key: run it where ca\.key is, or name it with --ca-key\); nothing changed$/m);
    for (const name of cluster.names) expect(readText(join(noKey, `${name}.crt`))).toBe(readText(file(`${name}.crt`)));

    const bad = await hactl('cluster', 'tls', 'rotate', '--dir', cluster.tlsDir, '--days', '0');
    expect([bad.code, bad.err.trim()]).toEqual([2, 'hactl: bad_value: --days takes a whole number from 1 to 825']);
    expect(cluster.names.map(fingerprint)).toEqual(before);
    for (let i = 0; i < 3; i++) expect(await served(i)).toEqual([before[i], before[i]]);
  });

  test("a --dir of another CA (consistent in itself, not what the nodes serve): tls_ca_mismatch, exit 2, nothing changed", async () => {
    const foreign = join(scratch, 'foreign');
    await initClusterTls(foreign, 'foreign', cluster.names.map((name, i) => ({ name, address: cluster.address(i) })));
    const before = readdirSync(foreign).map((f) => readText(join(foreign, f)));
    const run = await hactl('cluster', 'tls', 'rotate', '--dir', foreign);
    expect(run.code).toBe(2);
    expect(run.err).toMatch(/^hactl: tls_ca_mismatch: n2 serves a certificate that .*foreign\/ca\.crt does not verify \(.*\): is --dir this cluster's\? Nothing changed$/m);
    expect(readdirSync(foreign).map((f) => readText(join(foreign, f)))).toEqual(before);
  });

  test('a degraded cluster is refused before anything changes; a node that does not take its new certificate stops the rotation there', async () => {
    const before = cluster.names.map(fingerprint);
    // n2's config names copies of its files elsewhere (as on a host of its own): its reload finds nothing new.
    const own = join(scratch, 'n2-own');
    cpSync(cluster.tlsDir, own, { recursive: true });
    await cluster.stopSidecar(1);
    const degraded = await hactl('cluster', 'tls', 'rotate', '--dir', cluster.tlsDir);
    expect(degraded.code).toBe(4);
    expect(degraded.err).toMatch(/^hactl: cluster_degraded: n2 is offline: rotate a healthy cluster only \(each node must come back before the next\); nothing changed$/m);
    expect(cluster.names.map(fingerprint)).toEqual(before);
    const tls = (dir: string) => ({ tls: { certFile: join(dir, 'n2.crt'), keyFile: join(dir, 'n2.key'), caFile: join(dir, 'ca.crt'), verifyClient: true } });
    try {
      cluster.writeConfig(1, tls(own));
      await cluster.startSidecar(1);
      await cluster.waitAllStreaming();
      const failed = await hactl('cluster', 'tls', 'rotate', '--dir', cluster.tlsDir);
      expect(failed.code).toBe(1);
      expect(failed.err.trim()).toBe(
        `hactl: tls_rotate_failed: n2: API port 8008 and Postgres port 15432 did not serve the new certificate 30 s after the reload (does its tls.certFile name ${file('n2.crt')}?). ` +
          `Rotated: none; n2 has its new files in ${cluster.tlsDir}; n3, n1 keep their old ones`,
      );
      expect(fingerprint('n2')).not.toBe(before[1]);
      expect([fingerprint('n1'), fingerprint('n3')]).toEqual([before[0], before[2]]);
      expect(await served(1)).toEqual([before[1], before[1]]);
    } finally {
      await cluster.stopSidecar(1);
      cluster.writeConfig(1);
      await cluster.startSidecar(1);
    }
    await cluster.waitAllStreaming();
    // Started again on the files of --dir: n2 serves its new certificate.
    expect(await served(1)).toEqual([fingerprint('n2'), fingerprint('n2')]);
  }, 180_000);

  test('under a client writing through HAProxy (synchronous): no acknowledged row lost, no failover, every port serves the new certificate', async () => {
    const leader = (await cluster.leaderIndex())!;
    expect((await cluster.call(leader, 'PATCH', '/config', { synchronousMode: true })).status).toBe(200);
    await cluster.waitAllStreaming(true);
    await cluster.sql(leader, 'create table if not exists acked (id bigint primary key)');
    const term = (await cluster.call(leader, 'GET', '/cluster')).body.term;
    const before = await Promise.all([0, 1, 2].map(served));
    // A holder of an old certificate: n1's as it is now, kept aside.
    copyFileSync(file('n1.crt'), join(scratch, 'old-n1.crt'));
    copyFileSync(file('n1.key'), join(scratch, 'old-n1.key'));

    const writer = new WritingClient(haproxy.postgres);
    const watcher = new LeaderWatcher(cluster);
    let rotation;
    try {
      await waitFor('writes acknowledged through HAProxy', async () => writer.acked.length >= 20, 15_000, 50);
      rotation = await hactl('cluster', 'tls', 'rotate', '--dir', cluster.tlsDir);
      const after = writer.acked.length;
      await waitFor('writes acknowledged after the rotation', async () => writer.acked.length >= after + 20, 15_000, 50);
    } finally {
      await watcher.stop();
      await writer.stop();
    }
    expect(rotation.err).toBe('');
    expect(rotation.code).toBe(0);
    // Standbys first, the leader last, each serving its new certificate before the next.
    const lines = rotation.out.trim().split('\n');
    expect(lines.slice(0, 3).map((l) => l.split(':')[0])).toEqual([...cluster.names.filter((_, i) => i !== leader), cluster.names[leader]]);
    expect(lines[3]).toBe(`rotated 3 node certificates in ${cluster.tlsDir}; the CA is unchanged, so clients keep working`);
    expect(rotation.out).toMatch(/n1: new certificate served on 8008 and 15432 after \d+\.\d s, and by its Consul agent on 8501 \(expires in 82[45] days\)/);
    console.log(`tls rotate: ${rotation.out.trim().replace(/\n/g, ' | ')}; writer: ${writer.acked.length} acked, ${writer.errors} errors, longest gap ${Math.round(writer.longestGapMs)} ms`);

    expect(watcher.overlaps).toEqual([]);
    expect(await cluster.leaderIndex()).toBe(leader);
    expect((await cluster.call(leader, 'GET', '/cluster')).body.term).toBe(term);
    for (let i = 0; i < 3; i++) {
      const now = await served(i);
      expect(now).toEqual([fingerprint(cluster.names[i]!), fingerprint(cluster.names[i]!)]);
      expect(now[0]).not.toBe(before[i]![0]);
      // Its Consul agent serves the same files, and was reloaded: it serves the new certificate too.
      expect(await servedByConsul(i)).toBe(fingerprint(cluster.names[i]!));
    }
    const rows = await cluster.sql<{ id: string }>(haproxy.postgres, 'select id from acked');
    const stored = new Set(rows.map((r) => Number(r.id)));
    expect(writer.acked.filter((id) => !stored.has(id))).toEqual([]);
    const senders = await walsenders(leader);
    expect(senders.map((s) => s.name)).toEqual(cluster.names.filter((_, i) => i !== leader));
    expect(senders.every((s) => s.ssl)).toBe(true);

    // The old certificate is of the same CA: a client that still shows it gets in, on the API and on Postgres.
    const old = { cert: readText(join(scratch, 'old-n1.crt')), key: readText(join(scratch, 'old-n1.key')), ca: readText(file('ca.crt')) };
    for (let i = 0; i < 3; i++) {
      const client = new pg.Client({ host: cluster.address(i), port: 15432, ...SUPERUSER_LOGIN, ssl: old, connectionTimeoutMillis: 5_000 });
      client.on('error', () => undefined);
      await client.connect();
      expect((await client.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
      await client.end();
    }
    const res = await httpsFetch(old)(`${cluster.apiUrl(0)}/cluster`, { headers: { authorization: `Bearer ${CLUSTER_TOKEN}` } });
    expect(res.status).toBe(200);
    await res.body?.cancel();
  }, 240_000);

  test('a rotation to 10-day certificates: /cluster, the metrics, the status and the log say the certificates expire soon', async () => {
    const rotation = await hactl('cluster', 'tls', 'rotate', '--dir', cluster.tlsDir, '--days', '10');
    expect(rotation.err).toBe('');
    expect(rotation.code).toBe(0);
    expect(rotation.out).toMatch(/\(expires in (9|10) days\)/);
    const members = await waitFor('every member record with its 10-day certificate', async () => {
      const m = (await cluster.members()) as unknown as { name: string; tls?: { daysLeft: number; expiring: boolean; validTo: string } }[];
      return m.length === 3 && m.every((x) => x.tls?.expiring === true) ? m : undefined;
    }, 15_000, 250);
    for (const m of members) {
      expect(m.tls!.daysLeft).toBeGreaterThanOrEqual(9);
      expect(m.tls!.daysLeft).toBeLessThanOrEqual(10);
      expect(m.tls!.validTo).toBe(new X509Certificate(readText(file(`${m.name}.crt`))).validTo);
    }
    const metrics = await cluster.fetchApi(`${cluster.apiUrl(1)}/metrics`, { headers: { authorization: `Bearer ${CLUSTER_TOKEN}` } });
    expect(await metrics.text()).toMatch(/^ha_sidecar_tls_certificate_expiry_days\{node="n2"\} (9|10)$/m);
    const status = await hactl('cluster', 'status');
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/\s+CERT\n/);
    expect(status.out).toMatch(/^warning: n2's certificate expires in (9|10) days \(.*\): run `hactl cluster tls rotate`$/m);
    for (let i = 0; i < 3; i++) expect(readText(cluster.driver.node(i).sidecarLog)).toMatch(/"code":"tls_certificate_expiring".*"daysLeft":(9|10)/);
  }, 120_000);
});
