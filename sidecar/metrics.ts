import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of one sidecar, served on GET /metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly isLeader = new Gauge({ name: 'ha_sidecar_is_leader', help: '1 on the leader whose parts are ready, else 0', registers: [this.registry] });
  readonly role = new Gauge({ name: 'ha_sidecar_role', help: '1 for the role this node plays', labelNames: ['role'], registers: [this.registry] });
  readonly term = new Gauge({ name: 'ha_sidecar_term', help: 'Failover epoch this node has seen', registers: [this.registry] });
  readonly leaderChanges = new Counter({ name: 'ha_sidecar_leader_changes_total', help: 'Times this node became or stopped being leader', registers: [this.registry] });
  readonly loopDuration = new Histogram({
    name: 'ha_sidecar_loop_duration_seconds',
    help: 'Duration of one reconcile turn',
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly leaseAge = new Gauge({ name: 'ha_sidecar_lease_age_seconds', help: 'Seconds since the leader last confirmed its lock (-1 when not leader)', registers: [this.registry] });

  // File mirror (port 22000)
  readonly filesBytes = new Counter({ name: 'ha_sidecar_files_bytes_total', help: 'File content bytes sent (leader) or received (follower) by the mirror', labelNames: ['direction'], registers: [this.registry] });
  readonly filesTransferred = new Counter({ name: 'ha_sidecar_files_transferred_total', help: 'Files sent (leader) or installed (follower) by the mirror', labelNames: ['direction'], registers: [this.registry] });
  readonly filesEntries = new Gauge({ name: 'ha_sidecar_files_entries', help: 'Entries (files, directories, symlinks) in the mirrored directory', registers: [this.registry] });
  readonly filesSequence = new Gauge({ name: 'ha_sidecar_files_sequence', help: 'Leader: its manifest sequence; follower: the sequence it has mirrored', registers: [this.registry] });
  readonly filesLag = new Gauge({ name: 'ha_sidecar_files_lag_changes', help: 'Follower: changes behind the leader (-1 when not connected)', registers: [this.registry] });
  readonly filesErrors = new Counter({ name: 'ha_sidecar_files_errors_total', help: 'Mirror errors: refused peers, bad frames, refused paths, failed writes', labelNames: ['reason'], registers: [this.registry] });

  constructor(node: string) {
    this.registry.setDefaultLabels({ node });
    collectDefaultMetrics({ register: this.registry });
  }
}
