import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { ClusterDriver } from '../../cli/local/driver.js';
import { PORTS, sidecarMain } from '../../cli/local/layout.js';
import { deriveSecret } from '../../sidecar/shared/secrets.js';
import { httpsFetch, type ClientTls, type FetchFunction } from '../../sidecar/shared/https-fetch.js';
import { initClusterTls } from '../../cli/tls.js';
import { ConsulCluster } from './consul.js';
import { processName, testDriver } from './driver.js';
import { type NodePlacement, loopbackPlacement } from './net.js';
import { ProcessGroup, assertPortFree, waitFor } from './processes.js';

export const CLUSTER_TOKEN = 'test-cluster-token-0123456789';

/** Postgres logins of a test cluster; their passwords derive from the cluster token as on every node. */
export const APP_LOGIN = { user: 'manager', password: deriveSecret(CLUSTER_TOKEN, 'app'), database: 'manager' };
export const SUPERUSER_LOGIN = { user: 'postgres', password: deriveSecret(CLUSTER_TOKEN, 'postgres-superuser'), database: 'postgres' };

/** What GET /cluster says of each member (the fields the tests read). */
export interface MemberView {
  name: string;
  role: string;
  alive: boolean;
  timeline: number | null;
  streaming: boolean;
  pgRole: string;
  syncStandbys: string[] | null;
}

export interface TestClusterOptions {
  size: 3 | 5;
  /** Extra config merged into every sidecar's config file. */
  sidecarConfig?: Record<string, unknown>;
  postgres?: boolean;
  /** The file mirror on every node, each mirroring `filesDir(i)` (created empty), rescanning every `rescanSeconds`. */
  files?: boolean | { rescanSeconds: number };
  /**
   * Consul with ACLs (default deny) and gossip encryption; sidecars use a token of consul-config/sidecar-policy.hcl.
   * A TLS cluster has both anyway, with secrets derived from the cluster token (cli/local/driver.ts).
   */
  acl?: { managementToken: string; gossipKey: string };
  /** Each node's address and how its processes are spawned (default: loopback, see net.ts; netns.ts for namespaces). */
  placement?: NodePlacement;
  /**
   * TLS on every port, as production runs: `start` makes a CA in `<baseDir>/tls` (tls init's code) with a
   * certificate per node and one for the test's client (`client.crt`), which `call`, `leaderStatus`,
   * `consulCall` and the driver show. The sidecar API over HTTPS, Postgres over SSL; Consul over HTTPS on 8501
   * and RPC, both verifying both ends, with gossip encryption and ACLs (default deny). Default: on with
   * `verifyClient`; `false`, or `HA_TEST_TLS=0` for every cluster of a run, turns it off (plain text everywhere).
   */
  tls?: { verifyClient: boolean } | false;
}

/** The name of the test client's certificate in a TLS cluster's CA directory. */
export const TEST_CLIENT_CERT = 'client';

/**
 * A whole cluster on this machine: N Consul servers and N sidecars on <net>.11, .12, ... (net.ts). Starting,
 * forming and stopping it is the shared driver's (cli/local/driver.ts, as `hactl local` does it): how a node's
 * processes are spawned and which address a node has are `testDriver`'s `spawn` and `addressOf` below.
 */
export class TestCluster {
  readonly processes = new ProcessGroup();
  readonly baseDir = mkdtempSync(join(tmpdir(), 'ha-cluster-'));
  readonly driver: ClusterDriver;
  readonly consul: ConsulCluster;
  readonly names: string[];
  readonly placement: NodePlacement;
  /** The sidecars' Consul token (ACL mode, TLS): limited to their KV prefix, sessions and their service. */
  readonly sidecarToken: string | undefined;
  /** The CA and certificates of a TLS cluster (the `tls` option). */
  readonly tlsDir: string;
  /** How the test calls the sidecar APIs: with the CA and the client certificate in a TLS cluster, read at the first call. */
  readonly fetchApi: FetchFunction;
  private tlsFetch: FetchFunction | undefined;
  private readonly tlsMode: { verifyClient: boolean } | undefined;

  constructor(private readonly opts: TestClusterOptions) {
    this.placement = opts.placement ?? loopbackPlacement;
    this.tlsDir = join(this.baseDir, 'tls');
    this.tlsMode = opts.tls === false ? undefined : (opts.tls ?? (process.env.HA_TEST_TLS === '0' ? undefined : { verifyClient: true }));
    this.fetchApi = (url, init) => {
      this.tlsFetch ??= httpsFetch(this.tlsMode ? this.clientTls() : undefined);
      return this.tlsFetch(url, init);
    };
    this.driver = testDriver({
      tls: this.tlsMode ? { dir: this.tlsDir, verifyClient: this.tlsMode.verifyClient } : undefined,
      fetch: this.fetchApi,
      size: opts.size,
      baseDir: this.baseDir,
      processes: this.processes,
      clusterToken: CLUSTER_TOKEN,
      postgres: opts.postgres ?? false,
      consulSecrets: opts.acl ? { gossipKey: opts.acl.gossipKey, aclManagementToken: opts.acl.managementToken } : undefined,
      placement: this.placement,
    });
    this.consul = new ConsulCluster({ size: opts.size, baseDir: this.baseDir, processes: this.processes, driver: this.driver, placement: this.placement });
    this.sidecarToken = this.driver.sidecarConsulToken;
    this.names = this.driver.nodes.map((n) => n.name);
    chmodSync(this.baseDir, 0o711); // the postgres OS user must reach its data directories
    if (!existsSync(sidecarMain())) throw new Error(`${sidecarMain()} is missing: run \`npm run build\` first`);
  }

