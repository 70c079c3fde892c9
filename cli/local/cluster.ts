import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { SidecarError, answeredCode, errorMessage } from '../../sidecar/errors.js';
import { livePostmasterPid } from '../../sidecar/postgres/process.js';
import type { ClusterView } from '../api.js';
import { ClusterViewSchema } from '../api.js';
import type { FetchLike } from '../client.js';
import { sendOnce } from '../client.js';
import type { Io } from '../output.js';
import { renderConsulServer } from './consul.js';
import type { NodeLayout } from './layout.js';
import { PORTS, nodeLayouts, sampleManagerHook } from './layout.js';
import { sampleManagerConfig, stopSampleManager } from './manager.js';
import { STOP_GRACE_MS, crashProcess, isRunning, killGroupLeftovers, logTail, sleep, spawnDetached, stopProcess } from './processes.js';
import type { LocalState, Part } from './state.js';
import { recordPid, saveState } from './state.js';

/**
 * One local cluster as state.json describes it: its nodes' layout, which of their processes run, and the
 * steps `up`, `down`, `kill` and `start` are made of. Every step reports progress as `[local] ...` lines.
 */

/** Raft needs every server up and agreeing; 3 servers on one machine elect in a few seconds. */
const CONSUL_LEADER_TIMEOUT_MS = 60_000;
/** Autopilot calls a server healthy and voting after it has been stable (server_stabilization_time, 10 s). */
const CONSUL_HEALTHY_TIMEOUT_MS = 60_000;
/** A sidecar opens its API once it has reached Consul: a second or two. */
const SIDECAR_API_TIMEOUT_MS = 30_000;
/** The first leader initialises its Postgres (initdb) before /leader answers 200. */
const FIRST_LEADER_TIMEOUT_MS = 120_000;
/** Standbys clone the primary (pg_basebackup) before they are healthy. */
const MEMBERS_TIMEOUT_MS = 180_000;
/** `cluster start` and `join` answer when their work is done (see cli/context.ts LONG_OPERATION_TIMEOUT_MS). */
const OPERATION_TIMEOUT_MS = 120_000;
/** One probe of a local process: loopback answers in milliseconds, so a second means it is not answering. */
const PROBE_TIMEOUT_MS = 1_000;
const POLL_MS = 250;

/** What the steps need from the command: where to print, and fetch (the global one, or a test's). */
export interface LocalIo {
  io: Io;
  fetch: FetchLike;
}

export type AnyPart = Part | 'postgres';
export const PARTS: readonly AnyPart[] = ['consul', 'postgres', 'sidecar'];

export interface NodePids {
  consul: number | null;
  postgres: number | null;
  sidecar: number | null;
}

/**
 * Cancels a long start-up when the user presses Ctrl-C (or the process gets SIGTERM/SIGHUP): the waits see
 * `signal.aborted` and stop; `received` resolves with the signal's name. A second signal while hactl is
 * still stopping leaves at once (the processes keep running; `hactl local down` stops them).
 */
export class Interrupt {
  private readonly controller = new AbortController();
  private resolveReceived: (sig: string) => void = () => undefined;
  readonly received = new Promise<string>((resolve) => (this.resolveReceived = resolve));
  private readonly handler = (sig: NodeJS.Signals): void => {
    if (this.controller.signal.aborted) {
      this.io.err(`hactl: ${sig} again: leaving now; "hactl local down" stops what is still running`);
      this.dispose();
      process.kill(process.pid, sig);
      return;
    }
    this.io.out(`[local] ${sig}: stopping`);
    this.controller.abort();
    this.resolveReceived(sig);
  };
  private static readonly SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

