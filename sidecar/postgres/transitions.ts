import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { SidecarError, errorMessage } from '../errors.js';
import { tailFile } from '../shared/process.js';
import { basebackup, ensureRoles, initdb } from './bootstrap.js';
import type { Upstream } from './conf.js';
import { describe, withClient } from './connection.js';
import { prepareDirs, writeConfig } from './data-dir.js';
import type { ServerLifecycle } from './lifecycle.js';
import { POLL_MS } from './postmaster.js';
import { checkpointAfterPromotion, checkSameSystem, runRewind } from './rewind.js';
import { SUPERUSER } from './settings.js';

/**
 * The role transitions of one node's Postgres: become a fresh primary, clone, follow, promote, rewind. Each
 * is idempotent, so the loop can repeat it after a crash at any point, and each that leaves the primary
 * role records "standby" in the intent file before it touches anything, so a crash half-way can never bring
 * the node back as a writer. They run inside the controller's queue, one at a time (PostgresController).
 */

/** Promotion replays what is left of the received WAL, then switches timeline; a healthy standby takes seconds. */
const PROMOTE_TIMEOUT_MS = 60_000;

const sameUpstream = (a: Upstream | null, b: Upstream | null): boolean => a?.host === b?.host && a?.port === b?.port;

/**
 * Makes this node a fresh primary: initdb (data checksums, SCRAM, superuser `postgres` with its password
 * from a temporary 0600 file), the sidecar's configuration, start, then the replication role and the app
 * user and database. Repeating it completes a half-done run and updates passwords that changed. Refuses
 * (`postgres_data_exists`, 409) a data directory this node did not initialise as a primary: clone or
 * promote such a node, or move its data away.
 */
export async function initPrimary(server: ServerLifecycle): Promise<void> {
  const { node, intent } = server;
  const t0 = performance.now();
  if (server.hasDataDir()) {
    if (!intent.exists() || intent.current.intent !== 'primary' || existsSync(join(node.settings.dataDir, 'standby.signal'))) {
      throw new SidecarError(
        'postgres_data_exists',
        `${node.settings.dataDir} already holds a PostgreSQL data directory that this node did not initialise as a primary; move it away to start afresh`,
        409,
      );
    }
  } else {
    intent.set({ intent: 'primary', upstream: null, synchronousStandbyNames: '' });
    await initdb(node, intent.current);
  }
  await server.start();
  if (await server.inRecovery()) throw new SidecarError('postgres_not_primary', `postgres in ${node.settings.dataDir} runs as a standby; initPrimary cannot make it a primary`, 409);
  await ensureRoles(node);
  node.log.info('postgres initialised as primary', { ms: Math.round(performance.now() - t0) });
}

/**
 * Replaces this node's data with a fresh copy of `primary`'s (pg_basebackup, WAL streamed through this
 * node's slot, which the primary must have created: `ensureReplicationSlots`), configures it as a standby
 * of `primary`, and starts it. Stops the local server first. The copy goes to `<dataDir>.clone` and
 * replaces the data directory only once complete, so a failed clone (`basebackup_failed`) leaves the
 * old data as it was.
 */
export async function cloneFrom(server: ServerLifecycle, primary: Upstream, onProgress?: (percent: number) => void): Promise<void> {
  const { node, intent } = server;
  const t0 = performance.now();
  await withClient(node.settings, (c) => checkSameSystem(node, c, primary), { target: primary }).catch((e) => {
    if (e instanceof SidecarError) throw e;
    throw new SidecarError('basebackup_failed', `cannot reach ${describe(primary)} as ${SUPERUSER} (${errorMessage(e)}); the local data was left as it was`, 502, { primary });
  });
  // Recorded before anything local changes: a crash from here on brings this node back as a standby.
  intent.set({ ...intent.current, intent: 'standby', upstream: primary });
  await server.postmaster.stop('fast');
  prepareDirs(node);
  await basebackup(node, intent.current, primary, onProgress);
  node.log.info('cloned postgres from the primary', { primary: describe(primary), ms: Math.round(performance.now() - t0) });
  await server.start();
}

/**
 * Makes this node a standby of `primary` and has it running: primary_conninfo (application_name and slot
 * = this node's name, password from the password file) and standby.signal. A running standby is
 * reloaded when its upstream changed (PostgreSQL restarts the WAL receiver); a running primary is stopped
 * (fast) and started as a standby; a stopped one is started. It does not rewind: a former primary must
 * come back through `rewindFrom` (cheap when nothing diverged), or it may refuse the new timeline.
 * Throws `postgres_no_data` when there is no data directory: clone first.
 */
export async function follow(server: ServerLifecycle, primary: Upstream): Promise<void> {
  const { node, intent, postmaster } = server;
  const state = intent.current;
  if (!sameUpstream(state.upstream, primary) || state.intent !== 'standby') {
    node.log.info('following a new upstream', { upstream: describe(primary) });
  }
  intent.set({ ...state, intent: 'standby', upstream: primary });
  if (!server.hasDataDir()) {
    throw new SidecarError('postgres_no_data', `${node.settings.dataDir} holds no data directory; clone it from the primary first`, 409);
  }
  const pid = server.pid();
  if (pid === null) {
    await server.start();
    return;
  }
  let inRecovery = true;
  try {
    inRecovery = await server.inRecovery();
  } catch {
    // Still starting up: it started with standby.signal or will be reloaded below.
  }
  if (!inRecovery) {
    node.log.info('restarting the primary as a standby', { upstream: describe(primary) });
    await postmaster.stop('fast');
    await server.start();
    return;
  }
  if (writeConfig(node, intent.current)) {
    node.log.info('reloading the standby configuration', { upstream: describe(primary) });
    postmaster.reload(pid);
  }
}

