// Over 400 lines: one file per module (cli/hactl.ts), every command's routing, output and exit code against one
// scripted API server that the cases share.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FetchLike } from '../../cli/leader-client.js';
import type { CliContext } from '../../cli/context.js';
import { cleanUsageMessage, helpHint, main } from '../../cli/hactl.js';
import type { ProfilesFile } from '../../cli/profiles.js';

/**
 * hactl end to end in-process: `main(argv)` against three small HTTP servers that play a sidecar cluster
 * (n1..n3, one of them leader), with the profiles in a temporary HACTL_CONFIG_DIR. Checks exit codes, the
 * one-line failures on stderr, what goes to stdout, and what ends up in the profile file.
 */

const TOKEN = 'cluster-token';

interface Node {
  name: string;
  url: string;
  server: http.Server;
  up: boolean;
}

interface Seen {
  node: string;
  method: string;
  path: string;
  auth: string | undefined;
  body: unknown;
}

const nodes: Node[] = [];
const seen: Seen[] = [];
let leaderName = 'n1';
let paused = false;
let configRoot: string;
let configDir: string;
let caseNo = 0;

const nodeNamed = (name: string) => nodes.find((n) => n.name === name) as Node;
const urlOf = (name: string) => nodeNamed(name).url;

/** Nodes that got POST /cluster/join: their status line then tells of the clone (hactl prints it as progress). */
const joined = new Set<string>();

function clusterView() {
  return {
    cluster: 'main',
    term: 7,
    leader: { name: leaderName, apiUrl: urlOf(leaderName), term: 7, since: '2024-01-01T00:00:00Z' },
    paused,
    members: nodes.map((n, i) => ({
      name: n.name,
      role: n.name === leaderName ? 'leader' : 'standby',
      state: n.name === leaderName ? 'running' : joined.has(n.name) ? `cloned from ${leaderName}, streaming` : 'streaming',
      apiUrl: n.url,
      address: `127.0.0.${11 + i}`,
      lagBytes: n.name === leaderName ? undefined : 2048 * i,
      timeline: 3,
      files: { state: 'synced', generation: 42 },
      ...(i < 2 ? { manager: { state: i === 0 ? 'healthy' : 'leader hook failed (1/3)', detail: 'x' } } : {}),
    })),
    status: 'no action: n1 holds the lock',
  };
}

const HISTORY = [
  { term: 6, at: '2024-01-01T00:00:00Z', kind: 'failover', leader: 'n2', previous: 'n1', reason: 'n1 lost its session' },
  { term: 7, at: '2024-01-02T00:00:00Z', kind: 'switchover', leader: 'n1', previous: 'n2', reason: 'hactl switchover' },
];

/** A streamed answer: NDJSON lines, sent as they are. */
class Ndjson {
  constructor(readonly text: string) {}
}
const ndjson = (...lines: unknown[]) => new Ndjson(lines.map((l) => JSON.stringify(l) + '\n').join(''));

