import { z } from 'zod';
import type { MemberEntry } from '../consul/store.js';
import { SidecarError } from '../errors.js';

/** `GET /dsn` query: which node the URI points at. `all=true` lists every member and lets libpq choose. */
export const dsnQuery = z
  .object({
    role: z.enum(['leader', 'standby']).optional(),
    member: z.string().min(1).optional(),
    all: z.enum(['true', 'false']).transform((v) => v === 'true').optional(),
  })
  .strict()
  .refine((q) => !(q.all && q.member !== undefined), 'give member or all, not both');
export type DsnChoice = z.infer<typeof dsnQuery>;

/** The application login every node's Postgres has (see `postgres.appUser` and friends). */
export interface AppLogin {
  user: string;
  password: string;
  database: string;
  port: number;
  /** With TLS on: the CA file, as a path on this node (where the manager runs); the URI then asks for verify-full. */
  sslrootcert?: string;
}

const hostPart = (address: string, port: number) => `${address.includes(':') ? `[${address}]` : address}:${port}`;

/**
 * A libpq URI of the application database: on the leader (default), the first streaming standby by name
 * (`role=standby`), the member named, or (`all`) every member with `target_session_attrs`, so libpq itself
 * finds the writable primary (or a standby) at each connect, also after a failover. With TLS, `sslmode=verify-full`
 * (each member's certificate names its address, which is the URI's host) and `sslrootcert`.
 */
export function chooseDsn(members: MemberEntry[], leader: string | undefined, choice: DsnChoice, login: AppLogin) {
  const alive = members.filter((m) => m.alive);
  const roleOf = (name: string) => (name === leader ? 'leader' : 'standby');
  const ssl = login.sslrootcert !== undefined ? { sslmode: 'verify-full', sslrootcert: login.sslrootcert } : {};
  const uri = (hosts: string[], params: Record<string, string> = {}) => {
    const query = Object.entries({ ...params, ...ssl }).map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
    return `postgresql://${encodeURIComponent(login.user)}:${encodeURIComponent(login.password)}@${hosts.join(',')}/${encodeURIComponent(login.database)}${query.length ? `?${query.join('&')}` : ''}`;
  };
  const base = { port: login.port, user: login.user, database: login.database, ...ssl };
  if (choice.all) {
    // Members that are down now are listed too: they may be back (and lead) when the application reconnects.
    const names = members.map((m) => m.record.name).sort();
    const hosts = names.map((n) => hostPart(members.find((m) => m.record.name === n)!.record.address, login.port));
    if (hosts.length === 0) throw new SidecarError('no_members', 'the cluster has no members yet', 503);
    const attrs = choice.role === 'standby' ? 'standby' : 'read-write';
    return { dsn: uri(hosts, { target_session_attrs: attrs }), members: names, role: choice.role ?? 'leader', ...base };
  }
  let target: MemberEntry | undefined;
  if (choice.member !== undefined) {
    target = alive.find((m) => m.record.name === choice.member);
    if (!target) throw new SidecarError('unknown_node', `no running member named ${choice.member}`, 404);
    if (choice.role && roleOf(choice.member) !== choice.role) throw new SidecarError('wrong_role', `${choice.member} is the ${roleOf(choice.member)}, not a ${choice.role}`, 409);
  } else if ((choice.role ?? 'leader') === 'leader') {
    target = alive.find((m) => m.record.name === leader);
    if (!target) throw new SidecarError('no_leader', 'no leader is elected right now', 503);
  } else {
    target = alive.filter((m) => m.record.name !== leader && m.record.streaming === true).sort((a, b) => a.record.name.localeCompare(b.record.name))[0];
    if (!target) throw new SidecarError('no_standby', 'no standby streams from the leader right now', 503);
  }
  const { name, address } = target.record;
  return { dsn: uri([hostPart(address, login.port)]), member: name, role: roleOf(name), host: address, ...base };
}
