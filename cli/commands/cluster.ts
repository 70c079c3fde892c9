import { setTimeout as sleep } from 'node:timers/promises';
import { SidecarError, errorMessage, isSidecarError } from '../../sidecar/errors.js';
import type { ClusterView, HistoryEvent } from '../api.js';
import { ClusterViewSchema, HistorySchema, answerMessage, parseAnswer } from '../api.js';
import type { ApiRequest } from '../leader-client.js';
import type { CliContext, CommandRegistrar } from '../context.js';
import { Session } from '../context.js';
import { CLEAR_SCREEN, cell, failureLine, formatBytes, renderTable, usageError } from '../output.js';
import { normalizeManagerUrl, updateProfile } from '../profiles.js';
import { ReachabilitySchema, checkMembers, peerFailures, portFailures, renderPeerMatrix, renderPortMatrix, type MemberView } from '../validate.js';
import { memberUrls } from './profiles.js';
import { recoveryCommands, withClusterProgress } from './recovery.js';
import { tlsCommands } from './tls.js';

const GET_CLUSTER: ApiRequest = { method: 'GET', path: '/cluster' };

/** The lines of `hactl cluster status`: a summary, the leader's status line, then one row per member. */
export function renderClusterStatus(view: ClusterView): string[] {
  const leaderName = view.leader?.name;
  const lines = [
    `cluster: ${cell(view.cluster)}   term: ${cell(view.term)}   leader: ${leaderName ?? 'none'}   paused: ${
      view.paused === true ? 'yes' : 'no'
    }`,
  ];
  const status = statusText(view.status);
  if (status !== undefined) lines.push(`status: ${status}`);
  lines.push('');
  const rows = view.members.map((m) => [
    m.name === leaderName ? '*' : '',
    m.name,
    cell(m.address),
    cell(m.role),
    cell(m.state),
    typeof m.lagBytes === 'number' ? formatBytes(m.lagBytes) : '-',
    cell(m.timeline),
    filesText(m.files),
    m.alive === false ? '-' : managerText(m.manager), // an offline member's last word about its manager is stale
  ]);
  const headers = ['', 'NAME', 'ADDRESS', 'ROLE', 'STATE', 'LAG', 'TIMELINE', 'FILES', 'MANAGER'];
  // With TLS, the days each node's certificate has left; a column only where some member publishes them.
  if (view.members.some((m) => m.tls)) {
    headers.push('CERT');
    view.members.forEach((m, i) => rows[i]!.push(m.tls ? certificateText(m.tls) : '-'));
  }
  lines.push(...renderTable(headers, rows));
  if (typeof view.consulError === 'string') lines.push(`(Consul unreachable from the answering node: ${view.consulError})`);
  else if (view.members.length === 0) lines.push('(no members yet)');
  for (const m of view.members) {
    if (m.tls?.expiring && m.tls.daysLeft >= 0) lines.push(`warning: ${m.name}'s certificate expires in ${m.tls.daysLeft} days (${m.tls.validTo}): run \`hactl cluster tls rotate\``);
  }
  return lines;
}

/** The CERT cell: days left, marked when within the warning's 30 days or past. */
function certificateText(tls: NonNullable<ClusterView['members'][number]['tls']>): string {
  if (tls.daysLeft < 0) return 'expired';
  return `${tls.daysLeft}d${tls.expiring ? ' (expiring)' : ''}`;
}

/**
 * What is wrong with the cluster `view` shows, as the error `cluster status` exits with: `no_leader` (exit
 * 3) when no leader holds the lock; `cluster_degraded` (exit 4) when the answering node cannot read Consul,
 * or a member is offline, not yet leader or standby, a standby whose Postgres does not stream, or one whose
 * certificate has expired. Null when healthy (a certificate expiring within 30 days is a warning line of the
 * status, not a problem). A cluster without members (not started yet) has no leader, so it is `no_leader`.
 */
