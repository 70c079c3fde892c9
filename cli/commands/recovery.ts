import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv } from 'yargs';
import { z } from 'zod';
import { SidecarError, answeredCode, errorMessage } from '../../sidecar/errors.js';
import type { ClusterView } from '../api.js';
import { ClusterViewSchema, parseAnswer } from '../api.js';
import type { ApiRequest } from '../leader-client.js';
import type { CliContext, GlobalArgs } from '../context.js';
import { Session } from '../context.js';
import { cell, usageError } from '../output.js';
import { normalizeManagerUrl } from '../profiles.js';

/**
 * Recovery without ssh: `cluster failover`, `reinit`, `restart`, `reload`, and the progress lines every
 * long operation prints while the sidecar works (switchover, failover, reinit, restart).
 */

const GET_CLUSTER: ApiRequest = { method: 'GET', path: '/cluster' };
/** How often progress is polled: often enough to show each step of a clone or a promotion. */
const PROGRESS_POLL_MS = 500;
/** A reinit clones the whole database: give up waiting (it goes on) only after this long. */
const REINIT_WAIT_MS = 30 * 60_000;
const RESTART_WAIT_MS = 5 * 60_000;

const OperationSchema = z.looseObject({
  node: z.string(),
  role: z.string(),
  status: z.string(),
  operation: z
    .looseObject({
      action: z.string(),
      state: z.enum(['running', 'done', 'failed']),
      tookMs: z.number().optional(),
      error: z.string().optional(),
      code: z.string().optional(),
    })
    .nullable(),
  /** With `tls`: the certificate the node serves after the reload. */
  tls: z.looseObject({ validTo: z.string(), daysLeft: z.number() }).optional(),
});

const FailoverAnswerSchema = z.looseObject({ to: z.string(), term: z.number(), lostBytes: z.number().nullable().optional() });

/**
 * Member `name` as any manager lists it, and that manager; `name` must be a member, else a usage error
 * (exit 2) and nothing is sent.
 */
async function memberOf(session: Session, name: string): Promise<{ member: ClusterView['members'][number]; manager: string }> {
  if (name.trim() === '') throw usageError('a node name is empty', 'bad_value');
  const answer = await session.any(GET_CLUSTER);
  const view = parseAnswer(ClusterViewSchema, answer, 'GET /cluster');
  const member = view.members.find((m) => m.name === name);
  if (!member) throw usageError(`no member is named "${name}" (members: ${view.members.map((m) => m.name).join(', ') || 'none'})`, 'bad_value');
  return { member, manager: answer.manager };
}

/** The sidecar URL of member `name`. */
async function nodeUrl(session: Session, name: string): Promise<string> {
  const { member } = await memberOf(session, name);
  if (typeof member.apiUrl !== 'string' || member.apiUrl === '') throw new SidecarError('unknown_node', `member "${name}" publishes no apiUrl`, 404);
  return normalizeManagerUrl(member.apiUrl);
}

/**
 * Runs `work` and meanwhile prints each member's status line when it changes (`n2: promotion in progress`),
 * as the sidecars publish them: an operator sees what happens instead of a silent wait.
 */
export async function withClusterProgress<T>(ctx: CliContext, session: Session, work: () => Promise<T>): Promise<T> {
  let finished = false;
  let before = true;
  const seen = new Map<string, string>();
  const look = async () => {
    try {
      const view = parseAnswer(ClusterViewSchema, await session.any(GET_CLUSTER), 'GET /cluster');
      for (const m of view.members) {
        const line = `${cell(m.role)}: ${cell(m.state)}`;
        // After the first look, a member that appears (a node joining) is news as much as a change.
        if (!before && seen.get(m.name) !== line) ctx.io.out(`  ${m.name} ${line}`);
        seen.set(m.name, line);
      }
    } catch {
      // A node going away mid-operation is expected: the next look asks another.
    }
  };
  const poll = async () => {
    while (!finished) {
      await sleep(PROGRESS_POLL_MS);
      if (!finished) await look();
    }
  };
  await look(); // the states before the request, so every change after it is printed
  before = false;
  const polling = poll();
  try {
    const result = await work();
    finished = true;
    await polling;
    await look(); // the states the operation ended in
    return result;
  } finally {
    finished = true;
    await polling;
  }
}

