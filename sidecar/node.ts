import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { probeVerdict, readsSyncList, type ProbeName } from './api/probes.js';
import { chooseDsn, type DsnChoice } from './api/dsn.js';
import { createApi, listen, type ApiBackend, type ApiServer } from './api/server.js';
import type { SidecarConfig } from './config.js';
import { aliveCheckId } from './consul/agent.js';
import { ConsulRefused, ConsulTlsFailed } from './consul/errors.js';
import { GossipRejoin } from './consul/gossip-rejoin.js';
import { ConsulStore, type MemberEntry } from './consul/store.js';
import { SidecarError, errorMessage, isSidecarError, type ErrorCode } from './errors.js';
import { candidateProblem } from './election/eligibility.js';
import { ReconcileLoop } from './election/loop.js';
import type { Participant } from './election/participant.js';
import { WriteGuard } from './guard/client.js';
import type { LogContext, Logger } from './log.js';
import { Metrics } from './metrics.js';
import { MirrorParticipant } from './mirror/participant.js';
import { PeerChecks } from './peer-reachability.js';
import { certificateExpiry, loadTlsMaterial, type CertificateExpiry, type TlsMaterial } from './shared/certificates.js';
import type { PeerFetch } from './shared/https-fetch.js';
import { servedCertificate, urlPort } from './shared/port-probe.js';
import { deriveSecret } from './shared/secrets.js';
import { postgresNodeValues } from './participants.js';
import { postgresSettings } from './postgres/settings.js';
import { pgName } from './postgres/quoting.js';
import { SnapshotService } from './snapshot/service.js';
import { Recovery, newWriter } from './recovery.js';
import type { OperatorAction } from './election/participant.js';

const membership = z.object({ cluster: z.string(), clusterId: z.string(), node: z.string(), joinedAt: z.string(), how: z.enum(['start', 'join']) });
type Membership = z.infer<typeof membership>;

/** How long POST /switchover waits for the new leader before answering. */
const SWITCHOVER_WAIT_MS = 30_000;

/** This node's TLS (the config's `tls` files, read and checked) and how it calls its peers' APIs. */
export interface NodeTransport {
  /** Replaced by a reload that read renewed files (SidecarNode.reloadTls). */
  tls: TlsMaterial | undefined;
  peers: PeerFetch;
}

/** The expiry warning is logged at most this often (and at start and at each reload), not every turn. */
const EXPIRY_WARNING_INTERVAL_MS = 24 * 60 * 60 * 1000;

/** What a reload did to the node's Consul agent, when it served the same certificate as the sidecar. */
interface ConsulTlsReload {
  port: number;
  servesNewCertificate: boolean;
}

/** After `consul reload`, how long the agent gets to serve the node's new certificate, and one handshake's limit. */
const CONSUL_TLS_RELOAD_WAIT_MS = 5_000;
const CONSUL_HANDSHAKE_TIMEOUT_MS = 2_000;

/**
 * One ha-sidecar node: the API, and once the node is a cluster member (after `cluster start` or `cluster
 * join`, remembered in `<dataDir>/membership.json`), the reconcile loop with its parts.
 */
export class SidecarNode implements ApiBackend {
  readonly store: ConsulStore;
  private readonly prom: Metrics;
  private readonly loop: ReconcileLoop;
  /** Only with Postgres: the process that kills it when this node's lease runs out while the sidecar is frozen. */
  private readonly guard: WriteGuard | undefined;
  private server: ApiServer | null = null;
  private member: Membership | null;
  /** Snapshots: a part of the loop (schedule on the leader, copies on standbys) and the API's /snapshots. */
  readonly snapshots: SnapshotService;
  private readonly recovery: Recovery;
  private readonly gossipRejoin: GossipRejoin;
  private readonly peerChecks: PeerChecks;
  /** When the expiry warning was last logged (Date.now()), null before the first. */
  private expiryWarnedAt: number | null = null;

