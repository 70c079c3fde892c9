import type { ClusterDriver } from '../../cli/local/driver.js';
import { consulPorts } from '../../cli/local/layout.js';
import { consulBinary } from '../../cli/local/paths.js';
import { processName, testDriver } from './driver.js';
import { assertPortFree, type ProcessGroup } from './processes.js';
import { loopbackPlacement, type NodePlacement } from './net.js';

export { nodeAddress } from './net.js';

export interface ConsulClusterOptions {
  size: 1 | 3 | 5;
  baseDir: string;
  processes: ProcessGroup;
  gossipKey?: string;
  aclManagementToken?: string;
  /** Each server's address and how it is spawned (default: loopback, see net.ts). */
  placement?: NodePlacement;
  /** The driver of a whole test cluster (TestCluster); one of Consul alone otherwise. */
  driver?: ClusterDriver;
}

/** N real Consul servers on <net>.11, .12, ... (see net.ts) with the production ports, forming one raft cluster. */
export class ConsulCluster {
  readonly driver: ClusterDriver;
  readonly addresses: string[];
  readonly names: string[];

  constructor(private readonly opts: ConsulClusterOptions) {
    consulBinary(); // a missing binary fails here, with how to build it, before anything starts
    const consulSecrets = opts.gossipKey !== undefined && opts.aclManagementToken !== undefined ? { gossipKey: opts.gossipKey, aclManagementToken: opts.aclManagementToken } : undefined;
    this.driver = opts.driver ?? testDriver({ size: opts.size, baseDir: opts.baseDir, processes: opts.processes, clusterToken: '', postgres: false, consulSecrets, placement: opts.placement });
    this.addresses = this.driver.nodes.map((n) => n.address);
    this.names = this.driver.nodes.map((n) => n.name);
  }

  httpUrl(i: number): string {
    return this.driver.node(i).consulUrl;
  }

  async start(): Promise<void> {
    for (const node of this.driver.nodes) {
      if (!(this.opts.placement ?? loopbackPlacement).sharedAddresses) continue;
      for (const { port, what, udp } of consulPorts(node.consulUrl.startsWith('https:'))) await assertPortFree(node.address, port, `${what} on ${node.address}`, udp);
    }
    for (const node of this.driver.nodes) await this.driver.startConsul(node);
    await this.driver.waitForConsul();
  }

  async startNode(i: number): Promise<void> {
    await this.driver.startConsul(this.driver.node(i));
  }

  /** The pid of server i's process, for a freeze (SIGSTOP). */
  pid(i: number): number | undefined {
    return this.opts.processes.get(processName(this.driver.node(i), 'consul'))?.child.pid;
  }

  async stopNode(i: number, how: 'graceful' | 'kill'): Promise<void> {
    const name = processName(this.driver.node(i), 'consul');
    if (how === 'kill') await this.opts.processes.crash(name);
    else await this.opts.processes.stop(name, 'SIGTERM');
  }

  /** Raft leader address as seen by server i ('' while there is none). */
  raftLeader(i: number): Promise<string> {
    return this.driver.raftLeader(this.driver.node(i));
  }

  /**
   * Waits until autopilot reports every server healthy and voting. A server that rejoins after a crash votes
   * only after Consul's server_stabilization_time (10 s); a second fault before then can leave no quorum.
   */
  async waitForHealthy(timeoutMs = 60_000): Promise<void> {
    await this.driver.waitForConsulHealthy({ timeoutMs });
  }

  /** Waits until every running server agrees on one raft leader, and returns its address. */
  waitForLeader(indexes = this.addresses.map((_, i) => i), timeoutMs = 60_000): Promise<string> {
    return this.driver.waitForRaftLeader({ nodes: indexes.map((i) => this.driver.node(i)), timeoutMs });
  }
}
