/**
 * Requests this sidecar process sends, by where they go, for `ha_sidecar_requests_total` (metrics.ts): what an
 * idle node costs the services around it, read by the idle benchmark (`npm run bench -- idle`). One process
 * is one node, so the counts are the process's.
 * - `consul`: HTTP calls to the node's Consul agent (a blocking read counts once, when it is sent);
 * - `postgres`: connections to this node's own Postgres (each status read, slot sync, ... opens one);
 * - `peer`: connections to another node: its sidecar's API (snapshots, probes) or its Postgres (positions);
 * - `manager`: probes of the manager's health URL.
 * The file mirror's one long-lived TLS connection per follower is not counted here (see its own metrics).
 */
export type RequestTarget = 'consul' | 'postgres' | 'peer' | 'manager';

const counts: Record<RequestTarget, number> = { consul: 0, postgres: 0, peer: 0, manager: 0 };

export function countRequest(to: RequestTarget): void {
  counts[to]++;
}

export function requestCounts(): Readonly<Record<RequestTarget, number>> {
  return counts;
}
