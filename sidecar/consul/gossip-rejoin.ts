import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { ConsulRefused } from './errors.js';
import type { ConsulStore } from './store.js';

/**
 * While a member stays failed, a pass (ask the agent to join each failed member) runs this often: a healed
 * partition is noticed within this much. Costs nothing while every member is alive (no passes run then).
 */
const REJOIN_INTERVAL_MS = 2_000;
/** One join attempt: memberlist gives up on an unreachable member's TCP connect after 10 s. */
const JOIN_TIMEOUT_MS = 12_000;
/**
 * The blocking read of failed members returns after this long with nothing new (Consul's default wait):
 * with every member alive, one request per 5 minutes, plus one whenever a check of the catalog changes.
 */
const WATCH_WAIT_SECONDS = 300;
/** After a failed read (Consul restarting, no server answering), the next one goes out this much later. */
const WATCH_RETRY_MS = 2_000;

/**
 * Brings this node's Consul agent back into gossip within seconds of a partition healing. Serf only retries a
 * failed member every 30 s (its reconnect interval, which Consul does not expose), and until then the node's
 * `serfHealth` stays critical, so its sidecar can create no session: it can neither follow nor lead, and a
 * healed cluster stays short of a member for up to half a minute (design.md "Under partitions and freezes",
 * Healing). It works only when Consul reports a failed member: a blocking read of the critical `serfHealth`
 * checks wakes when one turns critical (a crash or a partition); from then on, every REJOIN_INTERVAL_MS until
 * none is left, it asks the local agent to join each member the agent calls failed, as serf's reconnect does.
 * On the side that was cut off, the read (answered by its own server, `stale`) wakes when the heal's raft
 * replication brings the majority's view of it; on the majority's side at once.
 *
 * Liveness only: gossip membership makes a node eligible for a session, never a leader. A session still needs
 * the servers' raft quorum, the lock still needs the lock-delay after a loss, and a node joined back into
 * gossip is as safe as one that was never cut off.
 */
/** What the rejoin needs of the Consul store (a fake in its unit test). */
export type GossipStore = Pick<ConsulStore, 'watchFailedNodes' | 'failedGossipMembers' | 'joinGossip'>;

export class GossipRejoin {
  private stopped = true;
  private deniedLogged = false;
  /** Cancels the pending blocking read and the pause between passes when the sidecar stops. */
  private cancel = new EventEmitter();
  private stopping = new AbortController();

  constructor(
    private readonly store: GossipStore,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.cancel = new EventEmitter();
    this.stopping = new AbortController();
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.cancel.emit('cancel');
    this.stopping.abort();
  }

  private async run(): Promise<void> {
    let index = 0;
    while (!this.stopped) {
      let failed: string[];
      try {
        const read = await this.store.watchFailedNodes(index, WATCH_WAIT_SECONDS, this.cancel);
        // Consul's rule for blocking queries: an index that goes backwards (a restored snapshot) resets to 0.
        index = read.index < index ? 0 : read.index;
        failed = read.nodes;
      } catch (e) {
        if (this.stopped) return;
        this.log.debug('could not read the failed Consul members', { error: errorMessage(e) });
        index = 0;
        await this.pause(WATCH_RETRY_MS);
        continue;
      }
      if (failed.length === 0) continue;
      await this.rejoin();
      await this.pause(REJOIN_INTERVAL_MS);
      index = 0; // look again at once rather than wait for a change: a member still failed gets another pass
    }
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stopping.signal }).catch(() => undefined);
  }

  /** One pass: attempts run one after the other. */
  private async rejoin(): Promise<void> {
    try {
      for (const member of await this.store.failedGossipMembers()) {
        if (this.stopped) return;
        try {
          await this.store.joinGossip(member.address, JOIN_TIMEOUT_MS);
          this.log.info('joined a failed Consul member back into gossip', { member: member.name, address: member.address });
        } catch (e) {
          if (e instanceof ConsulRefused && !this.deniedLogged) {
            // A token without `agent:write` (an older policy): Consul's own 30 s reconnect still applies.
            this.deniedLogged = true;
            this.log.warn('cannot ask the Consul agent to rejoin failed members; gossip recovers on its own 30 s reconnect', { code: e.code, error: e.message });
          }
          // Unreachable still: the next pass tries again.
        }
      }
    } catch (e) {
      this.log.debug('could not list Consul gossip members', { error: errorMessage(e) });
    }
  }
}