function route(node: Node, method: string, path: string, auth: string | undefined, body: unknown): [number, unknown] {
  const isLeader = node.name === leaderName;
  const notLeader: [number, unknown] = [
    409,
    { error: 'not_cluster_leader', message: `${node.name} is a standby`, leader: leaderName, leaderUrl: urlOf(leaderName) },
  ];
  const mutating = method !== 'GET' || path === '/snapshots';
  if (mutating && auth !== `Bearer ${TOKEN}`) return [401, { error: 'unauthorized', message: 'a valid cluster token is needed' }];
  const key = `${method} ${path}`;
  if (key === 'GET /cluster') return [200, clusterView()];
  if (key === 'GET /history') return [200, HISTORY];
  if (key === 'POST /cluster/start') return [200, { message: `cluster started on ${node.name}` }];
  if (key === 'POST /cluster/join') {
    joined.add(node.name);
    return [200, { message: `${node.name} joined`, got: body }];
  }
  if (!isLeader) return notLeader;
  if (key === 'POST /switchover') {
    const to = (body as { to?: string }).to ?? 'n2';
    leaderName = to;
    return [200, { message: `switchover done: ${to} is the leader` }];
  }
  if (key === 'POST /pause') {
    paused = true;
    return [200, {}];
  }
  if (key === 'DELETE /cluster/nodes/n9') return [404, { error: 'unknown_node', message: 'there is no node n9' }];
  if (key === 'DELETE /cluster/nodes/n3') return [200, { message: 'n3 removed' }];
  if (key === 'GET /snapshots') {
    const s1 = { id: 's1', createdAt: '2024-01-03', term: 7, haSidecarVersion: '0.1.0', archiveSize: 1000, parts: { database: {} }, nodes: ['n1', 'n2'] };
    return [200, { node: node.name, snapshots: [s1] }];
  }
  // Long operations stream NDJSON progress lines, then the result.
  if (key === 'POST /snapshots') return [200, ndjson({ progress: 'dumping database manager (pg_dump -Fc)' }, { done: true, result: { id: 's2' } })];
  if (key === 'POST /snapshots/s1/restore') return [200, ndjson({ progress: 'pausing failover for the restore' }, { done: true, result: { restored: 's1' } })];
  if (key === 'POST /snapshots/s9/restore') return [200, ndjson({ progress: 'pausing failover for the restore' }, { error: 'snapshot_failed', message: 'pg_restore failed: disk full' })];
  return [404, { error: 'not_found', message: `no route ${key}` }];
}

async function startNode(name: string): Promise<Node> {
  const node = { name, url: '', up: true } as Node;
  node.server = http.createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      const body: unknown = text === '' ? undefined : JSON.parse(text);
      const path = req.url ?? '/';
      seen.push({ node: name, method: req.method ?? '', path, auth: req.headers.authorization, body });
      const [status, answer] = route(node, req.method ?? 'GET', path, req.headers.authorization, body);
      const streamed = answer instanceof Ndjson;
      res.writeHead(status, { 'content-type': streamed ? 'application/x-ndjson' : 'application/json' });
      res.end(streamed ? answer.text : JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => node.server.listen(0, '127.0.0.1', resolve));
  node.url = `http://127.0.0.1:${(node.server.address() as AddressInfo).port}`;
  return node;
}

/** A port nothing listens on. */
let deadUrl: string;

beforeAll(async () => {
  configRoot = await mkdtemp(join(tmpdir(), 'hactl-cli-'));
  for (const name of ['n1', 'n2', 'n3']) nodes.push(await startNode(name));
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  deadUrl = `http://127.0.0.1:${(probe.address() as AddressInfo).port}`;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
});

afterAll(async () => {
  for (const node of nodes) {
    node.server.closeAllConnections();
    await new Promise<void>((resolve) => node.server.close(() => resolve()));
  }
  await rm(configRoot, { recursive: true, force: true });
});

beforeEach(() => {
  caseNo += 1;
  configDir = join(configRoot, `case-${caseNo}`);
  leaderName = 'n1';
  paused = false;
  joined.clear();
  seen.length = 0;
});

interface Run {
  code: number;
  out: string[];
  err: string[];
}

/** Runs hactl in-process; `down` lists nodes whose connections are refused (their fetch fails). */
async function hactl(argv: string[], down: string[] = []): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const downUrls = new Set(down.map(urlOf));
  const fetchLike: FetchLike = (url, init) => {
    const origin = new URL(url).origin;
    if (downUrls.has(origin)) {
      const cause = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return Promise.reject(new TypeError('fetch failed', { cause }));
    }
    return fetch(url, init);
  };
  const ctx: CliContext = {
    io: { out: (t) => void out.push(t), err: (t) => void err.push(t) },
    env: { HACTL_CONFIG_DIR: configDir },
    fetch: fetchLike,
  };
  const code = await main(argv, ctx);
  return { code, out, err };
}

async function writeProfiles(file: ProfilesFile): Promise<void> {
  await mkdir(configDir, { recursive: true, mode: 0o700 });
  await writeFile(join(configDir, 'profiles.json'), JSON.stringify(file), { mode: 0o600 });
}

