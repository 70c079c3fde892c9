import { describe, expect, it } from '@jest/globals';
import type { ClusterView } from '../../cli/api.js';
import { clusterProblem, renderClusterStatus } from '../../cli/commands/cluster.js';
import { exitCodeFor } from '../../cli/output.js';

const leader = { name: 'n1', apiUrl: 'http://127.0.0.11:8008', term: 2 };
const member = (name: string, patch: Record<string, unknown> = {}) => ({
  name,
  address: '127.0.0.1',
  role: name === 'n1' ? 'leader' : 'standby',
  state: 'ok',
  alive: true,
  streaming: name !== 'n1',
  pgRole: name === 'n1' ? 'primary' : 'standby',
  ...patch,
});
const view = (patch: Partial<ClusterView> = {}): ClusterView => ({
  cluster: 'main',
  term: 2,
  leader,
  paused: false,
  members: [member('n1'), member('n2'), member('n3')],
  consulError: null,
  ...patch,
});
const problem = (v: ClusterView) => {
  const e = clusterProblem(v, 'http://127.0.0.12:8008');
  return e && { code: e.code, message: e.message, exit: exitCodeFor(e.code) };
};

describe('hactl cluster status: exit code of what it shows', () => {
  it('a leader and every standby streaming: healthy (exit 0)', () => {
    expect(problem(view())).toBeNull();
  });

  it('an election-only cluster (no Postgres fields) is healthy with leader and standbys', () => {
    const bare = (name: string) => ({ name, role: name === 'n1' ? 'leader' : 'standby', alive: true });
    expect(problem(view({ members: [bare('n1'), bare('n2')] }))).toBeNull();
  });

  it('no leader: no_leader, exit 3', () => {
    expect(problem(view({ leader: null }))).toEqual({ code: 'no_leader', message: 'no leader is elected', exit: 3 });
  });

  it('offline, starting and not-streaming members: cluster_degraded naming each, exit 4', () => {
    const members = [member('n1'), member('n2', { alive: false, role: 'offline' }), member('n3', { role: 'starting' }), member('n4', { streaming: false })];
    expect(problem(view({ members }))).toEqual({
      code: 'cluster_degraded',
      message: "n2 is offline; n3 is starting; n4's Postgres does not stream",
      exit: 4,
    });
  });

  it('Consul unreachable from the answering node: said so, exit 4, instead of "no members"', () => {
    const v = view({ members: [], consulError: 'Consul member list failed: connect ECONNREFUSED 127.0.0.12:8500' });
    expect(problem(v)).toEqual({
      code: 'cluster_degraded',
      message: 'Consul unreachable from the answering node http://127.0.0.12:8008: Consul member list failed: connect ECONNREFUSED 127.0.0.12:8500',
      exit: 4,
    });
    const lines = renderClusterStatus(v);
    expect(lines.at(-1)).toBe('(Consul unreachable from the answering node: Consul member list failed: connect ECONNREFUSED 127.0.0.12:8500)');
    expect(lines).not.toContain('(no members yet)');
    expect(renderClusterStatus(view({ members: [], leader: null }))).toContain('(no members yet)');
  });
});

describe('hactl cluster status: the header', () => {
  it('names the leader and its term, and marks its row', () => {
    const lines = renderClusterStatus(view());
    expect(lines[0]).toBe('cluster: main   term: 2   leader: n1   paused: no');
    expect(lines.filter((l) => l.startsWith('*'))).toEqual([expect.stringMatching(/^\*\s+n1\s/)]);
  });

  it('nobody holds the lock (the leader killed, a broken term key): leader none, the term seen, no row marked, exit 3', () => {
    // What /cluster answers then: no lock holder, the highest term the node saw, the dead leader offline.
    const v = view({ leader: null, term: 2, members: [member('n1', { alive: false, role: 'offline' }), member('n2'), member('n3')] });
    const lines = renderClusterStatus(v);
    expect(lines[0]).toBe('cluster: main   term: 2   leader: none   paused: no');
    expect(lines.filter((l) => l.startsWith('*'))).toEqual([]);
    expect(lines.find((l) => /\sn1\s/.test(l))).toMatch(/^\s+n1\s+\S+\s+offline\s/);
    expect(problem(v)).toEqual({ code: 'no_leader', message: 'no leader is elected', exit: 3 });
  });
});

describe('hactl cluster status: the certificates (TLS)', () => {
  const tls = (daysLeft: number) => ({ tls: { validTo: 'Jan 10 00:00:00 2027 GMT', daysLeft, expiring: daysLeft <= 30 } });

  it('a CERT column with the days left; one expiring within 30 days is marked and warned about, exit 0', () => {
    const v = view({ members: [member('n1', tls(800)), member('n2', tls(12)), member('n3', tls(31))] });
    const lines = renderClusterStatus(v);
    expect(lines[2]).toMatch(/\s+MANAGER\s+CERT$/);
    expect(lines.find((l) => /^\s+n2\s/.test(l))).toMatch(/\s12d \(expiring\)$/);
    expect(lines.find((l) => /^\s+n3\s/.test(l))).toMatch(/\s31d$/);
    expect(lines.filter((l) => l.startsWith('warning:'))).toEqual(["warning: n2's certificate expires in 12 days (Jan 10 00:00:00 2027 GMT): run `hactl cluster tls rotate`"]);
    expect(problem(v)).toBeNull();
  });

  it('an expired certificate: cluster_degraded, exit 4 (peers refuse it)', () => {
    const v = view({ members: [member('n1', tls(800)), member('n2', tls(-1)), member('n3', tls(800))] });
    expect(renderClusterStatus(v).find((l) => /^\s+n2\s/.test(l))).toMatch(/\sexpired$/);
    expect(problem(v)).toEqual({ code: 'cluster_degraded', message: "n2's certificate expired on Jan 10 00:00:00 2027 GMT", exit: 4 });
  });

  it('no column without TLS', () => {
    expect(renderClusterStatus(view())[2]).toMatch(/\s+MANAGER$/);
  });
});
