import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { SidecarError } from './errors.js';
import { managerSchema } from './manager/config-section.js';

const name = z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, - or _, starting with a letter');
const seconds = z.number().positive().max(600);
const port = z.number().int().min(1).max(65535);

/**
 * Timings, in seconds. The defaults keep rule 2 of the design: the leader steps down `lease` after its last
 * confirmed lock, and Consul keeps the lock from anyone else for `lockDelay` after the session dies, so as long
 * as `lease` + the time to stop writes < `lockDelay`, two writers never overlap.
 */
const timings = z
  .object({
    /** One reconcile turn; also how often the leader confirms its lock. */
    loopWait: seconds.default(1),
    /** How long a leader trusts its last confirmation (own monotonic clock, from when the request was sent). */
    lease: seconds.default(3),
    /**
     * TTL of the sidecar's own Consul check, to which the session is bound: the backstop for a sidecar that
     * died or froze where its write guard could not hand the lock over (no Postgres, or the guard gone too).
     * Longer than lease + the guard's kill and release (3 + ~0.5 s), so a frozen leader's guard releases the
     * lock (no lock-delay) before the TTL invalidates the session (with lock-delay).
     */
    checkTtl: seconds.default(5),
    /** Consul session lock-delay: nobody can take the lock for this long after the holder's session dies. */
    lockDelay: seconds.max(60).default(5),
    /** Budget for Postgres to stop taking writes after a lost lease; must fit between lease and lockDelay. */
    demoteBudget: seconds.default(1),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.lease + t.demoteBudget >= t.lockDelay) {
      ctx.addIssue({
        code: 'custom',
        path: ['lockDelay'],
        message: `must exceed lease + demoteBudget (${t.lease} + ${t.demoteBudget} s), or a new leader could write before the old one stops`,
      });
    }
    if (t.loopWait >= t.lease) {
      ctx.addIssue({ code: 'custom', path: ['loopWait'], message: `must be below lease (${t.lease} s), or the lease lapses between two confirmations` });
    }
    if (t.loopWait >= t.checkTtl) {
      ctx.addIssue({ code: 'custom', path: ['checkTtl'], message: `must exceed loopWait (${t.loopWait} s), or the alive check flaps between two passes` });
    }
  });

export const configSchema = z
  .object({
    nodeName: name,
    clusterName: name.default('main'),
    /** This node's address: the API, Postgres and the file mirror listen on it, and peers reach it there. */
    address: z.string().min(1),
    apiPort: port.default(8008),
    /** Every node's address, this one included: pg_hba lets replication in from these only. */
    clusterAddresses: z.array(z.string().min(1)).min(1).optional(),
    /** Shared secret of the cluster: authorises mutating API calls, and replication / mirror secrets derive from it. */
    clusterToken: z.string().min(16, 'at least 16 characters'),
    dataDir: z.string().min(1),
    consul: z
      .object({
        /**
         * The local Consul agent; default `http://<address>:8500`, or with `tls` `https://<address>:8501`, spoken
         * to with the cluster CA and this node's certificate (Consul's verify_incoming asks for one).
         */
        url: z.url().optional(),
        token: z.string().min(1).optional(),
      })
      .strict()
      .default({}),
    timings: timings.default({ loopWait: 1, lease: 3, checkTtl: 5, lockDelay: 5, demoteBudget: 1 }),
    /** A nofailover node never takes the lock (Patroni's tag of the same name). */
    nofailover: z.boolean().default(false),
    postgres: z
      .object({
        enabled: z.boolean().default(true),
        binDir: z.string().default('/usr/lib/postgresql/15/bin'),
        port: port.default(15432),
        runAsUser: z.string().optional(),
        appDatabase: name.default('manager'),
        appUser: name.default('manager'),
        /** The application user's password; derived from the cluster token when not given. */
        appPassword: z.string().min(8).optional(),
        /** Most a standby may be behind the last known primary position and still take over (bytes). */
        maxLagOnFailover: z.number().int().nonnegative().default(1024 * 1024),
      })
      .strict()
      .default({ enabled: true, binDir: '/usr/lib/postgresql/15/bin', port: 15432, appDatabase: 'manager', appUser: 'manager', maxLagOnFailover: 1024 * 1024 }),
    /** The file mirror: the leader's directory is copied to every standby over TLS (see sidecar/mirror/). */
    files: z
      .object({
        enabled: z.boolean().default(true),
        /** The manager's files (blueprints, plugins, resources, certificates); must exist on every node. */
        directory: z.string().min(1),
        port: port.default(22000),
        /** Full rescan on the leader (watch events can be lost) and of a standby's copy (local edits); longer pauses above 10,000 entries (rescanPauseMs). */
        rescanSeconds: seconds.default(30),
      })
      .strict()
      .optional(),
    /**
     * The API (port 8008) over HTTPS only, with this node's certificate of the cluster CA (`hactl cluster tls
     * init`). Peers, hactl and the load balancers then verify it against the CA.
     */
    tls: z
      .object({
        certFile: z.string().min(1),
        keyFile: z.string().min(1),
        caFile: z.string().min(1),
        /** Ask every client for a certificate of the CA; the probes still answer without one (sidecar/api/access.ts). */
        verifyClient: z.boolean().default(false),
      })
      .strict()
      .optional(),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    /** The manager application this cluster makes highly available: its role hooks and health URL. */
    manager: managerSchema.optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.postgres.enabled && !c.clusterAddresses?.includes(c.address)) {
      ctx.addIssue({ code: 'custom', path: ['clusterAddresses'], message: `list every node's address, ${c.address} included (Postgres lets replication in from these only)` });
    }
  });

