#!/usr/bin/env node
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Pool } from '../../sidecar/shared/pg.js';
import { httpsFetch } from '../../sidecar/shared/https-fetch.js';
import { configArg, paths, readSampleConfig, roleFileSchema, type RoleFile } from './config.js';

/**
 * A sample manager application made highly available by ha-sidecar. It runs on every node; its hooks tell it
 * its role through a role file. On the leader it serves an API that writes records to the application
 * database and uploaded files into the mirrored directory; elsewhere it answers 503. `GET /health` is the
 * sidecar's `manager.healthUrl`: 200 on a standby that runs, and on the leader only while its database takes
 * writes.
 *
 * It fences itself: it serves as leader only while its own sidecar says (GET /health, every 500 ms) that it
 * leads in the term the hook gave. A sidecar killed with -9 cannot run the standby hook, so without this the
 * manager would keep serving after another node took over. Only while the role file says leader: elsewhere it
 * serves nothing whatever its sidecar says, so asking would cost its sidecar two HTTPS requests a second
 * for nothing (a leader's first ask comes within 500 ms of its hook, before which it does not serve).
 */

const WATCHDOG_MS = 500;
/** The sidecar's word is trusted this long; after that (sidecar dead or hung) the manager stops serving. */
const WATCHDOG_TRUST_MS = 1_500;
const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;

const config = readSampleConfig(configArg(process.argv));
/** Calls this node's sidecar: over HTTPS with its CA and the node's certificate when the sidecar has TLS. */
const sidecar = httpsFetch(
  config.sidecarApiTls && {
    ca: readFileSync(config.sidecarApiTls.caFile, 'utf8'),
    cert: readFileSync(config.sidecarApiTls.certFile, 'utf8'),
    key: readFileSync(config.sidecarApiTls.keyFile, 'utf8'),
  },
);
const files = paths(config);
mkdirSync(config.filesDir, { recursive: true });
const log = (message: string, fields: Record<string, unknown> = {}) =>
  process.stderr.write(`${JSON.stringify({ at: new Date().toISOString(), node: config.node, message, ...fields })}\n`);

const { caFile, ...postgres } = config.postgres;
// node-postgres checks the certificate against the host connected to (the node's address), as libpq's verify-full.
const pool = new Pool({ ...postgres, ssl: caFile !== undefined && { ca: readFileSync(caFile, 'utf8') }, max: 4, connectionTimeoutMillis: 1_000, query_timeout: 2_000 });
pool.on('error', (e) => log('idle database connection failed', { error: e.message })); // a failover drops them

function roleFile(): RoleFile {
  try {
    return roleFileSchema.parse(JSON.parse(readFileSync(files.role, 'utf8')));
  } catch {
    return { role: 'standby', term: 0, at: '' };
  }
}

/** When the sidecar last said it leads, and in which term. */
let sidecarLeads: { term: number; at: number } | null = null;
setInterval(async () => {
  if (roleFile().role !== 'leader') {
    sidecarLeads = null;
    return;
  }
  try {
    const res = await sidecar(`${config.sidecarApiUrl}/health`, { signal: AbortSignal.timeout(WATCHDOG_MS) });
    const body = (await res.json()) as { role?: string; term?: number };
    sidecarLeads = body.role === 'leader' || body.role === 'candidate' ? { term: body.term ?? -1, at: Date.now() } : null;
  } catch {
    /* no answer: the trust runs out by itself */
  }
}, WATCHDOG_MS).unref();

/** Leader only when the hook said so and the sidecar confirms it leads in that term, recently. */
function leading(): RoleFile | null {
  const r = roleFile();
  const confirmed = sidecarLeads !== null && sidecarLeads.term === r.term && Date.now() - sidecarLeads.at < WATCHDOG_TRUST_MS;
  return r.role === 'leader' && confirmed ? r : null;
}

let schemaTerm = -1;
async function ensureSchema(term: number): Promise<void> {
  if (schemaTerm === term) return;
  await pool.query('create table if not exists records (id bigserial primary key, body text not null, node text not null, term int not null, created_at timestamptz not null default now())');
  schemaTerm = term;
}

const app = express();
app.disable('x-powered-by');

