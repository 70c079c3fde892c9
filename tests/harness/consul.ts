import { join } from 'node:path';
import { renderConsulServer } from '../../cli/local/consul.js';
import { consulBinary } from '../../cli/local/paths.js';
import { loopbackPlacement, type NodePlacement } from './net.js';
import { assertPortFree, ProcessGroup, waitFor } from './processes.js';

export { nodeAddress } from './net.js';

export interface ConsulClusterOptions {
  size: 1 | 3 | 5;
  baseDir: string;
  processes: ProcessGroup;
  gossipKey?: string;
  aclManagementToken?: string;
  /** Each server's address and how it is spawned (default: loopback, see net.ts). */
  placement?: NodePlacement;
}

/** N real Consul servers on <net>.11, .12, ... (see net.ts) with the production ports, forming one raft cluster. */
export class ConsulCluster {
  readonly addresses: string[];
  readonly names: string[];
  private readonly binary = consulBinary();
  private readonly placement: NodePlacement;

  constructor(private readonly opts: ConsulClusterOptions) {
    this.placement = opts.placement ?? loopbackPlacement;
    this.addresses = Array.from({ length: opts.size }, (_, i) => this.placement.address(i));
    this.names = this.addresses.map((_, i) => `n${i + 1}`);
  }

  httpUrl(i: number): string {
    return `http://${this.addresses[i]}:8500`;
  }

  private processName(i: number): string {
    return `consul-${this.names[i]}`;
  }

  async start(): Promise<void> {
    for (const address of this.addresses) {
      for (const port of [8300, 8301, 8500]) await assertPortFree(address, port, `consul on ${address}`);
    }
    this.addresses.forEach((_, i) => this.startNode(i));
    await this.waitForLeader();
    await this.waitForHealthy();
  }

  startNode(i: number): void {
    const dir = join(this.opts.baseDir, this.names[i], 'consul');
    const args = renderConsulServer({
      nodeName: this.names[i],
      address: this.addresses[i],
      serverAddresses: this.addresses,
      dataDir: join(dir, 'data'),
      configDir: join(dir, 'config'),
      gossipKey: this.opts.gossipKey,
      aclManagementToken: this.opts.aclManagementToken,
    });
    this.opts.processes.start(this.processName(i), ...this.placement.wrap(i, this.binary, args), join(dir, 'consul.log'));
  }

  /** The pid of server i's process, for a freeze (SIGSTOP). */
  pid(i: number): number | undefined {
    return this.opts.processes.get(this.processName(i))?.child.pid;
  }

  async stopNode(i: number, how: 'graceful' | 'kill'): Promise<void> {
    if (how === 'kill') await this.opts.processes.crash(this.processName(i));
    else await this.opts.processes.stop(this.processName(i), 'SIGTERM');
  }

  /** Raft leader address as seen by server i ('' while there is none). */
  async raftLeader(i: number): Promise<string> {
    const res = await fetch(`${this.httpUrl(i)}/v1/status/leader`, {
      signal: AbortSignal.timeout(1000),
      headers: this.opts.aclManagementToken ? { 'X-Consul-Token': this.opts.aclManagementToken } : {},
    });
    return res.ok ? ((await res.json()) as string) : '';
  }

  /**
   * Waits until autopilot reports every server healthy and voting. A server that rejoins after a crash votes
   * only after Consul's server_stabilization_time (10 s); a second fault before then can leave no quorum.
   */
  async waitForHealthy(timeoutMs = 60_000): Promise<void> {
    await waitFor(
      'every Consul server healthy and voting',
      async () => {
        const res = await fetch(`${this.httpUrl(0)}/v1/operator/autopilot/health`, {
          signal: AbortSignal.timeout(1000),
          headers: this.opts.aclManagementToken ? { 'X-Consul-Token': this.opts.aclManagementToken } : {},
        });
        if (!res.ok) return false;
        const health = (await res.json()) as { Healthy: boolean; Servers: { Healthy: boolean; Voter: boolean }[] };
        return health.Healthy && health.Servers.length === this.addresses.length && health.Servers.every((s) => s.Healthy && s.Voter);
      },
      timeoutMs,
      250,
    );
  }

  /** Waits until every running server agrees on one raft leader, and returns its address. */
  async waitForLeader(indexes = this.addresses.map((_, i) => i), timeoutMs = 60_000): Promise<string> {
    return waitFor(
      'a Consul raft leader agreed by all servers',
      async () => {
        const leaders = await Promise.all(indexes.map((i) => this.raftLeader(i)));
        return leaders[0] && leaders.every((l) => l === leaders[0]) ? leaders[0] : undefined;
      },
      timeoutMs,
      200,
    );
  }
}
