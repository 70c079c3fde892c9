import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import Consul from 'consul';
import { z } from 'zod';
import { SidecarError, errorMessage } from '../errors.js';
import {
  defaultDynamicConfig,
  dynamicConfig,
  failoverRequest,
  historyEvent,
  HISTORY_CAP,
  leaderRecord,
  memberRecord,
  switchoverRequest,
  type DynamicConfig,
  type FailoverRequest,
  type HistoryEvent,
  type LeaderRecord,
  type MemberRecord,
  type SwitchoverRequest,
} from './records.js';

export interface StoreOptions {
  url: string;
  token?: string;
  cluster: string;
  /** Budget of one ordinary call; blocking reads add their wait to it. */
  timeoutMs: number;
  /** Reports a KV value that failed validation (it is then treated as absent). */
  onBadValue?: (key: string, problem: string) => void;
  /** Postgres port of this node, published in the service's meta (`postgres_port`) for clients. */
  postgresPort?: number;
}

export interface LockState {
  /** Session holding the lock, null when free. */
  session: string | null;
  /** Last leader written to the key (it stays after a release, as the last known leader). */
  leader: LeaderRecord | null;
  /** X-Consul-Index of the read, for the next blocking read. */
  index: number;
}

export interface MemberEntry {
  record: MemberRecord;
  /** False when the member's session is gone: the node is down or cut off, this is its last word. */
  alive: boolean;
}

export interface ServiceSpec {
  node: string;
  address: string;
  apiPort: number;
  tags: string[];
  /** Tag of the node's service `<cluster>-postgres`: true to its role, `primary` only on the ready leader. */
  postgresTag: 'primary' | 'replica';
  checkTtlSeconds: number;
}

interface KvEntry {
  Value: string | null;
  Session?: string;
  ModifyIndex: number;
}

type Request = Record<string, unknown>;

/**
 * The session's own TTL, renewed by the keeper every turn. The checks bound to the session (serfHealth, the
 * alive check) are the fast detectors; the TTL is the backstop for the one case they miss: a node whose
 * gossip works but that cannot reach the servers' RPC (8300), whose check updates never reach the catalog.
 * Its session then expires within 2 × TTL. 10 s is Consul's default `session_ttl_min`.
 */
export const SESSION_TTL_SECONDS = 10;

/** A Go duration as Consul prints it (`1s`, `500ms`, `1m30s`) in milliseconds, or null. */
export function parseGoDuration(text: string): number | null {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return null;
  return parts.reduce((ms, [, n, unit]) => ms + Number(n) * units[unit], 0);
}

/** Consul failures the loop can act on: unreachable or erroring agent vs. a refused operation. */
export class ConsulUnavailable extends SidecarError {
  constructor(operation: string, cause: unknown) {
    super('consul_unavailable', `Consul ${operation} failed: ${errorMessage(cause)}`, 503);
  }
}

/**
 * The only code that speaks Consul's HTTP API. It maps ha-sidecar's needs (a lock, a term, members, history,
 * dynamic config, the service and its checks) onto KV, sessions and the agent, and validates what it reads.
 */
export class ConsulStore {
  private readonly client: Consul;
  private readonly prefix: string;
  private readonly aliveCheckId: string;
  /** Monotonic time of the last Consul call that succeeded (for the `consul_last_contact` metric). */
  private lastSuccessAt: number | null = null;

  constructor(private readonly opts: StoreOptions, readonly node: string) {
    const url = new URL(opts.url);
    this.client = new Consul({
      host: url.hostname,
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
      secure: url.protocol === 'https:',
      defaults: opts.token ? { token: opts.token } : undefined,
    });
    this.prefix = `ha-sidecar/${opts.cluster}/`;
    this.aliveCheckId = `ha-sidecar-alive:${node}`;
  }

  key(name: string): string {
    return this.prefix + name;
  }

  /** Seconds since a Consul call last succeeded; null before the first. */
  lastContactAgeSeconds(): number | null {
    return this.lastSuccessAt === null ? null : (performance.now() - this.lastSuccessAt) / 1000;
  }

