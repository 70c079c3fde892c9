import { Metrics } from '../../sidecar/metrics.js';

/** The sample lines of one metric family in a scrape, without HELP/TYPE. */
const samples = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));

describe('Metrics: replication gauges computed from the parts at scrape time', () => {
  test('a standby: positions, both lags, timeline, streaming, role; no synchronous count', async () => {
    let fields: Record<string, unknown> = { walPosition: 5000, replayPosition: 4000, lagBytes: 100, timeline: 3, streaming: true, pgRole: 'standby', syncStandbys: null };
    const m = new Metrics('n2');
    m.scrapeFrom({ partFields: () => fields, consulContactAgeSeconds: () => 0.25 });
    const text = await m.registry.metrics();
    expect(samples(text, 'ha_sidecar_postgres_wal_position_bytes')).toEqual(['ha_sidecar_postgres_wal_position_bytes{node="n2"} 5000']);
    expect(samples(text, 'ha_sidecar_postgres_replay_position_bytes')).toEqual(['ha_sidecar_postgres_replay_position_bytes{node="n2"} 4000']);
    expect(samples(text, 'ha_sidecar_postgres_lag_bytes')).toEqual(['ha_sidecar_postgres_lag_bytes{node="n2"} 100']);
    // leader position 5100, replayed 4000
    expect(samples(text, 'ha_sidecar_postgres_replay_lag_bytes')).toEqual(['ha_sidecar_postgres_replay_lag_bytes{node="n2"} 1100']);
    expect(samples(text, 'ha_sidecar_postgres_timeline')).toEqual(['ha_sidecar_postgres_timeline{node="n2"} 3']);
    expect(samples(text, 'ha_sidecar_postgres_streaming')).toEqual(['ha_sidecar_postgres_streaming{node="n2"} 1']);
    expect(samples(text, 'ha_sidecar_postgres_role')).toEqual(['ha_sidecar_postgres_role{role="standby",node="n2"} 1']);
    expect(samples(text, 'ha_sidecar_postgres_synchronous_standbys')).toEqual([]);
    expect(samples(text, 'ha_sidecar_consul_last_contact_seconds')).toEqual(['ha_sidecar_consul_last_contact_seconds{node="n2"} 0.25']);

    // Promoted: the next scrape shows what the part says now; series that no longer apply disappear.
    fields = { walPosition: 9000, replayPosition: null, lagBytes: null, timeline: 4, streaming: false, pgRole: 'primary', syncStandbys: ['n1', 'n3'] };
    const after = await m.registry.metrics();
    expect(samples(after, 'ha_sidecar_postgres_lag_bytes')).toEqual([]);
    expect(samples(after, 'ha_sidecar_postgres_replay_lag_bytes')).toEqual([]);
    expect(samples(after, 'ha_sidecar_postgres_timeline')).toEqual(['ha_sidecar_postgres_timeline{node="n2"} 4']);
    expect(samples(after, 'ha_sidecar_postgres_synchronous_standbys')).toEqual(['ha_sidecar_postgres_synchronous_standbys{node="n2"} 2']);
    expect(samples(after, 'ha_sidecar_postgres_role')).toEqual(['ha_sidecar_postgres_role{role="primary",node="n2"} 1']);
  });

  test('without Postgres and before any Consul contact: no such series at all', async () => {
    const m = new Metrics('n1');
    m.scrapeFrom({ partFields: () => ({}), consulContactAgeSeconds: () => null });
    const text = await m.registry.metrics();
    expect(text.split('\n').filter((l) => /^ha_sidecar_(postgres|consul)_/.test(l))).toEqual([]);
  });

  test("the certificate's days left, read at each scrape (a reload changes them); none without tls", async () => {
    let days: number | null = 9;
    const m = new Metrics('n1');
    m.scrapeFrom({ certificateExpiryDays: () => days });
    expect(samples(await m.registry.metrics(), 'ha_sidecar_tls_certificate_expiry_days')).toEqual(['ha_sidecar_tls_certificate_expiry_days{node="n1"} 9']);
    days = 824;
    expect(samples(await m.registry.metrics(), 'ha_sidecar_tls_certificate_expiry_days')).toEqual(['ha_sidecar_tls_certificate_expiry_days{node="n1"} 824']);
    days = null;
    expect(samples(await m.registry.metrics(), 'ha_sidecar_tls_certificate_expiry_days')).toEqual([]);
  });

  test('the loop-duration histogram remembers when the last turn ended, for /liveness', () => {
    const m = new Metrics('n1');
    expect(m.lastTurnAgeMs()).toBeNull();
    m.loopDuration.observe(0.01);
    expect(m.lastTurnAgeMs()).toBeGreaterThanOrEqual(0);
    expect(m.lastTurnAgeMs()).toBeLessThan(1000);
  });
});