  /** Whether the sidecar APIs speak HTTPS (the `tls` option). */
  get tls(): boolean {
    return this.tlsMode !== undefined;
  }

  address(i: number): string {
    return this.driver.node(i).address;
  }

  apiUrl(i: number): string {
    return this.driver.node(i).apiUrl;
  }

  /** Node i's mirrored files directory (with the `files` option). */
  filesDir(i: number): string {
    return join(this.driver.node(i).dir, 'files');
  }

  configFile(i: number): string {
    return this.driver.node(i).sidecarConfig;
  }

  /** Starts Consul, then every sidecar; `cluster start` on n1 (until it leads) and `cluster join` on the others. */
  async start(): Promise<void> {
    if (this.tlsMode) {
      const nodes = this.driver.nodes.map((n) => ({ name: n.name, address: n.address }));
      await initClusterTls(this.tlsDir, 'test', [...nodes, { name: TEST_CLIENT_CERT, address: '127.0.0.1', clientOnly: true }]);
    }
    // With ACLs the driver makes the sidecars' token once Consul is up (waitForConsul).
    await this.consul.start();
    for (let i = 0; i < this.opts.size; i++) await this.startSidecar(i);
    await this.driver.formCluster();
  }

  /**
   * One call of node i's Consul HTTP API as the test's client: over HTTPS with the CA and the client
   * certificate in a TLS cluster, with `token` (default: the management token when Consul has ACLs; null: none).
   */
  async consulCall(i: number, method: string, path: string, body?: string, token: string | null = this.driver.consulSecrets?.aclManagementToken ?? null): Promise<Response> {
    return this.fetchApi(`${this.consul.httpUrl(i)}${path}`, { method, body, headers: token !== null ? { 'X-Consul-Token': token } : {}, signal: AbortSignal.timeout(10_000) });
  }

  writeConfig(i: number, extra: Record<string, unknown> = {}): void {
    if (this.opts.files) mkdirSync(this.filesDir(i), { recursive: true });
    this.driver.writeSidecarConfig(this.driver.node(i), {
      ...(this.opts.files ? { files: { directory: this.filesDir(i), rescanSeconds: this.opts.files === true ? 2 : this.opts.files.rescanSeconds } } : {}),
      ...this.opts.sidecarConfig,
      ...extra,
    });
  }

  /** Starts node `i`'s sidecar and waits for its API, unless `waitForApi` is false (a sidecar the cluster's CA cannot verify). */
  async startSidecar(i: number, waitForApi = true): Promise<void> {
    if (this.placement.sharedAddresses) await assertPortFree(this.address(i), PORTS.sidecarApi, `sidecar API of ${this.names[i]}`);
    if (!existsSync(this.configFile(i))) this.writeConfig(i);
    await this.driver.startSidecar(this.driver.node(i));
    if (waitForApi) await this.driver.waitForSidecarApi(this.driver.node(i));
  }

  async killSidecar(i: number): Promise<void> {
    await this.processes.crash(processName(this.driver.node(i), 'sidecar'));
  }

  async stopSidecar(i: number): Promise<void> {
    await this.processes.stop(processName(this.driver.node(i), 'sidecar'), 'SIGTERM');
  }

