// Fakes for the election's unit tests: a clock the test moves, an in-memory Consul shared by the nodes of one
// test, parts that record when they write, and a write guard that records its deadlines. The fake Consul keeps
// the three promises the safety argument leans on (ElectionStore): a lock held by another session or under
// lock-delay is refused, an invalidated or destroyed session gives its lock the lock-delay, a release does not.
// A test can make calls hang, then answer them late, apply them and lose the answer, or fail them.
import { Writable } from 'node:stream';
import winston from 'winston';
import type { Clock, Timer } from '../../sidecar/election/clock.js';
import type { ElectionStore } from '../../sidecar/election/election-store.js';
import type { LeaseGuard } from '../../sidecar/election/loop.js';
import type { DemoteReason, Participant, TurnContext } from '../../sidecar/election/participant.js';
import { defaultDynamicConfig, type FailoverRequest, type HistoryEvent, type LeaderRecord, type MemberRecord, type SwitchoverRequest } from '../../sidecar/consul/records.js';
import type { LockState, MemberEntry } from '../../sidecar/consul/store.js';
import { parseConfig, type SidecarConfig } from '../../sidecar/config.js';
import { SidecarError } from '../../sidecar/errors.js';

/** Lets every promise chain that does not wait on a timer run to its end. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 40; i++) await new Promise((resolve) => setImmediate(resolve));
}

interface FakeTimer {
  at: number;
  seq: number;
  fn: () => void;
  period?: number;
  cancelled: boolean;
}

/** Time moves only when the test says so; timers due on the way run in order, each followed by settle(). */
export class FakeClock implements Clock {
  private t = 10_000;
  private seq = 0;
  private timers: FakeTimer[] = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): Timer {
    return this.add(ms, fn);
  }

  every(ms: number, fn: () => void): Timer {
    return this.add(ms, fn, ms);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const onAbort = () => {
        timer.cancel();
        resolve();
      };
      const timer = this.after(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private add(ms: number, fn: () => void, period?: number): Timer {
    const timer: FakeTimer = { at: this.t + Math.max(0, ms), seq: ++this.seq, fn, period, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => void (timer.cancelled = true) };
  }

  /** Moves time forward by `ms`. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.t + ms);
  }

  async advanceTo(end: number): Promise<void> {
    await settle();
    for (;;) {
      this.timers = this.timers.filter((x) => !x.cancelled);
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.t = next.at;
      if (next.period) {
        next.at += next.period;
        next.seq = ++this.seq;
      } else next.cancelled = true;
      next.fn();
      await settle();
    }
    this.t = Math.max(this.t, end);
    await settle();
  }

  /** Advances in steps of `stepMs` until `cond` holds; fails the test after `maxMs`. Returns the time it held. */
  async until(cond: () => boolean, maxMs: number, what: string, stepMs = 10): Promise<number> {
    const end = this.t + maxMs;
    while (!cond()) {
      if (this.t >= end) throw new Error(`not within ${maxMs} ms of fake time: ${what}`);
      await this.advance(stepMs);
    }
    return this.t;
  }
}

const unavailable = (what: string) => new SidecarError('consul_unavailable', `Consul did not answer ${what} (fake timeout)`, 503);

/** A call the test holds: it reaches the server only when the test says so. */
export class HeldCall {
  private result: { value?: unknown; error?: unknown } | null = null;
  /** Whether the client already has its answer (a value, or its timeout). */
  settled = false;
  /** Whether it took effect at the server. */
  served = false;

  constructor(
    readonly node: string,
    readonly method: string,
    readonly args: unknown[],
    readonly sentAt: number,
    private readonly apply: () => unknown,
    private readonly resolve: (v: unknown) => void,
    private readonly reject: (e: unknown) => void,
  ) {}

  /** The server applies it now; the answer is kept for deliver(). */
  serve(): this {
    if (this.served) return this;
    this.served = true;
    try {
      this.result = { value: this.apply() };
    } catch (e) {
      this.result = { error: e };
    }
    return this;
  }

  /** The answer reaches the client (served now if it was not yet). */
  deliver(): void {
    this.serve();
    if (this.settled) return;
    this.settled = true;
    if (this.result?.error !== undefined) this.reject(this.result.error);
    else this.resolve(this.result?.value);
  }

  /** Applied at the server, but the client gets no answer (it sees a timeout). */
  lose(): void {
    this.serve();
    this.timeout();
  }

  /** Not applied; the client sees Consul unavailable (a raft election it gave up on). */
  fail(): void {
    this.timeout();
  }

  timeout(): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(unavailable(this.method));
  }
}

