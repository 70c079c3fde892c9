#!/usr/bin/env node
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SidecarError, errorMessage, isSidecarError } from '../sidecar/errors.js';
import { loadConfig, type SidecarConfig } from '../sidecar/config.js';
import { httpsFetch } from '../sidecar/shared/https-fetch.js';
import { deriveConsulToken, deriveGossipKey } from '../sidecar/shared/secrets.js';
import type { FetchLike } from './leader-client.js';
import { sendOnce } from './leader-client.js';
import { readProfileTls } from './profiles.js';
import { ensureSidecarToken } from './local/consul.js';
import { sleep, waitUntil } from './local/wait.js';

/**
 * What a docker-compose node's entrypoint (docker/entrypoint.sh) asks of the project's code, so a container
 * derives, waits and forms its cluster with the code `hactl local up` runs, not with a copy of it:
 *   secrets                     Consul's gossip key, its management token and the sidecars' token, derived from
 *                               HA_SIDECAR_CLUSTER_TOKEN as in the local cluster (shell `export` lines)
 *   consul-ready CONFIG PID SECONDS
 *                               waits for a raft leader at the node's Consul (HTTPS with the node's certificate),
 *                               then makes the sidecars' token; fails when Consul (PID) exits
 *   form CONFIG FIRST IP...     makes this node a member: it joins the leader one of the IPs reports, or FIRST
 *                               starts the cluster while none does; a member already does nothing
 * CONFIG is the sidecar's config file, read as the sidecar reads it (with its environment overrides).
 * A failure is one line `<code>: <message>` on stderr and exit 1.
 */

const run = promisify(execFile);
/** One probe of a node on the compose network. */
const PROBE_TIMEOUT_MS = 3_000;
/** How often the formation asks again; joining needs the sidecar up, which takes seconds. */
const FORM_POLL_MS = 2_000;

const say = (line: string) => console.error(`[entrypoint] ${line}`);

function clusterToken(): string {
  const token = process.env.HA_SIDECAR_CLUSTER_TOKEN ?? '';
  if (token.length < 16) throw new SidecarError('invalid_config', 'HA_SIDECAR_CLUSTER_TOKEN must have 16+ characters (HA_CLUSTER_TOKEN in docker-compose.yml)', 400);
  return token;
}

/** The node's config, which must have its `tls` section: the compose cluster runs TLS on every port. */
function nodeConfig(file: string | undefined): SidecarConfig & { tls: NonNullable<SidecarConfig['tls']> } {
  if (file === undefined) throw new SidecarError('usage_error', 'give the sidecar config file', 400);
  const config = loadConfig(file, process.env);
  if (config.tls === undefined) throw new SidecarError('invalid_config', `${file} has no tls section`, 400);
  return { ...config, tls: config.tls };
}

/** HTTPS with the cluster CA, showing the node's own certificate (Consul and the API ask every client for one). */
const nodeFetch = (tls: { caFile: string; certFile: string; keyFile: string }): FetchLike => httpsFetch(readProfileTls(tls));

function secrets(): void {
  const token = clusterToken();
  const values = {
    GOSSIP_KEY: deriveGossipKey(token),
    ACL_MANAGEMENT_TOKEN: deriveConsulToken(token, 'consul-management'),
    HA_SIDECAR_CONSUL_TOKEN: deriveConsulToken(token, 'consul-sidecar'),
  };
  // base64 and UUIDs: nothing in them needs quoting beyond the single quotes.
  for (const [name, value] of Object.entries(values)) console.log(`export ${name}='${value}'`);
}

async function consulReady(file: string | undefined, pid: string | undefined, seconds: string | undefined): Promise<void> {
  const config = nodeConfig(file);
  const fetch = nodeFetch(config.tls);
  const url = config.consul.url;
  const guard = () => {
    try {
      process.kill(Number(pid), 0);
    } catch {
      throw new SidecarError('process_exited', 'consul exited (see its log above)', 500);
    }
  };
  const timeoutMs = Number(seconds ?? 300) * 1000;
  const started = Date.now();
  let told = started;
  say(`waiting up to ${timeoutMs / 1000} s for a Consul raft leader at ${url}`);
  const leader = await waitUntil(
    'a Consul raft leader (it needs a quorum of the servers: are the others up?)',
    async () => {
      if (Date.now() - told > 15_000) {
        told = Date.now();
        say(`still no Consul raft leader after ${Math.round((told - started) / 1000)} s (needs a quorum of the servers)`);
      }
      const answer = await sendOnce(url, { method: 'GET', path: '/v1/status/leader', timeoutMs: PROBE_TIMEOUT_MS }, { fetch });
      if (answer.kind !== 'answer') throw new Error(answer.detail);
      return answer.status === 200 && typeof answer.body === 'string' && answer.body !== '' ? answer.body : undefined;
    },
    { timeoutMs, intervalMs: 1_000, guard },
  );
  say(`consul raft leader: ${leader}`);
  const token = clusterToken();
  await ensureSidecarToken({
    consulUrl: url,
    managementToken: deriveConsulToken(token, 'consul-management'),
    sidecarToken: config.consul.token ?? deriveConsulToken(token, 'consul-sidecar'),
    clusterName: config.clusterName,
    fetch,
  });
  say("the sidecars' Consul token is in place");
}

async function form(file: string | undefined, first: string | undefined, ips: string[]): Promise<void> {
  const config = nodeConfig(file);
  const fetch = nodeFetch(config.tls);
  const self = config.apiUrl;
  const get = async (base: string, path: string): Promise<Record<string, unknown>> => {
    const answer = await sendOnce(base, { method: 'GET', path, timeoutMs: PROBE_TIMEOUT_MS }, { fetch });
    return answer.kind === 'answer' && answer.body !== null && typeof answer.body === 'object' ? (answer.body as Record<string, unknown>) : {};
  };
  const hactl = async (...args: string[]): Promise<boolean> => {
    try {
      say((await run('hactl', args, { encoding: 'utf8' })).stdout.trim());
      return true;
    } catch (e) {
      say(`hactl ${args.slice(0, 2).join(' ')}: ${String((e as { stderr?: unknown }).stderr ?? errorMessage(e)).trim()}`);
      return false;
    }
  };
  for (;;) {
    await sleep(FORM_POLL_MS);
    const health = await get(self, '/health');
    if (health.role !== undefined && health.error !== 'not_member') return; // a member already
    if (health.error !== 'not_member') continue; // the sidecar is not up yet
    let leader: string | undefined;
    for (const ip of ips) {
      const view = await get(`https://${ip}:${config.apiPort}`, '/cluster');
      const url = (view.leader as { apiUrl?: unknown } | null | undefined)?.apiUrl;
      if (typeof url === 'string') leader = url;
      if (leader !== undefined) break;
    }
    if (leader !== undefined && leader !== self) {
      if (await hactl('cluster', 'join', leader, '--node-name', config.nodeName, '--node-url', self)) return;
    } else if (leader === undefined && config.nodeName === first) {
      if (await hactl('cluster', 'start', '--node-name', config.nodeName, '--node-url', self)) return;
    }
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  if (command === 'secrets') return secrets();
  if (command === 'consul-ready') return consulReady(args[0], args[1], args[2]);
  if (command === 'form') return form(args[0], args[1], args.slice(2));
  throw new SidecarError('usage_error', `unknown command "${command ?? ''}": secrets, consul-ready or form`, 400);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  say(`error: ${isSidecarError(e) ? `${e.code}: ` : ''}${errorMessage(e)}`);
  process.exit(1);
});
