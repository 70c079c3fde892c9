import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { SidecarError } from '../errors.js';
import { sslParams, type Upstream } from './conf.js';
import { describe } from './connection.js';
import { systemIdentifier, writeConfig } from './data-dir.js';
import { walFileTimeline } from './lsn.js';
import { lastLines, runTool } from '../shared/process.js';
import { removeZombieLock } from './postmaster.js';
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
 * What a pg_rewind run did: `rewound` (the target now follows the source's history, or already did),
 * `same_timeline` (exit 0 without looking at any WAL, because both control files show the same timeline ID),
 * or `failed`.
 *
 * `same_timeline` proves nothing about the histories: pg_rewind compares timeline IDs only. Two nodes promoted
 * one after the other, the second before it had streamed the first one's timeline history (the first killed
 * within seconds of its promotion), both pick the same next ID with different WAL behind it. A former primary
 * rewound from such a source is left as it was, and its standby stops at the first diverged record ("invalid
 * resource manager ID"). Its messages are matched in English: tools run with LANG=C.UTF-8 (process.ts).
 */
export type RewindOutcome = 'rewound' | 'same_timeline' | 'failed';

export function rewindOutcome(exitCode: number | null, output: string): RewindOutcome {
  if (exitCode !== 0) return 'failed';
  return /source and target cluster are on the same timeline/.test(output) ? 'same_timeline' : 'rewound';
}

/**
 * Runs pg_rewind on the stopped data directory from `source`, then rewrites the sidecar's files per `state`
 * (a standby of `source`, whatever happened), and says what pg_rewind did (see `rewindOutcome`).
 */
export async function runRewind(
  node: PostgresNode,
  state: PostgresIntent,
  source: Upstream,
  startedAt: number,
  onProgress?: (percent: number) => void,
): Promise<RewindOutcome> {
  const { settings, log } = node;
  const server = conninfo({
    host: source.host,
    port: source.port,
    user: SUPERUSER,
    dbname: 'postgres',
    passfile: node.passFile,
    application_name: `${node.name}_rewind`,
    connect_timeout: 5,
    ...sslParams(node.tls),
  });
  // pg_rewind recovers a crashed target in single-user mode, which refuses to run with standby.signal.
  for (const signal of ['standby.signal', 'recovery.signal']) rmSync(join(settings.dataDir, signal), { force: true });
  removeZombieLock(node);
  log.info('rewinding postgres (pg_rewind)', { source: describe(source) });
  const result = await runTool(
    [join(settings.binDir, 'pg_rewind'), '--target-pgdata', settings.dataDir, '--source-server', server, '--progress'],
    node.user,
    progressLogger(log, 'pg_rewind', onProgress),
  );
  writeConfig(node, state);
  const outcome = rewindOutcome(result.code, result.stderr);
  if (outcome === 'failed') {
    log.warn('pg_rewind failed; the data directory must be cloned again', {
      code: 'rewind_failed',
      source: describe(source),
      exit: result.signal ?? result.code,
      output: lastLines(result.stderr),
    });
    return outcome;
  }
  log.info(outcome === 'rewound' ? 'postgres rewound' : 'pg_rewind changed nothing: same timeline ID as the source', {
    source: describe(source),
    ms: Math.round(performance.now() - startedAt),
    output: lastLines(result.stderr, 2),
  });
  return outcome;
}
