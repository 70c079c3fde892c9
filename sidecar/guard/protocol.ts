import { performance } from 'node:perf_hooks';
import { SidecarError } from '../errors.js';

/**
 * What the sidecar and its write guard say to each other over the guard's stdin and stdout, one line per
 * message, and the guard's state. Pure: unit-tested without processes.
 *
 * Sidecar to guard: `<seq> arm <deadline>`, `<seq> feed <deadline>`, `<seq> disarm`, and `<seq> session <id>`
 * or `<seq> session -` (the node's Consul session now, or none: what the guard releases once the sidecar
 * died, see main.ts). Guard to sidecar, one answer per command, in order: `<seq> armed` or `<seq> disarmed`. A deadline is an absolute
 * CLOCK_MONOTONIC time in nanoseconds: the one clock every process on the machine reads alike (Node's
 * `process.hrtime.bigint()` reads it on Linux), so a deadline means the same instant in both processes.
 */
export type GuardCommand =
  | { seq: number; kind: 'arm' | 'feed'; deadlineNs: bigint }
  | { seq: number; kind: 'disarm' }
  | { seq: number; kind: 'session'; session: string | null };

export interface GuardReply {
  seq: number;
  armed: boolean;
}

export function formatCommand(command: GuardCommand): string {
  if (command.kind === 'disarm') return `${command.seq} disarm\n`;
  if (command.kind === 'session') return `${command.seq} session ${command.session ?? '-'}\n`;
  return `${command.seq} ${command.kind} ${command.deadlineNs}\n`;
}

/** A Consul session id is a UUID; nothing else may reach the guard's URLs. */
const COMMAND = /^(\d{1,15}) (?:(arm|feed) (\d{1,20})|(disarm)|session (-|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}))$/;

/** Parses one line from the sidecar. Throws `bad_guard_command` on anything else (a bug: the guard then exits). */
export function parseCommand(line: string): GuardCommand {
  const m = COMMAND.exec(line.trim());
  if (!m) throw new SidecarError('bad_guard_command', `the write guard does not understand ${JSON.stringify(line.slice(0, 80))}`);
  const seq = Number(m[1]);
  if (m[4]) return { seq, kind: 'disarm' };
  if (m[5]) return { seq, kind: 'session', session: m[5] === '-' ? null : m[5] };
  return { seq, kind: m[2] as 'arm' | 'feed', deadlineNs: BigInt(m[3]) };
}

export function formatReply(reply: GuardReply): string {
  return `${reply.seq} ${reply.armed ? 'armed' : 'disarmed'}\n`;
}

/** Parses one answer of the guard; null for anything else. */
export function parseReply(line: string): GuardReply | null {
  const m = /^(\d{1,15}) (armed|disarmed)$/.exec(line.trim());
  return m ? { seq: Number(m[1]), armed: m[2] === 'armed' } : null;
}

/** Now on CLOCK_MONOTONIC, in nanoseconds. */
export const monotonicNs = (): bigint => process.hrtime.bigint();

/**
 * Converts a `performance.now()` time of this process (the lease's clock) to absolute CLOCK_MONOTONIC
 * nanoseconds. Both run on the same clock; only their origins differ, so the offset is read once per call.
 */
export function performanceToMonotonicNs(at: number): bigint {
  return monotonicNs() + BigInt(Math.round((at - performance.now()) * 1e6));
}

/**
 * The guard's state. Armed: the local Postgres may be a writable primary, and may stay one only until the
 * deadline. `mustKill` says when that right has run out. A feed only moves the deadline (to the one sent
 * last: the sidecar's lease never moves it backwards, and a guard must not keep a later one on its own);
 * arm sets both. An arm without any confirmation behind it carries deadline 0, which is already past:
 * fail closed.
 */
export class GuardState {
  armed = false;
  deadlineNs: bigint | null = null;
  /** The node's Consul session, as the sidecar last said. */
  session: string | null = null;
  /**
   * The session the armed lease rests on: the node's session when it was armed. A starved guard releases
   * this one only; a session the sidecar created since never held the lock this lease was for.
   */
  leaseSession: string | null = null;

  apply(command: GuardCommand): GuardReply {
    if (command.kind === 'disarm') {
      this.armed = false;
      this.leaseSession = null;
    } else if (command.kind === 'session') {
      this.session = command.session;
    } else {
      this.deadlineNs = command.deadlineNs;
      if (command.kind === 'arm') {
        this.armed = true;
        this.leaseSession = this.session;
      }
    }
    return { seq: command.seq, armed: this.armed };
  }

  /** Armed and starved: the postmaster must die now. */
  mustKill(nowNs: bigint): boolean {
    return this.armed && (this.deadlineNs === null || nowNs >= this.deadlineNs);
  }

  /**
   * When the guard must look again, in ms from `nowNs`: at the deadline while armed and fed (at least 1 ms,
   * rounded up, so a timer never fires before it), every `starvedPollMs` once it passed (to kill any
   * postmaster that appears), never while disarmed (null). Capped to what a Node timer takes (2^31 - 1 ms).
   */
  nextCheckMs(nowNs: bigint, starvedPollMs: number): number | null {
    if (!this.armed) return null;
    if (this.mustKill(nowNs)) return starvedPollMs;
    const remainingNs = (this.deadlineNs as bigint) - nowNs;
    return Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(Number(remainingNs) / 1e6)));
  }
}

/** The longest delay a Node timer takes; a longer one would fire after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;
