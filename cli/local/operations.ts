import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { SidecarError, errorMessage } from '../../sidecar/errors.js';
import { processAlive } from '../../sidecar/shared/process.js';
import type { ClusterView } from '../api.js';
import { renderClusterStatus } from '../commands/cluster.js';
import type { CliContext } from '../context.js';
import { profilesDir } from '../context.js';
import { cell, renderTable } from '../output.js';
import { useProfile } from '../profiles.js';
import { CONSUL_DATACENTER, consulServerName, initClusterTls } from '../tls.js';
import { readCertificate } from '../../sidecar/shared/certificates.js';
import type { AnyPart } from './local-cluster.js';
import { Interrupt, LocalCluster } from './local-cluster.js';
import type { NodeLayout } from './layout.js';
import {
  DEFAULT_BASE_ADDRESS,
  consulPorts,
  LOCAL_CLIENT_NAME,
  localClientTls,
  localConsulEnv,
  localTlsDir,
  LOCAL_CLUSTER_NAME,
  LOCAL_PROFILE,
  PORTS,
  findNode,
  localDir,
  lockPath,
  nodeLayouts,
  portsOf,
  sidecarMain,
} from './layout.js';
import { consulBinary, postgresBinDir } from './paths.js';
import { assertPortFree } from './processes.js';
import type { LocalState } from './state.js';
import { initialState, loadState, newClusterToken, saveState } from './state.js';

/**
 * `hactl local up|down|status|kill|start`: a whole cluster on this machine (docs/design.md "Local cluster").
 * Each function is one command; `self` is how the user runs hactl (`hactl`, `node dist/cli/hactl.js`), for
 * the hints printed after `up`.
 */

export interface UpOptions {
  /** 3 or 5; the earlier run's count when omitted. */
  nodes?: number;
  detach: boolean;
  /** The first node's loopback address; the earlier run's (else 127.0.0.11) when omitted. */
  baseAddress?: string;
  /** Run PostgreSQL under every sidecar; the earlier run's choice (else yes) when omitted. */
  postgres?: boolean;
  /** The sidecar API over HTTPS with the local CA; the earlier run's choice (else yes) when omitted. */
  tls?: boolean;
}

const say = (ctx: CliContext, line: string) => ctx.io.out(`[local] ${line}`);

/** The state of the local cluster, or `not_up` when `up` never ran here. */
function requireState(root: string): LocalState {
  const state = loadState(root);
  if (state === null) throw new SidecarError('not_up', `there is no local cluster in ${root}: "hactl local up" starts one`, 404);
  return state;
}

/**
 * Serialises `up` and `down` on one directory: a file holding our pid. A lock whose holder has exited is
 * stale and taken over.
 */
function lock(root: string): () => void {
  const path = lockPath(root);
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      writeFileSync(path, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(readFileSync(path, 'utf8').trim());
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && processAlive(holder)) {
        throw new SidecarError('busy', `another hactl (pid ${holder}) is starting or stopping the local cluster in ${root}`, 409);
      }
      rmSync(path, { force: true });
    }
  }
  throw new SidecarError('busy', `cannot take ${path}: another hactl keeps creating it`, 409);
}

/** The first problem that would stop `up` before it starts anything: missing binaries, taken ports. */
async function preflight(nodes: readonly NodeLayout[], postgres: boolean, tls: boolean): Promise<void> {
  try {
    consulBinary();
  } catch (e) {
    throw new SidecarError('consul_missing', errorMessage(e), 500);
  }
  const sidecar = sidecarMain();
  if (!existsSync(sidecar)) throw new SidecarError('sidecar_not_built', `${sidecar} is missing: run \`npm run build\` first`, 500);
  if (postgres) {
    try {
      postgresBinDir();
    } catch (e) {
      throw new SidecarError('postgres_missing', `${errorMessage(e)} (or start without Postgres: --no-postgres)`, 500);
    }
  }
  for (const node of nodes) {
    for (const { port, what, udp } of portsOf(postgres, tls)) await assertPortFree(node.address, port, `${what} of ${node.name}`, udp);
  }
}

/**
 * Makes the local cluster's CA and certificates once, in `<root>/tls`, with `hactl cluster tls init`'s code:
 * one per node and one for hactl (the profile's client certificate, since the nodes ask for one). A later
 * `up` finds them and keeps them; `down --purge` removes them with the rest.
 */
