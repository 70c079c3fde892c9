import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SidecarError } from '../../sidecar/errors.js';
import type { FetchLike, ProfileHandle } from '../../cli/leader-client.js';
import { callAny, callLeader } from '../../cli/leader-client.js';

/**
 * The leader search over real sockets and Node's own fetch: a port nobody listens on (connection
 * refused), a server that accepts and never answers (timeout), a standby answering 409 with the leader's
 * URL, and the leader.
 */

const servers: http.Server[] = [];
const seen: { server: string; method: string; url: string; auth?: string; body: string }[] = [];

async function listen(name: string, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<string> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push({ server: name, method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
      handler(req, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const json = (res: http.ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

let refused: string;
let hanging: string;
let standby: string;
let leader: string;

beforeAll(async () => {
  // A port that was just free: bind, note it, close. Nothing listens there during the test.
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  refused = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));

  hanging = await listen('hanging', () => {
    /* never answers */
  });
  leader = await listen('leader', (req, res) => json(res, 200, { message: `leader did ${req.method} ${req.url}` }));
  standby = await listen('standby', (req, res) =>
    req.method === 'GET'
      ? json(res, 200, { from: 'standby' })
      : json(res, 409, { error: 'not_cluster_leader', message: 'standby', leader: 'n1', leaderUrl: leader }),
  );
});

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

const realFetch: FetchLike = (url, init) => fetch(url, init);

describe('callLeader over HTTP', () => {
  it('passes a refused port, a silent server and a standby, follows the leaderUrl, and saves the leader', async () => {
    const remembered: string[] = [];
    const handle: ProfileHandle = {
      profile: { managers: [hanging, standby, refused], lastLeader: refused, token: 'tok' },
      remember: async (url) => void remembered.push(url),
    };
    seen.length = 0;
    const answer = await callLeader(handle, { method: 'POST', path: '/switchover', body: { to: 'n2' } }, {
      fetch: realFetch,
      timeoutMs: 300,
    });
    expect(answer.manager).toBe(leader);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ message: 'leader did POST /switchover' });
    expect(answer.attempts.map((a) => [a.manager, a.outcome, a.detail])).toEqual([
      [refused, 'unreachable', 'connection refused'],
      [hanging, 'timeout', 'timed out after 0.3 s'],
      [standby, 'not_leader', 'not the leader (leader is n1)'],
      [leader, 'answered', 'HTTP 200'],
    ]);
    expect(remembered).toEqual([leader]);
    expect(handle.profile.lastLeader).toBe(leader);
    const atLeader = seen.find((s) => s.server === 'leader');
    expect(atLeader).toEqual({ server: 'leader', method: 'POST', url: '/switchover', auth: 'Bearer tok', body: '{"to":"n2"}' });
  });

  it('goes straight to the saved leader the next time', async () => {
    seen.length = 0;
    const handle: ProfileHandle = { profile: { managers: [hanging, standby, refused], lastLeader: leader } };
    const answer = await callLeader(handle, { method: 'POST', path: '/pause' }, { fetch: realFetch, timeoutMs: 300 });
    expect(answer.manager).toBe(leader);
    expect(seen.map((s) => s.server)).toEqual(['leader']);
  });

  it('no_reachable_leader when only dead and silent managers are left', async () => {
    const handle: ProfileHandle = { profile: { managers: [refused, hanging] } };
    await expect(
      callLeader(handle, { method: 'POST', path: '/pause' }, { fetch: realFetch, timeoutMs: 200 }),
    ).rejects.toMatchObject({
      code: 'no_reachable_leader',
      message: `no manager answered as the cluster leader (${refused}: connection refused; ${hanging}: timed out after 0.2 s)`,
    });
  });
});

describe('callAny over HTTP', () => {
  it('takes the first manager that answers, a standby included', async () => {
    const answer = await callAny({ profile: { managers: [refused, standby, leader] } }, { method: 'GET', path: '/cluster' }, {
      fetch: realFetch,
      timeoutMs: 300,
    });
    expect(answer.manager).toBe(standby);
    expect(answer.body).toEqual({ from: 'standby' });
  });

  it('no_reachable_manager when nobody answers', async () => {
    const error = await callAny({ profile: { managers: [refused] } }, { method: 'GET', path: '/cluster' }, {
      fetch: realFetch,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SidecarError);
    expect((error as SidecarError).code).toBe('no_reachable_manager');
  });
});
