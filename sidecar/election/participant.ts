import type { Logger } from '../log.js';
import type { LeaderRecord } from '../consul/records.js';
import type { MemberEntry } from '../consul/store.js';
import type { Registry } from 'prom-client';
import type { Fitness, Role } from './decide.js';

/** What a part sees of the cluster when the loop asks it to act. */
export interface TurnContext {
  term: number;
  /** The current (or, when the lock is free, the last known) leader. */
  leader: LeaderRecord | null;
  members: MemberEntry[];
  /** Whether the cluster ever had a leader (Consul's `term` or `history` exists): initdb only when it did not. */
  clusterEverLed(): Promise<boolean>;
  /** A planned switchover (the old leader handed everything to it) or an operator's manual failover names this node. */
  switchoverTarget: boolean;
  synchronousMode: boolean;
  synchronousModeStrict: boolean;
  /** Aborted when this node loses leadership while the action runs: stop at once. */
  signal: AbortSignal;
  log: Logger;
  /** Says what the part is doing or what is wrong, for the node's status line until the next turn ("cloning from n2 (37 %)"). */
  report(activity: string): void;
  /** Publishes a Consul check of this node's service (e.g. `postgres`), for the operator in the Consul UI. */
  reportCheck(id: string, name: string, status: 'passing' | 'warning' | 'critical', output: string): Promise<void>;
  /**
   * The part waits for something the lock's watch does not see change (the leader's member record, e.g. the
   * end of its promotion): the next turn comes soon rather than when the watch times out (`loopWait`).
   */
  turnAgainSoon(): void;
}

export type OperatorAction = 'reload' | 'restart' | 'reinit';

export type DemoteReason = 'lease_lost' | 'lock_lost' | 'switchover' | 'shutdown' | 'promotion_failed';

/**
 * A part of the node (Postgres, the file mirror) that the reconcile loop drives. The loop decides the role;
 * parts only carry it out. Every method is idempotent: a crash at any point is repaired by the next turn.
 */
export interface Participant {
  readonly name: string;
  /** Before the lock is tried: may this node take over now? */
  fitness?(ctx: TurnContext): Promise<Fitness>;
  /** The lock and a new term are ours: become the writer. Returns once writes are taken. */
  promote?(ctx: TurnContext): Promise<void>;
  /** Stop taking writes now. On a lost lease this must finish within `demoteBudget`. */
  demote?(reason: DemoteReason, log: Logger): Promise<void>;
  /** Every turn on the leader. */
  leaderTurn?(ctx: TurnContext): Promise<void>;
  /** Every turn on a standby while a leader holds the lock. */
  followerTurn?(ctx: TurnContext): Promise<void>;
  /** Whether this part is ready for `role` (on the leader: takes writes). */
  ready?(role: Role): boolean;
  /** Fields this part adds to `members/<node>`. */
  memberFields?(): Record<string, unknown>;
  /** Refuses to join a node holding data, unless forced (design rule 9). Throws `node_not_empty`. */
  checkJoinable?(force: boolean): Promise<void>;
  /** On the leader: what is wrong with this part (for the status line), and whether to hand over to a fit standby. */
  leaderProblem?(): { problem: string; handOver: boolean } | null;
  /** Adds the part's own metrics to the sidecar's registry (GET /metrics). */
  registerMetrics?(registry: Registry): void;
  /** An operator's action on the part (hactl cluster reload/restart/reinit); resolves once it is done. */
  operatorAction?(action: OperatorAction): Promise<void>;
  /** Releases what the part holds (the process is exiting). */
  close?(): Promise<void>;
}