async function ensureLocalTls(ctx: CliContext, root: string, nodes: readonly NodeLayout[]): Promise<void> {
  const dir = localTlsDir(root);
  if (existsSync(join(dir, 'ca.crt'))) return;
  await initClusterTls(dir, LOCAL_CLUSTER_NAME, [...nodes.map((n) => ({ name: n.name, address: n.address })), { name: LOCAL_CLIENT_NAME, address: '127.0.0.1', clientOnly: true }]);
  say(ctx, `made the local cluster CA and certificates in ${dir}`);
}

/**
 * Whether the first node's certificate in `<root>/tls` names Consul's servers (`server.dc1.consul`), which
 * Consul's verify_server_hostname needs; certificates made before Consul ran TLS do not, and every RPC between
 * the servers would be refused.
 */
function certificatesNameConsul(root: string): boolean {
  const file = join(localTlsDir(root), 'n1.crt');
  if (!existsSync(file)) return true; // made at this `up`
  return (readCertificate(file).subjectAltName ?? '').split(', ').includes(`DNS:${consulServerName(CONSUL_DATACENTER)}`);
}

/**
 * Refuses options that contradict the cluster an earlier `up` made here: its Consul data expects those servers,
 * and with TLS its ACLs and gossip key (a cluster without them cannot gain them in place), and certificates
 * that name Consul's servers.
 */
function checkSameCluster(root: string, previous: LocalState, opts: UpOptions): void {
  const differences: string[] = [];
  if (opts.nodes !== undefined && opts.nodes !== previous.nodes.length) differences.push(`${previous.nodes.length} nodes`);
  if (opts.baseAddress !== undefined && opts.baseAddress !== previous.baseAddress) differences.push(`base address ${previous.baseAddress}`);
  if (opts.postgres !== undefined && opts.postgres !== previous.postgres) differences.push(previous.postgres ? 'Postgres' : '--no-postgres');
  if (opts.tls !== undefined && opts.tls !== previous.tls) differences.push(previous.tls ? 'TLS' : '--no-tls');
  if (previous.tls && !certificatesNameConsul(root)) differences.push(`certificates in ${localTlsDir(root)} that do not name ${consulServerName(CONSUL_DATACENTER)} (made before Consul ran TLS)`);
  if (differences.length === 0) return;
  throw new SidecarError(
    'local_cluster_differs',
    `the local cluster in ${root} was made with ${differences.join(', ')}: run it that way, or remove it first with "hactl local down --purge"`,
    409,
  );
}

export async function localUp(ctx: CliContext, opts: UpOptions, self: string): Promise<void> {
  const root = localDir(ctx.env);
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const unlock = lock(root);
  const interrupt = new Interrupt(ctx.io);
  let cluster: LocalCluster | undefined;
  let view: ClusterView;
  try {
    if (opts.baseAddress !== undefined) nodeLayouts(root, opts.baseAddress, opts.nodes ?? 3, false); // a bad value is a usage error first
    const previous = loadState(root);
    if (previous !== null) {
      const running = new LocalCluster(root, previous, ctx).running();
      if (running.length > 0) {
        const what = [...new Set(running.map((r) => r.node.name))].join(', ');
        throw new SidecarError(
          'already_up',
          `the local cluster in ${root} is already running (processes on ${what}): "hactl local status" shows it, "hactl local down" stops it`,
          409,
        );
      }
      checkSameCluster(root, previous, opts);
    }
    const baseAddress = opts.baseAddress ?? previous?.baseAddress ?? DEFAULT_BASE_ADDRESS;
    const postgres = opts.postgres ?? previous?.postgres ?? true;
    const tls = opts.tls ?? previous?.tls ?? true;
    const nodes = nodeLayouts(root, baseAddress, opts.nodes ?? previous?.nodes.length ?? 3, tls);
    await preflight(nodes, postgres, tls);
    if (tls) await ensureLocalTls(ctx, root, nodes);

    // The token is made once and kept: the sidecars' data (and a restarted cluster) rely on it.
    const state = initialState({ clusterName: LOCAL_CLUSTER_NAME, baseAddress, postgres, tls, token: previous?.token ?? newClusterToken(), nodes });
    if (previous !== null) state.createdAt = previous.createdAt;
    saveState(root, state);
    cluster = new LocalCluster(root, state, ctx);
    const c = cluster;
    say(ctx, `${previous === null ? 'creating' : 'restarting'} a ${nodes.length}-node cluster in ${root}${postgres ? '' : ' (without Postgres)'}${tls ? '' : ' (API over plain HTTP: --no-tls)'}`);
    c.prepare();

    const driver = c.driver;
    for (const node of driver.nodes) await driver.startConsul(node);
    await driver.waitForConsul(interrupt.signal);
    for (const node of driver.nodes) await driver.startSidecar(node);
    await Promise.all(driver.nodes.map((node) => driver.waitForSidecarApi(node, interrupt.signal)));
    await abortable(driver.formCluster(interrupt.signal), interrupt);
    view = await driver.waitForMembers(interrupt.signal);
  } catch (e) {
    if (cluster !== undefined && cluster.running().length > 0) {
      say(ctx, `start-up failed (${errorMessage(e)}): stopping what was started`);
      try {
        await cluster.stopAll();
        cluster.forgetPids();
      } catch (stopError) {
        ctx.io.err(`hactl: warning: could not stop everything (${errorMessage(stopError)}): run "hactl local down"`);
      }
    }
    interrupt.dispose();
    throw e;
  } finally {
    unlock();
  }

  await writeProfile(ctx, cluster, view);
  printSummary(ctx, cluster, view, self);
  if (opts.detach) {
    interrupt.dispose();
    say(ctx, `running in the background; "${self} local down" stops it`);
    return;
  }

  // The foreground: watch until Ctrl-C (or until `hactl local down` elsewhere stopped everything).
  cluster.state.supervisorPid = process.pid;
  saveState(root, cluster.state);
  say(ctx, 'watching the cluster: role changes appear below; Ctrl-C stops every process');
  const interrupted = await cluster.watch(interrupt, view, () => {
    try {
      return loadState(root);
    } catch {
      return null;
    }
  });
  if (interrupted) await cluster.stopAll();
  cluster.forgetPids();
  interrupt.dispose();
  say(ctx, `stopped; the data stays in ${root} ("${self} local up" starts the cluster again)`);
}

