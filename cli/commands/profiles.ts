import { ClusterViewSchema } from '../api.js';
import { sendOnce } from '../leader-client.js';
import type { CommandRegistrar } from '../context.js';
import { profilesDir, timeoutMs } from '../context.js';
import { cell, renderTable, usageError } from '../output.js';
import {
  defaultProfileName,
  deleteProfile,
  listProfiles,
  loadProfiles,
  managerUrlFor,
  normalizeManagerUrl,
  readProfileTls,
  showProfile,
  useProfile,
  type ProfileTls,
} from '../profiles.js';
import { httpsFetch } from '../../sidecar/shared/https-fetch.js';
import { resolve } from 'node:path';

/** Manager URLs the members of a `/cluster` answer publish, skipping any that is not a usable URL. */
export function memberUrls(body: unknown): { managers: string[]; leaderUrl?: string } | null {
  const parsed = ClusterViewSchema.safeParse(body);
  if (!parsed.success) return null;
  const managers: string[] = [];
  for (const member of parsed.data.members) {
    const url = tryNormalize(member.apiUrl);
    if (url !== undefined) managers.push(url);
  }
  const leaderUrl = tryNormalize(parsed.data.leader?.apiUrl);
  return leaderUrl !== undefined ? { managers, leaderUrl } : { managers };
}

function tryNormalize(url: string | null | undefined): string | undefined {
  if (typeof url !== 'string' || url === '') return undefined;
  try {
    return normalizeManagerUrl(url);
  } catch {
    return undefined;
  }
}

/** `hactl profiles use|list|show`. */
export const profilesCommands: CommandRegistrar = (cli, ctx) =>
  cli.command('profiles', 'Manage profiles: which managers make up a cluster, and its token', (y) =>
    y
      .command(
        'use <host>',
        'Add or update a profile for the cluster <host> belongs to, and make it current. ' +
          "The manager list is read from <host>'s /cluster when it answers.",
        (c) =>
          c
            .positional('host', {
              type: 'string',
              demandOption: true,
              describe: 'a manager: 127.0.0.11, host:port or http(s)://host:port (port 8008 when omitted)',
            })
            .option('name', { type: 'string', describe: 'profile name (default: the host)' })
            .option('token', {
              type: 'string',
              describe: 'cluster token for mutating calls (or set HACTL_TOKEN); kept when omitted',
            })
            .option('ca', {
              type: 'string',
              describe: 'the cluster CA file (hactl cluster tls init): managers are called over HTTPS and verified with it; kept when omitted',
            })
            .option('cert', { type: 'string', describe: 'a client certificate of the CA, for managers with tls.verifyClient (with --key)' })
            .option('key', { type: 'string', describe: 'the key of --cert' }),
        async (argv) => {
          if ((argv.cert === undefined) !== (argv.key === undefined)) throw usageError('give --cert and --key together', 'bad_value');
          if (argv.cert !== undefined && argv.ca === undefined) throw usageError('--cert needs --ca: the managers are verified with the CA', 'bad_value');
          const url = managerUrlFor(argv.host, argv.ca !== undefined);
          const name = argv.name ?? defaultProfileName(url);
          const token = argv.token ?? nonEmpty(ctx.env.HACTL_TOKEN);
          const given: ProfileTls | undefined =
            argv.ca === undefined ? undefined : { caFile: resolve(argv.ca), ...(argv.cert !== undefined && argv.key !== undefined ? { certFile: resolve(argv.cert), keyFile: resolve(argv.key) } : {}) };
          const existing = (await loadProfiles(profilesDir(ctx))).profiles[name];
          const tls = given ?? existing?.tls;
          // Read now, so a wrong path fails here (tls_file_unreadable) rather than at the first call.
          const fetch = tls !== undefined ? httpsFetch(readProfileTls(tls)) : ctx.fetch;
          // Over HTTPS /cluster takes the token (sidecar/api/access.ts); over plain HTTP it is not sent for a read.
          const result = await sendOnce(url, { method: 'GET', path: '/cluster' }, {
            fetch,
            timeoutMs: timeoutMs(argv),
            token: url.startsWith('https:') ? (token ?? existing?.token) : undefined,
          });
          let managers = [url];
          let lastLeader: string | undefined;
          const fromCluster = result.kind === 'answer' && result.status === 200 ? memberUrls(result.body) : null;
          if (fromCluster !== null && fromCluster.managers.length > 0) {
            // The host itself stays listed even when the members publish another address for it.
            managers = [...fromCluster.managers, url];
            lastLeader = fromCluster.leaderUrl;
          } else {
            const why = result.kind === 'answer' ? `it answered HTTP ${result.status} without members` : result.detail;
            ctx.io.err(
              `hactl: note: could not read the members from ${url} (${why}); the profile lists just this host ` +
                '(run "hactl cluster update-profile" once the cluster runs)',
            );
          }
          const profile = await useProfile(profilesDir(ctx), name, { managers, token, lastLeader, tls: given });
          ctx.io.out(`profile "${name}" is current: ${profile.managers.join(', ')}`);
        },
      )
      .command(
        'list',
        'List the profiles (the current one marked *)',
        (c) => c.option('json', { type: 'boolean', default: false, describe: 'print JSON on stdout' }),
        async (argv) => {
          const profiles = listProfiles(await loadProfiles(profilesDir(ctx)));
          if (argv.json) {
            ctx.io.out(JSON.stringify(profiles, null, 2));
            return;
          }
          if (profiles.length === 0) {
            ctx.io.out('no profiles yet: run "hactl profiles use <host>"');
            return;
          }
          const rows = profiles.map((p) => [
            p.current ? '*' : '',
            p.name,
            p.managers.join(','),
            cell(p.lastLeader),
            p.hasToken ? 'yes' : 'no',
            p.caFile !== null ? 'yes' : 'no',
          ]);
          for (const line of renderTable(['', 'NAME', 'MANAGERS', 'LAST LEADER', 'TOKEN', 'CA'], rows)) ctx.io.out(line);
        },
      )
      .command(
        'show [name]',
        'Show one profile (the current one by default); the token is never printed',
        (c) =>
          c
            .positional('name', { type: 'string', describe: 'profile name' })
            .option('json', { type: 'boolean', default: false, describe: 'print JSON on stdout' }),
        async (argv) => {
          const p = showProfile(await loadProfiles(profilesDir(ctx)), argv.name ?? argv.profile);
          if (argv.json) {
            ctx.io.out(JSON.stringify(p, null, 2));
            return;
          }
          ctx.io.out(`profile:     ${p.name}${p.current ? ' (current)' : ''}`);
          ctx.io.out(`managers:    ${p.managers.join(', ') || '-'}`);
          ctx.io.out(`last leader: ${cell(p.lastLeader)}`);
          ctx.io.out(`token:       ${p.hasToken ? 'set' : 'not set'}`);
          ctx.io.out(`ca:          ${cell(p.caFile)}`);
          ctx.io.out(`client cert: ${cell(p.certFile)}`);
        },
      )
      .command(
        'delete <name>',
        'Delete a profile and the token it holds',
        (c) => c.positional('name', { type: 'string', demandOption: true, describe: 'profile name' }),
        async (argv) => {
          const { wasCurrent } = await deleteProfile(profilesDir(ctx), argv.name);
          const note = wasCurrent ? '; no profile is current now (run "hactl profiles use <host>")' : '';
          ctx.io.out(`profile "${argv.name}" deleted${note}`);
        },
      )
      .demandCommand(1, 'say which profiles command: use, list, show or delete'),
  );

const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s === '' ? undefined : s);
