import { randomBytes } from 'node:crypto';
import { chmodSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, closeSync, fsyncSync } from 'node:fs';
import { z } from 'zod';
import { SidecarError, errorMessage } from '../../sidecar/errors.js';
import type { NodeLayout } from './layout.js';
import { statePath } from './layout.js';

/**
 * `state.json`: what `up` started, so `down`, `status`, `kill` and `start` find it from another hactl
 * process. It holds the cluster token, so it is written 0600, atomically (temporary file + rename).
 */

const pid = z.number().int().positive().nullable();

const NodeStateSchema = z.object({
  name: z.string(),
  address: z.string(),
  apiUrl: z.string(),
  consulUrl: z.string(),
  /** The processes `up` (or `start`) spawned; Postgres is the sidecar's child, found from its pid file. */
  pids: z.object({ consul: pid, sidecar: pid }),
});

const StateSchema = z.object({
  version: z.literal(1),
  clusterName: z.string(),
  baseAddress: z.string(),
  postgres: z.boolean(),
  /** The sidecar API over HTTPS with the CA in `<root>/tls`; a state from before TLS ran without it. */
  tls: z.boolean().default(false),
  token: z.string().min(16),
  createdAt: z.string(),
  /** The hactl process of a foreground `up` that watches the cluster; null once detached or stopped. */
  supervisorPid: pid,
  nodes: z.array(NodeStateSchema).min(1),
});

export type NodeState = z.infer<typeof NodeStateSchema>;
export type LocalState = z.infer<typeof StateSchema>;
export type Part = keyof NodeState['pids'];

/** A fresh cluster token: 32 URL-safe characters (the sidecar wants at least 16). */
export const newClusterToken = (): string => randomBytes(24).toString('base64url');

export function initialState(opts: {
  clusterName: string;
  baseAddress: string;
  postgres: boolean;
  tls: boolean;
  token: string;
  nodes: readonly NodeLayout[];
}): LocalState {
  return {
    version: 1,
    clusterName: opts.clusterName,
    baseAddress: opts.baseAddress,
    postgres: opts.postgres,
    tls: opts.tls,
    token: opts.token,
    createdAt: new Date().toISOString(),
    supervisorPid: null,
    nodes: opts.nodes.map((n) => ({
      name: n.name,
      address: n.address,
      apiUrl: n.apiUrl,
      consulUrl: n.consulUrl,
      pids: { consul: null, sidecar: null },
    })),
  };
}

/** The state in `root`, or null when there is none yet. A damaged file is `bad_local_state`, naming it. */
export function loadState(root: string): LocalState | null {
  const path = statePath(root);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SidecarError('bad_local_state', `cannot read ${path}: ${errorMessage(e)}`, 500);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SidecarError('bad_local_state', `${path} is not valid JSON (${errorMessage(e)}); stop any processes by hand and remove it`, 500);
  }
  const parsed = StateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join('.') : 'top level';
    throw new SidecarError('bad_local_state', `${path} is not a local cluster state file: ${where}: ${issue?.message ?? 'invalid'}`, 500);
  }
  return parsed.data;
}

/** Writes the state atomically with mode 0600. */
export function saveState(root: string, state: LocalState): void {
  const path = statePath(root);
  const temp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(temp, `${JSON.stringify(StateSchema.parse(state), null, 2)}\n`, { mode: 0o600 });
    chmodSync(temp, 0o600);
    const fd = openSync(temp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw new SidecarError('local_state_save_failed', `cannot write ${path}: ${errorMessage(e)}`, 500);
  }
}

/** Records one process's pid (null once it stopped) and saves at once, so no other hactl misses it. */
export function recordPid(root: string, state: LocalState, node: string, part: Part, value: number | null): void {
  const entry = state.nodes.find((n) => n.name === node);
  if (entry === undefined) throw new Error(`state has no node ${node}`);
  entry.pids[part] = value;
  saveState(root, state);
}
