import net from 'node:net';
import type { TlsFiles } from '../shared/certificates.js';
import { confValue, conninfo, pgpassField } from './quoting.js';
import { SUPERUSER } from './settings.js';

/**
 * The configuration files the sidecar owns in a data directory. They are rendered whole from the
 * controller's settings and state, every time, so a copy of the primary's files brought in by pg_basebackup
 * or pg_rewind is simply overwritten, and no edit by hand survives (change the sidecar's config instead).
 */

/** Included at the end of postgresql.conf, so these win over anything initdb or an operator put before. */
export const SIDECAR_CONF = 'ha-sidecar.conf';
const INCLUDE_LINE = `include_if_exists = '${SIDECAR_CONF}'`;

/** Where a standby streams from. */
export interface Upstream {
  host: string;
  port: number;
}

export interface ConfInput {
  /** This node's pgName: cluster_name, application_name and the name of its slot on the primary. */
  name: string;
  host: string;
  port: number;
  socketDir: string;
  passFile: string;
  replicationUser: string;
  /** Set on a standby: primary_conninfo and primary_slot_name point there. */
  upstream: Upstream | null;
  synchronousStandbyNames: string;
  /** Postgres's copies of the node's TLS files (PostgresNode.tls): SSL on, and the standby verifies its upstream. */
  tls: TlsFiles | null;
}

/**
 * The libpq parameters of a connection to another member: `verify-full`, the peer's certificate must be of
 * the cluster CA and name the address connected to (every node certificate names its address), and this
 * node's own certificate for the peer's `clientcert` check (renderHba). Without TLS, none.
 */
export function sslParams(tls: TlsFiles | null): Record<string, string> {
  if (!tls) return {};
  return { sslmode: 'verify-full', sslrootcert: tls.caFile, sslcert: tls.certFile, sslkey: tls.keyFile };
}

/**
 * Sizing for a small manager database on a small machine (the local cluster runs three nodes on 2 cores).
 * `max_connections`, `max_wal_senders` and the others must be the same or higher on a standby than on its
 * primary, so they are constants, not per-node settings.
 */
const SIZING = {
  max_connections: 50,
  shared_buffers: '32MB',
  /** One per standby plus pg_basebackup's and pg_rewind's own, with room for 5-node clusters. */
  max_wal_senders: 10,
  max_replication_slots: 10,
  /**
   * WAL kept even without a slot, so a standby that is cloned before its slot exists, or whose slot was
   * dropped while it was away, can still catch up. Slots do the real retention; this is the safety margin.
   */
  wal_keep_size: '256MB',
  /**
   * Most WAL a slot may hold back. A member that is down for long would otherwise fill the primary's disk
   * and take the primary down with it; past this its slot is invalidated ("lost": the leader recreates it)
   * and that member must be cloned again. 4 GB is days of a manager's WAL.
   */
  max_slot_wal_keep_size: '4GB',
};

/** Settings this file owns; they are also removed from postgresql.auto.conf, which would override them. */
export const MANAGED_SETTINGS = [
  'listen_addresses',
  'port',
  'ssl',
  'ssl_cert_file',
  'ssl_key_file',
  'ssl_ca_file',
  'unix_socket_directories',
  'cluster_name',
  ...Object.keys(SIZING),
  'password_encryption',
  'wal_level',
  'hot_standby',
  'hot_standby_feedback',
  'recovery_target_timeline',
  'wal_retrieve_retry_interval',
  'primary_conninfo',
  'primary_slot_name',
  'synchronous_standby_names',
  'logging_collector',
  'log_line_prefix',
];

/** The text of ha-sidecar.conf. */
export function renderSidecarConf(i: ConfInput): string {
  const lines: [string, string | number][] = [
    ['listen_addresses', confValue(i.host)],
    ['port', i.port],
    ['unix_socket_directories', confValue(i.socketDir)],
    // The files are re-read at every reload (PostgreSQL >= 10), so new certificates need no restart.
    ...(i.tls
      ? ([
          ['ssl', 'on'],
          ['ssl_cert_file', confValue(i.tls.certFile)],
          ['ssl_key_file', confValue(i.tls.keyFile)],
          // The CA that clients' certificates are checked against (pg_hba's clientcert).
          ['ssl_ca_file', confValue(i.tls.caFile)],
        ] as [string, string][])
      : ([['ssl', 'off']] as [string, string][])),
    ['cluster_name', confValue(i.name)],
    ...Object.entries(SIZING).map(([k, v]): [string, string | number] => [k, typeof v === 'number' ? v : confValue(v)]),
    ['password_encryption', confValue('scram-sha-256')],
    // Data checksums (initdb --data-checksums) give pg_rewind what it needs, so wal_log_hints stays off.
    ['wal_level', confValue('replica')],
    ['hot_standby', 'on'],
    // The primary keeps rows a standby's queries still read; costs some bloat, avoids query cancels.
    ['hot_standby_feedback', 'on'],
    // Follow a new primary onto its new timeline after a failover (the default since 12, stated here).
    ['recovery_target_timeline', confValue('latest')],
    // A standby whose upstream ends its stream retries this much later. An upstream that is promoted ends
    // it at the timeline switch, so the default 5 s was most of a synchronous failover (the new leader's
    // writes wait until a standby streams from it). A retry is one connection attempt.
    ['wal_retrieve_retry_interval', confValue('500ms')],
    ['synchronous_standby_names', confValue(i.synchronousStandbyNames)],
    // The sidecar writes the postmaster's stderr to its log file; no collector process in between.
    ['logging_collector', 'off'],
    ['log_line_prefix', confValue('%m [%p] %q%u@%d ')],
  ];
  if (i.upstream) {
    const info = conninfo({
      host: i.upstream.host,
      port: i.upstream.port,
      user: i.replicationUser,
      // The password stays in the 0600 passfile, never in a config file that pg_basebackup copies around.
      passfile: i.passFile,
      application_name: i.name,
      connect_timeout: 5,
      ...sslParams(i.tls),
    });
    lines.push(['primary_conninfo', confValue(info)], ['primary_slot_name', confValue(i.name)]);
  }
  return [
    '# Managed by ha-sidecar: rewritten whole at every start, clone, rewind, follow and promotion.',
    '# Edits here are lost; change the sidecar configuration instead.',
    ...lines.map(([k, v]) => `${k} = ${v}`),
    '',
  ].join('\n');
}