/** Starts a restart or reinit on the node, then prints its status line as it changes until it is done. */
async function runNodeOperation(ctx: CliContext, session: Session, name: string, action: 'restart' | 'reinit'): Promise<void> {
  const url = await nodeUrl(session, name);
  await session.direct(url, { method: 'POST', path: `/postgres/${action}`, body: {} });
  const deadline = Date.now() + (action === 'reinit' ? REINIT_WAIT_MS : RESTART_WAIT_MS);
  let last = '';
  while (Date.now() < deadline) {
    const answer = await session.direct(url, { method: 'GET', path: '/postgres/operation' }).catch((e: unknown) => {
      ctx.io.out(`  ${name}: not answering (${errorMessage(e)})`);
      return null;
    });
    if (answer) {
      const view = parseAnswer(OperationSchema, answer, 'GET /postgres/operation');
      if (view.status !== last) ctx.io.out(`  ${name}: ${view.status}`);
      last = view.status;
      const op = view.operation;
      if (op?.state === 'failed') throw new SidecarError(answeredCode(op.code ?? 'operation_failed'), `${action} of ${name} failed: ${op.error ?? 'no reason given'}`, 502);
      if (op?.state === 'done') {
        const took = op.tookMs === undefined ? '' : ` in ${(op.tookMs / 1000).toFixed(1)} s`;
        ctx.io.out(action === 'reinit' ? `reinit of ${name} done${took}: a new clone that streams from the leader` : `postgres on ${name} restarted${took} (${view.role})`);
        return;
      }
    }
    await sleep(PROGRESS_POLL_MS);
  }
  throw new SidecarError('operation_timeout', `${action} of ${name} still runs; follow it with \`hactl cluster status\``, 504);
}

/** Adds the recovery commands to `hactl cluster`. */
export function recoveryCommands(y: Argv<GlobalArgs>, ctx: CliContext): Argv<GlobalArgs> {
  const node = (c: Argv<GlobalArgs>) => c.positional('node', { type: 'string', demandOption: true, describe: 'the node (member name)' });
  return y
    .command(
      'failover',
      'When no leader exists (a paused cluster whose leader died, or every candidate unfit), make --to the leader. ' +
        'Refused when a leader exists (use switchover) and, without --force, when --to is behind the last known primary position',
      (c) =>
        c
          .option('to', { type: 'string', demandOption: true, describe: 'the node that becomes leader' })
          .option('force', { type: 'boolean', default: false, describe: 'take over even if behind: the commits past its position are lost' }),
      async (argv) => {
        const session = await Session.open(ctx, argv);
        // Sent once, to the node that just answered: a failover is not a call to repeat on another node.
        const { member, manager } = await memberOf(session, argv.to);
        const request: ApiRequest = { method: 'POST', path: '/failover', body: { to: argv.to, force: argv.force }, timeoutMs: session.longTimeoutMs };
        const answer = await withClusterProgress(ctx, session, () => session.direct(manager, request));
        const done = parseAnswer(FailoverAnswerSchema, answer, 'POST /failover');
        if (typeof member.apiUrl === 'string' && member.apiUrl !== '') await session.noteLeader(normalizeManagerUrl(member.apiUrl));
        ctx.io.out(`failover done: ${done.to} leads (term ${done.term})`);
        if (typeof done.lostBytes === 'number' && done.lostBytes > 0) ctx.io.out(`forced: ${done.lostBytes} bytes of WAL past ${done.to}'s position were given up`);
      },
    )
    .command(
      'reinit <node>',
      "Rebuild a standby's Postgres as a new clone of the leader's, with progress; refused on the leader",
      node,
      async (argv) => runNodeOperation(ctx, await Session.open(ctx, argv), argv.node, 'reinit'),
    )
    .command(
      'restart <node>',
      "Restart a node's Postgres in its role (on the leader writes pause until it is back; it stays the leader)",
      node,
      async (argv) => runNodeOperation(ctx, await Session.open(ctx, argv), argv.node, 'restart'),
    )
    .command(
      'reload <node>',
      "Have a node's Postgres re-read its configuration (pg_ctl reload), and with TLS every port its certificate files",
      node,
      async (argv) => {
        const session = await Session.open(ctx, argv);
        const url = await nodeUrl(session, argv.node);
        const answer = await session.direct(url, { method: 'POST', path: '/postgres/reload', body: {} });
        const view = parseAnswer(OperationSchema, answer, 'POST /postgres/reload');
        const certificate = view.tls ? `; its certificate is valid until ${view.tls.validTo} (${view.tls.daysLeft} days)` : '';
        ctx.io.out(`postgres on ${argv.node} reloaded (${view.role})${certificate}`);
      },
    );
}
