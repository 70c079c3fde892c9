import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import Consul from 'consul';
import type { z } from 'zod';
import { countRequest } from '../outgoing.js';
import { RenewableAgent, type ClientTls } from '../shared/https-fetch.js';
import { urlPort } from '../shared/port-probe.js';
import { consulError } from './errors.js';

export interface StoreOptions {
  url: string;
  token?: string;
  /** An `https:` agent's CA and the certificate this node shows it (Consul's verify_incoming asks for one). */
  tls?: ClientTls;
  cluster: string;
  /** Budget of one ordinary call; blocking reads add their wait to it. */
  timeoutMs: number;
  /** Reports a KV value that failed validation (it is then treated as absent). */
  onBadValue?: (key: string, problem: string) => void;
  /** Postgres port of this node, published in the service's meta (`postgres_port`) for clients. */
  postgresPort?: number;
}

/** One KV entry as Consul answers it. */
export interface KvEntry {
  Value: string | null;
  Session?: string;
  ModifyIndex: number;
}

/** Options of one call of the `consul` package (its types do not declare all that Consul accepts). */
export type Request = Record<string, unknown>;

/**
 * The HTTP connection to the local Consul agent shared by the store's parts: one `consul` client, the
 * cluster's key prefix, the timeout of every call, the classification of failures (`consulError`), and the
 * validation of what is read.
 */
export class ConsulConnection {
  readonly client: Consul;
  private readonly prefix: string;
  private readonly agent: RenewableAgent | undefined;
  /** Monotonic time of the last Consul call that succeeded (for the `consul_last_contact` metric). */
  private lastSuccessAt: number | null = null;

  constructor(
    readonly opts: StoreOptions,
    readonly node: string,
  ) {
    const url = new URL(opts.url);
    const secure = url.protocol === 'https:';
    this.agent = secure && opts.tls ? new RenewableAgent(opts.tls) : undefined;
    this.client = new Consul({
      host: url.hostname,
      port: urlPort(url),
      secure,
      // Every call, blocking reads included, goes through this one agent: kept connections (as the package's
      // own default agent keeps them), the server verified against the cluster CA, this node's certificate shown.
      agent: this.agent,
      defaults: opts.token ? { token: opts.token } : undefined,
    });
    this.prefix = `ha-sidecar/${opts.cluster}/`;
  }

  /** A renewed certificate (a reload): the connections opened from now on show it. */
  renewTls(tls: ClientTls): void {
    this.agent?.renew(tls);
  }

  key(name: string): string {
    return this.prefix + name;
  }

  /** Seconds since a Consul call last succeeded; null before the first. */
  lastContactAgeSeconds(): number | null {
    return this.lastSuccessAt === null ? null : (performance.now() - this.lastSuccessAt) / 1000;
  }

  /** Runs one call; a failure becomes `consul_unavailable`, `consul_acl_denied`, `consul_refused` or `consul_tls_failed` (see errors.ts). */
  async call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    countRequest('consul');
    try {
      const result = await run();
      this.lastSuccessAt = performance.now();
      return result;
    } catch (e) {
      throw consulError(operation, e);
    }
  }

  /** The call options with the timeout (`timeoutMs`, default the store's) added. */
  request(extra: Request = {}, timeoutMs = this.opts.timeoutMs): Request {
    return { timeout: timeoutMs, ...extra };
  }

  /** A KV value validated by `schema`; null when absent, and (reported through onBadValue) when invalid. */
  parse<T>(key: string, schema: z.ZodType<T>, raw: string | null | undefined): T | null {
    if (raw === null || raw === undefined || raw === '') return null;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      this.opts.onBadValue?.(key, 'not JSON');
      return null;
    }
    const result = schema.safeParse(json);
    if (!result.success) {
      this.opts.onBadValue?.(key, result.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; '));
      return null;
    }
    return result.data;
  }

  /** One KV entry and the X-Consul-Index of the read. */
  async getEntry(key: string, extra: Request = {}, timeoutMs?: number): Promise<{ entry: KvEntry | undefined; index: number }> {
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const [res, entry] = (await this.call(`read of ${key}`, () =>
      this.client.kv.get(this.request({ key, ctx, ...extra }, timeoutMs) as never),
    )) as unknown as [{ headers: Record<string, string> }, KvEntry | undefined];
    return { entry, index: Number(res.headers['x-consul-index'] ?? 0) };
  }

  /** A KV write (set, acquire, release or check-and-set per `extra`); Consul's true/false answer. */
  async setKey(operation: string, extra: Request): Promise<boolean> {
    return (await this.call(operation, () => this.client.kv.set(this.request(extra) as never))) as unknown as boolean;
  }
}
