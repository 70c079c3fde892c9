import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';
import type { NodePlacement } from './net.js';

/**
 * Network namespaces for the fault suite: node i lives in namespace `hans-<pid>-n<i+1>` with address
 * `10.213.<subnet>.<11+i>` on a veth joined to the bridge `habr<pid>`, which carries `.1` (the test process)
 * and `.10` (HAProxy) in the root namespace. Each node's Consul server, sidecar and the sidecar's Postgres and
 * guard run inside its namespace (spawned through `ip netns exec`), with the production ports.
 *
 * Faults are nftables rules in one table (`hafault`) inside a node's namespace, between that node and its
 * peers only: the test process and HAProxy keep reaching every node, so the watchers still see an isolated
 * old primary and a client on the "wrong side" still tries to write to it. This kernel has no `netem`
 * qdisc, so delay is a userspace forwarder (delay-proxy.ts) that nft DNATs each node's TCP connections to its
 * peers onto; loss is nft `numgen random`.
 *
 * Only what this class creates is ever touched: names carry the run's prefix, and addresses are a /24 of
 * 10.213.0.0/16 that exists only on its own bridge.
 */

const NAME_PREFIX = 'hans-';
const BRIDGE_PREFIX = 'habr';
const FAULT_TABLE = 'hafault';

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** What to drop between a node and its peers. */
export type Cut =
  | { kind: 'isolate' } // both directions, every port
  | { kind: 'outbound' } // the node's packets to its peers only: it hears them, they do not hear it
  | { kind: 'inbound' } // its peers' packets to the node only
  | { kind: 'port'; port: number } // one TCP port between the node and its peers, both ways (e.g. 8300, Consul RPC)
  | { kind: 'loss'; percent: number }; // random loss of the node's packets to its peers

/** The TCP ports between nodes that a delay covers: raft RPC, gossip's TCP side, replication, mirror, API. */
export const DELAYED_PORTS = [8300, 8301, 15432, 22000, 8008];
/** A node's forwarder listens on FORWARDER_BASE_PORT + 10 * (peer's index) + (the port's index in DELAYED_PORTS). */
const FORWARDER_BASE_PORT = 40_000;
/** The forwarder runs as this user, so that nft can tell its own connections to peers (not redirected) from the node's. */
const FORWARDER_UID = 65_534;
/** The table of the redirection to the forwarders: installed with them, kept across heals (a heal sets the delay to 0). */
const DELAY_TABLE = 'hadelay';

/** One redirected destination: the node's connections to peer:port go to its forwarder at listen:listenPort. */
export interface DelayRoute {
  peer: string;
  port: number;
  listen: string;
  listenPort: number;
}

/** The forwarder routes of node `own` (its address) to every other address in `addresses`, one per delayed port. */
export function delayRoutes(addresses: string[], own: number): DelayRoute[] {
  return addresses.flatMap((peer, j) =>
    j === own ? [] : DELAYED_PORTS.map((port, k) => ({ peer, port, listen: addresses[own], listenPort: FORWARDER_BASE_PORT + 10 * j + k })),
  );
}

export class NetnsLab implements NodePlacement {
  readonly prefix: string;
  readonly bridge: string;
  readonly haproxyAddress: string;
  readonly sharedAddresses = false;
  private readonly gateway: string;
  readonly addresses: string[];
  private created = false;
  /** Each node's delay forwarder, when the lab was started with them (startForwarders). */
  private readonly forwarders = new Map<number, ChildProcess>();

  constructor(
    readonly size: number,
    /** The third octet: 10.213.<subnet>.0/24 exists only on this lab's bridge. */
    subnet: number,
    runId = process.pid,
  ) {
    if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error(`netns subnet must be 0..255, not ${subnet}`);
    this.prefix = `${NAME_PREFIX}${runId}-`;
    // Interface names are at most 15 characters.
    this.bridge = `${BRIDGE_PREFIX}${runId}`.slice(0, 15);
    this.gateway = `10.213.${subnet}.1`;
    this.haproxyAddress = `10.213.${subnet}.10`;
    this.addresses = Array.from({ length: size }, (_, i) => `10.213.${subnet}.${11 + i}`);
  }

  namespace(i: number): string {
    return `${this.prefix}n${i + 1}`;
  }

  address(i: number): string {
    return this.addresses[i];
  }

  /**
   * The root namespace's addresses on the bridge: the test process (and HAProxy's outgoing connections) come
   * from the gateway. Listed in each sidecar's `clusterAddresses` so that pg_hba lets the watchers in.
   */
  clientAddresses(): string[] {
    return [this.gateway, this.haproxyAddress];
  }

