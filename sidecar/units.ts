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
