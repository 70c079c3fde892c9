import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { localClientTls, localNodeFiles, nodeAddresses } from '../../cli/local/layout.js';
import { readProfileTls } from '../../cli/profiles.js';
import { EVENT_LOOP_SAMPLE_MS } from '../../sidecar/metrics.js';
import { httpsFetch, type FetchFunction } from '../../sidecar/shared/https-fetch.js';
import { projectRoot } from '../../sidecar/shared/package.js';
import { livePostmasterPid } from '../../sidecar/postgres/pid-file.js';
import { nodeAddress } from '../harness/net.js';
import { waitFor } from '../harness/processes.js';

/**
 * `npm run bench -- idle`: what an idle cluster costs. Starts the local cluster as `npm start` does (`hactl
 * local up`: Postgres, the file mirror and the sample manager on every node) on the bench's own addresses and
 * directory, waits until it has settled (every standby streams, every mirror is in sync, every manager is
 * healthy) and SETTLE_MS more, then measures each process on its own for `seconds` from /proc: CPU
 * (utime + stime) as a share of one core, and RSS at the end; each sidecar's requests per second to its
 * Consul agent, its Postgres, its peers and its manager (`ha_sidecar_requests_total`); and each sidecar's
 * event loop's longest delay and its time in GC over the measure (from its own /metrics).
 */

export interface IdleVariant {
  nodes: 3 | 5;
  /** Files written into the leader's directory (and mirrored) before the measure. */
  files: number;
}

export interface ProcessFigure {
  node: string;
  process: 'sidecar' | 'guard' | 'consul' | 'postmaster' | 'postgres (all)' | 'manager';
  pid: number;
  cpuPercent: number;
  rssMb: number;
  /** The process was gone at the end of the measure (its CPU figure is then meaningless). */
  gone?: boolean;
}

export interface IdleResult extends IdleVariant {
  seconds: number;
  /** Load average (1 min) at the start and the end of the measure: other work on the machine skews the figures. */
  load: [number, number];
  leader: string;
  processes: ProcessFigure[];
  /** Per sidecar, requests per second by target. */
  requestsPerSecond: Record<string, Record<string, number>>;
  /** Per sidecar, over the measure: its event loop's longest delay, and its ms of GC per minute. */
  runtime: Record<string, SidecarRuntime>;
  /** Every process of the cluster (Postgres with all its children), in % of one core. */
  clusterCpuPercent: number;
  /** The leader at the end, when it is not the one at the start: the cluster did not stay idle. */
  leaderAtEnd?: string;
}

/** The issue's measure starts 30 s after start: what settles in that time (first checkpoints, catalog caches) is no idle cost. */
const SETTLE_MS = 30_000;
/** The bench cluster's first node: on HA_TEST_NET's .31 and up, apart from the tests' .11-.15 and the `hactl local` test's .21-.23. */
const BASE_ADDRESS = nodeAddress(20);

const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

interface Sample {
  /** utime + stime of the process itself, in clock ticks. */
  own: number;
  /** The same plus its reaped children's (cutime + cstime). */
  withReaped: number;
}

function sample(pid: number): Sample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14-17 of proc(5) (utime, stime, cutime, cstime); fields[0] here is field 3 (state).
    const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number);
    return { own: utime + stime, withReaped: utime + stime + cutime + cstime };
  } catch {
    return null;
  }
}

function rssMb(pid: number): number {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}

/** Pids of the processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number).filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    } catch {
      return false;
    }
  });
}

const cmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
};

const load1 = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

function hactl(env: NodeJS.ProcessEnv, args: string[], timeoutMs: number): string {
  const run = spawnSync(process.execPath, [join(projectRoot(), 'dist', 'cli', 'hactl.js'), ...args], { env, timeout: timeoutMs, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`hactl ${args.join(' ')} failed (${run.status ?? run.signal}): ${run.stderr || run.stdout}`);
  return run.stdout;
}

interface ClusterMember {
  name: string;
  role: string;
  alive: boolean;
  streaming?: boolean;
  files?: { state: string; generation: number; entries?: number };
  manager?: { state: string };
}

async function members(fetch: FetchFunction, apiUrl: string): Promise<ClusterMember[]> {
  const res = await fetch(`${apiUrl}/cluster`, { signal: AbortSignal.timeout(2_000) });
  return ((await res.json()) as { members: ClusterMember[] }).members;
}

/** Every member alive, one leader, every standby streaming and in sync, every manager healthy. */
function settled(ms: ClusterMember[], size: number): string | undefined {
  const leader = ms.find((m) => m.role === 'leader');
  if (ms.length !== size || !leader || !ms.every((m) => m.alive && m.manager?.state === 'healthy')) return undefined;
  const standbys = ms.filter((m) => m !== leader);
  const ok = standbys.every((m) => m.role === 'standby' && m.streaming === true && m.files?.state === 'in sync' && m.files.generation === leader.files?.generation);
  return ok ? leader.name : undefined;
}

export interface SidecarRuntime {
  eventLoopMaxDelayMs: number;
  gcMsPerMinute: number;
}