export function clusterProblem(view: ClusterView, manager: string): SidecarError | null {
  if (typeof view.consulError === 'string') {
    return new SidecarError('cluster_degraded', `Consul unreachable from the answering node ${manager}: ${view.consulError}`, 503);
  }
  if (view.leader === null || view.leader === undefined) return new SidecarError('no_leader', 'no leader is elected', 503);
  const unhealthy = view.members.flatMap((m) => {
    if (m.alive === false || m.role === 'offline') return [`${m.name} is offline`];
    if (m.role !== 'leader' && m.role !== 'standby') return [`${m.name} is ${cell(m.role)}`];
    if (m.role === 'standby' && m.streaming === false && m.pgRole !== undefined) return [`${m.name}'s Postgres does not stream`];
    // Peers and clients refuse an expired certificate; one that only expires soon is a warning (exit 0).
    if (m.tls && m.tls.daysLeft < 0) return [`${m.name}'s certificate expired on ${m.tls.validTo}`];
    return [];
  });
  return unhealthy.length > 0 ? new SidecarError('cluster_degraded', unhealthy.join('; '), 503) : null;
}

/** `--watch` with no value: refresh every this many seconds, as `watch` does by default. */
const DEFAULT_WATCH_SECONDS = 2;

/** `--watch [seconds]`: true or no value means the default; else a positive number of seconds. */
function watchSeconds(value: unknown): number | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true || value === '') return DEFAULT_WATCH_SECONDS;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw usageError('--watch takes a positive number of seconds', 'bad_value');
  return seconds;
}

function statusText(status: unknown): string | undefined {
  if (status === undefined || status === null || status === '') return undefined;
  if (typeof status === 'string') return status;
  if (typeof status === 'object' && typeof (status as { message?: unknown }).message === 'string') {
    return (status as { message: string }).message;
  }
  return cell(status);
}

/** The FILES cell: the mirror state and generation when the member publishes them (and how far behind), else what it has. */
function filesText(files: unknown): string {
  if (typeof files !== 'object' || files === null || Array.isArray(files)) return cell(files);
  const f = files as Record<string, unknown>;
  const state = typeof f.state === 'string' ? f.state : typeof f.status === 'string' ? f.status : undefined;
  const generation = typeof f.generation === 'number' ? `gen ${f.generation}` : undefined;
  const behind = typeof f.behind === 'number' && f.behind > 0 ? `(-${f.behind})` : undefined;
  const parts = [state, generation, behind].filter((p): p is string => p !== undefined);
  return parts.length > 0 ? parts.join(' ') : cell(files);
}

/** The MANAGER cell: the state the member's manager part publishes (`healthy`, `leader hook failed (1/3)`, ...). */
function managerText(manager: unknown): string {
  if (typeof manager === 'object' && manager !== null && typeof (manager as { state?: unknown }).state === 'string') return (manager as { state: string }).state;
  return cell(manager);
}

/** The lines of `hactl cluster history`, oldest first as the API lists them. */
function renderHistory(events: HistoryEvent[]): string[] {
  if (events.length === 0) return ['no failovers or switchovers yet'];
  const rows = events.map((e) => [
    cell(e.term),
    cell(e.at),
    cell(e.kind),
    cell(e.leader),
    cell(e.previous),
    cell(e.reason),
  ]);
  return renderTable(['TERM', 'AT', 'KIND', 'LEADER', 'PREVIOUS', 'REASON'], rows);
}

/**
 * The sidecar URL of node `name` as the cluster's members publish it, asking the profile's managers and
 * `alsoAsk`. Never throws: when it cannot tell, `why` says so.
 */
async function memberApiUrl(
  session: Session,
  name: string,
  alsoAsk: string[] = [],
): Promise<{ url?: string; why: string }> {
  let view: ClusterView;
  try {
    view = parseAnswer(ClusterViewSchema, await session.any(GET_CLUSTER, alsoAsk), 'GET /cluster');
  } catch (e) {
    return { why: `the members could not be read (${errorMessage(e)})` };
  }
  const member = view.members.find((m) => m.name === name);
  if (member === undefined) return { why: `no member is named "${name}"` };
  if (typeof member.apiUrl !== 'string' || member.apiUrl === '') return { why: `member "${name}" publishes no apiUrl` };
  try {
    return { url: normalizeManagerUrl(member.apiUrl), why: '' };
  } catch {
    return { why: `member "${name}" publishes a bad apiUrl "${member.apiUrl}"` };
  }
}

