import { chooseDsn, dsnQuery } from '../../sidecar/api/dsn.js';
import type { MemberEntry } from '../../sidecar/consul/store.js';
import { rejection } from '../harness/assertions.js';

const member = (name: string, address: string, alive = true, streaming = true): MemberEntry => ({
  alive,
  record: { name, address, apiUrl: `http://${address}:8008`, role: 'standby', state: '', termSeen: 1, nofailover: false, updatedAt: '', streaming },
});
const members = [member('n3', '10.0.0.3'), member('n1', '10.0.0.1', true, false), member('n2', '10.0.0.2', false), member('n4', 'fd00::4')];
const login = { user: 'manager', password: 'p@ss/w:rd', database: 'app db', port: 15432 };
const choose = (query: Record<string, string>) => chooseDsn(members, 'n1', dsnQuery.parse(query), login);
const refused = (query: Record<string, string>) => rejection(Promise.resolve().then(() => choose(query)));

describe('chooseDsn: the libpq URI GET /dsn answers', () => {
  test('the leader by default, with user, password and database percent-encoded', () => {
    expect(choose({})).toEqual({
      dsn: 'postgresql://manager:p%40ss%2Fw%3Ard@10.0.0.1:15432/app%20db',
      member: 'n1',
      role: 'leader',
      host: '10.0.0.1',
      port: 15432,
      user: 'manager',
      database: 'app db',
    });
  });

  test('role=standby: the first live streaming standby by name; an IPv6 address is bracketed', () => {
    expect(choose({ role: 'standby' })).toMatchObject({ member: 'n3', role: 'standby' });
    expect(choose({ member: 'n4' }).dsn).toBe('postgresql://manager:p%40ss%2Fw%3Ard@[fd00::4]:15432/app%20db');
  });

  test('all=true: every member, down ones too, sorted, with target_session_attrs', () => {
    expect(choose({ all: 'true' })).toMatchObject({
      dsn: 'postgresql://manager:p%40ss%2Fw%3Ard@10.0.0.1:15432,10.0.0.2:15432,10.0.0.3:15432,[fd00::4]:15432/app%20db?target_session_attrs=read-write',
      members: ['n1', 'n2', 'n3', 'n4'],
    });
    expect(choose({ all: 'true', role: 'standby' }).dsn).toMatch(/\?target_session_attrs=standby$/);
  });

  test('with TLS: verify-full (the host is the member, whose certificate names its address) and the CA', () => {
    const tls = { ...login, sslrootcert: '/etc/ha sidecar/ca.crt' };
    expect(chooseDsn(members, 'n1', dsnQuery.parse({}), tls)).toMatchObject({
      dsn: 'postgresql://manager:p%40ss%2Fw%3Ard@10.0.0.1:15432/app%20db?sslmode=verify-full&sslrootcert=%2Fetc%2Fha%20sidecar%2Fca.crt',
      sslmode: 'verify-full',
      sslrootcert: '/etc/ha sidecar/ca.crt',
    });
    expect(chooseDsn(members, 'n1', dsnQuery.parse({ all: 'true' }), tls).dsn).toMatch(/\?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=%2Fetc%2Fha%20sidecar%2Fca.crt$/);
    expect(choose({})).not.toHaveProperty('sslmode');
  });

  test('refusals name the problem with a stable code', async () => {
    expect(await refused({ member: 'n2' })).toMatchObject({ code: 'unknown_node', status: 404, message: 'no running member named n2' });
    expect(await refused({ member: 'n1', role: 'standby' })).toMatchObject({ code: 'wrong_role', status: 409 });
    const noLeader = await rejection(Promise.resolve().then(() => chooseDsn(members, undefined, {}, login)));
    expect([noLeader.code, noLeader.status]).toEqual(['no_leader', 503]);
    const noStandby = await rejection(Promise.resolve().then(() => chooseDsn([members[1]!], 'n1', { role: 'standby' }, login)));
    expect([noStandby.code, noStandby.status]).toEqual(['no_standby', 503]);
  });

  test('the query schema refuses unknown parameters, bad roles and member with all', () => {
    for (const q of [{ role: 'primary' }, { host: 'x' }, { all: 'yes' }, { all: 'true', member: 'n1' }]) expect(dsnQuery.safeParse(q).success).toBe(false);
  });
});
