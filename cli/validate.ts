import { Socket } from 'node:net';
import type { Member } from './api.js';
import { renderTable } from './output.js';

/** How long one port gets to accept a TCP connection before it counts as failed. */
const PORT_TIMEOUT_MS = 1_000;

/**
 * The ports `hactl cluster validate` checks on every member, with which part needs each. Consul's ports are
 * on the member's address (one agent per node); Postgres and the file mirror only where the member runs
 * them (it publishes their fields in its record).
 */
export const PORTS = [
  { port: 8300, what: 'Consul server RPC', needed: () => true },
  { port: 8301, what: 'Consul LAN gossip (TCP)', needed: () => true },
  { port: 8500, what: 'Consul HTTP API', needed: () => true },
  { port: 8008, what: 'sidecar API', needed: () => true },
  { port: 15432, what: 'PostgreSQL', needed: (m: Member) => m.pgRole !== undefined && m.pgRole !== null },
  { port: 22000, what: 'file mirror', needed: (m: Member) => m.files !== undefined && m.files !== null },
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
  results: PortResult[];
}

/** Checks every port of every member at once; `check` is `tcpCheck` unless a test passes its own. */
export async function checkMembers(members: Member[], check = tcpCheck): Promise<MemberPorts[]> {
  return Promise.all(
    members.map(async (m) => {
      const address = m.address ?? '';
      const results = await Promise.all(PORTS.map((p) => (p.needed(m) && address !== '' ? check(address, p.port) : Promise.resolve<PortResult>('not used'))));
      return { name: m.name, address: address || '-', results };
    }),
  );
}

/** The matrix: one row per member, one column per port; `-` for a port the member does not use. */
export function renderPortMatrix(rows: MemberPorts[]): string[] {
  const table = renderTable(
    ['NODE', 'ADDRESS', ...PORTS.map((p) => String(p.port))],
    rows.map((r) => [r.name, r.address, ...r.results.map((x) => (x === 'not used' ? '-' : x))]),
  );
  return [...table, '', ...PORTS.map((p) => `${p.port}: ${p.what}`)];
}

/** `n3:8008 (sidecar API) refused` for each failed port; empty when all answered. */
export function portFailures(rows: MemberPorts[]): string[] {
  return rows.flatMap((r) => r.results.flatMap((x, i) => (x === 'ok' || x === 'not used' ? [] : [`${r.name}:${PORTS[i]!.port} (${PORTS[i]!.what}) ${x}`])));
}
