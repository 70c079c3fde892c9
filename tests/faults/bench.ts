import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { uniformInt } from 'pure-rand/distribution/uniformInt';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { livePostmasterPid } from '../../sidecar/postgres/pid-file.js';
import { TestCluster } from '../harness/cluster.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { NetnsLab } from '../harness/netns.js';
import { waitFor } from '../harness/processes.js';
import { WriteWatcher } from '../harness/watchers.js';
import { WritingClient } from '../harness/writer.js';
import { FAULT_EFFECT_MS, SCENARIOS, type Scenario } from './scenarios.js';

/** After every heal: one leader and every other node streaming within this time (issue 10). */
export const CONVERGE_MS = 30_000;
/** How much longer a run that missed CONVERGE_MS is watched, so the next run can start from a steady state. */
const LATE_CONVERGE_MS = 120_000;

/** What one run of one scenario measured and which invariants it broke. */
export interface RunResult {
  scenario: string;
  run: number;
  leader: string;
  violations: string[];
  /** Fault to the first write acknowledged by another node than the old leader, if one took over. */
  writableMs?: number;
  /** Heal to one leader and every other node streaming. */
  convergedMs?: number;
  /** When that took longer than CONVERGE_MS (a violation): heal to convergence, if within LATE_CONVERGE_MS more. */
  lateConvergedMs?: number;
  acknowledged: number;
  lost: number[];
  doubleWriterSweeps: number;
}

export interface FaultBenchOptions {
  synchronous: boolean;
  /** 10.213.<subnet>.0/24 for the lab's bridge; default the third octet of HA_TEST_NET. */
  subnet?: number;
  /** Routes the nodes' connections through delaying forwarders (at 0 ms) from the start, for `delay-loss`, with the cluster sized for a slow network. */
  forwarders?: boolean;
}

/**
 * The cluster of a lab with delay forwarders (`delay-loss`: 400 ms round trips and 5 % loss) is sized for that
 * network, as docs/design.md "Slow networks" tells an operator to: Consul's defaults at raft_multiplier 1
 * (a 500 ms raft leader lease) are for round trips under 50 ms, and the raft leader gives up its leadership
 * at 400 ms with a lost packet; the sidecar lease then follows timing.ts (2 × raft election timeout + loopWait).
 */
export const SLOW_NETWORK_CONSUL_HCL = `# A network with round trips of hundreds of ms (ha-sidecar docs/design.md "Slow networks").
performance {
  raft_multiplier = 3
}
gossip_lan {
  probe_interval = "2s"
  probe_timeout  = "1s"
  suspicion_mult = 4
}
`;
/**
 * checkTtl 10 s, not 3: the agent passes the alive check under the same lock its anti-entropy holds across
 * its RPCs to the servers, so at 400 ms round trips a pass can wait seconds, the 3 s TTL ran out and the
 * session died with the leader's lease still valid (1 of 6 runs). A dead sidecar is fenced by parent death
 * and its lease whatever this TTL: it only delays the failover after a sidecar crash.
 */
export const SLOW_NETWORK_TIMINGS = { loopWait: 1, lease: 7, checkTtl: 10, lockDelay: 10, demoteBudget: 1 };

/** The default subnet: the engineer's own HA_TEST_NET third octet, so two people's labs never share a /24. */
export function defaultSubnet(): number {
  return Number((process.env.HA_TEST_NET ?? '127.0.0').split('.')[2]);
}

/**
 * One real 3-node cluster with every node in its own network namespace, HAProxy in front, a client writing
 * rising ids through HAProxy and a watcher writing directly to every node's Postgres every ~50 ms, all the
 * time. `run()` injects one scenario's fault, heals it, and checks the invariants of issue 10.
 */
export class FaultBench {
  readonly lab: NetnsLab;
  readonly cluster: TestCluster;
  readonly haproxy: TestHaproxy;
  writer?: WritingClient;
  watcher?: WriteWatcher;
  /** Processes a scenario stopped (SIGSTOP); teardown and every run's end continue them. */
  private readonly frozen = new Set<number>();

