import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consulBinary } from '../../cli/local/paths.js';
import { initClusterTls } from '../../cli/tls.js';
import { projectRoot } from '../../sidecar/shared/package.js';
import { httpsFetch, type FetchFunction } from '../../sidecar/shared/https-fetch.js';
import { nodeAddress } from '../harness/net.js';
import { runCommand, type CommandRun } from '../harness/processes.js';

/**
 * `hactl local` end to end: the compiled CLI (`npm run build` first) starts a real 3-node cluster in the
 * background, reports it, survives a `kill -9` of the leader's sidecar, and `down` leaves no process.
 * It runs on the test net's .21-.23 (net.ts; the other integration tests use .11-.15) with its cluster directory and
 * hactl profiles in a temporary directory.
 */

/** Run Postgres under the sidecars (the real local cluster); false checks the election alone (--no-postgres). */
const WITH_POSTGRES = true;
const ADDRESSES = [0, 1, 2].map((i) => nodeAddress(10 + i));
const BASE = ADDRESSES[0] as string;
const NAMES = ['n1', 'n2', 'n3'];

const hactlJs = join(projectRoot(), 'dist', 'cli', 'hactl.js');
// 0755: PostgreSQL runs as the postgres user when the tests run as root, and must reach its data below.
const work = mkdtempSync(join(tmpdir(), 'ha-local-'));
chmodSync(work, 0o755);
const localDir = join(work, 'cluster');
const configDir = join(work, 'hactl');


/** Runs `node dist/cli/hactl.js <args>` with the test's directories; SIGKILLs it after `timeoutMs`. */
function hactl(args: string[], timeoutMs = 240_000): Promise<CommandRun> {
  const env: NodeJS.ProcessEnv = { ...process.env, HACTL_LOCAL_DIR: localDir, HACTL_CONFIG_DIR: configDir };
  delete env.HACTL_TOKEN;
  return runCommand(process.execPath, [hactlJs, ...args], env, timeoutMs);
}

/** Alive and not a zombie (this sandbox's init reaps orphans late, and a zombie holds no port or file). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Every live process started from the test's directory: by command line, or by working directory (Postgres). */
function processesUnder(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${entry}/cwd`);
      } catch {
        /* not ours to read */
      }
      if ((cmdline.includes(dir) || cwd.startsWith(dir)) && alive(Number(entry))) pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

function killEverything(): void {
  for (const pid of processesUnder(work)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
// If jest itself is killed before afterAll runs, nothing of this test may outlive it.
process.on('exit', killEverything);

async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last: ${last})` : ''}`);
}

/** The local cluster's API speaks HTTPS with the CA `up` made (TLS is its default). */
const localFetch = (): FetchFunction => httpsFetch({ ca: readFileSync(join(localDir, 'tls', 'ca.crt'), 'utf8') });

async function leaderStatus(address: string): Promise<number> {
  try {
    const res = await localFetch()(`https://${address}:8008/leader`, { signal: AbortSignal.timeout(1000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

interface StatusJson {
  dir: string;
  consulUi: string;
  nodes: {
    name: string;
    ip: string;
    role: string;
    pids: { consul: number | null; postgres: number | null; sidecar: number | null };
    dataDir: string;
    filesDir: string;
  }[];
}

async function status(): Promise<StatusJson> {
  const run = await hactl(['local', 'status', '--json'], 30_000);
  if (run.code !== 0) throw new Error(`local status failed: ${run.err}`);
  return JSON.parse(run.out) as StatusJson;
}

