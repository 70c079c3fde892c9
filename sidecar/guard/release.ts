import { readFileSync } from 'node:fs';
import type { TlsFiles } from '../shared/certificates.js';
import { httpsFetch, type FetchFunction } from '../shared/https-fetch.js';

/** The local Consul agent as the guard reaches it once its sidecar died (client.ts passes it in the environment). */
export interface GuardConsul {
  /** The agent's HTTP API, e.g. http://127.0.0.11:8500 (https://...:8501 with TLS). */
  url: string;
  token?: string;
  /** The node's `tls` files: an `https:` agent is verified with the CA and shown the node's certificate, as the sidecar does. */
  tls?: TlsFiles;
  /** The leader lock's full key, ha-sidecar/<cluster>/leader. */
  lockKey: string;
  /** The node's `sidecar alive` check, marked critical once the session is gone. */
  aliveCheck: string;
}

/** The environment variables client.ts sets and `guardConsulFromEnv` reads. */
export const GUARD_CONSUL_ENV = {
  url: 'HA_GUARD_CONSUL_URL',
  token: 'HA_GUARD_CONSUL_TOKEN',
  lockKey: 'HA_GUARD_LOCK_KEY',
  aliveCheck: 'HA_GUARD_ALIVE_CHECK',
  caFile: 'HA_GUARD_CONSUL_CA_FILE',
  certFile: 'HA_GUARD_CONSUL_CERT_FILE',
  keyFile: 'HA_GUARD_CONSUL_KEY_FILE',
} as const;

/** The variables of `consul` for the guard's environment. */
export function guardConsulEnv(consul: GuardConsul): Record<string, string> {
  const env: Record<string, string> = { [GUARD_CONSUL_ENV.url]: consul.url, [GUARD_CONSUL_ENV.lockKey]: consul.lockKey, [GUARD_CONSUL_ENV.aliveCheck]: consul.aliveCheck };
  if (consul.token) env[GUARD_CONSUL_ENV.token] = consul.token;
  if (consul.tls) Object.assign(env, { [GUARD_CONSUL_ENV.caFile]: consul.tls.caFile, [GUARD_CONSUL_ENV.certFile]: consul.tls.certFile, [GUARD_CONSUL_ENV.keyFile]: consul.tls.keyFile });
  return env;
}

export function guardConsulFromEnv(env: NodeJS.ProcessEnv): GuardConsul | null {
  const url = env[GUARD_CONSUL_ENV.url];
  const lockKey = env[GUARD_CONSUL_ENV.lockKey];
  const aliveCheck = env[GUARD_CONSUL_ENV.aliveCheck];
  if (!url || !lockKey || !aliveCheck) return null;
  const [caFile, certFile, keyFile] = [env[GUARD_CONSUL_ENV.caFile], env[GUARD_CONSUL_ENV.certFile], env[GUARD_CONSUL_ENV.keyFile]];
  const tls = caFile && certFile && keyFile ? { caFile, certFile, keyFile } : undefined;
  return { url, lockKey, aliveCheck, token: env[GUARD_CONSUL_ENV.token] || undefined, tls };
}

/**
 * The guard's fetch for `consul`, made at its first call: the files are read only when the sidecar has died
 * (they are the sidecar's, checked at its start). Any failure here, an unreadable file or a refused handshake,
 * is a failed release, which is safe: the session then dies the slow way, with lock-delay (see below).
 */
const fetches = new WeakMap<GuardConsul, FetchFunction>();
function fetchOf(consul: GuardConsul): FetchFunction {
  let fetch = fetches.get(consul);
  if (fetch === undefined) {
    const tls = consul.tls;
    fetch = httpsFetch(tls ? { ca: readFileSync(tls.caFile, 'utf8'), cert: readFileSync(tls.certFile, 'utf8'), key: readFileSync(tls.keyFile, 'utf8') } : undefined);
    fetches.set(consul, fetch);
  }
  return fetch;
}

/**
 * Budget of each call. The guard gives up after it: the session then dies the slow way (its
 * alive check's TTL), with lock-delay, as it did before the guard released anything.
 */
const CALL_TIMEOUT_MS = 2_000;

export type ReleaseOutcome = 'released' | 'not_held';

async function call(consul: GuardConsul, method: 'GET' | 'PUT', path: string, body?: string): Promise<unknown> {
  const response = await fetchOf(consul)(new URL(path, consul.url).toString(), {
    method,
    body,
    headers: consul.token ? { 'X-Consul-Token': consul.token } : undefined,
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  const text = await response.text();
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${text.slice(0, 200)}`);
  return text === '' ? null : (JSON.parse(text) as unknown); // a check update answers with no body
}

/**
 * Releases the leader lock held by `session` and destroys the session, for a sidecar that died with its
 * Postgres already dead. Call it only once every process on the data directory is gone: see main.ts for why
 * that makes a release (no lock-delay) safe. Throws when Consul cannot be reached or refuses.
 *
 * The release writes back the value the key holds (Consul's release is a write): the last leader stays
 * readable, as after the sidecar's own release. Nobody else writes the key while this session holds it.
 */
export async function releaseDeadSessionLock(consul: GuardConsul, session: string): Promise<ReleaseOutcome> {
  const key = `/v1/kv/${consul.lockKey.split('/').map(encodeURIComponent).join('/')}`;
  const entries = (await call(consul, 'GET', `${key}?consistent`)) as { Session?: string; Value: string | null }[] | null;
  const entry = entries?.[0];
  let outcome: ReleaseOutcome = 'not_held';
  if (entry?.Session === session) {
    const released = await call(consul, 'PUT', `${key}?release=${session}`, Buffer.from(entry.Value ?? '', 'base64').toString('utf8'));
    if (released !== true) throw new Error(`Consul refused to release ${consul.lockKey} for session ${session}`);
    outcome = 'released';
  }
  // The session's other keys (its member record) are let go with lock-delay; only the lock matters for speed.
  await call(consul, 'PUT', `/v1/session/destroy/${session}`);
  return outcome;
}

/**
 * Marks the node's alive check critical, so operators and `?passing` queries see the node down at once (a
 * live or restarted sidecar passes it again). Only after `releaseDeadSessionLock`: a critical check bound to
 * a live session would invalidate it, with lock-delay.
 */
export async function failAliveCheck(consul: GuardConsul, note: string): Promise<void> {
  await call(consul, 'PUT', `/v1/agent/check/fail/${encodeURIComponent(consul.aliveCheck)}?note=${encodeURIComponent(note)}`);
}
