import { z } from 'zod';
import { SidecarError } from '../errors.js';
import type { ConsulConnection, KvEntry } from './connection.js';
import {
  defaultDynamicConfig,
  dynamicConfig,
  historyEvent,
  HISTORY_CAP,
  memberRecord,
  switchoverRequest,
  failoverRequest,
  type DynamicConfig,
  type HistoryEvent,
  type MemberRecord,
  type SwitchoverRequest,
  type FailoverRequest,
} from './records.js';

export interface MemberEntry {
  record: MemberRecord;
  /** False when the member's session is gone: the node is down or cut off, this is its last word. */
  alive: boolean;
}

/** The keys a reconcile turn reads besides the lock, as one read saw them (`readTurnKeys`). */
export interface TurnKeys {
  config: DynamicConfig;
  switchover: SwitchoverRequest | null;
  failover: FailoverRequest | null;
  members: MemberEntry[];
}

/**
 * The cluster's KV records under `ha-sidecar/<cluster>/` other than the lock: the term, the history, the
 * members, the dynamic config, a switchover request and the cluster id. Every value read is validated.
 */
export class ClusterKeys {
  constructor(private readonly consul: ConsulConnection) {}

  // --- term and history ------------------------------------------------------------------------------------

  /** Raises the term by check-and-set, so two nodes can never claim the same term. Returns the new term. */
  async raiseTerm(): Promise<number> {
    const key = this.consul.key('term');
    for (;;) {
      const { entry } = await this.consul.getEntry(key, { consistent: true });
      const current = entry ? Number(entry.Value) : 0;
      if (!Number.isSafeInteger(current) || current < 0) {
        throw new SidecarError('bad_kv_value', `${key} holds ${JSON.stringify(entry?.Value)}, not a term number; fix or delete the key`);
      }
      if (await this.consul.setKey('term update', { key, value: String(current + 1), cas: entry?.ModifyIndex ?? 0 })) return current + 1;
    }
  }

  /**
   * Whether this cluster ever had a leader: a `term` or `history` key exists, whatever it holds. Read from the
   * raft leader; a value that does not parse counts as "yes", so only a provably fresh cluster says no.
   */
  async everLed(): Promise<boolean> {
    for (const name of ['term', 'history']) {
      const { entry } = await this.consul.getEntry(this.consul.key(name), { consistent: true });
      if (entry) return true;
    }
    return false;
  }

  async readTerm(): Promise<number> {
    const key = this.consul.key('term');
    const { entry } = await this.consul.getEntry(key);
    const term = entry ? Number(entry.Value) : 0;
    if (!Number.isSafeInteger(term) || term < 0) {
      this.consul.opts.onBadValue?.(key, `not a term number: ${JSON.stringify(entry?.Value)}`);
      return 0;
    }
    return term;
  }

  async appendHistory(event: HistoryEvent): Promise<void> {
    const key = this.consul.key('history');
    for (;;) {
      const { entry } = await this.consul.getEntry(key, { consistent: true });
      const events = this.consul.parse(key, z.array(historyEvent), entry?.Value) ?? [];
      const next = [...events, event].slice(-HISTORY_CAP);
      if (await this.consul.setKey('history update', { key, value: JSON.stringify(next), cas: entry?.ModifyIndex ?? 0 })) return;
    }
  }

  async readHistory(): Promise<HistoryEvent[]> {
    const key = this.consul.key('history');
    const { entry } = await this.consul.getEntry(key);
    return this.consul.parse(key, z.array(historyEvent), entry?.Value) ?? [];
  }

  // --- members ---------------------------------------------------------------------------------------------

  /** Writes this node's status, held by its session: when the session dies the entry reads as not alive. */
  async putMember(session: string, record: MemberRecord): Promise<boolean> {
    return this.consul.setKey('member update', { key: this.consul.key(`members/${record.name}`), value: JSON.stringify(record), acquire: session });
  }

  /** Lets go of the member key before a graceful exit: a release, unlike a destroyed session, adds no lock-delay. */
  async releaseMember(session: string): Promise<void> {
    const key = this.consul.key(`members/${this.consul.node}`);
    const { entry } = await this.consul.getEntry(key);
    if (entry?.Session === session) await this.consul.setKey('member release', { key, value: entry.Value ?? '', release: session });
  }

  async listMembers(): Promise<MemberEntry[]> {
    return this.members(await this.readTree('member list', 'members/'));
  }

