import net from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import type { SidecarConfig } from '../config.js';
import { SidecarError } from '../errors.js';
import type { Logger } from '../log.js';
import { resolveOsUser, type OsUser } from '../shared/process.js';
import type { TlsFiles } from '../shared/certificates.js';
import { deriveSecret } from '../shared/secrets.js';
import { pgName } from './quoting.js';

/** The role name initdb gives the superuser; pg_rewind and the sidecar itself connect as it. */
export const SUPERUSER = 'postgres';

const roleName = z.string().regex(/^[a-z_][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, - or _, starting with a letter or _');
const ipAddress = z.string().refine((a) => net.isIP(a) !== 0, 'an IP address');
const settingsSchema = z
  .object({
    nodeName: z.string().min(1),
    binDir: z.string().min(1),
    dataDir: z.string().regex(/^\/.*[^/]$/, 'an absolute path without a trailing slash'),
    socketDir: z.string().regex(/^\//, 'an absolute path'),
    host: ipAddress,
    port: z.number().int().min(1).max(65535),
    runAsUser: z.string().min(1).optional(),
    superuserPassword: z.string().min(8),
    replicationUser: roleName,
    replicationPassword: z.string().min(8),
    appDatabase: roleName,
    appUser: roleName,
    appPassword: z.string().min(8),
    memberAddresses: z.array(ipAddress).min(1),
    tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1), caFile: z.string().min(1) }).strict().optional(),
  })
  .strict();

/**
 * What a node's PostgreSQL is made of. Passwords are SCRAM-hashed before they reach the server and are kept on
 * disk only in the 0600 password file `<dataDir>.pgpass`, never on a command line or in a log.
 */
export interface PostgresSettings {
  /** This node's name; its slot on the primary and its application_name are `pgName(nodeName)`. */
  nodeName: string;
  binDir: string;
  /** The data directory. Next to it live `<dataDir>.log` (server log), `<dataDir>.pgpass` and `<dataDir>.state.json`. */
  dataDir: string;
  /** Unix socket directory of this node alone. */
  socketDir: string;
  /** Address PostgreSQL listens on (the node's address) and its port. */
  host: string;
  port: number;
  /** OS user PostgreSQL runs as. Default: `postgres` when the sidecar is root, the sidecar's own user otherwise. */
  runAsUser?: string;
  /** Password of the superuser `postgres`. */
  superuserPassword: string;
  replicationUser: string;
  replicationPassword: string;
  appDatabase: string;
  appUser: string;
  appPassword: string;
  /** Every member's address: pg_hba lets logins and replication in from these only. */
  memberAddresses: string[];
  /**
   * The node's certificate, key and the cluster CA (the config's `tls` section): Postgres then speaks SSL
   * only on its TCP port, and every connection between members verifies the other end with the CA.
   */
  tls?: TlsFiles;
}

/** Validated settings plus what follows from them: the parts of the controller share this one value. */
export interface PostgresNode {
  readonly settings: PostgresSettings;
  /** This node's slot and application name. */
  readonly name: string;
  readonly user: OsUser;
  readonly logFile: string;
  readonly passFile: string;
  readonly stateFile: string;
  /** The data directory a re-clone moved aside; kept until the new copy has streamed from a leader. */
  readonly previousDataDir: string;
  /** Postgres's own copies of the TLS files (see installTlsFiles), or null without `tls`. */
  readonly tls: TlsFiles | null;
  readonly log: Logger;
}

/** Validates `settings` (`invalid_config`, 400, naming every bad field) and lays out the files next to the data directory. */
export function postgresNode(settings: PostgresSettings, log: Logger): PostgresNode {
  const parsed = settingsSchema.safeParse(settings);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(settings)'}: ${i.message}`).join('; ');
    throw new SidecarError('invalid_config', `invalid postgres settings: ${issues}`, 400);
  }
  return {
    settings: parsed.data,
    name: pgName(settings.nodeName),
    user: resolveOsUser(settings.runAsUser),
    logFile: `${settings.dataDir}.log`,
    passFile: `${settings.dataDir}.pgpass`,
    stateFile: `${settings.dataDir}.state.json`,
    previousDataDir: `${settings.dataDir}.previous`,
    tls: settings.tls ? tlsCopies(`${settings.dataDir}.tls`) : null,
    log,
  };
}

/** The config's `postgres` section. */
export type PostgresSection = SidecarConfig['postgres'];

/** The node-wide values the Postgres part needs besides its section. */
export interface PostgresNodeValues {
  nodeName: string;
  /** Postgres listens on this node's address. */
  address: string;
  /** Every node's address: pg_hba lets replication in from these only. */
  clusterAddresses: string[];
  /** The passwords not given in the section derive from it. */
  clusterToken: string;
  /** The sidecar's data directory: Postgres's data is `<dataDir>/postgres`, its socket `<dataDir>/pgsocket`. */
  dataDir: string;
  /** The config's `tls` section, when there is one. */
  tls?: TlsFiles;
}

/** The node's Postgres as its config makes it; snapshots (sidecar/snapshot/) dump and restore through the same socket and login. */
export function postgresSettings(section: PostgresSection, node: PostgresNodeValues): PostgresSettings {
  const secret = (purpose: string) => deriveSecret(node.clusterToken, purpose);
  return {
    nodeName: node.nodeName,
    binDir: section.binDir,
    dataDir: join(node.dataDir, 'postgres'),
    socketDir: join(node.dataDir, 'pgsocket'),
    host: node.address,
    port: section.port,
    runAsUser: section.runAsUser,
    superuserPassword: secret('postgres-superuser'),
    replicationUser: 'replicator',
    replicationPassword: secret('replication'),
    appDatabase: section.appDatabase,
    appUser: section.appUser,
    appPassword: section.appPassword ?? secret('app'),
    memberAddresses: node.clusterAddresses,
    ...(node.tls ? { tls: { certFile: node.tls.certFile, keyFile: node.tls.keyFile, caFile: node.tls.caFile } } : {}),
  };
}

/**
 * Where Postgres's copies of the TLS files live: `<dataDir>.tls/`, beside the data directory and not in it,
 * so that pg_basebackup never carries one node's key to another.
 */
function tlsCopies(dir: string): TlsFiles {
  return { certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key'), caFile: join(dir, 'ca.crt') };
}
