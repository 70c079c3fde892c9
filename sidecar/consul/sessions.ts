import { aliveCheckId } from './agent.js';
import type { ConsulConnection } from './connection.js';
import { leaderRecord, type LeaderRecord } from './records.js';

/**
 * The session's own TTL, renewed by the keeper every quarter of it (election/keeper.ts). The checks bound to
 * the session (serfHealth, the alive check) are the fast detectors; the TTL is the backstop for the one case
 * they miss: a node whose gossip works but that cannot reach the servers' RPC (8300), whose check updates
 * never reach the catalog. Its session then expires within 2 × TTL of its last renewal. 10 s is Consul's default `session_ttl_min`.
 */
export const SESSION_TTL_SECONDS = 10;

export interface LockState {
  /** Session holding the lock, null when free. */
  session: string | null;
  /** Last leader written to the key (it stays after a release, as the last known leader). */
  leader: LeaderRecord | null;
  /** X-Consul-Index of the read, for the next blocking read. */
  index: number;
}

/** The node's Consul session and the leader lock (the `leader` key) it acquires. */
export class SessionLock {
  constructor(private readonly consul: ConsulConnection) {}

  /**
   * A session that dies with the node (serfHealth) or the sidecar (its alive TTL check), whichever first.
   * `release` behaviour keeps the keys it held, so the last leader and members stay readable as such.
   */
  async createSession(lockDelaySeconds: number): Promise<string> {
    const created = (await this.consul.call('session creation', () =>
      this.consul.client.session.create(
        this.consul.request({
          name: this.sessionName(),
          checks: ['serfHealth', aliveCheckId(this.consul.node)],
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
    const sessions = (await this.consul.call('session list', () => this.consul.client.session.list(this.consul.request() as never))) as { ID: string; Name: string }[];
    const stale = sessions.filter((s) => s.Name === name && s.ID !== keep).map((s) => s.ID);
    for (const id of stale) await this.destroySession(id);
    return stale;
  }

  private sessionName(): string {
    return `ha-sidecar ${this.consul.opts.cluster} ${this.consul.node}`;
  }

  /** Renews the session's TTL; false when Consul no longer knows it (it expired or was invalidated). */
  async renewSession(id: string): Promise<boolean> {
    const renewed = (await this.consul.call('session renew', () =>
      this.consul.client.session.renew(this.consul.request({ id }) as never).catch((e: { statusCode?: number }) => {
        if (e.statusCode === 404) return []; // Consul's answer for a session it no longer has
        throw e;
      }),
    )) as unknown[];
    return renewed.length > 0;
  }

  async sessionExists(id: string): Promise<boolean> {
    const info = await this.consul.call('session lookup', () => this.consul.client.session.info(this.consul.request({ id, consistent: true }) as never));
    return Boolean(info);
  }

  private async destroySession(id: string): Promise<void> {
    await this.consul.call('session destroy', () => this.consul.client.session.destroy(this.consul.request({ id }) as never));
  }

  /**
   * Reads the lock. `consistent` makes the raft leader confirm its leadership with a quorum first, so a yes
   * cannot come from a deposed or partitioned server: the leader's lease is built only on such reads.
   * `timeoutMs` defaults to the store's budget of one call.
   */
  async readLock(consistent: boolean, timeoutMs?: number): Promise<LockState> {
    const key = this.consul.key('leader');
    const { entry, index } = await this.consul.getEntry(key, consistent ? { consistent: true } : {}, timeoutMs);
    return { session: entry?.Session ?? null, leader: this.consul.parse(key, leaderRecord, entry?.Value), index };
  }

  /** Blocks until the lock key changes after `index`, or `waitSeconds` pass; returns the new state. */
  async watchLock(index: number, waitSeconds: number): Promise<LockState> {
    const key = this.consul.key('leader');
    const { entry, index: next } = await this.consul.getEntry(key, { index, wait: `${waitSeconds}s` }, this.consul.opts.timeoutMs + waitSeconds * 1000 * 1.1);
    return { session: entry?.Session ?? null, leader: this.consul.parse(key, leaderRecord, entry?.Value), index: next };
  }

  /** Takes (or, holding it, rewrites) the lock. False while someone else holds it or lock-delay is in force. */
  async acquireLock(session: string, leader: LeaderRecord): Promise<boolean> {
    return this.consul.setKey('lock acquire', { key: this.consul.key('leader'), value: JSON.stringify(leader), acquire: session });
  }

  /** Releases the lock without lock-delay (a planned step-down), keeping the value as the last leader. */
  async releaseLock(session: string, leader: LeaderRecord): Promise<boolean> {
    return this.consul.setKey('lock release', { key: this.consul.key('leader'), value: JSON.stringify(leader), release: session });
  }
}
