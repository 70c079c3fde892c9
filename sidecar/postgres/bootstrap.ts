import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SidecarError } from '../errors.js';
import { sslParams, type Upstream } from './conf.js';
import { describe, queryRows, withClient } from './connection.js';
import { prepareDirs, writeConfig } from './data-dir.js';
import { chownTo, lastLines, runTool, writeOwnedFile } from '../shared/process.js';
import { progressLogger } from './progress.js';
import { conninfo, quoteIdent, quoteLiteral } from './quoting.js';
import { scramMatches, scramVerifier } from './scram.js';
import { SUPERUSER, type PostgresNode } from './settings.js';
import type { PostgresIntent } from './state-file.js';

/**
 * How a data directory comes to be: initdb for a new cluster's first primary, pg_basebackup for every
 * other node, and the roles and database the application needs. Both build the copy in a temporary
 * directory next to the data directory and move it in place only once complete.
 */

/** initdb into `<dataDir>.initdb`, the sidecar's configuration, then rename; refuses a non-empty directory. */
export async function initdb(node: PostgresNode, state: PostgresIntent): Promise<void> {
  const { settings, user, log } = node;
  const { dataDir, binDir } = settings;
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new SidecarError('postgres_data_exists', `${dataDir} is not empty but holds no PostgreSQL data directory; move it away`, 409);
  }
  prepareDirs(node);
  const tmp = `${dataDir}.initdb`;
  const pwfile = `${dataDir}.initdb-pw`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  chownTo(tmp, user);
  writeOwnedFile(pwfile, settings.superuserPassword + '\n', user);
  const t0 = performance.now();
  log.info('initialising a new data directory (initdb)', { dataDir });
  let result;
  try {
    result = await runTool(
      [
        join(binDir, 'initdb'),
        '--pgdata',
        tmp,
        '--data-checksums',
        '--auth=scram-sha-256',
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--locale=C.UTF-8',
        // 1 MB WAL segments instead of 16 MB. pg_rewind copies every WAL file of its source, and each failover
        // leaves one segment of the old timeline in pg_wal until the WAL moves on by wal_keep_size: on a
        // quiet manager database 40 failovers made a 700 MB pg_wal, and a rejoin's rewind took 15-44 s on a
        // loaded machine (design.md "Convergence"). A manager's write rate needs no larger segments.
        '--wal-segsize=1',
      ],
      user,
    );
  } finally {
    rmSync(pwfile, { force: true });
  }
  if (result.code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    throw new SidecarError(
      'initdb_failed',
      `initdb failed (${result.signal ?? `exit ${result.code}`}); check that user ${user.name ?? 'running the sidecar'} can write ${dirname(dataDir)}:\n${lastLines(result.stderr + result.stdout)}`,
    );
  }
  writeConfig(node, state, tmp);
  rmSync(dataDir, { recursive: true, force: true }); // empty, checked above
  renameSync(tmp, dataDir);
  log.info('initdb done', { ms: Math.round(performance.now() - t0) });
}

/** The replication role, the app role and the app database, with passwords as SCRAM verifiers. */
export async function ensureRoles(node: PostgresNode): Promise<void> {
  const { replicationUser, replicationPassword, appUser, appPassword, appDatabase } = node.settings;
  await withClient(node.settings, async (c) => {
    const roles: [string, string, string][] = [
      [replicationUser, replicationPassword, 'LOGIN REPLICATION'],
      [appUser, appPassword, 'LOGIN'],
    ];
    for (const [role, password, attributes] of roles) {
      const found = await c.query<{ pw: string | null; login: boolean; repl: boolean }>(
        'select rolpassword as pw, rolcanlogin as login, rolreplication as repl from pg_authid where rolname = $1',
        [role],
      );
      const row = found.rows[0];
      const verb = row === undefined ? 'CREATE' : 'ALTER';
      const fine = row !== undefined && row.login && row.repl === attributes.includes('REPLICATION') && scramMatches(row.pw, password);
      if (fine) continue;
      await c.query(`${verb} ROLE ${quoteIdent(role)} WITH ${attributes} PASSWORD ${quoteLiteral(scramVerifier(password))}`);
      node.log.info(`${verb === 'CREATE' ? 'created' : 'updated'} role`, { role });
    }
    const db = await c.query('select 1 from pg_database where datname = $1', [appDatabase]);
    if (db.rowCount === 0) {
      await c.query(`CREATE DATABASE ${quoteIdent(appDatabase)} OWNER ${quoteIdent(appUser)}`);
      node.log.info('created database', { database: appDatabase, owner: appUser });
    }
  });
}

