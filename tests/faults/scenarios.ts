import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { waitFor } from '../harness/processes.js';
import type { FaultBench } from './bench.js';

/** A fault never takes longer than this to show its effect (a new writable leader, say). */
export const FAULT_EFFECT_MS = 30_000;

/** What a scenario gets for one run: the bench, the leader at the start, the fault's start, a seeded pick. */
export interface FaultContext {
  bench: FaultBench;
  leader: number;
  /** performance.now() when the run started. */
  t0: number;
  /** A whole number in [from, to], from the run's seed. */
  pick(from: number, to: number): number;
  /** Records a broken invariant the scenario checks itself (beyond the bench's own checks). */
  violation(what: string): void;
}

export interface Scenario {
  describe: string;
  /** Only meaningful in synchronous mode (skipped in asynchronous runs). */
  syncOnly?: boolean;
  /** Needs the lab's delaying forwarders in every node-to-node connection from the start (the bench's `forwarders`). */
  needsForwarders?: boolean;
  /** Injects the fault and keeps it for its duration; the bench heals (thaws, removes rules) afterwards. */
  inject(ctx: FaultContext): Promise<void>;
}

/** Longer than lease (3 s) + lock-delay (5 s) + gossip's failure detection: long enough for a failover. */
const HOLD_MS = 15_000;
/** Lease + demoteBudget (sidecar/config.ts defaults) + one loop: an old primary must refuse writes by then. */
const STOP_WRITES_MS = 3_000 + 1_000 + 1_000;
/** The delay+loss scenario's length: 30 s instead of the issue's minute, so 20 runs fit in the time. */
const LOSS_MS = 30_000;
const LOSS_PERCENT = 5;
/** The delay scenario's length and one-way delay: the issue's minute, 200 ms each way (as netem on every node's egress). */
const DELAY_LOSS_MS = 60_000;
const DELAY_MS = 200;

const others = (ctx: FaultContext) => ctx.bench.names.map((_, i) => i).filter((i) => i !== ctx.leader);

/** Keeps a fault in place for `ms` after the run started: the fault's duration is the scenario, not a wait for a condition. */
const holdUntil = (ctx: FaultContext, ms: number) => waitFor(`the fault's end (+${ms} ms)`, () => performance.now() - ctx.t0 >= ms, ms + 1_000, 100);

/**
 * Waits for another node than `except` to take writes (the watcher's direct writes), and returns it. A scenario
 * restarts what it killed in a `finally` after this wait: a wait that times out (the watcher's 300 ms writes
 * failing under load) must not leave a node dead for the runs after it.
 */
const newWriter = (ctx: FaultContext, except = ctx.leader, after = ctx.t0) =>
  waitFor('another node to take writes', () => ctx.bench.newWriter(after, except), FAULT_EFFECT_MS, 50);

/** Flags any write another node than the leader took from `from` on: a failover the fault should not cause. */
function noFailover(ctx: FaultContext, what: string, from = ctx.t0): void {
  const other = ctx.bench.newWriter(from, ctx.leader);
  if (other !== undefined) ctx.violation(`spurious failover to ${ctx.bench.names[other]} during ${what}`);
}

/** Flags any node that took a write after `from` (a cluster that lost its majority must take none). */
function noWriter(ctx: FaultContext, from: number, what: string): void {
  const sweep = ctx.bench.watcher!.sweeps.find((s) => s.at >= from && s.writers.length > 0);
  if (sweep) ctx.violation(`${sweep.writers.join('+')} took a write at +${(sweep.at - ctx.t0).toFixed(0)} ms with ${what}`);
}

/** The failover epoch the leader reports (GET /cluster), from the root namespace, which no fault delays. */
async function clusterTerm(ctx: FaultContext): Promise<unknown> {
  const { body } = await ctx.bench.cluster.call(ctx.leader, 'GET', '/cluster');
  return body.term;
}

