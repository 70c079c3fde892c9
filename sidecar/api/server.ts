import { timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { snapshotKeep, snapshotSchedule, type DynamicConfig } from '../consul/records.js';
import { SidecarError, isSidecarError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { addSnapshotRoutes } from '../snapshot/routes.js';
import type { SnapshotService } from '../snapshot/service.js';
import { parseByteSize } from '../units.js';
import { dsnQuery, type DsnChoice } from './dsn.js';
import { PROBES, type ProbeName } from './probes.js';

/** What the API needs of the node; the node (sidecar/node.ts) implements it. */
export interface ApiBackend {
  /** 200/503 probes for load balancers, Kubernetes and Consul checks; `lagLimit` from `?lag=` (bytes). */
  probe(name: ProbeName, lagLimit: number | undefined): Promise<{ ok: boolean; body: Record<string, unknown> }>;
  cluster(): Promise<unknown>;
  /** The dynamic config as stored in Consul. */
  readConfig(): Promise<unknown>;
  /** A libpq connection URI of the application database on the chosen member. */
  dsn(choice: DsnChoice): Promise<unknown>;
  history(): Promise<unknown>;
  metrics(): Promise<{ contentType: string; text: string }>;
  /** Throws `not_cluster_leader` (409) unless this node is the ready leader. */
  assertLeader(): void;
  startCluster(nodeName: string): Promise<unknown>;
  joinCluster(nodeName: string, force: boolean): Promise<unknown>;
  removeNode(name: string): Promise<unknown>;
  switchover(to: string | undefined): Promise<unknown>;
  patchConfig(patch: Record<string, unknown>): Promise<unknown>;
  /** Snapshots (sidecar/snapshot/): `/snapshots`. */
  readonly snapshots: SnapshotService;
  /** Makes `to` the leader of a cluster that has none (see sidecar/recovery.ts). */
  failover(to: string, force: boolean): Promise<unknown>;
  /** Reload, restart or reinit this node's Postgres; restart and reinit run on (postgresOperation). */
  postgresAction(action: 'reload' | 'restart' | 'reinit'): Promise<unknown>;
  postgresOperation(): Promise<unknown>;
  /** Waits until `paths` are installed on a synchronous standby (synchronous mode; see FilesParticipant.syncFiles). */
  filesSync(paths: string[]): Promise<unknown>;
}


/** `?lag=` of a probe: bytes, or a size with a unit (`16MB`, `16MiB`); absent means the cluster's limit. */
function lagParam(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new SidecarError('bad_request', 'give ?lag= once, as bytes or a size like 16MB', 400);
  try {
    return parseByteSize(value);
  } catch (e) {
    throw new SidecarError('bad_request', `invalid ?lag=: ${(e as Error).message}`, 400);
  }
}

const startBody = z.object({ nodeName: z.string().min(1) }).strict();
const joinBody = z.object({ nodeName: z.string().min(1), force: z.boolean().default(false), leaderUrl: z.string().optional() }).strict();
const switchoverBody = z.object({ to: z.string().min(1).optional() }).strict();
const filesSyncBody = z.object({ paths: z.array(z.string().min(1)).min(1).max(1000) }).strict();
const failoverBody = z.object({ to: z.string().min(1), force: z.boolean().default(false) }).strict();
/**
 * The PATCH /config body. Not `dynamicConfig.partial()`: zod fills in the defaults of keys not given, so a
 * patch of one setting would reset the others. Typed against DynamicConfig so the two cannot drift apart.
 */
const configPatch: z.ZodType<Partial<DynamicConfig>> = z
  .object({
    paused: z.boolean(),
    synchronousMode: z.boolean(),
    synchronousModeStrict: z.boolean(),
    maxReplicaLag: z.number().int().nonnegative(),
    snapshotKeep,
    snapshotSchedule,
  })
  .partial()
  .strict()
  .refine((p) => Object.keys(p).length > 0, 'give at least one setting to change');

function parse<T>(schema: z.ZodType<T>, body: unknown, what = 'body'): T {
  const result = schema.safeParse(body ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : issue.path.join('.') || 'body';
    throw new SidecarError('bad_request', `invalid request ${what}: ${where}: ${issue.message}`, 400);
  }
  return result.data;
}

/** Constant-time comparison of the bearer token, so its value cannot be guessed from response times. */
function requireToken(token: string) {
  const expected = Buffer.from(token);
  return (req: Request, _res: Response, next: NextFunction) => {
    const given = Buffer.from((req.header('authorization') ?? '').replace(/^Bearer\s+/i, ''));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new SidecarError('unauthorized', 'this call needs the cluster token: Authorization: Bearer <token>', 401);
    }
    next();
  };
}

/** The HTTP API of one sidecar (port 8008): probes, status, metrics and the token-guarded cluster operations. */
export function createApi(backend: ApiBackend, clusterToken: string, log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json({ limit: '64kb' }));

  // GET, HEAD and OPTIONS answer the same status: load balancers differ in which one they send.
  for (const name of PROBES) {
    app.all(`/${name}`, async (req, res, next) => {
      if (!['GET', 'HEAD', 'OPTIONS'].includes(req.method)) return next();
      const { ok, body } = await backend.probe(name, lagParam(req.query.lag));
      res.status(ok ? 200 : 503).json(body);
    });
  }
  app.get('/cluster', async (_req, res) => res.json(await backend.cluster()));
  app.get('/config', async (_req, res) => res.json(await backend.readConfig()));
  app.get('/history', async (_req, res) => res.json(await backend.history()));
  app.get('/metrics', async (_req, res) => {
    const { contentType, text } = await backend.metrics();
    res.type(contentType).send(text);
  });

  const auth = requireToken(clusterToken);
  const leaderOnly = (_req: Request, _res: Response, next: NextFunction) => {
    backend.assertLeader();
    next();
  };
  app.post('/cluster/start', auth, async (req, res) => res.json(await backend.startCluster(parse(startBody, req.body).nodeName)));
  app.post('/cluster/join', auth, async (req, res) => {
    const body = parse(joinBody, req.body);
    res.json(await backend.joinCluster(body.nodeName, body.force));
  });
  // The password derives from the cluster token anyway: whoever holds the token can compute it.
  app.get('/dsn', auth, async (req, res) => res.json(await backend.dsn(parse(dsnQuery, req.query, 'query'))));
  app.delete('/cluster/nodes/:name', auth, leaderOnly, async (req, res) => res.json(await backend.removeNode(String(req.params.name))));
  app.post('/switchover', auth, leaderOnly, async (req, res) => res.json(await backend.switchover(parse(switchoverBody, req.body).to)));
  app.patch('/config', auth, leaderOnly, async (req, res) => res.json(await backend.patchConfig(parse(configPatch, req.body))));
  app.post('/pause', auth, leaderOnly, async (_req, res) => res.json(await backend.patchConfig({ paused: true })));
  app.post('/resume', auth, leaderOnly, async (_req, res) => res.json(await backend.patchConfig({ paused: false })));
  addSnapshotRoutes(app, backend.snapshots, auth, leaderOnly, log);
  // No leader exists when a failover is needed: any node takes it.
  app.post('/failover', auth, async (req, res) => {
    const body = parse(failoverBody, req.body);
    res.json(await backend.failover(body.to, body.force));
  });
  // About this node's own Postgres: hactl sends them to the node it names.
  app.post('/postgres/reload', auth, async (_req, res) => res.json(await backend.postgresAction('reload')));
  app.post('/postgres/restart', auth, async (_req, res) => res.status(202).json(await backend.postgresAction('restart')));
  app.post('/postgres/reinit', auth, async (_req, res) => res.status(202).json(await backend.postgresAction('reinit')));
  app.get('/postgres/operation', async (_req, res) => res.json(await backend.postgresOperation()));
  // No token: it changes nothing (the leader reads the named paths again, as a watch event would) and tells
  // only a sequence; the manager calls it before acknowledging an upload.
  app.post('/files/sync', leaderOnly, async (req, res) => res.json(await backend.filesSync(parse(filesSyncBody, req.body).paths)));

  app.use((req: Request) => {
    throw new SidecarError('not_found', `no such endpoint: ${req.method} ${req.path}`, 404);
  });
  // Every error leaves as { error: <stable code>, message }, with the details a client can act on.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (isSidecarError(err)) {
      if (err.status >= 500) log.error('API call failed', { path: req.path, code: err.code, error: err.message });
      res.status(err.status).json({ error: err.code, message: err.message, ...err.details });
      return;
    }
    const e = err as { type?: string; status?: number; message?: string };
    if (e.type === 'entity.parse.failed' || e.status === 400) {
      res.status(400).json(errorBody('bad_request', `request body is not valid JSON: ${e.message}`));
      return;
    }
    if (e.status === 413) {
      res.status(413).json(errorBody('body_too_large', 'request body is larger than 64 kB'));
      return;
    }
    log.error('API call failed', { path: req.path, error: e.message });
    res.status(500).json(errorBody('internal_error', e.message ?? 'internal error'));
  });
  return app;
}

/** The body of an error answer that is no SidecarError: a code of the table (sidecar/error-codes.ts) and a message. */
const errorBody = (error: ErrorCode, message: string) => ({ error, message });

/** Listens on address:port; rejects with `port_in_use` rather than crashing when the port is taken. */
export function listen(app: express.Express, address: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, address);
    server.once('listening', () => resolve(server));
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new SidecarError(e.code === 'EADDRINUSE' ? 'port_in_use' : 'listen_failed', `cannot listen on ${address}:${port}: ${e.code ?? e.message}`)),
    );
  });
}