  constructor(private readonly io: Io) {
    for (const sig of Interrupt.SIGNALS) process.on(sig, this.handler);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  dispose(): void {
    for (const sig of Interrupt.SIGNALS) process.off(sig, this.handler);
  }
}

/** Polls `check` every `POLL_MS` until it gives a value; `guard` throws when waiting has become pointless. */
async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  opts: { timeoutMs: number; signal?: AbortSignal; guard?: () => void; hint?: string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = '';
  while (true) {
    if (opts.signal?.aborted) throw new SidecarError('interrupted', `interrupted while waiting for ${what}`, 500);
    opts.guard?.();
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      last = errorMessage(e);
    }
    if (Date.now() >= deadline) break;
    await sleep(POLL_MS, opts.signal);
  }
  const why = last !== '' ? ` (last error: ${last})` : '';
  const hint = opts.hint !== undefined ? `; see ${opts.hint}` : '';
  throw new SidecarError('start_timeout', `timed out after ${opts.timeoutMs / 1000} s waiting for ${what}${why}${hint}`, 504);
}

export class LocalCluster {
  readonly nodes: NodeLayout[];

  constructor(
    readonly root: string,
    public state: LocalState,
    private readonly ctx: LocalIo,
  ) {
    this.nodes = nodeLayouts(root, state.baseAddress, state.nodes.length);
  }

  private say(line: string): void {
    this.ctx.io.out(`[local] ${line}`);
  }

  private entry(node: NodeLayout) {
    const entry = this.state.nodes.find((n) => n.name === node.name);
    if (entry === undefined) throw new Error(`state.json has no node ${node.name}`);
    return entry;
  }

  /** The argument only this node's process of `part` has on its command line (see `isRunning`). */
  private marker(node: NodeLayout, part: Part): string {
    return part === 'consul' ? node.consulConfigDir : node.sidecarConfig;
  }

  /** The pid of a running part of a node, or null. Postgres is the sidecar's child: read from its pid file. */
  pid(node: NodeLayout, part: AnyPart): number | null {
    if (part === 'postgres') return livePostmasterPid(node.postgresDataDir);
    const pid = this.entry(node).pids[part];
    return isRunning(pid, this.marker(node, part)) ? pid : null;
  }

  pids(node: NodeLayout): NodePids {
    return { consul: this.pid(node, 'consul'), postgres: this.pid(node, 'postgres'), sidecar: this.pid(node, 'sidecar') };
  }

  /** Every process of the cluster that runs now, with its node, part and pid. */
  running(): { node: NodeLayout; part: AnyPart; pid: number }[] {
    return this.nodes.flatMap((node) =>
      PARTS.flatMap((part) => {
        const pid = this.pid(node, part);
        return pid === null ? [] : [{ node, part, pid }];
      }),
    );
  }

  /** Re-reads pids other hactl processes recorded (`local start`, `local down`). */
  reload(state: LocalState): void {
    this.state = state;
  }

  // --- HTTP -----------------------------------------------------------------------------------------------

