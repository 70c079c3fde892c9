import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { projectRoot } from '../../sidecar/shared/package.js';
import { servedCertificate } from '../../sidecar/shared/port-probe.js';
import { deriveConsulToken } from '../../sidecar/shared/secrets.js';
import { APP_LOGIN, CLUSTER_TOKEN, SUPERUSER_LOGIN } from '../harness/cluster.js';
import { COMPOSE_V2_CONFIG, type DockerEngine, dockerEngine } from '../harness/docker-engine.js';
import { assertPortFree, runCommand, waitFor } from '../harness/processes.js';
import { WritingClient } from '../harness/writer.js';

/**
 * docker-compose.yml run for real: `docker-compose up -d --build` under a Docker engine (the running one, or
 * a dockerd of this test's own, tests/harness/docker-engine.ts), with the local stand-in images
 * (docker/stand-in.env, scripts/docker-stand-ins.sh): no image registry is reachable here.
 * The cluster runs TLS on every port, Consul with gossip encryption and ACLs default deny, all of it from the
 * cluster token alone: the test reads the CA and n1's certificate out of n1 (made by the tls-init service)
 * and checks SSL on every walsender, a plain http:// refused, Consul's anonymous read denied and 8500 closed.
 * Times of the build, up, failover and rejoin are printed as it runs. Last, a shorter run of the same file
 * under `docker compose` v2 (the plugin scripts/build-compose.sh builds): up, one leader, hactl, down -v.
 */

const root = projectRoot();
const PROJECT = 'ha-compose-test';
const HOST = '127.0.0.1';
const NODES = ['n1', 'n2', 'n3'];
/** Each node's sidecar API as docker-compose.yml publishes it. */
const apiPort = (i: number) => 8001 + i;
const PUBLISHED = { postgres: 5432, consulUi: 8501, api: 8008, stats: 8404 };
/** Consul's tokens, derived from the cluster token by each node as by the local cluster (sidecar/shared/secrets.ts). */
const CONSUL_MANAGEMENT_TOKEN = deriveConsulToken(CLUSTER_TOKEN, 'consul-management');
const CONSUL_SIDECAR_TOKEN = deriveConsulToken(CLUSTER_TOKEN, 'consul-sidecar');

