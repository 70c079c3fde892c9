import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { APP_LOGIN, TestCluster } from '../harness/cluster.js';
import { processName } from '../harness/driver.js';
import { TestHaproxy } from '../harness/haproxy.js';
import { waitFor } from '../harness/processes.js';
import { WritingClient } from '../harness/writer.js';

/**
 * `npm run bench -- failover`: the phases of a failover, per way a leader can go, on one 3-node cluster with
 * Postgres under a client writing through the real HAProxy the whole time. Every phase is measured from t0,
 * the fault (Date.now() just before it), on this machine's one clock: the sidecars' log timestamps are ISO
 * wall-clock times, the clients' times are converted from performance.now() to the same clock.
 */

export const FAULTS = [
  'kill -9 sidecar',
  'kill -9 sidecar + postmaster',
  'kill -9 consul',
  'power cut',
  'SIGSTOP sidecar',
  'graceful stop',
  'switchover',
] as const;
export type Fault = (typeof FAULTS)[number];

export const PHASES = ['detection', 'acquisition', 'promotion', 'directWrite', 'haproxyWrite'] as const;
export type Phase = (typeof PHASES)[number];

/** One run: ms after the fault of each phase (null when the log had no such line), and what the client saw. */
export interface RunPhases {
  from: string;
  to: string;
  detection: number | null;
  acquisition: number | null;
  promotion: number | null;
  directWrite: number;
  haproxyWrite: number;
  /** Longest time without an acknowledged write through HAProxy, from the last one before the fault. */
  writeGap: number;
  /** Rows the HAProxy client got a commit acknowledgement for that the new leader does not have. */
  lost: number;
  /** From restarting what the fault stopped (SIGCONT; for a switchover, its end) to 3 streaming nodes again. */
  rejoin: number;
}

export interface Quantiles {
  p50: number;
  p95: number;
  max: number;
}

export interface FaultSeries {
  fault: Fault;
  runs: RunPhases[];
  summary: Record<Phase | 'writeGap' | 'lost' | 'rejoin', Quantiles | null>;
}

/** Nearest-rank quantile of the values present; null when no run had the phase. */
export function quantiles(values: (number | null)[]): Quantiles | null {
  const sorted = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const rank = (q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];
  return { p50: rank(0.5), p95: rank(0.95), max: sorted[sorted.length - 1] };
}

export function summarize(fault: Fault, runs: RunPhases[]): FaultSeries {
  const summary = Object.fromEntries([...PHASES, 'writeGap', 'lost', 'rejoin'].map((k) => [k, quantiles(runs.map((r) => r[k as Phase | 'writeGap' | 'lost' | 'rejoin']))]));
  return { fault, runs, summary: summary as FaultSeries['summary'] };
}

/** A sidecar log line (winston JSON); other lines (a crash's stack, the guard's own output) are skipped. */
export interface LogLine {
  message: string;
  at: number;
}

/** The JSON lines `file` got since byte `from`. */
export function logLinesSince(file: string, from: number): LogLine[] {
  const size = statSync(file).size;
  const buffer = Buffer.alloc(Math.max(0, size - from));
  const fd = openSync(file, 'r');
  try {
    readSync(fd, buffer, 0, buffer.length, from);
  } finally {
    closeSync(fd);
  }
  const lines: LogLine[] = [];
  for (const text of buffer.toString('utf8').split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const entry = JSON.parse(text) as { message?: unknown; timestamp?: unknown };
      if (typeof entry.message === 'string' && typeof entry.timestamp === 'string') lines.push({ message: entry.message, at: Date.parse(entry.timestamp) });
    } catch {
      // a line cut by a kill -9 mid-write
    }
  }
  return lines;
}

const firstAt = (lines: LogLine[], t0: number, match: (message: string) => boolean): number | null => lines.find((l) => l.at >= t0 && match(l.message))?.at ?? null;

