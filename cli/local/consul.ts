import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
 * The optional ACL and gossip-encryption files are rendered only when their secrets are given.
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
  };
  writeFileSync(join(spec.configDir, 'server.hcl'), renderTemplate(template('server.hcl.tmpl'), values));
  if (spec.gossipKey) writeFileSync(join(spec.configDir, 'encrypt.hcl'), renderTemplate(template('encrypt.hcl.tmpl'), values));
  if (spec.aclManagementToken) writeFileSync(join(spec.configDir, 'acl.hcl'), renderTemplate(template('acl.hcl.tmpl'), values), { mode: 0o600 });
  return ['agent', '-config-dir', spec.configDir];
}
