import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SidecarError, answeredCode } from '../../sidecar/errors.js';
import { deriveConsulToken, deriveGossipKey } from '../../sidecar/shared/secrets.js';
import type { ClusterView, Member } from '../api.js';
import { ClusterViewSchema } from '../api.js';
import type { FetchLike } from '../leader-client.js';
import { sendOnce } from '../leader-client.js';
import { ACL_READY_TIMEOUT_MS, ensureSidecarToken, renderConsulServer } from './consul.js';
import type { NodeFiles, NodeIdentity } from './layout.js';
import { nodeIdentity } from './layout.js';
import { logTail } from './processes.js';
import { waitUntil } from './wait.js';

export type { NodeFiles } from './layout.js';

/**
 * The one driver of a cluster on this machine, used by `hactl local` (cli/local/local-cluster.ts) and by the test
 * harness (tests/harness/): it names the nodes and gives each its address, renders their Consul and sidecar
 * configuration, starts their processes through one function, waits for Consul's raft leader and autopilot,
 * forms the cluster (`cluster start`, `cluster join`), waits for the members, and stops the sidecars before
 * Consul. What differs between the two users comes in through `DriverSetup`: where the files are, how a
 * process is started and stopped (detached with a pid in state.json, or a child in a test's process group),
 * the cluster token and Consul's secrets.
 */

/** Raft needs every server up and agreeing; 3 servers on one machine elect in a few seconds. */
const CONSUL_LEADER_TIMEOUT_MS = 60_000;
/** Autopilot calls a server healthy and voting after it has been stable (server_stabilization_time, 10 s). */
const CONSUL_HEALTHY_TIMEOUT_MS = 60_000;
/** A sidecar opens its API once it has reached Consul: a second or two, more on a loaded machine. */
const SIDECAR_API_TIMEOUT_MS = 30_000;
/** The first leader initialises its Postgres (initdb, 15 s on a loaded machine) before /leader answers 200. */
const FIRST_LEADER_TIMEOUT_MS = 120_000;
/** Standbys clone the primary (pg_basebackup) before they are healthy. */
const MEMBERS_TIMEOUT_MS = 180_000;
/** `cluster start` and `join` answer when their work is done (see cli/context.ts LONG_OPERATION_TIMEOUT_MS). */
const OPERATION_TIMEOUT_MS = 120_000;
/**
 * One probe of a local process. Loopback answers in milliseconds, but on a loaded machine (load 20 on 2 cores)
 * a node's first answer to a fresh hactl process was seen to take over a second; three mean it is not answering.
 */
const PROBE_TIMEOUT_MS = 3_000;

/** The processes the driver starts on each node; Postgres is the sidecar's child, not the driver's. */
export type Part = 'consul' | 'sidecar';

/** One node as the driver knows it. */
export type DriverNode = NodeIdentity & NodeFiles;