  constructor(readonly opts: FaultBenchOptions) {
    this.lab = new NetnsLab(3, opts.subnet ?? defaultSubnet());
    this.cluster = new TestCluster({
      size: 3,
      postgres: true,
      placement: this.lab,
      // pg_hba admits member addresses only; the watchers and HAProxy reach the nodes from the bridge.
      sidecarConfig: { clusterAddresses: [...this.lab.addresses, ...this.lab.clientAddresses()], ...(opts.forwarders ? { timings: SLOW_NETWORK_TIMINGS } : {}) },
    });
    this.haproxy = new TestHaproxy(this.cluster);
  }

  get names(): string[] {
    return this.cluster.names;
  }

  async start(): Promise<void> {
    this.lab.create();
    if (this.opts.forwarders) {
      await this.lab.startForwarders();
      // Loaded after server.hcl (Consul merges its config files in name order): overrides its raft and gossip timing.
      for (const node of this.cluster.driver.nodes) {
        mkdirSync(node.consulConfigDir, { recursive: true });
        writeFileSync(join(node.consulConfigDir, 'tuning.hcl'), SLOW_NETWORK_CONSUL_HCL);
      }
    }
    await this.cluster.start();
    await this.cluster.waitAllStreaming();
    const leader = (await this.cluster.leaderIndex())!;
    await this.cluster.sql(leader, 'create table acked (id bigint primary key)');
    await this.cluster.sql(leader, 'create table probe (node text, at timestamptz default now())');
    await this.cluster.call(leader, 'PATCH', '/config', { synchronousMode: this.opts.synchronous });
    await this.cluster.waitAllStreaming(this.opts.synchronous);
    this.haproxy.start();
    this.writer = new WritingClient(this.haproxy.postgres, 1, 20);
    this.watcher = new WriteWatcher(this.cluster);
  }

  /** Stops everything this bench started, also after a failure: frozen processes, cluster, namespaces. */
  async stop(): Promise<void> {
    this.thawAll();
    this.lab.healAll();
    await this.writer?.stop();
    await this.watcher?.stop();
    try {
      await this.cluster.stop();
    } finally {
      this.lab.destroy();
    }
  }

  sidecarPid(i: number): number | undefined {
    return this.cluster.processes.get(`sidecar-${this.names[i]}`)?.child.pid;
  }

  postmasterPid(i: number): number | undefined {
    return livePostmasterPid(join(this.cluster.baseDir, this.names[i], 'sidecar', 'postgres')) ?? undefined;
  }

  freeze(pid: number | undefined): void {
    if (pid === undefined) throw new Error('no such process to freeze');
    process.kill(pid, 'SIGSTOP');
    this.frozen.add(pid);
  }