  constructor(
    private readonly config: SidecarConfig,
    private readonly log: Logger,
    logContext: LogContext,
    private readonly participants: Participant[],
    private readonly transport: NodeTransport,
    metrics: Metrics = new Metrics(config.nodeName),
  ) {
    this.store = new ConsulStore(
      {
        url: config.consul.url,
        token: config.consul.token,
        // With a tls section the agent is spoken to over HTTPS with the cluster CA and this node's certificate.
        tls: transport.tls,
        cluster: config.clusterName,
        // A confirmation slower than a loop turn is worth nothing to the lease; give up and retry.
        timeoutMs: config.timings.loopWait * 1000,
        onBadValue: (key, problem) => log.warn('ignoring a bad value in Consul KV', { code: 'bad_kv_value', key, problem }),
        postgresPort: config.postgres.enabled ? config.postgres.port : undefined,
      },
      config.nodeName,
    );
    this.prom = metrics;
    const postgres = config.postgres.enabled ? postgresSettings(config.postgres, postgresNodeValues(config)) : null;
    this.guard = postgres
      ? new WriteGuard({
          dataDir: postgres.dataDir,
          nodeName: config.nodeName,
          leaseMs: config.timings.lease * 1000,
          // Where it releases the lock of a dead sidecar's session, named as the Consul part names them.
          consul: { url: config.consul.url, token: config.consul.token, tls: config.tls, lockKey: this.store.key('leader'), memberKey: this.store.key(`members/${config.nodeName}`), aliveCheck: aliveCheckId(config.nodeName) },
          log,
        })
      : undefined;
    this.snapshots = new SnapshotService({
      clusterName: config.clusterName,
      nodeName: config.nodeName,
      clusterToken: config.clusterToken,
      dataDir: config.dataDir,
      postgres,
      filesDirectory: config.files?.enabled ? config.files.directory : null,
      log,
      view: () => this.loop.view(),
      assertLeader: () => this.assertLeader(),
      readDynamicConfig: () => this.store.readDynamicConfig().then((c) => c.config),
      patchConfig: (patch) => this.patchConfig(patch),
      members: () => this.store.listMembers(),
      peers: transport.peers.fetch,
    });
    // The one place the loop's list is completed: the snapshots come last and are built here, not in
    // buildParticipants, because they read this node's loop view, leader check and config writes.
    // The certificate's expiry joins the member record like a part's fields, and is checked once a turn.
    const certificate: Participant = {
      name: 'tls',
      memberFields: () => {
        const tls = this.certificateExpiry();
        return tls ? { tls } : {};
      },
      leaderTurn: async () => this.warnIfExpiring(false),
      followerTurn: async () => this.warnIfExpiring(false),
    };
    const parts = [...participants, this.snapshots, certificate];
    this.gossipRejoin = new GossipRejoin(this.store, log);
    this.peerChecks = new PeerChecks(config, this.store, () => transport.tls, postgres?.replicationUser ?? null);
    this.loop = new ReconcileLoop({ config, store: this.store, log, logContext, metrics: this.prom, participants: parts, guard: this.guard });
    this.member = this.readMembership();
    this.recovery = new Recovery({ config, store: this.store, loop: this.loop, participants, log, isMember: () => this.member !== null, peers: transport.peers.fetch });
    this.prom.scrapeFrom({
      partFields: () => this.partFields(),
      consulContactAgeSeconds: () => this.store.lastContactAgeSeconds(),
      certificateExpiryDays: () => this.certificateExpiry()?.daysLeft ?? null,
    });
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
      // Consul answered but said no (a token without the policy), or the handshake failed (the CA, a certificate,
      // http:// against HTTPS): say so, rather than "cannot reach".
      if (e instanceof ConsulRefused || e instanceof ConsulTlsFailed) throw e;
      throw new SidecarError('consul_unavailable', `cannot reach Consul at ${this.config.consul.url}: ${errorMessage(e)}`);
    }
    this.guard?.start();
    this.gossipRejoin.start();
    const { tls } = this.transport;
    const policy = { clusterToken: this.config.clusterToken, tls: tls !== undefined, verifyClient: this.config.tls?.verifyClient ?? false };
    this.server = await listen(createApi(this, policy, this.log), this.config.address, this.config.apiPort, this.log, tls);
    this.log.info('API listening', { url: this.config.apiUrl, ...(tls ? { certificateValidTo: tls.validTo, verifyClient: policy.verifyClient } : {}) });
    this.warnIfExpiring(true);
    if (this.member) await this.loop.start();
    else this.log.info('not a cluster member yet: waiting for `hactl cluster start` or `hactl cluster join`');
  }

  async stop(): Promise<void> {
    if (this.member) await this.loop.stop();
    this.gossipRejoin.stop();
    await this.guard?.close();
    await this.server?.close();
    // The UI then shows why the node is down, not just a TTL expiry. Safe: the loop has stopped Postgres
    // and released the lock by now; a session that outlived a failed clean-up dies with this check, which
    // only hands the lock on sooner (after lock-delay), with no writer left here.
    if (this.member) await this.store.markStopped(`stopped gracefully at ${new Date().toISOString()}`).catch((e) => this.log.warn('could not mark the checks stopped', { error: errorMessage(e) }));
  }

  // --- the node's certificate -------------------------------------------------------------------------------

  /** The node certificate's expiry as of now; undefined without `tls`. */
  private certificateExpiry(): CertificateExpiry | undefined {
    const tls = this.transport.tls;
    return tls ? certificateExpiry(tls.validTo) : undefined;
  }

  /** `tls_certificate_expiring` when EXPIRY_WARNING_DAYS or fewer are left: now when `now`, else once a day. */
  private warnIfExpiring(now: boolean): void {
    const expiry = this.certificateExpiry();
    if (!expiry?.expiring) return;
    if (!now && this.expiryWarnedAt !== null && Date.now() - this.expiryWarnedAt < EXPIRY_WARNING_INTERVAL_MS) return;
    this.expiryWarnedAt = Date.now();
    this.log.warn(`the node's certificate ${expiry.daysLeft < 0 ? 'has expired' : `expires in ${expiry.daysLeft} days`}: replace it with \`hactl cluster tls rotate\``, {
      code: 'tls_certificate_expiring',
      certFile: this.config.tls?.certFile,
      ...expiry,
    });
  }

  /**
   * Reads the config's `tls` files again and, when they hold a new certificate, has every port of this node
   * use it: the API's new handshakes and this node's calls to its peers (Postgres reloads its copies itself,
   * next). The files are checked first, as at start (loadTlsMaterial): a renewal caught half-way (a new
   * certificate beside the old key) is 409 with its code and nothing changes. It cannot make a second writer
   * or lose a commit: it touches no role, lock, lease or data, and open connections (replication, clients)
   * keep the session they have; a certificate of the same CA is accepted wherever the old one was.
   */
  private async reloadTls(): Promise<{ consul?: ConsulTlsReload }> {
    const files = this.config.tls;
    if (!files) return {};
    let material: TlsMaterial;
    try {
      material = loadTlsMaterial(files);
    } catch (e) {
      if (isSidecarError(e)) throw new SidecarError(e.code, `${e.message}; nothing was reloaded`, 409);
      throw e;
    }
    const before = this.transport.tls;
    if (before?.fingerprint256 === material.fingerprint256 && before.ca === material.ca) return {};
    this.server?.setTls?.({ cert: material.cert, key: material.key, ca: material.ca });
    this.transport.peers.update(material);
    this.store.renewTls(material);
    this.transport.tls = material;
    this.log.info('reloaded the tls files: new connections get the new certificate', { certificateValidTo: material.validTo, fingerprint256: material.fingerprint256 });
    this.warnIfExpiring(true);
    return this.reloadConsulTls(material);
  }

  /**
   * The node's Consul agent serves the same certificate files as the sidecar (`hactl local`, compose, the
   * production config of docs/operations.md): it reads them again only when reloaded, and would go on serving
   * the old certificate until it expires. So when the agent does not serve the new certificate, it is reloaded
   * (`consul reload`, which reads its TLS files anew) and given CONSUL_TLS_RELOAD_WAIT_MS to serve it; one that
   * still does not has files of its own, and is said to. A reload keeps the agent's sessions, checks, raft and
   * gossip connections, so no role changes.
   */
  private async reloadConsulTls(material: TlsMaterial): Promise<{ consul?: ConsulTlsReload }> {
    const url = new URL(this.config.consul.url);
    if (url.protocol !== 'https:') return {};
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = urlPort(url);
    const served = () =>
      servedCertificate(host, port, false, { ca: material.ca, cert: material.cert, key: material.key }, CONSUL_HANDSHAKE_TIMEOUT_MS).then(
        (c) => c.fingerprint256,
        () => null,
      );
    if ((await served()) === material.fingerprint256) return {};
    await this.store.reloadAgent();
    for (const deadline = performance.now() + CONSUL_TLS_RELOAD_WAIT_MS; performance.now() < deadline; await delay(100)) {
      if ((await served()) !== material.fingerprint256) continue;
      this.log.info('reloaded the Consul agent: it serves the new certificate', { port, fingerprint256: material.fingerprint256 });
      return { consul: { port, servesNewCertificate: true } };
    }
    this.log.info('reloaded the Consul agent; it does not serve the new certificate, so it has certificate files of its own', { port });
    return { consul: { port, servesNewCertificate: false } };
  }

  // --- ApiBackend ------------------------------------------------------------------------------------------

  private partFields(): Record<string, unknown> {
    return Object.assign({}, ...this.participants.map((p) => p.memberFields?.() ?? {})) as Record<string, unknown>;
  }

  async probe(name: ProbeName, lagLimit: number | undefined) {
    const view = this.loop.view();
    // Peers read a candidate's fresh WAL position here when they compare themselves before a failover.
    const fields = this.partFields();
    const body = { node: view.node, role: view.role, term: view.term, status: view.status, ...(view.lastFailure ? { lastFailure: view.lastFailure } : {}), ...fields };
    const lag = fields.lagBytes;
    const verdict = probeVerdict(
      name,
      {
        member: this.member !== null,
        role: view.role,
        leaderReady: view.leaderReady,
        running: this.participants.every((p) => p.ready?.('starting') ?? true),
        standbyReady: this.participants.every((p) => p.ready?.('standby') ?? true),
        lagBytes: lag === undefined ? undefined : typeof lag === 'number' ? lag : null,
        maxReplicaLag: view.dynamicConfig.maxReplicaLag,
        synchronous: readsSyncList(name) ? await this.listedSynchronous(view.leader?.name) : undefined,
        lastTurnAgeMs: this.prom.lastTurnAgeMs(),
      },
      lagLimit,
    );
    if (!this.member && !verdict.ok) return { ok: false, body: { ...body, error: 'not_member' satisfies ErrorCode, message: 'this node has not started or joined a cluster' } };
    return { ok: verdict.ok, body: verdict.why === undefined ? body : { ...body, reason: verdict.why } };
  }

  /** Whether the leader's member record lists this node as a synchronous standby; undefined when unreadable. */
  private async listedSynchronous(leader: string | undefined): Promise<boolean | undefined> {
    if (leader === undefined) return undefined;
    const members = await this.store.listMembers().catch(() => null);
    const record = members?.find((m) => m.record.name === leader)?.record;
    if (!record) return undefined;
    return Array.isArray(record.syncStandbys) && record.syncStandbys.includes(pgName(this.config.nodeName));
  }

  readConfig() {
    return this.store.readDynamicConfig().then((c) => c.config);
  }

  /**
   * The application database's URI; the password is `postgres.appPassword`, else derived from the token as
   * every node does. With TLS the CA is this node's `tls.caFile` (hactl puts its profile's in its place).
   */
  async dsn(choice: DsnChoice) {
    const pg = this.config.postgres;
    if (!pg.enabled) throw new SidecarError('postgres_disabled', 'this cluster runs without Postgres', 409);
    const password = pg.appPassword ?? deriveSecret(this.config.clusterToken, 'app');
    const login = { user: pg.appUser, password, database: pg.appDatabase, port: pg.port, ...(this.config.tls ? { sslrootcert: this.config.tls.caFile } : {}) };
    return chooseDsn(await this.store.listMembers(), this.loop.view().leader?.name, choice, login);
  }

  async cluster() {
    const view = this.loop.view();
    let consulError: string | null = null;
    const [members, term, config, clusterId] = await Promise.all([
      // An empty list would read as "no members": say that Consul did not answer instead.
      this.store.listMembers().catch((e: unknown) => {
        consulError = errorMessage(e);
        return [];
      }),
      // The term never goes back: a missing or hand-broken key (read as 0) shows the highest term this node saw.
      this.store.readTerm().then((term) => Math.max(term, view.term), () => view.term),
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
      node: { name: view.node, role: view.role, status: view.status, member: this.member !== null, lastFailure: view.lastFailure },
      consulError: consulError as string | null,
      members: members
        .map(({ record, alive }) => ({ ...record, state: alive ? record.state : 'offline', alive, role: alive ? record.role : 'offline' }))
        .sort((a, b) => a.name.localeCompare(b.name)),
    };
  }

  /** Every peer's ports as this node reaches them (`hactl cluster validate`). */
  reachability() {
    return this.peerChecks.check();
  }

  history() {
    return this.store.readHistory();
  }

  async metrics() {
    return { contentType: this.prom.registry.contentType, text: await this.prom.registry.metrics() };
  }

  assertLeader(): void {
    if (this.loop.leaderReady()) return;
    // A leader whose manager fails (its /leader answers 503) is still in charge: operators must be able to switch over.
    if (this.leadsWithLease()) return;
    const leader = this.loop.view().leader;
    throw new SidecarError(
      'not_cluster_leader',
      leader ? `this node is not the leader; the leader is ${leader.name} at ${leader.apiUrl}` : 'this node is not the leader, and no leader is elected right now',
      409,
      { leader: leader?.name ?? null, leaderUrl: leader?.apiUrl ?? null },
    );
  }

  private leadsWithLease(): boolean {
    const v = this.loop.view();
    return v.role === 'leader' && v.lockHeld && v.leaseValid;
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

  /**
   * Planned switchover (design rule 7). Like Patroni, the leader checks the target before it steps down, so
   * a request it cannot carry out changes nothing; it answers once the new leader serves writes (`/leader`).
   */
  async switchover(to: string | undefined) {
    const members = await this.store.listMembers();
    const from = this.config.nodeName;
    if (to === from) throw new SidecarError('already_leader', `${to} is already the leader`, 409);
    if (to !== undefined && !members.some((m) => m.record.name === to)) throw new SidecarError('unknown_node', `no member named ${to}`, 404);
    const candidates = members.filter((m) => m.record.name !== from && (to === undefined || m.record.name === to));
    const verdicts = candidates.map((m) => ({ name: m.record.name, problem: this.switchoverProblem(m) }));
    const fit = verdicts.filter((v) => v.problem === null);
    if (fit.length === 0) {
      const reasons = verdicts.map((v) => `${v.name}: ${v.problem}`).join('; ') || 'no other member';
      throw new SidecarError('candidate_not_ready', `no switchover: ${to ?? 'no standby'} is fit to take over (${reasons})`, 409, { candidates: verdicts });
    }
    const termBefore = this.loop.view().term;
    await this.store.writeSwitchover({ from, to, requestedAt: new Date().toISOString() });
    this.loop.poke();
    const leader = await newWriter(this.store, termBefore, SWITCHOVER_WAIT_MS, this.transport.peers.fetch);
    if (leader) {
      if (leader.name !== from) return { switchedOver: true, from, to: leader.name, term: leader.term };
      // The target (or the best standby) could not lead and the old leader took its lock back.
      throw new SidecarError('switchover_failed', `${to ?? 'no standby'} could not take over; ${from} leads again (term ${leader.term}): see \`hactl cluster history\` and the target's log`, 502, { leader: from, term: leader.term });
    }
    throw new SidecarError('switchover_timeout', `no new leader serves writes ${SWITCHOVER_WAIT_MS / 1000} s after the request; see \`hactl cluster status\``, 504);
  }

  /** Why a member cannot take over in a switchover now, or null when it can (election/eligibility.ts). */
  private switchoverProblem(m: MemberEntry): string | null {
    const r = m.record as MemberEntry['record'] & { streaming?: unknown; lagBytes?: unknown };
    const postgres = this.config.postgres;
    const problem = candidateProblem(
      {
        alive: m.alive,
        nofailover: r.nofailover === true,
        role: String(r.role),
        ...(postgres.enabled ? { streaming: r.streaming === true, behindBytes: typeof r.lagBytes === 'number' ? r.lagBytes : null } : {}),
      },
      postgres.maxLagOnFailover,
    );
    switch (problem?.kind) {
      case undefined:
        return null;
      case 'not_running':
        return 'not running';
      case 'nofailover':
        return 'tagged nofailover';
      case 'not_standby':
        return `role ${problem.role}`;
      case 'not_streaming':
        return 'postgres is not streaming';
      case 'position_unknown':
        return 'lag unknown';
      case 'behind':
        return `${problem.bytes} bytes behind (limit ${problem.limit})`;
    }
  }

  failover(to: string, force: boolean) {
    return this.recovery.failover(to, force);
  }

  /**
   * A reload reads the node's tls files again first, for every port (reloadTls), then has Postgres re-read
   * its configuration and its copies of them; without Postgres it reloads the tls files alone.
   */
  async postgresAction(action: OperatorAction) {
    const reloaded = action === 'reload' ? await this.reloadTls() : {};
    const expiry = this.certificateExpiry();
    const tls = expiry ? { tls: { ...expiry, fingerprint256: this.transport.tls?.fingerprint256, ...reloaded } } : {};
    if (action === 'reload' && expiry && !this.config.postgres.enabled) return { ...this.recovery.operationView(), ...tls };
    return { ...(await this.recovery.postgresAction(action)), ...tls };
  }

  postgresOperation() {
    return Promise.resolve(this.recovery.operationView());
  }

  async filesSync(paths: string[]) {
    const mirror = this.participants.find((p): p is MirrorParticipant => p instanceof MirrorParticipant);
    if (!mirror) throw new SidecarError('files_not_serving', 'this node runs without the file mirror', 409);
    return mirror.syncFiles(paths);
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
