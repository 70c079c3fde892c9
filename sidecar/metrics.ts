import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type HistogramConfiguration } from 'prom-client';
import { requestCounts, type RequestTarget } from './outgoing.js';

/** Where the scrape-time metrics come from; each is read when Prometheus scrapes, never cached. */
export interface MetricSources {
  /** The parts' member fields (`walPosition`, `lagBytes`, `timeline`, ... as in `members/<node>`). */
  partFields?: () => Record<string, unknown>;
  /** Seconds since the last Consul call that succeeded; null before the first. */
  consulContactAgeSeconds?: () => number | null;
  /** Whole days until the node's certificate expires (negative once expired); null without `tls`. */
  certificateExpiryDays?: () => number | null;
}

/** The loop-duration histogram, which also remembers when the loop last finished a turn (for /liveness). */
class TurnHistogram extends Histogram {
  lastObservedAt: number | null = null;

  constructor(config: HistogramConfiguration<string>) {
    super(config);
    // prom-client assigns `observe` per instance in its constructor, so wrap that one (a prototype override is shadowed).
    const observe = this.observe.bind(this) as (...args: unknown[]) => void;
    this.observe = ((...args: unknown[]) => {
      this.lastObservedAt = performance.now();
      observe(...args);
    }) as Histogram['observe'];
  }
}

/** How often the event loop's delay is sampled for the `nodejs_eventloop_lag_*` metrics (see the constructor). */
const EVENT_LOOP_SAMPLE_MS = 1_000;

const finite = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * A gauge whose value is computed at scrape time; a null value removes the series (absent, not 0: a
 * standby has no synchronous standbys count, a node without Postgres no WAL position).
 */
function scrapeGauge(registry: Registry, name: string, help: string, value: () => number | null): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const v = value();
      // An unlabelled gauge reads 0 after reset(); remove() drops its one series instead.
      if (v === null) this.remove();
      else this.set(v);
    },
  });
}

/** Prometheus metrics of one sidecar, served on GET /metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly isLeader = new Gauge({ name: 'ha_sidecar_is_leader', help: '1 on the leader whose parts are ready, else 0', registers: [this.registry] });
  readonly role = new Gauge({ name: 'ha_sidecar_role', help: '1 for the role this node plays', labelNames: ['role'], registers: [this.registry] });
  readonly term = new Gauge({ name: 'ha_sidecar_term', help: 'Failover epoch this node has seen', registers: [this.registry] });
  readonly leaderChanges = new Counter({ name: 'ha_sidecar_leader_changes_total', help: 'Times this node became or stopped being leader', registers: [this.registry] });
  readonly loopDuration = new TurnHistogram({
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

  readonly requests = new Counter({
    name: 'ha_sidecar_requests_total',
    help: "Requests sent, by target: consul (its agent), postgres (connections to its own), peer (another node's API or Postgres), manager (health probes)",
    labelNames: ['to'],
    registers: [this.registry],
    collect() {
      this.reset();
      for (const [to, n] of Object.entries(requestCounts())) this.inc({ to: to as RequestTarget }, n);
    },
  });

  constructor(node: string) {
    this.registry.setDefaultLabels({ node });
    // prom-client samples the event loop's delay on a 10 ms timer by default: 100 wake-ups a second, about
    // 0.5 % of a core on an idle sidecar (as much as everything else it does). Once a second still shows a
    // loop blocked for long; the turns' own age is what /liveness reads (lastTurnAgeMs).
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  /** Registers the gauges computed at scrape time from `sources` (call once). */
  scrapeFrom(sources: MetricSources): void {
    const field = (name: string) => () => finite(sources.partFields?.()[name]);
    const r = this.registry;
    scrapeGauge(r, 'ha_sidecar_postgres_wal_position_bytes', 'Primary: WAL flushed; standby: the most WAL received or replayed (LSN as bytes)', field('walPosition'));
    scrapeGauge(r, 'ha_sidecar_postgres_replay_position_bytes', 'Standby: WAL replayed (LSN as bytes)', field('replayPosition'));
    scrapeGauge(r, 'ha_sidecar_postgres_lag_bytes', "Standby: bytes behind the leader's last published WAL position (received or replayed)", field('lagBytes'));
    scrapeGauge(r, 'ha_sidecar_postgres_replay_lag_bytes', "Standby: bytes of the leader's last published WAL position not replayed yet", () => {
      const f = sources.partFields?.() ?? {};
      const [lag, wal, replayed] = [finite(f.lagBytes), finite(f.walPosition), finite(f.replayPosition)];
      // lagBytes = leader - max(received, replayed), so the leader's position is lagBytes + walPosition.
      return lag === null || wal === null || replayed === null ? null : Math.max(0, lag + wal - replayed);
    });
    scrapeGauge(r, 'ha_sidecar_postgres_timeline', 'Postgres timeline (raised at every promotion)', field('timeline'));
    scrapeGauge(r, 'ha_sidecar_postgres_streaming', 'Standby: 1 while it streams WAL from the leader, else 0', () => {
      const f = sources.partFields?.() ?? {};
      return typeof f.streaming === 'boolean' ? Number(f.streaming) : null;
    });
    scrapeGauge(r, 'ha_sidecar_postgres_synchronous_standbys', 'Leader: standbys in synchronous_standby_names (0 in strict mode with none streaming)', () => {
      const sync = sources.partFields?.().syncStandbys;
      return Array.isArray(sync) ? sync.length : null;
    });
    new Gauge({
      name: 'ha_sidecar_postgres_role',
      help: '1 for the role Postgres runs in (primary, standby, stopped, ...)',
      labelNames: ['role'],
      registers: [r],
      collect() {
        this.reset();
        const role = sources.partFields?.().pgRole;
        if (typeof role === 'string') this.set({ role }, 1);
      },
    });
    scrapeGauge(r, 'ha_sidecar_consul_last_contact_seconds', 'Seconds since a Consul call last succeeded', () => sources.consulContactAgeSeconds?.() ?? null);
    scrapeGauge(r, 'ha_sidecar_tls_certificate_expiry_days', "Whole days until the node's certificate (tls.certFile) expires; negative once expired", () => sources.certificateExpiryDays?.() ?? null);
  }

  /** Milliseconds since the reconcile loop last finished a turn; null before its first turn. */
  lastTurnAgeMs(): number | null {
    const at = this.loopDuration.lastObservedAt;
    return at === null ? null : performance.now() - at;
  }
}