const readProfiles = async (): Promise<ProfilesFile> =>
  JSON.parse(await readFile(join(configDir, 'profiles.json'), 'utf8')) as ProfilesFile;

/** A profile "main" listing n1..n3 in order, with the token, and `lastLeader` as given. */
async function withProfile(lastLeader?: string, token: string | null = TOKEN): Promise<void> {
  const profile: ProfilesFile['profiles'][string] = { managers: nodes.map((n) => n.url) };
  if (token !== null) profile.token = token;
  if (lastLeader !== undefined) profile.lastLeader = urlOf(lastLeader);
  await writeProfiles({ current: 'main', profiles: { main: profile } });
}

describe('usage errors: exit 2, one line on stderr, nothing on stdout', () => {
  it.each([
    [['cluster', 'status', '--bogus'], 'Unknown argument: --bogus (run "hactl cluster status --help" for usage)'],
    [['cluster', 'status', '--bogus-flag=1', '-z'], 'Unknown arguments: --bogus-flag, -z (run "hactl cluster status --help" for usage)'],
    [['cluster', 'bogus'], 'Unknown argument: bogus (run "hactl cluster --help" for usage)'],
    [['bogus'], 'Unknown argument: bogus (run "hactl --help" for usage)'],
    [[], 'say what to do: profiles, cluster, config, dsn, snapshot, local or completion (run "hactl --help" for usage)'],
    [['cluster'], 'say which cluster command: start, join, status, remove-node, update-profile, switchover, failover, pause, resume, reinit, restart, reload, validate, history or tls (run "hactl cluster --help" for usage)'],
    [['cluster', 'failover'], 'Missing required argument: to (run "hactl cluster failover --help" for usage)'],
    [['cluster', 'reinit'], 'missing argument: <node> (run "hactl cluster reinit --help" for usage)'],
    [['cluster', 'restart', 'n1', 'n2'], 'Unknown argument: n2 (run "hactl cluster restart --help" for usage)'],
    [['cluster', 'reload', 'n2', '--force'], 'Unknown argument: --force (run "hactl cluster reload --help" for usage)'],
    [['cluster', 'join', '--node-name', 'n2'], 'missing argument: <leader-host> (run "hactl cluster join --help" for usage)'],
    [['cluster', 'start'], 'Missing required argument: node-name (run "hactl cluster start --help" for usage)'],
    [['cluster', 'remove-node'], 'missing argument: <name> (run "hactl cluster remove-node --help" for usage)'],
    [['cluster', 'remove-node', 'n2', 'n3'], 'Unknown argument: n3 (run "hactl cluster remove-node --help" for usage)'],
    [['snapshot', 'restore'], 'say which snapshot to restore: an id, or --file FILE'],
    [['snapshot', 'restore', 's1', '--file', 'x.tar'], 'give a snapshot id or --file FILE, not both'],
    [['profiles', 'use'], 'missing argument: <host> (run "hactl profiles use --help" for usage)'],
    [['local', 'sideways'], 'Unknown argument: sideways (run "hactl local --help" for usage)'],
    [['local'], 'say which local command: up, down, status, kill or start (run "hactl local --help" for usage)'],
  ])('hactl %j', async (argv, message) => {
    const run = await hactl(argv);
    expect(run).toEqual({ code: 2, out: [], err: [`hactl: usage_error: ${message}`] });
  });

  it.each([
    [['--timeout', 'abc', 'cluster', 'status'], '--timeout needs a positive number of seconds'],
    [['cluster', 'status', '--timeout', '0'], '--timeout needs a positive number of seconds'],
    [['cluster', 'status', '--timeout'], '--timeout needs a positive number of seconds'],
    [['cluster', 'status', '--profile'], '--profile needs a profile name'],
  ])('a bad option value is bad_value: hactl %j', async (argv, message) => {
    const run = await hactl(argv);
    expect(run.code).toBe(2);
    expect(run.out).toEqual([]);
    expect(run.err).toEqual([`hactl: bad_value: ${message} (run "hactl cluster status --help" for usage)`]);
  });

  it('a bad host is bad_host (exit 2)', async () => {
    const run = await hactl(['profiles', 'use', 'ftp://x']);
    expect(run).toEqual({ code: 2, out: [], err: ['hactl: bad_host: "ftp://x" is not a host or http(s) URL'] });
  });

  it('no profile yet is no_profile (exit 2), saying what to run', async () => {
    const run = await hactl(['cluster', 'status']);
    expect(run).toEqual({
      code: 2,
      out: [],
      err: ['hactl: no_profile: no current profile: run "hactl profiles use <host>" first'],
    });
  });

  it('an unknown --profile is unknown_profile (exit 2)', async () => {
    await withProfile();
    const run = await hactl(['cluster', 'status', '--profile', 'other']);
    expect(run.code).toBe(2);
    expect(run.err).toEqual(['hactl: unknown_profile: there is no profile "other" (known profiles: main)']);
  });
});

