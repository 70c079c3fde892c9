import type pg from 'pg';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

/** SQLSTATE duplicate_object: the slot was created meanwhile. */
const DUPLICATE_OBJECT = '42710';

/**
 * Makes the physical slots of a server exactly `wanted` (see `PostgresController.ensureReplicationSlots`):
 * creates the missing ones with WAL reserved, recreates lost ones, drops the others (their walsender first).
 */
export async function syncReplicationSlots(c: pg.Client, wanted: Set<string>, log: Logger): Promise<void> {
  const have = await c.query<{ slot_name: string; active_pid: number | null; wal_status: string | null }>(
    "select slot_name, active_pid, wal_status from pg_replication_slots where slot_type = 'physical'",
  );
  const existing = new Set(have.rows.filter((r) => r.wal_status !== 'lost').map((r) => r.slot_name));
  for (const lost of have.rows.filter((r) => r.wal_status === 'lost' && wanted.has(r.slot_name) && r.active_pid === null)) {
    log.warn('replication slot lost its WAL (max_slot_wal_keep_size); recreating it, its member needs a new clone', { slot: lost.slot_name });
    await c.query('select pg_drop_replication_slot($1)', [lost.slot_name]);
  }
  for (const name of wanted) {
    if (existing.has(name)) continue;
    try {
      await c.query('select pg_create_physical_replication_slot($1, true)', [name]);
      log.info('created replication slot', { slot: name });
    } catch (e) {
      if ((e as { code?: string }).code !== DUPLICATE_OBJECT) throw e;
    }
  }
  for (const row of have.rows) {
    if (wanted.has(row.slot_name)) continue;
    if (row.active_pid !== null) await c.query('select pg_terminate_backend($1)', [row.active_pid]);
    try {
      await c.query('select pg_drop_replication_slot($1)', [row.slot_name]);
      log.info('dropped replication slot of a former member', { slot: row.slot_name });
    } catch (e) {
      // Still active for a moment after the walsender was terminated: the next turn drops it.
      log.warn('could not drop replication slot yet', { slot: row.slot_name, reason: errorMessage(e) });
    }
  }
}
