import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';
import type { FetchLike } from '../leader-client.js';
import { sendOnce } from '../leader-client.js';
import { waitUntil } from './wait.js';

export interface ConsulServerSpec {
  nodeName: string;
  address: string;
  /** Addresses of every server of the cluster, this one included. */
  serverAddresses: string[];
  dataDir: string;
  configDir: string;
  datacenter?: string;
  gossipKey?: string;
  aclManagementToken?: string;
  /** TLS on every port (consul-config/tls.hcl.tmpl): the cluster CA and this node's certificate and key. */
  tls?: { caFile: string; certFile: string; keyFile: string };
}

/** Fills `${VAR}` placeholders; a placeholder without a value is a bug in the caller, so it throws. */
export function renderTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`template variable ${name} has no value`);
    return value;
  });
}

function template(name: string): string {
  return readFileSync(join(projectRoot(), 'consul-config', name), 'utf8');
}

/**
 * Renders consul-config/ for one server into `spec.configDir` and returns the `consul agent` arguments.
 * The optional ACL, gossip-encryption and TLS files are rendered only when their secrets or files are given.
 */
export function renderConsulServer(spec: ConsulServerSpec): string[] {
  mkdirSync(spec.configDir, { recursive: true });
  mkdirSync(spec.dataDir, { recursive: true });
  const values = {
    NODE_NAME: spec.nodeName,
    DATACENTER: spec.datacenter ?? 'dc1',
    DATA_DIR: spec.dataDir,
    BOOTSTRAP_EXPECT: String(spec.serverAddresses.length),
    BIND_ADDR: spec.address,
    CLIENT_ADDR: spec.address,
    RETRY_JOIN: JSON.stringify(spec.serverAddresses.filter((a) => a !== spec.address)),
    GOSSIP_KEY: spec.gossipKey ?? '',
    ACL_MANAGEMENT_TOKEN: spec.aclManagementToken ?? '',
    TLS_CA_FILE: spec.tls?.caFile ?? '',
    TLS_CERT_FILE: spec.tls?.certFile ?? '',
    TLS_KEY_FILE: spec.tls?.keyFile ?? '',
  };
  writeFileSync(join(spec.configDir, 'server.hcl'), renderTemplate(template('server.hcl.tmpl'), values));
  const optional = { 'encrypt.hcl': spec.gossipKey !== undefined, 'acl.hcl': spec.aclManagementToken !== undefined, 'tls.hcl': spec.tls !== undefined };
  for (const [file, wanted] of Object.entries(optional)) {
    // A file left from an earlier rendering must not stay in force once its setting is gone.
    if (!wanted) rmSync(join(spec.configDir, file), { force: true });
    else writeFileSync(join(spec.configDir, file), renderTemplate(template(`${file}.tmpl`), values), { mode: 0o600 });
  }
  return ['agent', '-config-dir', spec.configDir];
}

/** Consul's ACL bootstrap follows its first raft leader by a moment; the sidecar's token is made once it took. */
export const ACL_READY_TIMEOUT_MS = 60_000;
/** One call to a Consul agent on the same machine or network. */
const CONSUL_CALL_TIMEOUT_MS = 3_000;

export interface SidecarTokenSetup {
  /** A Consul agent's HTTP(S) API. */
  consulUrl: string;
  managementToken: string;
  /** The SecretID the sidecars' token gets (derived from the cluster token, shared/secrets.ts). */
  sidecarToken: string;
  clusterName: string;
  fetch: FetchLike;
  signal?: AbortSignal;
  hint?: string;
}

/**
 * Makes the sidecars' Consul token once: the policy of consul-config/sidecar-policy.hcl.tmpl and a token of it
 * with the given SecretID, for the local and test clusters (cli/local/driver.ts) and each compose node
 * (cli/container.ts) alike. A token that already answers (a restart, another node was first) is left as it is.
 */
export async function ensureSidecarToken(setup: SidecarTokenSetup): Promise<void> {
  const { consulUrl, managementToken, sidecarToken, clusterName, fetch } = setup;
  const policy = `ha-sidecar-${clusterName}`;
  const rules = renderTemplate(template('sidecar-policy.hcl.tmpl'), { CLUSTER_NAME: clusterName });
  const call = async (method: 'GET' | 'PUT', path: string, token: string, body?: unknown) => {
    const result = await sendOnce(consulUrl, { method, path, body, timeoutMs: CONSUL_CALL_TIMEOUT_MS }, { fetch, token });
    return result.kind === 'answer' ? result.status : 0;
  };
  await waitUntil(
    "the sidecars' Consul ACL token",
    async () => {
      if ((await call('GET', '/v1/acl/token/self', sidecarToken)) === 200) return true;
      // Both writes fail (the ACL system not bootstrapped yet) or are refused as duplicates on a retry; the read above decides.
      await call('PUT', '/v1/acl/policy', managementToken, { Name: policy, Rules: rules });
      await call('PUT', '/v1/acl/token', managementToken, { SecretID: sidecarToken, Description: `ha-sidecar ${clusterName}`, Policies: [{ Name: policy }] });
      return false;
    },
    { timeoutMs: ACL_READY_TIMEOUT_MS, signal: setup.signal, hint: setup.hint },
  );
}
