import { SESSION_TTL_SECONDS } from '../consul/sessions.js';
import { errorMessage, isSidecarError } from '../errors.js';
import { confirmLock } from './observe.js';
import { dropSession, statusLine, type LoopState } from './state.js';

/**
 * The session is renewed once this long has passed since its last renewal went out and succeeded, not every
 * keeper tick: its TTL (10 s; Consul ends a session between TTL and 2 x TTL after its last renewal) is only
 * the backstop for a node whose checks cannot reach the catalog (sessions.ts), so a renewal a second was a
 * request a second for a timer that needs one every few. At a quarter of the TTL (a renewal every 3 s with
 * 1 s ticks) two renewals can fail in a row, each retried at the next tick, before the TTL is near. Costs
 * about 0.3 requests a second; a standby whose session was invalidated (its checks failed) learns it at the
 * next renewal, up to this much later than before, and creates a new one then.
 */
const SESSION_RENEW_MS = (SESSION_TTL_SECONDS * 1000) / 4;

/**
 * The keeper: passes the alive check, renews the session and keeps the lease fresh while a long action holds
 * the loop. The three go out together, each on its own: on a slow network (400 ms round trips, lost packets)
 * a renewal that has to be retransmitted must not hold back the confirmation. A confirmation may take up to
 * a whole lease, since it counts from when it was sent, so one goes out every turn while the last confirmed
 * one is older than a turn, and several may be in flight: the first answer that shows our session renews
 * the lease (lease.ts ignores older and pre-step-down ones). The lease then holds while answers take less
 * than lease − 2 × loopWait (design.md "Timing model").
 */
export async function keep(s: LoopState): Promise<void> {
  const session = s.session;
  const age = s.lease.age();
  const holding = s.role === 'leader' || s.role === 'candidate' || s.plannedStop;
  const now = s.clock.now();
  const renewDue = session !== null && (s.renewed?.session !== session || now - s.renewed.at >= SESSION_RENEW_MS);
  const calls = [
    s.deps.store.passAliveCheck(statusLine(s).slice(0, 200)).then(
      () => {
        s.aliveCheckDenied = null;
      },
      (e: unknown) => {
        if (isSidecarError(e) && e.code === 'consul_acl_denied') s.aliveCheckDenied = e.message;
        throw e;
      },
    ),
    session && renewDue
      ? s.deps.store.renewSession(session).then((renewed) => {
          if (renewed) s.renewed = { session, at: now };
          if (!renewed && s.session === session) {
            s.log.warn('Consul session expired; a new one is created next turn', { session });
            dropSession(s);
          }
        })
      : undefined,
    holding && (age === null || age > s.loopWaitMs) ? confirmLock(s, s.deps.config.timings.lease * 1000) : undefined,
  ];
  for (const outcome of await Promise.allSettled(calls)) {
    if (outcome.status === 'rejected') s.log.debug('keeper: Consul call failed', { error: errorMessage(outcome.reason) });
  }
}