  thawAll(): void {
    for (const pid of this.frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone (the guard killed a frozen postmaster, say) */
      }
    }
    this.frozen.clear();
  }

  /**
   * Index of a node other than `except` that took writes since `after`: seen by the watcher's direct writes, or
   * acknowledged to the client through HAProxy. Either proves it: under load the watcher's 300 ms writes can
   * fail for long on a synchronous primary whose commits the client still gets acknowledged.
   */
  newWriter(after: number, except: number): number | undefined {
    const name = this.watcher!.sweeps.find((s) => s.at >= after && s.writers.length > 0 && !s.writers.includes(this.names[except]))?.writers[0];
    if (name !== undefined) return this.names.indexOf(name);
    const server = this.firstAckElsewhere(after, except)?.server;
    const index = this.names.findIndex((_, i) => this.cluster.address(i) === server);
    return index === -1 ? undefined : index;
  }

  /** The client's first acknowledgement through HAProxy since `after` that another node than `except` gave. */
  private firstAckElsewhere(after: number, except: number): { at: number; server: string } | undefined {
    return this.writer!.ackedAt.find((a) => a.at >= after && a.server !== this.cluster.address(except));
  }

  /** Waits for a steady state: one leader, every standby streaming (synchronous in sync mode), Consul healthy. */
  async steady(): Promise<number> {
    const leader = await waitFor('one leader', () => this.cluster.leaderIndex(), FAULT_EFFECT_MS * 2, 50);
    await this.cluster.waitAllStreaming(this.opts.synchronous, FAULT_EFFECT_MS * 2);
    await this.cluster.consul.waitForHealthy(FAULT_EFFECT_MS * 2);
    return leader;
  }

  /** One run of `name`: waits for a steady state, injects, heals, and checks the invariants. */
  async run(name: string, run: number, seed: number): Promise<RunResult> {
    const scenario: Scenario = SCENARIOS[name];
    const rng = xoroshiro128plus(seed);
    const leader = await this.steady();
    const writer = this.writer!;
    const watcher = this.watcher!;
    const firstAck = writer.acked.length;
    const result: RunResult = { scenario: name, run, leader: this.names[leader], violations: [], acknowledged: 0, lost: [], doubleWriterSweeps: 0 };
    const t0 = performance.now();
    let healedAt: number | undefined;
    try {
      await scenario.inject({
        bench: this,
        leader,
        t0,
        pick: (from, to) => uniformInt(rng, from, to),
        violation: (what) => result.violations.push(what),
      });
    } catch (e) {
      result.violations.push(`fault did not take its course: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      this.thawAll();
      this.lab.healAll();
      healedAt = performance.now();
    }
    try {
      await this.cluster.waitAllStreaming(this.opts.synchronous, CONVERGE_MS);
      result.convergedMs = Math.round(performance.now() - healedAt);
    } catch (e) {
      result.violations.push(`no convergence within ${CONVERGE_MS} ms of the heal: ${e instanceof Error ? e.message : String(e)}`);
      // Late is still worth knowing, and lets the next run start from a steady state.
      await this.cluster.waitAllStreaming(this.opts.synchronous, LATE_CONVERGE_MS).then(
        () => (result.lateConvergedMs = Math.round(performance.now() - healedAt)),
        () => undefined,
      );
    }
    const firstOther = this.firstAckElsewhere(t0, leader);
    if (firstOther) result.writableMs = Math.round(firstOther.at - t0);

    const doubles = watcher.sweeps.filter((s) => s.at >= t0 && s.writers.length > 1);
    result.doubleWriterSweeps = doubles.length;
    if (doubles.length > 0) result.violations.push(`${doubles.length} sweeps with two writers, first at +${(doubles[0].at - t0).toFixed(0)} ms: ${doubles[0].writers.join('+')}`);

    // Taken before the query: an id acknowledged after the query's snapshot would wrongly count as lost.
    const acked = writer.acked.slice(firstAck);
    result.acknowledged = acked.length;
    if (acked.length > 0) {
      const final = await waitFor('one leader', () => this.cluster.leaderIndex(), CONVERGE_MS, 50).catch(() => undefined);
      if (final === undefined) result.violations.push('no single leader to count acknowledged commits on');
      else {
        const rows = await this.cluster.sql<{ id: string }>(final, 'select id from acked where id >= $1', [acked[0]], undefined, 10_000);
        const present = new Set(rows.map((r) => Number(r.id)));
        result.lost = acked.filter((id) => !present.has(id));
        if (result.lost.length > 0 && this.opts.synchronous) result.violations.push(`${result.lost.length} acknowledged commits lost in synchronous mode (first id ${result.lost[0]})`);
      }
    }
    return result;
  }

  /** Copies every node's logs to `dir` (for a failing run). */
  saveLogs(dir: string): void {
    mkdirSync(dir, { recursive: true });
    for (const name of this.names) {
      for (const file of ['sidecar.log', 'consul/consul.log']) {
        const from = join(this.cluster.baseDir, name, file);
        if (existsSync(from)) copyFileSync(from, join(dir, `${name}-${file.replace('/', '-')}`));
      }
      const pgLog = join(this.cluster.baseDir, name, 'sidecar', 'postgres.log');
      if (existsSync(pgLog)) copyFileSync(pgLog, join(dir, `${name}-postgres.log`));
    }
    const haproxyLog = join(this.cluster.baseDir, 'haproxy.log');
    if (existsSync(haproxyLog)) copyFileSync(haproxyLog, join(dir, 'haproxy.log'));
  }
}