let engine: DockerEngine | undefined;
const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const base = Object.fromEntries(Object.entries(engine?.env ?? process.env).filter(([k]) => !k.startsWith('HA_') && !k.startsWith('COMPOSE_')));
  return { ...base, COMPOSE_PROJECT_NAME: PROJECT, HA_CLUSTER_TOKEN: CLUSTER_TOKEN, ...extra };
};
const projectArgs = ['--env-file', join(root, 'docker/stand-in.env'), '-f', join(root, 'docker-compose.yml'), '--project-directory', root];
const compose = (args: string[], timeoutMs = 120_000, extraEnv?: Record<string, string>) => runCommand('docker-compose', [...projectArgs, ...args], env(extraEnv), timeoutMs);
/** The same under `docker compose` v2: the docker client finds the plugin in DOCKER_CONFIG's cli-plugins/. */
const composeV2 = (args: string[], timeoutMs = 120_000) => runCommand('docker', ['compose', ...projectArgs, ...args], env({ DOCKER_CONFIG: COMPOSE_V2_CONFIG }), timeoutMs);
const docker = (args: string[], timeoutMs = 60_000) => runCommand('docker', args, env(), timeoutMs);
async function ok(run: Promise<{ code: number | null; out: string; err: string }>, what: string): Promise<string> {
  const r = await run;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${(r.err || r.out).trim().split('\n').slice(-5).join(' | ')}`);
  return r.out;
}
const seconds = (start: number) => ((performance.now() - start) / 1000).toFixed(1);

/** The cluster CA and n1's certificate and key, read out of n1 once an `up` has made them (tls-init). */
let tls: { ca: string; cert: string; key: string } | undefined;
async function readTls(run: typeof compose): Promise<void> {
  const cat = (file: string) => ok(run(['exec', '-T', 'n1', 'cat', `/etc/ha-sidecar/tls/${file}`]), `cat ${file} in n1`);
  tls = { ca: await cat('ca.crt'), cert: await cat('n1.crt'), key: await cat('n1.key') };
}
const clientTls = () => {
  if (tls === undefined) throw new Error('no TLS material read from n1 yet');
  return tls;
};
/**
 * One HTTPS call to a published port, verified with the cluster CA. The chain only: the certificates name the
 * nodes' compose addresses, not 127.0.0.1 where the ports are published. `cert` shows n1's certificate (the
 * APIs ask for one with verifyClient, Consul with verify_incoming); the probes answer without.
 */
function https(port: number, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string; cert?: boolean; timeoutMs?: number } = {}): Promise<{ status: number; body: string }> {
  const { ca, cert, key } = clientTls();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: HOST, port, path, method: opts.method ?? 'GET', headers: opts.headers, ca, ...(opts.cert ? { cert, key } : {}), checkServerIdentity: () => undefined, timeout: opts.timeoutMs ?? 2_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${port}${path}: timed out`))).on('error', reject);
    req.end(opts.body);
  });
}
/** Postgres through HAProxy over SSL, verified with the cluster CA (the chain, as above); `cert` for the superuser. */
const pgSsl = (cert = false) => {
  const { ca, cert: c, key } = clientTls();
  return { ca, ...(cert ? { cert: c, key } : {}), checkServerIdentity: () => undefined };
};
const status = (port: number, path: string) =>
  https(port, path, { timeoutMs: 1_000 }).then(
    (r) => r.status,
    () => 0,
  );
/** The node whose published API answers 200 on /leader while the others answer 200 on /replica. */
async function soleLeader(among = [0, 1, 2]): Promise<number | undefined> {
  const leaders = await Promise.all(among.map((i) => status(apiPort(i), '/leader')));
  const found = among.filter((_, k) => leaders[k] === 200);
  return found.length === 1 ? found[0] : undefined;
}
async function members(): Promise<{ name: string; pgRole: string; streaming: boolean; syncStandbys?: string[] | null }[]> {
  const res = await https(PUBLISHED.api, '/cluster', { cert: true });
  return (JSON.parse(res.body) as { members: { name: string; pgRole: string; streaming: boolean; syncStandbys?: string[] | null }[] }).members;
}
const container = async (name: string) => (await ok(compose(['ps', '-q', name]), `ps ${name}`)).trim();
const leftovers = async () =>
  Promise.all(['ps -a', 'volume ls', 'network ls'].map(async (what) => (await ok(docker([...what.split(' '), '-q', '--filter', `label=com.docker.compose.project=${PROJECT}`]), what)).trim()));

beforeAll(async () => {
  // A clear error before anything is started or built (one of the issue's bad inputs).
  for (const [what, port] of Object.entries({ ...PUBLISHED, n1: apiPort(0), n2: apiPort(1), n3: apiPort(2) })) await assertPortFree(HOST, port, `compose ${what}`);
  engine = await dockerEngine();
  console.log(`[compose] engine: ${engine.own ? `own dockerd at ${engine.env.DOCKER_HOST}` : 'the running one'}; images: stand-ins (docker/stand-in.env)`);
  let start = performance.now();
  await ok(runCommand('bash', [join(root, 'scripts/docker-stand-ins.sh')], env(), 600_000), 'scripts/docker-stand-ins.sh');
  console.log(`[compose] stand-in images ready in ${seconds(start)} s`);
  start = performance.now();
  await ok(compose(['build'], 900_000), 'docker-compose build');
  console.log(`[compose] image build: ${seconds(start)} s`);
}, 1_600_000);

afterAll(async () => {
  try {
    if (engine) await compose(['down', '-v', '--remove-orphans', '-t', '5'], 120_000);
  } finally {
    await engine?.stop();
  }
}, 180_000);

