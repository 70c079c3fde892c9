/** A Go duration as Consul prints it (`1s`, `500ms`, `1m30s`) in milliseconds, or null. */
export function parseGoDuration(text: string): number | null {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return null;
  return parts.reduce((ms, [, n, unit]) => ms + Number(n) * units[unit], 0);
}
