import { join } from 'node:path';
import type { DriverNode, NodeFiles, Part } from '../../cli/local/driver.js';
import { ClusterDriver, logOf } from '../../cli/local/driver.js';
import { sidecarMain } from '../../cli/local/layout.js';
import { consulBinary } from '../../cli/local/paths.js';
import { loopbackPlacement, type NodePlacement } from './net.js';
import type { ProcessGroup } from './processes.js';
import type { FetchFunction } from '../../sidecar/shared/https-fetch.js';

/**
 * The shared cluster driver (cli/local/driver.ts) as the tests use it: nodes on the test net (net.ts), files
 * in the test's temporary directory, processes as named children in the test's ProcessGroup.
 */

/** A test node's directory: `<base>/nX` with Consul in `consul/`, the sidecar's data in `sidecar/`. */
export function testNodeFiles(baseDir: string, name: string): NodeFiles {
  const dir = join(baseDir, name);
  return {
    dir,
    consulConfigDir: join(dir, 'consul', 'config'),
    consulDataDir: join(dir, 'consul', 'data'),
    consulLog: join(dir, 'consul', 'consul.log'),
    sidecarConfig: join(dir, 'sidecar.json'),
    sidecarLog: join(dir, 'sidecar.log'),
    dataDir: join(dir, 'sidecar'),
  };
}

/** The name of a node's process in the group (`consul-n1`, `sidecar-n2`), by which tests find it. */
export const processName = (node: { name: string }, part: Part): string => `${part}-${node.name}`;

export interface TestDriverOptions {
  size: number;
  baseDir: string;
  processes: ProcessGroup;
  clusterToken: string;
  postgres: boolean;
  consulSecrets?: { gossipKey: string; aclManagementToken: string };
  /** The sidecar API over HTTPS with the CA and node certificates in `dir`; `fetch` then verifies with that CA. */
  tls?: { dir: string; verifyClient: boolean };
  fetch?: FetchFunction;
  /** Where node i lives and how its processes are wrapped (its network namespace); loopback by default. */
  placement?: NodePlacement;
  /** How a node's process starts; a child in `processes`, logging to its node's log, by default. */
  spawn?: (node: DriverNode, part: Part, argv: string[]) => Promise<void>;
}

export function testDriver(opts: TestDriverOptions): ClusterDriver {
  const placement = opts.placement ?? loopbackPlacement;
  const inGroup = async (node: DriverNode, part: Part, [command, ...args]: string[]): Promise<void> => {
    const [program, argv] = placement.wrap(Number(node.name.slice(1)) - 1, command as string, args);
    opts.processes.start(processName(node, part), program, argv, logOf(node, part), {}, node.dir);
  };
  return new ClusterDriver({
    size: opts.size,
    addressOf: (i) => placement.address(i),
    filesOf: (name) => testNodeFiles(opts.baseDir, name),
    spawn: opts.spawn ?? inGroup,
    isRunning: (node, part) => opts.processes.get(processName(node, part)) !== undefined,
    stop: (node, part) => opts.processes.stop(processName(node, part), 'SIGTERM'),
    clusterName: 'test',
    clusterToken: opts.clusterToken,
    postgres: opts.postgres,
    consulBinary,
    sidecarMain,
    consulSecrets: opts.consulSecrets,
    tls: opts.tls,
    fetch: opts.fetch ?? ((url, init) => fetch(url, init)),
  });
}