app.get('/health', async (_req, res) => {
  const r = roleFile();
  if (r.role !== 'leader') return res.status(r.role === 'stopped' ? 503 : 200).json({ node: config.node, role: r.role, term: r.term });
  try {
    const { rows } = await pool.query<{ writable: boolean }>('select not pg_is_in_recovery() as writable');
    if (!rows[0]?.writable) throw new Error('the database is read-only');
    await ensureSchema(r.term);
    res.json({ node: config.node, role: 'leader', term: r.term, database: 'writable', serving: leading() !== null });
  } catch (e) {
    res.status(503).json({ node: config.node, role: 'leader', term: r.term, error: 'database_unavailable', message: (e as Error).message });
  }
});

/** Everything below serves on the leader only. */
app.use((_req: Request, res: Response, next: NextFunction) => {
  const r = leading();
  if (r) return void ((res.locals.term = r.term), next());
  res.status(503).json({ error: 'not_leader', node: config.node, message: 'this manager is not the active one; ask the load balancer' });
});

app.post('/records', express.json({ limit: '64kb' }), async (req, res) => {
  const body = typeof req.body?.body === 'string' ? req.body.body : JSON.stringify(req.body ?? null);
  await ensureSchema(res.locals.term as number);
  const { rows } = await pool.query<{ id: string }>('insert into records (body, node, term) values ($1, $2, $3) returning id', [body, config.node, res.locals.term]);
  res.status(201).json({ id: Number(rows[0]?.id), node: config.node, term: res.locals.term });
});

app.get('/records/:id', async (req, res) => {
  const { rows } = await pool.query('select id, body, node, term, created_at from records where id = $1', [Number(req.params.id) || 0]);
  if (!rows[0]) return res.status(404).json({ error: 'not_found', message: `no record ${req.params.id}` });
  res.json({ ...rows[0], id: Number(rows[0].id), servedBy: config.node });
});

/** Writes `data` under `name` durably: a temporary name, fsync, rename, fsync of the directory. */
function writeDurably(name: string, data: Buffer): void {
  // A temporary name in the same directory, then rename: the mirror (and readers) never see half a file.
  const tmp = join(config.filesDir, `.upload-${randomBytes(6).toString('hex')}`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(config.filesDir, name));
  const dir = openSync(config.filesDir, 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

app.put('/files/:name', express.raw({ type: () => true, limit: '20mb' }), async (req, res) => {
  const name = String(req.params.name);
  if (!FILE_NAME.test(name)) return res.status(400).json({ error: 'bad_name', message: 'file names are letters, digits, . _ - (not starting with .)' });
  const data = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  writeDurably(name, data);
  // The sidecar answers once a synchronous standby has installed the file (synchronous mode; at once
  // otherwise): only then is the upload acknowledged, so it survives the loss of this node like a commit.
  const sync = await sidecar(`${config.sidecarApiUrl}/files/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ paths: [name] }),
    signal: AbortSignal.timeout(15_000),
  });
  const answer = (await sync.json()) as { error?: string; message?: string; sequence?: number; synchronous?: boolean; standby?: string };
  if (!sync.ok) return res.status(503).json({ error: answer.error ?? 'files_not_synced', message: `the upload is written here but not acknowledged: ${answer.message ?? sync.status}` });
  res.status(201).json({ name, bytes: data.length, node: config.node, sequence: answer.sequence, synchronous: answer.synchronous, standby: answer.standby });
});

app.get('/files/:name', (req, res) => {
  const name = String(req.params.name);
  const file = join(config.filesDir, name);
  if (!FILE_NAME.test(name) || !existsSync(file)) return res.status(404).json({ error: 'not_found', message: `no file ${name}` });
  res.setHeader('x-served-by', config.node);
  res.send(readFileSync(file));
});

app.use((e: Error, _req: Request, res: Response, _next: NextFunction) => {
  log('request failed', { error: e.message });
  res.status(503).json({ error: 'unavailable', message: e.message });
});

const server = app.listen(config.port, config.address, () => log('sample manager listening', { url: `http://${config.address}:${config.port}` }));
const stop = () => {
  log('stopping');
  server.close();
  server.closeAllConnections();
  void pool.end().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
