import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { SidecarError } from '../errors.js';
import type { Upstream } from './conf.js';
import { describe } from './connection.js';
import { systemIdentifier, writeConfig } from './data-dir.js';
import { walFileTimeline } from './lsn.js';
import { lastLines, runTool } from './process.js';
import { progressLogger } from './progress.js';
import { conninfo } from './quoting.js';
import { SUPERUSER, type PostgresNode } from './settings.js';
import type { PostgresIntent } from './state-file.js';

/** Refuses a source that is not a copy of this node's data (another cluster, or a stray initdb). */
export async function checkSameSystem(node: PostgresNode, c: pg.Client, source: Upstream): Promise<void> {
  const mine = systemIdentifier(node);
  if (mine === null) return;
  const [{ id }] = (await c.query<{ id: string }>('select system_identifier::text as id from pg_control_system()')).rows;
  if (id !== mine) {
    throw new SidecarError(
      'system_identifier_mismatch',
      `${describe(source)} runs database system ${id}, but this node's data belongs to system ${mine}: refusing to replace it with a copy of another cluster (move ${node.settings.dataDir} away by hand if that is really wanted)`,
      409,
      { source, local: mine, remote: id },
    );
  }
}

/**
 * pg_rewind learns the source's timeline from its control file, which a promotion in 15 updates only at
 * its next checkpoint (requested, but spread over minutes). Before that, pg_rewind sees both sides on the
 * old timeline, says "no rewind required" and leaves a diverged target that can never follow. So, as
 * Patroni does, a primary source whose last checkpoint is on an older timeline gets a CHECKPOINT first.
 */
export async function checkpointAfterPromotion(node: PostgresNode, c: pg.Client, source: Upstream): Promise<void> {
  const { rows } = await c.query<{ in_recovery: boolean; checkpoint_tli: number; walfile: string | null }>(
    `select pg_is_in_recovery() as in_recovery, (pg_control_checkpoint()).timeline_id as checkpoint_tli,
            case when not pg_is_in_recovery() then pg_walfile_name(pg_current_wal_lsn()) end as walfile`,
  );
  const { in_recovery: inRecovery, checkpoint_tli: checkpointTli, walfile } = rows[0];
  if (inRecovery || walfile === null) {
    // A leader still promoting: its control file shows the timeline it recovered on, and a rewind from it
    // would leave this node on the wrong timeline for good. Try again once it is a primary.
    throw new SidecarError('rewind_source_not_primary', `${describe(source)} is not a primary yet (still promoting); rewind postponed`, 503, { source });
  }
  const insertTli = walFileTimeline(walfile);
  if (insertTli <= checkpointTli) return;
  node.log.info('checkpointing the source so its control file shows its new timeline', { source: describe(source), timeline: insertTli });
  await c.query('checkpoint');
  const [{ tli }] = (await c.query<{ tli: number }>('select (pg_control_checkpoint()).timeline_id as tli')).rows;
  if (tli < insertTli) {
    throw new SidecarError('rewind_source_not_primary', `${describe(source)}'s control file still shows timeline ${tli} after a checkpoint on ${insertTli}; rewind postponed`, 503, { source });
  }
}

/**
 * Runs pg_rewind on the stopped data directory from `source`, then rewrites the sidecar's files per `state`
 * (a standby of `source`, whatever happened). Returns whether pg_rewind succeeded.
 */
export async function runRewind(
  node: PostgresNode,
  state: PostgresIntent,
  source: Upstream,
  startedAt: number,
  onProgress?: (percent: number) => void,
): Promise<boolean> {
  const { settings, log } = node;
  const server = conninfo({
    host: source.host,
    port: source.port,
    user: SUPERUSER,
    dbname: 'postgres',
    passfile: node.passFile,
    application_name: `${node.name}_rewind`,
    connect_timeout: 5,
  });
  // pg_rewind recovers a crashed target in single-user mode, which refuses to run with standby.signal.
  for (const signal of ['standby.signal', 'recovery.signal']) rmSync(join(settings.dataDir, signal), { force: true });
  log.info('rewinding postgres (pg_rewind)', { source: describe(source) });
  const result = await runTool(
    [join(settings.binDir, 'pg_rewind'), '--target-pgdata', settings.dataDir, '--source-server', server, '--progress'],
    node.user,
    progressLogger(log, 'pg_rewind', onProgress),
  );
  writeConfig(node, state);
  if (result.code !== 0) {
    log.warn('pg_rewind failed; the data directory must be cloned again', {
      code: 'rewind_failed',
      source: describe(source),
      exit: result.signal ?? result.code,
      output: lastLines(result.stderr),
    });
    return false;
  }
  log.info('postgres rewound', { source: describe(source), ms: Math.round(performance.now() - startedAt), output: lastLines(result.stderr, 2) });
  return true;
}
