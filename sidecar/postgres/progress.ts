import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';

/** Long actions (pg_basebackup, pg_rewind) log their progress at most this often. */
const PROGRESS_LOG_INTERVAL_MS = 5_000;

/** The percentage in a line of pg_basebackup's or pg_rewind's `--progress` meter (`... (37%)`), or null. */
export function progressPercent(line: string): number | null {
  const progress = /\((\d+)%\)/.exec(line);
  return progress ? Number(progress[1]) : null;
}

/** Logs a tool's messages, and its progress meter at most every few seconds (and at 100 %). */
export function progressLogger(log: Logger, tool: string, onProgress?: (percent: number) => void): (line: string) => void {
  let last = -Infinity; // the first meter line is logged, however young the process
  return (line) => {
    const percent = progressPercent(line);
    if (percent === null) {
      log.info(`${tool}: ${line.replace(/^\S+: /, '')}`);
      return;
    }
    onProgress?.(percent);
    const now = performance.now();
    if (now - last < PROGRESS_LOG_INTERVAL_MS && percent !== 100) return;
    last = now;
    log.info(`${tool} progress`, { percent, detail: line });
  };
}