/** Adds a manager URL to the profile when it is not listed yet (a node just started or joined). */
async function ensureListed(session: Session, url: string): Promise<void> {
  if (session.profile.managers.includes(url)) return;
  session.profile = await updateProfile(session.dir, session.name, {
    managers: [...session.profile.managers, url],
  });
}

const print = (ctx: CliContext, lines: string[]) => lines.forEach((l) => ctx.io.out(l));

/** `hactl cluster ...`. */
export const clusterCommands: CommandRegistrar = (cli, ctx) =>
  cli.command('cluster', 'Operate the cluster of the current profile', (y) =>
    tlsCommands(recoveryCommands(y, ctx), ctx)
      .command(
        'start',
        'Initialize the cluster with this node as its first leader',
        (c) =>
          c
            .option('node-name', { type: 'string', demandOption: true, describe: 'the node to start as leader' })
            .option('node-url', {
              type: 'string',
              describe: "that node's sidecar URL (default: found from the members, else any manager)",
            }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const target =
            argv.nodeUrl !== undefined
              ? normalizeManagerUrl(argv.nodeUrl)
              : (await memberApiUrl(session, argv.nodeName)).url;
          const request: ApiRequest = {
            method: 'POST',
            path: '/cluster/start',
            body: { nodeName: argv.nodeName },
            timeoutMs: session.longTimeoutMs,
          };
          // Before the cluster exists there is no leader to find: the node itself (or any sidecar) takes it.
          const answer = await withClusterProgress(ctx, session, () => (target !== undefined ? session.direct(target, request) : session.any(request)));
          await ensureListed(session, answer.manager);
          await session.noteLeader(answer.manager);
          ctx.io.out(answerMessage(answer) ?? `cluster started: ${argv.nodeName} is the leader`);
        },
      )
      .command(
        'join <leader-host>',
        'Make a node (empty unless --force) join the cluster led by <leader-host> as a standby',
        (c) =>
          c
            .positional('leader-host', {
              type: 'string',
              demandOption: true,
              describe: "the leader's sidecar: host or http(s)://host:port",
            })
            .option('node-name', { type: 'string', demandOption: true, describe: 'the node that joins' })
            .option('node-url', {
              type: 'string',
              describe: "the joining node's sidecar URL (default: found from the members)",
            })
            .option('node-address', {
              type: 'string',
              describe: "the joining node's address (host or host:port); its sidecar is then http://<address>:8008 (https with a profile's CA)",
            })
            .conflicts('node-url', 'node-address')
            .option('force', {
              type: 'boolean',
              default: false,
              describe: 'join even if the node holds data (it is overwritten)',
            }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const leaderUrl = session.managerUrl(argv.leaderHost);
          let target: string;
          if (argv.nodeUrl !== undefined) {
            target = normalizeManagerUrl(argv.nodeUrl);
          } else if (argv.nodeAddress !== undefined) {
            // A bare address gets the sidecar's port, as the leader host does (normalizeManagerUrl).
            if (/^[a-z][a-z0-9+.-]*:\/\//i.test(argv.nodeAddress)) throw usageError('--node-address takes a host, not a URL (use --node-url for a URL)', 'bad_host');
            target = session.managerUrl(argv.nodeAddress);
          } else {
            const found = await memberApiUrl(session, argv.nodeName, [leaderUrl]);
            if (found.url === undefined) {
              throw new SidecarError(
                'unknown_node',
                `cannot tell where node "${argv.nodeName}" runs: ${found.why}; pass --node-address <its address>`,
                404,
              );
            }
            target = found.url;
          }
          // The joining node clones the leader's Postgres meanwhile: its status line shows the clone's progress.
          const answer = await withClusterProgress(ctx, session, () =>
            session.direct(target, {
              method: 'POST',
              path: '/cluster/join',
              body: { nodeName: argv.nodeName, leaderUrl, force: argv.force },
              timeoutMs: session.longTimeoutMs,
            }),
          );
          await ensureListed(session, target);
          ctx.io.out(answerMessage(answer) ?? `node ${argv.nodeName} joined the cluster led by ${leaderUrl}`);
        },
      )
      .command(
        'status',
        'Show the term, the leader and every member. Exits 3 when no leader is elected, 4 when a member is ' +
          'unhealthy or the answering node cannot reach Consul',
        (c) =>
          c.option('json', { type: 'boolean', default: false, describe: 'print the /cluster JSON on stdout' }).option('watch', {
            describe: `refresh every N seconds (default ${DEFAULT_WATCH_SECONDS}) until interrupted`,
            coerce: watchSeconds,
          }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const once = async (): Promise<SidecarError | null> => {
            const answer = await session.any(GET_CLUSTER);
            const view = parseAnswer(ClusterViewSchema, answer, 'GET /cluster');
            const leaderUrl = memberUrls(answer.body)?.leaderUrl;
            if (leaderUrl !== undefined) await session.noteLeader(leaderUrl);
            if (argv.json) ctx.io.out(JSON.stringify(answer.body, null, 2));
            else print(ctx, renderClusterStatus(view));
            return clusterProblem(view, answer.manager);
          };
          const interval = argv.watch as number | undefined;
          if (interval === undefined) {
            const problem = await once();
            if (problem) throw problem;
            return;
          }
          // Like `watch`: a header, the status, again every interval; a failed read is shown, not fatal.
          for (;;) {
            const clear = ctx.io.isTerminal?.() ? CLEAR_SCREEN : '';
            ctx.io.out(`${clear}Every ${interval}s: hactl cluster status    ${new Date().toISOString()}`);
            ctx.io.out('');
            try {
              const problem = await once();
              if (problem) ctx.io.out(`\n${failureLine(problem.code, problem.message)}`);
            } catch (e) {
              ctx.io.out(failureLine(isSidecarError(e) ? e.code : 'internal_error', errorMessage(e)));
            }
            if (!ctx.io.isTerminal?.()) ctx.io.out('');
            await sleep(interval * 1000);
          }
        },
      )
      .command(
        'remove-node <name>',
        'Remove a node from the cluster',
        (c) => c.positional('name', { type: 'string', demandOption: true, describe: 'node name' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.leader({
            method: 'DELETE',
            path: `/cluster/nodes/${encodeURIComponent(argv.name)}`,
          });
          ctx.io.out(answerMessage(answer) ?? `node ${argv.name} removed from the cluster`);
        },
      )
      .command(
        'update-profile',
        "Refresh the profile's manager list from the cluster's members",
        (c) => c,
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.any(GET_CLUSTER);
          parseAnswer(ClusterViewSchema, answer, 'GET /cluster');
          const found = memberUrls(answer.body);
          if (found === null || found.managers.length === 0) {
            const why = `${answer.manager} lists no member with an apiUrl; profile unchanged`;
            throw new SidecarError('no_members', why, 502);
          }
          const profile = await updateProfile(session.dir, session.name, {
            managers: found.managers,
            lastLeader: found.leaderUrl,
          });
          ctx.io.out(`profile "${session.name}" managers: ${profile.managers.join(', ')}`);
        },
      )
      .command(
        'switchover',
        'Move the leadership gracefully to a standby (the best one unless --to)',
        (c) => c.option('to', { type: 'string', describe: 'the node that becomes leader' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const request: ApiRequest = {
            method: 'POST',
            path: '/switchover',
            body: argv.to !== undefined ? { to: argv.to } : {},
            timeoutMs: session.longTimeoutMs,
          };
          const answer = await withClusterProgress(ctx, session, () => session.leader(request));
          const done = argv.to !== undefined ? `switchover to ${argv.to} done` : 'switchover done';
          ctx.io.out(answerMessage(answer) ?? done);
        },
      )
      .command(
        'pause',
        'Stop automatic failover (maintenance); the leader keeps leading',
        (c) => c,
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.leader({ method: 'POST', path: '/pause' });
          ctx.io.out(answerMessage(answer) ?? 'cluster paused: no automatic failover until "hactl cluster resume"');
        },
      )
      .command(
        'resume',
        'Turn automatic failover back on',
        (c) => c,
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.leader({ method: 'POST', path: '/resume' });
          ctx.io.out(answerMessage(answer) ?? 'cluster resumed: automatic failover is on');
        },
      )
      .command(
        'validate',
        "Check every member's ports (Consul 8300, 8301, its HTTP API; API 8008; Postgres 15432; file mirror " +
          '22000, where used) from this host and from every member to every other, TLS handshakes included; ' +
          'exits 1 when one does not answer',
        (c) => c,
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const view = await memberList(session);
          if (view.members.length === 0) {
            // Every node asked may be cut off from Consul at once (a raft election): say so rather than "none".
            const why = typeof view.consulError === 'string' ? ` (Consul unreachable from every node asked: ${view.consulError})` : '';
            throw new SidecarError('no_members', `the cluster lists no members to check${why}`, 502);
          }
          const [rows, views] = await Promise.all([checkMembers(view.members), askMembers(session, view)]);
          print(ctx, ['from this host:', ...renderPortMatrix(rows), '', 'from each member to the others:', ...renderPeerMatrix(views)]);
          const failed = [...portFailures(rows), ...peerFailures(views)];
          if (failed.length > 0) throw new SidecarError('ports_unreachable', failed.join('; '), 503);
        },
      )
      .command(
        'history',
        'List the failovers and switchovers',
        (c) => c.option('json', { type: 'boolean', default: false, describe: 'print the /history JSON on stdout' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.any({ method: 'GET', path: '/history' });
          const events = parseAnswer(HistorySchema, answer, 'GET /history');
          if (argv.json) ctx.io.out(JSON.stringify(answer.body, null, 2));
          else print(ctx, renderHistory(events));
        },
      )
      .demandCommand(
        1,
        'say which cluster command: start, join, status, remove-node, update-profile, switchover, failover, pause, ' +
          'resume, reinit, restart, reload, validate, history or tls',
      ),
  );

