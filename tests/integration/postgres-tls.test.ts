import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import pg from 'pg';
import { deriveSecret } from '../../sidecar/shared/secrets.js';
import { APP_LOGIN, CLUSTER_TOKEN, SUPERUSER_LOGIN, TEST_CLIENT_CERT, TestCluster } from '../harness/cluster.js';
import { hactlIn, profileTlsArgs } from '../harness/hactl.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { runCommand, waitFor } from '../harness/processes.js';
import { renewedCertificate, tlsClusterSuite } from '../harness/tls.js';
import { WritingClient } from '../harness/writer.js';

/**
 * PostgreSQL over SSL on a real 3-node cluster with the `tls` section (Consul, Postgres, sidecars, HAProxy):
 * every walsender and client connection is encrypted, plain TCP is refused, another CA is refused at both
 * ends, and after a failover the new standbys stream over SSL again.
 */

const PSQL = '/usr/lib/postgresql/15/bin/psql';
const scratch = mkdtempSync(join(tmpdir(), 'postgres-tls-'));
const REPLICATION_PASSWORD = deriveSecret(CLUSTER_TOKEN, 'replication');
const readText = (path: string) => readFileSync(path, 'utf8');

describe('PostgreSQL over SSL with the cluster CA (3 nodes)', () => {
  const cluster = new TestCluster({ size: 3, postgres: true, tls: { verifyClient: true } });
  const haproxy = new TestHaproxy(cluster);
  const { other } = tlsClusterSuite(cluster, haproxy, scratch);
  const file = (name: string) => join(cluster.tlsDir, name);
  const intruder = () => other().nodes[0];

  /** psql as the replication user on node i (replication protocol: IDENTIFY_SYSTEM); exit code and stderr. */
  const replicationLogin = async (i: number, ssl: Record<string, string>) => {
    const conninfo = Object.entries({ host: cluster.address(i), port: '15432', user: 'replicator', dbname: 'replication', replication: 'true', connect_timeout: '5', ...ssl })
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    const run = await runCommand(PSQL, ['-X', '-At', '-c', 'IDENTIFY_SYSTEM', conninfo], { PATH: process.env.PATH ?? '', PGPASSWORD: REPLICATION_PASSWORD }, 20_000);
    return { code: run.code, err: run.err.trim() };
  };

  /** A connection's error, or null when it connects. */
  const connectError = async (config: pg.ClientConfig): Promise<string | null> => {
    const client = new pg.Client({ connectionTimeoutMillis: 5_000, ...config });
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (e) {
      // Not ended: after a handshake the server broke off, end() can wait for an 'end' that never comes.
      return (e as Error).message;
    }
    await client.end();
    return null;
  };

  /** The leader's walsenders with their SSL state, once both standbys stream. */
  const walsenders = async (leader: number) =>
    cluster.sql<{ name: string; pid: number; ssl: boolean; version: string | null }>(
      leader,
      'select r.application_name as name, pid, s.ssl, s.version from pg_stat_replication r join pg_stat_ssl s using (pid) order by 1',
      [],
      SUPERUSER_LOGIN,
    );

  test('pg_stat_ssl: every walsender streams over SSL, and so do clients, direct and through HAProxy', async () => {
    const leader = (await cluster.leaderIndex())!;
    const standbys = cluster.names.filter((_, i) => i !== leader);
    const senders = await walsenders(leader);
    expect(senders.map((s) => s.name)).toEqual(standbys);
    expect(senders.every((s) => s.ssl && /^TLSv1\.[23]$/.test(s.version ?? ''))).toBe(true);

    const ownSsl = 'select s.ssl, host(inet_server_addr()) as server from pg_stat_ssl s where s.pid = pg_backend_pid()';
    for (let i = 0; i < 3; i++) expect(await cluster.sql(i, ownSsl)).toEqual([{ ssl: true, server: cluster.address(i) }]);
    await waitFor('HAProxy to have only the leader in service', async () => (await haproxy.inService().catch(() => [])).join() === cluster.names[leader], 15_000, 100);
    expect(await cluster.sql(haproxy.postgres, ownSsl)).toEqual([{ ssl: true, server: cluster.address(leader) }]);
  });

  test("Postgres reads copies of the node's files, owned by its OS user and 0600, beside the data directory", () => {
    for (let i = 0; i < 3; i++) {
      const sidecarData = join(cluster.baseDir, cluster.names[i], 'sidecar');
      const owner = statSync(join(sidecarData, 'postgres')).uid;
      for (const [copy, source] of [['server.crt', `${cluster.names[i]}.crt`], ['server.key', `${cluster.names[i]}.key`], ['ca.crt', 'ca.crt']]) {
        const path = join(sidecarData, 'postgres.tls', copy);
        expect({ mode: statSync(path).mode & 0o777, uid: statSync(path).uid }).toEqual({ mode: 0o600, uid: owner });
        expect(readText(path)).toBe(readText(file(source)));
      }
    }
  });

  test('a plain connection to 15432 is refused by pg_hba (no entry without encryption), for every role', async () => {
    for (let i = 0; i < 3; i++) {
      for (const login of [APP_LOGIN, SUPERUSER_LOGIN]) {
        expect(await connectError({ host: cluster.address(i), port: 15432, ...login, ssl: false })).toMatch(/no pg_hba\.conf entry for host .*, no encryption/);
      }
      const plain = await replicationLogin(i, { sslmode: 'disable' });
      expect(plain.code).not.toBe(0);
      expect(plain.err).toMatch(/no pg_hba\.conf entry for replication connection .*, no encryption/);
    }
    // Through HAProxy the same: it passes TCP through to the leader's 15432.
    expect(await connectError({ ...haproxy.postgres, ...APP_LOGIN, ssl: false })).toMatch(/no pg_hba\.conf entry/);
  });

  test("a client trusting another CA refuses the server's certificate, on each node and through HAProxy", async () => {
    const ca = other().caFile;
    for (let i = 0; i < 3; i++) {
      const refused = await connectError({ host: cluster.address(i), port: 15432, ...APP_LOGIN, ssl: { ca: readText(ca) } });
      expect(refused).toMatch(/self[- ]signed certificate|unable to (get local issuer|verify)/i);
      const libpq = await replicationLogin(i, { sslmode: 'verify-ca', sslrootcert: ca, sslcert: file(`${TEST_CLIENT_CERT}.crt`), sslkey: file(`${TEST_CLIENT_CERT}.key`) });
      expect(libpq.code).not.toBe(0);
      expect(libpq.err).toMatch(/certificate verify failed/);
    }
    expect(await connectError({ ...haproxy.postgres, ...APP_LOGIN, ssl: { ca: readText(ca), checkServerIdentity: () => undefined } })).toMatch(
      /self[- ]signed certificate|unable to (get local issuer|verify)/i,
    );
  });

  test('replication and the superuser need a client certificate of the cluster CA; the password alone or another CA\'s does not get in', async () => {
    const leader = (await cluster.leaderIndex())!;
    const verified = { sslmode: 'verify-full', sslrootcert: file('ca.crt') };
    const ours = { ...verified, sslcert: file(`${TEST_CLIENT_CERT}.crt`), sslkey: file(`${TEST_CLIENT_CERT}.key`) };
    const ok = await replicationLogin(leader, ours);
    expect([ok.code, ok.err]).toEqual([0, '']);
    const none = await replicationLogin(leader, { ...verified, sslcert: '/nonexistent', sslkey: '/nonexistent' });
    expect(none.err).toMatch(/connection requires a valid client certificate/);
    const theirs = await replicationLogin(leader, { ...verified, sslcert: intruder().certFile, sslkey: intruder().keyFile });
    expect(theirs.code).not.toBe(0);
    expect(theirs.err).toMatch(/unknown ca|certificate verify failed|SSL error/i);

    const server = { host: cluster.address(leader), port: 15432, ...SUPERUSER_LOGIN };
    const ca = readText(file('ca.crt'));
    expect(await connectError({ ...server, ssl: { ca } })).toMatch(/connection requires a valid client certificate/);
    expect(await connectError({ ...server, ssl: { ca, cert: readText(intruder().certFile), key: readText(intruder().keyFile) } })).not.toBeNull();
    // The application's user logs in with its password over SSL, without a certificate.
    expect(await connectError({ host: cluster.address(leader), port: 15432, ...APP_LOGIN, ssl: { ca } })).toBeNull();
  });

  test('hactl dsn: verify-full with the profile\'s CA, which psql uses; through HAProxy verify-ca (the certificate names the node)', async () => {
    const hactl = hactlIn(join(scratch, 'hactl'));
    expect((await hactl('profiles', 'use', cluster.apiUrl(0), '--name', 'test', '--token', CLUSTER_TOKEN, ...profileTlsArgs(cluster))).code).toBe(0);
    const dsn = (await hactl('dsn')).out.trim();
    expect(dsn.endsWith(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(file('ca.crt'))}`)).toBe(true);
    const query = 'select s.ssl from pg_stat_ssl s where s.pid = pg_backend_pid()';
    const env = { PATH: process.env.PATH ?? '' };
    const direct = await runCommand(PSQL, ['-XAtc', query, dsn], env, 20_000);
    expect([direct.code, direct.out.trim(), direct.err]).toEqual([0, 't', '']);

    const { host, port } = haproxy.postgres;
    const viaHaproxy = (sslmode: string) =>
      runCommand(PSQL, ['-XAtc', query, `host=${host} port=${port} user=${APP_LOGIN.user} dbname=${APP_LOGIN.database} sslmode=${sslmode} sslrootcert=${file('ca.crt')}`], { ...env, PGPASSWORD: APP_LOGIN.password }, 20_000);
    const full = await viaHaproxy('verify-full');
    expect(full.code).not.toBe(0);
    expect(full.err).toMatch(/server certificate for "n\d" \(and 2 other names\) does not match host name/);
    const ca = await viaHaproxy('verify-ca');
    expect([ca.code, ca.out.trim()]).toEqual([0, 't']);
  });

  test('a renewed certificate: POST /postgres/reload copies it and Postgres serves it, without a restart or a failover', async () => {
    const leader = (await cluster.leaderIndex())!;
    const name = cluster.names[leader];
    /** The serial of the certificate node i's Postgres shows a new client, and when its postmaster started. */
    const served = async (i: number) => {
      const client = new pg.Client({ host: cluster.address(i), port: 15432, ...APP_LOGIN, ssl: { ca: readText(file('ca.crt')) }, connectionTimeoutMillis: 5_000 });
      client.on('error', () => undefined);
      await client.connect();
      try {
        const socket = (client as unknown as { connection: { stream: TLSSocket } }).connection.stream;
        const [{ started }] = (await client.query<{ started: string }>('select pg_postmaster_start_time()::text as started')).rows;
        return { serial: socket.getPeerCertificate().serialNumber, started };
      } finally {
        await client.end();
      }
    };
    const before = await served(leader);
    const term = (await cluster.call(leader, 'GET', '/cluster')).body.term;
    const renewed = renewedCertificate({ certFile: file('ca.crt'), keyFile: file('ca.key') }, { name, address: cluster.address(leader) }, scratch);
    const newSerial = new X509Certificate(readText(renewed.certFile)).serialNumber;
    expect(newSerial).not.toBe(before.serial);
    // In place of the files the node's config names, as an operator's renewal would put them: the certificate
    // first, with the old key still there, is refused and changes nothing.
    copyFileSync(renewed.certFile, file(`${name}.crt`));
    const halfWay = await cluster.call(leader, 'POST', '/postgres/reload');
    expect([halfWay.status, halfWay.body.error]).toEqual([409, 'tls_certificate_invalid']);
    expect(await served(leader)).toEqual(before);
    copyFileSync(renewed.keyFile, file(`${name}.key`));

    expect((await cluster.call(leader, 'POST', '/postgres/reload')).status).toBe(200);
    const after = await waitFor('the renewed certificate served', async () => {
      const now = await served(leader);
      return now.serial === newSerial ? now : undefined;
    }, 10_000, 100);
    expect(after.started).toBe(before.started);
    expect(await cluster.leaderIndex()).toBe(leader);
    expect((await cluster.call(leader, 'GET', '/cluster')).body.term).toBe(term);
    // The standbys' streams are cut: they connect again, verifying the renewed certificate (verify-full).
    const cut = new Set((await walsenders(leader)).map((s) => s.pid));
    await cluster.sql(leader, 'select pg_terminate_backend(pid) from pg_stat_replication', [], SUPERUSER_LOGIN);
    await waitFor('both standbys streaming again over SSL, on new connections', async () => {
      const senders = await walsenders(leader);
      return senders.length === 2 && senders.every((s) => s.ssl && !cut.has(s.pid));
    }, 20_000, 100);
    await cluster.waitAllStreaming();
  });

  test('a failover with SSL: a writer through HAProxy keeps every acknowledged row, and the new standbys stream over SSL', async () => {
    const leader = (await cluster.leaderIndex())!;
    // Synchronous: an acknowledged commit is on a standby, so a kill -9 of the leader loses none (design rule 5).
    expect((await cluster.call(leader, 'PATCH', '/config', { synchronousMode: true })).status).toBe(200);
    await cluster.waitAllStreaming(true);
    await cluster.sql(leader, 'create table if not exists acked (id bigint primary key)');
    const writer = new WritingClient(haproxy.postgres);
    try {
      await waitFor('writes acknowledged through HAProxy', async () => writer.acked.length >= 20, 15_000, 50);
      await cluster.killSidecar(leader);
      const next = await waitFor('a new leader', () => cluster.leaderIndex([0, 1, 2].filter((i) => i !== leader)), 30_000, 50);
      const before = writer.acked.length;
      await waitFor('writes acknowledged by the new leader', async () => writer.ackedAt.slice(before).some((a) => a.server === cluster.address(next)), 30_000, 50);
      // The killed node comes back as a standby: rewound or cloned from the new leader over SSL (verify-full).
      await cluster.startSidecar(leader);
      await cluster.waitAllStreaming();
      const senders = await walsenders(next);
      expect(senders.map((s) => s.name)).toEqual(cluster.names.filter((_, i) => i !== next));
      expect(senders.every((s) => s.ssl)).toBe(true);
    } finally {
      await writer.stop();
    }
    const rows = await cluster.sql<{ id: string }>(haproxy.postgres, 'select id from acked');
    const stored = new Set(rows.map((r) => Number(r.id)));
    expect(writer.acked.filter((id) => !stored.has(id))).toEqual([]);
  }, 180_000);
});

