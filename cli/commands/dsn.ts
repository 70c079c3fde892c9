import { resolve } from 'node:path';
import { z } from 'zod';
import { parseAnswer } from '../api.js';
import type { CommandRegistrar } from '../context.js';
import { Session } from '../context.js';

const DsnAnswer = z.looseObject({ dsn: z.string(), role: z.string(), sslrootcert: z.string().optional() });

/**
 * With TLS the sidecar names its own CA file, a path on that node; here the CA is the profile's, so the URI
 * (and the JSON) get the profile's path instead.
 */
export function withProfileCa<T extends z.infer<typeof DsnAnswer>>(answer: T, caFile: string | undefined): T {
  if (answer.sslrootcert === undefined || caFile === undefined) return answer;
  const path = resolve(caFile);
  return { ...answer, sslrootcert: path, dsn: answer.dsn.replace(/([?&]sslrootcert=)[^&]*/, (_, key: string) => key + encodeURIComponent(path)) };
}

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
      const dsn = withProfileCa(parseAnswer(DsnAnswer, answer, 'GET /dsn'), session.profile.tls?.caFile);
      ctx.io.out(argv.json ? JSON.stringify(dsn, null, 2) : dsn.dsn);
    },
  );
