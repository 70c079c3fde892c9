import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SidecarConfig } from './config.js';
import type { ConsulStore, MemberEntry } from './consul/store.js';
import type { LeaderRecord } from './consul/records.js';
import { candidateProblem } from './election/eligibility.js';
import type { ReconcileLoop } from './election/loop.js';
import type { OperatorAction, Participant } from './election/participant.js';
import { SidecarError, answeredCode, errorMessage } from './errors.js';
import type { Logger } from './log.js';
import { countRequest } from './outgoing.js';
import type { FetchFunction } from './shared/https-fetch.js';
import { finiteOrNull } from './units.js';

/**
 * How long POST /failover waits for the target to serve writes: the dead leader's lock-delay (5 s by
 * default), then the promotion, which may include crash recovery of a Postgres that was killed.
 */
const FAILOVER_WAIT_MS = 45_000;
/** A peer's fresh WAL position must arrive this fast, else its member record's last word is used. */
const POSITION_TIMEOUT_MS = 1_000;

/** Whether the node at `apiUrl` answers 200 on /leader: it leads and its Postgres took a write. */
async function servesWrites(apiUrl: string, peers: FetchFunction): Promise<boolean> {
  try {
    countRequest('peer');
    const res = await peers(`${apiUrl}/leader`, { signal: AbortSignal.timeout(1_000) });
    await res.body?.cancel();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** How often a switchover or failover asks whether the new leader serves writes yet. */
const NEW_WRITER_POLL_MS = 200;

/**
 * Waits up to `timeoutMs` (monotonic) for a leader of a term above `termBefore` that answers 200 on /leader:
 * the end of a switchover or a manual failover. Null when none came.
 */
export async function newWriter(store: ConsulStore, termBefore: number, timeoutMs: number, peers: FetchFunction): Promise<LeaderRecord | null> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const lock = await store.readLock(false).catch(() => null);
    if (lock?.session && lock.leader && lock.leader.term > termBefore && (await servesWrites(lock.leader.apiUrl, peers))) return lock.leader;
    await sleep(NEW_WRITER_POLL_MS);
  }
  return null;
}

/** The operator action running (or last run) on this node, as GET /postgres/operation shows it. */
interface Operation {
  action: OperatorAction;
  state: 'running' | 'done' | 'failed';
  startedAt: string;
  tookMs?: number;
  error?: string;
  code?: string;
}

interface RecoveryDeps {
  /** This node's name, and whether it runs Postgres (a failover then weighs positions; the actions need it). */
  config: Pick<SidecarConfig, 'nodeName' | 'postgres'>;
  store: ConsulStore;
  loop: ReconcileLoop;
  participants: Participant[];
  log: Logger;
  isMember: () => boolean;
  /** How this node calls its peers' APIs (HTTPS with the cluster CA when TLS is on). */
  peers: FetchFunction;
}

/**
 * Recovery without ssh (issue 12): a manual failover when no leader exists, and reload, restart and reinit
 * of one node's Postgres. None of them decides a role: a failover only writes the request that decide()
 * honours, and the Postgres actions run on this node in the role the loop gave it.
 */
export class Recovery {
  private operation: Operation | null = null;

  constructor(private readonly deps: RecoveryDeps) {}

  /**
   * `POST /failover {to, force}`: only while no leader holds the lock (else `leader_exists`: that is what a
   * switchover is for). Refuses, without `force`, a target behind the last known primary position, saying
   * by how many bytes: those commits would be lost. Answers once the target serves writes.
   */
  async failover(to: string, force: boolean) {
    const { store } = this.deps;
    const lock = await store.readLock(true);
    if (lock.session !== null) {
      const name = lock.leader?.name ?? 'a node';
      throw new SidecarError('leader_exists', `${name} leads (term ${lock.leader?.term ?? '?'}): a failover is only for a cluster without a leader; use \`hactl cluster switchover --to ${to}\``, 409, { leader: lock.leader?.name ?? null });
    }
    const members = await store.listMembers();
    const target = members.find((m) => m.record.name === to);
    if (!target) throw new SidecarError('unknown_node', `no member named ${to}`, 404);
    // election/eligibility.ts, in two steps: the record's facts first, so a dead target is refused at once
    // rather than after asking it for its position; then, unless forced, not one byte behind.
    const problem = candidateProblem({ alive: target.alive, nofailover: target.record.nofailover }, 0);
    if (problem?.kind === 'not_running') throw new SidecarError('candidate_not_ready', `${to} is not running: start its sidecar first`, 409);
    if (problem?.kind === 'nofailover') throw new SidecarError('candidate_not_ready', `${to} is tagged nofailover`, 409);
    const behind = this.deps.config.postgres.enabled ? await this.bytesBehind(target, members, lock.leader?.name) : 0;
    const lag = force ? null : candidateProblem({ alive: true, nofailover: false, behindBytes: behind }, 0);
    if (lag?.kind === 'position_unknown') {
      throw new SidecarError('candidate_behind', `cannot tell whether ${to} is behind the last known primary position (a position is unknown); --force takes over anyway`, 409);
    }
    if (lag?.kind === 'behind') {
      throw new SidecarError(
        'candidate_behind',
        `${to} is ${lag.bytes} bytes behind the last known primary position of ${lock.leader?.name ?? 'the last leader'}: a failover to it loses the commits in those bytes; --force accepts that`,
        409,
        { behindBytes: lag.bytes },
      );
    }
    const termBefore = lock.leader?.term ?? 0;
    await store.writeFailover({ to, force, requestedAt: new Date().toISOString(), behindBytes: behind });
    this.deps.log.warn('manual failover requested', { to, force, behindBytes: behind });
    this.deps.loop.poke();
    const leader = await newWriter(store, termBefore, FAILOVER_WAIT_MS, this.deps.peers);
    if (leader) {
      if (leader.name !== to) throw new SidecarError('failover_failed', `${leader.name} took the lock, not ${to} (term ${leader.term})`, 502);
      return { failedOver: true, to, term: leader.term, previous: lock.leader?.name ?? null, lostBytes: force ? behind : 0 };
    }
    const state = (await store.listMembers().catch(() => [])).find((m) => m.record.name === to)?.record.state ?? 'unknown';
    throw new SidecarError('failover_timeout', `${to} does not serve writes ${FAILOVER_WAIT_MS / 1000} s after the request; its status: ${state}`, 504);
  }

