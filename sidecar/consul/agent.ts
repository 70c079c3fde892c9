import type { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { ConsulConnection } from './connection.js';
import { parseGoDuration } from './duration.js';

export interface ServiceSpec {
  node: string;
  address: string;
  apiPort: number;
  /** The node's API as peers reach it: `https:` when it speaks TLS. */
  apiUrl: string;
  tags: string[];
  /** Tag of the node's service `<cluster>-postgres`: true to its role, `primary` only on the ready leader. */
  postgresTag: 'primary' | 'replica';
  checkTtlSeconds: number;
}

/**
 * serf's member status by its number: `failed` stopped answering probes (a crash or a partition), as opposed
 * to `left` (a graceful leave).
 */
const SERF_STATUS: Record<number, GossipMember['status']> = { 0: 'none', 1: 'alive', 2: 'leaving', 3: 'left', 4: 'failed' };

export interface GossipMember {
  name: string;
  /** `address:port` of its gossip. */
  address: string;
  status: 'none' | 'alive' | 'leaving' | 'left' | 'failed' | 'unknown';
}

/**
 * A part's check report that says what the last one said is sent again only once this share of its TTL has
 * passed, to keep the check from expiring: the parts report every turn, and an unchanged report is a request
 * to the agent for nothing. A change is sent at once. (The alive check is not a part's: it is passed every
 * `loopWait`, its TTL being what ends the session of a dead sidecar.)
 */
const UNCHANGED_REPORT_TTL_SHARE = 1 / 3;

/** The alive TTL check of `node`: passed every turn, and its session is bound to it. */
export const aliveCheckId = (node: string): string => `ha-sidecar-alive:${node}`;

/** The node's service `ha-sidecar` and its checks on the local agent. */
export class AgentService {
  private readonly aliveCheckId: string;
  /** The last report sent of each part's check, and when (performance.now()). */
  private readonly reported = new Map<string, { status: string; output: string; at: number }>();

  constructor(private readonly consul: ConsulConnection) {
    this.aliveCheckId = aliveCheckId(consul.node);
  }

  /**
   * Registers the node's service and its checks. The alive TTL check is passed once at once, because a new TTL
   * check starts critical and a session cannot be bound to a critical check.
   */
  async registerService(spec: ServiceSpec): Promise<void> {
    const { client } = this.consul;
    await this.consul.call('service registration', async () => {
      // A re-registered check keeps its last status (CONSUL-NOTES), so a session bound to it by an earlier
      // process of this node would live on and hold the lock for good. Deregistering the check first
      // invalidates every such session at once (its lock is released with lock-delay, see design.md
      // "Sessions"); only then is the check registered afresh for this process.
      await client.agent.check.deregister(this.aliveCheckId).catch(() => undefined);
      await client.agent.service.register(this.service(spec));
      await client.agent.check.register({
        id: this.aliveCheckId,
        name: 'sidecar alive',
        serviceid: spec.node,
        ttl: `${spec.checkTtlSeconds}s`,
        notes: 'passed by the sidecar every reconcile turn; the session is bound to it',
      } as never);
      await client.agent.check.register({
        id: `ha-sidecar-api:${spec.node}`,
        name: 'sidecar API /health',
        serviceid: spec.node,
        http: `${spec.apiUrl}/health`,
        // The check only asks whether the local API answers, and an agent without Consul TLS has no CA of the
        // cluster's to verify with: over HTTPS it is made without verifying the certificate. An agent with
        // consul-config/tls.hcl.tmpl shows its node's certificate (enable_agent_tls_for_checks), which verifyClient asks for.
        tlsskipverify: spec.apiUrl.startsWith('https:'),
        interval: '2s',
        timeout: '1s',
      } as never);
      await client.agent.check.pass({ id: this.aliveCheckId, note: 'starting' } as never);
      await this.registerPostgresService(spec);
    });
  }

  /**
   * The service clients look Postgres up by: `<cluster>-postgres` on the Postgres port, tagged `primary` or
   * `replica`. Its only check aliases the node's `ha-sidecar` service, so it turns critical with the alive
   * check, which is bound to the session: a dead or stopped node's `primary` tag never passes, even though
   * nobody is left to remove it, and `?passing&tag=primary` names at most the one live leader.
   */
  private async registerPostgresService(spec: ServiceSpec): Promise<void> {
    const { cluster, postgresPort } = this.consul.opts;
    if (!postgresPort) return;
    await this.consul.client.agent.service.register({
      name: `${cluster}-postgres`,
      id: `${spec.node}-postgres`,
      address: spec.address,
      port: postgresPort,
      tags: [spec.postgresTag],
      meta: { cluster, node: spec.node },
      checks: [{ name: 'sidecar of this node', aliasservice: spec.node, notes: "mirrors the node's ha-sidecar service: its alive check, API and postgres checks" }],
    } as never);
  }

  /**
   * Changes the service's tags. Checks registered on their own are kept by a re-registration (Consul replaces
   * them only when asked), so the alive check, and the session bound to it, survive a role change.
   */
  async setServiceTags(spec: ServiceSpec): Promise<void> {
    await this.consul.call('service tag update', () => this.consul.client.agent.service.register(this.service(spec)));
    await this.consul.call('postgres service tag update', () => this.registerPostgresService(spec));
  }

  async passAliveCheck(note: string): Promise<void> {
    await this.consul.call('alive check pass', () => this.consul.client.agent.check.pass(this.consul.request({ id: this.aliveCheckId, note }) as never));
  }

  /** Reports a check of the node's service (registered on first use), e.g. the Postgres or file-mirror state. */
  async reportCheck(id: string, name: string, status: 'passing' | 'warning' | 'critical', output: string, ttlSeconds: number): Promise<void> {
    const { client, node } = this.consul;
    const checkId = `ha-sidecar-${id}:${node}`;
    const verb = status === 'passing' ? 'pass' : status === 'warning' ? 'warn' : 'fail';
    const update = () => client.agent.check[verb](this.consul.request({ id: checkId, note: output }) as never);
    const last = this.reported.get(checkId);
    const now = performance.now();
    if (last && last.status === status && last.output === output && now - last.at < ttlSeconds * 1000 * UNCHANGED_REPORT_TTL_SHARE) return;
    this.reported.delete(checkId);
    await this.consul.call(`check ${id} update`, async () => {
      try {
        await update();
      } catch {
        // Not registered yet (first turn, or the agent restarted): register it, then set the status.
        await client.agent.check.register({ id: checkId, name, serviceid: node, ttl: `${ttlSeconds}s` } as never);
        await update();
      }
    });
    this.reported.set(checkId, { status, output, at: now });
  }

  /**
   * After a graceful stop (session already destroyed, lock released): the alive check and the Postgres check
   * turn critical at once with `note`, instead of when their TTLs run out with no reason given.
   */
  async markStopped(note: string): Promise<void> {
    const { client, node } = this.consul;
    await this.consul.call('alive check fail', () => client.agent.check.fail(this.consul.request({ id: this.aliveCheckId, note }) as never));
    // The Postgres check exists only once the Postgres part reported; a missing one is nothing to mark.
    await client.agent.check.fail(this.consul.request({ id: `ha-sidecar-postgres:${node}`, note }) as never).catch(() => undefined);
  }

  /**
   * Consul's own raft election timeout, from the agent's configuration (null when the agent does not say, or
   * the token may not read it). A raft leader election takes one to two of these.
   */
  async raftElectionTimeoutMs(): Promise<number | null> {
    const self = (await this.consul.call('agent self', () => this.consul.client.agent.self(this.consul.request() as never))) as {
      DebugConfig?: { ConsulRaftElectionTimeout?: unknown };
    };
    const value = self.DebugConfig?.ConsulRaftElectionTimeout;
    return typeof value === 'string' ? parseGoDuration(value) : null;
  }

  /** The members of this agent's LAN gossip pool as serf sees them: the agent's own view, answered without a raft leader. */
  async gossipMembers(): Promise<GossipMember[]> {
    const members = (await this.consul.call('agent members', () => this.consul.client.agent.members(this.consul.request() as never))) as {
      Name: string;
      Addr: string;
      Port: number;
      Status: number;
    }[];
    return members.map((m) => ({ name: m.Name, address: `${m.Addr}:${m.Port}`, status: SERF_STATUS[m.Status] ?? 'unknown' }));
  }

  /** The members serf calls failed, as `address:port`. Members that left on purpose are not listed. */
  async failedGossipMembers(): Promise<{ name: string; address: string }[]> {
    return (await this.gossipMembers()).filter((m) => m.status === 'failed').map(({ name, address }) => ({ name, address }));
  }

  /**
   * The nodes whose `serfHealth` check is critical (gossip calls them failed), by a blocking read of the health
   * endpoint: it answers when the catalog's checks change past `index`, or after `waitSeconds` with nothing
   * new. `stale` lets this node's own server answer, so the read works (on the last state this server saw)
   * while the servers have no raft leader, and wakes once the heal's raft replication brings the change.
   * `cancel.emit('cancel')` aborts the read (a stopping sidecar).
   */
  async watchFailedNodes(index: number, waitSeconds: number, cancel: EventEmitter): Promise<{ nodes: string[]; index: number }> {
    const ctx = Object.assign(cancel, { includeResponse: true });
    const extra = { state: 'critical', filter: 'CheckID == "serfHealth"', stale: true, index, wait: `${waitSeconds}s`, ctx };
    const [res, checks] = (await this.consul.call('serfHealth watch', () =>
      this.consul.client.health.state(this.consul.request(extra, this.consul.opts.timeoutMs + waitSeconds * 1000 * 1.1) as never),
    )) as unknown as [{ headers: Record<string, string> }, { Node: string }[]];
    return { nodes: checks.map((c) => c.Node), index: Number(res.headers['x-consul-index'] ?? 0) };
  }

  /** Has the agent read its configuration files again (`consul reload`): its TLS files among them. */
  async reload(): Promise<void> {
    await this.consul.call('agent reload', () => this.consul.client.agent.reload(this.consul.request() as never));
  }

  /** Asks the agent to join `address` (gossip's push-pull with that member); the answer waits for the attempt. */
  async joinGossip(address: string, timeoutMs: number): Promise<void> {
    await this.consul.call(`gossip join of ${address}`, () => this.consul.client.agent.join(this.consul.request({ address }, timeoutMs) as never));
  }

  private service(spec: ServiceSpec) {
    return { name: 'ha-sidecar', id: spec.node, address: spec.address, port: spec.apiPort, tags: spec.tags, meta: this.serviceMeta() };
  }

  /** Service meta an operator or client reads: the cluster's name and where this node's Postgres listens. */
  private serviceMeta(): Record<string, string> {
    const { cluster, postgresPort } = this.consul.opts;
    return { cluster, ...(postgresPort ? { postgres_port: String(postgresPort) } : {}) };
  }
}