/** Rejects as soon as the user interrupts, without waiting for a long API call to answer. */
async function abortable<T>(work: Promise<T>, interrupt: Interrupt): Promise<T> {
  const interrupted = interrupt.received.then((sig) => {
    throw new SidecarError('interrupted', `interrupted by ${sig}`, 500);
  });
  return Promise.race([work, interrupted]);
}

/** Writes the `local` profile (every node's API, the token) and makes it current; a failure only warns. */
async function writeProfile(ctx: CliContext, cluster: LocalCluster, view: ClusterView): Promise<void> {
  const leader = cluster.nodes.find((n) => n.name === view.leader?.name);
  try {
    await useProfile(profilesDir(ctx), LOCAL_PROFILE, {
      managers: cluster.nodes.map((n) => n.apiUrl),
      token: cluster.state.token,
      ...(leader !== undefined ? { lastLeader: leader.apiUrl } : {}),
      tls: cluster.state.tls ? localClientTls(cluster.root) : null,
    });
    say(ctx, `hactl profile "${LOCAL_PROFILE}" is now current (${cluster.nodes.map((n) => n.apiUrl).join(', ')})`);
  } catch (e) {
    ctx.io.err(`hactl: warning: could not write the hactl profile "${LOCAL_PROFILE}": ${errorMessage(e)}`);
  }
}

function printSummary(ctx: CliContext, cluster: LocalCluster, view: ClusterView, self: string): void {
  const leader = view.leader?.name ?? (cluster.nodes[0] as NodeLayout).name;
  const lines = [
    '',
    ...renderClusterStatus(view),
    '',
    `Consul UI:       ${cluster.consulUi}`,
    ...(cluster.state.tls
      ? [`                 (TLS and ACLs: the browser needs hactl's certificate, the UI the token; ". ${localConsulEnv(cluster.root)}" has both for the consul command)`]
      : []),
    `Cluster status:  ${self} cluster status`,
    `Try a failover:  ${self} local kill ${leader} sidecar   then   ${self} cluster status`,
    `                 (bring it back: ${self} local start ${leader})`,
    `Stop it:         ${self} local down`,
    '',
  ];
  for (const line of lines) ctx.io.out(line);
}

export async function localDown(ctx: CliContext, opts: { purge: boolean }): Promise<void> {
  const root = localDir(ctx.env);
  const state = loadState(root);
  if (state === null) {
    ctx.io.out(`local cluster is not running (there is none in ${root})`);
    return;
  }
  const cluster = new LocalCluster(root, state, ctx);
  const unlock = lock(root);
  try {
    if (cluster.running().length === 0) {
      ctx.io.out('local cluster is not running');
    } else {
      await cluster.stopAll();
      say(ctx, 'every process has stopped');
    }
    cluster.forgetPids();
  } finally {
    unlock();
  }
  if (opts.purge) {
    cluster.purge();
    say(ctx, `removed the local cluster's data in ${root}`);
  }
}