  /**
   * Bytes `target` is behind the last leader's last published WAL position (0 when at or past it), from the
   * target's own /health when it answers, else its member record; null when either position is unknown.
   */
  private async bytesBehind(target: MemberEntry, members: MemberEntry[], lastLeader: string | undefined): Promise<number | null> {
    const lastPrimary = finiteOrNull(members.find((m) => m.record.name === lastLeader)?.record.walPosition);
    let position = finiteOrNull(target.record.walPosition);
    try {
      countRequest('peer');
      const res = await this.deps.peers(`${target.record.apiUrl}/health`, { signal: AbortSignal.timeout(POSITION_TIMEOUT_MS) });
      position = finiteOrNull(((await res.json()) as { walPosition?: unknown }).walPosition) ?? position;
    } catch {
      // Unreachable for a moment: its member record's last position stands in.
    }
    if (lastPrimary === null || position === null) return null;
    return Math.max(0, lastPrimary - position);
  }

  /**
   * `POST /postgres/{reload,restart,reinit}` on this node. Reload answers when done; restart and reinit
   * answer at once and run on, shown by `GET /postgres/operation`. A reinit of the leader is refused
   * (`reinit_leader_refused`): the leader's data is the one every other node copies.
   */
  async postgresAction(action: OperatorAction) {
    const part = this.deps.participants.find((p) => p.operatorAction);
    if (!this.deps.isMember()) throw new SidecarError('not_member', 'this node has not started or joined a cluster', 409);
    if (!this.deps.config.postgres.enabled || !part?.operatorAction) throw new SidecarError('postgres_disabled', 'this cluster runs without Postgres', 409);
    const role = this.deps.loop.view().role;
    if (action === 'reinit' && (role === 'leader' || role === 'candidate')) {
      throw new SidecarError('reinit_leader_refused', `${this.deps.config.nodeName} is the leader: its data is what the others clone. Switch over first, then reinit it`, 409);
    }
    if (this.operation?.state === 'running') {
      throw new SidecarError('operation_in_progress', `a ${this.operation.action} of this node's postgres is under way since ${this.operation.startedAt}`, 409);
    }
    const op: Operation = { action, state: 'running', startedAt: new Date().toISOString() };
    this.operation = op;
    this.deps.log.info(`operator ${action} of postgres`, { role });
    const t0 = performance.now();
    const done = part.operatorAction(action).then(
      () => Object.assign(op, { state: 'done', tookMs: Math.round(performance.now() - t0) }),
      (e: unknown) => {
        Object.assign(op, { state: 'failed', tookMs: Math.round(performance.now() - t0), error: errorMessage(e), code: (e as { code?: string }).code ?? 'operation_failed' });
        this.deps.log.error(`operator ${action} of postgres failed`, { error: op.error, code: op.code });
      },
    );
    this.deps.loop.poke();
    if (action === 'reload') {
      await done;
      if (op.state === 'failed') throw new SidecarError(answeredCode(op.code ?? 'operation_failed'), op.error ?? 'reload failed', 409);
    }
    return this.operationView();
  }

  /** `GET /postgres/operation`: the node's role and status line, and the operator action running or last run. */
  operationView() {
    const view = this.deps.loop.view();
    return { node: view.node, role: view.role, status: view.status, leaderReady: view.leaderReady, operation: this.operation };
  }
}
