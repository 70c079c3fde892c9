import { SidecarError } from '../sidecar/errors.js';

/**
 * Exit codes of `hactl`, the contract scripts rely on (docs/design.md "CLI"): 0 done, 1 the operation failed,
 * 2 usage or input error, 3 no reachable leader.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, noLeader: 3, degraded: 4 } as const;
// 3 also when none is elected (`no_leader`); 4: `cluster status` found a member offline or unhealthy, or
// Consul unreachable from the node that answered (`cluster_degraded`).
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Error codes that mean "you called me wrong": fix the command line or the input, then retry. */
const USAGE_CODES = new Set([
  'usage_error',
  'bad_host',
  'bad_value',
  'no_profile',
  'unknown_profile',
  // A snapshot that cannot be restored here is bad input too: nothing was changed (sidecar/snapshot/).
  'unknown_snapshot',
  'snapshot_invalid',
  'snapshot_checksum_mismatch',
  'snapshot_newer_version',
]);
/** Error codes that mean "nobody answered": the cluster (or the network to it) is down, not the request. */
const UNREACHABLE_CODES = new Set(['no_reachable_leader', 'no_reachable_manager', 'no_leader']);
/** Error codes of a status that was read but is not healthy. */
const DEGRADED_CODES = new Set(['cluster_degraded']);

/** The exit code for an error code; every code not listed above is an operation failure (1). */
export function exitCodeFor(code: string): ExitCode {
  if (USAGE_CODES.has(code)) return EXIT.usage;
  if (UNREACHABLE_CODES.has(code)) return EXIT.noLeader;
  if (DEGRADED_CODES.has(code)) return EXIT.degraded;
  return EXIT.failed;
}

/** A usage or input error (exit 2). */
export const usageError = (message: string, code = 'usage_error'): SidecarError =>
  new SidecarError(code, message, 400);

/** The one stderr line every failure prints. Newlines are folded so it stays one line. */
export const failureLine = (code: string, message: string): string =>
  `hactl: ${code}: ${message.replace(/\s*\n\s*/g, ' ').trim()}`;

/** Where a command writes; one call writes one line (a trailing newline is added). Tests capture it. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** True when stdout is a terminal (`--watch` then clears the screen before each refresh). */
  isTerminal?(): boolean;
}

export const processIo: Io = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => void process.stderr.write(`${text}\n`),
  isTerminal: () => process.stdout.isTTY === true,
};

/** ANSI: cursor home, clear screen (what `watch` does between refreshes). */
export const CLEAR_SCREEN = '\x1b[H\x1b[2J';

/** Human size of a byte count: `0 B`, `512 B`, `1.5 KiB`, `12.0 MiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Math.abs(bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const sign = bytes < 0 ? '-' : '';
  return unit === 0 ? `${sign}${value} B` : `${sign}${value.toFixed(1)} ${units[unit]}`;
}

/** Text of one table cell: `-` for nothing, scalars as they are, anything else as compact JSON. */
export function cell(value: unknown): string {
  if (value === undefined || value === null || value === '') return '-';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** A plain left-aligned table with a header row, columns two spaces apart, no trailing blanks. */
export function renderTable(headers: string[], rows: string[][]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)];
}