interface Hold {
  node?: string;
  methods?: string[];
  when?: (args: unknown[]) => boolean;
}

interface FakeSession {
  node: string;
  lockDelayMs: number;
}

/** The Consul cluster of one test: one KV, one set of sessions, lock-delay on the fake clock. */
export class FakeConsul {
  lock: { session: string | null; leader: LeaderRecord | null; index: number } = { session: null, leader: null, index: 1 };
  private lockDelayUntil = -Infinity;
  readonly sessions = new Map<string, FakeSession>();
  private sessionSeq = 0;
  term = 0;
  readonly history: HistoryEvent[] = [];
  private readonly members = new Map<string, { record: MemberRecord; session: string | null }>();
  private switchover: SwitchoverRequest | null = null;
  private failover: FailoverRequest | null = null;
  /** Every call that reached the fake, held or not: who, what, when sent. */
  readonly calls: { node: string; method: string; args: unknown[]; at: number }[] = [];
  readonly held: HeldCall[] = [];
  private holds: Hold[] = [];
  private watchers: (() => void)[] = [];
  /** How many service registrations from now are denied as an unknown token is (`consul_acl_denied`). */
  registrationDenials = 0;
  /** Nodes whose alive check passes are denied, as a Consul server that has just restarted denies every token. */
  readonly aliveDenied = new Set<string>();

  constructor(
    readonly clock: FakeClock,
    /** A call's budget when it names none: the store's `timeoutMs`, which node.ts sets to loopWait. */
    readonly callTimeoutMs = 1_000,
  ) {}

  /** Calls matching `hold` wait for the test (or their timeout) until the returned function is called. */
  hold(hold: Hold): () => void {
    this.holds.push(hold);
    return () => {
      this.holds = this.holds.filter((h) => h !== hold);
    };
  }

  /** Ends every hold, and fails every call still held (a test's cleanup). */
  releaseAll(): void {
    this.holds = [];
    for (const c of this.waiting()) c.fail();
  }

  /** Held calls still waiting for an answer, optionally of one method. */
  waiting(method?: string): HeldCall[] {
    return this.held.filter((c) => !c.settled && (!method || c.method === method));
  }

  /** What Consul does when a check bound to the session turns critical: the session and its lock go, with lock-delay. */
  invalidate(session: string): void {
    const s = this.sessions.get(session);
    if (!s) return;
    this.sessions.delete(session);
    for (const m of this.members.values()) if (m.session === session) m.session = null;
    if (this.lock.session === session) {
      this.lock = { ...this.lock, session: null, index: this.lock.index + 1 };
      this.lockDelayUntil = this.clock.now() + s.lockDelayMs;
      this.notify();
    }
  }

  /** Another node's session takes the free lock (a rival that is not driven by a loop). */
  rivalAcquire(node: string): string | null {
    const id = this.newSession(node, 5_000);
    return this.acquire(id, { name: node, apiUrl: `http://${node}`, term: ++this.term, since: 'now' }) ? id : null;
  }

  private newSession(node: string, lockDelayMs: number): string {
    const id = `${node}-session-${++this.sessionSeq}`;
    this.sessions.set(id, { node, lockDelayMs });
    return id;
  }

  private acquire(session: string, leader: LeaderRecord): boolean {
    if (!this.sessions.has(session)) throw new SidecarError('consul_refused', `invalid session ${session}`, 500);
    if (this.lock.session === session) {
      this.lock = { ...this.lock, leader, index: this.lock.index + 1 };
      return true;
    }
    if (this.lock.session !== null || this.clock.now() < this.lockDelayUntil) return false;
    this.lock = { session, leader, index: this.lock.index + 1 };
    this.notify();
    return true;
  }

  private notify(): void {
    const watchers = this.watchers;
    this.watchers = [];
    for (const w of watchers) w();
  }

  private lockState(): LockState {
    return { session: this.lock.session, leader: this.lock.leader, index: this.lock.index };
  }

