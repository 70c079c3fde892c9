import { pgName, quoteIdent } from './quoting.js';

/**
 * `synchronous_standby_names` for a list of member names (see `PostgresController.setSynchronousStandbys`):
 * `null` → `''` (asynchronous); names → `ANY 1 ("n2", "n3")`, sorted, without duplicates or this node
 * (`self`, a pgName); nothing left → `'*'` (any standby at all: strict mode without a candidate yet blocks
 * rather than be acknowledged by nobody).
 */
export function synchronousStandbyNamesValue(names: string[] | null, self: string): string {
  if (names === null) return '';
  const others = [...new Set(names.map(pgName))].filter((n) => n !== self).sort();
  return others.length === 0 ? '*' : `ANY 1 (${others.map(quoteIdent).join(', ')})`;
}
