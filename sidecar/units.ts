import { SidecarError } from './errors.js';

/**
 * Byte multipliers. `kB`, `MB`, `GB`, `TB` are 1024-based, as in PostgreSQL's settings and Patroni's
 * `?lag=` (so a probe written for Patroni means the same here); `KiB`...`TiB` are their explicit forms.
 */
const UNITS: Record<string, number> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
  tb: 1024 ** 4,
  tib: 1024 ** 4,
};

/**
 * A byte count from `16777216`, `16MB`, `16 MiB`, `1.5GB` or `512kB` (unit case ignored). Throws
 * `bad_value` for anything else: a negative, empty, non-numeric or unknown-unit value, or one that is not a
 * whole number of bytes or beyond 2^53.
 */
export function parseByteSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const multiplier = match ? UNITS[(match[2] || 'b').toLowerCase()] : undefined;
  if (!match || multiplier === undefined) {
    throw new SidecarError('bad_value', `"${text}" is not a byte size: give bytes (16777216) or a number with kB, MB, GB, TB, KiB, MiB, GiB or TiB`, 400);
  }
  const bytes = Number(match[1]) * multiplier;
  if (!Number.isSafeInteger(bytes)) throw new SidecarError('bad_value', `"${text}" is not a whole number of bytes below 2^53`, 400);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration from `90s`, `30m`, `6h`, `1d` or a sum like `1h30m` (what a schedule is written in), in
 * milliseconds. Throws `bad_value` for anything else, for zero, and beyond 365 days.
 */
export function parseDuration(text: string): number {
  const parts = [...text.trim().matchAll(/(\d+)\s*([smhd])/gi)];
  const whole = parts.map((p) => p[0]).join('');
  const ms = parts.reduce((sum, [, n, unit]) => sum + Number(n) * DURATION_UNITS[unit.toLowerCase()], 0);
  if (parts.length === 0 || whole.replace(/\s/g, '') !== text.replace(/\s/g, '') || ms <= 0 || ms > 365 * DURATION_UNITS.d) {
    throw new SidecarError('bad_value', `"${text}" is not a duration: give a number with s, m, h or d (90s, 30m, 6h, 1d, 1h30m), up to 365d`, 400);
  }
  return ms;
}

/** A number from a record field read back from Consul or a peer: the value when finite, else null. */
export const finiteOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
