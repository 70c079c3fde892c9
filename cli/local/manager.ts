import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SampleConfig } from '../../examples/manager/config.js';
import { deriveSecret } from '../../sidecar/shared/secrets.js';
import type { NodeLayout } from './layout.js';
import { PORTS } from './layout.js';
import { isRunning, stopProcess } from './processes.js';

/** The sample manager's config for one node: its address, the node's file directory, the app database (over SSL with the CA, as the API, when the cluster has TLS). */
export function sampleManagerConfig(node: NodeLayout, token: string, sidecarApiTls?: SampleConfig['sidecarApiTls']): SampleConfig {
  return {
    ...(sidecarApiTls !== undefined ? { sidecarApiTls } : {}),
    node: node.name,
    address: node.address,
    port: PORTS.manager,
    sidecarApiUrl: node.apiUrl,
    filesDir: node.filesDir,
    stateDir: node.managerDir,
    postgres: {
      host: node.address,
      port: PORTS.postgres,
      user: 'manager',
      password: deriveSecret(token, 'app'),
      database: 'manager',
      ...(sidecarApiTls !== undefined ? { caFile: sidecarApiTls.caFile } : {}),
    },
  };
}

/**
 * Stops the node's sample manager process when one runs (its pid file, checked against its command line).
 * Resolves true when there was one. The stopping hook does this on a graceful stop; a sidecar killed with -9
 * leaves the manager running (fenced: it answers 503 without its sidecar), and `down` clears it here.
 */
export async function stopSampleManager(node: NodeLayout): Promise<boolean> {
  let pid: number;
  try {
    pid = Number(readFileSync(join(node.managerDir, 'manager.pid'), 'utf8'));
  } catch {
    return false;
  }
  if (!isRunning(pid, node.managerConfig)) return false;
  await stopProcess(pid, () => isRunning(pid, node.managerConfig));
  return true;
}
