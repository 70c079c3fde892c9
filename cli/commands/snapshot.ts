import { answerMessage } from '../api.js';
import type { CommandRegistrar } from '../context.js';
import { Session } from '../context.js';
import { cell, renderTable } from '../output.js';

/** The snapshots of a `GET /snapshots` answer: a list, or an object holding one under `snapshots`. */
function snapshotList(body: unknown): Record<string, unknown>[] | null {
  const list = Array.isArray(body)
    ? body
    : typeof body === 'object' && body !== null && Array.isArray((body as { snapshots?: unknown }).snapshots)
      ? (body as { snapshots: unknown[] }).snapshots
      : null;
  if (list === null || !list.every((s) => typeof s === 'object' && s !== null && !Array.isArray(s))) return null;
  return list as Record<string, unknown>[];
}

/** The lines of `hactl snapshot list`: one column per field the snapshots carry, `id` first. */
export function renderSnapshots(snapshots: Record<string, unknown>[]): string[] {
  if (snapshots.length === 0) return ['no snapshots yet'];
  const keys = [...new Set(snapshots.flatMap((s) => Object.keys(s)))];
  keys.sort((a, b) => (a === 'id' ? -1 : b === 'id' ? 1 : 0));
  return renderTable(
    keys.map((k) => k.toUpperCase()),
    snapshots.map((s) => keys.map((k) => cell(s[k]))),
  );
}

/** `hactl snapshot create|list|restore`. Snapshots are the leader's business, so each call finds it. */
export const snapshotCommands: CommandRegistrar = (cli, ctx) =>
  cli.command('snapshot', "Create, list and restore snapshots of the manager's data", (y) =>
    y
      .command(
        'create',
        'Take a snapshot on the leader',
        (c) => c.option('json', { type: 'boolean', default: false, describe: 'print the answer JSON on stdout' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.leader({ method: 'POST', path: '/snapshots', timeoutMs: session.longTimeoutMs });
          if (argv.json) {
            ctx.io.out(JSON.stringify(answer.body, null, 2));
            return;
          }
          const id = (answer.body as { id?: unknown } | null)?.id;
          ctx.io.out(answerMessage(answer) ?? (id !== undefined ? `snapshot ${cell(id)} created` : 'snapshot created'));
        },
      )
      .command(
        'list',
        'List the snapshots',
        (c) => c.option('json', { type: 'boolean', default: false, describe: 'print the answer JSON on stdout' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.leader({ method: 'GET', path: '/snapshots' });
          const snapshots = snapshotList(answer.body);
          if (argv.json || snapshots === null) ctx.io.out(JSON.stringify(answer.body, null, 2));
          else renderSnapshots(snapshots).forEach((l) => ctx.io.out(l));
        },
      )
      .command(
        'restore <id>',
        'Restore a snapshot on the leader (the standbys follow)',
        (c) => c.positional('id', { type: 'string', demandOption: true, describe: 'snapshot id' }),
        async (argv) => {
          const session = await Session.open(ctx, argv);
          const answer = await session.leader({
            method: 'POST',
            path: `/snapshots/${encodeURIComponent(argv.id)}/restore`,
            timeoutMs: session.longTimeoutMs,
          });
          ctx.io.out(answerMessage(answer) ?? `snapshot ${argv.id} restored`);
        },
      )
      .demandCommand(1, 'say which snapshot command: create, list or restore'),
  );