/** Whether the running server holds a database other than `postgres` and the app's, or any relation in those. */
export async function holdsUserData(node: PostgresNode): Promise<boolean> {
  const dbs = await queryRows<{ datname: string }>(node.settings, 'select datname from pg_database where datallowconn and not datistemplate');
  const names = dbs.map((r) => r.datname);
  const extra = names.filter((n) => n !== 'postgres' && n !== node.settings.appDatabase);
  if (extra.length > 0) {
    node.log.info('postgres holds user databases', { databases: extra });
    return true;
  }
  for (const database of names) {
    const [{ n }] = await queryRows<{ n: number }>(
      node.settings,
      `select count(*)::int as n from pg_class c join pg_namespace s on s.oid = c.relnamespace
        where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
          and s.nspname not in ('pg_catalog', 'information_schema') and s.nspname !~ '^pg_(toast|temp_|toast_temp_)'`,
      [],
      database,
    );
    if (n > 0) {
      node.log.info('postgres holds user relations', { database, relations: n });
      return true;
    }
  }
  return false;
}

/**
 * pg_basebackup from `primary` into `<dataDir>.clone` (WAL streamed through this node's slot), configured
 * per `state`, then moved in place. A failure (`basebackup_failed`) leaves the old data as it was.
 */
export async function basebackup(node: PostgresNode, state: PostgresIntent, primary: Upstream, onProgress?: (percent: number) => void): Promise<void> {
  const { settings, user, log, name, previousDataDir } = node;
  const { dataDir, binDir } = settings;
  const tmp = `${dataDir}.clone`;
  const old = `${dataDir}.old`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { mode: 0o700 });
  chownTo(tmp, user);
  log.info('cloning postgres from the primary (pg_basebackup)', { primary: describe(primary), slot: name });
  const result = await runTool(
    [
      join(binDir, 'pg_basebackup'),
      '--pgdata',
      tmp,
      '--wal-method=stream',
      '--checkpoint=fast',
      '--slot',
      name,
      '--progress',
      '--verbose',
      '--dbname',
      conninfo({
        host: primary.host,
        port: primary.port,
        user: settings.replicationUser,
        passfile: node.passFile,
        application_name: `${name}_clone`,
        connect_timeout: 5,
        ...sslParams(node.tls),
      }),
    ],
    user,
    progressLogger(log, 'pg_basebackup', onProgress),
  );
  if (result.code !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    const slotMissing = /replication slot .* does not exist/.test(result.stderr);
    throw new SidecarError(
      'basebackup_failed',
      `pg_basebackup from ${describe(primary)} failed (${result.signal ?? `exit ${result.code}`})` +
        (slotMissing ? `: the primary has no replication slot "${name}" yet (the leader creates one per member)` : '') +
        `; the local data was left as it was:\n${lastLines(result.stderr)}`,
      502,
      { primary, slot: name },
    );
  }
  writeConfig(node, state, tmp);
  // The data being replaced may be the only copy of commits (a diverged former primary): it is kept as
  // `.previous` until the new copy streams (discardPreviousDataDir). A `.previous` already there means the
  // data now in place is an earlier clone that never streamed, a copy of the leader's: that one goes.
  if (existsSync(dataDir)) {
    if (existsSync(previousDataDir)) {
      rmSync(old, { recursive: true, force: true });
      renameSync(dataDir, old);
    } else {
      renameSync(dataDir, previousDataDir);
      log.warn('kept the replaced data directory aside until the new copy streams', { dir: previousDataDir });
    }
  }
  renameSync(tmp, dataDir);
  rmSync(old, { recursive: true, force: true });
}