  wrap(i: number, command: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.namespace(i), command, ...args]];
  }

  /** Creates the bridge and one namespace per node, after removing what dead runs left behind. */
  create(): void {
    NetnsLab.removeLeftovers();
    this.created = true;
    ip(['link', 'add', this.bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge]);
    ip(['addr', 'add', `${this.haproxyAddress}/24`, 'dev', this.bridge]);
    ip(['link', 'set', this.bridge, 'up']);
    for (let i = 0; i < this.size; i++) {
      const ns = this.namespace(i);
      const host = `${this.bridge.slice(0, 11)}h${i + 1}`;
      ip(['netns', 'add', ns]);
      ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['link', 'set', host, 'master', this.bridge, 'up']);
      ip(['-n', ns, 'addr', 'add', `${this.addresses[i]}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
  }

  /** Drops traffic between node i and its peers as `cut` says; replaces any fault already on node i. */
  inject(i: number, cut: Cut): void {
    const script = faultRules(this.addresses.filter((_, k) => k !== i), cut);
    execFileSync('ip', ['netns', 'exec', this.namespace(i), 'nft', '-f', '-'], { input: script, stdio: ['pipe', 'ignore', 'pipe'] });
  }

  /**
   * Routes every node's TCP connections to its peers' ports (DELAYED_PORTS) through a delaying forwarder in
   * its namespace, at 0 ms until `setDelay`. Called before the cluster starts, so that no connection bypasses
   * the forwarders (NAT only applies to new connections) and no connection has to be reset to add latency.
   */
  async startForwarders(): Promise<void> {
    const script = join(projectRoot(), 'dist', 'tests', 'harness', 'delay-proxy.js');
    const uid = String(FORWARDER_UID);
    await Promise.all(
      this.addresses.map(async (_, i) => {
        const routes = delayRoutes(this.addresses, i);
        const [command, args] = this.wrap(i, 'setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', process.execPath, script, '0', ...routes.map((r) => `${r.listen}:${r.listenPort}=${r.peer}:${r.port}`)]);
        // stdin stays open: the forwarder exits when it closes, that is when this process dies, whatever way.
        const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
        this.forwarders.set(i, child);
        await new Promise<void>((resolve, reject) => {
          child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
          child.once('exit', (code) => reject(new Error(`the delay forwarder of node ${i + 1} exited (${code}) before it was ready`)));
        });
        execFileSync('ip', ['netns', 'exec', this.namespace(i), 'nft', '-f', '-'], { input: delayRules(routes), stdio: ['pipe', 'ignore', 'pipe'] });
      }),
    );
  }

  /** Holds every chunk node i's connections to its peers carry, both directions, for `ms` (0: none). */
  setDelay(i: number, ms: number): void {
    const forwarder = this.forwarders.get(i);
    if (!forwarder) throw new Error('no delay forwarders: the lab was not started with them (startForwarders)');
    forwarder.stdin!.write(`delay ${ms}\n`);
  }

  /**
   * Seconds a GET of `url` takes from inside node i's namespace (curl, as root: a delay fault redirects it);
   * `caFile` verifies an https server.
   */
  httpSeconds(i: number, url: string, caFile?: string): number {
    // curl prints the time also when it gives up (exit 28 at --max-time): a call that slow is a measurement,
    // not a harness failure. Only no time at all (curl missing, say) is.
    const run = spawnSync('ip', ['netns', 'exec', this.namespace(i), 'curl', '-s', '-o', '/dev/null', '--max-time', '10', '-w', '%{time_total}', ...(caFile !== undefined ? ['--cacert', caFile] : []), url], { encoding: 'utf8' });
    const seconds = Number(run.stdout);
    if (run.stdout.trim() === '' || !Number.isFinite(seconds)) throw new Error(`curl from ${this.namespace(i)} to ${url} gave no time: ${run.stderr || `exit ${run.status}`}`);
    return seconds;
  }

  /** How many established TCP connections node i's delay forwarder holds (both sides: from the node and to its peers). */
  forwardedConnections(i: number): number {
    const out = execFileSync('ip', ['netns', 'exec', this.namespace(i), 'ss', '-Htn', 'state', 'established', `( sport >= :${FORWARDER_BASE_PORT} and sport < :${FORWARDER_BASE_PORT + 10 * this.size} )`], { encoding: 'utf8' });
    return out.split('\n').filter((l) => l.trim() !== '').length;
  }

  /** Removes every fault from node i: its drop rules, and its delay (the redirection to its forwarder stays). */
  heal(i: number): void {
    try {
      execFileSync('ip', ['netns', 'exec', this.namespace(i), 'nft', 'delete', 'table', 'inet', FAULT_TABLE], { stdio: 'ignore' });
    } catch {
      /* no fault on this node */
    }
    if (this.forwarders.has(i)) this.setDelay(i, 0);
  }

  healAll(): void {
    for (let i = 0; i < this.size; i++) this.heal(i);
  }

  /** Removes this lab's namespaces and bridge (the veths go with their namespaces). Safe to call twice. */
  destroy(): void {
    for (const forwarder of this.forwarders.values()) forwarder.kill('SIGTERM');
    this.forwarders.clear();
    if (!this.created) return;
    for (let i = 0; i < this.size; i++) removeNamespace(this.namespace(i));
    removeLink(this.bridge);
    this.created = false;
  }

  /**
   * Removes namespaces and bridges of earlier runs whose process is gone (a run killed before its teardown).
   * Only names with this harness's prefixes are looked at, and only those of dead pids are removed.
   */
  static removeLeftovers(): void {
    const dead = (pid: string) => {
      try {
        process.kill(Number(pid), 0);
        return false;
      } catch {
        return true;
      }
    };
    for (const line of ip(['netns', 'list']).split('\n')) {
      const m = /^(hans-(\d+)-n\d+)\b/.exec(line);
      if (m && dead(m[2])) removeNamespace(m[1]);
    }
    for (const line of ip(['-o', 'link', 'show', 'type', 'bridge']).split('\n')) {
      const m = /^\d+: (habr(\d+)):/.exec(line);
      if (m && dead(m[2])) removeLink(m[1]);
    }
  }
}

function removeNamespace(ns: string): void {
  try {
    ip(['netns', 'delete', ns]);
  } catch {
    /* already gone */
  }
}

function removeLink(name: string): void {
  try {
    ip(['link', 'delete', name]);
  } catch {
    /* already gone */
  }
}

/**
 * The nft script (for `nft -f -` inside a node's namespace) that puts `cut` between the node and `peers`, in
 * the table `hafault`, replacing that table if it exists (created first so that its deletion cannot fail).
 */
export function faultRules(peers: string[], cut: Cut): string {
  const set = `{ ${peers.join(', ')} }`;
  const input: string[] = [];
  const output: string[] = [];
  switch (cut.kind) {
    case 'isolate':
      input.push(`ip saddr ${set} drop`);
      output.push(`ip daddr ${set} drop`);
      break;
    case 'outbound':
      output.push(`ip daddr ${set} drop`);
      break;
    case 'inbound':
      input.push(`ip saddr ${set} drop`);
      break;
    case 'port':
      // Both as server and as client of that port: TCP 8300 blocked while gossip (8301) still flows.
      input.push(`ip saddr ${set} tcp dport ${cut.port} drop`, `ip saddr ${set} tcp sport ${cut.port} drop`);
      output.push(`ip daddr ${set} tcp dport ${cut.port} drop`, `ip daddr ${set} tcp sport ${cut.port} drop`);
      break;
    case 'loss':
      // Outbound only: with the same rule on every node, each packet between two nodes is dropped once with `percent`.
      output.push(`ip daddr ${set} numgen random mod 100 < ${cut.percent} drop`);
      break;
  }
  const chain = (hook: string, rules: string[]) =>
    `  chain ${hook} {\n    type filter hook ${hook} priority 0; policy accept;\n${rules.map((r) => `    ${r}\n`).join('')}  }\n`;
  return `table inet ${FAULT_TABLE}\ndelete table inet ${FAULT_TABLE}\ntable inet ${FAULT_TABLE} {\n${chain('input', input)}${chain('output', output)}}\n`;
}

/**
 * The nft script (for `nft -f -` inside a node's namespace) that DNATs the node's connections to each route's
 * peer port onto its forwarder, in the table `hadelay`. The forwarder's own connections to the peers (user
 * nobody) go out as they are. Drop rules (`hafault`, filter hook) see the redirected packets addressed to the
 * node itself, so a cut or a loss acts on the forwarder's packets to the peers and the peers' replies instead.
 */
export function delayRules(routes: DelayRoute[]): string {
  const rules = routes.map((r) => `    meta skuid != ${FORWARDER_UID} ip daddr ${r.peer} tcp dport ${r.port} dnat ip to ${r.listen}:${r.listenPort}\n`);
  return `table inet ${DELAY_TABLE} {\n  chain nat_output {\n    type nat hook output priority -100; policy accept;\n${rules.join('')}  }\n}\n`;
}
