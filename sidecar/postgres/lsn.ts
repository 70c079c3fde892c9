/** A WAL position, as PostgreSQL prints it and as a byte offset (exact below 2^53, i.e. 8 PiB of WAL). */
export interface Lsn {
  text: string;
  bytes: number;
}

/** `'16/B374D848'` → its byte offset; null for no position (a standby that never streamed). */
export function parseLsn(text: string | null | undefined): Lsn | null {
  if (!text) return null;
  const [hi, lo] = text.split('/');
  return { text, bytes: parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16) };
}

/** The first 8 hex digits of a WAL file name are its timeline (the insert timeline since 15). */
export const walFileTimeline = (walfile: string): number => parseInt(walfile.slice(0, 8), 16);