export type SidecarConfig = Omit<z.infer<typeof configSchema>, 'clusterAddresses'> & {
  consul: { url: string };
  clusterAddresses: string[];
  /** This node's own API, as peers, hooks and the member record reach it. */
  apiUrl: string;
};
export type Timings = SidecarConfig['timings'];

/** Environment overrides, for containers and the local cluster; each wins over the file. */
const ENV_OVERRIDES: Record<string, (raw: Record<string, unknown>, value: string) => void> = {
  HA_SIDECAR_NODE_NAME: (raw, v) => (raw.nodeName = v),
  HA_SIDECAR_CLUSTER_NAME: (raw, v) => (raw.clusterName = v),
  HA_SIDECAR_ADDRESS: (raw, v) => (raw.address = v),
  HA_SIDECAR_CLUSTER_TOKEN: (raw, v) => (raw.clusterToken = v),
  HA_SIDECAR_DATA_DIR: (raw, v) => (raw.dataDir = v),
  HA_SIDECAR_CLUSTER_ADDRESSES: (raw, v) => (raw.clusterAddresses = v.split(',').map((a) => a.trim()).filter(Boolean)),
  HA_SIDECAR_CONSUL_URL: (raw, v) => (raw.consul = { ...(raw.consul as object), url: v }),
  HA_SIDECAR_CONSUL_TOKEN: (raw, v) => (raw.consul = { ...(raw.consul as object), token: v }),
  HA_SIDECAR_FILES_DIR: (raw, v) => (raw.files = { ...(raw.files as object), directory: v }),
};

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `${where === '(top level)' ? '' : where + '.'}${k}`).join(', ')}`;
  return `${where}: ${issue.message}`;
}

/** Validates a raw config object (file plus overrides). Throws `invalid_config` naming the first bad field. */
export function parseConfig(raw: unknown): SidecarConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new SidecarError('invalid_config', `invalid config: ${result.error.issues.map(describeIssue).join('; ')}`, 400);
  }
  const config = result.data;
  return {
    ...config,
    clusterAddresses: config.clusterAddresses ?? [config.address],
    consul: { ...config.consul, url: config.consul.url ?? (config.tls ? `https://${config.address}:8501` : `http://${config.address}:8500`) },
    apiUrl: `${config.tls ? 'https' : 'http'}://${config.address}:${config.apiPort}`,
  };
}

/** Reads the JSON config file, applies environment overrides and validates the result. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new SidecarError('invalid_config', `cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`, 400);
    }
    try {
      raw = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new SidecarError('invalid_config', `config file ${file} is not valid JSON: ${(e as Error).message}`, 400);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new SidecarError('invalid_config', `config file ${file} must hold a JSON object`, 400);
    }
  }
  for (const [variable, apply] of Object.entries(ENV_OVERRIDES)) {
    const value = env[variable];
    if (value !== undefined && value !== '') apply(raw, value);
  }
  return parseConfig(raw);
}
