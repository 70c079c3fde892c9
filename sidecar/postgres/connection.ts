import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { Client } from '../shared/pg.js';
import { countRequest } from '../outgoing.js';
import type { Upstream } from './conf.js';
import { SUPERUSER, type PostgresSettings } from './settings.js';

/** Connecting to a server on this machine or a peer's takes milliseconds; one that takes 3 s is not usable this turn. */
const CONNECT_TIMEOUT_MS = 3_000;
/** Client-side limit of one query; catalog queries answer in milliseconds, so 10 s means the server is stuck. */
const QUERY_TIMEOUT_MS = 10_000;

export interface ConnectOptions {
  database?: string;
  /** A peer's server over TCP; default: this node's over its unix socket. */
  target?: Upstream;
  queryTimeoutMs?: number;
  connectTimeoutMs?: number;
}

/**
 * A connection as the superuser: over this node's unix socket, or to `target` over TCP. Always closed.
 * `synchronous_commit` is `local` in these sessions: the sidecar's own writes never wait for a standby.
 */
export async function withClient<T>(settings: PostgresSettings, fn: (c: pg.Client) => Promise<T>, opts: ConnectOptions = {}): Promise<T> {
  const client = superuserClient(settings, opts);
  // A server that goes away mid-session emits 'error' on the client; the pending query rejects anyway.
  client.on('error', () => undefined);
  countRequest(opts.target ? 'peer' : 'postgres');
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function superuserClient(settings: PostgresSettings, opts: ConnectOptions): pg.Client {
  return new Client({
    ssl: opts.target ? peerSsl(settings) : false,
    host: opts.target?.host ?? settings.socketDir,
    port: opts.target?.port ?? settings.port,
    user: SUPERUSER,
    password: settings.superuserPassword,
    database: opts.database ?? 'postgres',
    application_name: 'ha-sidecar',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    query_timeout: opts.queryTimeoutMs ?? QUERY_TIMEOUT_MS,
    options: '-c synchronous_commit=local',
  });
}

/**
 * A peer's server over TCP, with TLS: as libpq's verify-full (the peer's certificate of the cluster CA,
 * naming the address connected to; node's default checks), showing this node's certificate for the peer's
 * clientcert. The files are read at each connection, so renewed ones are used as soon as they are in place.
 */
function peerSsl(settings: PostgresSettings): ConnectionOptions | false {
  if (!settings.tls) return false;
  const { caFile, certFile, keyFile } = settings.tls;
  return { ca: readFileSync(caFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

/**
 * One superuser session over this node's unix socket, kept open between uses, for the reads the loop makes
 * every turn (status, replication slots). A connection per read cost a backend fork and a SCRAM exchange
 * each: three a second per node, about 2 % of a core between the backends and the sidecar. The session is
 * opened on first use and dropped once it breaks (the server stopped or restarted: the next use opens a
 * fresh one, so a restarted server answers as a new connection would), after a failed use, and by `close()`.
 * It never holds a transaction open, so it holds up no stop (fast and immediate shutdowns end it), rewind
 * or clone; and its socket does not keep the process alive.
 */
export class KeptSession {
  private client: pg.Client | null = null;
  private broken = false;

  constructor(private readonly settings: PostgresSettings) {}

  async use<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.open());
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private async open(): Promise<pg.Client> {
    if (this.client && !this.broken) return this.client;
    this.close();
    const client = superuserClient(this.settings, {});
    this.broken = false;
    // A server that goes away emits 'error' or 'end' on the client: the next use connects afresh.
    const lost = () => {
      if (this.client === client) this.broken = true;
    };
    client.on('error', lost);
    client.on('end', lost);
    countRequest('postgres');
    await client.connect();
    (client as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
    this.client = client;
    return client;
  }

  close(): void {
    const client = this.client;
    this.client = null;
    void client?.end().catch(() => undefined);
  }
}

/** One query over this node's unix socket; the rows. */
export async function queryRows<R extends pg.QueryResultRow = pg.QueryResultRow>(
  settings: PostgresSettings,
  sql: string,
  params: unknown[] = [],
  database = 'postgres',
): Promise<R[]> {
  return (await withClient(settings, (c) => c.query<R>(sql, params), { database })).rows;
}

/** `host:port`, for messages and logs. */
export const describe = (u: Upstream): string => `${u.host}:${u.port}`;