/** The longest time, in ms since the run started, between two of the watcher's sweeps in which the leader took a write. */
function longestWriteGap(ctx: FaultContext): number {
  const leader = ctx.bench.names[ctx.leader];
  const took = ctx.bench.watcher!.sweeps.filter((s) => s.at >= ctx.t0 && s.writers.includes(leader)).map((s) => s.at);
  const ends = [ctx.t0, ...took, performance.now()];
  return Math.round(Math.max(...ends.slice(1).map((at, k) => at - ends[k])));
}

function freezeScenario(describe: string, pids: (b: FaultBench, i: number) => (number | undefined)[], holdMs = HOLD_MS): Scenario {
  return {
    describe,
    async inject(ctx) {
      for (const pid of pids(ctx.bench, ctx.leader)) ctx.bench.freeze(pid);
      await holdUntil(ctx, holdMs);
    },
  };
}

export const SCENARIOS: Record<string, Scenario> = {
  'partition-leader': {
    describe: 'the leader cut off from both peers (both directions), healed 3 s after a new leader takes writes',
    async inject(ctx) {
      ctx.bench.lab.inject(ctx.leader, { kind: 'isolate' });
      await newWriter(ctx);
      await holdUntil(ctx, performance.now() - ctx.t0 + 3_000);
    },
  },
  'freeze-sidecar': freezeScenario("SIGSTOP of the leader's sidecar for 15 s", (b, i) => [b.sidecarPid(i)]),
  'freeze-postmaster': freezeScenario("SIGSTOP of the leader's postmaster for 15 s (its backends keep running)", (b, i) => [b.postmasterPid(i)]),
  'freeze-consul': freezeScenario("SIGSTOP of the leader's Consul agent for 20 s (a hung Consul: calls time out, not refused)", (b, i) => [b.cluster.consul.pid(i)], 20_000),
  'freeze-all': freezeScenario("SIGSTOP of the leader's sidecar, postmaster and Consul agent at once for 15 s", (b, i) => [b.sidecarPid(i), b.postmasterPid(i), b.cluster.consul.pid(i)]),
  'leader-consul-rpc-cut': {
    describe: "TCP 8300 (Consul RPC/raft) cut between the leader and its peers for 20 s, gossip still flowing",
    async inject(ctx) {
      ctx.bench.lab.inject(ctx.leader, { kind: 'port', port: 8300 });
      await holdUntil(ctx, 20_000);
    },
  },
  'one-direction-out': {
    describe: "the leader's packets to its peers dropped for 15 s (it still hears them)",
    async inject(ctx) {
      ctx.bench.lab.inject(ctx.leader, { kind: 'outbound' });
      await holdUntil(ctx, HOLD_MS);
    },
  },
  'one-direction-in': {
    describe: "the peers' packets to the leader dropped for 15 s (they still hear it)",
    async inject(ctx) {
      ctx.bench.lab.inject(ctx.leader, { kind: 'inbound' });
      await holdUntil(ctx, HOLD_MS);
    },
  },
  'standby-cut': {
    describe: 'one standby (seeded pick) cut off from both peers for 15 s; the leader must stay',
    async inject(ctx) {
      const standbys = others(ctx);
      ctx.bench.lab.inject(standbys[ctx.pick(0, standbys.length - 1)], { kind: 'isolate' });
      await holdUntil(ctx, HOLD_MS);
      noFailover(ctx, 'a standby cut');
    },
  },
  'majority-lost': {
    describe: 'every node cut off from every other for 15 s: no quorum, so writes must stop and no one leads',
    async inject(ctx) {
      for (let i = 0; i < ctx.bench.names.length; i++) ctx.bench.lab.inject(i, { kind: 'isolate' });
      await holdUntil(ctx, HOLD_MS);
      noWriter(ctx, ctx.t0 + STOP_WRITES_MS, 'the majority lost');
      const statuses = await Promise.all(ctx.bench.names.map((_, i) => ctx.bench.cluster.leaderStatus(i)));
      if (statuses.includes(200)) ctx.violation(`a node answers 200 on /leader with the majority lost: ${statuses.join(',')}`);
    },
  },
  'loss-all': {
    describe: `${LOSS_PERCENT} % random loss on every packet between nodes for ${LOSS_MS / 1000} s (no delay: no netem here); no failover allowed`,
    async inject(ctx) {
      for (let i = 0; i < ctx.bench.names.length; i++) ctx.bench.lab.inject(i, { kind: 'loss', percent: LOSS_PERCENT });
      await holdUntil(ctx, LOSS_MS);
      noFailover(ctx, 'random loss');
    },
  },
  'delay-loss': {
    describe: `${DELAY_MS} ms delay each way (TCP between nodes, userspace forwarder) and ${LOSS_PERCENT} % random loss for ${DELAY_LOSS_MS / 1000} s; no failover allowed`,
    needsForwarders: true,
    async inject(ctx) {
      const { lab } = ctx.bench;
      const termBefore = await clusterTerm(ctx);
      for (let i = 0; i < lab.size; i++) {
        lab.setDelay(i, DELAY_MS);
        lab.inject(i, { kind: 'loss', percent: LOSS_PERCENT });
      }
      // Proof that the delay is in force: an API round trip from each node to the next (request and answer
      // each held once, plus the handshake's retransmits under loss), and the connections the forwarders carry.
      const { cluster } = ctx.bench;
      const caFile = cluster.tls ? join(cluster.tlsDir, 'ca.crt') : undefined;
      const seconds = ctx.bench.names.map((_, i) => lab.httpSeconds(i, `${cluster.apiUrl((i + 1) % lab.size)}/health`, caFile));
      const held = ctx.bench.names.map((_, i) => lab.forwardedConnections(i));
      process.stdout.write(`    peer /health round trips ${seconds.map((s) => `${Math.round(s * 1000)} ms`).join(', ')}; connections through the forwarders ${held.join(', ')}\n`);
      if (seconds.some((s) => s * 1000 < 2 * DELAY_MS)) ctx.violation(`the delay is not in force: a peer API call took ${seconds.join(', ')} s`);
      if (held.some((n) => n === 0)) ctx.violation(`a node has no connection through its delay forwarder: ${held.join(', ')}`);
      await holdUntil(ctx, DELAY_LOSS_MS);
      noFailover(ctx, 'delay and loss');
      // The leader staying is not enough: a step-down and re-promotion of the same node also stops writes.
      const termAfter = await clusterTerm(ctx);
      const stopped = longestWriteGap(ctx);
      process.stdout.write(`    term ${termBefore} -> ${termAfter}; the leader's longest stretch without taking writes ${stopped} ms\n`);
      if (termAfter !== termBefore) ctx.violation(`the leader stepped down and a promotion followed (term ${termBefore} -> ${termAfter}); its writes stopped for up to ${stopped} ms`);
    },
  },
  'leader-sidecar-kill': {
    describe: "kill -9 of the leader's sidecar, restarted after a new leader took over",
    async inject(ctx) {
      await ctx.bench.cluster.killSidecar(ctx.leader);
      await newWriter(ctx).finally(() => ctx.bench.cluster.startSidecar(ctx.leader));
    },
  },
  'kill-postmaster': {
    describe: "kill -9 of the leader's postmaster (its backends exit on postmaster death; the sidecar starts it again)",
    async inject(ctx) {
      const pid = ctx.bench.postmasterPid(ctx.leader);
      if (pid === undefined) throw new Error(`no postmaster on ${ctx.bench.names[ctx.leader]}`);
      process.kill(pid, 'SIGKILL');
      await holdUntil(ctx, 5_000);
    },
  },
  'kill-consul': {
    describe: "kill -9 of the leader's Consul agent (a server), restarted after another node takes writes",
    async inject(ctx) {
      await ctx.bench.cluster.consul.stopNode(ctx.leader, 'kill');
      await newWriter(ctx).finally(() => ctx.bench.cluster.consul.startNode(ctx.leader));
    },
  },
  'kill-all': {
    describe: "kill -9 of the leader's sidecar, postmaster and Consul agent at once, all restarted after another node takes writes",
    async inject(ctx) {
      const { cluster } = ctx.bench;
      const postmaster = ctx.bench.postmasterPid(ctx.leader);
      await Promise.all([cluster.killSidecar(ctx.leader), cluster.consul.stopNode(ctx.leader, 'kill'), postmaster === undefined ? undefined : process.kill(postmaster, 'SIGKILL')]);
      await newWriter(ctx).finally(async () => {
        await cluster.consul.startNode(ctx.leader);
        await cluster.startSidecar(ctx.leader);
      });
    },
  },
  'leader-sidecar-fast-restart': {
    describe: "kill -9 of the leader's sidecar, restarted at once (a supervisor's Restart=)",
    async inject(ctx) {
      await ctx.bench.cluster.killSidecar(ctx.leader);
      await ctx.bench.cluster.startSidecar(ctx.leader);
    },
  },
  'double-fault': {
    describe: "kill -9 of the leader's sidecar, then of the new leader's 0-2 s (seeded) after it takes writes; both restarted after 10 s",
    async inject(ctx) {
      const { cluster } = ctx.bench;
      await cluster.killSidecar(ctx.leader);
      const next = await newWriter(ctx).catch(async (e: unknown) => {
        await cluster.startSidecar(ctx.leader);
        throw e;
      });
      const tookWrites = performance.now();
      const delay = ctx.pick(0, 2_000);
      await waitFor('the second fault', () => performance.now() - tookWrites >= delay, delay + 1_000, 20);
      await cluster.killSidecar(next);
      await holdUntil(ctx, performance.now() - ctx.t0 + 10_000);
      await cluster.startSidecar(ctx.leader);
      await cluster.startSidecar(next);
    },
  },
  'restart-all': {
    describe: 'every Consul server and sidecar killed (-9) at once, then all restarted',
    async inject(ctx) {
      const { cluster } = ctx.bench;
      const all = cluster.names.map((_, i) => i);
      await Promise.all(all.map((i) => Promise.all([cluster.killSidecar(i), cluster.consul.stopNode(i, 'kill')])));
      for (const i of all) await cluster.consul.startNode(i);
      await Promise.all(all.map((i) => cluster.startSidecar(i)));
    },
  },
  'sync-one-acker': {
    describe: "synchronous mode: one standby's Postgres port cut so only the other acknowledges for 5 s, then the leader and that acking standby killed; the laggard must not take writes",
    syncOnly: true,
    async inject(ctx) {
      const { bench } = ctx;
      const standbys = others(ctx);
      const laggard = standbys[ctx.pick(0, 1)];
      const acker = standbys.find((i) => i !== laggard)!;
      bench.lab.inject(laggard, { kind: 'port', port: 15432 });
      await holdUntil(ctx, 5_000);
      const killedAt = performance.now();
      await Promise.all([bench.cluster.killSidecar(ctx.leader), bench.cluster.killSidecar(acker)]);
      await holdUntil(ctx, 5_000 + HOLD_MS);
      const sweep = bench.watcher!.sweeps.find((s) => s.at >= killedAt && s.writers.includes(bench.names[laggard]));
      if (sweep) ctx.violation(`the laggard ${bench.names[laggard]} took writes at +${(sweep.at - ctx.t0).toFixed(0)} ms without the acknowledged commits`);
      await bench.cluster.startSidecar(ctx.leader);
      await bench.cluster.startSidecar(acker);
    },
  },
};

/** Scenarios a `random` run draws from (seeded): all but the synchronous-only one and those needing the forwarders. */
const RANDOM_POOL = Object.keys(SCENARIOS).filter((name) => !SCENARIOS[name].syncOnly && !SCENARIOS[name].needsForwarders);

SCENARIOS.random = {
  describe: `one of ${RANDOM_POOL.length} scenarios drawn per run from the seed`,
  async inject(ctx) {
    const name = RANDOM_POOL[ctx.pick(0, RANDOM_POOL.length - 1)];
    process.stdout.write(`    random draws ${name}\n`);
    await SCENARIOS[name].inject(ctx);
  },
};
