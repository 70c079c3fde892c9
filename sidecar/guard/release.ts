import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { TlsFiles } from '../shared/certificates.js';

/** The local Consul agent as the guard reaches it once its sidecar died (client.ts passes it in the environment). */
export interface GuardConsul {
  /** The agent's HTTP API, e.g. http://127.0.0.11:8500 (https://...:8501 with TLS). */
  url: string;
  token?: string;
  /** The node's `tls` files: an `https:` agent is verified with the CA and shown the node's certificate, as the sidecar does. */
  tls?: TlsFiles;
  /** The leader lock's full key, ha-sidecar/<cluster>/leader. */
  lockKey: string;
  /** This node's member record's full key, ha-sidecar/<cluster>/members/<node>, held by the same session. */
  memberKey: string;
  /** The node's `sidecar alive` check, marked critical once the session is gone. */
  aliveCheck: string;
}

/** The environment variables client.ts sets and `guardConsulFromEnv` reads. */
export const GUARD_CONSUL_ENV = {
  url: 'HA_GUARD_CONSUL_URL',
  token: 'HA_GUARD_CONSUL_TOKEN',
  lockKey: 'HA_GUARD_LOCK_KEY',
  memberKey: 'HA_GUARD_MEMBER_KEY',
  aliveCheck: 'HA_GUARD_ALIVE_CHECK',
  caFile: 'HA_GUARD_CONSUL_CA_FILE',
  certFile: 'HA_GUARD_CONSUL_CERT_FILE',
  keyFile: 'HA_GUARD_CONSUL_KEY_FILE',
} as const;

/** The variables of `consul` for the guard's environment. */
export function guardConsulEnv(consul: GuardConsul): Record<string, string> {
  const env: Record<string, string> = {
    [GUARD_CONSUL_ENV.url]: consul.url,
    [GUARD_CONSUL_ENV.lockKey]: consul.lockKey,
    [GUARD_CONSUL_ENV.memberKey]: consul.memberKey,
    [GUARD_CONSUL_ENV.aliveCheck]: consul.aliveCheck,
  };
  if (consul.token) env[GUARD_CONSUL_ENV.token] = consul.token;
  if (consul.tls) Object.assign(env, { [GUARD_CONSUL_ENV.caFile]: consul.tls.caFile, [GUARD_CONSUL_ENV.certFile]: consul.tls.certFile, [GUARD_CONSUL_ENV.keyFile]: consul.tls.keyFile });
  return env;
}

export function guardConsulFromEnv(env: NodeJS.ProcessEnv): GuardConsul | null {
  const url = env[GUARD_CONSUL_ENV.url];
  const lockKey = env[GUARD_CONSUL_ENV.lockKey];
  const memberKey = env[GUARD_CONSUL_ENV.memberKey];
  const aliveCheck = env[GUARD_CONSUL_ENV.aliveCheck];
  if (!url || !lockKey || !memberKey || !aliveCheck) return null;
  const [caFile, certFile, keyFile] = [env[GUARD_CONSUL_ENV.caFile], env[GUARD_CONSUL_ENV.certFile], env[GUARD_CONSUL_ENV.keyFile]];
  const tls = caFile && certFile && keyFile ? { caFile, certFile, keyFile } : undefined;
  return { url, lockKey, memberKey, aliveCheck, token: env[GUARD_CONSUL_ENV.token] || undefined, tls };
}

/**
 * Budget of each call. The guard gives up after it: the session then dies the slow way (its
 * alive check's TTL), with lock-delay, as it did before the guard released anything.
 */
const CALL_TIMEOUT_MS = 2_000;

export type ReleaseOutcome = 'released' | 'not_held';

/**
 * The guard's calls to its agent, over node:http(s) itself rather than fetch: the release is the first call
 * a guard makes, and fetch's first call spent ~50 ms loading undici and web streams (plain HTTP and HTTPS
 * alike) while nobody led. The files are read when the client is made, so a release after a certificate
 * renewal shows the new one; any failure, an unreadable file or a refused handshake, is a failed release,
 * which is safe: the session then dies the slow way, with lock-delay (see below). `close()` ends its
 * connections: a guard keeps none to the agent while its sidecar lives.
 */
export class GuardConsulClient {
  private readonly agent: HttpAgent;
  private readonly https: boolean;

