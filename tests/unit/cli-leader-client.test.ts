// Just over 400 lines: one file per module (cli/leader-client.ts); the leader search's cases share one scripted fetch.
import { describe, expect, it } from '@jest/globals';
import { SidecarError } from '../../sidecar/errors.js';
import type { ApiRequest, FetchInit, FetchLike, FetchResponse, ProfileHandle } from '../../cli/leader-client.js';
import {
  DEFAULT_TIMEOUT_MS,
  callAny,
  callLeader,
  candidateOrder,
  expectOk,
  notLeaderAnswer,
  searchAny,
  searchLeader,
  sendOnce,
} from '../../cli/leader-client.js';
import { exitCodeFor } from '../../cli/output.js';
import { rejection } from '../harness/assertions.js';

/**
 * The leader search over a scripted fetch: each manager either answers, refuses the connection, or never
 * answers (the per-manager time limit, kept short here, is what moves the search on).
 */

const A = 'http://10.0.0.1:8008';
const B = 'http://10.0.0.2:8008';
const C = 'http://10.0.0.3:8008';
const D = 'http://10.0.0.4:8008';

type Behaviour =
  | { answer: number; body?: unknown; raw?: string }
  | 'refused'
  | 'hang'
  | 'stall-body'
  | { tls: string }
  | { reset: true };

interface Call {
  url: string;
  init: FetchInit;
}

function scriptedFetch(script: Record<string, Behaviour>): { fetch: FetchLike; calls: Call[]; asked: () => string[] } {
  const calls: Call[] = [];
  const fetch: FetchLike = (url, init) => {
    calls.push({ url, init });
    const base = new URL(url).origin;
    const behaviour = script[base] ?? 'refused';
    const untilAborted = () =>
      new Promise<never>((_resolve, reject) => {
        init.signal.addEventListener('abort', () => reject(init.signal.reason), { once: true });
      });
    if (behaviour === 'refused') {
      const cause = Object.assign(new Error(`connect ECONNREFUSED ${base}`), { code: 'ECONNREFUSED' });
      return Promise.reject(new TypeError('fetch failed', { cause }));
    }
    if (behaviour === 'hang') return untilAborted();
    if (behaviour === 'stall-body') {
      const response: FetchResponse = { status: 200, text: untilAborted };
      return Promise.resolve(response);
    }
    if ('tls' in behaviour) {
      const cause = Object.assign(new Error('certificate verification failed'), { code: behaviour.tls });
      return Promise.reject(new TypeError('fetch failed', { cause }));
    }
    if ('reset' in behaviour) {
      const cause = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
      return Promise.reject(new TypeError('fetch failed', { cause }));
    }
    const text = behaviour.raw ?? (behaviour.body === undefined ? '' : JSON.stringify(behaviour.body));
    return Promise.resolve({ status: behaviour.answer, text: () => Promise.resolve(text) });
  };
  return { fetch, calls, asked: () => calls.map((c) => new URL(c.url).origin) };
}

const notLeader = (leader?: string, leaderUrl?: string): Behaviour => ({
  answer: 409,
  body: { error: 'not_cluster_leader', message: 'this node is a standby', leader, leaderUrl },
});
const ok = (body: unknown = { ok: true }): Behaviour => ({ answer: 200, body });

const SWITCHOVER: ApiRequest = { method: 'POST', path: '/switchover', body: { to: 'n2' } };
const STATUS: ApiRequest = { method: 'GET', path: '/cluster' };
/** Short enough to keep the suite fast, long enough never to fire for an answering fake. */
const T = 50;

describe('candidateOrder', () => {
  it('puts the last leader first and asks every manager once, in profile order', () => {
    expect(candidateOrder({ managers: [A, B, C], lastLeader: C })).toEqual([C, A, B]);
    expect(candidateOrder({ managers: [A, B, C] })).toEqual([A, B, C]);
    expect(candidateOrder({ managers: [A, `${B}/`, 'http://10.0.0.2:8008'], lastLeader: `${B}/` })).toEqual([B, A]);
  });

  it('keeps a last leader that is not among the managers (a followed leaderUrl)', () => {
    expect(candidateOrder({ managers: [A, B], lastLeader: D })).toEqual([D, A, B]);
  });

  it('is empty for an empty profile', () => {
    expect(candidateOrder({ managers: [] })).toEqual([]);
  });
});