describe('help and version', () => {
  it('--help prints the commands on stdout and exits 0', async () => {
    const run = await hactl(['--help']);
    expect(run.code).toBe(0);
    expect(run.err).toEqual([]);
    const text = run.out.join('\n');
    for (const command of ['hactl profiles', 'hactl cluster', 'hactl snapshot', 'hactl local']) expect(text).toContain(command);
    expect(text).toContain('--timeout');
  });

  it('a command --help prints that command', async () => {
    const run = await hactl(['cluster', 'join', '--help']);
    expect(run.code).toBe(0);
    expect(run.out.join('\n')).toMatch(/^hactl cluster join <leader-host>/);
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(await hactl(['--version'])).toEqual({ code: 0, out: [pkg.version], err: [] });
  });
});

describe('message helpers', () => {
  it('cleanUsageMessage drops camel-case echoes and restores dashes', () => {
    expect(cleanUsageMessage('Unknown arguments: dry-run, dryRun, x', ['--dry-run', '--x=2'])).toBe(
      'Unknown arguments: --dry-run, --x',
    );
    expect(cleanUsageMessage('Unknown argument: extra', ['extra'])).toBe('Unknown argument: extra');
    expect(cleanUsageMessage('Something else', [])).toBe('Something else');
  });

  it('helpHint stops at the first placeholder', () => {
    expect(helpHint(['hactl', 'cluster', 'join', '<leader-host>'])).toBe('(run "hactl cluster join --help" for usage)');
    expect(helpHint(['hactl'])).toBe('(run "hactl --help" for usage)');
  });
});

