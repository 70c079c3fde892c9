/** PostgreSQL control for one node: see `PostgresController`. */
export { PostgresController, parseLsn, synchronousStandbyNamesValue } from './controller.js';
export type { Lsn, PostgresSettings, PostgresStatus, ReplicaStatus, Upstream } from './controller.js';
export { pgName } from './quoting.js';
export { GUARD_EXIT_CODE, PARENT_PID_VAR, processAlive, type CommandSpec } from './process.js';
