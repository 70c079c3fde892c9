import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { SidecarError } from '../../sidecar/errors.js';
import { livePostmasterPid } from '../../sidecar/postgres/pid-file.js';
import type { ClusterView } from '../api.js';
import type { FetchLike } from '../leader-client.js';
import { readProfileTls } from '../profiles.js';
import { httpsFetch, type FetchFunction } from '../../sidecar/shared/https-fetch.js';
import { join } from 'node:path';
import type { Io } from '../output.js';
import type { NodeView } from './driver.js';
import { ClusterDriver, logOf } from './driver.js';
import type { LocalNodeFiles, NodeLayout } from './layout.js';
import { PORTS, localClientTls, localConsulEnv, localNodeFiles, localTlsDir, nodeAddresses, sampleManagerHook, sidecarMain } from './layout.js';
import { consulBinary } from './paths.js';
import { sampleManagerConfig, stopSampleManager } from './manager.js';
import { STOP_GRACE_MS, crashProcess, isRunning, killGroupLeftovers, spawnDetached, stopProcess } from './processes.js';
import type { LocalState, Part } from './state.js';
import { recordPid, saveState } from './state.js';
import { sleep } from './wait.js';

/**
 * One local cluster as state.json describes it: its nodes' layout, which of their processes run, and the
 * steps `up`, `down`, `kill` and `start` are made of. Starting, waiting, forming the cluster and the order of
 * stopping are the shared driver's (./driver.ts, which the test harness uses too); what is the CLI's own is
 * here: processes detached with their pids in state.json, the sample manager, Ctrl-C, the foreground watch.
 * Every step reports progress as `[local] ...` lines.
 */

/** What the steps need from the command: where to print, and fetch (the global one, or a test's). */
export interface LocalIo {
  io: Io;
  fetch: FetchLike;
}

/**
 * hactl's HTTPS client of the local cluster: the local CA and hactl's client certificate, read at the first
 * call (the files are made after the cluster object, on the first `up`).
 */
