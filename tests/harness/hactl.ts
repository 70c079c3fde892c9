import { join } from 'node:path';
import { expect } from '@jest/globals';
import { projectRoot } from '../../sidecar/shared/package.js';
import { CLUSTER_TOKEN, TEST_CLIENT_CERT, type TestCluster } from './cluster.js';
import { runCommand, type CommandRun } from './processes.js';

/** The built hactl, run as a subprocess the way an operator runs it. */
export const HACTL_JS = join(projectRoot(), 'dist', 'cli', 'hactl.js');

/** hactl with its own profiles directory and no token from the test's environment; SIGKILLed after `timeoutMs`. */
export function hactlIn(configDir: string, timeoutMs = 150_000): (...args: string[]) => Promise<CommandRun> {
  return (...args) => {
    const env: NodeJS.ProcessEnv = { ...process.env, HACTL_CONFIG_DIR: configDir };
    delete env.HACTL_TOKEN;
    return runCommand(process.execPath, [HACTL_JS, ...args], env, timeoutMs);
  };
}

/** `profiles use`'s CA and client certificate options for a TLS cluster; none for a plain one. */
export function profileTlsArgs(cluster: TestCluster): string[] {
  if (!cluster.tls) return [];
  const file = (name: string) => join(cluster.tlsDir, name);
  return ['--ca', file('ca.crt'), '--cert', file(`${TEST_CLIENT_CERT}.crt`), '--key', file(`${TEST_CLIENT_CERT}.key`)];
}

/** Starts `cluster`, waits until every standby streams, and makes hactl's profile `test` point at node 0. */
export async function startWithProfile(cluster: TestCluster, hactl: (...args: string[]) => Promise<CommandRun>): Promise<void> {
  await cluster.start();
  await cluster.waitAllStreaming();
  const use = await hactl('profiles', 'use', cluster.apiUrl(0), '--name', 'test', '--token', CLUSTER_TOKEN, ...profileTlsArgs(cluster));
  expect(use.code).toBe(0);
}