describe('hactl local: a whole cluster on this machine', () => {
  /** Every pid the cluster ever had, to check that `down` left none. */
  const seen = new Set<number>();

  beforeAll(() => {
    if (!existsSync(hactlJs)) throw new Error(`${hactlJs} is missing: run \`npx tsc -p tsconfig.json\` first`);
  });

  afterAll(async () => {
    try {
      await hactl(['local', 'down'], 60_000);
    } finally {
      killEverything();
      rmSync(work, { recursive: true, force: true });
    }
  }, 90_000);

  test('up --detach starts 3 nodes, prints the status table and the Consul UI, and returns', async () => {
    const args = ['local', 'up', '--detach', '--base-address', BASE, ...(WITH_POSTGRES ? [] : ['--no-postgres'])];
    const run = await hactl(args);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    for (const [i, name] of NAMES.entries()) {
      expect(run.out).toContain(`[local] starting consul on ${name} (${ADDRESSES[i]})`);
      expect(run.out).toMatch(new RegExp(`^\\*?\\s+${name}\\s+${ADDRESSES[i]?.replace(/\./g, '\\.')}\\s+(leader|standby)\\s`, 'm'));
    }
    expect(run.out).toMatch(/^\s+NAME\s+ADDRESS\s+ROLE\s+STATE/m);
    expect(run.out).toMatch(/^cluster: local\s+term: 1\s+leader: n1/m);
    // The table is the settled cluster it waited for, not the records of the standbys' first turns.
    for (const name of ['n2', 'n3']) expect(run.out).toMatch(new RegExp(`^\\s+${name}\\s+\\S+\\s+standby\\s+following leader n1\\s.*\\shealthy$`, 'm'));
    expect(run.out).toMatch(/^\*\s+n1\s+\S+\s+leader\s.*\shealthy$/m);
    expect(run.out).toContain(`https://${BASE}:8501/ui`);
    expect(run.out).toMatch(/local kill n1 sidecar/);
    expect(run.out).toContain(`[local] made the local cluster CA and certificates in ${join(localDir, 'tls')}`);
    expect(run.out).toContain(`[local] starting sidecar on n1 (https://${BASE}:8008)`);
    for (const file of ['ca.key', 'n1.key', 'hactl.key']) expect(statSync(join(localDir, 'tls', file)).mode & 0o777).toBe(0o600);
    // Consul runs TLS and ACLs too: consul.env (0600, it holds the management token) lets the consul command in.
    const consulEnv = readFileSync(join(localDir, 'consul.env'), 'utf8');
    expect(consulEnv).toContain(`export CONSUL_HTTP_ADDR=https://${BASE}:8501\n`);
    expect(consulEnv).toMatch(/^export CONSUL_HTTP_TOKEN=[0-9a-f-]{36}$/m);
    expect(statSync(join(localDir, 'consul.env')).mode & 0o777).toBe(0o600);
  }, 300_000);

  test('the consul command with consul.env sees the three servers; without the token or the certificate it is refused', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const line of readFileSync(join(localDir, 'consul.env'), 'utf8').split('\n')) {
      const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
      if (m) env[m[1] as string] = m[2];
    }
    const members = await runCommand(consulBinary(), ['members'], env, 30_000);
    expect(members.code).toBe(0);
    for (const name of NAMES) expect(members.out).toMatch(new RegExp(`^${name}\\s+\\S+:8301\\s+alive\\s+server`, 'm'));
    // A single key: a recursive read filters what the token may not see, and answers with nothing.
    const anonymous = await runCommand(consulBinary(), ['kv', 'get', 'ha-sidecar/local/leader'], { ...env, CONSUL_HTTP_TOKEN: '' }, 30_000);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.err).toMatch(/403|Permission denied/);
    const noCertificate = await runCommand(consulBinary(), ['members'], { ...env, CONSUL_CLIENT_CERT: '', CONSUL_CLIENT_KEY: '' }, 30_000);
    expect(noCertificate.code).not.toBe(0);
  }, 90_000);

  test('status --json: 3 nodes, one leader, every process running, the directories made', async () => {
    const s = await status();
    expect(s.dir).toBe(localDir);
    expect(s.nodes.map((n) => [n.name, n.ip])).toEqual(NAMES.map((name, i) => [name, ADDRESSES[i]]));
    expect(s.nodes.map((n) => n.role).sort()).toEqual(['leader', 'standby', 'standby']);
    for (const node of s.nodes) {
      const pids = [node.pids.consul, node.pids.sidecar, ...(WITH_POSTGRES ? [node.pids.postgres] : [])];
      for (const pid of pids) {
        expect(pid).toEqual(expect.any(Number));
        expect(alive(pid as number)).toBe(true);
        seen.add(pid as number);
      }
      if (!WITH_POSTGRES) expect(node.pids.postgres).toBeNull();
      expect(existsSync(node.dataDir)).toBe(true);
      expect(existsSync(node.filesDir)).toBe(true);
    }
    const state = join(localDir, 'state.json');
    expect(readFileSync(state, 'utf8')).toMatch(/"token": "[A-Za-z0-9_-]{32}"/);
    expect(statSync(state).mode & 0o777).toBe(0o600);
  }, 60_000);

  test('the "local" profile it wrote is current: hactl cluster status works through it', async () => {
    const run = await hactl(['cluster', 'status', '--json'], 30_000);
    expect(run.err).toBe('');
    expect(run.code).toBe(0);
    const view = JSON.parse(run.out) as { cluster: string; leader: { name: string }; members: { name: string; alive: boolean }[] };
    expect(view.cluster).toBe('local');
    expect(view.leader.name).toBe('n1');
    expect(view.members.map((m) => [m.name, m.alive])).toEqual(NAMES.map((n) => [n, true]));
    const profiles = JSON.parse(readFileSync(join(configDir, 'profiles.json'), 'utf8')) as {
      current: string;
      profiles: Record<string, { managers: string[]; token?: string; tls?: Record<string, string> }>;
    };
    expect(profiles.current).toBe('local');
    expect(profiles.profiles.local?.managers).toEqual(ADDRESSES.map((a) => `https://${a}:8008`));
    const tls = join(localDir, 'tls');
    expect(profiles.profiles.local?.tls).toEqual({ caFile: join(tls, 'ca.crt'), certFile: join(tls, 'hactl.crt'), keyFile: join(tls, 'hactl.key') });
    expect(profiles.profiles.local?.token).toMatch(/^[A-Za-z0-9_-]{32}$/);
  }, 60_000);

  test('up while it runs: already_up, exit 1, one line, nothing changed', async () => {
    const before = await status();
    const run = await hactl(['local', 'up', '--detach', '--base-address', BASE], 60_000);
    expect(run.code).toBe(1);
    expect(run.out).toBe('');
    expect(run.err.trimEnd().split('\n')).toHaveLength(1);
    expect(run.err).toMatch(/^hactl: already_up: the local cluster in .* is already running/);
    expect((await status()).nodes.map((n) => n.pids)).toEqual(before.nodes.map((n) => n.pids));
  }, 90_000);

  test('kill -9 of the leader\'s sidecar: another node leads', async () => {
    const before = await status();
    const leader = before.nodes.find((n) => n.role === 'leader');
    expect(leader).toBeDefined();
    const killed = leader?.pids.sidecar as number;
    const run = await hactl(['local', 'kill', leader?.name as string, 'sidecar'], 30_000);
    expect(run).toMatchObject({ code: 0, err: '' });
    expect(run.out).toContain(`killed sidecar on ${leader?.name} (pid ${killed}, SIGKILL)`);
    expect(alive(killed)).toBe(false);
    // Design rule 3: its Postgres does not outlive it.
    if (WITH_POSTGRES) await waitFor('the killed sidecar\'s postgres to stop', async () => !alive(leader?.pids.postgres as number), 15_000);

    const others = before.nodes.filter((n) => n !== leader);
    const next = await waitFor(
      'another node to answer 200 on /leader',
      async () => {
        const statuses = await Promise.all(others.map((n) => leaderStatus(n.ip)));
        const leaders = others.filter((_, i) => statuses[i] === 200);
        return leaders.length === 1 ? leaders[0] : undefined;
      },
      60_000,
    );
    const after = await status();
    expect(after.nodes.find((n) => n.name === leader?.name)).toMatchObject({ role: 'down', pids: { sidecar: null } });
    expect(after.nodes.find((n) => n.name === next.name)?.role).toBe('leader');
    for (const node of after.nodes) for (const pid of Object.values(node.pids)) if (pid !== null) seen.add(pid);
  }, 120_000);

  test('down stops every process (no pid left, none under the directory); a second down is a no-op', async () => {
    const run = await hactl(['local', 'down'], 90_000);
    expect(run).toMatchObject({ code: 0, err: '' });
    expect(run.out).toContain('[local] every process has stopped');
    expect([...seen].filter(alive)).toEqual([]);
    expect(processesUnder(work)).toEqual([]);
    const s = await status();
    expect(s.nodes.map((n) => [n.role, n.pids])).toEqual(NAMES.map(() => ['down', { consul: null, postgres: null, sidecar: null }]));
    expect(await hactl(['local', 'down'], 30_000)).toEqual({ code: 0, out: 'local cluster is not running\n', err: '' });
  }, 120_000);

  test('up --no-tls on the TLS cluster, or with certificates that do not name server.dc1.consul: local_cluster_differs, nothing started', async () => {
    const noTls = await hactl(['local', 'up', '--detach', '--no-tls'], 60_000);
    expect(noTls.code).toBe(1);
    expect(noTls.err).toMatch(/^hactl: local_cluster_differs: the local cluster in .* was made with TLS: run it that way/);
    // Certificates from before Consul ran TLS: Consul's servers would refuse each other (verify_server_hostname).
    const old = join(work, 'old-tls');
    await initClusterTls(old, 'local', [{ name: 'n1', address: BASE, clientOnly: true }]);
    copyFileSync(join(old, 'n1.crt'), join(localDir, 'tls', 'n1.crt'));
    copyFileSync(join(old, 'n1.key'), join(localDir, 'tls', 'n1.key'));
    const oldCerts = await hactl(['local', 'up', '--detach'], 60_000);
    expect(oldCerts.code).toBe(1);
    expect(oldCerts.err).toMatch(/^hactl: local_cluster_differs: .*certificates in .*tls that do not name server\.dc1\.consul/);
    expect(processesUnder(localDir)).toEqual([]);
  }, 120_000);

  test('up in a directory the postgres user cannot enter: initdb_failed with the cause as soon as n1 reports it, nothing left running', async () => {
    const closed = join(work, 'closed'); // mkdtemp's 0700 below a root-owned 0755: root enters, postgres not
    const env = { HACTL_LOCAL_DIR: join(closed, 'cluster') };
    mkdirSync(closed, { mode: 0o700 });
    const run = await runCommand(process.execPath, [hactlJs, 'local', 'up', '--detach', '--base-address', BASE], { ...process.env, ...env, HACTL_CONFIG_DIR: configDir }, 240_000);
    expect(run.code).toBe(1);
    // Not start_timeout after the whole 120 s wait: the node's own reason, with the log to read.
    expect(run.err).toMatch(/^hactl: initdb_failed: n1 could not become the leader: initdb failed .*Permission denied.*; see .*n1\/sidecar\.log$/m);
    expect(run.out).toContain('[local] start-up failed');
    expect(processesUnder(closed)).toEqual([]);
  }, 240_000);
});