describe('profiles', () => {
  it('use <host> reads the managers from /cluster, stores the token 0600 and the leader, and makes it current', async () => {
    const host = nodeNamed('n2').url;
    const run = await hactl(['profiles', 'use', host, '--name', 'lab', '--token', TOKEN]);
    expect(run.code).toBe(0);
    expect(run.err).toEqual([]);
    expect(run.out).toEqual([`profile "lab" is current: ${nodes.map((n) => n.url).join(', ')}`]);
    expect(await readProfiles()).toEqual({
      current: 'lab',
      profiles: { lab: { managers: nodes.map((n) => n.url), token: TOKEN, lastLeader: urlOf('n1') } },
    });
    expect((await stat(join(configDir, 'profiles.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(configDir)).mode & 0o777).toBe(0o700);
  });

  it('use <host> of an unreachable host lists just that host, with a note', async () => {
    const run = await hactl(['profiles', 'use', deadUrl]);
    const name = new URL(deadUrl).host;
    expect(run.code).toBe(0);
    expect(run.out).toEqual([`profile "${name}" is current: ${deadUrl}`]);
    expect(run.err).toHaveLength(1);
    expect(run.err[0]).toMatch(/^hactl: note: could not read the members from .* \(connection refused\)/);
    expect((await readProfiles()).profiles[name]).toEqual({ managers: [deadUrl] });
  });

  it('list and show never print the token', async () => {
    await withProfile('n1');
    const list = await hactl(['profiles', 'list']);
    expect(list.code).toBe(0);
    expect(list.out[0]).toMatch(/^\s+NAME\s+MANAGERS\s+LAST LEADER\s+TOKEN\s+CA$/);
    expect(list.out[1]).toMatch(/^\*\s+main\s+\S+\s+http:\/\/127\.0\.0\.1:\d+\s+yes\s+no$/);
    const show = await hactl(['profiles', 'show', '--json']);
    expect(JSON.parse(show.out.join('\n'))).toMatchObject({ name: 'main', current: true, hasToken: true });
    expect([...list.out, ...show.out].join('\n')).not.toContain(TOKEN);
  });

  it('a corrupt profile file is one bad_profile_file line, exit 1', async () => {
    await mkdir(configDir, { recursive: true });
    await writeFile(join(configDir, 'profiles.json'), '{ not json');
    const run = await hactl(['cluster', 'status']);
    expect(run.code).toBe(1);
    expect(run.out).toEqual([]);
    expect(run.err).toHaveLength(1);
    expect(run.err[0]).toMatch(/^hactl: bad_profile_file: .*profiles\.json is not valid JSON/);
  });
});

describe('cluster', () => {
  it('status prints term, leader and paused above a table with the leader marked, and notes the leader', async () => {
    await withProfile();
    const run = await hactl(['cluster', 'status']);
    expect(run.code).toBe(0);
    expect(run.err).toEqual([]);
    expect(run.out[0]).toBe('cluster: main   term: 7   leader: n1   paused: no');
    expect(run.out[1]).toBe('status: no action: n1 holds the lock');
    expect(run.out[3]).toMatch(/^\s+NAME\s+ADDRESS\s+ROLE\s+STATE\s+LAG\s+TIMELINE\s+FILES\s+MANAGER$/);
    expect(run.out[4]).toMatch(/^\*\s+n1\s+127\.0\.0\.11\s+leader\s+running\s+-\s+3\s+synced gen 42\s+healthy$/);
    expect(run.out[5]).toMatch(/^\s+n2\s+127\.0\.0\.12\s+standby\s+streaming\s+2\.0 KiB\s+3\s+synced gen 42\s+leader hook failed \(1\/3\)$/);
    expect(run.out[6]).toMatch(/^\s+n3\s+127\.0\.0\.13\s+standby\s+streaming\s+4\.0 KiB\s+3\s+synced gen 42\s+-$/);
    expect((await readProfiles()).profiles.main?.lastLeader).toBe(urlOf('n1'));
  });

  it('status --json prints the /cluster body on stdout', async () => {
    await withProfile();
    const run = await hactl(['cluster', 'status', '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.out.join('\n'))).toEqual(JSON.parse(JSON.stringify(clusterView())));
  });

  it('status works with the last leader down, from a standby', async () => {
    await withProfile('n1');
    const run = await hactl(['cluster', 'status'], ['n1']);
    expect(run.code).toBe(0);
    expect(seen.map((s) => s.node)).toEqual(['n2']);
  });

  it('switchover reaches the leader through a standby 409, and saves the new leader in the profile', async () => {
    leaderName = 'n3';
    await withProfile('n1');
    const run = await hactl(['cluster', 'switchover', '--to', 'n2'], ['n1']);
    // n3 was leader before (leaderName), n2 after: the progress lines say so, then the answer.
    expect(run).toEqual({ code: 0, out: ['  n2 leader: running', '  n3 standby: streaming', 'switchover done: n2 is the leader'], err: [] });
    // n1 refused the connection (not seen), n2 answered 409 naming n3, n3 did it (GET /cluster: the progress lines).
    const posts = seen.filter((s) => s.method === 'POST');
    expect(posts.map((s) => `${s.node} ${s.method} ${s.path}`)).toEqual(['n2 POST /switchover', 'n3 POST /switchover']);
    expect(posts[1]?.body).toEqual({ to: 'n2' });
    expect((await readProfiles()).profiles.main?.lastLeader).toBe(urlOf('n3'));
  });

  it('no reachable leader: exit 3, one line naming every manager', async () => {
    await withProfile('n1');
    const run = await hactl(['cluster', 'pause'], ['n1', 'n2', 'n3']);
    expect(run.code).toBe(3);
    expect(run.out).toEqual([]);
    expect(run.err).toEqual([
      `hactl: no_reachable_leader: no manager answered as the cluster leader (${nodes
        .map((n) => `${n.url}: connection refused`)
        .join('; ')})`,
    ]);
    expect((await readProfiles()).profiles.main?.lastLeader).toBe(urlOf('n1'));
  });

  it('status with every manager down: exit 3', async () => {
    await withProfile();
    const run = await hactl(['cluster', 'status'], ['n1', 'n2', 'n3']);
    expect(run.code).toBe(3);
    expect(run.err[0]).toMatch(/^hactl: no_reachable_manager: no manager answered \(/);
  });

  it('pause sends the token; without it the API error is one line, exit 1', async () => {
    await withProfile(undefined, null);
    const refused = await hactl(['cluster', 'pause']);
    expect(refused).toEqual({ code: 1, out: [], err: ['hactl: unauthorized: a valid cluster token is needed'] });
    await withProfile();
    const run = await hactl(['cluster', 'pause']);
    expect(run.code).toBe(0);
    expect(run.out).toEqual(['cluster paused: no automatic failover until "hactl cluster resume"']);
    expect(paused).toBe(true);
    expect(seen.at(-1)?.auth).toBe(`Bearer ${TOKEN}`);
  });

  it('remove-node reports the API error code and message, exit 1', async () => {
    await withProfile('n1');
    expect(await hactl(['cluster', 'remove-node', 'n9'])).toEqual({
      code: 1,
      out: [],
      err: ['hactl: unknown_node: there is no node n9'],
    });
    expect(await hactl(['cluster', 'remove-node', 'n3'])).toEqual({ code: 0, out: ['n3 removed'], err: [] });
  });

  it('start goes to the named node itself, found from the members', async () => {
    await withProfile();
    const run = await hactl(['cluster', 'start', '--node-name', 'n2']);
    expect(run).toEqual({ code: 0, out: ['cluster started on n2'], err: [] });
    expect(seen.filter((s) => s.method === 'POST')).toEqual([
      { node: 'n2', method: 'POST', path: '/cluster/start', auth: `Bearer ${TOKEN}`, body: { nodeName: 'n2' } },
    ]);
    expect((await readProfiles()).profiles.main?.lastLeader).toBe(urlOf('n2'));
  });

  it('join goes to the joining node with the leader URL, prints its status line as progress, and adds --node-url to the profile', async () => {
    await writeProfiles({ current: 'main', profiles: { main: { managers: [urlOf('n1')], token: TOKEN } } });
    const run = await hactl(['cluster', 'join', '--node-name', 'n3', urlOf('n1').replace('http://', '')]);
    expect(run).toEqual({ code: 0, out: ['  n3 standby: cloned from n1, streaming', 'n3 joined'], err: [] });
    const join_ = seen.find((s) => s.path === '/cluster/join');
    expect(join_).toMatchObject({ node: 'n3', body: { nodeName: 'n3', leaderUrl: urlOf('n1'), force: false } });
    expect((await readProfiles()).profiles.main?.managers).toEqual([urlOf('n1'), urlOf('n3')]);

    const forced = await hactl(['cluster', 'join', '--node-name', 'x', '--node-url', urlOf('n2'), urlOf('n1'), '--force']);
    expect(forced.code).toBe(0);
    expect(seen.filter((s) => s.path === '/cluster/join').at(-1)).toMatchObject({ node: 'n2', body: { force: true } });
  });

  it('join --node-address finds the joining node at <address>:8008; a URL there is a usage error', async () => {
    await writeProfiles({ current: 'main', profiles: { main: { managers: [urlOf('n1')], token: TOKEN } } });
    const run = await hactl(['cluster', 'join', '--node-name', 'x', '--node-address', new URL(urlOf('n2')).host, urlOf('n1')]);
    expect(run.code).toBe(0);
    expect(seen.filter((s) => s.path === '/cluster/join').at(-1)).toMatchObject({ node: 'n2', body: { nodeName: 'x', leaderUrl: urlOf('n1') } });
    const url = await hactl(['cluster', 'join', '--node-name', 'x', '--node-address', urlOf('n2'), urlOf('n1')]);
    expect(url).toEqual({ code: 2, out: [], err: ['hactl: bad_host: --node-address takes a host, not a URL (use --node-url for a URL)'] });
  });

  it('join of a node nobody knows says to pass --node-address, exit 1', async () => {
    await withProfile();
    const run = await hactl(['cluster', 'join', '--node-name', 'n7', urlOf('n1')]);
    expect(run).toEqual({
      code: 1,
      out: [],
      err: [
        'hactl: unknown_node: cannot tell where node "n7" runs: no member is named "n7"; pass --node-address <its address>',
      ],
    });
  });

  it('update-profile replaces the managers with the members and keeps the token', async () => {
    await writeProfiles({ current: 'main', profiles: { main: { managers: [urlOf('n2')], token: TOKEN } } });
    const run = await hactl(['cluster', 'update-profile']);
    expect(run).toEqual({ code: 0, out: [`profile "main" managers: ${nodes.map((n) => n.url).join(', ')}`], err: [] });
    expect((await readProfiles()).profiles.main).toEqual({
      managers: nodes.map((n) => n.url),
      token: TOKEN,
      lastLeader: urlOf('n1'),
    });
  });

  it('history prints a table, or the JSON with --json', async () => {
    await withProfile();
    const run = await hactl(['cluster', 'history']);
    expect(run.code).toBe(0);
    expect(run.out[0]).toMatch(/^TERM\s+AT\s+KIND\s+LEADER\s+PREVIOUS\s+REASON$/);
    expect(run.out[1]).toMatch(/^6\s+2024-01-01T00:00:00Z\s+failover\s+n2\s+n1\s+n1 lost its session$/);
    const json = await hactl(['cluster', 'history', '--json']);
    expect(JSON.parse(json.out.join('\n'))).toEqual(HISTORY);
  });
});

describe('snapshot and local', () => {
  it('create, list and restore go to the leader and print its progress lines', async () => {
    await withProfile('n2');
    expect(await hactl(['snapshot', 'create'])).toEqual({ code: 0, out: ['dumping database manager (pg_dump -Fc)', 'snapshot s2 created'], err: [] });
    const list = await hactl(['snapshot', 'list']);
    expect(list.out[0]).toMatch(/^ID\s+CREATED\s+TERM\s+VERSION\s+SIZE\s+PARTS\s+NODES$/);
    expect(list.out[1]).toMatch(/^s1\s+2024-01-03\s+7\s+0\.1\.0\s+1000 B\s+database\s+n1,n2$/);
    expect(await hactl(['snapshot', 'restore', 's1'])).toEqual({ code: 0, out: ['pausing failover for the restore', 'snapshot s1 restored'], err: [] });
    expect(seen.filter((s) => s.node === 'n1' && s.path !== '/cluster').map((s) => `${s.method} ${s.path} ${s.auth}`)).toEqual([
      `POST /snapshots Bearer ${TOKEN}`,
      `GET /snapshots Bearer ${TOKEN}`,
      `POST /snapshots/s1/restore Bearer ${TOKEN}`,
    ]);
  });

  it('a failure while the leader works arrives as the last line: its code, exit 1', async () => {
    await withProfile('n1');
    expect(await hactl(['snapshot', 'restore', 's9'])).toEqual({
      code: 1,
      out: ['pausing failover for the restore'],
      err: ['hactl: snapshot_failed: pg_restore failed: disk full'],
    });
  });
});
