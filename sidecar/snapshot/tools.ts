import { execFile } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type pg from 'pg';
import { Client } from '../shared/pg.js';
import { SidecarError, errorMessage } from '../errors.js';
import type { PostgresSettings } from '../postgres/settings.js';
import { TEMP_PATTERN } from '../mirror/paths.js';
import { loadTar } from './archive.js';

const run = promisify(execFile);

/**
 * A restore waits this long for a table lock the application holds, then fails and rolls back whole: an
 * operator sees "lock timeout" and can stop the application, rather than a restore that hangs silently.
 */
const RESTORE_LOCK_TIMEOUT = '60s';

/** pg_dump / pg_restore as the superuser over the node's own unix socket; the password goes by environment. */
async function pgTool(settings: PostgresSettings, tool: 'pg_dump' | 'pg_restore', args: string[], options = ''): Promise<void> {
  const env = { ...process.env, PGPASSWORD: settings.superuserPassword, PGOPTIONS: options, PGAPPNAME: 'ha-sidecar-snapshot' };
  const login = ['-h', settings.socketDir, '-p', String(settings.port), '-U', 'postgres', '-d', settings.appDatabase];
  try {
    await run(join(settings.binDir, tool), [...login, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    throw new SidecarError('snapshot_failed', `${tool} failed: ${stderr || errorMessage(e)}`, 500);
  }
}

/**
 * A consistent dump of the application database: pg_dump runs in one repeatable-read transaction, so the
 * dump is the database as of one instant while writes go on. Custom format (-Fc), compressed.
 */
export function dumpDatabase(settings: PostgresSettings, out: string): Promise<void> {
  return pgTool(settings, 'pg_dump', ['-Fc', '-f', out]);
}

/**
 * Restores a dump over the application database in ONE transaction (--single-transaction, --exit-on-error):
 * every object of the dump is dropped (--clean --if-exists) and recreated with its rows, and either all of
 * it commits or none. Objects the dump does not hold are left alone.
 */
export function restoreDatabase(settings: PostgresSettings, dump: string): Promise<void> {
  return pgTool(settings, 'pg_restore', ['--clean', '--if-exists', '--single-transaction', '--exit-on-error', dump], `-c lock_timeout=${RESTORE_LOCK_TIMEOUT}`);
}

/** One statement as the superuser over the node's unix socket. */
export async function querySocket<R extends pg.QueryResultRow>(settings: PostgresSettings, sql: string): Promise<R[]> {
  const client = new Client({ host: settings.socketDir, port: settings.port, user: 'postgres', password: settings.superuserPassword, database: settings.appDatabase, connectionTimeoutMillis: 5_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The mirror's own temporary files are not part of the directory's content. */
const notTemp = (path: string): boolean => !TEMP_PATTERN.test(path.split('/').pop() ?? '');

/** The files directory as a gzipped tar (paths relative to it). */
export async function archiveFiles(directory: string, out: string): Promise<void> {
  await (await loadTar()).c({ cwd: directory, file: out, gzip: true, portable: true, filter: notTemp }, ['.']);
}

/**
 * Makes the files directory hold exactly the archive's files: empties it, then extracts. tar refuses
 * absolute paths and `..`, so nothing lands outside the directory.
 */
export async function restoreFiles(directory: string, archive: string): Promise<void> {
  for (const entry of readdirSync(directory)) if (notTemp(entry)) rmSync(join(directory, entry), { recursive: true, force: true });
  await (await loadTar()).x({ cwd: directory, file: archive, strict: true });
}
