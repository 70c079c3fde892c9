import type { Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import { snapshotKeep, snapshotSchedule, type DynamicConfig } from '../consul/records.js';
import { SidecarError, isSidecarError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log.js';
import { addSnapshotRoutes } from '../snapshot/routes.js';
import type { SnapshotService } from '../snapshot/service.js';
import { parseByteSize } from '../units.js';
import { accessRules, type AccessPolicy } from './access.js';
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
  /** Every peer's ports checked from this node, TLS handshakes included (`hactl cluster validate`). */
  reachability(): Promise<unknown>;
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
  /** Waits until `paths` are installed on a synchronous standby (synchronous mode; see MirrorParticipant.syncFiles). */
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

/** The HTTP API of one sidecar (port 8008): probes, status, metrics and the token-guarded cluster operations. */
export function createApi(backend: ApiBackend, policy: AccessPolicy, log: Logger): express.Express {
  const app = express();
  app.disable('x-powered-by');
  const access = accessRules(policy);
  app.use(access.everyRequest);
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
  app.get('/reachability', async (_req, res) => res.json(await backend.reachability()));
  app.get('/metrics', async (_req, res) => {
    const { contentType, text } = await backend.metrics();
    res.type(contentType).send(text);
  });

  const auth = access.operate;
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
  // No token (but a client certificate or the token with TLS, as for every route): it changes nothing (the leader reads the named paths again, as a watch event would) and tells
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

/** The API's server certificate, its key and the CA that signs the client certificates it accepts (PEM). */
export interface ServerTls {
  cert: string;
  key: string;
  ca: string;
}

/** The listening API; `close` lets requests in flight finish, then drops every connection. */
export interface ApiServer {
  /** The port it listens on (the one asked for, or the one the system chose for 0). */
  port: number;
  close(): Promise<void>;
  /**
   * HTTPS only: new handshakes get this certificate (a renewal, `POST /postgres/reload`); connections open
   * now keep the one they shook hands with. Null on a plain-HTTP server.
   */
  setTls: ((tls: ServerTls) => void) | null;
}

/** The first byte of a TLS connection: a handshake record. Anything else is someone speaking plain HTTP. */
const TLS_HANDSHAKE = 0x16;
const MIN_TLS_VERSION = 'TLSv1.2';
/** A connection that sends nothing for this long is dropped before it reaches TLS or HTTP. */
const FIRST_BYTE_TIMEOUT_MS = 10_000;

/**
 * The answer to a plain-HTTP request on the HTTPS port. Without it a client sees only a closed connection
 * ("empty reply from server"); with it, what to change.
 */
function httpsRequired(address: string, port: number): string {
  const body = JSON.stringify({ error: 'https_required', message: `this port speaks HTTPS only: use https://${address}:${port} with the cluster CA` });
  return `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/**
 * Listens on address:port, over HTTPS only when `tls` is given; rejects with `port_in_use` rather than
 * crashing when the port is taken.
 *
 * With TLS, each connection's first byte decides: a TLS handshake goes on to the HTTPS server; anything else
 * gets a plain `400 https_required` and is closed, so a client on http:// learns why instead of seeing a reset.
 * The server asks every client for a certificate but lets the handshake finish without one: the access rule
 * (access.ts) decides per request, since the probes answer without a certificate.
 */
export function listen(app: express.Express, address: string, port: number, log: Logger, tls?: ServerTls): Promise<ApiServer> {
  if (tls === undefined) return listening(app.listen(port, address), address, port, () => undefined, null);
  const server = createHttpsServer({ ...tls, requestCert: true, rejectUnauthorized: false, minVersion: MIN_TLS_VERSION }, app);
  // A client that gives up on the handshake (it does not trust this certificate, or speaks garbage): its
  // socket is gone; said at debug, since scanners and misconfigured checks repeat it endlessly.
  server.on('tlsClientError', (e: NodeJS.ErrnoException, socket) => {
    log.debug('TLS handshake failed', { code: 'tls_handshake_failed', remote: socket.remoteAddress, error: e.code ?? e.message });
    socket.destroy();
  });
  // The TLS server's own connection listener starts the handshake at once; it runs here only after the first
  // byte said TLS. Everything else (HTTP's timeouts, connection tracking, close) stays the HTTPS server's own.
  const [startTls] = server.listeners('connection') as ((socket: Socket) => void)[];
  if (startTls === undefined) throw new Error('node:https gave its server no connection listener');
  server.removeAllListeners('connection');
  /** Connections not handed to TLS: before their first byte, or being told to use HTTPS. */
  const waiting = new Set<Socket>();
  const warnedPlain = new Set<string>();
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => undefined); // a reset before the first byte; the TLS socket reports later ones
    waiting.add(socket);
    socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.once('close', () => waiting.delete(socket));
    socket.once('data', (first: Buffer) => {
      if (first[0] === TLS_HANDSHAKE) {
        waiting.delete(socket);
        socket.setTimeout(0);
        socket.pause();
        socket.unshift(first);
        return startTls.call(server, socket);
      }
      // The rest of the request is read and dropped, so the client's close is seen and the socket goes;
      // the timeout above still ends one that never closes, and `close` ends any left.
      socket.resume();
      const remote = socket.remoteAddress ?? 'unknown';
      if (!warnedPlain.has(remote) && warnedPlain.size < 1000) {
        warnedPlain.add(remote);
        log.warn('refused a plain-HTTP request on the HTTPS API (said once per client address)', { code: 'https_required', remote });
      }
      socket.end(httpsRequired(address, port));
    });
  });
  server.listen(port, address);
  // requestCert and rejectUnauthorized are the server's, not the context's: a new context keeps them.
  const setTls = (next: ServerTls) => server.setSecureContext({ ...next, minVersion: MIN_TLS_VERSION });
  return listening(server, address, port, () => {
    for (const socket of waiting) socket.destroy();
  }, setTls);
}

/** Resolves once `server` listens; its `close` lets requests in flight finish, then drops every connection. */
function listening(server: HttpServer | HttpsServer, address: string, port: number, dropWaiting: () => void, setTls: ApiServer['setTls']): Promise<ApiServer> {
  const close = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    dropWaiting();
    await closed;
    server.closeAllConnections();
  };
  return new Promise((resolve, reject) => {
    server.once('listening', () => resolve({ port: (server.address() as AddressInfo).port, close, setTls }));
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new SidecarError(e.code === 'EADDRINUSE' ? 'port_in_use' : 'listen_failed', `cannot listen on ${address}:${port}: ${e.code ?? e.message}`)),
    );
  });
}