function localTlsFetch(root: string): FetchLike {
  let fetch: FetchFunction | undefined;
  return (url, init) => {
    fetch ??= httpsFetch(readProfileTls(localClientTls(root)));
    return fetch(url, init);
  };
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

export class LocalCluster {
  /** The shared driver, set up to start detached processes and find them again by their pids in state.json. */
  readonly driver: ClusterDriver<LocalNodeFiles>;
  readonly nodes: NodeLayout[];

  constructor(
    readonly root: string,
    public state: LocalState,
    private readonly ctx: LocalIo,
  ) {
    const addresses = nodeAddresses(state.baseAddress, state.nodes.length);
    this.driver = new ClusterDriver({
      size: addresses.length,
      addressOf: (i) => addresses[i] as string,
      filesOf: (name) => localNodeFiles(root, name),
      spawn: async (node, part, [command, ...args]) => {
        const pid = await spawnDetached(command as string, args, { logFile: logOf(node, part), cwd: node.dir, env: childEnv() });
        recordPid(this.root, this.state, node.name, part, pid);
      },
      isRunning: (node, part) => this.pid(node, part) !== null,
      stop: (node, part) => this.stopPart(node, part),
      clusterName: state.clusterName,
      clusterToken: state.token,
      postgres: state.postgres,
      tls: state.tls ? { dir: localTlsDir(root), verifyClient: true } : undefined,
      consulBinary,
      sidecarMain,
      fetch: state.tls ? localTlsFetch(root) : ctx.fetch,
      say: (line) => this.say(line),
      logHint: { consul: 'the nX/consul.log files', sidecar: 'the nX/sidecar.log files' },
    });
    this.nodes = this.driver.nodes;
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

  nodeView(node: NodeLayout): Promise<NodeView | null> {
    return this.driver.nodeView(node);
  }

  clusterView(first?: string): Promise<ClusterView | null> {
    return this.driver.clusterView(first);
  }

  // --- preparing ------------------------------------------------------------------------------------------

  /**
   * Creates every node's directories and writes its Consul and sidecar configuration. Directories are
   * 0755 so that PostgreSQL, which runs as the `postgres` user when hactl is root, can reach its data
   * directory below them; the files holding the token are 0600.
   */
  prepare(): void {
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
    for (const node of this.nodes) {
      for (const dir of [node.dir, node.consulDir, node.dataDir, node.filesDir]) mkdirSync(dir, { recursive: true, mode: 0o755 });
      // The file mirror: the leader's nX/files is copied to the others over TLS on port 22000.
      const extra: Record<string, unknown> = { files: { directory: node.filesDir } };
      if (this.state.postgres) {
        // The sample manager (examples/manager) beside each node: its hook starts it and tells it its role.
        const managerTls = this.state.tls ? { ...localClientTls(this.root), certFile: join(localTlsDir(this.root), `${node.name}.crt`), keyFile: join(localTlsDir(this.root), `${node.name}.key`) } : undefined;
        writeFileSync(node.managerConfig, `${JSON.stringify(sampleManagerConfig(node, this.state.token, managerTls), null, 2)}\n`, { mode: 0o600 });
        const hook = [process.execPath, sampleManagerHook(), '--config', node.managerConfig];
        extra.manager = { hooks: { leader: hook, standby: hook, stopping: hook }, healthUrl: `http://${node.address}:${PORTS.manager}/health` };
      }
      this.driver.writeSidecarConfig(node, extra);
    }
    if (this.state.tls) this.writeConsulEnv();
  }

  /**
   * `<root>/consul.env` (0600: it holds the management token): sourced, it points the `consul` command at n1's
   * HTTPS API with the local CA, hactl's certificate (Consul asks every client for one) and the token (ACLs
   * deny everything else).
   */
  private writeConsulEnv(): void {
    const client = localClientTls(this.root);
    const lines = [
      `# . ${localConsulEnv(this.root)}   then e.g. consul members`,
      `export CONSUL_HTTP_ADDR=${(this.nodes[0] as NodeLayout).consulUrl}`,
      `export CONSUL_CACERT=${client.caFile}`,
      `export CONSUL_CLIENT_CERT=${client.certFile}`,
      `export CONSUL_CLIENT_KEY=${client.keyFile}`,
      `export CONSUL_HTTP_TOKEN=${this.driver.consulSecrets?.aclManagementToken ?? ''}`,
    ];
    writeFileSync(localConsulEnv(this.root), `${lines.join('\n')}\n`, { mode: 0o600 });
  }

  // --- stopping -------------------------------------------------------------------------------------------

  /**
   * Stops one part of a node: SIGTERM, SIGKILL after 10 s. A sidecar's Postgres dies with it (parent-death
   * signal); it gets the same grace, then what is left of the sidecar's process group is killed.
   */
  private async stopPart(node: NodeLayout, part: Part): Promise<void> {
    const pid = this.pid(node, part);
    if (pid === null) return;
    this.say(`stopping ${part} on ${node.name} (pid ${pid})`);
    const how = await stopProcess(pid, () => this.pid(node, part) === pid);
    if (how === 'killed') this.say(`${part} on ${node.name} did not stop within ${STOP_GRACE_S} s: killed`);
    if (part === 'sidecar') {
      const pg = this.pid(node, 'postgres');
      if (pg !== null) {
        const pgHow = await stopProcess(pg, () => this.pid(node, 'postgres') === pg, { sig: 'SIGINT' });
        if (pgHow !== 'gone') this.say(`postgres on ${node.name} (pid ${pg}) outlived its sidecar: ${pgHow}`);
      }
      killGroupLeftovers(pid);
    }
    recordPid(this.root, this.state, node.name, part, null);
  }

  /**
   * Stops every process: the sidecars in the driver's order (standbys, then the leader), each with SIGTERM
   * and SIGKILL after 10 s; any sample manager or Postgres left; then the Consul servers. Resolves once
   * every pid is gone. Data stays.
   */
  async stopAll(): Promise<void> {
    await this.driver.stopSidecars();
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
    await this.driver.stopConsul();
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
    // The CA goes too: the next cluster is a new one (and hactl's `local` profile gets the new CA then).
    rmSync(localTlsDir(this.root), { recursive: true, force: true });
    rmSync(localConsulEnv(this.root), { force: true });
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
