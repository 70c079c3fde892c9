import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { SidecarError } from '../../sidecar/errors.js';
import { usageError } from '../output.js';
import { projectRoot } from '../../sidecar/shared/package.js';

/**
 * Where the local cluster lives and what each node is: names, loopback addresses, ports, directories.
 * Pure functions of the root directory and the options, so `up`, `down`, `status` and `kill` agree.
 */

/** The first node's address by default; docs/design.md "Local cluster": 127.0.0.11, .12, .13 ... */
export const DEFAULT_BASE_ADDRESS = '127.0.0.11';
/** The sidecars' `clusterName`, and the name of the hactl profile `up` writes. */
export const LOCAL_CLUSTER_NAME = 'local';
export const LOCAL_PROFILE = 'local';

/** The production ports (docs/design.md "Ports"); every node has its own address, so they never clash. */
export const PORTS = {
  consulServer: 8300,
  consulSerf: 8301,
  consulHttp: 8500,
  /** Consul's HTTPS API, instead of 8500, when the cluster runs TLS (consul-config/tls.hcl.tmpl). */
  consulHttps: 8501,
  sidecarApi: 8008,
  postgres: 15432,
  fileMirror: 22000,
  /** The sample manager (examples/manager) beside each node, started by its hooks. */
  manager: 8080,
} as const;

/** `$HACTL_LOCAL_DIR` when set (tests, a second cluster), else `<project>/.local-cluster` (git-ignored). */
export function localDir(env: Record<string, string | undefined>): string {
  const override = env.HACTL_LOCAL_DIR;
  return override !== undefined && override !== '' ? override : join(projectRoot(), '.local-cluster');
}

export const statePath = (root: string): string => join(root, 'state.json');

/** The local cluster CA and its certificates (`hactl cluster tls init`'s layout). */
export const localTlsDir = (root: string): string => join(root, 'tls');
/** The certificate hactl shows the nodes (they ask every client for one: verifyClient). */
export const LOCAL_CLIENT_NAME = 'hactl';
/** The `local` profile's TLS files. */
export const localClientTls = (root: string) => ({
  caFile: join(localTlsDir(root), 'ca.crt'),
  certFile: join(localTlsDir(root), `${LOCAL_CLIENT_NAME}.crt`),
  keyFile: join(localTlsDir(root), `${LOCAL_CLIENT_NAME}.key`),
});
export const lockPath = (root: string): string => join(root, 'up.lock');
/** What the `consul` command needs to speak to a TLS local cluster (CA, hactl's certificate, the management token). */
export const localConsulEnv = (root: string): string => join(root, 'consul.env');

/** The sample manager's hook (examples/manager/hook.ts, compiled), run by each sidecar for every role. */
export const sampleManagerHook = (): string => join(projectRoot(), 'dist', 'examples', 'manager', 'hook.js');

/** The compiled sidecar every node runs (`npm run build`). */
export const sidecarMain = (): string => join(projectRoot(), 'dist', 'sidecar', 'main.js');

/** A node's name and the URLs that follow from its address: node i (from 0) is `n<i+1>`. */
export interface NodeIdentity {
  name: string;
  address: string;
  apiUrl: string;
  consulUrl: string;
}

/** `tls`: the sidecar API and Consul speak HTTPS (the sidecar's config has a `tls` section, Consul its tls.hcl). */
export function nodeIdentity(index: number, address: string, tls: boolean): NodeIdentity {
  return {
    name: `n${index + 1}`,
    address,
    apiUrl: `${tls ? 'https' : 'http'}://${address}:${PORTS.sidecarApi}`,
    consulUrl: tls ? `https://${address}:${PORTS.consulHttps}` : `http://${address}:${PORTS.consulHttp}`,
  };
}

/** Where one node's files are, as the cluster driver needs them; the harness keeps them in a temp dir. */
export interface NodeFiles {
  /** The node's directory, the working directory of its processes. */
  dir: string;
  consulConfigDir: string;
  consulDataDir: string;
  consulLog: string;
  sidecarConfig: string;
  sidecarLog: string;
  /** The sidecar's `dataDir`. */
  dataDir: string;
}

