import type { MemberEntry } from '../consul/store.js';
import { pgName } from './quoting.js';

/**
 * Candidate ranking for a failover, pure so every rule is unit-tested: which peers a standby must defer to,
 * and whether a peer is ahead of it. `PostgresParticipant.fitness` reads the positions and applies these.
 */

/** How much WAL a node has (received, or replayed when it never streamed) and has replayed, in bytes. */
export interface WalPosition {
  wal: number;
  replayed: number;
}

/** What the last leader published that the ranking needs. */
export interface RankingContext {
  /** This node. */
  self: string;
  /** The last leader's name, if any. */
  lastLeader: string | undefined;
  synchronousMode: boolean;
  /** The last leader's published synchronous standbys (pgNames), or null when asynchronous or unknown. */
  leaderSync: string[] | null;
}

/**
 * Whether `peer` outranks this node: most WAL received wins; then most replayed (it promotes sooner); then the
 * lower name, so two equal standbys neither both stand aside nor both run.
 */
export function peerIsAhead(peer: { name: string; position: WalPosition }, self: { name: string; position: WalPosition }): boolean {
  const theirs = peer.position;
  const mine = self.position;
  return theirs.wal > mine.wal || (theirs.wal === mine.wal && (theirs.replayed > mine.replayed || (theirs.replayed === mine.replayed && peer.name < self.name)));
}

/**
 * In synchronous mode a candidate other than the last leader must have been one of its synchronous standbys:
 * without the last leader's list nobody can say who has every commit, so the mode fails closed. The reason
 * this node is unfit, or null.
 */
export function synchronousModeUnfitReason(ctx: RankingContext, leaderRecordKnown: boolean): string | null {
  if (!ctx.synchronousMode || ctx.lastLeader === undefined || ctx.lastLeader === ctx.self) return null;
  if (!leaderRecordKnown) return `synchronous mode: the last leader ${ctx.lastLeader}'s synchronous standbys are unknown`;
  if (ctx.leaderSync && !ctx.leaderSync.includes(pgName(ctx.self))) return 'synchronous mode: I was not a synchronous standby of the last leader';
  return null;
}

/** A peer to compare positions with; `mustCompare`: one that cannot be read makes this node unfit. */
export interface PeerToCompare {
  name: string;
  address: string;
  mustCompare: boolean;
}

/**
 * Every member but this node and the last leader that could take over itself. In synchronous mode a listed
 * standby must be compared even when its session is gone: it may hold the only copy of a commit. Only peers
 * that could lead count (as in Patroni): a nofailover peer never promotes, and in synchronous mode an
 * unlisted peer's extra WAL holds no acknowledged commit. Deferring to either would leave the cluster without
 * a leader.
 */
export function peersToCompare(members: MemberEntry[], ctx: RankingContext): PeerToCompare[] {
  const mustCompare = (name: string) => ctx.synchronousMode && (ctx.leaderSync?.includes(pgName(name)) ?? false);
  const couldLead = (m: MemberEntry) => !m.record.nofailover && (!ctx.synchronousMode || ctx.leaderSync === null || mustCompare(m.record.name));
  return members
    .filter((m) => m.record.name !== ctx.self && m.record.name !== ctx.lastLeader && couldLead(m) && (m.alive || mustCompare(m.record.name)))
    .map((m) => ({ name: m.record.name, address: m.record.address, mustCompare: mustCompare(m.record.name) }));
}