/** What a user of the driver decides. */
export interface DriverSetup<Files extends NodeFiles> {
  size: number;
  /** THE place a node's address comes from (index 0 is n1). */
  addressOf: (index: number) => string;
  /** Where node `name`'s files are. */
  filesOf: (name: string, address: string) => Files;
  /** THE place a node's process starts: `argv[0]` is the program; its output goes to `logOf(node, part)`. */
  spawn: (node: DriverNode & Files, part: Part, argv: string[]) => Promise<void>;
  /** Whether the process of `part` the driver started on `node` still runs. */
  isRunning: (node: DriverNode & Files, part: Part) => boolean;
  /** Stops the process of `part` on `node` (and what it started), resolving once it is gone. */
  stop: (node: DriverNode & Files, part: Part) => Promise<void>;
  clusterName: string;
  /** The cluster token: sidecars get it in their config, cluster operations send it. */
  clusterToken: string;
  postgres: boolean;
  /** The Consul binary and the compiled sidecar, looked up when a process starts (`down` needs neither). */
  consulBinary: () => string;
  sidecarMain: () => string;
  /**
   * TLS on every port: `dir` holds the cluster CA (`ca.crt`) and each node's `<name>.crt` and `<name>.key`
   * (`hactl cluster tls init`). The sidecar API speaks HTTPS, and Consul runs as production does
   * (consul-config/tls.hcl.tmpl: HTTPS on 8501 and RPC with verify_incoming, verify_outgoing and
   * verify_server_hostname; gossip encryption; ACLs default deny), with `consulSecrets` derived from the
   * cluster token unless given. `fetch` must then verify with that CA and show a certificate of it.
   */
  tls?: { dir: string; verifyClient: boolean };
  /**
   * Consul with gossip encryption and ACLs (the harness's ACL mode, and every TLS cluster); the management token
   * is sent to Consul, and each sidecar gets a token of consul-config/sidecar-policy.hcl.tmpl.
   */
  consulSecrets?: { gossipKey: string; aclManagementToken: string };
  fetch: FetchLike;
  /** Progress lines (`hactl local` prints them). */
  say?: (line: string) => void;
  /** Where the logs are, for a timeout's error message. */
  logHint?: { consul: string; sidecar: string };
}

/** A node's certificate and key from `dir`, and the cluster CA. */
function nodeTlsFiles(dir: string, name: string): { certFile: string; keyFile: string; caFile: string } {
  return { certFile: join(dir, `${name}.crt`), keyFile: join(dir, `${name}.key`), caFile: join(dir, 'ca.crt') };
}

/** A node's `tls` config section: its files, and whether its API asks clients for a certificate. */
function nodeTlsConfig(tls: { dir: string; verifyClient: boolean }, name: string): Record<string, unknown> {
  return { ...nodeTlsFiles(tls.dir, name), verifyClient: tls.verifyClient };
}

export const logOf = (node: NodeFiles, part: Part): string => (part === 'consul' ? node.consulLog : node.sidecarLog);

/** What `GET /cluster` says of the node that answers. */
export type NodeView = ClusterView & { node?: { role?: string; member?: boolean } };

/** The manager's state a member record or a probe body carries (`manager: {state, detail}`), if any. */
const managerState = (fields: unknown): unknown => (fields as { manager?: { state?: unknown } } | null)?.manager?.state;

/** Why `record` does not yet show what its node's own probe `body` says now (its state line, its manager); '' when it does. */
export function staleRecord(record: Member, body: unknown): string {
  const status = (body as { status?: unknown } | null)?.status;
  if (typeof status === 'string' && record.state !== status) return `${record.name}'s record says "${record.state ?? ''}", the node "${status}"`;
  const recorded = managerState(record);
  const now = managerState(body);
  if (typeof now === 'string' && recorded !== now) return `${record.name}'s record shows its manager ${String(recorded)}, the node ${now}`;
  return '';
}

/** Manager states of a member whose manager runs as it should: healthy, or no health URL to ask. */
const SETTLED_MANAGER = new Set(['healthy', 'active', 'passive']);

/** Why `record`'s manager is not running as it should yet (a hook running, unhealthy); '' when it is or there is none. */
export function unsettledManager(record: Member): string {
  const state = managerState(record);
  return typeof state === 'string' && !SETTLED_MANAGER.has(state) ? `${record.name}'s manager is ${state}` : '';
}

/**
 * The failed promotion a probe body reports (`lastFailure`), when waiting will not cure it: the first node of a
 * new cluster is alone, so a promotion that failed with a code of its own (initdb_failed, bad_kv_value, ...)
 * fails the same way on every retry until a person acts. Consul's codes and uncoded errors (a lock lost in a
 * raft election) pass with time, so the wait goes on through them.
 */