  constructor(readonly consul: GuardConsul) {
    this.https = new URL(consul.url).protocol === 'https:';
    const tls = consul.tls;
    this.agent = !this.https
      ? new HttpAgent({ keepAlive: true })
      : new HttpsAgent({
          keepAlive: true,
          minVersion: 'TLSv1.2',
          ...(tls ? { ca: readFileSync(tls.caFile, 'utf8'), cert: readFileSync(tls.certFile, 'utf8'), key: readFileSync(tls.keyFile, 'utf8') } : {}),
        });
  }

  /** The answer's JSON (null for a 404 or an empty body); throws on any other status than 2xx. */
  call(method: 'GET' | 'PUT', path: string, body?: string): Promise<unknown> {
    const url = new URL(path, this.consul.url);
    const headers: Record<string, string> = this.consul.token ? { 'X-Consul-Token': this.consul.token } : {};
    if (body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
    return new Promise((resolve, reject) => {
      const send = this.https ? httpsRequest : httpRequest;
      const req = send(url, { method, headers, agent: this.agent, signal: AbortSignal.timeout(CALL_TIMEOUT_MS) }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.once('error', reject);
        res.once('end', () => {
          const status = res.statusCode ?? 0;
          if (status === 404) return resolve(null);
          if (status < 200 || status >= 300) return reject(new Error(`${method} ${path}: HTTP ${status} ${text.slice(0, 200)}`));
          try {
            resolve(text === '' ? null : (JSON.parse(text) as unknown)); // a check update answers with no body
          } catch (e) {
            reject(e);
          }
        });
      });
      req.once('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * One call to the agent when the guard starts, answered or not, and its connection closed: the code of a
 * request (HTTP, TLS, the first handshake's setup) is then compiled and loaded, and a release after the
 * sidecar died costs its round trips only (~60 ms less in the fault bench). `/v1/status/leader` needs no
 * ACL and changes nothing.
 */
export async function warmUp(consul: GuardConsul): Promise<void> {
  const client = new GuardConsulClient(consul);
  try {
    await client.call('GET', '/v1/status/leader');
  } finally {
    client.close();
  }
}

/**
 * Releases the leader lock held by `session` and destroys the session, for a sidecar that died with its
 * Postgres already dead. Call it only once every process on the data directory is gone: see main.ts for why
 * that makes a release (no lock-delay) safe. Throws when Consul cannot be reached or refuses.
 *
 * The member record is released too (after the lock: the take-over does not wait for it). Left to the
 * destroy, its key would refuse the restarted sidecar's new session for lock-delay (5 s), and the node
 * would rejoin that much later; a released record reads as offline, as a destroyed one does.
 */
export async function releaseDeadSessionLock(client: GuardConsulClient, session: string): Promise<ReleaseOutcome> {
  const outcome: ReleaseOutcome = (await releaseHeld(client, client.consul.lockKey, session)) ? 'released' : 'not_held';
  await releaseHeld(client, client.consul.memberKey, session).catch(() => false); // the destroy lets it go anyway, with lock-delay
  await client.call('PUT', `/v1/session/destroy/${session}`);
  return outcome;
}

/**
 * Releases `key` if `session` holds it; whether it did. The release writes back the value the key holds
 * (Consul's release is a write): the last leader, the last member record stay readable, as after the
 * sidecar's own release. Nobody else writes the key while this session holds it.
 */
async function releaseHeld(client: GuardConsulClient, key: string, session: string): Promise<boolean> {
  const path = `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;
  const entries = (await client.call('GET', `${path}?consistent`)) as { Session?: string; Value: string | null }[] | null;
  const entry = entries?.[0];
  if (entry?.Session !== session) return false;
  const released = await client.call('PUT', `${path}?release=${session}`, Buffer.from(entry.Value ?? '', 'base64').toString('utf8'));
  if (released !== true) throw new Error(`Consul refused to release ${key} for session ${session}`);
  return true;
}

/**
 * Marks the node's alive check critical, so operators and `?passing` queries see the node down at once (a
 * live or restarted sidecar passes it again). Only after `releaseDeadSessionLock`: a critical check bound to
 * a live session would invalidate it, with lock-delay.
 */
export async function failAliveCheck(client: GuardConsulClient, note: string): Promise<void> {
  await client.call('PUT', `/v1/agent/check/fail/${encodeURIComponent(client.consul.aliveCheck)}?note=${encodeURIComponent(note)}`);
}