/** One row of `hactl local status`. */
export interface NodeStatus {
  name: string;
  ip: string;
  role: string;
  pids: { consul: number | null; postgres: number | null; sidecar: number | null };
  apiUrl: string;
  consulUrl: string;
  dataDir: string;
  filesDir: string;
  logs: { consul: string; sidecar: string };
}

export async function localStatus(ctx: CliContext, opts: { json: boolean }): Promise<void> {
  const root = localDir(ctx.env);
  const state = requireState(root);
  const cluster = new LocalCluster(root, state, ctx);
  const nodes: NodeStatus[] = await Promise.all(
    cluster.nodes.map(async (node) => {
      const pids = cluster.pids(node);
      let role = 'down';
      if (pids.sidecar !== null) role = (await cluster.nodeView(node))?.node?.role ?? 'not answering';
      return {
        name: node.name,
        ip: node.address,
        role,
        pids,
        apiUrl: node.apiUrl,
        consulUrl: node.consulUrl,
        dataDir: node.dataDir,
        filesDir: node.filesDir,
        logs: { consul: node.consulLog, sidecar: node.sidecarLog },
      };
    }),
  );
  if (opts.json) {
    const body = {
      dir: root,
      cluster: state.clusterName,
      baseAddress: state.baseAddress,
      postgres: state.postgres,
      consulUi: cluster.consulUi,
      supervisorPid: state.supervisorPid !== null && processAlive(state.supervisorPid) ? state.supervisorPid : null,
      nodes,
    };
    ctx.io.out(JSON.stringify(body, null, 2));
    return;
  }
  const rel = (path: string) => relative(root, path);
  ctx.io.out(`local cluster in ${root}   consul UI: ${cluster.consulUi}${state.postgres ? '' : '   (without Postgres)'}`);
  ctx.io.out('');
  const rows = nodes.map((n) => [n.name, n.ip, n.role, cell(n.pids.consul), cell(n.pids.sidecar), cell(n.pids.postgres), rel(n.dataDir), rel(n.filesDir)]);
  for (const line of renderTable(['NAME', 'IP', 'ROLE', 'CONSUL', 'SIDECAR', 'POSTGRES', 'DATA', 'FILES'], rows)) ctx.io.out(line);
}

export async function localKill(ctx: CliContext, nodeName: string, part: AnyPart): Promise<void> {
  const root = localDir(ctx.env);
  const cluster = new LocalCluster(root, requireState(root), ctx);
  const node = findNode(cluster.nodes, nodeName);
  const pid = await cluster.crash(node, part);
  say(ctx, `killed ${part} on ${node.name} (pid ${pid}, SIGKILL)`);
}

/** Starts what is not running on one node (a part killed with `local kill`), Consul before the sidecar. */
export async function localStart(ctx: CliContext, nodeName: string, part: 'consul' | 'sidecar' | undefined): Promise<void> {
  const root = localDir(ctx.env);
  const state = requireState(root);
  const cluster = new LocalCluster(root, state, ctx);
  const node = findNode(cluster.nodes, nodeName);
  if (part !== undefined && cluster.pid(node, part) !== null) {
    throw new SidecarError('already_running', `${part} on ${node.name} is already running (pid ${cluster.pid(node, part)})`, 409);
  }
  const parts = (part !== undefined ? [part] : (['consul', 'sidecar'] as const)).filter((p) => cluster.pid(node, p) === null);
  if (parts.length === 0) {
    ctx.io.out(`everything on ${node.name} is running already`);
    return;
  }
  const interrupt = new Interrupt(ctx.io);
  const unlock = lock(root);
  try {
    for (const p of parts) {
      if (p === 'consul') {
        for (const { port, what, udp } of consulPorts(state.tls)) {
          await assertPortFree(node.address, port, `${what} of ${node.name}`, udp);
        }
        await cluster.driver.startConsul(node);
        await cluster.driver.waitForConsul(interrupt.signal, [node]);
      } else {
        await assertPortFree(node.address, PORTS.sidecarApi, `sidecar API of ${node.name}`);
        await cluster.driver.startSidecar(node);
        await cluster.driver.waitForSidecarApi(node, interrupt.signal);
      }
    }
  } finally {
    unlock();
    interrupt.dispose();
  }
  say(ctx, `${parts.join(' and ')} on ${node.name} started; "hactl cluster status" shows it rejoin`);
}