/** Where one node of the local cluster keeps its files, below `<root>/nX`. */
export interface LocalNodeFiles extends NodeFiles {
  consulDir: string;
  /** Where the sidecar runs Postgres: `<dataDir>/postgres` (sidecar/postgres/settings.ts, postgresSettings). */
  postgresDataDir: string;
  /** The node's mirrored file directory. */
  filesDir: string;
  /** The sample manager's config file (0600: it holds the database password) and its state directory. */
  managerConfig: string;
  managerDir: string;
}

/** Everything about one node that follows from the root directory, its index and the base address. */
export type NodeLayout = NodeIdentity & LocalNodeFiles;

export function localNodeFiles(root: string, name: string): LocalNodeFiles {
  const dir = join(root, name);
  const dataDir = join(dir, 'data');
  return {
    dir,
    consulDir: join(dir, 'consul'),
    consulConfigDir: join(dir, 'consul', 'config'),
    consulDataDir: join(dir, 'consul', 'data'),
    consulLog: join(dir, 'consul.log'),
    sidecarConfig: join(dir, 'sidecar.json'),
    sidecarLog: join(dir, 'sidecar.log'),
    dataDir,
    postgresDataDir: join(dataDir, 'postgres'),
    filesDir: join(dir, 'files'),
    managerConfig: join(dir, 'manager.json'),
    managerDir: join(dir, 'manager'),
  };
}

/**
 * The addresses of `count` nodes from `base` upwards (`127.0.0.11` -> .11, .12, .13). Only loopback
 * addresses: with --no-tls the local cluster's Consul runs without TLS and ACLs, so it must not listen on a network.
 */
export function nodeAddresses(base: string, count: number): string[] {
  if (!isIPv4(base) || !base.startsWith('127.')) {
    throw usageError(`--base-address must be an IPv4 loopback address (127.x.y.z), not "${base}"`, 'bad_value');
  }
  const parts = base.split('.').map(Number);
  const last = parts[3] ?? 0;
  if (last < 1 || last + count - 1 > 254) {
    throw usageError(`--base-address ${base} leaves no room for ${count} nodes (the last byte must stay in 1..254)`, 'bad_value');
  }
  return Array.from({ length: count }, (_, i) => `${parts[0]}.${parts[1]}.${parts[2]}.${last + i}`);
}

export function nodeLayouts(root: string, base: string, count: number, tls: boolean): NodeLayout[] {
  return nodeAddresses(base, count).map((address, i) => {
    const identity = nodeIdentity(i, address, tls);
    return { ...identity, ...localNodeFiles(root, identity.name) };
  });
}

/** The one node called `name`, or `unknown_node` listing the ones there are. */
export function findNode(nodes: readonly NodeLayout[], name: string): NodeLayout {
  const node = nodes.find((n) => n.name === name);
  if (node === undefined) {
    throw new SidecarError('unknown_node', `the local cluster has no node "${name}" (it has ${nodes.map((n) => n.name).join(', ')})`, 404);
  }
  return node;
}

/** The ports one node needs free before `up` starts it; UDP is Consul's gossip, which uses both. */
export function portsOf(postgres: boolean, tls: boolean): { port: number; what: string; udp?: boolean }[] {
  const ports: { port: number; what: string; udp?: boolean }[] = [
    ...consulPorts(tls),
    { port: PORTS.sidecarApi, what: 'sidecar API' },
    { port: PORTS.fileMirror, what: 'file mirror' },
  ];
  if (postgres) ports.push({ port: PORTS.postgres, what: 'PostgreSQL' }, { port: PORTS.manager, what: 'sample manager' });
  return ports;
}

/** Consul's ports of one node, checked before a node's Consul alone starts (again). */
export function consulPorts(tls: boolean): { port: number; what: string; udp?: boolean }[] {
  return [
    { port: PORTS.consulServer, what: 'consul server RPC' },
    { port: PORTS.consulSerf, what: 'consul gossip' },
    { port: PORTS.consulSerf, what: 'consul gossip (UDP)', udp: true },
    tls ? { port: PORTS.consulHttps, what: 'consul HTTPS API' } : { port: PORTS.consulHttp, what: 'consul HTTP API' },
  ];
}
