import { SidecarError, answeredCode, causeCode, errorMessage } from '../sidecar/errors.js';
import type { Profile } from './profiles.js';
import { normalizeManagerUrl } from './profiles.js';

/**
 * The leader-finding client. A profile lists every manager; a call tries the leader it found last time,
 * then the others in the profile's order, and moves on when a manager cannot be reached, does not answer
 * in time, or answers 409 `not_cluster_leader` (following the `leaderUrl` that answer names, first).
 *
 * The search is written over an injected fetch-like function so it is unit-tested without a network; the
 * CLI passes Node's global `fetch`.
 */

/**
 * How long one manager gets to answer before the search moves on. Three seconds is well above a healthy
 * sidecar's answer time on a LAN and still short enough that a dead leader costs an operator seconds.
 */
export const DEFAULT_TIMEOUT_MS = 3_000;

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface ApiRequest {
  method: HttpMethod;
  /** Path on the sidecar API, starting with `/`, e.g. `/cluster` or `/cluster/nodes/n3`. */
  path: string;
  /** JSON body; omitted when undefined. */
  body?: unknown;
  /** Per-manager time limit for this request; the client's default when omitted. */
  timeoutMs?: number;
}

/** What the client needs from `fetch`: the global one satisfies it. */
export interface FetchInit {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}
export interface FetchResponse {
  status: number;
  text(): Promise<string>;
}
export type FetchLike = (url: string, init: FetchInit) => Promise<FetchResponse>;

export interface ClientOptions {
  fetch: FetchLike;
  /** Per-manager time limit; `DEFAULT_TIMEOUT_MS` when omitted. */
  timeoutMs?: number;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
}

/** What happened when one manager was asked. */
export type AttemptOutcome = 'answered' | 'unreachable' | 'timeout' | 'not_leader' | 'server_error' | 'tls_rejected';

export interface Attempt {
  manager: string;
  outcome: AttemptOutcome;
  /** Human detail: `connection refused`, `timed out after 3 s`, `not the leader (leader is n1)`, `HTTP 503`. */
  detail: string;
}

/** An HTTP answer from one manager. `body` is the parsed JSON, or the raw text when it is not JSON. */
export interface ApiAnswer {
  manager: string;
  status: number;
  body: unknown;
  /** Every manager asked, in order, the one that answered last. */
  attempts: Attempt[];
}

/** Result of asking one manager once. */
export type SendResult =
  | { kind: 'answer'; status: number; body: unknown }
  | { kind: 'unreachable' | 'timeout' | 'tls_rejected'; detail: string };

/**
 * The order in which managers are asked: the last known leader first, then the profile's managers in
 * their order, each once.
 */
export function candidateOrder(profile: Pick<Profile, 'managers' | 'lastLeader'>): string[] {
  const urls = profile.lastLeader !== undefined ? [profile.lastLeader, ...profile.managers] : [...profile.managers];
  return [...new Set(urls.map(normalizeManagerUrl))];
}

/** Asks one manager once. Never throws: a failure to get an answer is a result too. */
export async function sendOnce(manager: string, request: ApiRequest, options: ClientOptions): Promise<SendResult> {
  const timeoutMs = request.timeoutMs ?? options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  const init: FetchInit = { method: request.method, headers, signal };
  if (request.body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(request.body);
  }
  const url = `${manager.replace(/\/+$/, '')}${request.path}`;
  try {
    const response = await options.fetch(url, init);
    // Reading the body is covered by the same time limit: a manager that stalls mid-answer is moved past.
    const text = await response.text();
    return { kind: 'answer', status: response.status, body: parseBody(text) };
  } catch (e) {
    if (signal.aborted) return { kind: 'timeout', detail: `timed out after ${formatSeconds(timeoutMs)}` };
    const rejected = certificateRejection(e);
    if (rejected !== undefined) return { kind: 'tls_rejected', detail: rejected };
    return { kind: 'unreachable', detail: describeNetworkError(e) };
  }
}

function parseBody(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const formatSeconds = (ms: number): string => `${Number((ms / 1000).toFixed(3))} s`;

const NETWORK_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
};