  private async call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      this.lastSuccessAt = performance.now();
      return result;
    } catch (e) {
      throw new ConsulUnavailable(operation, e);
    }
  }

  private opts_(extra: Request = {}, timeoutMs = this.opts.timeoutMs): Request {
    return { timeout: timeoutMs, ...extra };
  }

  private parse<T>(key: string, schema: z.ZodType<T>, raw: string | null | undefined): T | null {
    if (raw === null || raw === undefined || raw === '') return null;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      this.opts.onBadValue?.(key, 'not JSON');
      return null;
    }
    const result = schema.safeParse(json);
    if (!result.success) {
      this.opts.onBadValue?.(key, result.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; '));
      return null;
    }
    return result.data;
  }

  private async getEntry(key: string, extra: Request = {}, timeoutMs?: number): Promise<{ entry: KvEntry | undefined; index: number }> {
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const [res, entry] = (await this.call(`read of ${key}`, () =>
      this.client.kv.get(this.opts_({ key, ctx, ...extra }, timeoutMs) as never),
    )) as unknown as [{ headers: Record<string, string> }, KvEntry | undefined];
    return { entry, index: Number(res.headers['x-consul-index'] ?? 0) };
  }

  // --- agent: service and checks -------------------------------------------------------------------------

  /**
   * Registers the node's service and its checks. The alive TTL check is passed once at once, because a new TTL
   * check starts critical and a session cannot be bound to a critical check.
   */
  async registerService(spec: ServiceSpec): Promise<void> {
    await this.call('service registration', async () => {
      // A re-registered check keeps its last status (CONSUL-NOTES), so a session bound to it by an earlier
      // process of this node would live on and hold the lock for good. Deregistering the check first
      // invalidates every such session at once (its lock is released with lock-delay, see design.md
      // "Sessions"); only then is the check registered afresh for this process.
      await this.client.agent.check.deregister(this.aliveCheckId).catch(() => undefined);
      await this.client.agent.service.register({
        name: 'ha-sidecar',
        id: spec.node,
        address: spec.address,
        port: spec.apiPort,
        tags: spec.tags,
        meta: this.serviceMeta(),
      });
      await this.client.agent.check.register({
        id: this.aliveCheckId,
        name: 'sidecar alive',
        serviceid: spec.node,
        ttl: `${spec.checkTtlSeconds}s`,
        notes: 'passed by the sidecar every reconcile turn; the session is bound to it',
      } as never);
      await this.client.agent.check.register({
        id: `ha-sidecar-api:${spec.node}`,
        name: 'sidecar API /health',
        serviceid: spec.node,
        http: `http://${spec.address}:${spec.apiPort}/health`,
        interval: '2s',
        timeout: '1s',
      } as never);
      await this.client.agent.check.pass({ id: this.aliveCheckId, note: 'starting' } as never);
      await this.registerPostgresService(spec);
    });
  }

  /**
   * The service clients look Postgres up by: `<cluster>-postgres` on the Postgres port, tagged `primary` or
   * `replica`. Its only check aliases the node's `ha-sidecar` service, so it turns critical with the alive
   * check, which is bound to the session: a dead or stopped node's `primary` tag never passes, even though
   * nobody is left to remove it, and `?passing&tag=primary` names at most the one live leader.
   */
  private async registerPostgresService(spec: ServiceSpec): Promise<void> {
    if (!this.opts.postgresPort) return;
    await this.client.agent.service.register({
      name: `${this.opts.cluster}-postgres`,
      id: `${spec.node}-postgres`,
      address: spec.address,
      port: this.opts.postgresPort,
      tags: [spec.postgresTag],
      meta: { cluster: this.opts.cluster, node: spec.node },
      checks: [{ name: 'sidecar of this node', aliasservice: spec.node, notes: "mirrors the node's ha-sidecar service: its alive check, API and postgres checks" }],
    } as never);
  }

  /**
   * Changes the service's tags. Checks registered on their own are kept by a re-registration (Consul replaces
   * them only when asked), so the alive check, and the session bound to it, survive a role change.
   */
  async setServiceTags(spec: ServiceSpec): Promise<void> {
    await this.call('service tag update', () =>
      this.client.agent.service.register({
        name: 'ha-sidecar',
        id: spec.node,
        address: spec.address,
        port: spec.apiPort,
        tags: spec.tags,
        meta: this.serviceMeta(),
      }),
    );
    await this.call('postgres service tag update', () => this.registerPostgresService(spec));
  }

  async passAliveCheck(note: string): Promise<void> {
    await this.call('alive check pass', () => this.client.agent.check.pass(this.opts_({ id: this.aliveCheckId, note }) as never));
  }

  /** Reports a check of the node's service (registered on first use), e.g. the Postgres or file-mirror state. */
  async reportCheck(id: string, name: string, status: 'passing' | 'warning' | 'critical', output: string, ttlSeconds: number): Promise<void> {
    const checkId = `ha-sidecar-${id}:${this.node}`;
    const verb = status === 'passing' ? 'pass' : status === 'warning' ? 'warn' : 'fail';
    const update = () => this.client.agent.check[verb](this.opts_({ id: checkId, note: output }) as never);
    await this.call(`check ${id} update`, async () => {
      try {
        await update();
      } catch {
        // Not registered yet (first turn, or the agent restarted): register it, then set the status.
        await this.client.agent.check.register({ id: checkId, name, serviceid: this.node, ttl: `${ttlSeconds}s` } as never);
        await update();
      }
    });
  }

  /** Service meta an operator or client reads: the cluster's name and where this node's Postgres listens. */
  private serviceMeta(): Record<string, string> {
    return { cluster: this.opts.cluster, ...(this.opts.postgresPort ? { postgres_port: String(this.opts.postgresPort) } : {}) };
  }

  /**
   * After a graceful stop (session already destroyed, lock released): the alive check and the Postgres check
   * turn critical at once with `note`, instead of when their TTLs run out with no reason given.
   */
  async markStopped(note: string): Promise<void> {
    await this.call('alive check fail', () => this.client.agent.check.fail(this.opts_({ id: this.aliveCheckId, note }) as never));
    // The Postgres check exists only once the Postgres part reported; a missing one is nothing to mark.
    await this.client.agent.check.fail(this.opts_({ id: `ha-sidecar-postgres:${this.node}`, note }) as never).catch(() => undefined);
  }

  async deregisterService(): Promise<void> {
    await this.call('service deregistration', () => this.client.agent.service.deregister(this.node));
    if (this.opts.postgresPort) await this.call('postgres service deregistration', () => this.client.agent.service.deregister(`${this.node}-postgres`));
  }

  // --- session ---------------------------------------------------------------------------------------------

  /**
   * A session that dies with the node (serfHealth) or the sidecar (its alive TTL check), whichever first.
   * `release` behaviour keeps the keys it held, so the last leader and members stay readable as such.
   */
  async createSession(lockDelaySeconds: number): Promise<string> {
    const created = (await this.call('session creation', () =>
      this.client.session.create(
        this.opts_({
          name: this.sessionName(),
          checks: ['serfHealth', this.aliveCheckId],
          lockdelay: `${lockDelaySeconds}s`,
          behavior: 'release',
          ttl: `${SESSION_TTL_SECONDS}s`,
        }) as never,
      ),
    )) as { ID: string };
    return created.ID;
  }

  /**
   * Destroys every session this node created except `keep`: sessions of an earlier process of this node, or
   * ones this process lost track of. Returns the ids destroyed.
   */
  async destroyStaleSessions(keep: string | null): Promise<string[]> {
    const name = this.sessionName();
    const sessions = (await this.call('session list', () => this.client.session.list(this.opts_() as never))) as { ID: string; Name: string }[];
    const stale = sessions.filter((s) => s.Name === name && s.ID !== keep).map((s) => s.ID);
    for (const id of stale) await this.destroySession(id);
    return stale;
  }

  private sessionName(): string {
    return `ha-sidecar ${this.opts.cluster} ${this.node}`;
  }

  /** Renews the session's TTL; false when Consul no longer knows it (it expired or was invalidated). */
  async renewSession(id: string): Promise<boolean> {
    const renewed = (await this.call('session renew', () =>
      this.client.session.renew(this.opts_({ id }) as never).catch((e: { statusCode?: number }) => {
        if (e.statusCode === 404) return []; // Consul's answer for a session it no longer has
        throw e;
      }),
    )) as unknown[];
    return renewed.length > 0;
  }

  /**
   * Consul's own raft election timeout, from the agent's configuration (null when the agent does not say, or
   * the token may not read it). A raft leader election takes one to two of these.
   */
  async raftElectionTimeoutMs(): Promise<number | null> {
    const self = (await this.call('agent self', () => this.client.agent.self(this.opts_() as never))) as { DebugConfig?: { ConsulRaftElectionTimeout?: unknown } };
    const value = self.DebugConfig?.ConsulRaftElectionTimeout;
    return typeof value === 'string' ? parseGoDuration(value) : null;
  }

  async sessionExists(id: string): Promise<boolean> {
    const info = await this.call('session lookup', () => this.client.session.info(this.opts_({ id, consistent: true }) as never));
    return Boolean(info);
  }

  async destroySession(id: string): Promise<void> {
    await this.call('session destroy', () => this.client.session.destroy(this.opts_({ id }) as never));
  }

  // --- leader lock -----------------------------------------------------------------------------------------

  /**
   * Reads the lock. `consistent` makes the raft leader confirm its leadership with a quorum first, so a yes
   * cannot come from a deposed or partitioned server: the leader's lease is built only on such reads.
   */
  async readLock(consistent: boolean): Promise<LockState> {
    const key = this.key('leader');
    const { entry, index } = await this.getEntry(key, consistent ? { consistent: true } : {});
    return { session: entry?.Session ?? null, leader: this.parse(key, leaderRecord, entry?.Value), index };
  }

  /** Blocks until the lock key changes after `index`, or `waitSeconds` pass; returns the new state. */
  async watchLock(index: number, waitSeconds: number): Promise<LockState> {
    const key = this.key('leader');
    const { entry, index: next } = await this.getEntry(key, { index, wait: `${waitSeconds}s` }, this.opts.timeoutMs + waitSeconds * 1000 * 1.1);
    return { session: entry?.Session ?? null, leader: this.parse(key, leaderRecord, entry?.Value), index: next };
  }

  /** Takes (or, holding it, rewrites) the lock. False while someone else holds it or lock-delay is in force. */
  async acquireLock(session: string, leader: LeaderRecord): Promise<boolean> {
    return (await this.call('lock acquire', () =>
      this.client.kv.set(this.opts_({ key: this.key('leader'), value: JSON.stringify(leader), acquire: session }) as never),
    )) as unknown as boolean;
  }

  /** Releases the lock without lock-delay (a planned step-down), keeping the value as the last leader. */
  async releaseLock(session: string, leader: LeaderRecord): Promise<boolean> {
    return (await this.call('lock release', () =>
      this.client.kv.set(this.opts_({ key: this.key('leader'), value: JSON.stringify(leader), release: session }) as never),
    )) as unknown as boolean;
  }

  // --- term and history ------------------------------------------------------------------------------------

  /** Raises the term by check-and-set, so two nodes can never claim the same term. Returns the new term. */
  async raiseTerm(): Promise<number> {
    const key = this.key('term');
    for (;;) {
      const { entry } = await this.getEntry(key, { consistent: true });
      const current = entry ? Number(entry.Value) : 0;
      if (!Number.isSafeInteger(current) || current < 0) {
        throw new SidecarError('bad_kv_value', `${key} holds ${JSON.stringify(entry?.Value)}, not a term number; fix or delete the key`);
      }
      const ok = (await this.call('term update', () =>
        this.client.kv.set(this.opts_({ key, value: String(current + 1), cas: entry?.ModifyIndex ?? 0 }) as never),
      )) as unknown as boolean;
      if (ok) return current + 1;
    }
  }

  /**
   * Whether this cluster ever had a leader: a `term` or `history` key exists, whatever it holds. Read from the
   * raft leader; a value that does not parse counts as "yes", so only a provably fresh cluster says no.
   */
  async everLed(): Promise<boolean> {
    for (const name of ['term', 'history']) {
      const { entry } = await this.getEntry(this.key(name), { consistent: true });
      if (entry) return true;
    }
    return false;
  }

  async readTerm(): Promise<number> {
    const key = this.key('term');
    const { entry } = await this.getEntry(key);
    const term = entry ? Number(entry.Value) : 0;
    if (!Number.isSafeInteger(term) || term < 0) {
      this.opts.onBadValue?.(key, `not a term number: ${JSON.stringify(entry?.Value)}`);
      return 0;
    }
    return term;
  }

  async appendHistory(event: HistoryEvent): Promise<void> {
    const key = this.key('history');
    for (;;) {
      const { entry } = await this.getEntry(key, { consistent: true });
      const events = this.parse(key, z.array(historyEvent), entry?.Value) ?? [];
      const next = [...events, event].slice(-HISTORY_CAP);
      const ok = (await this.call('history update', () =>
        this.client.kv.set(this.opts_({ key, value: JSON.stringify(next), cas: entry?.ModifyIndex ?? 0 }) as never),
      )) as unknown as boolean;
      if (ok) return;
    }
  }

  async readHistory(): Promise<HistoryEvent[]> {
    const key = this.key('history');
    const { entry } = await this.getEntry(key);
    return this.parse(key, z.array(historyEvent), entry?.Value) ?? [];
  }

  // --- members ---------------------------------------------------------------------------------------------

  /** Writes this node's status, held by its session: when the session dies the entry reads as not alive. */
  async putMember(session: string, record: MemberRecord): Promise<boolean> {
    return (await this.call('member update', () =>
      this.client.kv.set(this.opts_({ key: this.key(`members/${record.name}`), value: JSON.stringify(record), acquire: session }) as never),
    )) as unknown as boolean;
  }

  /** Lets go of the member key before a graceful exit: a release, unlike a destroyed session, adds no lock-delay. */
  async releaseMember(session: string): Promise<void> {
    const key = this.key(`members/${this.node}`);
    const { entry } = await this.getEntry(key);
    if (entry?.Session === session) {
      await this.call('member release', () => this.client.kv.set(this.opts_({ key, value: entry.Value ?? '', release: session }) as never));
    }
  }

  async listMembers(): Promise<MemberEntry[]> {
    const entries = ((await this.call('member list', () =>
      this.client.kv.get(this.opts_({ key: this.key('members/'), recurse: true }) as never),
    )) ?? []) as unknown as (KvEntry & { Key: string })[];
    const members: MemberEntry[] = [];
    for (const entry of entries) {
      const record = this.parse(entry.Key, memberRecord, entry.Value);
      if (record) members.push({ record, alive: Boolean(entry.Session) });
    }
    return members;
  }

  async deleteMember(name: string): Promise<void> {
    await this.call('member removal', () => this.client.kv.del(this.opts_({ key: this.key(`members/${name}`) }) as never));
  }

  // --- dynamic config, switchover, initialize --------------------------------------------------------------

  async readDynamicConfig(): Promise<{ config: DynamicConfig; index: number }> {
    const key = this.key('config');
    const { entry } = await this.getEntry(key);
    return { config: this.parse(key, dynamicConfig, entry?.Value) ?? defaultDynamicConfig, index: entry?.ModifyIndex ?? 0 };
  }

  /** Check-and-set write of the dynamic config; false when someone changed it since `index` was read. */
  async writeDynamicConfig(config: DynamicConfig, index: number): Promise<boolean> {
    return (await this.call('config update', () =>
      this.client.kv.set(this.opts_({ key: this.key('config'), value: JSON.stringify(config), cas: index }) as never),
    )) as unknown as boolean;
  }

  async readSwitchover(): Promise<SwitchoverRequest | null> {
    const key = this.key('switchover');
    const { entry } = await this.getEntry(key);
    return this.parse(key, switchoverRequest, entry?.Value);
  }

  async writeSwitchover(request: SwitchoverRequest | null): Promise<void> {
    const key = this.key('switchover');
    await this.call('switchover update', () =>
      request ? this.client.kv.set(this.opts_({ key, value: JSON.stringify(request) }) as never) : this.client.kv.del(this.opts_({ key }) as never),
    );
  }

  async readFailover(): Promise<FailoverRequest | null> {
    const key = this.key('failover');
    const { entry } = await this.getEntry(key);
    return this.parse(key, failoverRequest, entry?.Value);
  }

  async writeFailover(request: FailoverRequest | null): Promise<void> {
    const key = this.key('failover');
    await this.call('failover update', () =>
      request ? this.client.kv.set(this.opts_({ key, value: JSON.stringify(request) }) as never) : this.client.kv.del(this.opts_({ key }) as never),
    );
  }

  /** The cluster id written once by `cluster start` (check-and-set 0); the existing id when already initialized. */
  async initialize(clusterId: string): Promise<{ created: boolean; clusterId: string }> {
    const key = this.key('initialize');
    const created = (await this.call('cluster initialize', () =>
      this.client.kv.set(this.opts_({ key, value: clusterId, cas: 0 }) as never),
    )) as unknown as boolean;
    if (created) return { created, clusterId };
    const { entry } = await this.getEntry(key, { consistent: true });
    return { created, clusterId: entry?.Value ?? '' };
  }

  async readInitialize(): Promise<string | null> {
    const { entry } = await this.getEntry(this.key('initialize'));
    return entry?.Value || null;
  }
}