/** The CIDR of one address (/32 or /128). */
const hostCidr = (address: string): string => `${address}/${net.isIPv6(address) ? 128 : 32}`;

/**
 * pg_hba.conf: password (SCRAM) logins only, from the members' addresses only, plus the local socket.
 * Replication is allowed for the replication user alone. On one machine (members on 127.0.0.x), a
 * connection to any loopback address comes from 127.0.0.1 (the kernel's preferred source for 127/8, and
 * libpq cannot pick a source address), so 127.0.0.1 is then a member address too.
 *
 * With `tls` every TCP row is `hostssl`: a connection without SSL matches no row and is refused. The
 * replication user and the superuser (the members' own connections: streaming, clones, rewinds, position
 * reads) must also show a certificate of the cluster CA (`clientcert=verify-ca`), so their password alone,
 * or a certificate of another CA, does not get in. Not `verify-full`: that compares the certificate's CN with
 * the role name, and node certificates name their node. The application's users need no certificate: the
 * manager and HAProxy's clients log in with their password over SSL.
 */
export function renderHba(memberAddresses: string[], replicationUser: string, tls: boolean): string {
  const unique = new Set(memberAddresses);
  if (memberAddresses.some((a) => a.startsWith('127.'))) unique.add('127.0.0.1');
  const addresses = [...unique].sort();
  const type = tls ? 'hostssl' : 'host';
  const member = tls ? 'scram-sha-256 clientcert=verify-ca' : 'scram-sha-256';
  const rows: string[][] = [['local', 'all', 'all', '', 'scram-sha-256']];
  // pg_hba takes the first row that matches type, database, user and address, and no other after it.
  if (tls) for (const a of addresses) rows.push([type, 'all', SUPERUSER, hostCidr(a), member]);
  for (const a of addresses) rows.push([type, 'all', 'all', hostCidr(a), 'scram-sha-256']);
  for (const a of addresses) rows.push([type, 'replication', replicationUser, hostCidr(a), member]);
  return [
    `# Managed by ha-sidecar: only the cluster members, only with SCRAM passwords${tls ? ', only over SSL' : ''}. Edits here are lost.`,
    '# TYPE  DATABASE     USER                ADDRESS               METHOD',
    ...rows.map(([type, db, user, address, method]) => `${type.padEnd(7)} ${db.padEnd(12)} ${user.padEnd(19)} ${address.padEnd(21)} ${method}`),
    '',
  ].join('\n');
}

/** The libpq password file of the sidecar's tools and of the standby's WAL receiver (mode 0600). */
export function renderPgpass(entries: { user: string; password: string }[]): string {
  return entries.map((e) => `*:*:*:${pgpassField(e.user)}:${pgpassField(e.password)}`).join('\n') + '\n';
}

/** postgresql.conf with the include of ha-sidecar.conf appended, or null when it is already there. */
export function withInclude(postgresqlConf: string): string | null {
  if (postgresqlConf.split('\n').some((l) => l.trim() === INCLUDE_LINE)) return null;
  const sep = postgresqlConf.endsWith('\n') ? '' : '\n';
  return `${postgresqlConf}${sep}\n# Settings managed by ha-sidecar (replication, addresses); keep this line last.\n${INCLUDE_LINE}\n`;
}

/**
 * postgresql.auto.conf without the managed settings (an ALTER SYSTEM, or `pg_basebackup -R` on some
 * earlier clone, would otherwise override ha-sidecar.conf), or null when there is nothing to remove.
 */
export function scrubAutoConf(autoConf: string): string | null {
  const managed = new Set(MANAGED_SETTINGS);
  const lines = autoConf.split('\n');
  const kept = lines.filter((l) => !managed.has(l.split('=')[0].trim().toLowerCase()));
  return kept.length === lines.length ? null : kept.join('\n');
}