/** The ways a server's certificate fails verification, as OpenSSL and Node name them. */
const CERTIFICATE_ERRORS: Record<string, string> = {
  CERT_HAS_EXPIRED: 'its certificate has expired',
  CERT_NOT_YET_VALID: 'its certificate is not valid yet',
  DEPTH_ZERO_SELF_SIGNED_CERT: "its certificate is self-signed, not of the profile's CA",
  SELF_SIGNED_CERT_IN_CHAIN: "its certificate is not of the profile's CA (give the profile the cluster CA: hactl profiles use <host> --ca ca.crt)",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "its certificate is not of the profile's CA (give the profile the cluster CA: hactl profiles use <host> --ca ca.crt)",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "its certificate is not of the profile's CA",
  ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate does not name the host dialled',
};

/** Why the server's certificate was refused, when that is why the call failed. */
function certificateRejection(e: unknown): string | undefined {
  const code = causeCode(e);
  return code !== undefined && Object.hasOwn(CERTIFICATE_ERRORS, code) ? `refused the server: ${CERTIFICATE_ERRORS[code]} (${code})` : undefined;
}

/** `fetch failed` says nothing; the cause (an errno code) does. */
function describeNetworkError(e: unknown): string {
  let cause: unknown = e;
  let deepest = errorMessage(e);
  for (let depth = 0; depth < 4 && cause !== undefined && cause !== null; depth += 1) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string') return NETWORK_ERRORS[code] ?? code.toLowerCase();
    deepest = errorMessage(cause);
    cause = (cause as { cause?: unknown }).cause;
  }
  return deepest;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `not_cluster_leader` answer of a standby, with the leader it names (if any). */
export function notLeaderAnswer(status: number, body: unknown): { leader?: string; leaderUrl?: string } | null {
  if (status !== 409 || !isObject(body) || body.error !== 'not_cluster_leader') return null;
  const result: { leader?: string; leaderUrl?: string } = {};
  if (typeof body.leader === 'string' && body.leader !== '') result.leader = body.leader;
  if (typeof body.leaderUrl === 'string') {
    try {
      result.leaderUrl = normalizeManagerUrl(body.leaderUrl);
    } catch {
      /* a malformed leaderUrl is ignored: the other managers are still asked */
    }
  }
  return result;
}

const attemptsText = (attempts: Attempt[]): string =>
  attempts.map((a) => `${a.manager}: ${a.detail}`).join('; ') || 'the profile lists no managers';

/**
 * A search that ended without an answer because hactl refused some server's certificate is a TLS problem to
 * fix (an expired certificate, a profile without the cluster CA), not a cluster without a leader: it fails
 * with `server_certificate_rejected`, its message listing every manager and why.
 */
function throwIfCertificatesRefused(attempts: Attempt[]): void {
  if (!attempts.some((a) => a.outcome === 'tls_rejected')) return;
  throw new SidecarError('server_certificate_rejected', `no manager answered with a certificate hactl accepts (${attemptsText(attempts)})`, 503, { attempts });
}

/**
 * Finds the leader and returns its answer to `request`. Tries `candidateOrder(profile)`; a manager that
 * is unreachable or times out is passed over; a 409 `not_cluster_leader` is passed over too, and the
 * `leaderUrl` it names (when not asked yet) is asked next, before the rest. Any other answer, success or
 * error, is the leader's and ends the search. A leader URL that is not in the profile is still followed.
 *
 * Throws `no_reachable_leader` (exit 3) when no manager answers as leader; the message lists every manager
 * asked and why it was passed over.
 */
export async function searchLeader(
  profile: Pick<Profile, 'managers' | 'lastLeader'>,
  request: ApiRequest,
  options: ClientOptions,
): Promise<ApiAnswer> {
  const queue = candidateOrder(profile);
  const asked = new Set<string>();
  const attempts: Attempt[] = [];
  while (queue.length > 0) {
    const manager = queue.shift() as string;
    if (asked.has(manager)) continue;
    asked.add(manager);
    const result = await sendOnce(manager, request, options);
    if (result.kind !== 'answer') {
      attempts.push({ manager, outcome: result.kind, detail: result.detail });
      continue;
    }
    const notLeader = notLeaderAnswer(result.status, result.body);
    if (notLeader === null) {
      attempts.push({ manager, outcome: 'answered', detail: `HTTP ${result.status}` });
      return { manager, status: result.status, body: result.body, attempts };
    }
    const says = notLeader.leader !== undefined ? ` (leader is ${notLeader.leader})` : ' (no leader named)';
    attempts.push({ manager, outcome: 'not_leader', detail: `not the leader${says}` });
    if (notLeader.leaderUrl !== undefined && !asked.has(notLeader.leaderUrl)) queue.unshift(notLeader.leaderUrl);
  }
  throwIfCertificatesRefused(attempts);
  throw new SidecarError(
    'no_reachable_leader',
    `no manager answered as the cluster leader (${attemptsText(attempts)})`,
    503,
    { attempts },
  );
}