describe('docker-compose.yml under a real Docker engine (stand-in images)', () => {
  test('without HA_CLUSTER_TOKEN docker-compose refuses with one clear error and creates nothing', async () => {
    const r = await compose(['up', '-d', '--no-build'], 60_000, { HA_CLUSTER_TOKEN: '' });
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/set HA_CLUSTER_TOKEN to 16\+ characters/);
    expect(await leftovers()).toEqual(['', '', '']);
  });

  test("a published port already in use on 127.0.0.1: up fails with the engine's line naming it; down -v then leaves nothing", async () => {
    // n1 publishes the Consul UI's port; held here, n1 cannot start. Docker creates the network, the
    // volumes and every container first, so n2 and n3 run until down (docs/operations.md "Troubleshooting").
    const holder = createServer();
    await new Promise<void>((resolve, reject) => holder.once('error', reject).listen(PUBLISHED.consulUi, HOST, resolve));
    try {
      const r = await compose(['up', '-d', '--no-build'], 120_000);
      expect(r.code).not.toBe(0);
      expect(r.err).toMatch(new RegExp(`^ERROR: for n1 .*listen tcp4 ${HOST.replaceAll('.', '\\.')}:${PUBLISHED.consulUi}: bind: address already in use$`, 'm'));
      const [containers, volumes, networks] = (await leftovers()).map((ids) => ids.split('\n').filter(Boolean).length);
      console.log(`[compose] port ${HOST}:${PUBLISHED.consulUi} held: up -d exits ${r.code}; left until down: ${containers} containers, ${volumes} volumes, ${networks} network`);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
    await ok(compose(['down', '-v', '--remove-orphans', '-t', '5'], 120_000), 'docker-compose down -v');
    expect(await leftovers()).toEqual(['', '', '']);
  }, 300_000);

  let leader = -1;
  test('up -d: exactly one node answers 200 on /leader through its published port, the others 200 on /replica', async () => {
    const start = performance.now();
    await ok(compose(['up', '-d'], 600_000), 'docker-compose up -d');
    await readTls(compose);
    leader = await waitFor('one leader on the published ports', () => soleLeader(), 120_000, 500);
    const others = [0, 1, 2].filter((i) => i !== leader);
    await waitFor('the others answer /replica 200', async () => (await Promise.all(others.map((i) => status(apiPort(i), '/replica')))).every((s) => s === 200), 120_000, 500);
    console.log(`[compose] up: ${seconds(start)} s to a leader (${NODES[leader]}) and two replicas`);
  }, 700_000);

  test('hactl cluster status inside n1 shows the three nodes; the Consul UI answers on https://127.0.0.1:8501', async () => {
    const out = await ok(compose(['exec', '-T', 'n1', 'hactl', 'cluster', 'status']), 'hactl cluster status');
    for (const name of NODES) expect(out).toMatch(new RegExp(`^\\*?\\s+${name}\\s+172\\.28\\.0\\.1\\d`, 'm'));
    expect(out).toMatch(/leader: n\d/);
    expect((await https(PUBLISHED.consulUi, '/ui/', { cert: true })).status).toBe(200);
  });

  test('TLS on every port: every walsender streams over SSL; Postgres without SSL and plain http:// to the API are refused; a client without a certificate gets the probes only', async () => {
    const db = new pg.Client({ host: HOST, port: PUBLISHED.postgres, ...SUPERUSER_LOGIN, ssl: pgSsl(true) });
    await db.connect();
    const { rows } = await db.query<{ name: string; ssl: boolean; version: string | null }>(
      'select r.application_name as name, s.ssl, s.version from pg_stat_replication r join pg_stat_ssl s using (pid) order by 1',
    );
    await db.end();
    expect(rows.map((r) => r.name)).toEqual(NODES.filter((_, i) => i !== leader));
    for (const r of rows) expect({ name: r.name, ssl: r.ssl, version: r.version }).toEqual({ name: r.name, ssl: true, version: expect.stringMatching(/^TLSv1\.[23]$/) });
    // Postgres takes no client without SSL: pg_hba has hostssl rows only.
    const plainPg = new pg.Client({ host: HOST, port: PUBLISHED.postgres, ...APP_LOGIN, ssl: false });
    await expect(plainPg.connect()).rejects.toThrow(/no pg_hba\.conf entry .*no encryption/);
    // Plain HTTP to the API (through HAProxy and direct) is refused with the sidecar's one answer for it, and closed.
    for (const port of [PUBLISHED.api, apiPort(0)]) {
      const plain = await fetch(`http://${HOST}:${port}/leader`, { signal: AbortSignal.timeout(2_000) });
      expect({ port, status: plain.status, body: (await plain.json()) as unknown }).toEqual({ port, status: 400, body: expect.objectContaining({ error: 'https_required' }) });
    }
    expect((await https(PUBLISHED.api, '/cluster')).status).toBe(401);
    expect((await https(PUBLISHED.api, '/cluster', { cert: true })).status).toBe(200);
  });

  test('Consul: HTTPS only (8500 closed), a client certificate required, ACLs default deny (anonymous KV read denied), the sidecar token exists, gossip is encrypted', async () => {
    const consul = (path: string, token?: string, cert = true) => https(PUBLISHED.consulUi, path, { cert, headers: token ? { 'X-Consul-Token': token } : {} });
    const anonymous = await consul('/v1/kv/ha-sidecar/main/leader');
    expect(anonymous.status).toBe(403);
    expect(anonymous.body).toMatch(/Permission denied/);
    expect((await consul('/v1/kv/ha-sidecar/main/leader', CONSUL_MANAGEMENT_TOKEN)).status).toBe(200);
    expect((await consul('/v1/acl/tokens')).status).toBe(403);
    await expect(consul('/v1/status/leader', undefined, false)).rejects.toThrow();
    const self = JSON.parse((await consul('/v1/acl/token/self', CONSUL_SIDECAR_TOKEN)).body) as { Policies: { Name: string }[] };
    expect(self.Policies.map((p) => p.Name)).toEqual(['ha-sidecar-main']);
    // Inside the network: nothing listens on 8500; 8501 answers (the same bash probe for both).
    const probe = (port: number) => compose(['exec', '-T', 'n1', 'bash', '-c', `exec 3<>/dev/tcp/172.28.0.11/${port}`]);
    expect((await probe(8500)).code).not.toBe(0);
    expect((await probe(8501)).code).toBe(0);
    // The consul command in a node works as it is (the image's CONSUL_* environment and the token file).
    const info = await ok(compose(['exec', '-T', 'n1', 'consul', 'info']), 'consul info');
    expect(info.match(/^\s*encrypted = (\w+)$/gm)?.map((l) => l.trim())).toEqual(['encrypted = true']);
  });

  test('docker kill of the leader: a new leader, the client through HAProxy continues, 0 acknowledged rows lost (synchronous mode); start brings it back as a streaming standby', async () => {
    const auth = { authorization: `Bearer ${CLUSTER_TOKEN}`, 'content-type': 'application/json' };
    const patched = await https(PUBLISHED.api, '/config', { method: 'PATCH', headers: auth, body: JSON.stringify({ synchronousMode: true }), cert: true });
    expect(patched.status).toBe(200);
    await waitFor('both standbys synchronous', async () => (await members().catch(() => [])).find((m) => m.pgRole === 'primary')?.syncStandbys?.length === 2, 60_000, 500);
    const db = new pg.Client({ host: HOST, port: PUBLISHED.postgres, ...APP_LOGIN, ssl: pgSsl() });
    await db.connect();
    await db.query('create table acked (id bigint primary key)');
    await db.end();

    const writer = new WritingClient({ host: HOST, port: PUBLISHED.postgres, ssl: pgSsl() });
    try {
      await waitFor('acknowledged writes through HAProxy', () => writer.acked.length >= 20, 30_000, 100);
      const killed = leader;
      const start = performance.now();
      await ok(docker(['kill', await container(NODES[killed])]), 'docker kill');
      const before = writer.acked.length;
      leader = await waitFor('a new leader', () => soleLeader([0, 1, 2].filter((i) => i !== killed)), 60_000, 200);
      await waitFor('the client writes again', () => writer.acked.length > before + 20, 60_000, 100);
      console.log(`[compose] failover: ${seconds(start)} s from docker kill of ${NODES[killed]} to ${NODES[leader]} leading; longest client gap ${(writer.longestGapMs / 1000).toFixed(1)} s`);

      const rejoin = performance.now();
      await ok(compose(['start', NODES[killed]]), 'docker-compose start');
      await waitFor(`${NODES[killed]} streaming as a standby`, async () => (await members().catch(() => [])).some((m) => m.name === NODES[killed] && m.pgRole === 'standby' && m.streaming), 180_000, 500);
      expect(await status(apiPort(killed), '/replica')).toBe(200);
      console.log(`[compose] rejoin: ${seconds(rejoin)} s from docker-compose start of ${NODES[killed]} to a streaming standby`);
    } finally {
      await writer.stop();
    }
    const check = new pg.Client({ host: HOST, port: PUBLISHED.postgres, ...APP_LOGIN, ssl: pgSsl() });
    await check.connect();
    const { rows } = await check.query<{ id: string }>('select id from acked');
    await check.end();
    const present = new Set(rows.map((r) => Number(r.id)));
    expect(writer.acked.filter((id) => !present.has(id))).toEqual([]);
    console.log(`[compose] ${writer.acked.length} acknowledged rows, 0 lost`);
  }, 400_000);

  test('docker-compose run --rm tls-rotate: each API and n1\'s Consul agent serve a new certificate of the same CA, under a client writing through HAProxy: no failover, no failed insert, 0 acknowledged rows lost', async () => {
    const { ca, cert, key } = clientTls();
    const ports = [...[0, 1, 2].map(apiPort), PUBLISHED.consulUi];
    const served = () => Promise.all(ports.map(async (port) => (await servedCertificate(HOST, port, false, { ca, cert, key, checkServerIdentity: () => undefined }, 5_000)).fingerprint256));
    const term = async () => (JSON.parse((await https(PUBLISHED.api, '/cluster', { cert: true })).body) as { term: number }).term;
    const before = await served();
    const termBefore = await term();
    const writer = new WritingClient({ host: HOST, port: PUBLISHED.postgres, ssl: pgSsl() }, 1_000_000);
    let out: string;
    const start = performance.now();
    try {
      await waitFor('acknowledged writes through HAProxy', () => writer.acked.length >= 20, 30_000, 100);
      out = await ok(compose(['run', '--rm', 'tls-rotate', '--days', '30'], 180_000), 'docker-compose run --rm tls-rotate');
      const after = writer.acked.length;
      await waitFor('acknowledged writes after the rotation', () => writer.acked.length >= after + 20, 30_000, 100);
    } finally {
      await writer.stop();
    }
    console.log(`[compose] tls-rotate: ${seconds(start)} s; ${out.trim().replace(/\n/g, ' | ')}; client: ${writer.acked.length} acknowledged, ${writer.errors} failed, longest gap ${Math.round(writer.longestGapMs)} ms`);
    expect(out).toMatch(/^rotated 3 node certificates in \/etc\/ha-sidecar\/tls; the CA is unchanged/m);
    for (const name of NODES) expect(out).toMatch(new RegExp(`^${name}: new certificate served on 8008 and 15432 after \\d+\\.\\d s, and by its Consul agent on 8501 \\(expires in (29|30) days\\)$`, 'm'));
    const now = await served();
    for (let i = 0; i < ports.length; i++) expect(now[i]).not.toBe(before[i]);
    expect(await term()).toBe(termBefore);
    expect(await soleLeader()).toBe(leader);
    expect(writer.errors).toBe(0);
    const check = new pg.Client({ host: HOST, port: PUBLISHED.postgres, ...APP_LOGIN, ssl: pgSsl() });
    await check.connect();
    const { rows } = await check.query<{ id: string }>('select id from acked where id >= 1000000');
    await check.end();
    const present = new Set(rows.map((r) => Number(r.id)));
    expect(writer.acked.filter((id) => !present.has(id))).toEqual([]);
  }, 300_000);

  test("kill -9 of the sidecar inside the leader's container: the restart policy brings the container back healthy, and the cluster has a leader", async () => {
    const name = NODES[leader];
    const id = await container(name);
    const restarts = async () => Number((await ok(docker(['inspect', '-f', '{{.RestartCount}}', id]), 'inspect')).trim());
    const before = await restarts();
    const start = performance.now();
    // No procps in the image: find the sidecar by its command line.
    const script = 'for p in /proc/[0-9]*; do case "$(tr "\\0" " " < $p/cmdline 2>/dev/null)" in "node /opt/ha-sidecar/dist/sidecar/main.js "*) kill -9 ${p#/proc/} && echo killed ${p#/proc/};; esac; done';
    // The container stops with its sidecar and may take this exec down with it (exit 137) before it returns.
    const kill = await compose(['exec', '-T', name, 'bash', '-c', script]);
    expect({ code: [0, 137].includes(kill.code ?? -1), out: kill.out }).toEqual({ code: true, out: expect.stringMatching(/killed \d+/) });
    await waitFor('the container restarted', async () => (await restarts()) > before, 60_000, 500);
    await waitFor(`${name} healthy again`, async () => (await ok(docker(['inspect', '-f', '{{.State.Health.Status}}', id]), 'inspect')).trim() === 'healthy', 180_000, 1_000);
    leader = await waitFor('a leader', () => soleLeader(), 60_000, 500);
    console.log(`[compose] kill -9 of ${name}'s sidecar: container restarted and healthy in ${seconds(start)} s; ${NODES[leader]} leads`);
  }, 300_000);

  test('down -v leaves no container, volume or network of the project', async () => {
    await ok(compose(['down', '-v', '--remove-orphans', '-t', '5'], 120_000), 'docker-compose down -v');
    expect(await leftovers()).toEqual(['', '', '']);
  }, 150_000);
});

