import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';

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