  private call<T>(node: string, method: string, args: unknown[], timeoutMs: number, apply: () => T | Promise<T>): Promise<T> {
    this.calls.push({ node, method, args, at: this.clock.now() });
    const held = this.holds.some((h) => (!h.node || h.node === node) && (!h.methods || h.methods.includes(method)) && (!h.when || h.when(args)));
    if (!held) {
      try {
        return Promise.resolve(apply());
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise<T>((resolve, reject) => {
      const c = new HeldCall(node, method, args, this.clock.now(), apply, resolve as (v: unknown) => void, reject);
      this.held.push(c);
      this.clock.after(timeoutMs, () => c.timeout());
    });
  }

  /** The store one node's sidecar sees. */
  private memberEntries(): MemberEntry[] {
    return [...this.members.values()].map((m) => ({ record: m.record, alive: m.session !== null }));
  }

  store(node: string): ElectionStore {
    const budget = this.callTimeoutMs;
    const call = <T>(method: string, args: unknown[], apply: () => T | Promise<T>, timeoutMs = budget) => this.call(node, method, args, timeoutMs, apply);
    return {
      registerService: (spec) =>
        call('registerService', [spec], () => {
          if (this.registrationDenials <= 0) return;
          this.registrationDenials -= 1;
          throw new SidecarError('consul_acl_denied', 'Consul service registration denied (HTTP 403: fake)', 502, { httpStatus: 403 });
        }),
      setServiceTags: (spec) => call('setServiceTags', [spec], () => undefined),
      passAliveCheck: (note) =>
        call('passAliveCheck', [note], () => {
          if (this.aliveDenied.has(node)) throw new SidecarError('consul_acl_denied', 'Consul alive check pass denied (HTTP 403: fake)', 502, { httpStatus: 403 });
        }),
      reportCheck: (...args) => call('reportCheck', args, () => undefined),
      raftElectionTimeoutMs: () => call('raftElectionTimeoutMs', [], () => null),
      createSession: (lockDelaySeconds) => call('createSession', [lockDelaySeconds], () => this.newSession(node, lockDelaySeconds * 1000)),
      destroyStaleSessions: (keep) =>
        call('destroyStaleSessions', [keep], () => {
          const stale = [...this.sessions].filter(([id, s]) => s.node === node && id !== keep).map(([id]) => id);
          for (const id of stale) this.invalidate(id); // a destroy gives the lock-delay, as an invalidation does
          return stale;
        }),
      renewSession: (id) => call('renewSession', [id], () => this.sessions.has(id)),
      sessionExists: (id) => call('sessionExists', [id], () => this.sessions.has(id)),
      readLock: (consistent, timeoutMs) => call('readLock', [consistent], () => this.lockState(), timeoutMs),
      watchLock: (index, waitSeconds) =>
        call(
          'watchLock',
          [index, waitSeconds],
          () =>
            // A blocking read: answers once the lock changed after `index`, or when the wait is over.
            this.lock.index > index
              ? Promise.resolve(this.lockState())
              : new Promise<LockState>((resolve) => {
                  const done = () => resolve(this.lockState());
                  this.watchers.push(done);
                  this.clock.after(waitSeconds * 1000, done);
                }),
          budget + waitSeconds * 1100,
        ),
      acquireLock: (session, leader) => call('acquireLock', [session, leader], () => this.acquire(session, leader)),
      releaseLock: (session, leader) =>
        call('releaseLock', [session, leader], () => {
          // Consul's release is a no-op unless the session holds the lock; it never sets lock-delay.
          if (this.lock.session !== session) return false;
          this.lock = { session: null, leader, index: this.lock.index + 1 };
          this.notify();
          return true;
        }),
      raiseTerm: () => call('raiseTerm', [], () => ++this.term),
      everLed: () => call('everLed', [], () => this.term > 0),
      appendHistory: (event) => call('appendHistory', [event], () => void this.history.push(event)),
      putMember: (session, record) =>
        call('putMember', [session, record], () => {
          if (!this.sessions.has(session)) throw new SidecarError('consul_refused', `invalid session ${session}`, 500);
          this.members.set(record.name, { record, session });
          return true;
        }),
      releaseMember: (session) =>
        call('releaseMember', [session], () => {
          for (const m of this.members.values()) if (m.session === session) m.session = null;
        }),
      listMembers: () => call('listMembers', [], () => this.memberEntries()),
      readTurnKeys: () =>
        call('readTurnKeys', [], () => ({ config: defaultDynamicConfig, switchover: this.switchover, failover: this.failover, members: this.memberEntries() })),
      writeSwitchover: (request) => call('writeSwitchover', [request], () => void (this.switchover = request)),
      writeFailover: (request) => call('writeFailover', [request], () => void (this.failover = request)),
    };
  }
}

/** Every node's writable Postgres, as far as the parts know: a second writer at any instant is a violation. */
export class Writers {
  readonly violations: string[] = [];
  private readonly writable = new Set<string>();

  constructor(private readonly clock: FakeClock) {}

  set(node: string, writable: boolean): void {
    if (writable && this.writable.size > 0 && !this.writable.has(node)) {
      this.violations.push(`at ${this.clock.now()}: ${node} became writable while ${[...this.writable].join(', ')} still was`);
    }
    if (writable) this.writable.add(node);
    else this.writable.delete(node);
  }

  isWritable(node: string): boolean {
    return this.writable.has(node);
  }
}

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * Postgres as the loop sees it. A promotion that is under way when a demotion begins never makes it writable
 * (the primary permit of the real controller); writes stop once `demote` resolves.
 */
export class FakePostgres implements Participant {
  readonly name = 'postgres';
  readonly events: { at: number; event: string }[] = [];
  /** While set, promote waits for it. */
  promoteGate: Deferred | null = null;
  /** While set, demote waits for it. */
  demoteGate: Deferred | null = null;
  /** Demotions that fail before one succeeds. */
  demoteFailures = 0;
  /** Promotions that fail (after the guard was armed) before one succeeds. */
  promoteFailures = 0;
  /** What the leader does every turn; a test may make it hang. */
  leaderTurn?: Participant['leaderTurn'];
  /** While set, a standby's turn waits for the leader's record (as a former primary waits for its promotion). */
  waitingForLeader = false;
  private permit = false;

  constructor(
    private readonly node: string,
    private readonly clock: FakeClock,
    private readonly writers: Writers,
  ) {}

  private note(event: string): void {
    this.events.push({ at: this.clock.now(), event });
  }

  count(event: string): number {
    return this.events.filter((e) => e.event === event).length;
  }

  firstAt(event: string): number | undefined {
    return this.events.find((e) => e.event === event)?.at;
  }

  async promote(): Promise<void> {
    this.permit = true;
    this.note('promote');
    if (this.promoteGate) await this.promoteGate.promise;
    if (this.promoteFailures > 0) {
      this.promoteFailures--;
      throw new Error('postgres did not come up as a writable primary');
    }
    if (!this.permit) return;
    this.writers.set(this.node, true);
    this.note('writable');
  }

  async followerTurn(ctx: TurnContext): Promise<void> {
    this.note('follow');
    if (this.waitingForLeader) ctx.turnAgainSoon();
  }

  async demote(reason: DemoteReason): Promise<void> {
    this.permit = false;
    this.note(`demote ${reason}`);
    if (this.demoteGate) await this.demoteGate.promise;
    if (this.demoteFailures > 0) {
      this.demoteFailures--;
      throw new Error('postgres did not stop');
    }
    this.writers.set(this.node, false);
    this.note('stopped');
  }
}

/** The write guard's deadlines, as the loop feeds them. */
export class FakeGuard implements LeaseGuard {
  readonly fed: { at: number; deadline: number }[] = [];
  armed = false;
  lost: ((reason: string) => void) | null = null;
  /** The session the guard would release if the sidecar died now. */
  sessionId: string | null = null;

  constructor(private readonly clock: FakeClock) {}

  session(id: string | null): void {
    this.sessionId = id;
  }

  feed(expiresAt: number): void {
    this.fed.push({ at: this.clock.now(), deadline: expiresAt });
  }

  onLost(handler: (reason: string) => void): void {
    this.lost = handler;
  }

  async arm(): Promise<void> {
    this.armed = true;
  }

  async disarm(): Promise<void> {
    this.armed = false;
  }

  /** The deadline an armed guard would kill Postgres at: the latest fed so far. */
  deadline(): number | null {
    return this.fed.length === 0 ? null : Math.max(...this.fed.map((f) => f.deadline));
  }
}

/** A quiet logger that keeps its lines, for a failing test's message. */
export function memoryLogger(): { log: winston.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk).trim());
      done();
    },
  });
  return { log: winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] }), lines };
}

/** A node's config; the default timings (loopWait 1, lease 3, checkTtl 3, lockDelay 5, demoteBudget 1 s) unless given. */
export function nodeConfig(node: string, timings?: SidecarConfig['timings']): SidecarConfig {
  return parseConfig({ nodeName: node, address: `127.0.9.${node.slice(1)}`, clusterToken: 'a-cluster-token-of-16+', dataDir: `/nonexistent/${node}`, postgres: { enabled: false }, timings });
}