  private async get(base: string, path: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<{ status: number; body: unknown }> {
    const result = await sendOnce(base, { method: 'GET', path, timeoutMs }, { fetch: this.ctx.fetch });
    if (result.kind !== 'answer') throw new Error(`${base}${path}: ${result.detail}`);
    return { status: result.status, body: result.body };
  }

  /** A cluster operation on one sidecar; an error answer becomes a `SidecarError` with the API's code. */
  private async post(node: NodeLayout, path: string, body: unknown): Promise<unknown> {
    const result = await sendOnce(
      node.apiUrl,
      { method: 'POST', path, body, timeoutMs: OPERATION_TIMEOUT_MS },
      { fetch: this.ctx.fetch, token: this.state.token },
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
  async nodeView(node: NodeLayout): Promise<(ClusterView & { node?: { role?: string; member?: boolean } }) | null> {
    try {
      const answer = await this.get(node.apiUrl, '/cluster');
      if (answer.status !== 200) return null;
      const parsed = ClusterViewSchema.safeParse(answer.body);
      return parsed.success ? (parsed.data as ClusterView & { node?: { role?: string; member?: boolean } }) : null;
    } catch {
      return null;
    }
  }

  /** The cluster as the first answering sidecar sees it, asking `first` (the last known leader) first. */
  async clusterView(first?: string): Promise<ClusterView | null> {
    const order = [...this.nodes].sort((a, b) => (a.name === first ? -1 : b.name === first ? 1 : 0));
    for (const node of order) {
      if (this.pid(node, 'sidecar') === null) continue;
      const view = await this.nodeView(node);
      if (view !== null) return view;
    }
    return null;
  }

  private async status(base: string, path: string): Promise<number> {
    try {
      return (await this.get(base, path)).status;
    } catch {
      return 0;
    }
  }

  // --- preparing ------------------------------------------------------------------------------------------

  /**
   * Creates every node's directories and writes its Consul and sidecar configuration. Directories are
   * 0755 so that PostgreSQL, which runs as the `postgres` user when hactl is root, can reach its data
   * directory below them; the files holding the token are 0600.
   */
  prepare(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
    const addresses = this.nodes.map((n) => n.address);
    for (const node of this.nodes) {
      for (const dir of [node.dir, node.consulDir, node.dataDir, node.filesDir]) mkdirSync(dir, { recursive: true, mode: 0o755 });
      const config: Record<string, unknown> = {
        nodeName: node.name,
        clusterName: this.state.clusterName,
        address: node.address,
        clusterToken: this.state.token,
        dataDir: node.dataDir,
        postgres: { enabled: this.state.postgres },
        // The file mirror: the leader's nX/files is copied to the others over TLS on port 22000.
        files: { directory: node.filesDir },
      };
      // Postgres lets replication in from the cluster's addresses only.
      if (this.state.postgres) config.clusterAddresses = addresses;
      if (this.state.postgres) {
        // The sample manager (examples/manager) beside each node: its hook starts it and tells it its role.
        writeFileSync(node.managerConfig, `${JSON.stringify(sampleManagerConfig(node, this.state.token), null, 2)}\n`, { mode: 0o600 });
        const hook = [process.execPath, sampleManagerHook(), '--config', node.managerConfig];
        config.manager = { hooks: { leader: hook, standby: hook, stopping: hook }, healthUrl: `http://${node.address}:${PORTS.manager}/health` };
      }
      writeFileSync(node.sidecarConfig, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
    }
  }

  consulArgs(node: NodeLayout): string[] {
    return renderConsulServer({
      nodeName: node.name,
      address: node.address,
      serverAddresses: this.nodes.map((n) => n.address),
      dataDir: node.consulDataDir,
      configDir: node.consulConfigDir,
    });
  }

  // --- starting -------------------------------------------------------------------------------------------

  /** Fails with the log's last lines when a process this start-up relies on has exited. */
  private guard(parts: { node: NodeLayout; part: Part }[]): () => void {
    return () => {
      for (const { node, part } of parts) {
        if (this.pid(node, part) !== null) continue;
        const log = part === 'consul' ? node.consulLog : node.sidecarLog;
        const tail = logTail(log);
        throw new SidecarError('process_exited', `${part} on ${node.name} exited${tail !== '' ? `: ${tail}` : ''} (log: ${log})`, 500);
      }
    };
  }

  async startConsul(node: NodeLayout, binary: string): Promise<void> {
    this.say(`starting consul on ${node.name} (${node.address})`);
    const pid = await spawnDetached(binary, this.consulArgs(node), { logFile: node.consulLog, cwd: node.dir, env: childEnv() });
    recordPid(this.root, this.state, node.name, 'consul', pid);
  }

  async startSidecar(node: NodeLayout, sidecarMain: string): Promise<void> {
    this.say(`starting sidecar on ${node.name} (${node.apiUrl})`);
    const pid = await spawnDetached(process.execPath, [sidecarMain, '--config', node.sidecarConfig], {
      logFile: node.sidecarLog,
      cwd: node.dir,
      env: childEnv(),
    });
    recordPid(this.root, this.state, node.name, 'sidecar', pid);
  }

  /** Waits until every Consul server agrees on one raft leader, then until autopilot calls all healthy voters. */
  async waitForConsul(signal: AbortSignal, nodes = this.nodes): Promise<void> {
    const guard = this.guard(nodes.map((node) => ({ node, part: 'consul' as const })));
    const leader = await waitUntil(
      'the consul servers to agree on a raft leader',
      async () => {
        const leaders = await Promise.all(
          nodes.map(async (n) => {
            const answer = await this.get(n.consulUrl, '/v1/status/leader');
            return answer.status === 200 && typeof answer.body === 'string' ? answer.body : '';
          }),
        );
        return leaders[0] !== '' && leaders.every((l) => l === leaders[0]) ? leaders[0] : undefined;
      },
      { timeoutMs: CONSUL_LEADER_TIMEOUT_MS, signal, guard, hint: 'the nX/consul.log files' },
    );
    this.say(`consul raft leader is ${leader}; waiting for every server to be a healthy voter`);
    const first = nodes[0] as NodeLayout;
    await waitUntil(
      'every consul server to be healthy and voting (autopilot)',
      async () => {
        const answer = await this.get(first.consulUrl, '/v1/operator/autopilot/health');
        if (answer.status !== 200) return false;
        const health = answer.body as { Healthy?: boolean; Servers?: { Healthy?: boolean; Voter?: boolean }[] };
        const servers = health.Servers ?? [];
        return health.Healthy === true && servers.length === this.nodes.length && servers.every((s) => s.Healthy === true && s.Voter === true);
      },
      { timeoutMs: CONSUL_HEALTHY_TIMEOUT_MS, signal, guard, hint: 'the nX/consul.log files' },
    );
  }

  async waitForSidecarApi(node: NodeLayout, signal: AbortSignal): Promise<void> {
    await waitUntil(`the sidecar API of ${node.name} (${node.apiUrl})`, async () => (await this.nodeView(node)) !== null, {
      timeoutMs: SIDECAR_API_TIMEOUT_MS,
      signal,
      guard: this.guard([{ node, part: 'sidecar' }]),
      hint: node.sidecarLog,
    });
  }

  /**
   * Makes every node a member: `cluster start` on the first node and `cluster join` on the others for a
   * new cluster; for a restarted one (the sidecars remember their membership) only the nodes that are not
   * members yet join.
   */
  async formCluster(signal: AbortSignal): Promise<void> {
    const guard = this.guard(this.nodes.flatMap((node) => [{ node, part: 'consul' as const }, { node, part: 'sidecar' as const }]));
    const views = await Promise.all(this.nodes.map((n) => this.nodeView(n)));
    const isMember = (i: number) => views[i]?.node?.member === true;
    const members = this.nodes.filter((_, i) => isMember(i));
    const first = this.nodes[0] as NodeLayout;
    let toJoin = this.nodes.filter((_, i) => !isMember(i));
    if (members.length === 0) {
      this.say(`starting the cluster on ${first.name}`);
      try {
        await this.post(first, '/cluster/start', { nodeName: first.name });
        toJoin = toJoin.filter((n) => n !== first);
        await waitUntil(
          `${first.name} to lead (GET ${first.apiUrl}/leader answering 200)`,
          async () => (await this.status(first.apiUrl, '/leader')) === 200,
          { timeoutMs: FIRST_LEADER_TIMEOUT_MS, signal, guard, hint: first.sidecarLog },
        );
        this.say(`${first.name} is the leader`);
      } catch (e) {
        // Consul still holds a cluster from an earlier run whose sidecar data is gone: join it instead.
        if (!(e instanceof SidecarError && e.code === 'cluster_already_initialized')) throw e;
        this.say(`consul already holds cluster "${this.state.clusterName}": ${first.name} joins it`);
      }
    } else {
      this.say(`${members.map((n) => n.name).join(', ')} ${members.length === 1 ? 'is a member' : 'are members'} already (restart)`);
    }
    for (const node of toJoin) {
      if (signal.aborted) throw new SidecarError('interrupted', `interrupted before ${node.name} joined`, 500);
      this.say(`${node.name} joins the cluster`);
      await this.post(node, '/cluster/join', { nodeName: node.name });
    }
  }

  /**
   * Waits until the cluster is whole: every node a live member with role leader or standby, exactly one
   * leader answering 200 on /leader (its Postgres takes writes), and every standby 200 on /replica (it
   * streams from the leader within the lag limit). Returns the view.
   */
  async waitForMembers(signal: AbortSignal): Promise<ClusterView> {
    const guard = this.guard(this.nodes.flatMap((node) => [{ node, part: 'consul' as const }, { node, part: 'sidecar' as const }]));
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
        const statuses = await Promise.all(this.nodes.map((n, i) => this.status(n.apiUrl, probes[i] as string)));
        const notYet = this.nodes.map((n, i) => (statuses[i] === 200 ? '' : `${n.name} ${probes[i]} ${statuses[i] || 'no answer'}`)).filter((s) => s !== '');
        if (notYet.length > 0) throw new Error(notYet.join(', '));
        return view;
      },
      { timeoutMs: MEMBERS_TIMEOUT_MS, signal, guard, hint: 'the nX/sidecar.log files' },
    );
  }

  // --- stopping -------------------------------------------------------------------------------------------

  /** The leader's name as any sidecar sees it (to stop it last), or undefined. */
  private async leaderName(): Promise<string | undefined> {
    return (await this.clusterView())?.leader?.name ?? undefined;
  }

  private async stopSidecar(node: NodeLayout): Promise<void> {
    const pid = this.pid(node, 'sidecar');
    if (pid === null) return;
    this.say(`stopping sidecar on ${node.name} (pid ${pid})`);
    const how = await stopProcess(pid, () => this.pid(node, 'sidecar') === pid);
    if (how === 'killed') this.say(`sidecar on ${node.name} did not stop within ${STOP_GRACE_S} s: killed`);
    // Its Postgres dies with it (parent-death signal); give it the same grace, then clear the group.
    const pg = this.pid(node, 'postgres');
    if (pg !== null) {
      const pgHow = await stopProcess(pg, () => this.pid(node, 'postgres') === pg, { sig: 'SIGINT' });
      if (pgHow !== 'gone') this.say(`postgres on ${node.name} (pid ${pg}) outlived its sidecar: ${pgHow}`);
    }
    killGroupLeftovers(pid);
    recordPid(this.root, this.state, node.name, 'sidecar', null);
  }

  private async stopConsul(node: NodeLayout): Promise<void> {
    const pid = this.pid(node, 'consul');
    if (pid === null) return;
    this.say(`stopping consul on ${node.name} (pid ${pid})`);
    const how = await stopProcess(pid, () => this.pid(node, 'consul') === pid);
    if (how === 'killed') this.say(`consul on ${node.name} did not stop within ${STOP_GRACE_S} s: killed`);
    recordPid(this.root, this.state, node.name, 'consul', null);
  }

  /**
   * Stops every process: the standbys' sidecars, then the leader's (so nobody fails over onto a node that
   * is about to stop), each with SIGTERM and SIGKILL after 10 s; any Postgres left; then the Consul
   * servers. Resolves once every pid is gone. Data stays.
   */
  async stopAll(): Promise<void> {
    const leader = await this.leaderName();
    const standbys = this.nodes.filter((n) => n.name !== leader);
    const leaders = this.nodes.filter((n) => n.name === leader);
    await Promise.all(standbys.map((n) => this.stopSidecar(n)));
    await Promise.all(leaders.map((n) => this.stopSidecar(n)));
    // A sidecar's stopping hook stops its sample manager; one left by a crashed sidecar is stopped here.
    await Promise.all(
      this.nodes.map(async (node) => {
        if (await stopSampleManager(node)) this.say(`stopped the sample manager left running on ${node.name}`);
      }),
    );
    await Promise.all(
      this.nodes.map(async (node) => {
        const pg = this.pid(node, 'postgres');
        if (pg === null) return;
        this.say(`stopping postgres on ${node.name} (pid ${pg})`);
        await stopProcess(pg, () => this.pid(node, 'postgres') === pg, { sig: 'SIGINT' });
      }),
    );
    await Promise.all(this.nodes.map((n) => this.stopConsul(n)));
  }

  /** `kill -9` of one part of one node. */
  async crash(node: NodeLayout, part: AnyPart): Promise<number> {
    const pid = this.pid(node, part);
    if (pid === null) throw new SidecarError('not_running', `${part} on ${node.name} is not running`, 409);
    await crashProcess(pid, () => this.pid(node, part) === pid);
    return pid;
  }

  /**
   * Removes what `up` created (the node directories and state.json), and the directory itself when that
   * leaves it empty. Only when nothing runs; never anything else that lives in the directory.
   */
  purge(): void {
    for (const node of this.nodes) rmSync(node.dir, { recursive: true, force: true });
    rmSync(`${this.root}/state.json`, { force: true });
    if (existsSync(this.root) && readdirSync(this.root).length === 0) rmdirSync(this.root);
  }

  // --- watching -------------------------------------------------------------------------------------------

  /**
   * The foreground of `up`: every second, prints each member's role change (`n2 is now leader (term 3)`)
   * and each process that went away, until `interrupt` fires or every process of the cluster is gone.
   * Returns true when interrupted (the caller stops everything), false when there was nothing left.
   */
  async watch(interrupt: Interrupt, initial: ClusterView, reload: () => LocalState | null): Promise<boolean> {
    const roles = new Map(initial.members.map((m) => [m.name, memberRole(m)]));
    let leader = initial.leader?.name ?? undefined;
    const key = (r: { node: NodeLayout; part: AnyPart }) => `${r.part} on ${r.node.name}`;
    let known = new Map(this.running().map((r) => [key(r), r.pid]));
    let silent = false;
    while (true) {
      await sleep(1_000, interrupt.signal);
      if (interrupt.signal.aborted) return true;
      const state = reload();
      if (state !== null) this.reload(state);
      const running = this.running();
      const now = new Map(running.map((r) => [key(r), r.pid]));
      for (const [what, pid] of known) if (now.get(what) !== pid) this.say(`${what} (pid ${pid}) has exited`);
      for (const [what, pid] of now) if (known.get(what) !== pid) this.say(`${what} (pid ${pid}) is running`);
      known = now;
      if (running.length === 0) {
        this.say('every process of the cluster has stopped; exiting');
        return false;
      }
      const view = await this.clusterView(leader);
      if (view === null) {
        if (!silent) this.say('no sidecar answers GET /cluster');
        silent = true;
        continue;
      }
      silent = false;
      leader = view.leader?.name ?? leader;
      for (const m of view.members) {
        const role = memberRole(m);
        if (roles.get(m.name) === role) continue;
        roles.set(m.name, role);
        this.say(`${m.name} is now ${role} (term ${view.term ?? '?'})`);
      }
    }
  }

  /** The state with every pid cleared and no supervisor, saved (after a stop). */
  forgetPids(): void {
    for (const n of this.state.nodes) n.pids = { consul: null, sidecar: null };
    this.state.supervisorPid = null;
    saveState(this.root, this.state);
  }

  /** The Consul UI, served by the first node's server. */
  get consulUi(): string {
    return `${(this.nodes[0] as NodeLayout).consulUrl}/ui`;
  }
}

const STOP_GRACE_S = STOP_GRACE_MS / 1000;

function memberRole(m: { role?: string | null; alive?: unknown }): string {
  return m.alive === false ? 'offline' : (m.role ?? 'unknown');
}

/** The environment of the cluster's processes: ours without HA_SIDECAR_* overrides, which would beat the config files. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('HA_SIDECAR_')) env[key] = value;
  return env;
}