/** Every process below `pid` (its children, theirs, ...), from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while we read
    }
  }
  const found: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      found.push(c);
      walk(c);
    }
  };
  walk(pid);
  return found;
}

const killNow = (pids: number[], signal: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
};

/**
 * Inserts on each of `nodes`' Postgres directly, every `everyMs`, on one connection per node (a standby
 * refuses, read-only), until one node acknowledges: when (Date.now()) and which node.
 */
class DirectProbe {
  first: { at: number; node: number } | undefined;
  private running = true;
  private readonly done: Promise<void>;

  constructor(
    private readonly cluster: TestCluster,
    nodes: number[],
    private readonly everyMs = 15,
  ) {
    this.done = Promise.all(nodes.map((i) => this.probe(i))).then(() => undefined);
  }

  private async probe(i: number): Promise<void> {
    let client: pg.Client | null = null;
    while (this.running && this.first === undefined) {
      try {
        if (!client) {
          client = new pg.Client({ host: this.cluster.address(i), port: 15432, ssl: this.cluster.postgresSsl('verify-full'), ...APP_LOGIN, connectionTimeoutMillis: 1_000, query_timeout: 30_000 });
          client.on('error', () => undefined);
          await client.connect();
        }
        await client.query('insert into probe (at) values (now())');
        this.first ??= { at: Date.now(), node: i };
      } catch (e) {
        // A standby's refusal leaves the connection usable; anything else (a restart, a cut) reconnects.
        if ((e as { code?: string }).code !== '25006') {
          await client?.end().catch(() => undefined);
          client = null;
        }
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

const settleMs = 90_000;

/**
 * Every fault `runs` times on one cluster: the leader goes, the phases are read from the logs and the two
 * clients, what the fault stopped is started again, and the next fault waits for 3 streaming nodes.
 */
export async function benchFailover(runs: number, synchronous: boolean, faults: readonly Fault[] = FAULTS): Promise<FaultSeries[]> {
  const cluster = new TestCluster({ size: 3, postgres: true });
  const haproxy = new TestHaproxy(cluster);
  let writer: WritingClient | undefined;
  const results: FaultSeries[] = [];
  try {
    await cluster.start();
    await cluster.waitAllStreaming();
    const first = (await cluster.leaderIndex())!;
    await cluster.sql(first, 'create table acked (id bigint primary key)');
    await cluster.sql(first, 'create table probe (at timestamptz)');
    const patched = await cluster.call(first, 'PATCH', '/config', { synchronousMode: synchronous });
    if (patched.status !== 200) throw new Error(`PATCH /config failed: ${JSON.stringify(patched.body)}`);
    await cluster.waitAllStreaming(synchronous);
    haproxy.start();
    writer = new WritingClient(haproxy.postgres);
    for (const fault of faults) {
      const phases: RunPhases[] = [];
      for (let run = 0; run < runs; run++) {
        phases.push(await oneRun(cluster, writer, fault, synchronous));
        const r = phases.at(-1)!;
        const ms = (v: number | null) => (v === null ? '-' : String(v));
        process.stdout.write(
          `  ${fault} #${run + 1} ${r.from}->${r.to}: detection ${ms(r.detection)}, acquisition ${ms(r.acquisition)}, promotion ${ms(r.promotion)}, ` +
            `direct write ${r.directWrite}, HAProxy write ${r.haproxyWrite}, write gap ${r.writeGap} ms, ${r.lost} lost, rejoin ${r.rejoin} ms\n`,
        );
      }
      results.push(summarize(fault, phases));
    }
  } finally {
    await writer?.stop();
    await cluster.stop();
  }
  return results;
}

async function oneRun(cluster: TestCluster, writer: WritingClient, fault: Fault, synchronous: boolean): Promise<RunPhases> {
  await cluster.waitAllStreaming(synchronous, settleMs);
  const old = await waitFor('one leader', () => cluster.leaderIndex(), 30_000);
  const ackedBefore = writer.acked.length;
  await waitFor('the client to write through HAProxy', () => writer.ackedAt.slice(ackedBefore).filter((a) => a.server === cluster.address(old)).length > 5, 30_000, 20);
  const others = cluster.names.map((_, i) => i).filter((i) => i !== old);
  const logs = cluster.names.map((_, i) => cluster.driver.node(i).sidecarLog);
  const logOffsets = logs.map((f) => statSync(f).size);
  const node = cluster.driver.node(old);
  const sidecar = cluster.processes.get(processName(node, 'sidecar'))!;
  const consul = cluster.processes.get(processName(node, 'consul'))!;
  const postmasterPid = Number(readFileSync(join(node.dir, 'sidecar', 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
  const probe = new DirectProbe(cluster, others);

  const runFirstAck = writer.acked.length;
  const t0 = Date.now();
  const perfOffset = t0 - performance.now(); // performance.now() + perfOffset = Date.now()
  if (fault === 'kill -9 sidecar') {
    await cluster.killSidecar(old);
  } else if (fault === 'kill -9 sidecar + postmaster') {
    killNow([sidecar.child.pid!, postmasterPid], 'SIGKILL');
    await sidecar.exited;
  } else if (fault === 'kill -9 consul') {
    await cluster.consul.stopNode(old, 'kill');
  } else if (fault === 'power cut') {
    // Everything of the node at once: its write guard and Postgres (with every backend), Consul, the sidecar.
    // The sidecar goes last so that no guard is left to see it die and hand the lock over, as no guard could
    // after a power cut.
    const pids = [...descendants(sidecar.child.pid!), postmasterPid, ...descendants(postmasterPid), consul.child.pid!, sidecar.child.pid!];
    killNow([...new Set(pids)], 'SIGKILL');
    await Promise.all([sidecar.exited, consul.exited]);
  } else if (fault === 'SIGSTOP sidecar') {
    killNow([sidecar.child.pid!], 'SIGSTOP');
  } else if (fault === 'graceful stop') {
    await cluster.stopSidecar(old);
  } else {
    const res = await cluster.call(old, 'POST', '/switchover', {});
    if (res.status !== 200) throw new Error(`POST /switchover: ${res.status} ${JSON.stringify(res.body)}`);
  }

  const leader = await waitFor('a new leader', () => cluster.leaderIndex(others), 60_000, 20);
  try {
    await waitFor('a write accepted directly on the new leader', () => probe.first, 60_000, 20);
  } finally {
    await probe.stop();
  }
  const throughHaproxy = await waitFor(
    'a write through HAProxy on the new leader',
    () => writer.ackedAt.slice(runFirstAck).find((a) => a.server === cluster.address(leader)),
    60_000,
    20,
  );

  // Back to three nodes: start what the fault stopped. Consul's autopilot counts a restarted server as healthy
  // only after its stabilization time (10 s); the next fault waits for that, the rejoin does not.
  const rejoinFrom = Date.now();
  if (fault === 'kill -9 consul' || fault === 'power cut') await cluster.consul.startNode(old);
  if (fault === 'SIGSTOP sidecar') killNow([sidecar.child.pid!], 'SIGCONT');
  else if (fault !== 'kill -9 consul' && fault !== 'switchover') await cluster.startSidecar(old);
  await cluster.waitAllStreaming(synchronous, settleMs);
  const rejoin = Date.now() - rejoinFrom;
  if (fault === 'kill -9 consul' || fault === 'power cut') await cluster.consul.waitForHealthy();

  // Every row acknowledged since just before the fault must be on the leader now (a late ack included).
  const acked = writer.acked.slice(runFirstAck);
  const now = await waitFor('one leader', () => cluster.leaderIndex(), 30_000);
  const present = new Set((await cluster.sql<{ id: string }>(now, 'select id from acked where id = any($1)', [acked], APP_LOGIN, 10_000)).map((r) => Number(r.id)));

  const lines = logs.map((f, i) => logLinesSince(f, logOffsets[i]));
  const after = (at: number | null) => (at === null ? null : at - t0);
  const detection = others.map((i) => firstAt(lines[i], t0, (m) => m.startsWith('no leader'))).filter((at): at is number => at !== null);
  const acks = writer.ackedAt.slice(runFirstAck - 1);
  const untilNew = acks.findIndex((a) => a === throughHaproxy);
  const gaps = acks.slice(1, untilNew + 1).map((a, k) => a.at - acks[k].at);
  return {
    from: cluster.names[old],
    to: cluster.names[leader],
    detection: after(detection.length > 0 ? Math.min(...detection) : null),
    acquisition: after(firstAt(lines[leader], t0, (m) => /^role \S+ -> candidate$/.test(m))),
    promotion: after(firstAt(lines[leader], t0, (m) => m === 'postgres promoted and takes writes')),
    directWrite: probe.first!.at - t0,
    haproxyWrite: Math.round(throughHaproxy.at + perfOffset - t0),
    writeGap: Math.round(Math.max(0, ...gaps)),
    lost: acked.filter((id) => !present.has(id)).length,
    rejoin,
  };
}

const PHASE_COLOURS: Record<Phase, string> = {
  detection: '#d62728',
  acquisition: '#ff7f0e',
  promotion: '#2ca02c',
  directWrite: '#1f77b4',
  haproxyWrite: '#9467bd',
};

const PHASE_LABELS: Record<Phase, string> = {
  detection: 'detection',
  acquisition: 'acquisition',
  promotion: 'promotion',
  directWrite: 'first write on the new leader',
  haproxyWrite: 'first write through HAProxy',
};

/**
 * One horizontal bar per fault from t0 to its last phase, split where each phase ends (its median), in the
 * order the phases ended: the first direct write can come before the promotion's log line (that line follows
 * the sidecar's own test write).
 */
export function timelineSvg(series: FaultSeries[], title: string): string {
  const left = 190;
  const width = 620;
  const rowHeight = 30;
  const top = 50;
  const ends = series.map((s) =>
    PHASES.filter((p) => s.summary[p] !== null)
      .map((p) => ({ phase: p, end: s.summary[p]!.p50 }))
      .sort((a, b) => a.end - b.end),
  );
  const longest = Math.max(1000, ...ends.map((e) => e.at(-1)?.end ?? 0));
  const step = longest > 8000 ? 2000 : longest > 4000 ? 1000 : 500;
  const scale = width / (Math.ceil(longest / step) * step);
  const height = top + series.length * rowHeight + 70;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 60}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${title}</text>`,
  ];
  for (let t = 0; t * scale <= width + 0.5; t += step) {
    const x = (left + t * scale).toFixed(1);
    out.push(`<line x1="${x}" y1="${top - 8}" x2="${x}" y2="${top + series.length * rowHeight}" stroke="#ddd"/>`);
    out.push(`<text x="${x}" y="${top - 12}" text-anchor="middle" fill="#555">${t / 1000} s</text>`);
  }
  series.forEach((s, row) => {
    const y = top + row * rowHeight;
    out.push(`<text x="${left - 8}" y="${y + 17}" text-anchor="end">${s.fault}</text>`);
    let start = 0;
    for (const { phase, end } of ends[row]) {
      const x = (left + start * scale).toFixed(1);
      const w = ((end - start) * scale).toFixed(1);
      out.push(`<rect x="${x}" y="${y + 4}" width="${w}" height="${rowHeight - 8}" fill="${PHASE_COLOURS[phase]}"><title>${s.fault}: ${PHASE_LABELS[phase]} at ${end} ms (median)</title></rect>`);
      start = end;
    }
    out.push(`<text x="${(left + start * scale + 4).toFixed(1)}" y="${y + 17}" fill="#333">${(start / 1000).toFixed(2)} s</text>`);
  });
  const legendY = top + series.length * rowHeight + 25;
  let x = 10;
  for (const p of PHASES) {
    out.push(`<rect x="${x}" y="${legendY - 10}" width="12" height="12" fill="${PHASE_COLOURS[p]}"/>`, `<text x="${x + 16}" y="${legendY}">${PHASE_LABELS[p]}</text>`);
    x += 30 + PHASE_LABELS[p].length * 6.5;
  }
  out.push(`<text x="10" y="${legendY + 25}" fill="#555">Each bar starts at the fault; a colour ends where its phase ends (median of the runs).</text>`, '</svg>');
  return out.join('\n') + '\n';
}