/**
 * Sends a read-only request that any manager can answer (status, history), preferring the last known
 * leader: managers are asked in `candidateOrder`, and the first answer below 500 is returned. A manager
 * answering 5xx cannot serve it right now (say its Consul agent is down), so the next one is asked; when
 * every manager that answered did so with 5xx, the first such answer is returned for the caller to report.
 *
 * Throws `no_reachable_manager` (exit 3) when no manager answers at all.
 */
export async function searchAny(
  profile: Pick<Profile, 'managers' | 'lastLeader'>,
  request: ApiRequest,
  options: ClientOptions,
): Promise<ApiAnswer> {
  const attempts: Attempt[] = [];
  let firstServerError: Omit<ApiAnswer, 'attempts'> | undefined;
  for (const manager of candidateOrder(profile)) {
    const result = await sendOnce(manager, request, options);
    if (result.kind !== 'answer') {
      attempts.push({ manager, outcome: result.kind, detail: result.detail });
      continue;
    }
    if (result.status >= 500) {
      attempts.push({ manager, outcome: 'server_error', detail: `HTTP ${result.status}` });
      firstServerError ??= { manager, status: result.status, body: result.body };
      continue;
    }
    attempts.push({ manager, outcome: 'answered', detail: `HTTP ${result.status}` });
    return { manager, status: result.status, body: result.body, attempts };
  }
  if (firstServerError !== undefined) return { ...firstServerError, attempts };
  throwIfCertificatesRefused(attempts);
  throw new SidecarError('no_reachable_manager', `no manager answered (${attemptsText(attempts)})`, 503, {
    attempts,
  });
}

/** A profile as the client uses it: its managers, token and last leader, and how to record a new leader. */
export interface ProfileHandle {
  profile: Profile;
  /** Persists a newly found leader; called only when it differs from `profile.lastLeader`. */
  remember?: (leaderUrl: string) => Promise<void>;
}

/**
 * `searchLeader` with the profile's token, then records the manager that answered as the profile's
 * `lastLeader` when it answered with success (2xx) and differs from the one stored. The handle's
 * in-memory profile is updated too, so a second call in the same command starts at the right place.
 */
export async function callLeader(
  handle: ProfileHandle,
  request: ApiRequest,
  options: Omit<ClientOptions, 'token'>,
): Promise<ApiAnswer> {
  const answer = await searchLeader(handle.profile, request, { ...options, token: handle.profile.token });
  if (answer.status >= 200 && answer.status < 300) await noteLeader(handle, answer.manager);
  return answer;
}

/** `searchAny` with the profile's token. Does not change the last leader: any manager may have answered. */
export async function callAny(
  handle: ProfileHandle,
  request: ApiRequest,
  options: Omit<ClientOptions, 'token'>,
): Promise<ApiAnswer> {
  return searchAny(handle.profile, request, { ...options, token: handle.profile.token });
}

/** Records `leaderUrl` as the handle's last leader when it changed (used also when `/cluster` names it). */
export async function noteLeader(handle: ProfileHandle, leaderUrl: string): Promise<void> {
  const url = normalizeManagerUrl(leaderUrl);
  if (handle.profile.lastLeader === url) return;
  handle.profile.lastLeader = url;
  await handle.remember?.(url);
}

/**
 * Turns an error answer (status >= 400) into a `SidecarError` carrying the API's stable `error` code and
 * `message` (or `http_<status>` when the body has none); returns a success answer unchanged.
 */
export function expectOk(answer: ApiAnswer): ApiAnswer {
  if (answer.status < 400) return answer;
  const body = answer.body;
  const hasCode = isObject(body) && typeof body.error === 'string' && body.error !== '';
  const code = answeredCode(hasCode ? (body.error as string) : `http_${answer.status}`);
  let message: string;
  if (isObject(body) && typeof body.message === 'string' && body.message !== '') message = body.message;
  else if (typeof body === 'string' && body.trim() !== '') message = body.trim().slice(0, 300);
  else message = `${answer.manager} answered HTTP ${answer.status}`;
  throw new SidecarError(code, message, answer.status, { manager: answer.manager, body });
}
