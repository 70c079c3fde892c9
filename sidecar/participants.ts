import type { SidecarConfig } from './config.js';
import type { Participant } from './election/participant.js';
import type { Logger } from './log.js';
import { createManagerParticipant } from './manager/participant.js';
import { createPostgresParticipant } from './postgres/participant.js';

/**
 * The parts the reconcile loop drives on this node, per config, in the order they promote: the manager comes
 * last, so its `leader` hook starts only once Postgres takes writes (and the file mirror serves).
 */
export function buildParticipants(config: SidecarConfig, log: Logger): Participant[] {
  const parts: Participant[] = config.postgres.enabled ? [createPostgresParticipant(config, log)] : [];
  const manager = createManagerParticipant(config, log);
  if (manager) parts.push(manager);
  return parts;
}
