/**
 * Names and quoting for the places a value crosses into PostgreSQL syntax: slot and application names, SQL
 * identifiers and literals, libpq conninfo strings, postgresql.conf values and .pgpass lines. Each function
 * escapes for exactly one syntax, so a value that crosses two (a conninfo inside postgresql.conf) goes
 * through both, innermost first.
 */

/** Longest name PostgreSQL keeps (NAMEDATALEN - 1). */
const MAX_NAME_LENGTH = 63;

/**
 * The replication slot name and `application_name` of a node. Slot names allow only lowercase letters,
 * digits and `_`, so `node-2` becomes `node_2`; the same name is used as `application_name`, so that
 * `synchronous_standby_names`, `pg_stat_replication` and the slots all speak of a node the same way.
 */
export function pgName(node: string): string {
  const name = node
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, MAX_NAME_LENGTH);
  if (name === '') throw new Error(`node name ${JSON.stringify(node)} gives an empty PostgreSQL name`);
  return name;
}

/** A SQL identifier in double quotes. */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** A SQL string literal (standard_conforming_strings is on since 9.1, so backslashes are literal). */
export const quoteLiteral = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** A value in a libpq conninfo string: single quotes, with `\` and `'` escaped by a backslash. */
export const conninfoValue = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** A libpq conninfo string from key/value pairs (undefined values are left out). */
export function conninfo(params: Record<string, string | number | undefined>): string {
  return Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${conninfoValue(String(v))}`)
    .join(' ');
}

/** A string value in postgresql.conf: single quotes doubled, and backslashes doubled (the GUC lexer unescapes them). */
export const confValue = (value: string): string => `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** One field of a .pgpass line: `:` and `\` escaped by a backslash. */
export const pgpassField = (value: string): string => value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
