import type { Logger } from '../../sidecar/log.js';
import { deriveSecret } from '../../sidecar/shared/secrets.js';
import { postgresNode, postgresSettings, type PostgresSection, type PostgresSettings } from '../../sidecar/postgres/settings.js';

const log = {} as Logger;
const settings: PostgresSettings = {
  nodeName: 'Node-2',
  binDir: '/usr/lib/postgresql/15/bin',
  dataDir: '/var/lib/ha/postgres',
  socketDir: '/var/lib/ha/pgsocket',
  host: '127.0.5.12',
  port: 15432,
  superuserPassword: 'superuser-secret',
  replicationUser: 'replicator',
  replicationPassword: 'replication-secret',
  appDatabase: 'manager',
  appUser: 'manager',
  appPassword: 'app-secret-1',
  memberAddresses: ['127.0.5.11', '127.0.5.12'],
};

describe('postgres settings: validated once, files laid out next to the data directory', () => {
  test('the files live beside the data directory, never inside it; the name is the pgName', () => {
    const node = postgresNode(settings, log);
    expect(node.name).toBe('node_2');
    expect([node.logFile, node.passFile, node.stateFile, node.previousDataDir]).toEqual([
      '/var/lib/ha/postgres.log',
      '/var/lib/ha/postgres.pgpass',
      '/var/lib/ha/postgres.state.json',
      '/var/lib/ha/postgres.previous',
    ]);
  });

  test('bad settings are one invalid_config error naming every bad field', () => {
    const bad = { ...settings, dataDir: 'relative/', host: 'not-an-ip', replicationUser: 'Bad Name', superuserPassword: 'short' };
    let error: unknown;
    try {
      postgresNode(bad, log);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'invalid_config', status: 400 });
    const message = (error as Error).message;
    for (const field of ['dataDir', 'host', 'replicationUser', 'superuserPassword']) expect(message).toContain(`${field}:`);
  });

  test('unknown settings are refused too', () => {
    expect(() => postgresNode({ ...settings, sharedBuffers: '1GB' } as PostgresSettings, log)).toThrow(/invalid postgres settings: \(settings\): Unrecognized key/);
  });
});

describe('postgres settings from the config: the postgres section and the node-wide values', () => {
  const section: PostgresSection = { enabled: true, binDir: '/pg/bin', port: 15433, appDatabase: 'app', appUser: 'app', maxLagOnFailover: 0 };
  const node = { nodeName: 'n2', address: '127.0.5.12', clusterAddresses: ['127.0.5.11', '127.0.5.12'], clusterToken: 'unit-test-token-0123456789', dataDir: '/var/lib/ha' };

  test('the data and the socket live under the data directory; the passwords derive from the token, each for its purpose', () => {
    const s = postgresSettings(section, node);
    expect(s).toMatchObject({ nodeName: 'n2', binDir: '/pg/bin', dataDir: '/var/lib/ha/postgres', socketDir: '/var/lib/ha/pgsocket', host: '127.0.5.12', port: 15433 });
    expect(s.memberAddresses).toEqual(node.clusterAddresses);
    expect(s.superuserPassword).toBe(deriveSecret(node.clusterToken, 'postgres-superuser'));
    expect(s.replicationPassword).toBe(deriveSecret(node.clusterToken, 'replication'));
    expect(s.appPassword).toBe(deriveSecret(node.clusterToken, 'app'));
    expect(() => postgresNode(s, log)).not.toThrow();
  });

  test("with the config's tls section, Postgres gets its own copies beside (not in) the data directory", () => {
    const tls = { certFile: '/etc/ha/n2.crt', keyFile: '/etc/ha/n2.key', caFile: '/etc/ha/ca.crt', verifyClient: true };
    const s = postgresSettings(section, { ...node, tls });
    expect(s.tls).toEqual({ certFile: '/etc/ha/n2.crt', keyFile: '/etc/ha/n2.key', caFile: '/etc/ha/ca.crt' });
    expect(postgresNode(s, log).tls).toEqual({ certFile: '/var/lib/ha/postgres.tls/server.crt', keyFile: '/var/lib/ha/postgres.tls/server.key', caFile: '/var/lib/ha/postgres.tls/ca.crt' });
    expect(postgresSettings(section, node).tls).toBeUndefined();
    expect(postgresNode(postgresSettings(section, node), log).tls).toBeNull();
  });

  test('an application password given in the section wins over the derived one', () => {
    expect(postgresSettings({ ...section, appPassword: 'given-password' }, node).appPassword).toBe('given-password');
  });
});
