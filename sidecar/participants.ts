import type { SidecarConfig } from './config.js';
import type { Participant } from './election/participant.js';
import type { Logger } from './log.js';
import { createPostgresParticipant } from './postgres/participant.js';

/** The parts the reconcile loop drives on this node, per config. */
export function buildParticipants(config: SidecarConfig, log: Logger): Participant[] {
  return config.postgres.enabled ? [createPostgresParticipant(config, log)] : [];
}
