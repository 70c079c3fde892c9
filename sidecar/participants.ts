import type { SidecarConfig } from './config.js';
import type { Participant } from './election/participant.js';
import type { Logger } from './log.js';
import { createManagerParticipant } from './manager/participant.js';
import type { Metrics } from './metrics.js';
import { createMirrorParticipant } from './mirror/participant.js';
import { createPostgresParticipant } from './postgres/participant.js';
import type { PostgresNodeValues } from './postgres/settings.js';
import type { FetchFunction } from './shared/https-fetch.js';

/**
 * The parts the reconcile loop drives on this node, per config, in the order they promote: Postgres, the file
 * mirror, and the manager last of these, so its `leader` hook starts only once Postgres takes writes and the
 * mirror serves. node.ts appends the snapshots (they read the node's own view) for the loop alone.
 */
export function buildParticipants(config: SidecarConfig, log: Logger, metrics: Metrics, peers: FetchFunction): Participant[] {
  const parts: Participant[] = [];
  if (config.postgres.enabled) parts.push(createPostgresParticipant(config.postgres, postgresNodeValues(config), log));
  const mirrorNode = { nodeName: config.nodeName, address: config.address, clusterName: config.clusterName, clusterToken: config.clusterToken, dataDir: config.dataDir, postgres: config.postgres.enabled };
  const mirror = createMirrorParticipant(config.files, mirrorNode, log, metrics, peers);
  if (mirror) parts.push(mirror);
  const identity = { cluster: config.clusterName, node: config.nodeName, address: config.address, apiUrl: config.apiUrl };
  const manager = createManagerParticipant(config.manager, identity, log);
  if (manager) parts.push(manager);
  return parts;
}

/** The node-wide values the Postgres part (and the snapshots' database settings) take besides `config.postgres`. */
export function postgresNodeValues(config: SidecarConfig): PostgresNodeValues {
  return { nodeName: config.nodeName, address: config.address, clusterAddresses: config.clusterAddresses, clusterToken: config.clusterToken, dataDir: config.dataDir, tls: config.tls };
}
