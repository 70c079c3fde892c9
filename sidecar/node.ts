import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { createApi, listen, type ApiBackend } from './api/server.js';
import type { SidecarConfig } from './config.js';
import { ConsulStore } from './consul/store.js';
import { SidecarError, errorMessage } from './errors.js';
import { ReconcileLoop } from './election/loop.js';
import type { Participant } from './election/participant.js';
import type { LogContext, Logger } from './log.js';
import { Metrics } from './metrics.js';

const membership = z.object({ cluster: z.string(), clusterId: z.string(), node: z.string(), joinedAt: z.string(), how: z.enum(['start', 'join']) });
type Membership = z.infer<typeof membership>;

/** How long POST /switchover waits for the new leader before answering. */
const SWITCHOVER_WAIT_MS = 30_000;

/**
 * One ha-sidecar node: the API, and once the node is a cluster member (after `cluster start` or `cluster
 * join`, remembered in `<dataDir>/membership.json`), the reconcile loop with its parts.
 */
export class SidecarNode implements ApiBackend {
  readonly store: ConsulStore;
  private readonly prom: Metrics;
  private readonly loop: ReconcileLoop;
  private server: Server | null = null;
  private member: Membership | null;

  constructor(
    private readonly config: SidecarConfig,
    private readonly log: Logger,
    logContext: LogContext,
    private readonly participants: Participant[],
    metrics: Metrics = new Metrics(config.nodeName),
  ) {
    this.store = new ConsulStore(
      {
        url: config.consul.url,
        token: config.consul.token,
        cluster: config.clusterName,
        // A confirmation slower than a loop turn is worth nothing to the lease; give up and retry.
        timeoutMs: config.timings.loopWait * 1000,
        onBadValue: (key, problem) => log.warn('ignoring a bad value in Consul KV', { code: 'bad_kv_value', key, problem }),
      },
      config.nodeName,
    );
    this.prom = metrics;
    this.loop = new ReconcileLoop({ config, store: this.store, log, logContext, metrics: this.prom, participants });
    this.member = this.readMembership();
  }

  private get membershipFile(): string {
    return join(this.config.dataDir, 'membership.json');
  }

  private readMembership(): Membership | null {
    if (!existsSync(this.membershipFile)) return null;
    const parsed = membership.safeParse(JSON.parse(readFileSync(this.membershipFile, 'utf8')));
    if (!parsed.success || parsed.data.cluster !== this.config.clusterName || parsed.data.node !== this.config.nodeName) {
      throw new SidecarError('invalid_state', `${this.membershipFile} belongs to another cluster or node; move it away to start afresh`);
    }
    return parsed.data;
  }

  private writeMembership(m: Membership): void {
    mkdirSync(this.config.dataDir, { recursive: true });
    writeFileSync(this.membershipFile + '.tmp', JSON.stringify(m, null, 2) + '\n');
    renameSync(this.membershipFile + '.tmp', this.membershipFile);
    this.member = m;
  }

  /** Checks Consul, opens the API, and resumes the loop of a node that is already a member. */
  async start(): Promise<void> {
    try {
      await this.store.readInitialize();
    } catch (e) {
      throw new SidecarError('consul_unavailable', `cannot reach Consul at ${this.config.consul.url}: ${errorMessage(e)}`);
    }
    this.server = await listen(createApi(this, this.config.clusterToken, this.log), this.config.address, this.config.apiPort);
    this.log.info('API listening', { url: `http://${this.config.address}:${this.config.apiPort}` });
    if (this.member) await this.loop.start();
    else this.log.info('not a cluster member yet: waiting for `hactl cluster start` or `hactl cluster join`');
  }

  async stop(): Promise<void> {
    if (this.member) await this.loop.stop();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }

  // --- ApiBackend ------------------------------------------------------------------------------------------

  probe(name: 'health' | 'leader' | 'replica', query: Record<string, unknown>) {
    const view = this.loop.view();
    // Peers read a candidate's fresh WAL position here when they compare themselves before a failover.
    const fields = Object.assign({}, ...this.participants.map((p) => p.memberFields?.() ?? {})) as Record<string, unknown>;
    const body = { node: view.node, role: view.role, term: view.term, status: view.status, ...fields };
    if (!this.member) return { ok: false, body: { ...body, error: 'not_member', message: 'this node has not started or joined a cluster' } };
    if (name === 'health') {
      const ok = this.participants.every((p) => p.ready?.('starting') ?? true);
      return { ok, body };
    }
    if (name === 'leader') return { ok: view.leaderReady, body };
    const lag = query.lag === undefined ? undefined : Number(query.lag);
    const ok = view.role === 'standby' && this.participants.every((p) => p.ready?.('standby') ?? true) && this.replicaWithin(lag);
    return { ok, body };
  }

  private replicaWithin(lagLimit: number | undefined): boolean {
    const fields = Object.assign({}, ...this.participants.map((p) => p.memberFields?.() ?? {})) as { lagBytes?: number | null };
    if (fields.lagBytes === undefined) return true;
    if (fields.lagBytes === null) return false;
    return fields.lagBytes <= (lagLimit !== undefined && Number.isFinite(lagLimit) ? lagLimit : this.loop.view().dynamicConfig.maxReplicaLag);
  }

