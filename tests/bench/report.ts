import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../sidecar/shared/package.js';

/**
 * `npm run report`: markdown tables from the JSON files `npm run bench` and `npm run faults` write under
 * bench-results/ (or the directory given as the first argument), printed and written to bench-results/REPORT.md.
 * A file that is missing or cannot be read is named as such; nothing here measures anything.
 */

type Json = Record<string, unknown>;

const num = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? String(Math.round(v * 100) / 100) : '-');
const p50max = (xs: unknown): string => {
  if (!Array.isArray(xs) || xs.length === 0) return '-';
  const sorted = xs.filter((x): x is number => typeof x === 'number').sort((a, b) => a - b);
  if (sorted.length === 0) return '-';
  return `${sorted[Math.floor((sorted.length - 1) / 2)]}/${sorted[sorted.length - 1]}`;
};
const table = (head: string[], rows: string[][]): string[] => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)];

function read(dir: string, name: string): { data?: Json; problem?: string } {
  const file = join(dir, name);
  if (!existsSync(file)) return { problem: `no \`${name}\` in ${dir}` };
  try {
    return { data: JSON.parse(readFileSync(file, 'utf8')) as Json };
  } catch (e) {
    return { problem: `\`${name}\` cannot be read: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** `npm run bench -- failover`: failover.json, failover-sync.json (BENCH_SYNC=1), and with HA_TEST_TLS=0 the same with `-plain`. */
function failover(dir: string, name: string, how: string): string[] {
  const out = [`## Failover phases (${name}: ${how})`, ''];
  const { data, problem } = read(dir, name);
  if (!data) return [...out, `Not measured: ${problem}.`, ''];
  const series = Array.isArray(data.series) ? (data.series as Json[]) : [];
  const columns = ['detection', 'acquisition', 'promotion', 'directWrite', 'haproxyWrite', 'writeGap', 'lost', 'rejoin'];
  const cell = (q: unknown): string => {
    const v = q as { p50?: unknown; p95?: unknown; max?: unknown } | null;
    return v ? `${num(v.p50)} / ${num(v.p95)} / ${num(v.max)}` : '-';
  };
  out.push(
    `Written ${String(data.at)}; ${num(data.runs)} runs per fault, one 3-node cluster with Postgres, a client writing through HAProxy. p50 / p95 / max, ms after the fault (\`lost\`: acknowledged rows missing on the new leader).`,
    '',
  );
  out.push(
    ...table(
      ['fault', 'detection', 'acquisition', 'promotion', 'first write on the new leader', 'first write through HAProxy', 'longest write gap', 'lost', 'rejoin'],
      series.map((s) => [String(s.fault), ...columns.map((c) => cell((s.summary as Json | undefined)?.[c]))]),
    ),
  );
  return [...out, ''];
}

/** `BENCH=mirror npm run bench`: mirror.json, or mirror-<parts>.json when only some parts ran. */
function mirror(dir: string): string[] {
  const names = existsSync(dir) ? readdirSync(dir).filter((f) => /^mirror(-[a-z-]+)?\.json$/.test(f)).sort() : [];
  const out = ['## File mirror (`BENCH=mirror npm run bench`)', ''];
  if (names.length === 0) return [...out, `Not measured: no \`mirror*.json\` in ${dir}.`, ''];
  for (const name of names) {
    const { data, problem } = read(dir, name);
    if (!data) {
      out.push(`\`${name}\`: ${problem}.`, '');
      continue;
    }
    out.push(`### ${name} (written ${String(data.at)})`, '');
    const rows: string[][] = [];
    const latency = data.latency as Json | undefined;
    if (latency) rows.push([`propagation latency, ${num(latency.changes)} changes of a 1 KiB file until identical on every standby`, `p50 ${num(latency.p50Ms)} ms, p99 ${num(latency.p99Ms)} ms, max ${num(latency.maxMs)} ms`]);
    const first = data.firstMirror as Json | undefined;
    if (first) {
      rows.push([
        `first mirror of ${typeof first.files === 'number' ? first.files - 1 : '-'} files of ${num(first.smallBytes)} bytes and one of ${num(first.bigBytes)} bytes by an empty standby, beside \`rsync -a\``,
        `${num(first.mirrorMs)} ms vs rsync ${num(first.rsyncMs)} ms (${num(first.ratio)}×), with \`--fsync\` ${num(first.rsyncFsyncMs)} ms (${num(first.ratioFsync)}×)`,
      ]);
    }
    for (const r of Array.isArray(data.rss) ? (data.rss as Json[]) : []) {
      rows.push([`sidecar RSS watching ${num(r.files)} files`, `leader ${num(r.leaderRssMb)} MB, standbys ${num(r.followerRssMb)} MB (mirrored in ${num(r.readyMs)} ms)`]);
    }
    const catchUp = data.catchUp as Json | undefined;
    if (catchUp) rows.push([`catch-up of a standby down for ${num(catchUp.changes)} changes at ${num(catchUp.files)} files`, `${num(catchUp.changesBytes)} bytes of changes (whole manifest: ${num(catchUp.manifestBytes)} bytes)`]);
    out.push(...(rows.length ? table(['what', 'figure'], rows) : ['(no parts in this file)']), '');
  }
  return out;
}

/** `npm run bench -- idle`: idle.json. */
function idle(dir: string): string[] {
  const out = ['## Idle cost (`npm run bench -- idle`)', ''];
  const { data, problem } = read(dir, 'idle.json');
  if (!data) return [...out, `Not measured: ${problem}.`, ''];
  out.push(`Written ${String(data.at)}; ${num(data.seconds)} s per variant. CPU in % of one core, RSS at the end (not summed for Postgres with all its children).`, '');
  for (const v of Array.isArray(data.results) ? (data.results as Json[]) : []) {
    const load = Array.isArray(v.load) ? v.load.map(num).join(' → ') : '-';
    const changed = v.leaderAtEnd ? `; the leader changed to ${String(v.leaderAtEnd)}: not idle` : '';
    out.push(`### ${num(v.nodes)} nodes, ${num(v.files)} files (leader ${String(v.leader)}, load ${load}, cluster ${num(v.clusterCpuPercent)} % of a core${changed})`, '');
    const procs = Array.isArray(v.processes) ? (v.processes as Json[]) : [];
    out.push(...table(['node', 'process', 'CPU %', 'RSS MB'], procs.map((p) => [String(p.node), String(p.process) + (p.gone ? ' (gone)' : ''), num(p.cpuPercent), p.process === 'postgres (all)' ? '-' : num(p.rssMb)])), '');
    const rps = (v.requestsPerSecond ?? {}) as Record<string, Record<string, number>>;
    const targets = [...new Set(Object.values(rps).flatMap((r) => Object.keys(r)))].sort();
    if (targets.length) out.push(...table(['sidecar', ...targets.map((t) => `${t} req/s`)], Object.entries(rps).map(([node, r]) => [node, ...targets.map((t) => num(r[t]))])), '');
    const runtime = (v.runtime ?? {}) as Record<string, { eventLoopMaxDelayMs?: number; gcMsPerMinute?: number }>;
    if (Object.keys(runtime).length) out.push(...table(['sidecar', 'event loop max delay ms', 'GC ms/min'], Object.entries(runtime).map(([node, r]) => [node, num(r.eventLoopMaxDelayMs), num(r.gcMsPerMinute)])), '');
  }
  return out;
}

/** `BENCH=loss npm run bench`: loss.json. */
function loss(dir: string): string[] {
  const out = ['## Acknowledged inserts lost on failover (`BENCH=loss npm run bench`)', ''];
  const { data, problem } = read(dir, 'loss.json');
  if (!data) return [...out, `Not measured: ${problem}.`, ''];
  out.push(`Written ${String(data.at)}; ${num(data.kills)} leader kills (kill -9) per mode under insert load.`, '');
  const results = Array.isArray(data.results) ? (data.results as Json[]) : [];
  out.push(...table(['mode', 'kills', 'acknowledged', 'lost'], results.map((r) => [r.synchronous ? 'synchronous' : 'asynchronous', num(r.kills), num(r.acknowledged), num(r.lost)])));
  return [...out, ''];
}

/** `npm run bench -- stress`: stress.json, stress-sync.json (BENCH_SYNC=1). */
function stress(dir: string, name: string, how: string): string[] {
  const out = [`## Conditions that must cause no failover (${name}: ${how})`, ''];
  const { data, problem } = read(dir, name);
  if (!data) return [...out, `Not measured: ${problem}.`, ''];
  out.push(
    `Written ${String(data.at)}; one 3-node cluster with Postgres, a client writing through HAProxy; ${num(data.seconds)} s of CPU hogs and of a slow disk (${num(data.diskIops)} write IOPS), ${num(data.raftChanges)} forced raft elections.`,
    '',
  );
  const results = Array.isArray(data.results) ? (data.results as Json[]) : [];
  const count = (v: unknown) => (Array.isArray(v) ? String(v.length) : '-');
  out.push(
    ...table(
      ['scenario', 'seconds', 'leader changes', 'client errors', 'acknowledged', 'lost', 'longest write gap ms', 'instants of two leaders'],
      results.map((r) => [String(r.scenario), num(r.seconds), count(r.leaderChanges), num(r.clientErrors), num(r.acked), num(r.lost), num(r.longestWriteGapMs), count(r.twoLeaders)]),
    ),
  );
  return [...out, ''];
}

/** `npm run faults`: faults-<sync|async>-<time>.json; the newest of each mode. */
function faults(dir: string): string[] {
  const out = ['## Fault suite (`npm run faults`)', ''];
  const names = existsSync(dir) ? readdirSync(dir).filter((f) => /^faults-(sync|async)-.*\.json$/.test(f)).sort() : [];
  if (names.length === 0) return [...out, `Not run: no \`faults-<mode>-<time>.json\` in ${dir}.`, ''];
  for (const mode of ['sync', 'async']) {
    const newest = names.filter((f) => f.startsWith(`faults-${mode}-`)).at(-1);
    if (newest === undefined) {
      out.push(`### ${mode === 'sync' ? 'Synchronous' : 'Asynchronous'} mode`, '', `Not run in this mode: no \`faults-${mode}-*.json\`.`, '');
      continue;
    }
    const { data, problem } = read(dir, newest);
    if (!data) {
      out.push(`\`${newest}\`: ${problem}.`, '');
      continue;
    }
    const rows = Array.isArray(data.rows) ? (data.rows as Json[]) : [];
    const runs = Array.isArray(data.runs) ? (data.runs as Json[]) : [];
    const sweeps = (scenario: unknown) => runs.filter((r) => r.scenario === scenario).reduce((n, r) => n + (typeof r.doubleWriterSweeps === 'number' ? r.doubleWriterSweeps : 0), 0);
    const total = (k: string) => rows.reduce((n, r) => n + (typeof r[k] === 'number' ? (r[k] as number) : 0), 0);
    out.push(`### ${data.synchronous ? 'Synchronous' : 'Asynchronous'} mode (${newest}, written ${String(data.at)}, first seed ${num(data.seed)})`, '');
    out.push(
      `${total('runs')} runs, ${total('violations')} with a violation, ${runs.reduce((n, r) => n + (typeof r.doubleWriterSweeps === 'number' ? r.doubleWriterSweeps : 0), 0)} two-writer sweeps, ${total('acknowledged')} acknowledged ids, ${total('lost')} lost. Times in ms: "writable" is the fault to the first write acknowledged by another node than the old leader (\`-\`: none took over), "converged" the heal to one leader and every other node streaming.`,
      '',
    );
    out.push(
      ...table(
        ['scenario', 'runs', 'runs with a violation', 'two-writer sweeps', 'writable p50/max ms', 'converged p50/max ms', 'acked', 'lost'],
        rows.map((r) => [String(r.scenario), num(r.runs), num(r.violations), String(sweeps(r.scenario)), p50max(r.writableMs), p50max(r.convergedMs), num(r.acknowledged), num(r.lost)]),
      ),
      '',
    );
    const failing = runs.filter((r) => Array.isArray(r.violations) && r.violations.length > 0);
    if (failing.length) {
      out.push('Violations:', '');
      for (const r of failing) out.push(`- ${String(r.scenario)} run ${num(r.run)} (leader ${String(r.leader)}): ${(r.violations as string[]).join('; ')}`);
      out.push('');
    }
  }
  return out;
}

function main(): void {
  const dir = process.argv[2] ?? join(projectRoot(), 'bench-results');
  const lines = [
    '# Bench and fault-suite report',
    '',
    `Generated by \`npm run report\` (tests/bench/report.ts) from ${dir} at ${new Date().toISOString()}. Do not edit: run the benches or the fault suite, then this again.`,
    '',
    ...faults(dir),
    ...failover(dir, 'failover.json', 'asynchronous mode, TLS on'),
    ...failover(dir, 'failover-sync.json', 'synchronous mode, TLS on, `BENCH_SYNC=1`'),
    ...failover(dir, 'failover-plain.json', 'asynchronous mode, TLS off, `HA_TEST_TLS=0`'),
    ...failover(dir, 'failover-sync-plain.json', 'synchronous mode, TLS off, `BENCH_SYNC=1 HA_TEST_TLS=0`'),
    ...stress(dir, 'stress.json', 'asynchronous mode'),
    ...stress(dir, 'stress-sync.json', 'synchronous mode, `BENCH_SYNC=1`'),
    ...loss(dir),
    ...mirror(dir),
    ...idle(dir),
  ];
  const text = lines.join('\n');
  console.log(text);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'REPORT.md'), text);
  console.error(`written to ${join(dir, 'REPORT.md')}`);
}

main();
