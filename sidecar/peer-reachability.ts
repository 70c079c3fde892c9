import type { ConnectionOptions } from 'node:tls';
import type { SidecarConfig } from './config.js';
import type { ConsulStore } from './consul/store.js';
import { clientTlsOptions as mirrorTlsOptions } from './mirror/tls.js';
import type { TlsMaterial } from './shared/certificates.js';
import { probePort, urlPort, type PortAnswer, type PortProtocol } from './shared/port-probe.js';

/**
 * `GET /reachability`: this node's view of every peer's ports, checked the way this node's own clients reach
 * them (TLS handshakes included), for `hactl cluster validate`'s member-to-member matrix. The ports are the
 * production ports table's (docs/design.md "Ports"); a peer's Postgres and file mirror only where its record
 * says it runs them, and only from a node that runs them too (nobody else connects there).
 */

/** One port's check gets this long; the peers and their ports are checked at once, so a call takes about this. */
const PROBE_TIMEOUT_MS = 2_000;

export interface PeerPort extends PortAnswer {
  port: number;
  /** What connects there, as the ports table says (`Consul server RPC`, `PostgreSQL`, ...). */
  what: string;
}

export interface PeerReachability {
  name: string;
  address: string;
  ports: PeerPort[];
}

interface PeerCheck {
  port: number;
  what: string;
  protocol: PortProtocol;
}

export class PeerChecks {
  constructor(
    private readonly config: SidecarConfig,
    private readonly store: Pick<ConsulStore, 'listMembers' | 'gossipMembers'>,
    /** This node's certificate, key and CA as they are now (a renewal replaces them). */
    private readonly tls: () => TlsMaterial | undefined,
    /** The role this node's Postgres replicates as, which the peers' pg_hba lets in (null: no Postgres here). */
    private readonly replicationUser: string | null,
  ) {}

  async check(): Promise<{ node: string; peers: PeerReachability[] }> {
    const [members, gossip] = await Promise.all([this.store.listMembers(), this.store.gossipMembers().catch(() => null)]);
    const peers = members.filter((m) => m.record.name !== this.config.nodeName);
    const results = await Promise.all(
      peers.map(async ({ record }) => {
        const checks = this.checksOf(record);
        const ports: PeerPort[] = await Promise.all(
          checks.map(async (c) => ({ port: c.port, what: c.what, ...(await probePort(record.address, c.port, c.protocol, PROBE_TIMEOUT_MS)) })),
        );
        ports.splice(2, 0, gossipPort(record, gossip));
        return { name: record.name, address: record.address, ports };
      }),
    );
    return { node: this.config.nodeName, peers: results.sort((a, b) => a.name.localeCompare(b.name)) };
  }

  private checksOf(record: { apiUrl: string; pgRole?: unknown; files?: unknown }): PeerCheck[] {
    const material = this.tls();
    const withCa: ConnectionOptions | undefined = material ? { ca: material.ca, cert: material.cert, key: material.key } : undefined;
    const consul = new URL(this.config.consul.url);
    const api = new URL(record.apiUrl);
    const checks: PeerCheck[] = [
      { port: 8300, what: 'Consul server RPC', protocol: { kind: 'tcp' } },
      { port: 8301, what: 'Consul LAN gossip (TCP)', protocol: { kind: 'tcp' } },
      {
        port: urlPort(consul),
        what: `Consul ${consul.protocol === 'https:' ? 'HTTPS' : 'HTTP'} API`,
        protocol: consul.protocol === 'https:' && withCa ? { kind: 'https', tls: withCa, path: '/v1/status/leader' } : { kind: 'tcp' },
      },
      {
        port: urlPort(api),
        what: 'sidecar API',
        protocol: api.protocol === 'https:' && withCa ? { kind: 'https', tls: withCa, path: '/liveness' } : { kind: 'tcp' },
      },
    ];
    const user = this.replicationUser;
    if (user !== null && record.pgRole !== undefined && record.pgRole !== null) {
      checks.push({ port: this.config.postgres.port, what: 'PostgreSQL', protocol: withCa ? { kind: 'postgres', tls: withCa, user } : { kind: 'tcp' } });
    }
    const files = this.config.files;
    if (files?.enabled && record.files !== undefined && record.files !== null) {
      checks.push({ port: files.port, what: 'file mirror', protocol: { kind: 'tls', tls: mirrorTlsOptions(this.config.clusterToken, this.config.clusterName) } });
    }
    return checks;
  }
}

/** UDP gossip cannot be probed without speaking memberlist: this node's agent's own view of the peer stands for it. */
function gossipPort(record: { name: string; address: string }, gossip: { name: string; address: string; status: string }[] | null): PeerPort {
  const what = 'Consul LAN gossip (this agent\'s view, UDP and TCP)';
  if (gossip === null) return { port: 8301, what, result: 'unreachable', detail: 'this node\'s Consul agent did not list its members' };
  const member = gossip.find((g) => g.address.replace(/:\d+$/, '') === record.address) ?? gossip.find((g) => g.name === record.name);
  if (member === undefined) return { port: 8301, what, result: 'unreachable', detail: 'not a member of this agent\'s gossip pool' };
  return member.status === 'alive' ? { port: 8301, what, result: 'ok' } : { port: 8301, what, result: 'unreachable', detail: `gossip calls it ${member.status}` };
}
