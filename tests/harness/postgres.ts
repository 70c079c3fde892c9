import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { createLogger } from '../../sidecar/log.js';
import type { Upstream } from '../../sidecar/postgres/conf.js';
import { queryRows } from '../../sidecar/postgres/connection.js';
import { PostgresController } from '../../sidecar/postgres/controller.js';
import { postgresProcessesIn } from '../../sidecar/postgres/pid-file.js';
import { postgresNode, type PostgresNode, type PostgresSettings } from '../../sidecar/postgres/settings.js';
import { nodeAddress } from './net.js';

export const PG_BIN_DIR = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';
export const PG_TEST_PORT = Number(process.env.PG_TEST_PORT ?? 15432);

export interface PgTestNode {
  name: string;
  address: string;
  upstream: Upstream;
  settings: PostgresSettings;
  /** The validated settings and the files beside the data directory, for the modules a test calls directly. */
  node: PostgresNode;
  pg: PostgresController;
}

/** Every base directory a harness created in this process, for the exit hook. */
const everyBase = new Set<string>();
/** Extra processes a test started (helper parents), killed by the exit hook. */
export const strayPids = new Set<number>();

function killEverything(base: string): void {
  for (const pid of strayPids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const node of readdirSafe(base)) {
    for (const pid of postgresProcessesIn(join(base, node, 'pgdata'))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

const readdirSafe = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

// Last resort when the test process exits before afterAll ran: no PostgreSQL and no temp dir may outlive it.
process.on('exit', () => {
  for (const base of everyBase) {
    killEverything(base);
    rmSync(base, { recursive: true, force: true });
  }
});

/**
 * Real PostgreSQL nodes n1, n2, ... on <net>.11, .12, ... (net.ts; port 15432), each with a PostgresController,
 * under a temporary directory that `cleanup` (or, failing that, the exit hook) removes with every process.
 */
export class PgTestNodes {
  readonly base: string;
  readonly nodes: PgTestNode[];

  constructor(count: number, logLevel = process.env.LOG_LEVEL ?? 'warn') {
    this.base = mkdtempSync('/tmp/ha-pg-test-');
    everyBase.add(this.base);
    // The postgres OS user must traverse to its directories.
    chmodSync(this.base, 0o711);
    const addresses = Array.from({ length: count }, (_, i) => nodeAddress(i));
    this.nodes = addresses.map((address, i) => {
      const name = `n${i + 1}`;
      const settings: PostgresSettings = {
        nodeName: name,
        binDir: PG_BIN_DIR,
        dataDir: join(this.base, name, 'pgdata'),
        socketDir: join(this.base, name, 'socket'),
        host: address,
        port: PG_TEST_PORT,
        superuserPassword: 'superuser-secret-1',
        replicationUser: 'replicator',
        replicationPassword: 'replication-secret-1',
        appDatabase: 'manager',
        appUser: 'manager',
        appPassword: 'app-secret-123',
        memberAddresses: addresses,
      };
      const log = createLogger({ node: name, role: 'test', term: 0 }, logLevel);
      const controller = new PostgresController(settings, log);
      // These tests drive roles by hand, as if each node held the lock: a primary is permitted until a test revokes it.
      controller.permitPrimary(true);
      return { name, address, upstream: { host: address, port: PG_TEST_PORT }, settings, node: postgresNode(settings, log), pg: controller };
    });
  }

  /** A client of the app user over TCP to node `i` (the caller ends it). */
  async appClient(i: number): Promise<pg.Client> {
    const n = this.nodes[i];
    const client = new pg.Client({
      host: n.address,
      port: PG_TEST_PORT,
      user: n.settings.appUser,
      password: n.settings.appPassword,
      database: n.settings.appDatabase,
      connectionTimeoutMillis: 3000,
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  /** Runs one statement as the app user on node `i`. */
  async app<R extends pg.QueryResultRow = pg.QueryResultRow>(i: number, sql: string, params: unknown[] = []): Promise<R[]> {
    const client = await this.appClient(i);
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Runs one statement as the superuser over node `i`'s unix socket, as the sidecar's own checks do. */
  superuser<R extends pg.QueryResultRow = pg.QueryResultRow>(i: number, sql: string, params: unknown[] = []): Promise<R[]> {
    return queryRows<R>(this.nodes[i].settings, sql, params);
  }

  /** Stops every server immediately, kills stray processes and removes the directory. */
  async cleanup(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.pg.stop('immediate')));
    killEverything(this.base);
    rmSync(this.base, { recursive: true, force: true });
    everyBase.delete(this.base);
  }
}