  async cluster() {
    const view = this.loop.view();
    const [members, term, config, clusterId] = await Promise.all([
      this.store.listMembers().catch(() => []),
      this.store.readTerm().catch(() => view.term),
      this.store.readDynamicConfig().then((c) => c.config).catch(() => view.dynamicConfig),
      this.store.readInitialize().catch(() => null),
    ]);
    return {
      cluster: this.config.clusterName,
      clusterId,
      term,
      leader: view.leader,
      paused: config.paused,
      status: view.status,
      config,
      node: { name: view.node, role: view.role, status: view.status, member: this.member !== null },
      members: members
        .map(({ record, alive }) => ({ ...record, state: alive ? record.state : 'offline', alive, role: alive ? record.role : 'offline' }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    };
  }

  history() {
    return this.store.readHistory();
  }

  async metrics() {
    return { contentType: this.prom.registry.contentType, text: await this.prom.registry.metrics() };
  }

  assertLeader(): void {
    if (this.loop.leaderReady()) return;
    const leader = this.loop.view().leader;
    throw new SidecarError(
      'not_cluster_leader',
      leader ? `this node is not the leader; the leader is ${leader.name} at ${leader.apiUrl}` : 'this node is not the leader, and no leader is elected right now',
      409,
      { leader: leader?.name ?? null, leaderUrl: leader?.apiUrl ?? null },
    );
  }

  private assertThisNode(nodeName: string): void {
    if (nodeName !== this.config.nodeName) {
      throw new SidecarError('wrong_node', `this sidecar is node ${this.config.nodeName}, not ${nodeName}: send the call to ${nodeName}'s own API`, 400);
    }
  }

  async startCluster(nodeName: string) {
    this.assertThisNode(nodeName);
    if (this.member) throw new SidecarError('already_member', `node ${nodeName} is already a member of cluster ${this.member.cluster}`, 409);
    for (const p of this.participants) await p.checkJoinable?.(false);
    const { created, clusterId } = await this.store.initialize(randomUUID());
    if (!created) {
      throw new SidecarError('cluster_already_initialized', `cluster ${this.config.clusterName} already exists (id ${clusterId}): use \`hactl cluster join\` for this node`, 409);
    }
    this.writeMembership({ cluster: this.config.clusterName, clusterId, node: nodeName, joinedAt: new Date().toISOString(), how: 'start' });
    await this.loop.start();
    return { started: true, cluster: this.config.clusterName, clusterId, node: nodeName };
  }

  async joinCluster(nodeName: string, force: boolean) {
    this.assertThisNode(nodeName);
    if (this.member) throw new SidecarError('already_member', `node ${nodeName} is already a member of cluster ${this.member.cluster}`, 409);
    const clusterId = await this.store.readInitialize();
    if (!clusterId) throw new SidecarError('cluster_not_initialized', `cluster ${this.config.clusterName} has not been started: run \`hactl cluster start\` on the first node`, 409);
    for (const p of this.participants) await p.checkJoinable?.(force);
    this.writeMembership({ cluster: this.config.clusterName, clusterId, node: nodeName, joinedAt: new Date().toISOString(), how: 'join' });
    await this.loop.start();
    return { joined: true, cluster: this.config.clusterName, clusterId, node: nodeName };
  }

  async removeNode(name: string) {
    if (name === this.config.nodeName) throw new SidecarError('cannot_remove_leader', 'the leader cannot remove itself: switch over first', 409);
    const member = (await this.store.listMembers()).find((m) => m.record.name === name);
    if (!member) throw new SidecarError('unknown_node', `no member named ${name}`, 404);
    if (member.alive) throw new SidecarError('node_running', `node ${name} is still running: stop its sidecar first, then remove it`, 409);
    await this.store.deleteMember(name);
    return { removed: name };
  }

  async switchover(to: string | undefined) {
    const members = await this.store.listMembers();
    if (to !== undefined) {
      const target = members.find((m) => m.record.name === to);
      if (!target || !target.alive) throw new SidecarError('unknown_node', `no running member named ${to}`, 404);
      if (to === this.config.nodeName) throw new SidecarError('already_leader', `${to} is already the leader`, 409);
      if (target.record.nofailover) throw new SidecarError('node_nofailover', `${to} is tagged nofailover and cannot lead`, 409);
    } else if (!members.some((m) => m.alive && m.record.name !== this.config.nodeName && !m.record.nofailover)) {
      throw new SidecarError('no_candidate', 'no running standby can take over', 409);
    }
    const from = this.config.nodeName;
    await this.store.writeSwitchover({ from, to, requestedAt: new Date().toISOString() });
    this.loop.poke();
    const deadline = Date.now() + SWITCHOVER_WAIT_MS;
    while (Date.now() < deadline) {
      const { leader, session } = await this.store.readLock(false).catch(() => ({ leader: null, session: null }));
      if (session && leader && leader.name !== from) return { switchedOver: true, from, to: leader.name, term: leader.term };
      await sleep(200);
    }
    throw new SidecarError('switchover_timeout', `no new leader took over within ${SWITCHOVER_WAIT_MS / 1000} s; see \`hactl cluster status\``, 504);
  }

  async patchConfig(patch: Record<string, unknown>) {
    for (;;) {
      const { config, index } = await this.store.readDynamicConfig();
      const next = { ...config, ...patch };
      if (await this.store.writeDynamicConfig(next, index)) {
        this.log.info('dynamic config changed', { patch });
        this.loop.poke();
        return next;
      }
    }
  }
}
