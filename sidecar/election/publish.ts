// Publish: what the rest of the cluster and the operator see of this node after each turn.
import type { MemberRecord } from '../consul/records.js';
import { dropSession, leaderReady, sessionAlive, statusLine, type LoopState } from './state.js';

/** The leader gauge and lease age, then `members/<node>`, held by the session: a write refused because the session is gone drops it. */
export async function publish(s: LoopState): Promise<void> {
  const { metrics, store, config } = s.deps;
  metrics.isLeader.set(leaderReady(s) ? 1 : 0);
  const age = s.lease.age();
  metrics.leaseAge.set(age === null ? -1 : age / 1000);
  if (!s.session || !s.consulReachable) return;
  const record: MemberRecord = {
    name: config.nodeName,
    address: config.address,
    apiUrl: s.apiUrl,
    role: s.role === 'demoted' ? 'demoted' : s.role,
    state: statusLine(s),
    termSeen: s.term,
    nofailover: config.nofailover,
    updatedAt: new Date().toISOString(),
    ...Object.assign({}, ...s.deps.participants.map((p) => p.memberFields?.() ?? {})),
  };
  const held = await store.putMember(s.session, record).catch(() => false);
  if (!held && (await sessionAlive(s)) === false) {
    s.log.warn('Consul session lost; a new one is created next turn', { session: s.session });
    dropSession(s);
  }
}
