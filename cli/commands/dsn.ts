import { z } from 'zod';
import { parseAnswer } from '../api.js';
import type { CommandRegistrar } from '../context.js';
import { Session } from '../context.js';

const DsnAnswer = z.looseObject({ dsn: z.string(), role: z.string() });

/**
 * `hactl dsn`: the application database's libpq URI, for `psql "$(hactl dsn)"`. A sidecar builds it (it
 * knows the members' addresses, the port and the app login), for callers holding the cluster token only:
 * the password derives from that token anyway.
 */
export const dsnCommands: CommandRegistrar = (cli, ctx) =>
  cli.command(
    'dsn',
    'Print a libpq connection URI of the application database (psql "$(hactl dsn)")',
    (c) =>
      c
        .option('role', { choices: ['leader', 'standby'] as const, describe: 'the leader (default) or a streaming standby' })
        .option('member', { type: 'string', describe: 'this member (must have --role when both are given)' })
        .option('all-members', {
          type: 'boolean',
          describe: 'list every member with target_session_attrs, so libpq finds the leader (or a standby) itself, also after a failover',
        })
        .conflicts('member', 'all-members')
        .option('json', { type: 'boolean', default: false, describe: 'print the member, role, host, port, user and database too' }),
    async (argv) => {
      const session = await Session.open(ctx, argv);
      const query = new URLSearchParams();
      if (argv.role !== undefined) query.set('role', argv.role);
      if (argv.member !== undefined) query.set('member', argv.member);
      if (argv.allMembers) query.set('all', 'true');
      const path = query.size > 0 ? `/dsn?${query.toString()}` : '/dsn';
      const answer = await session.any({ method: 'GET', path });
      const dsn = parseAnswer(DsnAnswer, answer, 'GET /dsn');
      ctx.io.out(argv.json ? JSON.stringify(dsn, null, 2) : dsn.dsn);
    },
  );
