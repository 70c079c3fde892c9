/** PostgreSQL control for one node: see `PostgresController`. */
export { PostgresController } from './controller.js';
export type { Upstream } from './conf.js';
export { parseLsn, type Lsn } from './lsn.js';
export type { PostgresSettings } from './settings.js';
export type { PostgresStatus, ReplicaStatus } from './status.js';
export { synchronousStandbyNamesValue } from './sync-standbys.js';
export { pgName } from './quoting.js';
export { GUARD_EXIT_CODE, PARENT_PID_VAR, processAlive, type CommandSpec } from './process.js';
