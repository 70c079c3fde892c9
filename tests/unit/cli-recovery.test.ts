import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FetchLike } from '../../cli/leader-client.js';
import type { CliContext } from '../../cli/context.js';
import { main } from '../../cli/hactl.js';

/**
 * The recovery commands of hactl (cli/commands/recovery.ts) in-process, against a scripted fake of the
 * sidecar API: which node each call goes to, the progress lines printed from the node's status line, the
 * last line, and the exit code of each failure. The real thing runs in tests/integration/recovery.test.ts.
 */

const url = (n: string) => `http://${n}.test:8008`;
const members = ['n1', 'n2', 'n3'].map((name) => ({ name, apiUrl: url(name), role: name === 'n1' ? 'leader' : 'standby', state: 'fine' }));

interface Call {
  host: string;
  method: string;
  path: string;
  body: unknown;
}
let calls: Call[];
/** Answers of GET /postgres/operation, in turn; the last one repeats. */
let operations: unknown[];
let failoverAnswer: [number, unknown];
let configDir: string;
let root: string;

const fakeFetch: FetchLike = (target, init) => {
  const u = new URL(target);
  const call = { host: u.hostname.split('.')[0]!, method: init.method, path: u.pathname, body: init.body === undefined ? undefined : JSON.parse(init.body) };
  calls.push(call);
  const answer = (status: number, body: unknown) => Promise.resolve({ status, text: () => Promise.resolve(JSON.stringify(body)) });
  const key = `${call.method} ${call.path}`;
  if (key === 'GET /cluster') return answer(200, { cluster: 'test', term: 2, leader: null, members });
  if (key === 'POST /failover') return answer(...failoverAnswer);
  if (key === 'POST /postgres/reload') return answer(200, { node: call.host, role: 'standby', status: 'following leader n1', operation: { action: 'reload', state: 'done' } });
  if (key === 'POST /postgres/reinit' || key === 'POST /postgres/restart') return answer(202, { node: call.host, role: 'standby', status: 'x', operation: null });
  if (key === 'GET /postgres/operation') return answer(200, operations.length > 1 ? operations.shift() : operations[0]);
  return answer(404, { error: 'not_found', message: key });
};

async function hactl(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = { io: { out: (t) => void out.push(t), err: (t) => void err.push(t) }, env: { HACTL_CONFIG_DIR: configDir }, fetch: fakeFetch };
  const code = await main(argv, ctx);
  return { code, out, err };
}

const op = (status: string, state: 'running' | 'done' | 'failed', extra: Record<string, unknown> = {}) => ({
  node: 'n3',
  role: 'standby',
  status,
  operation: { action: 'reinit', state, startedAt: 'x', ...extra },
});
const posts = () => calls.filter((c) => c.method === 'POST').map((c) => `${c.host} ${c.path}`);

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'hactl-recovery-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));
beforeEach(async () => {
  calls = [];
  configDir = await mkdtemp(join(root, 'case-'));
  await mkdir(configDir, { recursive: true, mode: 0o700 });
  await writeFile(join(configDir, 'profiles.json'), JSON.stringify({ current: 'main', profiles: { main: { managers: [url('n1')], token: 't' } } }), { mode: 0o600 });
});

describe('hactl cluster reinit / restart / reload', () => {
  it('reinit goes to the named node and prints its status line as it changes, then how long it took', async () => {
    operations = [
      op('following leader n1', 'running'),
      op('reinit requested by an operator; recloning from n1 (40 %)', 'running'),
      op('reinit requested by an operator; recloning from n1 (40 %)', 'running'),
      op('reinit: cloned from n1, waiting for it to stream', 'running'),
      op('following leader n1', 'done', { tookMs: 4321 }),
    ];
    const run = await hactl('cluster', 'reinit', 'n3');
    expect(run).toEqual({
      code: 0,
      out: [
        '  n3: following leader n1',
        '  n3: reinit requested by an operator; recloning from n1 (40 %)',
        '  n3: reinit: cloned from n1, waiting for it to stream',
        '  n3: following leader n1',
        'reinit of n3 done in 4.3 s: a new clone that streams from the leader',
      ],
      err: [],
    });
    expect(posts()).toEqual(['n3 /postgres/reinit']);
  }, 20_000);

  it('a failed operation exits 1 with the sidecar code and reason', async () => {
    operations = [op('recloning', 'failed', { code: 'basebackup_failed', error: 'pg_basebackup from n1 failed (exit 1)' })];
    const run = await hactl('cluster', 'restart', 'n2');
    expect(run.code).toBe(1);
    expect(run.err).toEqual(['hactl: basebackup_failed: restart of n2 failed: pg_basebackup from n1 failed (exit 1)']);
  });

  it('reload answers at once, naming the role', async () => {
    const run = await hactl('cluster', 'reload', 'n2');
    expect(run).toEqual({ code: 0, out: ['postgres on n2 reloaded (standby)'], err: [] });
    expect(posts()).toEqual(['n2 /postgres/reload']);
  });

  it('an unknown or empty node name is bad_value (exit 2), and nothing is sent', async () => {
    for (const args of [['reinit', 'n9'], ['restart', ''], ['reload', 'n9']]) {
      const run = await hactl('cluster', ...args);
      expect([args, run.code, run.out]).toEqual([args, 2, []]);
      expect(run.err[0]).toMatch(/^hactl: bad_value: (no member is named "n9" \(members: n1, n2, n3\)|a node name is empty)$/);
    }
    expect(posts()).toEqual([]);
  });
});

describe('hactl cluster failover', () => {
  it('sends {to, force} to any node and prints the new leader and the bytes given up', async () => {
    failoverAnswer = [200, { failedOver: true, to: 'n3', term: 5, previous: 'n2', lostBytes: 3356216 }];
    const run = await hactl('cluster', 'failover', '--to', 'n3', '--force');
    expect(run).toEqual({ code: 0, out: ['failover done: n3 leads (term 5)', "forced: 3356216 bytes of WAL past n3's position were given up"], err: [] });
    expect(calls.find((c) => c.path === '/failover')?.body).toEqual({ to: 'n3', force: true });
  });

  it("a refusal is the sidecar's one line, exit 1", async () => {
    failoverAnswer = [409, { error: 'candidate_behind', message: 'n3 is 100 bytes behind the last known primary position of n2', behindBytes: 100 }];
    const run = await hactl('cluster', 'failover', '--to', 'n3');
    expect(run).toEqual({ code: 1, out: [], err: ['hactl: candidate_behind: n3 is 100 bytes behind the last known primary position of n2'] });
    expect(calls.find((c) => c.path === '/failover')?.body).toEqual({ to: 'n3', force: false });
  });
});
