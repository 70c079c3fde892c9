import { ERROR_CODES, HACTL_EXIT, hactlExitFor, type AnsweredCode, type ErrorCode, type HactlExit } from '../sidecar/error-codes.js';
import { SidecarError } from '../sidecar/errors.js';

/**
 * Exit codes of `hactl`, the contract scripts rely on (docs/design.md "CLI"): 0 done, 1 the operation failed,
 * 2 usage or input error, 3 no reachable leader (or none elected), 4 `cluster status` found the cluster
 * degraded. Which code ends with which is the `exit` column of sidecar/error-codes.ts.
 */
export const EXIT = HACTL_EXIT;
export type ExitCode = HactlExit;

/** The exit code for an error code (the table's); a code this build does not know is an operation failure (1). */
export const exitCodeFor = (code: AnsweredCode): ExitCode => hactlExitFor(code);

/** Codes of errors in the command line or the input (exit 2). */
type UsageCode = { [C in ErrorCode]: (typeof ERROR_CODES)[C]['exit'] extends typeof EXIT.usage ? C : never }[ErrorCode];

/** A usage or input error (exit 2). */
export const usageError = (message: string, code: UsageCode = 'usage_error'): SidecarError =>
  new SidecarError(code, message, 400);

/** The one stderr line every failure prints. Newlines are folded so it stays one line. */
export const failureLine = (code: AnsweredCode, message: string): string =>
  `hactl: ${code}: ${message.replace(/\s*\n\s*/g, ' ').trim()}`;

/** Where a command writes; one call writes one line (a trailing newline is added). Tests capture it. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /** True when stdout is a terminal (`--watch` then clears the screen before each refresh). */
  isTerminal?(): boolean;
}

/**
 * Writes a line to stderr after everything written to stdout so far. Node writes a pipe without blocking: when
 * the reader is slow, the rest of a stdout write waits in a queue, and a stderr line written meanwhile would
 * land inside the table's last row on a shared pipe (`hactl cluster status 2>&1 | less`). An empty write's
 * callback runs once every earlier stdout write has gone out (or failed).
 */
function errAfterOut(line: string): void {
  if (process.stdout.writableLength === 0) process.stderr.write(line);
  else process.stdout.write('', () => process.stderr.write(line));
}

export const processIo: Io = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => errAfterOut(`${text}\n`),
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