export function lastingFailure(body: unknown): { code: string; message: string } | undefined {
  const failure = (body as { lastFailure?: { code?: unknown; message?: unknown } } | null)?.lastFailure;
  if (typeof failure?.code !== 'string' || typeof failure.message !== 'string') return undefined;
  if (failure.code.startsWith('consul_') || failure.code === 'internal_error') return undefined;
  return { code: failure.code, message: failure.message };
}

/** Consul's secrets of a TLS cluster, derived from the cluster token so every start of it agrees (shared/secrets.ts). */
export function derivedConsulSecrets(clusterToken: string): { gossipKey: string; aclManagementToken: string } {
  return { gossipKey: deriveGossipKey(clusterToken), aclManagementToken: deriveConsulToken(clusterToken, 'consul-management') };
}

export class ClusterDriver<Files extends NodeFiles = NodeFiles> {
  readonly nodes: (DriverNode & Files)[];
  /** Consul's gossip key and management token: given, or derived in a TLS cluster; undefined without ACLs. */
  readonly consulSecrets: { gossipKey: string; aclManagementToken: string } | undefined;
  /**
   * The sidecars' Consul token (with ACLs): only the rights of consul-config/sidecar-policy.hcl.tmpl, its
   * SecretID derived from the cluster token, so a restart finds the one it made before.
   */
  readonly sidecarConsulToken: string | undefined;
  /** Set once ensureSidecarToken saw every server resolve the sidecars' token. */
  private sidecarTokenMade = false;

  constructor(private readonly setup: DriverSetup<Files>) {
    this.nodes = Array.from({ length: setup.size }, (_, i) => {
      const identity = nodeIdentity(i, setup.addressOf(i), setup.tls !== undefined);
      return { ...setup.filesOf(identity.name, identity.address), ...identity };
    });
    this.consulSecrets = setup.consulSecrets ?? (setup.tls ? derivedConsulSecrets(setup.clusterToken) : undefined);
    this.sidecarConsulToken = this.consulSecrets ? deriveConsulToken(setup.clusterToken, 'consul-sidecar') : undefined;
  }

  /** Node `index` (0 is n1). */
  node(index: number): DriverNode & Files {
    const node = this.nodes[index];
    if (node === undefined) throw new Error(`the cluster has no node ${index} (it has ${this.nodes.length})`);
    return node;
  }

  private say(line: string): void {
    this.setup.say?.(line);
  }

  // --- configuration --------------------------------------------------------------------------------------

  /** Renders consul-config/ for one server and returns the `consul agent` arguments. */
  consulArgs(node: DriverNode): string[] {
    return renderConsulServer({
      nodeName: node.name,
      address: node.address,
      serverAddresses: this.nodes.map((n) => n.address),
      dataDir: node.consulDataDir,
      configDir: node.consulConfigDir,
      gossipKey: this.consulSecrets?.gossipKey,
      aclManagementToken: this.consulSecrets?.aclManagementToken,
      tls: this.setup.tls ? nodeTlsFiles(this.setup.tls.dir, node.name) : undefined,
    });
  }