/**
 * Promotes this standby and resolves once it takes writes: pg_promote(wait => true), then until
 * pg_is_in_recovery() is false and a transaction gets an xid and commits (with synchronous_commit=local,
 * so this proves the node writes, not that a standby acknowledges). Already a primary: checks the same
 * and returns. Throws `primary_not_permitted` without the permit, `postgres_not_running` when stopped,
 * `promote_timeout` after 60 s. The synchronous_standby_names it promotes with is the last one set with
 * `setSynchronousStandbys` (which can be called on the standby beforehand).
 */
export async function promote(server: ServerLifecycle): Promise<void> {
  const { node, intent, postmaster } = server;
  const t0 = performance.now();
  if (!server.permitted) throw server.notPermitted();
  if (server.pid() === null) throw new SidecarError('postgres_not_running', 'cannot promote: postgres is not running', 409);
  let inRecovery: boolean;
  try {
    inRecovery = await server.inRecovery();
  } catch (e) {
    throw new SidecarError('postgres_unavailable', `cannot promote: postgres does not answer (${errorMessage(e)})`, 503);
  }
  if (inRecovery) {
    node.log.info('promoting postgres');
    const seconds = Math.ceil(PROMOTE_TIMEOUT_MS / 1000);
    await withClient(node.settings, (c) => c.query('select pg_promote(true, $1)', [seconds]), { queryTimeoutMs: PROMOTE_TIMEOUT_MS + 5_000 }).catch((e) => {
      throw new SidecarError('promote_timeout', `pg_promote failed: ${errorMessage(e)}\n${tailFile(node.logFile)}`);
    });
  }
  const deadline = t0 + PROMOTE_TIMEOUT_MS;
  let lastError = '';
  while (performance.now() < deadline) {
    try {
      await withClient(node.settings, async (c) => {
        await c.query('begin');
        await c.query('set local synchronous_commit = local');
        await c.query('select txid_current()');
        await c.query('commit');
      });
      intent.set({ intent: 'primary', upstream: null, synchronousStandbyNames: intent.current.synchronousStandbyNames });
      const pid = server.pid();
      if (writeConfig(node, intent.current) && pid !== null) postmaster.reload(pid);
      node.log.info('postgres promoted and takes writes', { ms: Math.round(performance.now() - t0) });
      return;
    } catch (e) {
      lastError = errorMessage(e);
    }
    await sleep(POLL_MS);
  }
  throw new SidecarError('promote_timeout', `postgres still does not take writes ${PROMOTE_TIMEOUT_MS / 1000} s after promotion (${lastError})\n${tailFile(node.logFile)}`);
}

/**
 * Brings a former primary (or a standby that went astray) back in line with `source` by pg_rewind, then
 * configures it as a standby of `source` and starts it. Stops the local server (fast) first; a target that
 * had crashed is recovered by pg_rewind itself (single-user mode, PostgreSQL 13+), so the caller need not
 * care how it went down. Returns false when pg_rewind ran and failed, or when a former primary came out
 * of it on the source's timeline ID (see `rewindOutcome`: it diverged on a duplicated timeline and
 * pg_rewind did nothing): the data directory is then unusable and must be re-cloned (`cloneFrom`); it is
 * left configured as a standby, not started, so no start can make it a writer. Throws `rewind_failed`
 * (data untouched) when `source` cannot be reached as the superuser. False too when there is no data
 * directory at all.
 */
export async function rewindFrom(server: ServerLifecycle, source: Upstream, onProgress?: (percent: number) => void): Promise<boolean> {
  const { node, intent } = server;
  const t0 = performance.now();
  if (!server.hasDataDir()) return false;
  // The source is checked before anything local changes: a refused rewind leaves this node as it was.
  try {
    await withClient(
      node.settings,
      async (c) => {
        await checkSameSystem(node, c, source);
        await checkpointAfterPromotion(node, c, source);
      },
      { target: source },
    );
  } catch (e) {
    if (e instanceof SidecarError) throw e;
    throw new SidecarError('rewind_failed', `cannot rewind from ${describe(source)}: cannot connect as ${SUPERUSER} (${errorMessage(e)}); the local data was left as it was`, 502, { source });
  }
  const formerPrimary = intent.current.intent === 'primary';
  // Recorded before pg_rewind touches the data: whatever happens next, no start makes this node a writer.
  intent.set({ ...intent.current, intent: 'standby', upstream: source });
  await server.postmaster.stop('fast');
  prepareDirs(node);
  const outcome = await runRewind(node, intent.current, source, t0, onProgress);
  if (outcome === 'failed') return false;
  if (outcome === 'same_timeline' && formerPrimary) {
    // A primary source on the timeline ID this former primary wrote on was promoted without knowing this
    // node's timeline: the same ID, another history. Only for a standby is the same ID the normal case.
    // Returning false sends it to a clone of the leader, which replaces only this node's data (kept
    // aside) and leaves the leader untouched: no second writer, no commit of the leader's lost. What
    // only this node wrote after its promotion is on no leader's history; pg_rewind would drop it too.
    node.log.warn('former primary on the same timeline ID as its new leader but another history: it must be cloned again', {
      code: 'rewind_same_timeline',
      source: describe(source),
    });
    return false;
  }
  await server.start();
  return true;
}
