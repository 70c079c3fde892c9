import { Socket } from 'node:net';
import { z } from 'zod';
import type { Member } from './api.js';
import { renderTable } from './output.js';

/** How long one port gets to accept a TCP connection before it counts as failed. */
const PORT_TIMEOUT_MS = 1_000;

/**
 * Consul's HTTP API port on a member: 8501 (HTTPS) where the cluster runs TLS, which the member's https API
 * URL shows (the sidecar's `consul.url` then defaults to it, consul-config/tls.hcl.tmpl closes 8500), else 8500.
 */
const consulHttpPort = (m: Member): number => (m.apiUrl?.startsWith('https:') ? 8501 : 8500);

/**
 * The ports `hactl cluster validate` checks on every member, with which part needs each. Consul's ports are
 * on the member's address (one agent per node); Postgres and the file mirror only where the member runs
 * them (it publishes their fields in its record).
 */
export const PORTS = [
  { port: () => 8300, what: 'Consul server RPC', needed: () => true },
  { port: () => 8301, what: 'Consul LAN gossip (TCP)', needed: () => true },
  { port: consulHttpPort, what: 'Consul HTTP API', needed: () => true },
  { port: () => 8008, what: 'sidecar API', needed: () => true },
  { port: () => 15432, what: 'PostgreSQL', needed: (m: Member) => m.pgRole !== undefined && m.pgRole !== null },
  { port: () => 22000, what: 'file mirror', needed: (m: Member) => m.files !== undefined && m.files !== null },
] as const;

export type PortResult = 'ok' | 'refused' | 'timeout' | 'unreachable' | 'not used';

/** Whether `host:port` accepts a TCP connection within `timeoutMs`. */
export function tcpCheck(host: string, port: number, timeoutMs = PORT_TIMEOUT_MS): Promise<PortResult> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (result: PortResult) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(timeoutMs, () => done('timeout'));
    socket.once('connect', () => done('ok'));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'unreachable'));
    socket.connect(port, host);
  });
}

export interface MemberPorts {
  name: string;
  address: string;
  /** The port checked in each column of PORTS, on this member. */
  ports: number[];
  results: PortResult[];
}

/** Checks every port of every member at once; `check` is `tcpCheck` unless a test passes its own. */
export async function checkMembers(members: Member[], check = tcpCheck): Promise<MemberPorts[]> {
  return Promise.all(
    members.map(async (m) => {
      const address = m.address ?? '';
      const ports = PORTS.map((p) => p.port(m));
      const results = await Promise.all(PORTS.map((p, i) => (p.needed(m) && address !== '' ? check(address, ports[i] as number) : Promise.resolve<PortResult>('not used'))));
      return { name: m.name, address: address || '-', ports, results };
    }),
  );
}

/** A column's heading: its port, or each port its members use (`8500/8501` in a cluster half on TLS). */
function columnPorts(rows: MemberPorts[], column: number): string {
  const ports = [...new Set(rows.map((r) => r.ports[column]))].filter((p) => p !== undefined).sort();
  return ports.length > 0 ? ports.join('/') : String(PORTS[column]!.port({ name: '' }));
}

/** The matrix: one row per member, one column per port; `-` for a port the member does not use. */
export function renderPortMatrix(rows: MemberPorts[]): string[] {
  const headings = PORTS.map((_, i) => columnPorts(rows, i));
  const table = renderTable(
    ['NODE', 'ADDRESS', ...headings],
    rows.map((r) => [r.name, r.address, ...r.results.map((x) => (x === 'not used' ? '-' : x))]),
  );
  return [...table, '', ...PORTS.map((p, i) => `${headings[i]}: ${p.what}`)];
}

/** `n3:8008 (sidecar API) refused` for each failed port; empty when all answered. */
export function portFailures(rows: MemberPorts[]): string[] {
  return rows.flatMap((r) => r.results.flatMap((x, i) => (x === 'ok' || x === 'not used' ? [] : [`${r.name}:${r.ports[i]} (${PORTS[i]!.what}) ${x}`])));
}

/** One port of `GET /reachability`'s answer: a peer's port as the asked member reaches it. */
export const PeerPortSchema = z.object({ port: z.number(), what: z.string(), result: z.string(), detail: z.string().optional() });
export const ReachabilitySchema = z.looseObject({
  node: z.string(),
  peers: z.array(z.object({ name: z.string(), address: z.string(), ports: z.array(PeerPortSchema) })),
});
export type Reachability = z.infer<typeof ReachabilitySchema>;

/** What one member answered for its peers, or why it could not be asked. */
export type MemberView = { from: string; answer: Reachability } | { from: string; error: string };

/**
 * The member-to-member matrix: a row per member asked, a column per peer; `ok`, the ports that failed, `-`
 * on the diagonal, `?` where the member could not be asked.
 */
export function renderPeerMatrix(views: MemberView[]): string[] {
  const names = views.map((v) => v.from);
  const cell = (view: MemberView, to: string): string => {
    if (view.from === to) return '-';
    if ('error' in view) return '?';
    const peer = view.answer.peers.find((p) => p.name === to);
    if (peer === undefined) return 'not seen';
    const failed = [...new Set(peer.ports.filter((p) => p.result !== 'ok').map((p) => String(p.port)))];
    return failed.length === 0 ? 'ok' : failed.join(',');
  };
  return renderTable(['FROM \\ TO', ...names], views.map((v) => [v.from, ...names.map((to) => cell(v, to))]));
}

/** `n1 -> n3:15432 (PostgreSQL): tls_failed: ...` for each failed port, and each member that could not be asked. */
export function peerFailures(views: MemberView[]): string[] {
  const names = views.map((v) => v.from);
  return views.flatMap((v) => {
    if ('error' in v) return [`${v.from}: could not be asked (${v.error})`];
    const missing = names.filter((n) => n !== v.from && !v.answer.peers.some((p) => p.name === n)).map((n) => `${v.from} -> ${n}: not in ${v.from}'s member list`);
    const failed = v.answer.peers.flatMap((peer) =>
      peer.ports.filter((p) => p.result !== 'ok').map((p) => `${v.from} -> ${peer.name}:${p.port} (${p.what}): ${p.result}${p.detail ? `: ${p.detail}` : ''}`),
    );
    return [...missing, ...failed];
  });
}
