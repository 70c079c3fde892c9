import type { TurnContext } from '../election/participant.js';
import { pgName } from '../postgres/quoting.js';
import type { MirrorPosition } from './state.js';

type MemberEntry = TurnContext['members'][number];

/**
 * Synchronous files (design.md "Synchronous files"), pure so every rule is unit-tested: which followers may
 * acknowledge an upload, which peers a candidate must compare its copy with, and when a copy is behind.
 */

/**
 * Whether position `a` is past `b`: a later term, or the same term and a later epoch (one leader's epochs
 * are named by its own clock, base 36, so they sort), or the same epoch and a higher sequence. A follower
 * that has reached any sequence of an epoch holds the leader's whole directory as it was at that sequence.
 */
export function positionAfter(a: MirrorPosition, b: MirrorPosition): boolean {
  if (a.term !== b.term) return a.term > b.term;
  if (a.epoch !== b.epoch) return a.epoch.length !== b.epoch.length ? a.epoch.length > b.epoch.length : a.epoch > b.epoch;
  return a.seq > b.seq;
}

/**
 * Who may acknowledge an upload on the leader: null when uploads are not waited for (asynchronous mode, or
 * Postgres fell back to asynchronous: the leader's list is null), else a test of a follower's node name.
 * With Postgres, only the standbys of the leader's published synchronous list (those a candidate must be,
 * and must compare with): a file then survives exactly where a commit does. Without Postgres, any follower.
 */
export function acknowledgers(synchronousMode: boolean, postgres: boolean, leaderSync: unknown): ((node: string) => boolean) | null {
  if (!synchronousMode) return null;
  if (!postgres) return () => true;
  if (!Array.isArray(leaderSync)) return null;
  const listed = leaderSync as string[];
  return (node) => listed.includes(pgName(node));
}

export interface FilesPeer {
  name: string;
  apiUrl: string;
  /** A peer that cannot be read then makes the candidate unfit: it may hold the only copy of an upload. */
  mustRead: boolean;
}

/**
 * The peers a candidate compares its copy with before it tries the lock in synchronous mode: every member but
 * itself and the last leader that could lead (not `nofailover`). With the last leader's synchronous list,
 * the listed ones, read even when their session is gone (they may hold the only copy); without it, the live
 * ones. Every one must answer: an upload may have been acknowledged by any of them.
 */
export function filesPeers(members: MemberEntry[], self: string, lastLeader: string | undefined, leaderSync: unknown): FilesPeer[] {
  const listed = Array.isArray(leaderSync) ? (leaderSync as string[]) : null;
  return members
    .filter((m) => m.record.name !== self && m.record.name !== lastLeader && !m.record.nofailover)
    .filter((m) => (listed ? listed.includes(pgName(m.record.name)) : m.alive))
    .map((m) => ({ name: m.record.name, apiUrl: m.record.apiUrl, mustRead: true }));
}