  async call(i: number, method: string, path: string, body?: unknown, token = CLUSTER_TOKEN): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await this.fetchApi(this.apiUrl(i) + path, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(35_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  /** /leader status of node i; 0 when its API does not answer. */
  async leaderStatus(i: number, timeoutMs = 500): Promise<number> {
    try {
      const res = await this.fetchApi(`${this.apiUrl(i)}/leader`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.status;
    } catch {
      return 0;
    }
  }

  /** Index of the one node answering 200 on /leader; undefined when none or several do. */
  async leaderIndex(among = this.names.map((_, i) => i)): Promise<number | undefined> {
    const statuses = await Promise.all(among.map((i) => this.leaderStatus(i)));
    const leaders = among.filter((_, k) => statuses[k] === 200);
    return leaders.length === 1 ? leaders[0] : undefined;
  }

  /** The PEM text of the CA and the test client's certificate (a TLS cluster). */
  clientTls(): ClientTls {
    const file = (name: string) => readFileSync(join(this.tlsDir, name), 'utf8');
    return { ca: file('ca.crt'), cert: file(`${TEST_CLIENT_CERT}.crt`), key: file(`${TEST_CLIENT_CERT}.key`) };
  }

  /**
   * A Postgres client's SSL options in a TLS cluster: the CA and the test client's certificate (which the
   * superuser's and replication's pg_hba rows ask for). `verify-full` checks that the server's certificate
   * names the address connected to (node's default); `verify-ca` only that it is of the CA, as a client of
   * HAProxy must (the certificate names the node behind it). None in a plain cluster.
   */
  postgresSsl(mode: 'verify-full' | 'verify-ca'): ConnectionOptions | undefined {
    if (!this.tls) return undefined;
    const { ca, cert, key } = this.clientTls();
    return { ca, cert, key, ...(mode === 'verify-ca' ? { checkServerIdentity: () => undefined } : {}) };
  }

  /**
   * One statement on node i's Postgres (or any host:port, e.g. HAProxy, with its `ssl` or verify-ca in a TLS
   * cluster), on a fresh connection.
   */
  async sql<R extends pg.QueryResultRow>(target: number | { host: string; port: number; ssl?: ConnectionOptions }, text: string, params: unknown[] = [], login = APP_LOGIN, timeoutMs = 2000): Promise<R[]> {
    const { host, port, ssl } = typeof target === 'number' ? { host: this.address(target), port: 15432, ssl: this.postgresSsl('verify-full') } : { ssl: this.postgresSsl('verify-ca'), ...target };
    const client = new pg.Client({ host, port, ssl, ...login, connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query<R>(text, params)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** The members as the first answering node sees them. */
  async members(): Promise<MemberView[]> {
    for (let i = 0; i < this.names.length; i++) {
      const res = await this.call(i, 'GET', '/cluster').catch(() => null);
      if (res?.status === 200) return res.body.members as unknown as MemberView[];
    }
    return [];
  }

  /** Waits until every node runs as leader or standby with a live session (after a restart, say). */
  async waitAllRunning(timeoutMs = 30_000): Promise<void> {
    await waitFor('every member running', async () => {
      const m = await this.members();
      return m.filter((x) => x.alive && (x.role === 'leader' || x.role === 'standby')).length === this.names.length;
    }, timeoutMs);
  }

  /** Waits for one primary and every other node a streaming standby (listed as synchronous with `needSync`). */
  async waitAllStreaming(needSync = false, timeoutMs = 90_000): Promise<MemberView[]> {
    const standbys = this.names.length - 1;
    return waitFor(`one primary and ${standbys} streaming standbys${needSync ? ', all synchronous' : ''}`, async () => {
      const m = await this.members();
      const primary = m.find((x) => x.pgRole === 'primary');
      const ok =
        m.length === this.names.length &&
        m.every((x) => x.alive) &&
        primary &&
        m.filter((x) => x.pgRole === 'standby' && x.streaming).length === standbys &&
        (!needSync || primary.syncStandbys?.length === standbys);
      if (!ok) return undefined;
      // The published list is widened a turn before the primary applies it (it must be known before commits
      // wait for it): a commit is protected only once the primary's own view says its standbys are synchronous.
      if (needSync && (await this.synchronousStandbyCount(this.names.indexOf(primary.name))) !== standbys) return undefined;
      return m;
    }, timeoutMs, 250);
  }

  /** How many standbys node i's primary waits for on commit (pg_stat_replication sync/quorum); 0 on error. */
  async synchronousStandbyCount(i: number): Promise<number> {
    const rows = await this.sql<{ n: number }>(i, "select count(*)::int as n from pg_stat_replication where sync_state in ('sync', 'quorum')", [], SUPERUSER_LOGIN).catch(() => [{ n: 0 }]);
    return rows[0]?.n ?? 0;
  }

  async stop(): Promise<void> {
    await this.driver.stopSidecars();
    await this.processes.stopAll();
    // HA_KEEP_TEST_DIRS=1 keeps every node's logs and data for a post-mortem.
    if (process.env.HA_KEEP_TEST_DIRS === '1') console.log(`test cluster kept in ${this.baseDir}`);
    else rmSync(this.baseDir, { recursive: true, force: true });
  }
}

/**
 * Polls /leader on every node every 50 ms and records any instant where two answered 200: the
 * split-brain watcher. Each sweep asks all nodes at once, so "two 200s" means within one sweep.
 */
export class LeaderWatcher {
  readonly overlaps: string[] = [];
  sweeps = 0;
  private running = true;
  private done: Promise<void>;

  constructor(private readonly cluster: TestCluster) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const statuses = await Promise.all(this.cluster.names.map((_, i) => this.cluster.leaderStatus(i, 200)));
      const leaders = this.cluster.names.filter((_, i) => statuses[i] === 200);
      if (leaders.length > 1) this.overlaps.push(`${new Date().toISOString()} ${leaders.join('+')}`);
      this.sweeps++;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}