describe('searchLeader', () => {
  it('asks the last known leader first and stops at its answer', async () => {
    const f = scriptedFetch({ [A]: notLeader('n2', B), [B]: ok(), [C]: notLeader('n2', B) });
    const answer = await searchLeader({ managers: [A, B, C], lastLeader: B }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([B]);
    expect(answer).toMatchObject({ manager: B, status: 200, body: { ok: true } });
    expect(answer.attempts).toEqual([{ manager: B, outcome: 'answered', detail: 'HTTP 200' }]);
  });

  it('without a last leader, asks the managers in profile order', async () => {
    const f = scriptedFetch({ [A]: 'refused', [B]: ok(), [C]: ok() });
    const answer = await searchLeader({ managers: [A, B, C] }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([A, B]);
    expect(answer.manager).toBe(B);
  });

  it('moves on when the connection is refused', async () => {
    const f = scriptedFetch({ [A]: 'refused', [B]: 'refused', [C]: ok() });
    const answer = await searchLeader({ managers: [A, B, C], lastLeader: A }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([A, B, C]);
    expect(answer.manager).toBe(C);
    expect(answer.attempts.map((a) => [a.outcome, a.detail])).toEqual([
      ['unreachable', 'connection refused'],
      ['unreachable', 'connection refused'],
      ['answered', 'HTTP 200'],
    ]);
  });

  it('moves on when a connection is reset', async () => {
    const f = scriptedFetch({ [A]: { reset: true }, [B]: ok() });
    const answer = await searchLeader({ managers: [A, B] }, SWITCHOVER, { fetch: f.fetch });
    expect(answer.attempts[0]).toEqual({ manager: A, outcome: 'unreachable', detail: 'connection reset' });
  });

  it('moves on when a manager does not answer within the time limit', async () => {
    const f = scriptedFetch({ [A]: 'hang', [B]: ok() });
    const answer = await searchLeader({ managers: [A, B], lastLeader: A }, SWITCHOVER, { fetch: f.fetch, timeoutMs: T });
    expect(answer.manager).toBe(B);
    expect(answer.attempts[0]).toEqual({ manager: A, outcome: 'timeout', detail: 'timed out after 0.05 s' });
  });

  it('moves on when a manager sends headers but stalls in the body', async () => {
    const f = scriptedFetch({ [A]: 'stall-body', [B]: ok() });
    const answer = await searchLeader({ managers: [A, B] }, SWITCHOVER, { fetch: f.fetch, timeoutMs: T });
    expect(answer.manager).toBe(B);
    expect(answer.attempts[0]?.outcome).toBe('timeout');
  });

  it('a per-request time limit overrides the client default', async () => {
    const f = scriptedFetch({ [A]: 'hang', [B]: ok() });
    const answer = await searchLeader({ managers: [A, B] }, { ...SWITCHOVER, timeoutMs: 20 }, {
      fetch: f.fetch,
      timeoutMs: 60_000,
    });
    expect(answer.attempts[0]?.detail).toBe('timed out after 0.02 s');
  });

  it('follows the leaderUrl of a 409 not_cluster_leader next, before the rest of the managers', async () => {
    const f = scriptedFetch({ [A]: notLeader('n3', C), [B]: ok(), [C]: ok({ leader: 'n3' }) });
    const answer = await searchLeader({ managers: [A, B, C], lastLeader: A }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([A, C]);
    expect(answer.manager).toBe(C);
    expect(answer.attempts[0]).toEqual({ manager: A, outcome: 'not_leader', detail: 'not the leader (leader is n3)' });
  });

  it('follows a leaderUrl that is not in the profile, normalized', async () => {
    const f = scriptedFetch({ [A]: notLeader('n4', '10.0.0.4'), [D]: ok() });
    const answer = await searchLeader({ managers: [A, B] }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([A, D]);
    expect(answer.manager).toBe(D);
  });

  it('does not ask again a leaderUrl already asked (a stale leader), and goes on with the rest', async () => {
    // A was the leader and is down; B still names it (its session has not expired yet); C is the new one.
    const f = scriptedFetch({ [A]: 'refused', [B]: notLeader('n1', A), [C]: ok() });
    const answer = await searchLeader({ managers: [A, B, C], lastLeader: A }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([A, B, C]);
    expect(answer.manager).toBe(C);
  });

  it('a 409 without a leaderUrl, or with a malformed one, just moves on in order', async () => {
    const f = scriptedFetch({ [A]: notLeader(), [B]: notLeader('n9', 'ftp://nowhere'), [C]: ok() });
    const answer = await searchLeader({ managers: [A, B, C] }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([A, B, C]);
    expect(answer.attempts.map((a) => a.detail)).toEqual([
      'not the leader (no leader named)',
      'not the leader (leader is n9)',
      'HTTP 200',
    ]);
  });

  it('when every manager is down: no_reachable_leader (exit 3) naming each manager and why', async () => {
    const f = scriptedFetch({ [A]: 'refused', [B]: 'hang', [C]: notLeader() });
    const error = await rejection(
      searchLeader({ managers: [A, B, C], lastLeader: B }, SWITCHOVER, { fetch: f.fetch, timeoutMs: T }),
    );
    expect(error.code).toBe('no_reachable_leader');
    expect(exitCodeFor(error.code)).toBe(3);
    expect(f.asked()).toEqual([B, A, C]);
    expect(error.message).toBe(
      `no manager answered as the cluster leader (${B}: timed out after 0.05 s; ${A}: connection refused; ` +
        `${C}: not the leader (no leader named))`,
    );
    expect((error.details.attempts as unknown[]).length).toBe(3);
  });

  it('an empty profile is no_reachable_leader too, saying why', async () => {
    const f = scriptedFetch({});
    const error = await rejection(searchLeader({ managers: [] }, SWITCHOVER, { fetch: f.fetch }));
    expect(error.code).toBe('no_reachable_leader');
    expect(error.message).toContain('the profile lists no managers');
    expect(f.calls).toHaveLength(0);
  });

  it.each([
    [400, { error: 'bad_request', message: 'to must name a standby' }],
    [401, { error: 'unauthorized', message: 'bad token' }],
    [409, { error: 'switchover_in_progress', message: 'one is running' }],
    [500, { error: 'internal', message: 'boom' }],
    [503, { error: 'not_ready', message: 'starting' }],
  ])('an error answer %i other than not_cluster_leader is the answer, not a reason to move on', async (status, body) => {
    const f = scriptedFetch({ [A]: { answer: status, body }, [B]: ok() });
    const answer = await searchLeader({ managers: [A, B] }, SWITCHOVER, { fetch: f.fetch });
    expect(f.asked()).toEqual([A]);
    expect(answer).toMatchObject({ manager: A, status, body });
  });

  it('sends the method, the JSON body, the token and the path joined to the base URL', async () => {
    const f = scriptedFetch({ 'http://h:8008': ok() });
    await searchLeader({ managers: ['http://h:8008/'] }, SWITCHOVER, { fetch: f.fetch, token: 's3cret' });
    expect(f.calls).toHaveLength(1);
    const call = f.calls[0] as Call;
    expect(call.url).toBe('http://h:8008/switchover');
    expect(call.init.method).toBe('POST');
    expect(call.init.body).toBe('{"to":"n2"}');
    expect(call.init.headers).toEqual({
      accept: 'application/json',
      'content-type': 'application/json',
      authorization: 'Bearer s3cret',
    });
  });

  it('sends no body, content type or authorization when there is none', async () => {
    const f = scriptedFetch({ [A]: ok() });
    await searchLeader({ managers: [A] }, STATUS, { fetch: f.fetch });
    const call = f.calls[0] as Call;
    expect(call.init.body).toBeUndefined();
    expect(call.init.headers).toEqual({ accept: 'application/json' });
  });
});

describe('sendOnce', () => {
  it('parses JSON, keeps other text, and reads an empty body as null', async () => {
    const f = scriptedFetch({ [A]: { answer: 200, raw: 'plain text' }, [B]: { answer: 204, raw: '' } });
    expect(await sendOnce(A, STATUS, { fetch: f.fetch })).toEqual({ kind: 'answer', status: 200, body: 'plain text' });
    expect(await sendOnce(B, STATUS, { fetch: f.fetch })).toEqual({ kind: 'answer', status: 204, body: null });
  });

  it('defaults to a 3 s time limit', () => {
    expect(DEFAULT_TIMEOUT_MS).toBe(3000);
  });

  it('describes a network error without an errno code by its deepest cause', async () => {
    const fetch: FetchLike = () => Promise.reject(new TypeError('fetch failed', { cause: new Error('bad port') }));
    expect(await sendOnce(A, STATUS, { fetch })).toEqual({ kind: 'unreachable', detail: 'bad port' });
  });
});

describe('notLeaderAnswer', () => {
  it('recognizes only a 409 whose error is not_cluster_leader', () => {
    expect(notLeaderAnswer(409, { error: 'not_cluster_leader', leader: 'n1', leaderUrl: 'http://h:8008/' })).toEqual({
      leader: 'n1',
      leaderUrl: 'http://h:8008',
    });
    expect(notLeaderAnswer(409, { error: 'other' })).toBeNull();
    expect(notLeaderAnswer(503, { error: 'not_cluster_leader' })).toBeNull();
    expect(notLeaderAnswer(409, 'not_cluster_leader')).toBeNull();
  });
});

describe('callLeader', () => {
  function handle(lastLeader?: string): { handle: ProfileHandle; remembered: string[] } {
    const remembered: string[] = [];
    const h: ProfileHandle = {
      profile: lastLeader === undefined ? { managers: [A, B, C] } : { managers: [A, B, C], lastLeader },
      remember: async (url) => {
        remembered.push(url);
      },
    };
    return { handle: h, remembered };
  }

  it('saves the leader it found when it changed, in the handle and through remember', async () => {
    const f = scriptedFetch({ [A]: 'refused', [B]: notLeader('n3', C), [C]: ok() });
    const { handle: h, remembered } = handle(A);
    const answer = await callLeader(h, SWITCHOVER, { fetch: f.fetch });
    expect(answer.manager).toBe(C);
    expect(remembered).toEqual([C]);
    expect(h.profile.lastLeader).toBe(C);
  });

  it('does not save when the last leader answered again', async () => {
    const f = scriptedFetch({ [B]: ok() });
    const { handle: h, remembered } = handle(B);
    await callLeader(h, SWITCHOVER, { fetch: f.fetch });
    expect(remembered).toEqual([]);
  });

  it('does not save a manager that answered with an error', async () => {
    const f = scriptedFetch({ [A]: { answer: 401, body: { error: 'unauthorized', message: 'no token' } } });
    const { handle: h, remembered } = handle();
    const answer = await callLeader(h, SWITCHOVER, { fetch: f.fetch });
    expect(answer.status).toBe(401);
    expect(remembered).toEqual([]);
  });

  it("sends the profile's token", async () => {
    const f = scriptedFetch({ [A]: ok() });
    await callLeader({ profile: { managers: [A], token: 'tok' } }, SWITCHOVER, { fetch: f.fetch });
    expect(f.calls[0]?.init.headers.authorization).toBe('Bearer tok');
  });

  it('does not save anything when no leader answers', async () => {
    const f = scriptedFetch({});
    const { handle: h, remembered } = handle(A);
    const error = await rejection(callLeader(h, SWITCHOVER, { fetch: f.fetch }));
    expect(error.code).toBe('no_reachable_leader');
    expect(remembered).toEqual([]);
    expect(h.profile.lastLeader).toBe(A);
  });
});

describe('searchAny / callAny (read-only calls)', () => {
  it('prefers the last leader', async () => {
    const f = scriptedFetch({ [A]: ok({ from: 'a' }), [B]: ok({ from: 'b' }) });
    const answer = await searchAny({ managers: [A, B], lastLeader: B }, STATUS, { fetch: f.fetch });
    expect(answer.body).toEqual({ from: 'b' });
    expect(f.asked()).toEqual([B]);
  });

  it('accepts a standby answer: a 409 is an answer here, not a reason to move on', async () => {
    const f = scriptedFetch({ [A]: 'refused', [B]: notLeader('n3', C), [C]: ok() });
    const answer = await searchAny({ managers: [A, B, C] }, STATUS, { fetch: f.fetch });
    expect(answer.manager).toBe(B);
    expect(answer.status).toBe(409);
  });

  it('passes over unreachable, slow and 5xx managers', async () => {
    const f = scriptedFetch({ [A]: 'hang', [B]: { answer: 503, body: { error: 'consul_unavailable', message: 'x' } }, [C]: ok() });
    const answer = await searchAny({ managers: [A, B, C] }, STATUS, { fetch: f.fetch, timeoutMs: T });
    expect(answer.manager).toBe(C);
    expect(answer.attempts.map((a) => a.outcome)).toEqual(['timeout', 'server_error', 'answered']);
  });

  it('returns the first 5xx answer when every manager that answered failed', async () => {
    const f = scriptedFetch({
      [A]: { answer: 503, body: { error: 'consul_unavailable', message: 'no consul' } },
      [B]: 'refused',
      [C]: { answer: 500, body: { error: 'internal', message: 'boom' } },
    });
    const answer = await searchAny({ managers: [A, B, C] }, STATUS, { fetch: f.fetch });
    expect(answer).toMatchObject({ manager: A, status: 503 });
    expect(answer.attempts).toHaveLength(3);
    const error = (() => {
      try {
        expectOk(answer);
      } catch (e) {
        return e as SidecarError;
      }
      throw new Error('expected expectOk to throw');
    })();
    expect([error.code, error.message, exitCodeFor(error.code)]).toEqual(['consul_unavailable', 'no consul', 1]);
  });

  it('no_reachable_manager (exit 3) when nobody answers', async () => {
    const f = scriptedFetch({ [A]: 'refused', [B]: 'hang' });
    const error = await rejection(searchAny({ managers: [A, B] }, STATUS, { fetch: f.fetch, timeoutMs: T }));
    expect(error.code).toBe('no_reachable_manager');
    expect(exitCodeFor(error.code)).toBe(3);
    expect(error.message).toBe(`no manager answered (${A}: connection refused; ${B}: timed out after 0.05 s)`);
  });

  it('server_certificate_rejected (exit 1) when no manager answers and hactl refused a certificate, saying why', async () => {
    const f = scriptedFetch({ [A]: { tls: 'CERT_HAS_EXPIRED' }, [B]: 'refused', [C]: { tls: 'SELF_SIGNED_CERT_IN_CHAIN' } });
    const any = await rejection(searchAny({ managers: [A, B, C] }, STATUS, { fetch: f.fetch, timeoutMs: T }));
    expect([any.code, exitCodeFor(any.code)]).toEqual(['server_certificate_rejected', 1]);
    expect(any.message).toContain(`${A}: refused the server: its certificate has expired (CERT_HAS_EXPIRED); ${B}: connection refused; ${C}: refused the server: its certificate is not of the profile's CA`);
    const leader = await rejection(searchLeader({ managers: [A, B] }, SWITCHOVER, { fetch: f.fetch, timeoutMs: T }));
    expect(leader.code).toBe('server_certificate_rejected');
    // A manager with a good certificate still answers for the others.
    const g = scriptedFetch({ [A]: { tls: 'CERT_HAS_EXPIRED' }, [B]: ok() });
    await expect(searchLeader({ managers: [A, B] }, SWITCHOVER, { fetch: g.fetch, timeoutMs: T })).resolves.toMatchObject({ manager: B, status: 200 });
  });

  it('callAny never changes the last leader', async () => {
    const remembered: string[] = [];
    const f = scriptedFetch({ [A]: 'refused', [B]: ok() });
    const h: ProfileHandle = { profile: { managers: [A, B], lastLeader: A }, remember: async (u) => void remembered.push(u) };
    await callAny(h, STATUS, { fetch: f.fetch });
    expect(remembered).toEqual([]);
    expect(h.profile.lastLeader).toBe(A);
  });
});

describe('expectOk', () => {
  const answer = (status: number, body: unknown) => ({ manager: A, status, body, attempts: [] });

  it('returns a success answer unchanged', () => {
    const a = answer(200, { x: 1 });
    expect(expectOk(a)).toBe(a);
  });

  it.each([
    [answer(404, { error: 'unknown_node', message: 'no node n9' }), 'unknown_node', 'no node n9'],
    [answer(502, 'Bad Gateway'), 'http_502', 'Bad Gateway'],
    [answer(500, null), 'http_500', `${A} answered HTTP 500`],
    [answer(400, { message: 'only a message' }), 'http_400', 'only a message'],
  ])('turns an error answer into the API code and message (%#)', (a, code, message) => {
    expect(() => expectOk(a)).toThrow(SidecarError);
    try {
      expectOk(a);
    } catch (e) {
      expect([(e as SidecarError).code, (e as SidecarError).message]).toEqual([code, message]);
    }
  });
});