describe('the same file under docker compose v2 (v5.6.0), the images built above', () => {
  test('up -d: one leader and two replicas on the published ports; hactl cluster status in n1 lists the three; down -v leaves nothing', async () => {
    const start = performance.now();
    try {
      await ok(composeV2(['up', '-d'], 600_000), 'docker compose up -d');
      await readTls(composeV2); // down -v removed the first CA: this up made a new one
      const leader = await waitFor('one leader on the published ports', () => soleLeader(), 120_000, 500);
      const others = [0, 1, 2].filter((i) => i !== leader);
      await waitFor('the others answer /replica 200', async () => (await Promise.all(others.map((i) => status(apiPort(i), '/replica')))).every((s) => s === 200), 120_000, 500);
      console.log(`[compose] docker compose v2 up: ${seconds(start)} s to a leader (${NODES[leader]}) and two replicas`);
      const out = await ok(composeV2(['exec', '-T', 'n1', 'hactl', 'cluster', 'status']), 'docker compose exec n1 hactl cluster status');
      for (const name of NODES) expect(out).toMatch(new RegExp(`^\\*?\\s+${name}\\s+172\\.28\\.0\\.1\\d`, 'm'));
      expect(out).toContain(`leader: ${NODES[leader]}`);
    } finally {
      await ok(composeV2(['down', '-v', '--remove-orphans', '-t', '5'], 120_000), 'docker compose down -v');
    }
    expect(await leftovers()).toEqual(['', '', '']);
  }, 900_000);
});