  /**
   * Writes a node's sidecar config (0600: it holds the cluster token), with `extra` merged over the common
   * part. Postgres lets replication in from the cluster's addresses only.
   */
  writeSidecarConfig(node: DriverNode, extra: Record<string, unknown> = {}): void {
    mkdirSync(node.dir, { recursive: true, mode: 0o755 });
    const config = {
      nodeName: node.name,
      clusterName: this.setup.clusterName,
      address: node.address,
      clusterToken: this.setup.clusterToken,
      dataDir: node.dataDir,
      clusterAddresses: this.nodes.map((n) => n.address),
      postgres: { enabled: this.setup.postgres },
      ...(this.setup.tls ? { tls: nodeTlsConfig(this.setup.tls, node.name) } : {}),
      // With TLS the sidecar's consul.url defaults to https://<address>:8501, the one its Consul serves.
      ...(this.sidecarConsulToken ? { consul: { token: this.sidecarConsulToken } } : {}),
      ...extra,
    };
    writeFileSync(node.sidecarConfig, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  }

  // --- starting -------------------------------------------------------------------------------------------

  async startConsul(node: DriverNode & Files): Promise<void> {
    this.say(`starting consul on ${node.name} (${node.address})`);
    await this.setup.spawn(node, 'consul', [this.setup.consulBinary(), ...this.consulArgs(node)]);
  }

  async startSidecar(node: DriverNode & Files): Promise<void> {
    this.say(`starting sidecar on ${node.name} (${node.apiUrl})`);
    await this.setup.spawn(node, 'sidecar', [process.execPath, this.setup.sidecarMain(), '--config', node.sidecarConfig]);
  }

  /** Fails with the log's last lines when a process a wait relies on has exited. */
  private guard(parts: { node: DriverNode & Files; part: Part }[]): () => void {
    return () => {
      for (const { node, part } of parts) {
        if (this.setup.isRunning(node, part)) continue;
        const log = logOf(node, part);
        const tail = logTail(log);
        throw new SidecarError('process_exited', `${part} on ${node.name} exited${tail !== '' ? `: ${tail}` : ''} (log: ${log})`, 500);
      }
    };
  }

  private everyProcess(): () => void {
    return this.guard(this.nodes.flatMap((node) => [{ node, part: 'consul' as const }, { node, part: 'sidecar' as const }]));
  }

  /** Waits until the servers of `nodes` agree on one raft leader, and returns its address (`ip:8300`). */
  async waitForRaftLeader(opts: { nodes?: (DriverNode & Files)[]; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<string> {
    const nodes = opts.nodes ?? this.nodes;
    return waitUntil(
      'the consul servers to agree on a raft leader',
      async () => {
        const leaders = await Promise.all(nodes.map((n) => this.raftLeader(n)));
        return leaders[0] !== '' && leaders.every((l) => l === leaders[0]) ? leaders[0] : undefined;
      },
      {
        timeoutMs: opts.timeoutMs ?? CONSUL_LEADER_TIMEOUT_MS,
        signal: opts.signal,
        guard: this.guard(nodes.map((node) => ({ node, part: 'consul' as const }))),
        hint: this.setup.logHint?.consul,
      },
    );
  }

  /**
   * Waits until autopilot calls every server of the cluster healthy and voting. A server that rejoins after a
   * crash votes only after server_stabilization_time (10 s); a second fault before then can leave no quorum.
   * Once the sidecars' token is made, also until every server resolves it: see everyServerKnowsSidecarToken.
   */
  async waitForConsulHealthy(opts: { nodes?: (DriverNode & Files)[]; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    const first = this.node(0);
    await waitUntil(
      "every consul server to be healthy and voting (autopilot) and to resolve the sidecars' token",
      async () => {
        const answer = await this.consulGet(first, '/v1/operator/autopilot/health');
        if (answer.status !== 200) return false;
        const health = answer.body as { Healthy?: boolean; Servers?: { Healthy?: boolean; Voter?: boolean }[] };
        const servers = health.Servers ?? [];
        if (health.Healthy !== true || servers.length !== this.nodes.length || !servers.every((s) => s.Healthy === true && s.Voter === true)) return false;
        return !this.sidecarTokenMade || (await this.everyServerKnowsSidecarToken());
      },
      {
        timeoutMs: opts.timeoutMs ?? CONSUL_HEALTHY_TIMEOUT_MS,
        signal: opts.signal,
        guard: this.guard((opts.nodes ?? this.nodes).map((node) => ({ node, part: 'consul' as const }))),
        hint: this.setup.logHint?.consul,
      },
    );
  }

  /**
   * Waits for Consul's raft leader among `nodes`, then until autopilot calls every server a healthy voter; with
   * ACLs, until the sidecars' token exists (`ensureSidecarToken`).
   */
  async waitForConsul(signal?: AbortSignal, nodes: (DriverNode & Files)[] = this.nodes): Promise<void> {
    const leader = await this.waitForRaftLeader({ nodes, signal });
    this.say(`consul raft leader is ${leader}; waiting for every server to be a healthy voter`);
    await this.waitForConsulHealthy({ nodes, signal });
    if (this.sidecarConsulToken !== undefined) await this.ensureSidecarToken(signal);
  }

  /** The sidecars' Consul token (`ensureSidecarToken`, shared with the compose nodes), made with the first node's Consul. */
  async ensureSidecarToken(signal?: AbortSignal): Promise<void> {
    const secret = this.sidecarConsulToken;
    const management = this.consulSecrets?.aclManagementToken;
    if (secret === undefined || management === undefined) return;
    await ensureSidecarToken({
      consulUrl: this.node(0).consulUrl,
      managementToken: management,
      sidecarToken: secret,
      clusterName: this.setup.clusterName,
      fetch: this.setup.fetch,
      signal,
      hint: this.setup.logHint?.consul,
    });
    await waitUntil("every Consul server to resolve the sidecars' token", () => this.everyServerKnowsSidecarToken(), {
      timeoutMs: ACL_READY_TIMEOUT_MS,
      signal,
      hint: this.setup.logHint?.consul,
    });
    this.sidecarTokenMade = true;
    this.say("the sidecars' Consul token is in place (policy consul-config/sidecar-policy.hcl.tmpl)");
  }

  /**
   * Whether every server resolves the sidecars' token. A server that restarted votes (autopilot: healthy)
   * before its state store has caught up with the raft log, and until then denies every token as "ACL system
   * must be bootstrapped", the sidecar's alive check passes included, so that node's session ends a check TTL
   * later, and with it a leadership just taken. Asked with an agent endpoint (`/v1/agent/self`), which the
   * agent authorizes itself, as it does the alive check passes: `/v1/acl/token/self` goes to the raft leader.
   */
  private async everyServerKnowsSidecarToken(): Promise<boolean> {
    const answers = await Promise.all(this.nodes.map((node) => this.get(node.consulUrl, '/v1/agent/self', this.sidecarConsulToken)));
    return answers.every((a) => a.status === 200);
  }

  async waitForSidecarApi(node: DriverNode & Files, signal?: AbortSignal): Promise<void> {
    await waitUntil(`the sidecar API of ${node.name} (${node.apiUrl})`, async () => (await this.nodeView(node)) !== null, {
      timeoutMs: SIDECAR_API_TIMEOUT_MS,
      signal,
      guard: this.guard([{ node, part: 'sidecar' }]),
      hint: node.sidecarLog,
    });
  }

  /**
   * Makes every node a member: `cluster start` on the first node (waiting until it leads) and `cluster join`
   * on the others for a new cluster; for a restarted one (the sidecars remember their membership) only the
   * nodes that are not members yet join.
   */
  async formCluster(signal?: AbortSignal): Promise<void> {
    const guard = this.everyProcess();
    const views = await Promise.all(this.nodes.map((n) => this.nodeView(n)));
    const isMember = (i: number) => views[i]?.node?.member === true;
    const members = this.nodes.filter((_, i) => isMember(i));
    const first = this.node(0);
    let toJoin = this.nodes.filter((_, i) => !isMember(i));
    if (members.length === 0) {
      this.say(`starting the cluster on ${first.name}`);
      try {
        await this.post(first, '/cluster/start', { nodeName: first.name });
        toJoin = toJoin.filter((n) => n !== first);
        const failure = await waitUntil(
          `${first.name} to lead (GET ${first.apiUrl}/leader answering 200)`,
          async () => {
            const answer = await this.get(first.apiUrl, '/leader');
            return answer.status === 200 ? 'leads' : lastingFailure(answer.body) ?? false;
          },
          { timeoutMs: FIRST_LEADER_TIMEOUT_MS, signal, guard, hint: first.sidecarLog },
        );
        if (failure !== 'leads') {
          throw new SidecarError(answeredCode(failure.code), `${first.name} could not become the leader: ${failure.message}; see ${first.sidecarLog}`, 500);
        }
        this.say(`${first.name} is the leader`);
      } catch (e) {
        // Consul still holds a cluster from an earlier run whose sidecar data is gone: join it instead.
        if (!(e instanceof SidecarError && e.code === 'cluster_already_initialized')) throw e;
        this.say(`consul already holds cluster "${this.setup.clusterName}": ${first.name} joins it`);
      }
    } else {
      this.say(`${members.map((n) => n.name).join(', ')} ${members.length === 1 ? 'is a member' : 'are members'} already (restart)`);
    }
    for (const node of toJoin) {
      if (signal?.aborted) throw new SidecarError('interrupted', `interrupted before ${node.name} joined`, 500);
      this.say(`${node.name} joins the cluster`);
      await this.post(node, '/cluster/join', { nodeName: node.name });
    }
  }

  /**
   * Waits until the cluster is whole: every node a live member with role leader or standby, exactly one
   * leader answering 200 on /leader (its Postgres takes writes), and every standby 200 on /replica (it
   * streams from the leader within the lag limit), each member record as current as its node's own answer,
   * and every manager healthy. Returns the view, so the table printed from it shows the settled cluster.
   */
  async waitForMembers(signal?: AbortSignal): Promise<ClusterView> {
    this.say('waiting for every node to be a healthy leader or standby');
    return waitUntil(
      'every node to be a live leader or standby',
      async () => {
        const view = await this.clusterView();
        if (view === null) throw new Error('no sidecar answers GET /cluster');
        const names = this.nodes.map((n) => n.name);
        const ready = names.map((name) => view.members.find((m) => m.name === name));
        const notReady = ready
          .map((m, i) => (m === undefined ? `${names[i]} not a member` : m.alive === false || (m.role !== 'leader' && m.role !== 'standby') ? `${m.name} is ${m.role ?? 'without role'}` : ''))
          .filter((s) => s !== '');
        if (notReady.length > 0) throw new Error(notReady.join(', '));
        const leaders = ready.filter((m) => m?.role === 'leader');
        if (leaders.length !== 1) throw new Error('not exactly one leader');
        // Each node's own view agrees: the leader takes writes (/leader), every standby streams (/replica).
        const probes = this.nodes.map((n) => (n.name === leaders[0]?.name ? '/leader' : '/replica'));
        const answers = await Promise.all(this.nodes.map((n, i) => this.get(n.apiUrl, probes[i] as string).catch(() => ({ status: 0, body: null }))));
        const notYet = this.nodes.map((n, i) => (answers[i]?.status === 200 ? '' : `${n.name} ${probes[i]} ${answers[i]?.status || 'no answer'}`)).filter((s) => s !== '');
        if (notYet.length > 0) throw new Error(notYet.join(', '));
        // And each member record says what its node says now: a record is published at the end of a turn, so
        // right after a long one (a clone) it still shows the turn's first line ("creating a Consul session").
        const stale = this.nodes.map((_, i) => staleRecord(ready[i] as Member, answers[i]?.body)).filter((s) => s !== '');
        if (stale.length > 0) throw new Error(stale.join(', '));
        // A standby's manager gates no probe (only the leader's does), but a cluster that is up runs every one.
        const managers = ready.map((m) => unsettledManager(m as Member)).filter((s) => s !== '');
        if (managers.length > 0) throw new Error(managers.join(', '));
        return view;
      },
      { timeoutMs: MEMBERS_TIMEOUT_MS, signal, guard: this.everyProcess(), hint: this.setup.logHint?.sidecar },
    );
  }

  // --- stopping -------------------------------------------------------------------------------------------

  /**
   * Stops every sidecar: the standbys' first, then the leader's, so nobody fails over onto a node that is
   * about to stop anyway. Consul stays up meanwhile, so the leader's graceful stop can release its lock after
   * its Postgres has stopped taking writes (the sidecar's own shutdown order): at no point is a second node
   * both alive and allowed to promote while the first still writes.
   */
  async stopSidecars(): Promise<void> {
    const leader = (await this.clusterView())?.leader?.name ?? undefined;
    await Promise.all(this.nodes.filter((n) => n.name !== leader).map((n) => this.setup.stop(n, 'sidecar')));
    await Promise.all(this.nodes.filter((n) => n.name === leader).map((n) => this.setup.stop(n, 'sidecar')));
  }

  async stopConsul(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.setup.stop(n, 'consul')));
  }

  // --- HTTP -----------------------------------------------------------------------------------------------

  private async get(base: string, path: string, token?: string): Promise<{ status: number; body: unknown }> {
    const result = await sendOnce(base, { method: 'GET', path, timeoutMs: PROBE_TIMEOUT_MS }, { fetch: this.setup.fetch, token });
    if (result.kind !== 'answer') throw new Error(`${base}${path}: ${result.detail}`);
    return { status: result.status, body: result.body };
  }

  /** A read of a node's Consul HTTP API, with the management token when Consul has ACLs. */
  consulGet(node: DriverNode, path: string): Promise<{ status: number; body: unknown }> {
    return this.get(node.consulUrl, path, this.consulSecrets?.aclManagementToken);
  }

  /** The raft leader (`ip:8300`) as `node`'s Consul server sees it; '' while there is none. */
  async raftLeader(node: DriverNode): Promise<string> {
    const answer = await this.consulGet(node, '/v1/status/leader');
    return answer.status === 200 && typeof answer.body === 'string' ? answer.body : '';
  }

  /** A cluster operation on one sidecar; an error answer becomes a `SidecarError` with the API's code. */
  async post(node: DriverNode, path: string, body: unknown): Promise<unknown> {
    const result = await sendOnce(
      node.apiUrl,
      { method: 'POST', path, body, timeoutMs: OPERATION_TIMEOUT_MS },
      { fetch: this.setup.fetch, token: this.setup.clusterToken },
    );
    if (result.kind !== 'answer') {
      throw new SidecarError('node_unreachable', `POST ${path} to ${node.name} (${node.apiUrl}) got no answer: ${result.detail}`, 503);
    }
    if (result.status !== 200) {
      const b = (result.body ?? {}) as { error?: unknown; message?: unknown };
      const code = typeof b.error === 'string' ? answeredCode(b.error) : 'request_failed';
      const message = typeof b.message === 'string' ? b.message : `HTTP ${result.status}`;
      throw new SidecarError(code, `POST ${path} to ${node.name}: ${message}`, result.status);
    }
    return result.body;
  }

  /** `GET /cluster` of one node's own sidecar; null when it does not answer or answers in another shape. */
  async nodeView(node: DriverNode): Promise<NodeView | null> {
    try {
      // Over HTTPS a read takes the token (or a client certificate); over plain HTTP it needs neither.
      const answer = await this.get(node.apiUrl, '/cluster', this.setup.tls ? this.setup.clusterToken : undefined);
      if (answer.status !== 200) return null;
      const parsed = ClusterViewSchema.safeParse(answer.body);
      return parsed.success ? (parsed.data as NodeView) : null;
    } catch {
      return null;
    }
  }

  /** The cluster as the first answering sidecar sees it, asking `first` (the last known leader) first. */
  async clusterView(first?: string): Promise<ClusterView | null> {
    const order = [...this.nodes].sort((a, b) => (a.name === first ? -1 : b.name === first ? 1 : 0));
    for (const node of order) {
      if (!this.setup.isRunning(node, 'sidecar')) continue;
      const view = await this.nodeView(node);
      if (view !== null) return view;
    }
    return null;
  }
}
