import type { SidecarConfig } from './config.js';
import type { Participant } from './election/participant.js';
import type { Logger } from './log.js';

/** The parts the reconcile loop drives on this node, per config. */
export function buildParticipants(_config: SidecarConfig, _log: Logger): Participant[] {
  return [];
}
