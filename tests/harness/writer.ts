import { performance } from 'node:perf_hooks';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { APP_LOGIN } from './cluster.js';

/**
 * A client writing through HAProxy the whole time, as the manager does: one connection, one insert of a
 * rising id every `everyMs`, reconnecting after any error. Records every acknowledged id and the longest
 * time without an acknowledged write. Expects a table `acked (id bigint primary key)`.
 */
export class WritingClient {
  readonly acked: number[] = [];
  /** For each acknowledged id (same order as `acked`): when (performance.now()) and which server (its address). */
  readonly ackedAt: { at: number; server: string }[] = [];
  longestGapMs = 0;
  /** Inserts that were not acknowledged (refused, cut or timed out), and the last error's message. */
  errors = 0;
  lastError = '';
  private nextId: number;
  private running = true;
  private readonly done: Promise<void>;
  private lastAckAt = performance.now();

  constructor(
    /** Host and port, and the SSL options in a TLS cluster (TestHaproxy.postgres has them). */
    private readonly target: { host: string; port: number; ssl?: ConnectionOptions },
    firstId = 1,
    private readonly everyMs = 10,
  ) {
    this.nextId = firstId;
    this.done = this.run();
  }

  /** Milliseconds since the last acknowledged write. */
  sinceLastAck(): number {
    return performance.now() - this.lastAckAt;
  }

  private async run(): Promise<void> {
    let client: pg.Client | null = null;
    while (this.running) {
      try {
        if (!client) {
          client = new pg.Client({ ...this.target, ...APP_LOGIN, connectionTimeoutMillis: 1_000, query_timeout: 2_000 });
          client.on('error', () => undefined);
          await client.connect();
        }
        const id = this.nextId++;
        const { rows } = await client.query<{ server: string }>('insert into acked (id) values ($1) returning host(inet_server_addr()) as server', [id]);
        this.acked.push(id); // the commit was acknowledged to the client
        this.ackedAt.push({ at: performance.now(), server: rows[0].server });
        const now = performance.now();
        this.longestGapMs = Math.max(this.longestGapMs, now - this.lastAckAt);
        this.lastAckAt = now;
      } catch (e) {
        // Refused, cut or timed out: not acknowledged. Reconnect (HAProxy picks the leader).
        this.errors++;
        this.lastError = e instanceof Error ? e.message : String(e);
        await client?.end().catch(() => undefined);
        client = null;
      }
      await new Promise((r) => setTimeout(r, this.everyMs));
    }
    await client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
