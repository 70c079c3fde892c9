// Publish: what the rest of the cluster and the operator see of this node after each turn.
import type { MemberRecord } from '../consul/records.js';
import { dropSession, leaderReady, sessionAlive, statusLine, type LoopState } from './state.js';

/**
 * A member record is written when its content changes, else again after this long: one write per node per
 * 30 s rather than one a turn, each of which wakes every standby's blocking read of the members. Needed at
 * all only for a record lost while the session lives (deleted by hand, a restored Consul snapshot); a new
 * session always writes at once, and nobody reads `updatedAt` as a heartbeat (the session says alive).
 */
const MEMBER_REFRESH_MS = 30_000;

/** The leader gauge and lease age, then `members/<node>`, held by the session: a write refused because the session is gone drops it. */
export async function publish(s: LoopState): Promise<void> {
  const { metrics, store, config } = s.deps;
  metrics.isLeader.set(leaderReady(s) ? 1 : 0);
  const age = s.lease.age();
  metrics.leaseAge.set(age === null ? -1 : age / 1000);
  if (!s.session || !s.consulReachable) return;
  const fields = {
    name: config.nodeName,
    address: config.address,
    apiUrl: s.apiUrl,
    role: s.role === 'demoted' ? ('demoted' as const) : s.role,
    state: statusLine(s),
    termSeen: s.term,
    nofailover: config.nofailover,
    ...Object.assign({}, ...s.deps.participants.map((p) => p.memberFields?.() ?? {})),
  };
  // Unchanged content is not written again (see MEMBER_REFRESH_MS): what peers read of this node (its
  // positions, its synchronous list) is exactly what it last wrote, so skipping a write hides nothing.
  const content = JSON.stringify(fields);
  const now = s.clock.now();
  const last = s.published;
  if (last && last.content === content && last.session === s.session && now - last.at < MEMBER_REFRESH_MS) return;
  const record: MemberRecord = { ...fields, updatedAt: new Date().toISOString() };
  const session = s.session;
  const held = await store.putMember(session, record).catch(() => false);
  s.published = held ? { content, session, at: now } : null;
  if (!held && (await sessionAlive(s)) === false) {
    s.log.warn('Consul session lost; a new one is created next turn', { session: s.session });
    dropSession(s);
  }
}
