import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { ConsulRefused } from './errors.js';
import type { ConsulStore } from './store.js';

/** How often the agent's failed gossip members are looked for. */
const REJOIN_INTERVAL_MS = 2_000;
/** One join attempt: memberlist gives up on an unreachable member's TCP connect after 10 s. */
const JOIN_TIMEOUT_MS = 12_000;

/**
 * Brings this node's Consul agent back into gossip within seconds of a partition healing. Serf only retries a
 * failed member every 30 s (its reconnect interval, which Consul does not expose), and until then the node's
 * `serfHealth` stays critical, so its sidecar can create no session: it can neither follow nor lead, and a
 * healed cluster stays short of a member for up to half a minute (design.md "Under partitions and freezes",
 * Healing). Every REJOIN_INTERVAL_MS this asks the local agent to join each member it calls failed, as serf's
 * reconnect does.
 *
 * Liveness only: gossip membership makes a node eligible for a session, never a leader. A session still needs
 * the servers' raft quorum, the lock still needs the lock-delay after a loss, and a node joined back into
 * gossip is as safe as one that was never cut off.
 */
export class GossipRejoin {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private deniedLogged = false;

  constructor(
    private readonly store: ConsulStore,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer ??= setInterval(() => void this.rejoin(), REJOIN_INTERVAL_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass; attempts run one after the other, and a pass still running skips the next tick. */
  private async rejoin(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (const member of await this.store.failedGossipMembers()) {
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
    } finally {
      this.running = false;
    }
  }
}