interface Scrape {
  requests: Record<string, number>;
  /** Seconds of GC since start, all kinds (`nodejs_gc_duration_seconds_sum`). */
  gcSeconds: number;
  /**
   * The longest interval between two samples of the event loop's delay since the previous scrape (prom-client
   * resets its histogram at each collect): Node's histogram records the whole interval, the sampling period
   * (EVENT_LOOP_SAMPLE_MS) included.
   */
  eventLoopMaxSeconds: number;
}

/** One read of a sidecar's /metrics; the bench is its only reader during the measure, so the lag's max covers it. */
async function scrape(fetch: FetchFunction, apiUrl: string): Promise<Scrape> {
  const text = await (await fetch(`${apiUrl}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
  const requests: Record<string, number> = {};
  for (const m of text.matchAll(/^ha_sidecar_requests_total\{[^}]*to="(\w+)"[^}]*\} (\d+)/gm)) requests[m[1]] = Number(m[2]);
  let gcSeconds = 0;
  for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*\} ([\d.e+-]+)/gm)) gcSeconds += Number(m[1]);
  const eventLoopMaxSeconds = Number(/^nodejs_eventloop_lag_max_seconds(?:\{[^}]*\})? ([\d.e+-]+)/m.exec(text)?.[1] ?? NaN);
  return { requests, gcSeconds, eventLoopMaxSeconds };
}

function writeFiles(dir: string, count: number): void {
  const root = join(dir, 'many');
  for (let k = 0; k < count; k++) {
    if (k % 1000 === 0) mkdirSync(join(root, `d${k / 1000}`), { recursive: true });
    writeFileSync(join(root, `d${Math.floor(k / 1000)}`, `f${k}`), `file ${k}\n`);
  }
}

export async function benchIdleVariant(variant: IdleVariant, seconds: number): Promise<IdleResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ha-idle-'));
  chmodSync(dir, 0o711); // the postgres OS user must reach its data directories
  const env = { ...process.env, HACTL_LOCAL_DIR: join(dir, 'cluster'), HACTL_CONFIG_DIR: join(dir, 'hactl') };
  const addresses = nodeAddresses(BASE_ADDRESS, variant.nodes);
  const names = addresses.map((_, i) => `n${i + 1}`);
  // `hactl local up` serves the API over HTTPS with its own CA and asks for a client certificate (hactl's).
  const apiUrl = (i: number) => `https://${addresses[i]}:8008`;
  let tlsFetch: FetchFunction | undefined;
  const api: FetchFunction = (url, init) => (tlsFetch ??= httpsFetch(readProfileTls(localClientTls(env.HACTL_LOCAL_DIR))))(url, init);
  let failed = true;
  try {
    console.log(`\n${variant.nodes} nodes, ${variant.files} files: starting the local cluster on ${BASE_ADDRESS}...`);
    hactl(env, ['local', 'up', '--nodes', String(variant.nodes), '--detach', '--base-address', BASE_ADDRESS, '--postgres'], 300_000);
    const leaderOf = () => members(api, apiUrl(0)).then((ms) => settled(ms, variant.nodes));
    let leader = await waitFor('the cluster settled', leaderOf, 180_000, 500);
    if (variant.files > 0) {
      const t0 = Date.now();
      writeFiles(localNodeFiles(env.HACTL_LOCAL_DIR, leader).filesDir, variant.files);
      // Settled with the leader holding every file: its standbys are in sync at a generation before them while it reads their events.
      const mirrored = async () => {
        const ms = await members(api, apiUrl(0));
        const name = settled(ms, variant.nodes);
        return name !== undefined && (ms.find((m) => m.name === name)?.files?.entries ?? 0) >= variant.files ? name : undefined;
      };
      leader = await waitFor(`${variant.files} files mirrored`, mirrored, 900_000, 1_000);
      console.log(`  ${variant.files} files mirrored in ${Math.round((Date.now() - t0) / 1000)} s`);
    }
    await sleep(SETTLE_MS);

    const status = JSON.parse(hactl(env, ['local', 'status', '--json'], 30_000)) as { nodes: { name: string; pids: { consul: number | null; sidecar: number | null } }[] };
    const tracked: { node: string; process: ProcessFigure['process']; pid: number; children?: boolean }[] = [];
    for (const n of status.nodes) {
      const files = localNodeFiles(env.HACTL_LOCAL_DIR, n.name);
      const sidecar = n.pids.sidecar;
      const postmaster = livePostmasterPid(files.postgresDataDir);
      if (sidecar === null || n.pids.consul === null || postmaster === null) throw new Error(`${n.name} is missing a process: ${JSON.stringify(n.pids)}`);
      const guard = childrenOf(sidecar).find((p) => cmdline(p).includes('guard'));
      const manager = Number(readFileSync(join(files.managerDir, 'manager.pid'), 'utf8'));
      tracked.push({ node: n.name, process: 'sidecar', pid: sidecar }, { node: n.name, process: 'consul', pid: n.pids.consul }, { node: n.name, process: 'postmaster', pid: postmaster });
      tracked.push({ node: n.name, process: 'postgres (all)', pid: postmaster, children: true });
      if (guard !== undefined) tracked.push({ node: n.name, process: 'guard', pid: guard });
      tracked.push({ node: n.name, process: 'manager', pid: manager });
    }

    // Postgres with all its children: the postmaster's own and reaped time, plus each child's own time.
    const postgresTotal = (pid: number): Map<number, number> => {
      const m = new Map<number, number>();
      m.set(pid, sample(pid)?.withReaped ?? 0);
      for (const c of childrenOf(pid)) m.set(c, sample(c)?.own ?? 0);
      return m;
    };
    const before = tracked.map((t) => (t.children ? postgresTotal(t.pid) : new Map([[t.pid, sample(t.pid)?.own ?? 0]])));
    const scrapesBefore = await Promise.all(names.map((_, i) => scrape(api, apiUrl(i))));
    const loadStart = load1();
    console.log(`  settled (leader ${leader}); measuring for ${seconds} s (load ${loadStart})`);
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const after = tracked.map((t) => (t.children ? postgresTotal(t.pid) : new Map([[t.pid, sample(t.pid)?.own ?? 0]])));
    const elapsed = (performance.now() - t0) / 1000;
    const scrapesAfter = await Promise.all(names.map((_, i) => scrape(api, apiUrl(i))));
    const leaderAtEnd = await waitFor('the cluster settled after the measure', leaderOf, 60_000, 500).catch(() => 'none');
    const loadEnd = load1();

    const processes: ProcessFigure[] = tracked.map((t, k) => {
      let ticks = 0;
      // A child born during the measure started at 0 ticks.
      for (const [pid, end] of after[k]) ticks += end - (before[k].get(pid) ?? 0);
      const gone = sample(t.pid) === null;
      const figure = { node: t.node, process: t.process, pid: t.pid, cpuPercent: Math.round((ticks / ticksPerSecond / elapsed) * 10_000) / 100, rssMb: t.children ? 0 : rssMb(t.pid) };
      return gone ? { ...figure, gone } : figure;
    });
    const requestsPerSecond = Object.fromEntries(
      names.map((name, i) => [
        name,
        Object.fromEntries(Object.entries(scrapesAfter[i].requests).map(([to, n]) => [to, Math.round(((n - (scrapesBefore[i].requests[to] ?? 0)) / elapsed) * 100) / 100])),
      ]),
    );
    const runtime = Object.fromEntries(
      names.map((name, i) => [
        name,
        {
          eventLoopMaxDelayMs: Math.round((scrapesAfter[i].eventLoopMaxSeconds * 1000 - EVENT_LOOP_SAMPLE_MS) * 10) / 10,
          gcMsPerMinute: Math.round(((scrapesAfter[i].gcSeconds - scrapesBefore[i].gcSeconds) / elapsed) * 60_000 * 10) / 10,
        },
      ]),
    );
    const clusterCpuPercent = Math.round(processes.filter((p) => p.process !== 'postmaster').reduce((s, p) => s + p.cpuPercent, 0) * 100) / 100;
    failed = false;
    return { ...variant, seconds, load: [loadStart, loadEnd], leader, processes, requestsPerSecond, runtime, clusterCpuPercent, ...(leaderAtEnd !== leader ? { leaderAtEnd } : {}) };
  } finally {
    try {
      // A failed run keeps its logs and data for a post-mortem.
      hactl(env, ['local', 'down', ...(failed ? [] : ['--purge'])], 120_000);
    } catch (e) {
      console.error(`  could not stop the bench cluster: ${(e as Error).message}`);
    }
    if (failed) console.error(`  kept ${dir} (logs and data of the failed run)`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

export function printIdle(r: IdleResult): void {
  console.log(`\n${r.nodes} nodes, ${r.files} files, leader ${r.leader}, ${r.seconds} s, load ${r.load[0]} -> ${r.load[1]}`);
  console.log('node  process          CPU %   RSS MB');
  for (const p of r.processes) console.log(`${p.node.padEnd(5)} ${p.process.padEnd(15)} ${p.cpuPercent.toFixed(2).padStart(6)} ${(p.rssMb ? String(p.rssMb) : '-').padStart(8)}${p.gone ? '  (gone by the end: restarted or stopped)' : ''}`);
  if (r.leaderAtEnd) console.log(`the leader changed during the measure: ${r.leader} -> ${r.leaderAtEnd}; the figures are not those of an idle cluster`);
  console.log(`whole cluster: ${r.clusterCpuPercent.toFixed(2)} % of one core`);
  console.log('requests per second: ' + Object.entries(r.requestsPerSecond).map(([n, q]) => `${n} ${Object.entries(q).map(([to, v]) => `${to} ${v}`).join(', ')}`).join('; '));
  console.log('sidecar event loop max delay, GC: ' + Object.entries(r.runtime).map(([n, x]) => `${n} ${x.eventLoopMaxDelayMs} ms, ${x.gcMsPerMinute} ms/min`).join('; '));
}

export async function benchIdle(variants: IdleVariant[], seconds: number): Promise<IdleResult[]> {
  const results: IdleResult[] = [];
  for (const v of variants) {
    const r = await benchIdleVariant(v, seconds);
    printIdle(r);
    results.push(r);
  }
  return results;
}