/**
 * The members to check, from a node that can read them: one cut off from its Consul agent lists none (its
 * `consulError` says why), and the node that answers first may be that one, so the profile's other managers
 * are asked then. Validating such a cluster is exactly when this matters.
 */
async function memberList(session: Session): Promise<ClusterView> {
  const first = await session.any(GET_CLUSTER);
  const view = parseAnswer(ClusterViewSchema, first, 'GET /cluster');
  if (view.members.length > 0 || !view.consulError) return view;
  for (const manager of session.profile.managers.filter((m) => normalizeManagerUrl(m) !== first.manager)) {
    const other = await session.direct(manager, GET_CLUSTER).catch(() => undefined);
    const parsed = other && ClusterViewSchema.safeParse(other.body);
    if (parsed?.success && parsed.data.members.length > 0) return parsed.data;
  }
  return view;
}

/** Every member's `GET /reachability`, asked at once: how it reaches each of its peers. */
function askMembers(session: Session, view: ClusterView): Promise<MemberView[]> {
  return Promise.all(
    view.members.map(async (m): Promise<MemberView> => {
      if (typeof m.apiUrl !== 'string' || m.apiUrl === '') return { from: m.name, error: 'it publishes no apiUrl' };
      try {
        // The member checks its peers' ports at once, each within 2 s (sidecar/peer-reachability.ts).
        const answer = await session.direct(normalizeManagerUrl(m.apiUrl), { method: 'GET', path: '/reachability', timeoutMs: 5_000 });
        return { from: m.name, answer: parseAnswer(ReachabilitySchema, answer, 'GET /reachability') };
      } catch (e) {
        return { from: m.name, error: errorMessage(e) };
      }
    }),
  );
}
