import { renderHba, renderPgpass, renderSidecarConf, scrubAutoConf, sslParams, withInclude } from '../../sidecar/postgres/conf.js';

const input = {
  name: 'n2',
  host: '127.0.5.12',
  port: 15432,
  socketDir: '/var/lib/ha/pgsocket',
  passFile: '/var/lib/ha/postgres.pgpass',
  replicationUser: 'replicator',
  synchronousStandbyNames: 'ANY 1 ("n1", "n3")',
  tls: null,
};
const tls = { certFile: '/var/lib/ha/postgres.tls/server.crt', keyFile: '/var/lib/ha/postgres.tls/server.key', caFile: '/var/lib/ha/postgres.tls/ca.crt' };
const settings = (text: string): Map<string, string> =>
  new Map(
    text
      .split('\n')
      .filter((l) => l.includes(' = '))
      .map((l) => [l.slice(0, l.indexOf(' = ')), l.slice(l.indexOf(' = ') + 3)]),
  );

describe('postgres conf: the files the sidecar owns in a data directory', () => {
  test('a standby streams from its upstream through its own slot, the password stays in the passfile', () => {
    const conf = settings(renderSidecarConf({ ...input, upstream: { host: '127.0.5.11', port: 15432 } }));
    expect(conf.get('listen_addresses')).toBe("'127.0.5.12'");
    expect(conf.get('port')).toBe('15432');
    expect(conf.get('primary_slot_name')).toBe("'n2'");
    const info = conf.get('primary_conninfo')!;
    expect(info).toBe(
      "'host=''127.0.5.11'' port=''15432'' user=''replicator'' passfile=''/var/lib/ha/postgres.pgpass'' application_name=''n2'' connect_timeout=''5'''",
    );
    expect(info).not.toContain('password=');
    expect(conf.get('synchronous_standby_names')).toBe(`'ANY 1 ("n1", "n3")'`);
  });

  test('a primary has no primary_conninfo or slot name', () => {
    const conf = settings(renderSidecarConf({ ...input, upstream: null }));
    expect(conf.has('primary_conninfo')).toBe(false);
    expect(conf.has('primary_slot_name')).toBe(false);
    expect(conf.get('recovery_target_timeline')).toBe("'latest'");
  });

  test('pg_hba lets members in with SCRAM only; on loopback 127.0.0.1 counts as a member', () => {
    const hba = renderHba(['127.0.5.12', '127.0.5.11'], 'replicator', false);
    const rows = hba.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/\s+/));
    expect(rows.every((r) => r[r.length - 1] === 'scram-sha-256')).toBe(true);
    expect(rows.filter((r) => r[1] === 'replication').map((r) => [r[2], r[3]])).toEqual([
      ['replicator', '127.0.0.1/32'],
      ['replicator', '127.0.5.11/32'],
      ['replicator', '127.0.5.12/32'],
    ]);
    expect(renderHba(['10.0.0.1', 'fd00::1'], 'replicator', false)).toContain('fd00::1/128');
    expect(renderHba(['10.0.0.1'], 'replicator', false)).not.toContain('127.0.0.1');
  });

  test('with TLS: SSL on with the copies, and the standby verifies its upstream fully with its own certificate', () => {
    const conf = settings(renderSidecarConf({ ...input, tls, upstream: { host: '127.0.5.11', port: 15432 } }));
    expect(conf.get('ssl')).toBe('on');
    expect(conf.get('ssl_cert_file')).toBe(`'${tls.certFile}'`);
    expect(conf.get('ssl_key_file')).toBe(`'${tls.keyFile}'`);
    expect(conf.get('ssl_ca_file')).toBe(`'${tls.caFile}'`);
    const info = conf.get('primary_conninfo')!;
    expect(info).toContain("sslmode=''verify-full''");
    expect(info).toContain(`sslrootcert=''${tls.caFile}''`);
    expect(info).toContain(`sslcert=''${tls.certFile}''`);
    expect(info).toContain(`sslkey=''${tls.keyFile}''`);
    expect(settings(renderSidecarConf({ ...input, upstream: null })).get('ssl')).toBe('off');
    expect(sslParams(null)).toEqual({});
  });

  test('pg_hba with TLS: hostssl rows only; replication and the superuser need a certificate of the CA', () => {
    const rows = renderHba(['127.0.5.11', '127.0.5.12'], 'replicator', true)
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(/\s+/));
    expect(rows.filter((r) => r[0] !== 'local').every((r) => r[0] === 'hostssl')).toBe(true);
    expect(rows.filter((r) => r[1] === 'replication').every((r) => r.slice(4).join(' ') === 'scram-sha-256 clientcert=verify-ca')).toBe(true);
    // The superuser's rows come before the rows for every user: pg_hba takes the first that matches.
    const firstAll = rows.findIndex((r) => r[0] === 'hostssl' && r[2] === 'all');
    const superuserRows = rows.map((r, i) => [r, i] as const).filter(([r]) => r[2] === 'postgres');
    expect(superuserRows.map(([r]) => r[3])).toEqual(['127.0.0.1/32', '127.0.5.11/32', '127.0.5.12/32']);
    expect(superuserRows.every(([r, i]) => i < firstAll && r.slice(4).join(' ') === 'scram-sha-256 clientcert=verify-ca')).toBe(true);
    expect(rows.filter((r) => r[2] === 'all' && r[0] === 'hostssl').every((r) => r.slice(4).join(' ') === 'scram-sha-256')).toBe(true);
  });

  test('the password file escapes : and \\ in its fields', () => {
    expect(renderPgpass([{ user: 'replicator', password: 'a:b\\c' }])).toBe('*:*:*:replicator:a\\:b\\\\c\n');
  });

  test('postgresql.conf gets the include once', () => {
    const once = withInclude('shared_buffers = 128MB')!;
    expect(once).toMatch(/include_if_exists = 'ha-sidecar.conf'\n$/);
    expect(withInclude(once)).toBeNull();
  });

  test('postgresql.auto.conf loses the managed settings only', () => {
    const auto = "# Do not edit\nwork_mem = '8MB'\nprimary_conninfo = 'host=old'\nSynchronous_Standby_Names = '*'\n";
    expect(scrubAutoConf(auto)).toBe("# Do not edit\nwork_mem = '8MB'\n");
    expect(scrubAutoConf("work_mem = '8MB'\n")).toBeNull();
  });
});