  /**
   * The dynamic config, the operators' requests and the members in one read of the cluster's whole prefix
   * (a default-consistency read, as each of those reads was on its own): one request a turn instead of
   * four, each of which cost the sidecar and its agent about 0.25 % of a core a second. The answer also
   * carries the lock, the term and the history (at most HISTORY_CAP events, some 25 KB), which a turn ignores:
   * the lock is read on its own (`readLock` with `?consistent` on the leader, `watchLock` on a standby).
   */
  async readTurnKeys(): Promise<TurnKeys> {
    const entries = await this.readTree('turn keys read', '');
    const value = (name: string) => entries.find((e) => e.Key === this.consul.key(name))?.Value;
    return {
      config: this.consul.parse(this.consul.key('config'), dynamicConfig, value('config')) ?? defaultDynamicConfig,
      switchover: this.consul.parse(this.consul.key('switchover'), switchoverRequest, value('switchover')),
      failover: this.consul.parse(this.consul.key('failover'), failoverRequest, value('failover')),
      members: this.members(entries.filter((e) => e.Key.startsWith(this.consul.key('members/')))),
    };
  }

  /** Every entry under the cluster's prefix + `under` (a recursive read). */
  private async readTree(operation: string, under: string): Promise<(KvEntry & { Key: string })[]> {
    const { client } = this.consul;
    return ((await this.consul.call(operation, () => client.kv.get(this.consul.request({ key: this.consul.key(under), recurse: true }) as never))) ??
      []) as unknown as (KvEntry & { Key: string })[];
  }

  private members(entries: (KvEntry & { Key: string })[]): MemberEntry[] {
    const members: MemberEntry[] = [];
    for (const entry of entries) {
      const record = this.consul.parse(entry.Key, memberRecord, entry.Value);
      if (record) members.push({ record, alive: Boolean(entry.Session) });
    }
    return members;
  }

  async deleteMember(name: string): Promise<void> {
    await this.consul.call('member removal', () => this.consul.client.kv.del(this.consul.request({ key: this.consul.key(`members/${name}`) }) as never));
  }

  // --- dynamic config, switchover, initialize --------------------------------------------------------------

  async readDynamicConfig(): Promise<{ config: DynamicConfig; index: number }> {
    const key = this.consul.key('config');
    const { entry } = await this.consul.getEntry(key);
    return { config: this.consul.parse(key, dynamicConfig, entry?.Value) ?? defaultDynamicConfig, index: entry?.ModifyIndex ?? 0 };
  }

  /** Check-and-set write of the dynamic config; false when someone changed it since `index` was read. */
  async writeDynamicConfig(config: DynamicConfig, index: number): Promise<boolean> {
    return this.consul.setKey('config update', { key: this.consul.key('config'), value: JSON.stringify(config), cas: index });
  }

  readSwitchover(): Promise<SwitchoverRequest | null> {
    return this.readRequest('switchover', switchoverRequest);
  }

  writeSwitchover(request: SwitchoverRequest | null): Promise<void> {
    return this.writeRequest('switchover', request);
  }

  readFailover(): Promise<FailoverRequest | null> {
    return this.readRequest('failover', failoverRequest);
  }

  writeFailover(request: FailoverRequest | null): Promise<void> {
    return this.writeRequest('failover', request);
  }

  /** An operator's request under `name` (switchover, failover), validated; null when there is none. */
  private async readRequest<T>(name: string, schema: z.ZodType<T>): Promise<T | null> {
    const key = this.consul.key(name);
    const { entry } = await this.consul.getEntry(key);
    return this.consul.parse(key, schema, entry?.Value);
  }

  /** Writes an operator's request under `name`, or deletes it (null). */
  private async writeRequest(name: string, request: object | null): Promise<void> {
    const { client } = this.consul;
    const key = this.consul.key(name);
    await this.consul.call(`${name} update`, () =>
      request ? client.kv.set(this.consul.request({ key, value: JSON.stringify(request) }) as never) : client.kv.del(this.consul.request({ key }) as never),
    );
  }

  /** The cluster id written once by `cluster start` (check-and-set 0); the existing id when already initialized. */
  async initialize(clusterId: string): Promise<{ created: boolean; clusterId: string }> {
    const key = this.consul.key('initialize');
    const created = await this.consul.setKey('cluster initialize', { key, value: clusterId, cas: 0 });
    if (created) return { created, clusterId };
    const { entry } = await this.consul.getEntry(key, { consistent: true });
    return { created, clusterId: entry?.Value ?? '' };
  }

  async readInitialize(): Promise<string | null> {
    const { entry } = await this.consul.getEntry(this.consul.key('initialize'));
    return entry?.Value || null;
  }
}
